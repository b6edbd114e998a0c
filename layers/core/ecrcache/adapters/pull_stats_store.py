"""Pull statistics in the state table: exact, idempotent counters written in few transactions.

Items (:mod:`ecrcache.models.pull_stats`): daily counters ``PULLS#<day>`` / ``<region>#<reference>``
and, per minute of event time, the ids already counted ``PULLSEEN#<minute>`` / ``SEEN`` (``ids`` SS,
optimistic version ``v``).

Recording a batch (:meth:`DynamoDbPullStatsStore.record`):

1. One ``BatchGetItem`` (100 keys a call, eventually consistent) reads the seen items of the batch's
   minutes and the time attributes of its counters. Ids already seen are dropped (a redelivery).
2. The events are cut into groups that fit one ``TransactWriteItems`` (100 actions: one per counter
   and per minute, :func:`~ecrcache.engine.pull_stats.transaction_groups`; usually one group). Each
   group is one transaction: every seen item it touches ``ADD ids`` with ``v`` moved on from the
   version read (condition ``v = :read`` / ``attribute_not_exists(v)``), and every counter ``ADD``\\ s
   its counts and sets. So a batch's counts land together with the ids that mark them counted, or
   not at all: a redelivered event is never counted twice, a lost write never marks anything seen.
   The versions (and the times below) a transaction wrote are threaded into the next group's.
3. Times stay exact in any order: ``first_pulled_at`` is set only when the batch's earliest is
   earlier than the one read, with the condition ``attribute_not_exists(first_pulled_at) OR
   first_pulled_at > :first`` (``last_pulled_at`` and the latest sync alike, reversed). Values only
   move one way, so a stale read can only make a condition fail, never write a wrong value.
4. A cancelled transaction (another batch wrote a seen item or a time first; a transaction conflict;
   throttling of one item) re-reads the group's items consistently and tries again, at most
   ``max_attempts`` times with backoff; then, or on any other error (access denied, throttling
   botocore could not retry away), the group and every later one are reported failed: the service
   returns their messages as batch item failures and SQS delivers them again.

Writes per batch are one transaction action per distinct counter and per minute, whatever the number
of events; :attr:`DynamoDbPullStatsStore.write_items` counts them (the benchmark's "writes per 10,000
pull events"), :attr:`write_requests` the ``TransactWriteItems`` calls.

A minute's seen item holds about 17 bytes per id, so a DynamoDB item (400 KB) holds the ids of about
23,000 events of one minute (≈ 33 million pull events a day at a steady rate); beyond that the
transaction fails with a ``ValidationError`` and the batch goes to the dead-letter queue.

Reading (:meth:`counters`): one paginated ``Query`` of ``PULLS#<day>`` per day and per sort key prefix
(``<region>#<rule prefix>/``, ``<region>#`` or everything).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import iso, n, parse_iso, s
from ecrcache.engine.pull_stats import coalesce, transaction_groups
from ecrcache.errors import EcrcacheError, RetryableError, TerminalError
from ecrcache.models.pull_stats import (
    PULLS_RETENTION,
    SEEN_RETENTION,
    CounterKey,
    DailyCounter,
    Increment,
    PullEvent,
    RecordResult,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        TransactWriteItemTypeDef,
    )

Item = dict[str, "AttributeValueTypeDef"]

READ_OPERATIONS: Final = frozenset({"Query"})
"""What the API calls (it only reads the counters and the desired rules); see tests/contract."""
SEEN_SORT_KEY: Final = "SEEN"
BATCH_GET_SIZE: Final = 100
MAX_ATTEMPTS: Final = 5
BACKOFF_SECONDS: Final = 0.05
BACKOFF_MAX_SECONDS: Final = 1.0
RETRY_REASONS: Final = frozenset(
    {"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
"""Cancellation reasons a fresh read and another attempt can clear."""
_PROJECTION: Final = "pk, sk, ids, v, first_pulled_at, last_pulled_at, last_sync_at, last_sync_status"


@dataclass(frozen=True, slots=True)
class _Seen:
    version: int | None = None
    ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Times:
    """What a counter holds of the times (``None``: not set, or the item does not exist)."""

    first: datetime | None = None
    last: datetime | None = None
    sync: tuple[datetime, str] | None = None


@dataclass
class _State:
    """What the store knows of the items a batch touches: read, then updated by each committed transaction."""

    seen: dict[str, _Seen] = field(default_factory=dict)
    times: dict[CounterKey, _Times] = field(default_factory=dict)

    def committed(self, events: Sequence[PullEvent], increments: Mapping[CounterKey, Increment]) -> None:
        for minute in {e.minute for e in events}:
            before = self.seen.get(minute, _Seen())
            ids = frozenset(e.seen_id for e in events if e.minute == minute)
            self.seen[minute] = _Seen((before.version or 0) + 1, before.ids | ids)
        for key, inc in increments.items():
            known = self.times.get(key, _Times())
            self.times[key] = _Times(
                first=_min(known.first, inc.first_pulled_at),
                last=_max(known.last, inc.last_pulled_at),
                sync=_max(known.sync, _sync(inc)),
            )


def _min[T: Any](a: T | None, b: T | None) -> T | None:
    return b if a is None else a if b is None else min(a, b)


def _max[T: Any](a: T | None, b: T | None) -> T | None:
    return b if a is None else a if b is None else max(a, b)


def _sync(increment: Increment) -> tuple[datetime, str] | None:
    if increment.last_sync_at is None:
        return None
    return (increment.last_sync_at, increment.last_sync_status or "")


class _Retry(Exception):
    """The transaction was cancelled for a reason another attempt, after a fresh read, can clear."""


@dataclass
class _Outcome:
    counted: list[PullEvent] = field(default_factory=list)
    duplicates: list[PullEvent] = field(default_factory=list)
    failed: list[PullEvent] = field(default_factory=list)
    error: EcrcacheError | None = None

    def result(self) -> RecordResult:
        return RecordResult(
            counted=tuple(self.counted),
            duplicates=tuple(self.duplicates),
            failed=tuple(self.failed),
            error=None if self.error is None else self.error.message,
            retryable=isinstance(self.error, RetryableError),
        )


class DynamoDbPullStatsStore:
    """Implements :class:`ecrcache.ports.PullStatsStore` on the stack's state table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.write_requests = 0
        """``TransactWriteItems`` calls made (cancelled ones included)."""
        self.write_items = 0
        """Items written by committed transactions (one per counter and per minute of each group)."""

    # -- recording -----------------------------------------------------------------------------

    def record(self, events: Sequence[PullEvent]) -> RecordResult:
        """Count ``events`` (distinct EventBridge ids) exactly once, whatever was counted before."""
        outcome = _Outcome()
        if not events:
            return outcome.result()
        try:
            state = self._read(events, consistent=False)
        except EcrcacheError as exc:
            outcome.failed.extend(events)
            outcome.error = exc
            return outcome.result()
        for group in transaction_groups(events):
            if outcome.error is not None:
                outcome.failed.extend(group)
                continue
            try:
                self._commit(group, state, outcome)
            except EcrcacheError as exc:
                outcome.failed.extend(group)
                outcome.error = exc
        return outcome.result()

    def _commit(self, group: Sequence[PullEvent], state: _State, outcome: _Outcome) -> None:
        """One transaction for ``group``; re-read and try again while it is cancelled by a conflict."""
        delay = BACKOFF_SECONDS
        for attempt in range(self.max_attempts):
            fresh = [e for e in group if e.seen_id not in state.seen.get(e.minute, _Seen()).ids]
            if len(fresh) < len(group):
                ids = {e.event_id for e in fresh}
                outcome.duplicates.extend(e for e in group if e.event_id not in ids)
            group = fresh
            if not group:
                return
            increments = coalesce(group)
            try:
                self._transact([*self._seen_actions(group, state), *self._counter_actions(increments, state)])
            except _Retry:
                if attempt + 1 == self.max_attempts:
                    break
                self.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                fresh_state = self._read(group, consistent=True)
                state.seen.update(fresh_state.seen)
                state.times.update(fresh_state.times)
                continue
            state.committed(group, increments)
            outcome.counted.extend(group)
            return
        msg = f"DynamoDB TransactWriteItems was cancelled {self.max_attempts} times by concurrent writes; try again"
        raise RetryableError(msg, reason="TransactionCanceledException")

    def _transact(self, actions: list[TransactWriteItemTypeDef]) -> None:
        self.write_requests += 1
        try:
            self.client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise classify(exc, "DynamoDB TransactWriteItems") from exc
            reasons = {
                str(r.get("Code")) for r in cast("list[dict[str, Any]]", exc.response.get("CancellationReasons") or [])
            }
            reasons.discard("None")
            if reasons and reasons <= RETRY_REASONS:
                raise _Retry from exc
            named = ", ".join(sorted(reasons)) or "no reason given"
            raise TerminalError(f"DynamoDB TransactWriteItems was cancelled: {named}", reason=named) from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc
        self.write_items += len(actions)

    def _seen_actions(self, group: Sequence[PullEvent], state: _State) -> Iterator[TransactWriteItemTypeDef]:
        for minute in sorted({e.minute for e in group}):
            read = state.seen.get(minute, _Seen())
            at = datetime.fromisoformat(f"{minute}:00+00:00")
            values: Item = {
                ":ids": {"SS": sorted({e.seen_id for e in group if e.minute == minute})},
                ":next": n((read.version or 0) + 1),
                ":exp": n(int((at + SEEN_RETENTION).timestamp())),
            }
            condition = "attribute_not_exists(v)"
            if read.version is not None:
                condition = "v = :read"
                values[":read"] = n(read.version)
            yield {
                "Update": {
                    "TableName": self.table_name,
                    "Key": _seen_key(minute),
                    "UpdateExpression": "ADD ids :ids SET v = :next, expires_at = :exp",
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": values,
                }
            }

    def _counter_actions(
        self, increments: Mapping[CounterKey, Increment], state: _State
    ) -> Iterator[TransactWriteItemTypeDef]:
        for key, increment in increments.items():
            update = _CounterUpdate.of(key, increment, state.times.get(key, _Times()))
            action: dict[str, Any] = {
                "TableName": self.table_name,
                "Key": {"pk": s(key.pk), "sk": s(key.sk)},
                "UpdateExpression": update.expression,
                "ExpressionAttributeValues": update.values,
            }
            if update.conditions:
                action["ConditionExpression"] = " AND ".join(update.conditions)
            yield cast("TransactWriteItemTypeDef", {"Update": action})

    # -- reading what a batch touches ----------------------------------------------------------

    def _read(self, events: Sequence[PullEvent], *, consistent: bool) -> _State:
        minutes = sorted({e.minute for e in events})
        keys = sorted({k for e in events for k in e.keys if k.is_image}, key=lambda k: k.sort_key)
        wanted: list[Item] = [_seen_key(m) for m in minutes] + [{"pk": s(k.pk), "sk": s(k.sk)} for k in keys]
        state = _State()
        for item in self._batch_get(wanted, consistent=consistent):
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if pk.startswith("PULLSEEN#"):
                state.seen[pk.removeprefix("PULLSEEN#")] = _Seen(int(item["v"]["N"]), frozenset(item["ids"]["SS"]))
            else:
                state.times[CounterKey.parse(pk, sk)] = _times(item)
        return state

    def _batch_get(self, keys: list[Item], *, consistent: bool) -> Iterator[dict[str, Any]]:
        for start in range(0, len(keys), BATCH_GET_SIZE):
            pending: KeysAndAttributesTypeDef = {
                "Keys": keys[start : start + BATCH_GET_SIZE],
                "ProjectionExpression": _PROJECTION,
                "ConsistentRead": consistent,
            }
            delay = BACKOFF_SECONDS
            for attempt in range(self.max_attempts + 1):
                if attempt:
                    self.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                try:
                    out = self.client.batch_get_item(RequestItems={self.table_name: pending})
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, "DynamoDB BatchGetItem") from exc
                yield from out.get("Responses", {}).get(self.table_name, [])
                unprocessed = out.get("UnprocessedKeys", {}).get(self.table_name)
                if not unprocessed:
                    break
                pending = cast("KeysAndAttributesTypeDef", unprocessed)
            else:
                msg = f"DynamoDB BatchGetItem left keys unprocessed after {self.max_attempts + 1} attempts"
                raise RetryableError(msg)

    # -- reading counters ----------------------------------------------------------------------

    def counters(self, days: Iterable[date], sort_key_prefixes: Collection[str]) -> list[DailyCounter]:
        """The image counters of ``days`` whose sort key starts with one of ``sort_key_prefixes``
        (``""``: every counter of the day)."""
        found: list[DailyCounter] = []
        for day in days:
            for prefix in sorted(set(sort_key_prefixes)):
                for item in self._query_day(day, prefix):
                    key = CounterKey.parse(item["pk"]["S"], item["sk"]["S"])
                    if key.is_image:
                        found.append(_counter(key, item))
        return found

    def counters_of(self, keys: Collection[CounterKey]) -> list[DailyCounter]:
        """The counters of exactly ``keys`` (absent ones are not listed): one BatchGetItem per 100 keys.
        Only the times (``_PROJECTION``) are read: pull counts and sets come back empty."""
        by_key = {key.sort_key: key for key in keys}
        items = self._batch_get([{"pk": s(pk), "sk": s(sk)} for pk, sk in by_key], consistent=False)
        return [_counter(by_key[(item["pk"]["S"], item["sk"]["S"])], item) for item in items]

    def _query_day(self, day: date, prefix: str) -> Iterator[dict[str, Any]]:
        condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
        values: Item = {":pk": s(f"PULLS#{day.isoformat()}")}
        if prefix:
            values[":prefix"] = s(prefix)
        paginator = self.client.get_paginator("query")
        try:
            for page in paginator.paginate(
                TableName=self.table_name, KeyConditionExpression=condition, ExpressionAttributeValues=values
            ):
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc

    def desired_rules(self) -> dict[str, tuple[str, ...]]:
        """Every desired rule's prefix and the Regions it names (empty: the stack's Region).

        Read from the desired items (``DESIRED#rule``, :mod:`ecrcache.adapters.dynamodb_store`): the
        pull statistics need no more of the desired state, and their function no more permissions."""
        paginator = self.client.get_paginator("query")
        rules: dict[str, tuple[str, ...]] = {}
        try:
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s("DESIRED#rule")},
                ProjectionExpression="sk, spec",
            ):
                for item in page.get("Items", []):
                    regions = json.loads(item["spec"]["S"]).get("regions") or ()
                    rules[item["sk"]["S"]] = tuple(str(region) for region in regions)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        return rules


@dataclass(frozen=True, slots=True)
class _CounterUpdate:
    """One counter's ``UpdateExpression``: ADD counts and sets, SET the times that move (conditioned)."""

    expression: str
    values: Item
    conditions: tuple[str, ...]

    @classmethod
    def of(cls, key: CounterKey, inc: Increment, known: _Times) -> _CounterUpdate:
        adds: list[str] = []
        sets = ["expires_at = :exp"]
        conditions: list[str] = []
        values: Item = {":exp": n(int(_day_start(key.day).timestamp() + PULLS_RETENTION.total_seconds()))}
        for name in ("pulls", "layer_requests", "imports", "import_failures"):
            if count := getattr(inc, name):
                adds.append(f"{name} :{name}")
                values[f":{name}"] = n(count)
        for name in ("digests", "platforms", "principals"):
            if members := getattr(inc, name):
                adds.append(f"{name} :{name}")
                values[f":{name}"] = {"SS": sorted(members)}
        if inc.first_pulled_at is not None and (known.first is None or inc.first_pulled_at < known.first):
            sets.append("first_pulled_at = :first")
            conditions.append("(attribute_not_exists(first_pulled_at) OR first_pulled_at > :first)")
            values[":first"] = s(iso(inc.first_pulled_at))
        if inc.last_pulled_at is not None and (known.last is None or inc.last_pulled_at > known.last):
            sets.append("last_pulled_at = :last")
            conditions.append("(attribute_not_exists(last_pulled_at) OR last_pulled_at < :last)")
            values[":last"] = s(iso(inc.last_pulled_at))
        sync = _sync(inc)
        if sync is not None and (known.sync is None or sync > known.sync):
            sets.append("last_sync_at = :sync_at, last_sync_status = :sync_status")
            conditions.append(
                "(attribute_not_exists(last_sync_at) OR last_sync_at < :sync_at"
                " OR (last_sync_at = :sync_at AND last_sync_status < :sync_status))"
            )
            values[":sync_at"] = s(iso(sync[0]))
            values[":sync_status"] = s(sync[1])
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        return cls(expression, values, tuple(conditions))


def _cancellation_reasons(exc: ClientError) -> set[str]:
    """The codes of a cancelled transaction's reasons, one per action (``None`` for the actions that were fine)."""
    listed = cast("list[dict[str, Any]]", exc.response.get("CancellationReasons") or [])
    return {str(reason.get("Code")) for reason in listed} - {"None"}


def _day_start(day: date) -> datetime:
    return datetime.fromisoformat(f"{day.isoformat()}T00:00:00+00:00")


def _seen_key(minute: str) -> Item:
    return {"pk": s(f"PULLSEEN#{minute}"), "sk": s(SEEN_SORT_KEY)}


def _time(item: Mapping[str, Any], name: str) -> datetime | None:
    return parse_iso(item[name]["S"]) if name in item else None


def _times(item: Mapping[str, Any]) -> _Times:
    sync_at = _time(item, "last_sync_at")
    status = item["last_sync_status"]["S"] if "last_sync_status" in item else ""
    return _Times(
        first=_time(item, "first_pulled_at"),
        last=_time(item, "last_pulled_at"),
        sync=None if sync_at is None else (sync_at, status),
    )


def _counter(key: CounterKey, item: Mapping[str, Any]) -> DailyCounter:
    def members(name: str) -> frozenset[str]:
        return frozenset(item[name]["SS"]) if name in item else frozenset()

    return DailyCounter(
        key=key,
        pulls=int(item["pulls"]["N"]) if "pulls" in item else 0,
        first_pulled_at=_time(item, "first_pulled_at"),
        last_pulled_at=_time(item, "last_pulled_at"),
        digests=members("digests"),
        platforms=members("platforms"),
        principals=members("principals"),
        last_sync_at=_time(item, "last_sync_at"),
        last_sync_status=item["last_sync_status"]["S"] if "last_sync_status" in item else None,
    )
