"""The deep resync's fan-out records in the state table (:class:`ecrcache.ports.ShardStore`).

Items (the layout of the rest of the table is in :mod:`ecrcache.adapters.status_store`)::

    pk = "RUN#<run_id>"     sk = "RUN"                       + sh_total, sh_done, sh_failed, sh_retrying (numbers),
                                                               sh_coord (1 while the coordinating run works),
                                                               sh_deadline (ISO), shr#<region> (its shards)
    pk = "RUN#<run_id>"     sk = "SHARD#<region>#<index:05d>"  state, region, index, rules (JSON: prefix ->
                                                               repositories), retried?, report (JSON)?, error?,
                                                               expires_at
    pk = "APPLIED#<home>"   sk = "#STATUS#<region>"          + fan (map: run_id, deadline, started_at,
                                                               prefixes? (JSON): a fast fan-out's rules): its marker

* Counts are numbers of their own on the run item (not in its ``run`` JSON), moved with ``ADD`` in the same
  ``TransactWriteItems`` as the shard's state, which is conditioned on the state the caller read: a count is never
  lost or made twice, whichever delivery, redelivery or settling gets there. They are put back into the run's
  :attr:`~ecrcache.models.status.ReconcileRun.shards` on every read of the run.
* The marker is written in one transaction with the run's total, refused while the Region holds one: two deep runs
  never fan out one Region at once. The shard items follow (``BatchWriteItem``), before any task is sent.
* The run finishes with a write conditioned on ``run_status = running``: exactly one caller wins.
* Transactions cancelled for a ``TransactionConflict`` (workers reporting at once move the same run item) are sent
  again with the same ``ClientRequestToken`` (DynamoDB applies a token's transaction once within 10 minutes), with
  backoff; still conflicting, or throttled, they raise ``RetryableError``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, error_code
from ecrcache.adapters.dynamodb_codec import batch_get, batch_write, conditional_update, parse_iso
from ecrcache.adapters.dynamodb_codec import iso as _iso
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.errors import RetryableError
from ecrcache.models.shards import FanoutMarker, ShardCounts, ShardRecord, ShardReport, ShardState
from ecrcache.models.status import FanoutProgress, ReconcileRun, RunStatus
from ecrcache.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestTypeDef

    from ecrcache.models.observed import AppliedFingerprints
    from ecrcache.models.status import RegionStamp

__all__ = ["FANOUT_ATTRIBUTE", "SHARD_SORT_PREFIX", "ShardRecords", "fanout_marker", "with_shard_counts"]

Item = dict[str, "AttributeValueTypeDef"]

FANOUT_ATTRIBUTE: Final = "fan"
"""Of a Region's status item: its unfinished fan-out (:class:`~ecrcache.models.shards.FanoutMarker`, a map)."""
SHARD_SORT_PREFIX: Final = "SHARD#"
REGION_SHARDS_PREFIX: Final = "shr#"
COUNTS: Final = {"total": "sh_total", "done": "sh_done", "failed": "sh_failed", "retrying": "sh_retrying"}
CONFLICT_ATTEMPTS: Final = 6
"""Tries of a transaction cancelled by ``TransactionConflict`` (backoff 50 ms doubling) before it raises."""
CONFLICT_BACKOFF_SECONDS: Final = 0.05


def _number(item: Mapping[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


def with_shard_counts(item: Mapping[str, Any]) -> ReconcileRun:
    """The run an item holds, its shard counts put back (from their own attributes) when it fanned out."""
    run = ReconcileRun.model_validate_json(item["run"]["S"])
    if COUNTS["total"] not in item:
        return run
    counts = ShardCounts(**{field: max(0, _number(item, name)) for field, name in COUNTS.items()})
    return run.model_copy(update={"shards": counts})


def fanout_marker(item: Mapping[str, Any]) -> FanoutMarker | None:
    """A Region status item's marker (its ``fan`` map), if any."""
    found = item.get(FANOUT_ATTRIBUTE)
    if found is None or "M" not in found:
        return None
    value = found["M"]
    started = parse_iso(value["started_at"]["S"]) if "started_at" in value else None
    prefixes = tuple(json.loads(value["prefixes"]["S"])) if "prefixes" in value else None
    return FanoutMarker(
        run_id=value["run_id"]["S"], deadline=parse_iso(value["deadline"]["S"]), started_at=started, prefixes=prefixes
    )


def _marker_value(run: ReconcileRun, deadline: datetime, prefixes: Collection[str] | None) -> AttributeValueTypeDef:
    """The ``fan`` map :func:`fanout_marker` reads."""
    fields = {"run_id": _s(run.run_id), "deadline": _s(_iso(deadline)), "started_at": _s(_iso(run.started_at))}
    if prefixes is not None:
        fields["prefixes"] = _s(json.dumps(sorted(prefixes)))
    return {"M": fields}


def _shard_key(run_id: str, region: str, index: int) -> Item:
    return {"pk": _s(f"RUN#{run_id}"), "sk": _s(f"{SHARD_SORT_PREFIX}{region}#{index:05d}")}


def _record_of(item: Mapping[str, Any]) -> ShardRecord:
    return ShardRecord(
        run_id=item["pk"]["S"].removeprefix("RUN#"),
        region=item["region"]["S"],
        index=int(item["index"]["N"]),
        state=ShardState(item["state"]["S"]),
        rules={str(k): int(v) for k, v in json.loads(item["rules"]["S"]).items()} if "rules" in item else {},
        retried=bool(item.get("retried", {}).get("BOOL", False)),
        report=ShardReport.model_validate_json(item["report"]["S"]) if "report" in item else None,
        error=item["error"]["S"] if "error" in item else None,
    )


def _counts_update(expected: ShardState | None, state: ShardState) -> tuple[list[str], Item]:
    """The run item's ``ADD`` clauses for a shard moving from ``expected`` to ``state``."""
    adds: list[str] = []
    values: Item = {}
    if state is ShardState.DONE:
        adds.append("sh_done :one")
    elif state is ShardState.FAILED:
        adds.append("sh_failed :one")
    if state is ShardState.RETRYING and expected is not ShardState.RETRYING:
        adds.append("sh_retrying :one")
    elif state.final and expected is ShardState.RETRYING:
        adds.append("sh_retrying :minus")
        values[":minus"] = _n(-1)
    values[":one"] = _n(1)
    return adds, values


class ShardRecords:
    """Implements :class:`~ecrcache.ports.ShardStore` (mixed into the status store: same table and client)."""

    table_name: str
    client: DynamoDBClient
    run_retention: timedelta
    sleep: Callable[[float], None]

    if TYPE_CHECKING:  # the status store's (this class is mixed into it)

        def _status_key(self, region: str) -> Item: ...

        def _stamp_update(self, region: str, stamp: RegionStamp) -> dict[str, Any]: ...

        def _update(self, request: Mapping[str, Any], *, refused_ok: bool = False) -> None: ...

        @staticmethod
        def _applied_items(items: Iterable[Mapping[str, Any]]) -> dict[str, AppliedFingerprints]: ...

    @staticmethod
    def _run_key(run_id: str) -> Item:
        return {"pk": _s(f"RUN#{run_id}"), "sk": _s("RUN")}

    # -- the coordinator ---------------------------------------------------------------------------

    def start_fanout(
        self,
        run: ReconcileRun,
        region: str,
        shards: Sequence[ShardRecord],
        *,
        deadline: datetime,
        prefixes: Collection[str] | None = None,
    ) -> FanoutMarker | None:
        marker = _marker_value(run, deadline, prefixes)
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._status_key(region),
                    "UpdateExpression": "SET #fan = :fan",
                    "ConditionExpression": "attribute_not_exists(#fan)",
                    "ExpressionAttributeNames": {"#fan": FANOUT_ATTRIBUTE},
                    "ExpressionAttributeValues": {":fan": marker},
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._run_key(run.run_id),
                    "UpdateExpression": (
                        "SET #coord = :one, #region = :n, #deadline = :deadline "
                        "ADD #total :n, #done :zero, #failed :zero, #retrying :zero"
                    ),
                    "ConditionExpression": "attribute_exists(pk) AND run_status = :running",
                    "ExpressionAttributeNames": {
                        "#coord": "sh_coord",
                        "#region": f"{REGION_SHARDS_PREFIX}{region}",
                        "#deadline": "sh_deadline",
                        "#total": COUNTS["total"],
                        "#done": COUNTS["done"],
                        "#failed": COUNTS["failed"],
                        "#retrying": COUNTS["retrying"],
                    },
                    "ExpressionAttributeValues": {
                        ":one": _n(1),
                        ":n": _n(len(shards)),
                        ":zero": _n(0),
                        ":deadline": _s(_iso(deadline)),
                        ":running": _s(RunStatus.RUNNING.value),
                    },
                }
            },
        ]
        if not self._transact(items, "start a fan-out"):
            held = self._marker_of(region)
            if held is None:  # cleared meanwhile, or the run is no longer running: said as the run's own
                return FanoutMarker(run_id=run.run_id, deadline=deadline, started_at=run.started_at)
            return held
        expires = _n(int((run.started_at + self.run_retention).timestamp()))
        requests: list[WriteRequestTypeDef] = [
            {"PutRequest": {"Item": self._shard_item(record, expires)}} for record in shards
        ]
        batch_write(self.client, self.table_name, requests, sleep=self.sleep)
        return None

    @staticmethod
    def _shard_item(record: ShardRecord, expires: AttributeValueTypeDef) -> Item:
        return {
            **_shard_key(record.run_id, record.region, record.index),
            "region": _s(record.region),
            "index": _n(record.index),
            "state": _s(record.state.value),
            "rules": _s(json.dumps(record.rules, sort_keys=True)),
            "expires_at": expires,
        }

    def _marker_of(self, region: str) -> FanoutMarker | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=self._status_key(region), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return fanout_marker(item) if item else None

    def close_fanout(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        update = {
            "TableName": self.table_name,
            "Key": self._run_key(run.run_id),
            "UpdateExpression": "SET #run = :run, #coord = :zero",
            "ConditionExpression": "run_status = :running",
            "ExpressionAttributeNames": {"#run": "run", "#coord": "sh_coord"},
            "ExpressionAttributeValues": {
                ":run": _s(run.model_copy(update={"status": RunStatus.RUNNING, "shards": None}).model_dump_json()),
                ":zero": _n(0),
                ":running": _s(RunStatus.RUNNING.value),
            },
        }
        stamp_updates = [self._stamp_update(region, stamp) for region, stamp in sorted(stamps.items())]
        items: list[Any] = [{"Update": update}, *({"Update": u} for u in stamp_updates)]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise classify(exc, "DynamoDB TransactWriteItems") from exc
            # One by one (as finish_run does): a refused stamp, or a run already settled, is left as it is.
            self._update(update, refused_ok=True)
            for stamp_update in stamp_updates:
                self._update(stamp_update, refused_ok=True)
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc

    # -- shards ------------------------------------------------------------------------------------

    def shard(self, run_id: str, region: str, index: int) -> ShardRecord | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=_shard_key(run_id, region, index), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return _record_of(item) if item else None

    def shard_records(self, run_id: str) -> list[ShardRecord]:
        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :shard)",
                ExpressionAttributeValues={":pk": _s(f"RUN#{run_id}"), ":shard": _s(SHARD_SORT_PREFIX)},
                ConsistentRead=True,
            )
            return [_record_of(item) for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc

    def report_shard(
        self,
        run_id: str,
        region: str,
        index: int,
        *,
        expected: ShardState | None,
        state: ShardState,
        report: ShardReport | None = None,
        error: str | None = None,
    ) -> bool:
        names = {"#state": "state"}
        values: Item = {":state": _s(state.value)}
        sets = ["#state = :state"]
        if expected is None:  # never recorded (the coordinator stopped before writing it): made, failed
            condition = "attribute_not_exists(pk)"
            names |= {"#region": "region", "#index": "index"}
            values |= {":region": _s(region), ":index": _n(index)}
            sets += ["#region = :region", "#index = :index"]
            if (expires := self._run_expiry(run_id)) is not None:  # it goes with its run (the table's TTL)
                values[":expires"] = expires
                sets.append("expires_at = :expires")
        else:
            condition = "#state = :expected"
            values[":expected"] = _s(expected.value)
        if state is ShardState.RETRYING:
            sets.append("retried = :yes")
            values[":yes"] = {"BOOL": True}
        if report is not None:
            sets.append("report = :report")
            values[":report"] = _s(report.model_dump_json())
        if error is not None:
            sets.append("#error = :error")
            names["#error"] = "error"
            values[":error"] = _s(error[:1024])
        adds, run_values = _counts_update(expected, state)
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": _shard_key(run_id, region, index),
                    "UpdateExpression": f"SET {', '.join(sets)}",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._run_key(run_id),
                    "UpdateExpression": f"ADD {', '.join(adds)}",
                    # A finished run's counts never move again: a late report is refused (the shard unchanged).
                    "ConditionExpression": "attribute_exists(pk) AND run_status = :running",
                    "ExpressionAttributeValues": {**run_values, ":running": _s(RunStatus.RUNNING.value)},
                }
            },
        ]
        return self._transact(items, "report a shard")

    def _run_expiry(self, run_id: str) -> AttributeValueTypeDef | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key=self._run_key(run_id), ProjectionExpression="expires_at"
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return item.get("expires_at") if item else None

    def _transact(self, items: list[Any], what: str) -> bool:
        """One transaction; ``False`` when a condition refused it. Sent again (same token) while it conflicts."""
        token = str(uuid.uuid4())
        delay = CONFLICT_BACKOFF_SECONDS
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                self.sleep(delay)
                delay *= 2
            try:
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=token)
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise classify(exc, f"DynamoDB TransactWriteItems ({what})") from exc
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                if any(code not in ("None", "TransactionConflict") for code in reasons):
                    found = ", ".join(code for code in reasons if code != "None")
                    raise RetryableError(
                        f"DynamoDB TransactWriteItems ({what}) was cancelled: {found}; try again"
                    ) from exc
                logger.info("transaction conflict; sent again", extra={"what": what, "attempt": attempt + 1})
                continue
            except BotoCoreError as exc:
                raise classify(exc, f"DynamoDB TransactWriteItems ({what})") from exc
            return True
        raise RetryableError(f"DynamoDB TransactWriteItems ({what}) kept conflicting with other writes; try again")

    # -- the run -----------------------------------------------------------------------------------

    def fanout_progress(self, run_id: str) -> FanoutProgress | None:
        try:
            item = self.client.get_item(TableName=self.table_name, Key=self._run_key(run_id), ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        if not item:
            return None
        regions = {
            name.removeprefix(REGION_SHARDS_PREFIX): int(value["N"])
            for name, value in item.items()
            if name.startswith(REGION_SHARDS_PREFIX)
        }
        return FanoutProgress(
            run=with_shard_counts(item),
            coordinating=_number(item, "sh_coord") > 0,
            deadline=parse_iso(item["sh_deadline"]["S"]) if "sh_deadline" in item else None,
            regions=regions,
        )

    def finish_fanout(self, run: ReconcileRun) -> bool:
        return conditional_update(
            self.client,
            {
                "TableName": self.table_name,
                "Key": self._run_key(run.run_id),
                "UpdateExpression": "SET #run = :run, run_status = :status",
                "ConditionExpression": "run_status = :running",
                "ExpressionAttributeNames": {"#run": "run"},
                "ExpressionAttributeValues": {
                    ":run": _s(run.model_dump_json()),
                    ":status": _s(run.status.value),
                    ":running": _s(RunStatus.RUNNING.value),
                },
            },
        )

    def clear_fanout(self, region: str, run_id: str) -> None:
        self._update(
            {
                "TableName": self.table_name,
                "Key": self._status_key(region),
                "UpdateExpression": "REMOVE #fan",
                "ConditionExpression": "#fan.#run = :run",
                "ExpressionAttributeNames": {"#fan": FANOUT_ATTRIBUTE, "#run": "run_id"},
                "ExpressionAttributeValues": {":run": _s(run_id)},
            },
            refused_ok=True,
        )

    # -- a shard's applied fingerprints ------------------------------------------------------------

    def applied_of(self, region: str, names: Collection[str]) -> dict[str, AppliedFingerprints]:
        keys: list[dict[str, AttributeValueTypeDef]] = [
            {"pk": _s(f"APPLIED#{region}"), "sk": _s(name)} for name in sorted(set(names))
        ]
        # Parsed as the Region's read parses them (the status store's): every attribute, the tag keys included.
        return self._applied_items(batch_get(self.client, self.table_name, keys, sleep=self.sleep))
