"""Per-upstream token buckets in the state table: every warm run (and every probe of the daily credential health check)
takes its upstream requests from one shared bucket, so two runs at once never spend an upstream's
rate limit twice.

One item per bucket key -- the upstream registry URL, with ``#<credential>`` when the rule signs in
(an upstream's limit is per account: two credentials of one registry are two buckets)::

    pk = "BUDGET#<upstream registry url>[#<credential>]"  sk = "BUCKET"
        tokens N             what is left (fractional: the refill is continuous); below zero while a
                             debt is paid back (:meth:`DynamoDbUpstreamBudget.charge`)
        capacity N           the limit's requests per window
        refill_per_second N  capacity / window_seconds
        updated_at N         epoch seconds (6 decimals) when ``tokens`` was last computed; strictly
                             increasing, the optimistic-concurrency version of the item
        blocked_until N      epoch seconds: no token is given before (an upstream answered 429)
        expires_at N         TTL: a bucket untouched for two windows is full again (from the deepest
                             debt), whether the item exists or not, so DynamoDB may delete it

Every change is read -> compute -> ``PutItem`` conditioned on ``updated_at`` still being what was read
(``attribute_not_exists(pk)`` for a new bucket); a writer that lost the race reads again and retries,
at most :data:`ATTEMPTS` times (then ``RetryableError``). ``updated_at`` always moves forward (by at
least a microsecond, even when two writers' clocks read the same instant or go backwards), so no two
writes can both pass the condition: the sum of the tokens taken never exceeds what the bucket held plus
its refill. A missing bucket is full (the upstream's window is assumed unspent). While blocked, a take
gets nothing and a refund or a charge changes nothing (the upstream's own window is spent; after the block
the bucket refills from empty).

Spending is not always known beforehand: the planner reserves an estimate per image and the worker
settles the difference once it knows what the warm cost. Less is refunded; more is *charged*
(:meth:`DynamoDbUpstreamBudget.charge`): written whatever the bucket holds, so the tokens go below zero
and every take gets nothing until the refill has paid the debt back -- the bucket reflects what the
upstream was really asked. A debt is bounded at one window's capacity (``-capacity``): the upstream's own
window forgets a request after one window, so a longer memory would only hold warming back for nothing.

The limit comes with every call (it is the credential's override or the upstream kind's default,
``ecrcache.models.upstream.default_rate_limit``): a lowered capacity clamps the tokens (and the debt).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from ecrcache.engine.upstream_buckets import BucketLimit

ATTEMPTS: Final = 10
"""Optimistic writes tried before giving up (each conflict means another writer made progress)."""
BACKOFF_SECONDS: Final = 0.02
BACKOFF_MAX_SECONDS: Final = 0.5
SORT_KEY: Final = "BUCKET"
TICK: Final = Decimal("0.000001")
IDLE_SECONDS: Final = 86_400
"""How long past two full windows an idle bucket's item is kept before its TTL (it is full by then anyway)."""

Item = dict[str, "AttributeValueTypeDef"]


def _number(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> AttributeValueTypeDef:
    return {"N": str(value.quantize(TICK, rounding=rounding))}


def _epoch(moment: datetime) -> Decimal:
    return Decimal(str(moment.astimezone(UTC).timestamp())).quantize(TICK)


@dataclass(frozen=True, slots=True)
class _Bucket:
    """A bucket as read (``version`` is the stored ``updated_at`` text; ``None``: no item yet)."""

    tokens: Decimal
    blocked_until: Decimal
    stamp: Decimal
    version: str | None


class DynamoDbUpstreamBudget:
    """Implements :class:`ecrcache.ports.UpstreamBudget` on the stack's state table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep
        self.attempts = attempts

    # -- the port ------------------------------------------------------------------------------

    def take(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> int:
        """Up to ``count`` whole tokens; 0 when the bucket is empty or blocked (then nothing is written)."""
        if count <= 0:
            return 0

        def change(bucket: _Bucket, at: Decimal) -> tuple[Decimal, Decimal, int] | None:
            if bucket.blocked_until > at:
                return None
            taken = max(0, min(count, int(bucket.tokens)))  # nothing from an empty bucket or one in debt
            return (bucket.tokens - taken, bucket.blocked_until, taken) if taken else None

        return self._update(upstream, limit, now, change) or 0

    def refund(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        """Give back tokens taken and not spent (never above capacity; nothing while blocked)."""
        if count <= 0:
            return

        def change(bucket: _Bucket, at: Decimal) -> tuple[Decimal, Decimal, int] | None:
            if bucket.blocked_until > at:
                return None
            return min(Decimal(limit.capacity), bucket.tokens + count), bucket.blocked_until, count

        self._update(upstream, limit, now, change)

    def charge(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        """Spend ``count`` tokens used without being taken (see the module): the bucket may go below zero,
        down to ``-capacity``; nothing while blocked."""
        if count <= 0:
            return

        def change(bucket: _Bucket, at: Decimal) -> tuple[Decimal, Decimal, int] | None:
            if bucket.blocked_until > at:
                return None
            return max(-Decimal(limit.capacity), bucket.tokens - count), bucket.blocked_until, count

        self._update(upstream, limit, now, change)

    def block(self, upstream: str, *, until: datetime, limit: BucketLimit, now: datetime) -> None:
        """Empty the bucket and give nothing before ``until``; it refills from empty after (a later
        ``until`` than a block already recorded wins, an earlier one changes nothing). A debt is cleared
        too: the upstream's own window starts afresh at its reset."""
        end = _epoch(until)

        def change(bucket: _Bucket, at: Decimal) -> tuple[Decimal, Decimal, int] | None:
            if bucket.blocked_until >= end and bucket.tokens == 0:
                return None
            return Decimal(0), max(end, bucket.blocked_until), 0

        self._update(upstream, limit, now, change)

    def blocked_until(self, upstream: str, *, now: datetime) -> datetime | None:
        item = self._get(upstream)
        if item is None or "blocked_until" not in item:
            return None
        until = Decimal(item["blocked_until"]["N"])
        return datetime.fromtimestamp(float(until), UTC) if until > _epoch(now) else None

    # -- read, change, conditional write -------------------------------------------------------

    def _update(
        self,
        upstream: str,
        limit: BucketLimit,
        now: datetime,
        change: Callable[[_Bucket, Decimal], tuple[Decimal, Decimal, int] | None],
    ) -> int | None:
        """Apply ``change`` (refilled bucket, now -> new tokens, new block, result; ``None``: no write)
        with an optimistic write, retrying a lost race with a short jittered backoff."""
        at = _epoch(now)
        delay = BACKOFF_SECONDS
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not cryptography
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
            bucket = self._refilled(self._get(upstream), limit, at)
            changed = change(bucket, at)
            if changed is None:
                return None
            tokens, blocked, result = changed
            if self._put(upstream, bucket, limit, tokens=tokens, blocked=blocked, at=at):
                return result
        msg = f"the upstream budget of {upstream} is contended: {self.attempts} conflicting writes; try again"
        raise RetryableError(msg, reason="BudgetContended")

    @staticmethod
    def _refilled(item: Item | None, limit: BucketLimit, at: Decimal) -> _Bucket:
        capacity = Decimal(limit.capacity)
        if item is None:
            return _Bucket(tokens=capacity, blocked_until=Decimal(0), stamp=at, version=None)
        version = str(item["updated_at"]["N"])
        stamp = Decimal(version)
        tokens = max(-capacity, min(capacity, Decimal(item["tokens"]["N"])))
        elapsed = max(Decimal(0), at - stamp)
        refill = Decimal(limit.capacity) / Decimal(limit.window_seconds)
        blocked = Decimal(item["blocked_until"]["N"]) if "blocked_until" in item else Decimal(0)
        return _Bucket(
            tokens=min(capacity, tokens + elapsed * refill), blocked_until=blocked, stamp=stamp, version=version
        )

    def _put(
        self, upstream: str, bucket: _Bucket, limit: BucketLimit, *, tokens: Decimal, blocked: Decimal, at: Decimal
    ) -> bool:
        """Write the bucket if nobody wrote it since it was read; ``False`` when somebody did."""
        # Strictly after the version read (the condition then fails for any other writer of it); a block
        # starts the refill at its end: tokens accrue from `blocked`, not from now.
        after_read = bucket.stamp + TICK if bucket.version is not None else at
        stamp = max(at, after_read, blocked if blocked > at else Decimal(0))
        item: Item = {
            "pk": _s(f"BUDGET#{upstream}"),
            "sk": _s(SORT_KEY),
            "tokens": _number(tokens, ROUND_FLOOR),  # rounding never adds a token (nor lessens a debt)
            "capacity": {"N": str(limit.capacity)},
            "refill_per_second": _number(Decimal(limit.capacity) / Decimal(limit.window_seconds)),
            "updated_at": _number(stamp),
            "blocked_until": _number(blocked),
            "expires_at": {"N": str(int(max(stamp, blocked)) + 2 * limit.window_seconds + IDLE_SECONDS)},
        }
        try:
            if bucket.version is None:
                self.client.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            else:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="updated_at = :seen",
                    ExpressionAttributeValues={":seen": {"N": bucket.version}},
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB PutItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB PutItem") from exc
        return True

    def _get(self, upstream: str) -> Item | None:
        try:
            found = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(f"BUDGET#{upstream}"), "sk": _s(SORT_KEY)},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return dict(found) if found else None
