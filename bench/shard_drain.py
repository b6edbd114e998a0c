"""The fan-out benchmark's shard queue and its workers (bench/fanout_bench.py): SQS's delivery, in memory.

:class:`MemoryShardQueue` is the shard queue the coordinator sends to (:class:`ecrcache.ports.ShardQueue`): the
tasks go through their JSON body, ten a ``SendMessageBatch`` request, as the SQS adapter sends them.
:func:`drain` delivers its messages to N workers, one thread each (N concurrent invocations of the worker
function), as SQS and Lambda's event source mapping do: a message whose processing raised is delivered again
(SQS after the visibility timeout; here at once), its delivery count told to the worker (``last_attempt`` at
``maxReceiveCount``), and a message that raised on its last delivery goes to the dead-letter queue.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from ecrcache.models.shards import ShardTask

__all__ = ["MAX_RECEIVES", "Drain", "MemoryShardQueue", "ShardProcessor", "drain"]

MAX_RECEIVES: Final = 3
"""The shard queue's ``maxReceiveCount`` in template.yaml: the third delivery is a shard's last."""
SEND_BATCH: Final = 10
"""``SendMessageBatch`` takes at most 10 messages."""


class ShardProcessor(Protocol):
    """What a worker does with one delivered shard (:class:`ecrcache.services.reconcile_shards.ShardWorkerService`)."""

    def process(self, task: ShardTask, *, last_attempt: bool) -> object: ...


@dataclass
class Message:
    body: str
    receives: int = 0


class MemoryShardQueue:
    """The shard queue (:class:`ecrcache.ports.ShardQueue`) in memory: the tasks go through their JSON body, ten
    a ``SendMessageBatch`` as the SQS adapter sends them."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Message | None] = queue.Queue()
        self.requests = 0
        self.sent = 0
        self.largest_body = 0

    def send(self, tasks: Sequence[ShardTask]) -> list[int]:
        for start in range(0, len(tasks), SEND_BATCH):
            self.requests += 1
            for task in tasks[start : start + SEND_BATCH]:
                body = task.model_dump_json()
                self.largest_body = max(self.largest_body, len(body.encode()))
                self.messages.put(Message(body))
                self.sent += 1
        return []


@dataclass
class Drain:
    """What draining one run's shards took: every delivery's time, the failures by exception, the messages
    delivered again and those sent to the dead-letter queue."""

    shard_seconds: list[float] = field(default_factory=list)
    redeliveries: int = 0
    dead_letters: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, failure: str | None, *, redelivered: bool, dead: bool) -> None:
        with self._lock:
            self.shard_seconds.append(seconds)
            if failure is not None:
                self.failures[failure] += 1
            self.redeliveries += redelivered
            self.dead_letters += dead


def drain(shards: MemoryShardQueue, workers: Sequence[ShardProcessor], *, max_receives: int = MAX_RECEIVES) -> Drain:
    """Deliver every message to one of ``workers`` (one thread each) until none is left or in flight."""
    stats = Drain()

    def work(service: ShardProcessor) -> None:
        while (message := shards.messages.get()) is not None:
            message.receives += 1
            last = message.receives >= max_receives
            start, failure = time.perf_counter(), None
            try:
                service.process(ShardTask.model_validate_json(message.body), last_attempt=last)
            except Exception as exc:
                failure = type(exc).__name__
            again = failure is not None and not last
            stats.record(time.perf_counter() - start, failure, redelivered=again, dead=failure is not None and last)
            if again:
                shards.messages.put(message)
            shards.messages.task_done()

    threads = [threading.Thread(target=work, args=(service,), daemon=True) for service in workers]
    for thread in threads:
        thread.start()
    shards.messages.join()
    for _ in threads:
        shards.messages.put(None)
    for thread in threads:
        thread.join()
    return stats
