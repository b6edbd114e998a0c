"""The compaction of pull statistics in the state table: its lease, the counters it folds into, the ids it keeps.

One item holds the compaction's state (``PULLCOMPACT`` / ``LEASE``): ``owner`` and ``until`` (the lease,
epoch seconds), ``compacted_at`` (the last run that finished, absent while a backlog waits), ``gen``
(runs finished: a new run's claim holds only if no run finished since the state was read) and, while a
run is under way, ``run``, ``deltas`` (the sort keys of the deltas it folds) and ``backlog``. A run
names its deltas before it writes anything, so a run cut short (a timeout, a throttled write) is resumed
with exactly the same deltas by whichever invocation next takes the lease
(:mod:`ecrcache.services.pull_compaction`).

Each counter a run folds into is written once, by one ``UpdateItem`` that ``ADD``\\ s the counts and sets,
``SET``\\ s the times that move, and marks the counter with the run (``run``), on the condition that the
counter is still as read (its ``run`` unchanged): a resumed run skips the counters already marked with
it, and a writer that lost its lease cannot write over another run's. A refused write whose counter
already carries this run's mark was this run's own (botocore retried a write whose answer was lost, or
the invocation that resumed the run wrote it): it is done, not a lost lease. The ids a run counted are
written as its own items per minute (``PULLSEEN#<minute>`` / ``<run>#<chunk>``, at most
:data:`SEEN_CHUNK` ids each): rewriting them on a resume writes the same items again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import batch_get, batch_write, iso, n, parse_iso, s
from ecrcache.adapters.pull_stats_store import DELTA_PARTITION, seen_partition
from ecrcache.errors import RetryableError
from ecrcache.models.pull_stats import (
    PULLS_RETENTION,
    SEEN_RETENTION,
    CompactionState,
    CounterMark,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestTypeDef

    from ecrcache.models.pull_stats import (
        CounterKey,
        Increment,
    )

Item = dict[str, "AttributeValueTypeDef"]

__all__ = ["SEEN_CHUNK", "DynamoDbPullCompactionStore", "LeaseLostError"]

LEASE_KEY: Final = {"pk": "PULLCOMPACT", "sk": "LEASE"}
SEEN_CHUNK: Final = 5_000
"""Ids per seen item: 17 bytes each in a string set, about 85 KB (an item holds 400 KB)."""
_LEASE_NAMES: Final = {"#owner": "owner", "#until": "until", "#run": "run", "#gen": "gen"}
_MARK_PROJECTION: Final = "pk, sk, #run, first_pulled_at, last_pulled_at, last_sync_at, last_sync_status"


class LeaseLostError(RetryableError):
    """A counter changed after the run read it: another invocation holds the lease now (this one's ran out)."""


class DynamoDbPullCompactionStore:
    """The compaction's reads and writes (:class:`ecrcache.ports.PullCompactionStore`)."""

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep
        self.write_requests = 0
        self.write_items = 0

    # -- the lease -----------------------------------------------------------------------------

    def state(self) -> CompactionState:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=_lease_key(), ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        if not item:
            return CompactionState()
        return CompactionState(
            owner=item["owner"]["S"] if "owner" in item else None,
            until=int(item["until"]["N"]) if "until" in item else 0,
            compacted_at=parse_iso(item["compacted_at"]["S"]) if "compacted_at" in item else None,
            run=item["run"]["S"] if "run" in item else None,
            deltas=tuple(v["S"] for v in item["deltas"]["L"]) if "deltas" in item else (),
            backlog=bool(item["backlog"]["BOOL"]) if "backlog" in item else False,
            generation=int(item["gen"]["N"]) if "gen" in item else 0,
        )

    def claim(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        run: str,
        deltas: Sequence[str] = (),
        resume: bool = False,
        backlog: bool = False,
        generation: int = 0,
    ) -> bool:
        """Take the lease for ``run``: a new run of ``deltas`` (no run under way, and no run finished since the
        state read, whose ``generation`` this is), or (``resume``) the run under way, whose id is ``run``.
        ``False``: another invocation holds the lease, or the state moved."""
        values: Item = {
            ":owner": s(owner),
            ":until": n(int((now + lease).timestamp())),
            ":now": n(int(now.timestamp())),
            ":run": s(run),
        }
        condition = "(attribute_not_exists(#until) OR #until <= :now) AND "
        if not resume:
            values[":deltas"] = {"L": [s(sk) for sk in deltas]}
            values[":backlog"] = {"BOOL": backlog}
            update = "SET #owner = :owner, #until = :until, #run = :run, deltas = :deltas, backlog = :backlog"
            condition += "attribute_not_exists(#run) AND "
            if generation:
                condition += "#gen = :gen"
                values[":gen"] = n(generation)
            else:
                condition += "attribute_not_exists(#gen)"
        else:
            update = "SET #owner = :owner, #until = :until"
            condition += "#run = :run"
        return self._update(update, condition, values, what="claim")

    def finish(self, owner: str, now: datetime, *, backlog: bool = False) -> bool:
        """The run is done: no run under way, the lease free, one more generation, compacted now -- or, with
        ``backlog`` (more deltas wait than a run folds), not marked compacted, so that the next batch
        compacts again at once. ``False``: the lease was lost."""
        values: Item = {":owner": s(owner), ":zero": n(0), ":one": n(1)}
        if backlog:
            update = "SET #until = :zero REMOVE #run, deltas, backlog, compacted_at ADD #gen :one"
        else:
            update = "SET compacted_at = :at, #until = :zero REMOVE #run, deltas, backlog ADD #gen :one"
            values[":at"] = s(iso(now))
        return self._update(update, "#owner = :owner", values, what="finish")

    def release(self, owner: str) -> bool:
        """Free the lease and leave the run under way (an invocation running out of time): the next batch
        resumes it without waiting for the lease to run out. ``False``: the lease was lost."""
        values: Item = {":owner": s(owner), ":zero": n(0)}
        return self._update("SET #until = :zero", "#owner = :owner AND attribute_exists(#run)", values, what="release")

    def _update(self, update: str, condition: str, values: Item, *, what: str) -> bool:
        self.write_requests += 1
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_lease_key(),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={k: v for k, v in _LEASE_NAMES.items() if k in update + condition},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, f"DynamoDB UpdateItem (compaction {what})") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"DynamoDB UpdateItem (compaction {what})") from exc
        self.write_items += 1
        return True

    # -- counters ------------------------------------------------------------------------------

    def marks(self, keys: Collection[CounterKey]) -> dict[CounterKey, CounterMark]:
        """The marks of ``keys`` (read consistently); a counter that does not exist has the empty mark."""
        by_key = {key.sort_key: key for key in keys}
        found = {key: CounterMark() for key in keys}
        for item in self._batch_get([{"pk": s(pk), "sk": s(sk)} for pk, sk in sorted(by_key)]):
            found[by_key[(item["pk"]["S"], item["sk"]["S"])]] = _mark(item)
        return found

    def _batch_get(self, keys: list[Item]) -> list[dict[str, Any]]:
        return batch_get(
            self.client,
            self.table_name,
            keys,
            sleep=self.sleep,
            projection=_MARK_PROJECTION,
            names={"#run": "run"},
        )

    def fold(self, key: CounterKey, increment: Increment, mark: CounterMark, run: str) -> None:
        """Add ``increment`` to the counter and mark it with ``run``, if it is still as ``mark`` says
        (else :class:`LeaseLostError`). A counter already marked with ``run`` is left alone."""
        if mark.run == run:
            return
        update = _CounterUpdate.of(key, increment, mark, run)
        self.write_requests += 1
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": s(key.pk), "sk": s(key.sk)},
                UpdateExpression=update.expression,
                ConditionExpression=update.condition,
                ExpressionAttributeNames={"#run": "run"},
                ExpressionAttributeValues=update.values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                if _run_of(exc) == run:
                    return  # this run's write, retried by botocore after its answer was lost: already done
                msg = "a pull counter changed while the compaction folded into it: another run holds the lease"
                raise LeaseLostError(msg, reason="ConditionalCheckFailedException") from exc
            raise classify(exc, "DynamoDB UpdateItem (pull counter)") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem (pull counter)") from exc
        self.write_items += 1

    # -- seen ids and deltas -------------------------------------------------------------------

    def put_seen(self, run: str, counted: Mapping[str, Collection[str]]) -> None:
        """The ids ``run`` counted, per minute, as the run's own seen items (``BatchWriteItem``)."""
        requests: list[WriteRequestTypeDef] = []
        for minute, ids in sorted(counted.items()):
            expires = n(int((datetime.fromisoformat(f"{minute}:00+00:00") + SEEN_RETENTION).timestamp()))
            ordered = sorted(ids)
            for chunk, start in enumerate(range(0, len(ordered), SEEN_CHUNK)):
                item: Item = {
                    "pk": s(seen_partition(minute)),
                    "sk": s(f"{run}#{chunk}"),
                    "ids": {"SS": ordered[start : start + SEEN_CHUNK]},
                    "expires_at": expires,
                }
                requests.append({"PutRequest": {"Item": item}})
        self._batch_write(requests)

    def delete_deltas(self, sort_keys: Collection[str]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": {"pk": s(DELTA_PARTITION), "sk": s(sk)}}} for sk in sorted(set(sort_keys))
        ]
        self._batch_write(requests)

    def _batch_write(self, requests: list[WriteRequestTypeDef]) -> None:
        self.write_requests += -(-len(requests) // 25)
        batch_write(self.client, self.table_name, requests, sleep=self.sleep)
        self.write_items += len(requests)


@dataclass(frozen=True, slots=True)
class _CounterUpdate:
    """One counter's ``UpdateItem``: ADD counts and sets, SET the times that move and the run's mark."""

    expression: str
    condition: str
    values: Item

    @classmethod
    def of(cls, key: CounterKey, inc: Increment, mark: CounterMark, run: str) -> _CounterUpdate:
        values: Item = {
            ":run": s(run),
            ":exp": n(int(_day_start(key.day).timestamp() + PULLS_RETENTION.total_seconds())),
        }
        sets = ["#run = :run", "expires_at = :exp"]
        adds: list[str] = []
        for name, count in (
            ("pulls", inc.pulls),
            ("layer_requests", inc.layer_requests),
            ("imports", inc.imports),
            ("import_failures", inc.import_failures),
        ):
            if count:
                adds.append(f"{name} :{name}")
                values[f":{name}"] = n(count)
        for name, members in (("digests", inc.digests), ("platforms", inc.platforms), ("principals", inc.principals)):
            if members:
                adds.append(f"{name} :{name}")
                values[f":{name}"] = {"SS": sorted(members)}
        if inc.first_pulled_at is not None and (mark.first is None or inc.first_pulled_at < mark.first):
            sets.append("first_pulled_at = :first")
            values[":first"] = s(iso(inc.first_pulled_at))
        if inc.last_pulled_at is not None and (mark.last is None or inc.last_pulled_at > mark.last):
            sets.append("last_pulled_at = :last")
            values[":last"] = s(iso(inc.last_pulled_at))
        sync = None if inc.last_sync_at is None else (inc.last_sync_at, inc.last_sync_status or "")
        if sync is not None and (mark.sync is None or sync > mark.sync):
            sets.append("last_sync_at = :sync_at, last_sync_status = :sync_status")
            values[":sync_at"] = s(iso(sync[0]))
            values[":sync_status"] = s(sync[1])
        if mark.run is None:
            condition = "attribute_not_exists(#run)"
        else:
            condition = "#run = :read"
            values[":read"] = s(mark.run)
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        return cls(expression, condition, values)


def _run_of(exc: ClientError) -> str | None:
    """The run that marked the counter, from the item a failed condition returns (``ALL_OLD``)."""
    item = cast("dict[str, Any]", exc.response).get("Item") or {}
    run = item.get("run", {}).get("S")
    return run if isinstance(run, str) else None


def _lease_key() -> Item:
    return {"pk": s(LEASE_KEY["pk"]), "sk": s(LEASE_KEY["sk"])}


def _day_start(day: date) -> datetime:
    return datetime.fromisoformat(f"{day.isoformat()}T00:00:00+00:00")


def _time(item: Mapping[str, Any], name: str) -> datetime | None:
    return parse_iso(item[name]["S"]) if name in item else None


def _mark(item: Mapping[str, Any]) -> CounterMark:
    sync_at = _time(item, "last_sync_at")
    status = item["last_sync_status"]["S"] if "last_sync_status" in item else ""
    return CounterMark(
        exists=True,
        run=item["run"]["S"] if "run" in item else None,
        first=_time(item, "first_pulled_at"),
        last=_time(item, "last_pulled_at"),
        sync=None if sync_at is None else (sync_at, status),
    )
