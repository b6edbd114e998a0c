"""The fan-out benchmark's in-memory shard queue and its delivery to N workers (bench/shard_drain.py).

The benchmark's numbers of a fanned-out run (redeliveries, the longest shard, the shards a run counts) are only
as right as this stand-in for SQS and Lambda's event source mapping: every message reaches one worker, a message
whose processing raised comes back alone with its delivery count, the delivery at ``maxReceiveCount`` is told it
is the last, and a failure on it goes to the dead-letter queue rather than round again.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from bench.shard_drain import MAX_RECEIVES, MemoryShardQueue, drain
from ecrcache.errors import RetryableError
from ecrcache.models.shards import ShardTask

pytestmark = pytest.mark.unit


def tasks(count: int) -> list[ShardTask]:
    return [ShardTask(run_id="run-1", region="us-east-1", index=i, repositories=(f"r/{i:03d}",)) for i in range(count)]


class Worker:
    """Records what it was given; raises for the shards (and the number of times) it is told to."""

    def __init__(self, fail: dict[int, int] | None = None, *, error: type[Exception] = RetryableError) -> None:
        self.fail = dict(fail or {})
        self.error = error
        self.seen: list[tuple[int, bool]] = []
        self.lock = threading.Lock()

    def process(self, task: ShardTask, *, last_attempt: bool) -> object:
        with self.lock:
            self.seen.append((task.index, last_attempt))
            if self.fail.get(task.index, 0) > 0:
                self.fail[task.index] -= 1
                raise self.error("try again")
        return None


def test_send_goes_through_json_ten_a_request() -> None:
    shards = MemoryShardQueue()
    assert shards.send(tasks(23)) == []
    assert (shards.sent, shards.requests) == (23, 3)
    assert shards.largest_body == max(len(t.model_dump_json().encode()) for t in tasks(23))


def test_every_message_reaches_exactly_one_of_the_workers() -> None:
    shards = MemoryShardQueue()
    shards.send(tasks(40))
    workers = [Worker() for _ in range(4)]
    stats = drain(shards, workers)
    delivered = Counter(index for w in workers for index, _ in w.seen)
    assert delivered == Counter(range(40))
    assert all(not last for w in workers for _, last in w.seen)
    assert (stats.redeliveries, stats.dead_letters, len(stats.shard_seconds)) == (0, 0, 40)


def test_a_shard_that_raised_comes_back_alone_and_its_last_delivery_is_told_so() -> None:
    shards = MemoryShardQueue()
    shards.send(tasks(3))
    worker = Worker({1: MAX_RECEIVES - 1})  # fails on its first two deliveries, succeeds on its last
    stats = drain(shards, [worker])
    assert [last for index, last in worker.seen if index == 1] == [False, False, True]
    assert Counter(index for index, _ in worker.seen) == Counter({0: 1, 1: MAX_RECEIVES, 2: 1})
    assert (stats.redeliveries, stats.dead_letters) == (MAX_RECEIVES - 1, 0)
    assert stats.failures == Counter({"RetryableError": MAX_RECEIVES - 1})


def test_a_failure_on_the_last_delivery_goes_to_the_dead_letter_queue() -> None:
    shards = MemoryShardQueue()
    shards.send(tasks(2))
    # Shard 0 fails on every delivery, whichever worker gets it; any exception: SQS redelivers whatever failed.
    workers = [Worker({0: 99}, error=KeyError), Worker({0: 99}, error=KeyError)]
    stats = drain(shards, workers)
    assert (stats.redeliveries, stats.dead_letters) == (MAX_RECEIVES - 1, 1)
    assert stats.failures == Counter({"KeyError": MAX_RECEIVES})
    assert shards.messages.empty()
