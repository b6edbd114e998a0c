"""The shard queue (SQS): one message per :class:`~ecrcache.models.shards.ShardTask`, sent in batches.

``SendMessageBatch`` takes at most 10 entries of at most 256 KiB in all (:data:`MAX_BATCH_BYTES`) and answers per
entry: an entry can fail while the call succeeds (SQS API reference, SendMessageBatch: "the result of each
message is reported individually").
An entry that failed through no fault of the sender (``SenderFault`` false: SQS could not take it now) is
sent once more after a short pause; what still failed, or failed as the sender's fault (a body SQS refuses:
retrying the same bytes cannot help), is returned by shard ``index``: the coordinator has recorded every
shard before sending (:class:`ecrcache.ports.ShardQueue`) and marks those failed.

A call that fails as a whole after botocore's own retries (throttling, 5xx, a connection error) loses
that batch only: its shards are returned as not sent and the next batch is tried. A call refused for a
reason no later call escapes (access denied, no such queue: a terminal error) while nothing was sent yet
raises it -- the queue cannot be used at all; after a batch went through, it is that batch's loss alone.
The log names how many shards of how many were not sent and SQS's codes, never a body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, sqs_client
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef, SendMessageBatchResultTypeDef

    from ecrcache.models.shards import ShardTask

BATCH_SIZE: Final = 10
"""Entries per ``SendMessageBatch`` (the SQS maximum)."""
MAX_BATCH_BYTES: Final = 256 * 1024 - 8 * 1024
"""Bytes of message bodies per ``SendMessageBatch``: its total payload (the sum of the batched messages' lengths,
attributes included) is at most 256 KiB, 262,144 bytes (SQS API reference, SendMessageBatch; more is refused whole
as ``BatchRequestTooLong``). A full shard is about 130 KB, so a batch holds one or two; 8 KiB are left for what
SQS counts besides the bodies (no attribute is sent)."""
RETRY_PAUSE_SECONDS: Final = 0.2
"""The pause before the one retry of the entries SQS could not take now."""


class SqsShardQueue:
    """Implements :class:`ecrcache.ports.ShardQueue`."""

    def __init__(
        self,
        queue_url: str,
        client: SQSClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.queue_url = queue_url
        self._client = client
        self.sleep = sleep

    @property
    def client(self) -> SQSClient:
        """Made on first use: a deep run that fans out is rare, and the reconciler's every cold start would pay for
        an SQS client (its endpoint rules and model) it mostly never uses."""
        if self._client is None:
            self._client = sqs_client()
        return self._client

    def send(self, tasks: Sequence[ShardTask]) -> list[int]:
        unsent: dict[int, str] = {}
        sent_any = False
        for batch in _batches(tasks):
            try:
                failed = self._send_batch(batch)
            except TerminalError as exc:
                if not sent_any:
                    raise  # the queue cannot be used at all: the coordinator counts every shard not sent
                failed = dict.fromkeys((task.index for task in batch), exc.reason or "Terminal")
            except RetryableError as exc:  # botocore's retries are spent: this batch's loss, not the others'
                failed = dict.fromkeys((task.index for task in batch), exc.reason or "Retryable")
            sent_any = sent_any or len(failed) < len(batch)
            unsent |= failed
        if unsent:
            logger.warning(
                "shard tasks could not be sent to the shard queue",
                extra={"unsent": len(unsent), "tasks": len(tasks), "codes": sorted(set(unsent.values()))},
            )
        return sorted(unsent)

    def _send_batch(self, batch: Sequence[ShardTask]) -> dict[int, str]:
        """Send one batch (and its entries SQS could not take, once more); ``{index: code}`` of those not sent.
        An entry's ``Id`` is its place in the batch (unique in the call whatever the tasks' indexes)."""
        pending: dict[str, SendMessageBatchRequestEntryTypeDef] = {
            str(place): {"Id": str(place), "MessageBody": _body(task)} for place, task in enumerate(batch)
        }
        refused: dict[int, str] = {}
        for attempt in range(2):
            if attempt:
                self.sleep(RETRY_PAUSE_SECONDS)
            retry: dict[str, SendMessageBatchRequestEntryTypeDef] = {}
            for failed in self._call(list(pending.values())).get("Failed", []):
                if failed["SenderFault"] or attempt:
                    refused[batch[int(failed["Id"])].index] = failed["Code"]
                else:
                    retry[failed["Id"]] = pending[failed["Id"]]
            if not retry:
                break
            pending = retry
        return refused

    def _call(self, entries: list[SendMessageBatchRequestEntryTypeDef]) -> SendMessageBatchResultTypeDef:
        try:
            return self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "SQS SendMessageBatch") from exc


def _body(task: ShardTask) -> str:
    return task.model_dump_json()


def _batches(tasks: Sequence[ShardTask]) -> list[list[ShardTask]]:
    """``tasks`` in order, in batches of at most :data:`BATCH_SIZE` entries and :data:`MAX_BATCH_BYTES` of bodies
    (a task alone over the bytes goes alone: SQS says what it makes of it)."""
    batches: list[list[ShardTask]] = []
    size = 0
    for task in tasks:
        length = len(_body(task).encode())
        if not batches or len(batches[-1]) == BATCH_SIZE or size + length > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(task)
        size += length
    return batches
