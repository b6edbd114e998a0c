"""SQS queues, delivered as Lambda's SQS event source mapping delivers them (see the package docstring).

:class:`QueueDelivery` polls each ``SQS`` event's queue in the embedded AWS (``ReceiveMessage`` with
the queue's own visibility timeout, as Lambda does), gathers a batch (``BatchSize``,
``MaximumBatchingWindowInSeconds``, 6 MB), filters it, invokes the function with ``{"Records": [...]}``
and deletes what succeeded. Whatever is not deleted becomes visible again after the queue's
visibility timeout; the queue's ``RedrivePolicy`` moves a message to its dead-letter queue after
``maxReceiveCount`` receives (the embedded SQS does that itself, on receive, as SQS does).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from devstack.local.invoke import FunctionError, InvokeError
from devstack.local.runner.aws import Aws
from devstack.local.runner.core import Runtime, Stopped, error_text, records_text, seconds_text
from devstack.local.runner.plan import QueueSource

__all__ = ["QueueDelivery", "lambda_record", "parse_batch_response"]

_RECEIVE_LIMIT: Final = 10  # ReceiveMessage's MaxNumberOfMessages
_DELETE_LIMIT: Final = 10  # DeleteMessageBatch's entries
# Lambda invokes when the batch's payload reaches 6 MB (invocation-eventsourcemapping, "Batching
# behavior"); the synchronous invocation payload limit is 6 MB = 6,291,456 bytes.
_PAYLOAD_LIMIT: Final = 6 * 1024 * 1024
_DEFAULT_VISIBILITY: Final = 30  # SQS's default VisibilityTimeout
# The system attributes Lambda passes in a record's "attributes" (Powertools' SqsAttributesModel).
_RECORD_ATTRIBUTES: Final = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)


def lambda_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ``ReceiveMessage`` message exactly as Lambda puts it in ``Records`` (with-sqs, example event)."""
    system = message.get("Attributes") or {}
    attributes = {name: str(system[name]) for name in _RECORD_ATTRIBUTES if name in system}
    message_attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attribute: dict[str, Any] = {}
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(bytes(value["BinaryValue"])).decode("ascii")
        attribute["stringListValues"] = list(value.get("StringListValues") or [])
        attribute["binaryListValues"] = [
            base64.b64encode(bytes(v)).decode("ascii") for v in value.get("BinaryListValues") or []
        ]
        attribute["dataType"] = value.get("DataType")
        message_attributes[str(name)] = attribute
    record: dict[str, Any] = {
        "messageId": message.get("MessageId"),
        "receiptHandle": message.get("ReceiptHandle"),
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
    }
    if message_attributes and message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record |= {"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": queue_arn.split(":")[3]}
    return record


def _filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as Lambda's filters see it: a JSON body is matched as JSON (with-sqs-filtering)."""
    view = dict(record)
    with contextlib.suppress(ValueError, TypeError):
        view["body"] = json.loads(str(record.get("body")))
    return view


def parse_batch_response(result: Any, message_ids: list[str]) -> set[str] | None:
    """The message ids to leave on the queue from a partial batch response; ``None`` = the whole batch.

    Lambda's rules (services-sqs-errorhandling, "Success and failure conditions"): no response, an
    empty response or an empty/null ``batchItemFailures`` is complete success (an empty set here);
    a response that is not an object, a ``batchItemFailures`` that is not a list, an entry without
    ``itemIdentifier``, an empty or null one, or an identifier not in the batch fail the whole batch.
    """
    if result is None:
        return set()
    if not isinstance(result, Mapping):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return None
    known = set(message_ids)
    failed: set[str] = set()
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, Mapping) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        failed.add(identifier)
    return failed


@dataclass
class _Held:
    """Records received and not yet handed to the function, in order, with their payload size.

    A message received again while held (its visibility timeout ran out during a long batching
    window) replaces its older copy: the newest receipt handle is the one that deletes it.
    """

    records: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    size: int = 0
    since: float = 0.0  # when the oldest was received (monotonic)
    _positions: dict[str, int] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        if not self.records:
            self.since = time.monotonic()
        size = len(json.dumps(record))
        position = self._positions.get(str(record["messageId"]))
        if position is not None:
            self.size -= self.records[position][1]
            self.records[position] = (record, size)
        else:
            self._positions[str(record["messageId"])] = len(self.records)
            self.records.append((record, size))
        self.size += size

    def full(self, batch_size: int) -> bool:
        return len(self.records) >= batch_size or self.size >= _PAYLOAD_LIMIT

    def take(self, batch_size: int) -> tuple[list[dict[str, Any]], float]:
        """The next batch: up to ``batch_size`` records within 6 MB (at least one), and when it was received."""
        count, size = 0, 0
        while count < min(batch_size, len(self.records)):
            if count and size + self.records[count][1] > _PAYLOAD_LIMIT:
                break
            size += self.records[count][1]
            count += 1
        taken, self.records = self.records[:count], self.records[count:]
        self.size -= size
        self._positions = {str(record["messageId"]): i for i, (record, _) in enumerate(self.records)}
        since = self.since
        self.since = time.monotonic()
        return [record for record, _ in taken], since

    def drain(self) -> list[dict[str, Any]]:
        records = [record for record, _ in self.records]
        self.records, self.size, self._positions = [], 0, {}
        return records


class QueueDelivery:
    """Every enabled ``SQS`` event: a poller that batches, invokes and deletes (package docstring)."""

    def __init__(self, runtime: Runtime, aws: Aws) -> None:
        self.runtime = runtime
        self.aws = aws

    def setup(self, source: QueueSource) -> None:
        """The queue must exist (the template's, created by the local provisioner)."""
        self.aws.queue_url(source.queue_arn)

    def run(self, source: QueueSource) -> None:
        url = self.runtime.call(f"{source.label} (SQS): queue", lambda: self.aws.queue_url(source.queue_arn))
        held = _Held()
        try:
            while not self.runtime.stopped():
                # Lambda: "the next batching window begins as soon as the previous invocation completes".
                self._collect(source, url, held)
                if not held.records:
                    self.runtime.sleep(self.runtime.poll_interval)
                    continue
                records, received_at = held.take(source.batch_size)
                self._deliver(source, url, records, received_at)
        finally:  # received but never handed to the function: visible again at once for the next runner
            self._release(url, held.drain())

    # ---- gathering a batch -------------------------------------------------------------------

    def _collect(self, source: QueueSource, url: str, held: _Held) -> None:
        """Receive until the batch is full, the window has passed or the payload reached 6 MB.

        Without a window the batch is whatever one receive returns (up to ``BatchSize``).
        """
        deadline = time.monotonic() + source.window
        failures = 0
        while not held.full(source.batch_size):
            if self.runtime.stopped():
                raise Stopped
            try:
                messages = self._receive(url, min(_RECEIVE_LIMIT, source.batch_size - len(held.records)))
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    self.runtime.log(f"{source.label} (SQS): receive failed: {error_text(exc)}; retrying")
                self.runtime.sleep(self.runtime.backoff(failures))
                continue
            self._take(source, url, messages, held)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if not messages:  # the queue is empty for now: wait within the window
                self.runtime.sleep(min(self.runtime.poll_interval, remaining))

    def _receive(self, url: str, count: int) -> list[dict[str, Any]]:
        response = self.aws.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(m) for m in response.get("Messages", [])]

    def _take(self, source: QueueSource, url: str, messages: list[dict[str, Any]], held: _Held) -> None:
        dropped: list[dict[str, Any]] = []
        for message in messages:
            record = lambda_record(message, source.queue_arn)
            if source.filters.matches(_filter_view(record)):
                held.add(record)
            else:
                dropped.append(record)
        if dropped:  # Lambda discards what matches no filter (invocation-eventfiltering): deleted
            self._delete(source, url, dropped)
            self.runtime.log(f"{source.label} (SQS): {records_text(len(dropped))} matched no filter: deleted")

    # ---- invoking -----------------------------------------------------------------------------

    def _deliver(self, source: QueueSource, url: str, records: list[dict[str, Any]], received_at: float) -> None:
        """Invoke once; delete what succeeded, leave the rest to reappear after the visibility timeout.

        A host that cannot be invoked at all (not a function error) is retried with the same batch
        while the messages are still invisible, as Lambda retries a throttled invocation until the
        queue's visibility timeout (services-sqs-errorhandling, "Backoff strategy"). A batch the
        runner stopped before invoking is made visible again at once.
        """
        label = f"{source.label} (SQS, {records_text(len(records))})"
        visibility = self._visibility(url)
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    result, elapsed = self.runtime.timed_invoke(source.function, {"Records": records})
                    break
                except FunctionError as exc:
                    self.runtime.log(f"{label} failed: {error_text(exc)}; the batch reappears after {visibility}s")
                    return
                except InvokeError as exc:
                    left = received_at + visibility - time.monotonic()
                    delay = self.runtime.backoff(attempts)
                    if left <= delay:
                        self.runtime.log(f"{label} not invoked: {error_text(exc)}; the batch reappears in {left:.0f}s")
                        return
                    self.runtime.log(f"{label} not invoked: {error_text(exc)}; retrying in {seconds_text(delay)}")
                    self.runtime.sleep(delay)
        except Stopped:
            self._release(url, records)
            raise
        self._settle(source, url, records, result, elapsed=elapsed)

    def _settle(
        self, source: QueueSource, url: str, records: list[dict[str, Any]], result: Any, *, elapsed: float
    ) -> None:
        label = f"{source.label} (SQS, {records_text(len(records))})"
        failed: set[str] | None = set()
        if source.report_failures:
            failed = parse_batch_response(result, [str(r["messageId"]) for r in records])
        if failed is None:
            self.runtime.log(f"{label} failed: invalid partial batch response {result!r:.200}; the batch reappears")
            return
        self._delete(source, url, [r for r in records if str(r["messageId"]) not in failed])
        if failed:
            self.runtime.log(f"{label} {len(failed)} of {len(records)} records reported failed; they reappear")
        else:
            self.runtime.log(f"{label} ok {elapsed:.2f}s")

    # ---- the queue ---------------------------------------------------------------------------------

    def _visibility(self, url: str) -> int:
        try:
            attributes = self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
            return int(attributes["Attributes"]["VisibilityTimeout"])
        except Exception:  # only used for retry decisions and log lines
            return _DEFAULT_VISIBILITY

    def _delete(self, source: QueueSource, url: str, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), _DELETE_LIMIT):
            chunk = records[start : start + _DELETE_LIMIT]
            entries: list[Any] = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            response = self.runtime.call(
                f"{source.label} (SQS): delete messages",
                functools.partial(self.aws.sqs.delete_message_batch, QueueUrl=url, Entries=entries),
            )
            for failure in response.get("Failed", []):  # e.g. the receipt expired: it is delivered again
                self.runtime.log(f"{source.label} (SQS): delete failed: {failure.get('Code')} {failure.get('Message')}")

    def _release(self, url: str, records: list[dict[str, Any]]) -> None:
        """Messages received but never handed to the function: visible again now (the runner stops)."""
        for record in records:
            with contextlib.suppress(Exception):
                self.aws.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=str(record["receiptHandle"]), VisibilityTimeout=0
                )
