"""Warm runs, their images and the images' freshness, in the state table.

Items (``<set>`` a warm set's name, ``<key>`` an image's key in its run: ``<region>#<repository>:<tag>``
or ``<region>#<repository>@<digest>``)::

    pk = "WARMRUN#<set>"      sk = "<created_at ISO>#<run_id>"   run (WarmRun JSON: what does not change),
                                                                   run_status, total, done, warmed, fresh,
                                                                   skipped, failed, upstream_requests,
                                                                   stopped_upstreams? (SS: the workers' 429s),
                                                                   finished_at?, expires_at (+30 days)
    pk = "WARMIMG#<run_id>"   sk = "#RUN"                          warm_set, run_sk, planned, expires_at
    pk = "WARMIMG#<run_id>"   sk = "<key>"                         outcome (ImageOutcome JSON) once settled,
                                                                   task (WarmTask JSON) while pending,
                                                                   expires_at (+30 days)
    pk = "WARMED#<region>"    sk = "<repository>:<tag>"            digest, verified_at, platforms, expires_at (+2 days)
    pk = "WARMSCHED"          sk = "<set>"                         last_fire
    pk = "REQUEST#warm"       sk = "<run_id>"                      warm_set, requested_by, expires_at (+1 day);
                                                                   its stream INSERT triggers the planner

* A run's counters are top-level numbers, added to atomically: :meth:`record_outcome` puts the image's
  outcome (conditioned on the image having none yet: a redelivered task counts once) and adds to the
  counters in one transaction, then finishes the run with one conditional write when ``done`` reaches
  ``total`` (whichever worker gets there first; the status from the counts,
  :func:`ecrcache.engine.warm.finished_status`). The ``run`` JSON holds what never changes; reads put
  the counters back (the first worker outcome sets ``running``; planner-settled outcomes leave it ``queued``).
* The ``#RUN`` item (sorts before every ``<region>#...`` key) finds a run by its id: its sort key in the
  set's partition, and whether it is planned. Planning writes the images first (the settled outcomes,
  and every task to send, so that a redelivered plan sends the pending ones again instead of planning
  twice), then the run and ``planned`` in one transaction conditioned on the run not being planned. An
  interrupted planning's images are cleared before planning again.
* Freshness (``WARMED#``) keeps the newest verification only. Fire claims (``WARMSCHED``) only move
  forward, so a fire is claimed once whatever number of ticks see it.

No item holds a secret; every time is passed in (the store reads no clock).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import iso, parse_iso
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.adapters.status_store import BATCH_ATTEMPTS, BATCH_BACKOFF_MAX_SECONDS, BATCH_BACKOFF_SECONDS, BATCH_SIZE
from ecrcache.engine.warm import count_outcomes, finished_status
from ecrcache.errors import RetryableError
from ecrcache.models.warm_run import REQUEST_PARTITION, ImageOutcome, Outcome, RunStatus, WarmRun, WarmTask

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        TransactWriteItemTypeDef,
        WriteRequestTypeDef,
    )

RUN_RETENTION: Final = timedelta(days=30)
REQUEST_RETENTION: Final = timedelta(days=1)
VERIFIED_RETENTION: Final = timedelta(days=2)
RUN_POINTER: Final = "#RUN"
SCHEDULE_PARTITION: Final = "WARMSCHED"
BATCH_GET_SIZE: Final = 100
COUNTERS: Final = {
    Outcome.WARMED: "warmed",
    Outcome.FRESH: "fresh",
    Outcome.SKIPPED: "skipped",
    Outcome.FAILED: "failed",
}
"""The run item's counter of each outcome (``failed`` is the contract's)."""

Item = dict[str, "AttributeValueTypeDef"]


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _run_key(run: WarmRun) -> Item:
    return {"pk": _s(f"WARMRUN#{run.warm_set}"), "sk": _s(f"{iso(run.created_at)}#{run.run_id}")}


def _pointer_key(run_id: str) -> Item:
    return {"pk": _s(f"WARMIMG#{run_id}"), "sk": _s(RUN_POINTER)}


def _number(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    return int(value["N"]) if value else 0


def _run_of(item: Mapping[str, Any]) -> WarmRun:
    """A run item as a :class:`WarmRun`: the stored JSON with its counters and end put back."""
    run = WarmRun.model_validate_json(item["run"]["S"])
    counts = {outcome: _number(item, name) for outcome, name in COUNTERS.items() if _number(item, name)}
    finished = item.get("finished_at")
    stopped = set(run.stopped_upstreams) | set(item.get("stopped_upstreams", {}).get("SS", []))
    return run.model_copy(
        update={
            "status": RunStatus(item["run_status"]["S"]),
            "finished_at": parse_iso(finished["S"]) if finished else None,
            "total": _number(item, "total"),
            "counts": counts,
            "upstream_requests": _number(item, "upstream_requests"),
            "stopped_upstreams": tuple(sorted(stopped)),
        }
    )


class DynamoDbWarmRunStore:
    """Implements :class:`ecrcache.ports.WarmRunStore` on the stack's state table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.sleep = sleep

    # -- writing runs --------------------------------------------------------------------------

    def _run_item(self, run: WarmRun, outcomes: Sequence[ImageOutcome] = ()) -> Item:
        counts = count_outcomes(outcomes)
        static = run.model_copy(update={"counts": {}, "status": RunStatus.QUEUED, "finished_at": None})
        item: Item = {
            **_run_key(run),
            "run_id": _s(run.run_id),
            "run": _s(static.model_dump_json()),
            "run_status": _s(run.status.value),
            "total": _n(run.total),
            "done": _n(sum(counts.values())),
            "upstream_requests": _n(run.upstream_requests),
            "expires_at": _n(_epoch(run.created_at + RUN_RETENTION)),
        }
        for outcome, name in COUNTERS.items():
            item[name] = _n(counts.get(outcome, 0))
        if run.finished_at is not None:
            item["finished_at"] = _s(iso(run.finished_at))
        return item

    def _pointer(self, run: WarmRun, *, planned: bool) -> Item:
        return {
            **_pointer_key(run.run_id),
            "warm_set": _s(run.warm_set),
            "run_sk": _run_key(run)["sk"],
            "planned": {"BOOL": planned},
            "expires_at": _n(_epoch(run.created_at + RUN_RETENTION)),
        }

    def request_run(self, run: WarmRun) -> None:
        """The run (``queued``), its id, and the request the planner's stream picks up, in one transaction."""
        request: Item = {
            "pk": _s(REQUEST_PARTITION),
            "sk": _s(run.run_id),
            "warm_set": _s(run.warm_set),
            "requested_by": _s(run.requested_by or "unknown"),
            "expires_at": _n(_epoch(run.created_at + REQUEST_RETENTION)),
        }
        new = "attribute_not_exists(pk)"
        self._transact(
            [
                {"Put": {"TableName": self.table_name, "Item": self._run_item(run), "ConditionExpression": new}},
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._pointer(run, planned=False),
                        "ConditionExpression": new,
                    }
                },
                {"Put": {"TableName": self.table_name, "Item": request, "ConditionExpression": new}},
            ]
        )

    def create_run(self, run: WarmRun, outcomes: Sequence[ImageOutcome], tasks: Sequence[WarmTask] = ()) -> bool:
        """Images first (settled outcomes and pending tasks), then the run and ``planned`` atomically."""
        pointer = self._get(_pointer_key(run.run_id))
        if pointer is not None and pointer.get("planned", {}).get("BOOL"):
            return False
        # Images of a planning interrupted before the run was recorded (an empty Query for a new run).
        self._batch_write(
            [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in self._images(run.run_id)]
        )
        expires = _n(_epoch(run.created_at + RUN_RETENTION))
        images: list[WriteRequestTypeDef] = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": _s(f"WARMIMG#{run.run_id}"),
                        "sk": _s(o.key),
                        "outcome": _s(o.model_dump_json()),
                        "expires_at": expires,
                    }
                }
            }
            for o in outcomes
        ]
        images += [
            {
                "PutRequest": {
                    "Item": {
                        "pk": _s(f"WARMIMG#{run.run_id}"),
                        "sk": _s(t.key),
                        "task": _s(t.model_dump_json()),
                        "expires_at": expires,
                    }
                }
            }
            for t in tasks
        ]
        self._batch_write(images)
        try:
            self._transact(
                [
                    {"Put": {"TableName": self.table_name, "Item": self._run_item(run, outcomes)}},
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": self._pointer(run, planned=True),
                            "ConditionExpression": "attribute_not_exists(pk) OR planned = :no",
                            "ExpressionAttributeValues": {":no": {"BOOL": False}},
                        }
                    },
                ],
                conflicts=True,
            )
        except _Cancelled:
            return False
        return True

    def record_outcome(
        self, run_id: str, warm_set: str, outcome: ImageOutcome, *, stopped_upstream: str | None = None
    ) -> WarmRun | None:
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or not pointer.get("planned", {}).get("BOOL"):
            return None  # unknown (expired), or not planned: no task of it can have been sent
        key: Item = {"pk": _s(f"WARMRUN#{warm_set}"), "sk": pointer["run_sk"]}
        image: Item = {
            "pk": _s(f"WARMIMG#{run_id}"),
            "sk": _s(outcome.key),
            "outcome": _s(outcome.model_dump_json()),
            "expires_at": pointer["expires_at"],
        }
        values: Item = {
            ":one": _n(1),
            ":spent": _n(outcome.upstream_requests),
            ":running": _s(RunStatus.RUNNING.value),
        }
        stopped = ""
        if stopped_upstream is not None:  # the planner's stops are in the run JSON, the workers' in this set
            stopped, values[":stopped"] = ", stopped_upstreams :stopped", {"SS": [stopped_upstream]}
        # A failed condition: recorded already (a redelivered task), or the run finished or expired: count nothing.
        with contextlib.suppress(_Cancelled):
            self._transact(
                [
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": image,
                            "ConditionExpression": "attribute_not_exists(outcome)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": key,
                            "UpdateExpression": f"ADD done :one, {COUNTERS[outcome.outcome]} :one, "
                            f"upstream_requests :spent{stopped} SET run_status = :running",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(finished_at)",
                            "ExpressionAttributeValues": values,
                        }
                    },
                ],
                conflicts=True,
            )
        return self._finish_if_done(key, at=outcome.finished_at)

    def _finish_if_done(self, key: Item, *, at: datetime) -> WarmRun | None:
        """The run as it is; finished (once, by whoever gets there first) when every image has an outcome."""
        for _ in range(BATCH_ATTEMPTS):
            item = self._get(key)
            if item is None:
                return None
            run = _run_of(item)
            if run.finished_at is not None or run.done < run.total:
                return run
            status = finished_status(run.counts)
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET run_status = :status, finished_at = :at",
                    ConditionExpression="attribute_not_exists(finished_at)",
                    ExpressionAttributeValues={":status": _s(status.value), ":at": _s(iso(at))},
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise classify(exc, "DynamoDB UpdateItem") from exc
                continue  # another worker finished it: read its answer
            except BotoCoreError as exc:
                raise classify(exc, "DynamoDB UpdateItem") from exc
            return run.model_copy(update={"status": status, "finished_at": at})
        # Reached only if the run kept being finished by others and read back unfinished: a broken table.
        msg = "a warm run could not be read back after finishing it; try again"
        raise RetryableError(msg)

    # -- reading runs --------------------------------------------------------------------------

    def get_run(self, warm_set: str, run_id: str) -> WarmRun | None:
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or pointer["warm_set"]["S"] != warm_set:
            return None
        item = self._get({"pk": _s(f"WARMRUN#{warm_set}"), "sk": pointer["run_sk"]})
        return _run_of(item) if item is not None else None

    def latest_run(self, warm_set: str) -> WarmRun | None:
        try:
            out = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": _s(f"WARMRUN#{warm_set}")},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        items = out.get("Items", [])
        return _run_of(items[0]) if items else None

    def outcomes(self, run_id: str) -> list[ImageOutcome]:
        """The run's images with an outcome, by key (pending ones are not listed)."""
        return [ImageOutcome.model_validate_json(i["outcome"]["S"]) for i in self._images(run_id) if "outcome" in i]

    def outcome(self, run_id: str, key: str) -> ImageOutcome | None:
        """One image's outcome in the run (``None``: pending, or not in the run) -- one consistent read."""
        item = self._get({"pk": _s(f"WARMIMG#{run_id}"), "sk": _s(key)})
        return (
            ImageOutcome.model_validate_json(item["outcome"]["S"]) if item is not None and "outcome" in item else None
        )

    def pending_tasks(self, run_id: str) -> list[WarmTask] | None:
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or not pointer.get("planned", {}).get("BOOL"):
            return None
        return [
            WarmTask.model_validate_json(i["task"]["S"])
            for i in self._images(run_id)
            if "task" in i and "outcome" not in i
        ]

    def _images(self, run_id: str) -> list[dict[str, Any]]:
        return [i for i in self._query(f"WARMIMG#{run_id}") if i["sk"]["S"] != RUN_POINTER]

    # -- freshness -----------------------------------------------------------------------------

    def verified(self, region: str, references: Collection[str]) -> dict[str, datetime]:
        keys = [{"pk": _s(f"WARMED#{region}"), "sk": _s(r)} for r in dict.fromkeys(references)]
        found: dict[str, datetime] = {}
        for start in range(0, len(keys), BATCH_GET_SIZE):
            for item in self._batch_get(keys[start : start + BATCH_GET_SIZE]):
                found[item["sk"]["S"]] = parse_iso(item["verified_at"]["S"])
        return found

    def record_verified(
        self, region: str, reference: str, *, digest: str, platforms: Sequence[str], at: datetime
    ) -> None:
        """Record a verification unless a newer one is recorded (workers finish in any order)."""
        item: Item = {
            "pk": _s(f"WARMED#{region}"),
            "sk": _s(reference),
            "digest": _s(digest),
            "verified_at": _s(iso(at)),
            "expires_at": _n(_epoch(at + VERIFIED_RETENTION)),
        }
        if platforms:
            item["platforms"] = {"SS": sorted(set(platforms))}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(verified_at) OR verified_at <= :at",
                ExpressionAttributeValues={":at": _s(iso(at))},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise classify(exc, "DynamoDB PutItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB PutItem") from exc

    # -- scheduled fires -----------------------------------------------------------------------

    def claim_fire(self, warm_set: str, fire: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(SCHEDULE_PARTITION), "sk": _s(warm_set)},
                UpdateExpression="SET last_fire = :fire",
                ConditionExpression="attribute_not_exists(last_fire) OR last_fire < :fire",
                ExpressionAttributeValues={":fire": _s(iso(fire))},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "DynamoDB UpdateItem") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

    def last_fires(self) -> dict[str, datetime]:
        return {
            i["sk"]["S"]: parse_iso(i["last_fire"]["S"]) for i in self._query(SCHEDULE_PARTITION) if "last_fire" in i
        }

    # -- helpers -------------------------------------------------------------------------------

    def _get(self, key: Item) -> dict[str, Any] | None:
        try:
            found = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return dict(found) if found else None

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("query")
        try:
            for page in paginator.paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s(pk)},
                ConsistentRead=True,
            ):
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc

    def _transact(self, items: list[TransactWriteItemTypeDef], *, conflicts: bool = False) -> None:
        """One transaction; with ``conflicts``, a failed condition raises :class:`_Cancelled` (the caller's
        answer), anything else a classified error."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = [
                str(r.get("Code")) for r in cast("list[dict[str, Any]]", exc.response.get("CancellationReasons", []))
            ]
            if conflicts and error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
                raise _Cancelled from exc
            raise classify(exc, "DynamoDB TransactWriteItems") from exc
        except BotoCoreError as exc:
            raise classify(exc, "DynamoDB TransactWriteItems") from exc

    def _batch_write(self, requests: Sequence[WriteRequestTypeDef]) -> None:
        for start in range(0, len(requests), BATCH_SIZE):
            pending = list(requests[start : start + BATCH_SIZE])
            delay = BATCH_BACKOFF_SECONDS
            for attempt in range(BATCH_ATTEMPTS):
                if attempt:
                    self.sleep(delay)
                    delay = min(delay * 2, BATCH_BACKOFF_MAX_SECONDS)
                try:
                    out = self.client.batch_write_item(RequestItems={self.table_name: pending})
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, "DynamoDB BatchWriteItem") from exc
                pending = cast("list[WriteRequestTypeDef]", out.get("UnprocessedItems", {}).get(self.table_name, []))
                if not pending:
                    break
            else:
                msg = f"DynamoDB BatchWriteItem left {len(pending)} items unprocessed after {BATCH_ATTEMPTS} attempts"
                raise RetryableError(msg)

    def _batch_get(self, keys: list[Item]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending: KeysAndAttributesTypeDef = {"Keys": keys, "ConsistentRead": True}
        delay = BATCH_BACKOFF_SECONDS
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                self.sleep(delay)
                delay = min(delay * 2, BATCH_BACKOFF_MAX_SECONDS)
            try:
                out = self.client.batch_get_item(RequestItems={self.table_name: pending})
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "DynamoDB BatchGetItem") from exc
            found += out.get("Responses", {}).get(self.table_name, [])
            unprocessed = out.get("UnprocessedKeys", {}).get(self.table_name)
            if not unprocessed or not unprocessed.get("Keys"):
                return found
            pending = cast("KeysAndAttributesTypeDef", unprocessed)
        msg = f"DynamoDB BatchGetItem left keys unprocessed after {BATCH_ATTEMPTS} attempts"
        raise RetryableError(msg)


class _Cancelled(Exception):
    """A transaction's condition failed (the caller decides what that means)."""
