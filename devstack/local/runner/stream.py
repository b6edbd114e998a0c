"""DynamoDB streams, delivered as Lambda's event source mapping delivers them (see the package docstring).

:class:`StreamDelivery` positions each stream source's shards at :meth:`~StreamDelivery.setup`, then
:meth:`~StreamDelivery.run` discovers shards and runs one worker thread per shard: read, filter, batch,
invoke, retry (bisecting, partial batch responses), and the on-failure record when retries run out.
"""

from __future__ import annotations

import base64
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from devstack.local.invoke import FunctionError, InvokeError
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Runtime, Stopped, error_text, iso, records_text, seconds_text
from devstack.local.runner.plan import StreamSource

__all__ = ["Shard", "StreamDelivery"]

_GET_RECORDS_LIMIT: Final = 1000
# GetRecords errors after which the iterator is replaced (an iterator that can never work again).
_REPOSITION_ERRORS: Final = frozenset({"ExpiredIteratorException", "TrimmedDataAccessException"})


@dataclass
class Shard:
    """One shard being read: its iterator, the records read but not yet delivered, its progress."""

    key: str
    shard_id: str
    iterator: str | None
    start_type: str
    # LATEST shards: when setup() took the first iterator (epoch seconds), for re-positioning.
    since: float | None = None
    last_read: str | None = None
    # Records created before this (epoch seconds) are skipped: a LATEST shard re-read from TRIM_HORIZON.
    not_before: int | None = None
    buffer: deque[tuple[dict[str, Any], float]] = field(default_factory=deque)
    retired: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _lambda_json(value: Any) -> Any:
    """botocore's parsed AttributeValues back to DynamoDB JSON as Lambda delivers it (binary as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _lambda_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_lambda_json(v) for v in value]
    return value


def _epoch_seconds(value: Any) -> int | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


class StreamDelivery:
    """Every enabled ``DynamoDB`` event: shard discovery, one ordered worker per shard, retries, on-failure."""

    def __init__(self, runtime: Runtime, aws: Aws) -> None:
        self.runtime = runtime
        self.aws = aws
        self._lock = threading.Lock()
        # stream source key -> shard key -> (iterator positioned by setup(), when it was taken)
        self._positions: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}

    def setup(self, source: StreamSource) -> None:
        key = (source.function, source.event)
        with self._lock:
            positions = self._positions.setdefault(key, {})
        label, shards = self._describe(source.stream_arn)
        for shard in shards:
            shard_key = f"{label}/{shard['ShardId']}"
            if shard_key in positions:
                continue
            taken = time.time()
            iterator = self.aws.streams.get_shard_iterator(
                StreamArn=source.stream_arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="LATEST" if source.starting_position == "LATEST" else "TRIM_HORIZON",
            )["ShardIterator"]
            positions[shard_key] = (iterator, taken)

    def _describe(self, arn: str) -> tuple[str, list[dict[str, Any]]]:
        shards: list[dict[str, Any]] = []
        label = ""
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            description = self.aws.streams.describe_stream(**kwargs)["StreamDescription"]
            label = str(description.get("StreamLabel", ""))
            shards.extend(dict(s) for s in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return label, shards
            kwargs["ExclusiveStartShardId"] = last

    def run(self, source: StreamSource) -> None:
        """Discover shards (new, closed, a recreated table) and run one worker per shard."""
        known: dict[str, Shard] = {}
        discovery = max(1.0, self.runtime.poll_interval * 5)
        failures = 0
        while not self.runtime.stopped():
            try:
                self._discover(source, known)
                failures = 0
            except Stopped:
                return
            except Exception as exc:  # e.g. the table was deleted: keep the shards known, try again
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self.runtime.log(f"{source.label} (DynamoDB): {error_text(exc)}; retrying")
                self.runtime.sleep(self.runtime.backoff(failures))
                continue
            self.runtime.wait(discovery)

    def _discover(self, source: StreamSource, known: dict[str, Shard]) -> None:
        key = (source.function, source.event)
        label, shards = self._describe(source.stream_arn)
        current = {f"{label}/{s['ShardId']}": s for s in shards}
        for shard_key, state in known.items():
            if shard_key not in current:
                state.retired = True
        for shard_key, shard in current.items():
            if shard_key in known:
                continue
            with self._lock:
                position = self._positions.get(key, {}).pop(shard_key, None)
            iterator, since = position if position is not None else (None, None)
            start_type = source.starting_position if iterator is not None else "TRIM_HORIZON"
            state = Shard(
                key=shard_key,
                shard_id=str(shard["ShardId"]),
                iterator=iterator,
                start_type=start_type,
                since=since if start_type == "LATEST" else None,
            )
            if iterator is None:  # a shard that appeared after setup(): read all of it
                state.iterator = self._position(source, state)
            parent_key = f"{label}/{shard.get('ParentShardId')}" if shard.get("ParentShardId") else None
            known[shard_key] = state
            self.runtime.spawn(
                f"stream {source.label} {state.shard_id}", self._shard_loop, source, state, known.get(parent_key or "")
            )
        for shard_key in [k for k, s in known.items() if s.done.is_set() and k not in current]:
            del known[shard_key]

    def _position(self, source: StreamSource, shard: Shard) -> str | None:
        """A new iterator for ``shard``: after the last record read, else at its original position.

        A LATEST shard that has read nothing yet cannot ask for "LATEST as of setup()" again: it is
        read from TRIM_HORIZON, skipping records created before the (whole) second setup() positioned it in.
        """
        kwargs: dict[str, Any] = {"StreamArn": source.stream_arn, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_read}
        elif shard.start_type == "LATEST" and shard.since is not None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            shard.not_before = math.floor(shard.since)
        else:
            kwargs["ShardIteratorType"] = shard.start_type
        response = self.runtime.call(
            f"{source.label} (DynamoDB): shard iterator", lambda: self.aws.streams.get_shard_iterator(**kwargs)
        )
        iterator = response.get("ShardIterator")
        return str(iterator) if iterator else None

    def _shard_loop(self, source: StreamSource, shard: Shard, parent: Shard | None) -> None:
        """Deliver one shard in order until it is closed (or retired) and drained; never dies on an error."""
        while parent is not None and not parent.done.is_set():
            self.runtime.sleep(self.runtime.poll_interval)
        failures = 0
        while not self.runtime.stopped():
            if (shard.iterator is None or shard.retired) and not shard.buffer:
                shard.done.set()  # closed (or gone) and everything in it was delivered
                return
            try:
                progressed = self._shard_step(source, shard)
                failures = 0
            except Stopped:
                return
            except Exception as exc:
                failures += 1
                delay = self.runtime.backoff(failures)
                if failures == 1 or failures % 10 == 0:
                    self.runtime.log(f"{source.label} (DynamoDB) shard {shard.shard_id}: {error_text(exc)}; retrying")
                self.runtime.sleep(delay)
                continue
            if not progressed:
                self.runtime.sleep(self.runtime.poll_interval)

    def _shard_step(self, source: StreamSource, shard: Shard) -> bool:
        """Read what is there, deliver a batch when it is due; True if something happened."""
        read = 0
        if shard.iterator is not None and len(shard.buffer) < source.batch_size and not shard.retired:
            read = self._read(source, shard)
        if not shard.buffer:
            return read > 0
        oldest = shard.buffer[0][1]
        due = (
            len(shard.buffer) >= source.batch_size
            or time.monotonic() - oldest >= source.window
            or shard.iterator is None
            or shard.retired
        )
        if not due:
            return False
        batch = [shard.buffer.popleft()[0] for _ in range(min(source.batch_size, len(shard.buffer)))]
        self._deliver_batch(source, shard, batch)
        return True

    def _read(self, source: StreamSource, shard: Shard) -> int:
        try:
            response = self.aws.streams.get_records(ShardIterator=str(shard.iterator), Limit=_GET_RECORDS_LIMIT)
        except Exception as exc:
            # Only an iterator that can never work again is replaced (see _position); any other failure
            # is retried with the same iterator (by _shard_loop, with backoff), so no record is skipped.
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _REPOSITION_ERRORS:
                self.runtime.log(f"{source.label} (DynamoDB) shard {shard.shard_id}: {code}; getting a new iterator")
                shard.iterator = self._position(source, shard)
                return 0
            raise
        shard.iterator = response.get("NextShardIterator")
        now = time.monotonic()
        records = response.get("Records", [])
        for raw in records:
            record = self._lambda_record(source, dict(raw))
            shard.last_read = str(record["dynamodb"].get("SequenceNumber"))
            if shard.not_before is not None:
                created = record["dynamodb"].get("ApproximateCreationDateTime")
                if isinstance(created, int) and created < shard.not_before:
                    continue  # written before setup(): LATEST never delivers it
                shard.not_before = None
            if source.filters.matches(record):
                shard.buffer.append((record, now))
        return len(records)

    def _lambda_record(self, source: StreamSource, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A DynamoDB Streams record exactly as Lambda delivers it."""
        change = dict(raw.get("dynamodb", {}))
        dynamodb: dict[str, Any] = {}
        created = _epoch_seconds(change.get("ApproximateCreationDateTime"))
        if created is not None:
            dynamodb["ApproximateCreationDateTime"] = created
        for name in ("Keys", "NewImage", "OldImage"):
            if name in change:
                dynamodb[name] = _lambda_json(change[name])
        for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
            if name in change:
                dynamodb[name] = change[name]
        record: dict[str, Any] = {
            "eventID": raw.get("eventID"),
            "eventName": raw.get("eventName"),
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": source.stream_arn.split(":")[3] or self.aws.region,
            "dynamodb": dynamodb,
            "eventSourceARN": source.stream_arn,
        }
        if raw.get("userIdentity"):
            record["userIdentity"] = dict(raw["userIdentity"])
        return record

    def _failed_from(self, source: StreamSource, batch: list[dict[str, Any]], result: Any) -> int | None:
        """Index of the first record to retry (partial batch response), or None when the batch succeeded."""
        if not source.report_failures or not isinstance(result, Mapping):
            return None
        failures = result.get("batchItemFailures")
        if not failures:
            return None
        positions = {str(r["dynamodb"].get("SequenceNumber")): i for i, r in enumerate(batch)}
        indexes: list[int] = []
        for failure in failures if isinstance(failures, list) else [failures]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
            if not identifier or str(identifier) not in positions:
                return 0  # Lambda: a null, empty or unknown itemIdentifier fails the whole batch
            indexes.append(positions[str(identifier)])
        return min(indexes)

    def _deliver_batch(self, source: StreamSource, shard: Shard, records: list[dict[str, Any]]) -> None:
        """Invoke with one batch until it succeeds or its retries run out (module docstring)."""
        pending: deque[list[dict[str, Any]]] = deque([records])
        retries = attempts = 0
        while pending:
            batch = pending[0]
            if self._too_old(source, batch):
                self._stream_failure(source, shard, batch, attempts=attempts, condition="RecordAgeExceeded", error=None)
                pending.popleft()
                retries = attempts = 0
                continue
            attempts += 1
            label = f"{source.label} (DynamoDB, {records_text(len(batch))})"
            error: Exception | None = None
            try:
                result, elapsed = self.runtime.timed_invoke(source.function, {"Records": batch})
            except (FunctionError, InvokeError) as exc:
                error, failed_from = exc, 0
            else:
                failed_from_or_none = self._failed_from(source, batch, result)
                if failed_from_or_none is None:
                    self.runtime.log(f"{label} ok {elapsed:.2f}s")
                    pending.popleft()
                    retries = attempts = 0
                    continue
                failed_from = failed_from_or_none
            if error is not None and source.bisect and len(batch) > 1:
                half = len(batch) // 2
                pending.popleft()
                pending.extendleft([batch[half:], batch[:half]])
                retries = attempts = 0  # each half is a batch of its own; bisecting is not a retry
                self.runtime.log(f"{label} failed: {error_text(error)}; bisecting into {half} + {len(batch) - half}")
                continue
            reason = (
                error_text(error)
                if error is not None
                else f"{len(batch) - failed_from} of {len(batch)} records reported failed "
                f"from {batch[failed_from]['dynamodb'].get('SequenceNumber')}"
            )
            retries += 1
            if 0 <= source.max_retries < retries:
                self.runtime.log(f"{label} failed: {reason}; retries exhausted ({attempts} attempts)")
                self._stream_failure(
                    source,
                    shard,
                    batch[failed_from:],
                    attempts=attempts,
                    condition="RetryAttemptsExhausted",
                    error=error,
                )
                pending.popleft()
                retries = attempts = 0
                continue
            delay = self.runtime.backoff(retries)
            limit = "∞" if source.max_retries < 0 else str(source.max_retries)
            self.runtime.log(f"{label} failed: {reason}; retry {retries}/{limit} in {seconds_text(delay)}")
            pending[0] = batch[failed_from:]
            self.runtime.sleep(delay)

    def _too_old(self, source: StreamSource, batch: list[dict[str, Any]]) -> bool:
        if source.max_record_age < 0:
            return False
        created = batch[0]["dynamodb"].get("ApproximateCreationDateTime")
        return isinstance(created, int | float) and time.time() - created > source.max_record_age

    def _stream_failure(
        self,
        source: StreamSource,
        shard: Shard,
        batch: list[dict[str, Any]],
        *,
        attempts: int,
        condition: str,
        error: Exception | None,
    ) -> None:
        """Lambda's on-failure record for a stream batch, to the OnFailure queue (or discarded)."""
        label = f"{source.label} (DynamoDB, {records_text(len(batch))})"
        if source.on_failure_arn is None:
            self.runtime.log(f"{label} discarded after {attempts} attempts ({condition}; no on-failure destination)")
            return
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if isinstance(error, FunctionError):
            response["functionError"] = "Unhandled"
        elif isinstance(error, InvokeError):
            response = {"statusCode": 502, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        created = [r["dynamodb"].get("ApproximateCreationDateTime") or time.time() for r in batch]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.aws.function_arn(source.function),
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": batch[0]["dynamodb"].get("SequenceNumber"),
                "endSequenceNumber": batch[-1]["dynamodb"].get("SequenceNumber"),
                "approximateArrivalOfFirstRecord": iso(float(created[0])),
                "approximateArrivalOfLastRecord": iso(float(created[-1])),
                "batchSize": len(batch),
                "streamArn": source.stream_arn,
            },
        }
        arn = source.on_failure_arn
        try:
            queue = self.runtime.call(f"{label}: on-failure destination {arn}", lambda: self.aws.send(arn, record))
        except Stopped:
            raise
        except Exception as exc:
            self.runtime.log(f"{label} dropped: on-failure destination {arn} failed: {error_text(exc)}")
            return
        self.runtime.log(f"{label} dead-lettered to {queue}")
