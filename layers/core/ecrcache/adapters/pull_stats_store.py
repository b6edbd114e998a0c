"""Pull statistics in the state table: each batch one delta item; counters, pending deltas and seen ids read.

Items (:mod:`ecrcache.models.pull_stats`): daily counters ``PULLS#<day>`` / ``<region>#<reference>``,
pending deltas ``PULLDELTA`` / ``<written at>#<id>``, and the ids counted per minute of event time
``PULLSEEN#<minute>`` / ``<run>#<chunk>``.

Recording a batch (:meth:`DynamoDbPullStatsStore.add`) is one ``PutItem`` of a delta item (more only for
a batch whose delta exceeds :data:`~ecrcache.adapters.pull_delta_codec.MAX_DELTA_BYTES`), whatever the
counters it touches: the daily counters are written by the compaction
(:mod:`ecrcache.adapters.pull_compaction_store`), once per counter for all the deltas it folds. A delta
written twice (a batch delivered again after its write succeeded) is harmless: the fold counts each
event id once. :attr:`write_items` counts the items written (the benchmark's "writes per 10,000 pull
events"), :attr:`write_requests` the requests.

Reading: the stored counters (one paginated ``Query`` of ``PULLS#<day>`` per day and per sort key
prefix), the pending deltas (``Query`` of ``PULLDELTA``) and the ids counted in given minutes (``Query``
of ``PULLSEEN#<minute>``): a reader folds the pending deltas against those ids and adds them to the
counters (:mod:`ecrcache.services.pull_stats`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client
from ecrcache.adapters.dynamodb_codec import batch_get, iso, parse_iso, query_partition, s
from ecrcache.adapters.pull_delta_codec import decode, encode_events
from ecrcache.errors import TerminalError
from ecrcache.models.pull_stats import CounterKey, DailyCounter
from ecrcache.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from ecrcache.models.pull_stats import PullDelta, PullEvent

Item = dict[str, "AttributeValueTypeDef"]

__all__ = ["DELTA_PARTITION", "READ_OPERATIONS", "DynamoDbPullStatsStore", "seen_partition"]

READ_OPERATIONS: Final = frozenset({"Query"})
"""What the API calls (it only reads the counters, the pending deltas, the seen ids and the desired
rules); see tests/contract."""
DELTA_PARTITION: Final = "PULLDELTA"
_PROJECTION: Final = "pk, sk, first_pulled_at, last_pulled_at, last_sync_at, last_sync_status"


def seen_partition(minute: str) -> str:
    return f"PULLSEEN#{minute}"


class DynamoDbPullStatsStore:
    """Implements :class:`ecrcache.ports.PullStatsStore` on the stack's state table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep
        self.new_id = new_id
        self.write_requests = 0
        """Write requests made (failed ones included)."""
        self.write_items = 0
        """Items written."""

    # -- recording -----------------------------------------------------------------------------

    def add(self, events: Sequence[PullEvent], now: datetime) -> int:
        """Write ``events`` as pending delta items (usually one); the items written. A failure raises
        (classified): some of the deltas may be written, which a redelivery of the batch cannot make
        count twice."""
        written = 0
        for data in encode_events(events):
            item: Item = {"pk": s(DELTA_PARTITION), "sk": s(f"{iso(now)}#{self.new_id()}"), "delta": {"B": data}}
            self.write_requests += 1
            try:
                self.client.put_item(TableName=self.table_name, Item=item)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "DynamoDB PutItem") from exc
            self.write_items += 1
            written += 1
        return written

    # -- reading pending deltas and seen ids ---------------------------------------------------

    def pending(self, *, consistent: bool = True) -> list[tuple[str, PullDelta]]:
        """Every pending delta, oldest first, with its sort key (readers may read eventually consistently:
        half the read units, and a delta a second old at worst missed)."""
        found: list[tuple[str, PullDelta]] = []
        for item in query_partition(self.client, self.table_name, DELTA_PARTITION, consistent=consistent):
            if (delta := _delta(item)) is not None:
                found.append((item["sk"]["S"], delta))
        return found

    def pending_keys(self, limit: int) -> list[str]:
        """The sort keys of the oldest ``limit`` pending deltas (a keys-only ``Query``, read consistently):
        a compaction reads only the deltas it folds."""
        keys: list[str] = []
        paginator = self.client.get_paginator("query")
        try:
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(DELTA_PARTITION)},
                ProjectionExpression="sk",
                ConsistentRead=True,
                PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)},
            ):
                keys += [item["sk"]["S"] for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        return keys[:limit]

    def deltas(self, sort_keys: Collection[str], *, skip_unreadable: bool = False) -> dict[str, PullDelta]:
        """The deltas of ``sort_keys`` still pending (consistent reads), by sort key. One that exists but
        cannot be read is left out (``skip_unreadable``, logged: choosing a run's deltas) or raises
        :class:`TerminalError` (a run that listed it must not take it for one it deleted)."""
        keys: list[Item] = [{"pk": s(DELTA_PARTITION), "sk": s(sk)} for sk in sorted(set(sort_keys))]
        found: dict[str, PullDelta] = {}
        for item in batch_get(self.client, self.table_name, keys, sleep=self.sleep):
            if (delta := _delta(item)) is not None:
                found[item["sk"]["S"]] = delta
            elif not skip_unreadable:
                msg = f"pending pull delta {item['sk']['S']!r} cannot be read by this version: the run stops"
                raise TerminalError(msg)
        return found

    def seen(
        self, minutes: Iterable[str], *, except_run: str | None = None, consistent: bool = True
    ) -> dict[str, frozenset[str]]:
        """The ids counted in each of ``minutes`` (minute -> ids; absent: none), leaving out what run
        ``except_run`` wrote (a run that is resumed writes its own again)."""
        out: dict[str, frozenset[str]] = {}
        for minute in sorted(set(minutes)):
            ids: set[str] = set()
            for item in query_partition(self.client, self.table_name, seen_partition(minute), consistent=consistent):
                if except_run is None or not item["sk"]["S"].startswith(f"{except_run}#"):
                    ids.update(item.get("ids", {}).get("SS", ()))
            if ids:
                out[minute] = frozenset(ids)
        return out

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
        items = batch_get(
            self.client,
            self.table_name,
            [{"pk": s(pk), "sk": s(sk)} for pk, sk in by_key],
            sleep=self.sleep,
            consistent=False,
            projection=_PROJECTION,
        )
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
        return {prefix: tuple(str(r) for r in spec.get("regions") or ()) for prefix, spec in self._rule_specs()}

    def rule_credentials(self) -> dict[str, str]:
        """Each desired rule's credential (rules without one left out), read as :meth:`desired_rules` reads."""
        return {prefix: str(spec["credential"]) for prefix, spec in self._rule_specs() if spec.get("credential")}

    def _rule_specs(self) -> list[tuple[str, dict[str, Any]]]:
        paginator = self.client.get_paginator("query")
        specs: list[tuple[str, dict[str, Any]]] = []
        try:
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s("DESIRED#rule")},
                ProjectionExpression="sk, spec",
            ):
                specs.extend((item["sk"]["S"], json.loads(item["spec"]["S"])) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        return specs


def _delta(item: Mapping[str, Any]) -> PullDelta | None:
    """The delta an item holds; ``None`` (logged) for one this version cannot read: it is left pending,
    neither counted nor deleted, and the rest are still counted."""
    data = item.get("delta", {}).get("B")
    try:
        if not isinstance(data, bytes):
            raise ValueError("no delta attribute")
        return decode(data)
    except ValueError as exc:
        logger.warning(
            "a pending pull delta cannot be read: it is left as it is", extra={"sk": item["sk"]["S"], "error": str(exc)}
        )
        return None


def _time(item: Mapping[str, Any], name: str) -> datetime | None:
    return parse_iso(item[name]["S"]) if name in item else None


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
