"""Warm runs, their images and the images' freshness, in the state table.

Items (``<set>`` a warm set's name, ``<key>`` an image's key in its run: ``<region>#<repository>:<tag>``
or ``<region>#<repository>@<digest>``)::

    pk = "WARMRUN#<set>"      sk = "<created_at ISO>#<run_id>"   run (WarmRun JSON: what does not change),
                                                                   run_status, total, done, warmed, fresh,
                                                                   skipped, failed, upstream_requests,
                                                                   stopped_upstreams? (SS: the workers' 429s),
                                                                   finished_at?, expires_at (+30 days);
                                                                   announced? (Warm Run Finished put on the bus);
                                                                   until announced: gsi1pk = "WARMRUN-OPEN",
                                                                   gsi1sk = "<deadline ISO>#<run_id>" (once
                                                                   finished: "<finished_at ISO>#<run_id>")
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
* Transactions on one run's item meet (up to 5 workers record its images at once): a cancellation whose
  reasons are only transient (``TransactionConflict``, throttling; the ``CancellationReasons`` are in the
  order of the transaction's items, DynamoDB API reference, TransactionCanceledException) is tried again
  with backoff, as is the finishing ``UpdateItem`` refused with ``TransactionConflictException`` (an
  item in another transaction; botocore does not retry either). Nothing a transaction writes comes from a
  read, and DynamoDB evaluates its conditions again, so a retry is the same request.
* Unfinished runs are listed by their deadline (:func:`ecrcache.models.warm_run.run_deadline`) through
  ``gsi1`` (shared with the history, ``gsi1pk = "HISTORY"``, and the reconcile runs, ``"RUN"``: told apart
  by ``gsi1pk``); finishing a run moves its ``gsi1sk`` to its end, and announcing it (``announced``, set by
  :meth:`mark_announced` once its Warm Run Finished event was sent) removes its ``gsi1`` keys, so the planner's
  tick reads only open runs and finished runs whose announcement was lost (:mod:`ecrcache.services.warm_finished`).
* Freshness (``WARMED#``) keeps the newest verification only. Fire claims (``WARMSCHED``) only move
  forward, so a fire is claimed once whatever number of ticks see it.

No item holds a secret; every time is passed in (the store reads no clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, dynamodb_client, error_code
from ecrcache.adapters.dynamodb_codec import (
    BATCH_ATTEMPTS,
    BATCH_BACKOFF_MAX_SECONDS,
    BATCH_BACKOFF_SECONDS,
    batch_get,
    batch_write,
    iso,
    parse_iso,
    query_partition,
)
from ecrcache.adapters.dynamodb_codec import n as _n
from ecrcache.adapters.dynamodb_codec import s as _s
from ecrcache.engine.warm import count_outcomes, finished_status
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.warm_run import (
    REQUEST_PARTITION,
    ImageOutcome,
    Outcome,
    RunStatus,
    WarmRun,
    WarmTask,
    run_deadline,
)
from ecrcache.ports import RecordedOutcomes

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
        WriteRequestTypeDef,
    )

RUN_RETENTION: Final = timedelta(days=30)
REQUEST_RETENTION: Final = timedelta(days=1)
VERIFIED_RETENTION: Final = timedelta(days=2)
RUN_POINTER: Final = "#RUN"
SCHEDULE_PARTITION: Final = "WARMSCHED"
BATCH_GET_SIZE: Final = 100
OPEN_RUNS: Final = "WARMRUN-OPEN"
"""``gsi1pk`` of every run not announced yet (removed once its Warm Run Finished event is sent)."""
INDEX: Final = "gsi1"
TRANSACTION_MAX: Final = 100
"""Actions in one TransactWriteItems (DynamoDB's limit)."""
RETRY_REASONS: Final = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
"""Cancellation reasons another attempt can clear (as in ``pull_stats_store``; a failed condition is an answer)."""
CONDITION_FAILED: Final = "ConditionalCheckFailed"
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


def _static(run: WarmRun) -> str:
    """The ``run`` attribute: the run's JSON without what its item's own attributes hold."""
    return run.model_copy(update={"counts": {}, "status": RunStatus.QUEUED, "finished_at": None}).model_dump_json()


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
            "announced": "announced" in item,
        }
    )


def _count(
    table_name: str, key: Item, outcomes: Sequence[ImageOutcome], stopped_upstream: str | None = None
) -> TransactWriteItemTypeDef:
    """The run's counters for ``outcomes``, conditioned on the run being there and unfinished."""
    values: Item = {
        ":done": _n(len(outcomes)),
        ":spent": _n(sum(o.upstream_requests for o in outcomes)),
        ":running": _s(RunStatus.RUNNING.value),
    }
    adds = ["done :done", "upstream_requests :spent"]
    if stopped_upstream is not None:  # the planner's stops are in the run JSON, the workers' in this set
        adds.append("stopped_upstreams :stopped")
        values[":stopped"] = {"SS": [stopped_upstream]}
    for outcome, count in count_outcomes(outcomes).items():
        name = COUNTERS[outcome]
        adds.append(f"{name} :{name}")
        values[f":{name}"] = _n(count)
    return {
        "Update": {
            "TableName": table_name,
            "Key": key,
            "UpdateExpression": f"ADD {', '.join(adds)} SET run_status = :running",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(finished_at)",
            "ExpressionAttributeValues": values,
        }
    }


class _StateTable:
    """The state table's calls as the warm run store makes them: classified failures, bounded retries."""

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

    def _get(self, key: Item) -> dict[str, Any] | None:
        try:
            found = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB GetItem") from exc
        return dict(found) if found else None

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        return query_partition(self.client, self.table_name, pk)

    def _transact(self, items: list[TransactWriteItemTypeDef], *, conflicts: bool = False) -> None:
        """One transaction, tried again with backoff while only transient reasons cancel it (see the module).

        With ``conflicts``, a failed condition raises :class:`_Cancelled` carrying the per-item reasons (the
        caller's answer); without, it is a :class:`TerminalError`. Anything else is classified."""
        delay = BATCH_BACKOFF_SECONDS
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                self.sleep(delay)
                delay = min(delay * 2, BATCH_BACKOFF_MAX_SECONDS)
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise classify(exc, "DynamoDB TransactWriteItems") from exc
                reasons = [
                    str(r.get("Code"))
                    for r in cast("list[dict[str, Any]]", exc.response.get("CancellationReasons") or [])
                ]
                if conflicts and CONDITION_FAILED in reasons:
                    raise _Cancelled(reasons) from exc
                named = set(reasons) - {"None"}
                if named and named <= RETRY_REASONS:
                    continue
                why = ", ".join(sorted(named)) or "no reason given"
                raise TerminalError(f"DynamoDB TransactWriteItems was cancelled: {why}", reason=why) from exc
            except BotoCoreError as exc:
                raise classify(exc, "DynamoDB TransactWriteItems") from exc
            return
        msg = f"DynamoDB TransactWriteItems was cancelled {BATCH_ATTEMPTS} times by concurrent writes; try again"
        raise RetryableError(msg, reason="TransactionCanceledException")

    def _batch_write(self, requests: Sequence[WriteRequestTypeDef]) -> None:
        batch_write(self.client, self.table_name, requests, sleep=self.sleep)

    def _batch_get(self, keys: list[Item]) -> list[dict[str, Any]]:
        return batch_get(self.client, self.table_name, keys, sleep=self.sleep)


class DynamoDbWarmRunStore(_StateTable):
    """Implements :class:`ecrcache.ports.WarmRunStore` on the stack's state table."""

    # -- writing runs --------------------------------------------------------------------------

    def _run_item(self, run: WarmRun, outcomes: Sequence[ImageOutcome] = ()) -> Item:
        counts = count_outcomes(outcomes)
        item: Item = {
            **_run_key(run),
            "run_id": _s(run.run_id),
            "run": _s(_static(run)),
            "run_status": _s(run.status.value),
            "total": _n(run.total),
            "done": _n(sum(counts.values())),
            "upstream_requests": _n(run.upstream_requests),
            "expires_at": _n(_epoch(run.created_at + RUN_RETENTION)),
        }
        for outcome, name in COUNTERS.items():
            item[name] = _n(counts.get(outcome, 0))
        # Listed until announced: the tick settles it past its deadline, or announces it once finished.
        item["gsi1pk"] = _s(OPEN_RUNS)
        item["gsi1sk"] = _s(f"{iso(run_deadline(run))}#{run.run_id}")
        if run.finished_at is not None:
            item["finished_at"] = _s(iso(run.finished_at))
            item["gsi1sk"] = _s(f"{iso(run.finished_at)}#{run.run_id}")
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
    ) -> RecordedOutcomes:
        return self.record_outcomes(run_id, warm_set, [outcome], stopped_upstream=stopped_upstream)

    def record_outcomes(
        self, run_id: str, warm_set: str, outcomes: Sequence[ImageOutcome], *, stopped_upstream: str | None = None
    ) -> RecordedOutcomes:
        """Each image's outcome (conditioned on it having none) and the run's counters, in transactions of up
        to 99 images; then the run finished if that was its last image. An image another call recorded first
        is left out (its reason in the cancellation) and the rest tried again; a run finished or gone counts
        nothing more. ``stopped_upstream`` (a worker's 429) joins the run's ``stopped_upstreams`` set."""
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or pointer["warm_set"]["S"] != warm_set or not pointer.get("planned", {}).get("BOOL"):
            return RecordedOutcomes(frozenset(), None)  # unknown (expired), or not planned: no task was sent
        key: Item = {"pk": _s(f"WARMRUN#{warm_set}"), "sk": pointer["run_sk"]}
        pending = list({o.key: o for o in outcomes}.values())
        recorded: set[str] = set()
        while pending:
            chunk = pending[: TRANSACTION_MAX - 1]
            puts = [self._outcome_put(run_id, o, pointer["expires_at"]) for o in chunk]
            try:
                self._transact([*puts, _count(self.table_name, key, chunk, stopped_upstream)], conflicts=True)
            except _Cancelled as cancelled:
                if cancelled.failed(len(chunk)):
                    break  # the run finished (its deadline) or is gone: nothing more counts
                taken = {o.key for i, o in enumerate(chunk) if cancelled.failed(i)}
                if not taken:  # reasons not in the items' order (DynamoDB documents that they are)
                    raise TerminalError(f"DynamoDB TransactWriteItems was cancelled: {cancelled}") from cancelled
                pending = [o for o in pending if o.key not in taken]  # recorded by another delivery
                continue
            recorded.update(o.key for o in chunk)
            pending = pending[len(chunk) :]
        at = max((o.finished_at for o in outcomes), default=None)
        run, finished = self._finish_if_done(key, at=at) if at is not None else (None, False)
        return RecordedOutcomes(frozenset(recorded), run, finished)

    def _outcome_put(
        self, run_id: str, outcome: ImageOutcome, expires: AttributeValueTypeDef
    ) -> TransactWriteItemTypeDef:
        image: Item = {
            "pk": _s(f"WARMIMG#{run_id}"),
            "sk": _s(outcome.key),
            "outcome": _s(outcome.model_dump_json()),
            "expires_at": expires,
        }
        return {
            "Put": {"TableName": self.table_name, "Item": image, "ConditionExpression": "attribute_not_exists(outcome)"}
        }

    def finish_if_done(self, warm_set: str, run_id: str, *, at: datetime, force: bool = False) -> RecordedOutcomes:
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or pointer["warm_set"]["S"] != warm_set:
            return RecordedOutcomes(frozenset(), None)
        key: Item = {"pk": _s(f"WARMRUN#{warm_set}"), "sk": pointer["run_sk"]}
        if not pointer.get("planned", {}).get("BOOL"):
            item = self._get(key)  # queued: nothing to finish before it is planned
            return RecordedOutcomes(frozenset(), _run_of(item) if item is not None else None)
        run, finished = self._finish_if_done(key, at=at, force=force)
        return RecordedOutcomes(frozenset(), run, finished)

    def _finish_if_done(self, key: Item, *, at: datetime, force: bool = False) -> tuple[WarmRun | None, bool]:
        """The run as it is; finished (once, by whoever gets there first: its write is conditioned on the run
        having no ``finished_at``) when every image has an outcome (or ``force``): its status from its counts,
        its ``gsi1`` keys removed (no longer open). ``True`` with it only for the call whose write finished it."""
        delay = BATCH_BACKOFF_SECONDS
        for _ in range(BATCH_ATTEMPTS):
            item = self._get(key)
            if item is None:
                return None, False
            run = _run_of(item)
            if run.finished_at is not None or (run.done < run.total and not force):
                return run, False
            status = finished_status(run.counts)
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET run_status = :status, finished_at = :at, gsi1sk = :due",
                    ConditionExpression="attribute_not_exists(finished_at)",
                    ExpressionAttributeValues={
                        ":status": _s(status.value),
                        ":at": _s(iso(at)),
                        ":due": _s(f"{iso(at)}#{run.run_id}"),
                    },
                )
            except ClientError as exc:
                code = error_code(exc)
                if code == "TransactionConflictException":  # a worker's transaction on the run item: wait
                    self.sleep(delay)
                    delay = min(delay * 2, BATCH_BACKOFF_MAX_SECONDS)
                    continue
                if code != "ConditionalCheckFailedException":
                    raise classify(exc, "DynamoDB UpdateItem") from exc
                continue  # another worker finished it: read its answer
            except BotoCoreError as exc:
                raise classify(exc, "DynamoDB UpdateItem") from exc
            return run.model_copy(update={"status": status, "finished_at": at}), True
        msg = f"a warm run could not be finished in {BATCH_ATTEMPTS} attempts (concurrent transactions); try again"
        raise RetryableError(msg, reason="TransactionConflictException")

    def fail_unplanned(self, warm_set: str, run_id: str, *, message: str, at: datetime) -> WarmRun | None:
        """The run ``failed`` with ``message``, conditioned on it being unfinished and its pointer unplanned."""
        pointer = self._get(_pointer_key(run_id))
        if pointer is None or pointer["warm_set"]["S"] != warm_set or pointer.get("planned", {}).get("BOOL"):
            return None
        key: Item = {"pk": _s(f"WARMRUN#{warm_set}"), "sk": pointer["run_sk"]}
        item = self._get(key)
        if item is None or "finished_at" in item:
            return None
        failed = _run_of(item).model_copy(update={"status": RunStatus.FAILED, "finished_at": at, "message": message})
        try:
            self._transact(
                [
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": _pointer_key(run_id),
                            "ConditionExpression": "planned = :no",
                            "ExpressionAttributeValues": {":no": {"BOOL": False}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": key,
                            "UpdateExpression": "SET #run = :run, run_status = :failed, finished_at = :at, "
                            "gsi1sk = :due",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(finished_at)",
                            "ExpressionAttributeNames": {"#run": "run"},
                            "ExpressionAttributeValues": {
                                ":run": _s(_static(failed)),
                                ":failed": _s(RunStatus.FAILED.value),
                                ":at": _s(iso(at)),
                                ":due": _s(f"{iso(at)}#{run_id}"),
                            },
                        }
                    },
                ],
                conflicts=True,
            )
        except _Cancelled:
            return None  # planned or finished meanwhile
        return failed

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

    def overdue_runs(self, now: datetime, *, limit: int) -> list[WarmRun]:
        """Open runs (``gsi1pk = WARMRUN-OPEN``) whose deadline is before ``now``, earliest first (the index
        is eventually consistent: a run finished a moment ago may still be listed; settling it is a no-op)."""
        try:
            out = self.client.query(
                TableName=self.table_name,
                IndexName=INDEX,
                KeyConditionExpression="gsi1pk = :open AND gsi1sk < :now",
                ExpressionAttributeValues={":open": _s(OPEN_RUNS), ":now": _s(iso(now))},
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "DynamoDB Query") from exc
        return [_run_of(i) for i in out.get("Items", []) if "run" in i and "announced" not in i]

    def mark_announced(self, run: WarmRun) -> bool:
        """``announced`` set on the finished run and its ``gsi1`` keys removed (no longer listed by the tick)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_run_key(run),
                UpdateExpression="SET announced = :yes REMOVE gsi1pk, gsi1sk",
                ConditionExpression="attribute_exists(finished_at) AND attribute_not_exists(announced)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) == "ConditionalCheckFailedException":
                return False  # announced by another call first (or unfinished, or gone)
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

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
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and error_code(exc) == "ConditionalCheckFailedException":
                return False  # announced by another call first (or unfinished, or gone)
            raise classify(exc, "DynamoDB UpdateItem") from exc
        return True

    def last_fires(self) -> dict[str, datetime]:
        return {
            i["sk"]["S"]: parse_iso(i["last_fire"]["S"]) for i in self._query(SCHEDULE_PARTITION) if "last_fire" in i
        }


class _Cancelled(Exception):
    """A transaction's condition failed (the caller decides what that means): ``reasons`` in item order."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = tuple(reasons)

    def failed(self, index: int) -> bool:
        """Whether the condition of the transaction's ``index``-th item failed."""
        return index < len(self.reasons) and self.reasons[index] == CONDITION_FAILED
