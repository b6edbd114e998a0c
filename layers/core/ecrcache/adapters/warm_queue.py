"""The warm queue (SQS): one message per :class:`~ecrcache.models.warm_run.WarmTask`, sent in batches.

``SendMessageBatch`` takes at most 10 entries and answers per entry: an entry can fail while the call
succeeds. Failed entries that are not the sender's fault (``SenderFault`` false: SQS could not take
them now) are sent again, at most :data:`ATTEMPTS` times with a short backoff; what still failed, or
failed as the sender's fault (a message SQS refuses), is reported by one error naming how many tasks
of how many were not sent and SQS's codes (never a body). Sending is at-least-once: a task sent twice
is counted once (the run store records one outcome per image).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import classify, sqs_client
from ecrcache.errors import RetryableError, TerminalError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from ecrcache.models.warm_run import WarmTask

BATCH_SIZE: Final = 10
"""Entries per ``SendMessageBatch`` (the SQS maximum)."""
ATTEMPTS: Final = 4
BACKOFF_SECONDS: Final = 0.1


class SqsWarmQueue:
    """Implements :class:`ecrcache.ports.WarmQueue`."""

    def __init__(
        self,
        queue_url: str,
        client: SQSClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.queue_url = queue_url
        self.client = client or sqs_client()
        self.sleep = sleep
        self.attempts = attempts

    def send(self, tasks: Sequence[WarmTask]) -> None:
        failures: list[tuple[str, bool]] = []
        for start in range(0, len(tasks), BATCH_SIZE):
            failures += self._send_batch(tasks[start : start + BATCH_SIZE], offset=start)
        if not failures:
            return
        codes = ", ".join(sorted({code for code, _ in failures}))
        msg = f"{len(failures)} of {len(tasks)} warm tasks could not be sent to the warm queue ({codes})"
        if all(sender for _, sender in failures):
            raise TerminalError(msg, reason="SendMessageBatch")
        raise RetryableError(msg, reason="SendMessageBatch")

    def _send_batch(self, batch: Sequence[WarmTask], *, offset: int) -> list[tuple[str, bool]]:
        """Send one batch; ``(code, sender's fault)`` of every entry that could not be sent."""
        pending: dict[str, SendMessageBatchRequestEntryTypeDef] = {
            str(offset + index): {"Id": str(offset + index), "MessageBody": task.model_dump_json()}
            for index, task in enumerate(batch)
        }
        refused: list[tuple[str, bool]] = []
        delay = BACKOFF_SECONDS
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(delay)
                delay *= 2
            try:
                out = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=list(pending.values()))
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "SQS SendMessageBatch") from exc
            retry: dict[str, SendMessageBatchRequestEntryTypeDef] = {}
            for failed in out.get("Failed", []):
                if failed["SenderFault"]:
                    refused.append((failed["Code"], True))
                else:
                    retry[failed["Id"]] = pending[failed["Id"]]
                    last = failed["Code"]
            if not retry:
                return refused
            pending = retry
        return refused + [(last, False) for _ in pending]
