"""An in-memory shard queue (``ShardQueue``) the tests drain by hand, as SQS would deliver it.

``sent`` holds every task accepted, in order; :meth:`MemoryShardQueue.take` pops the next one (a test delivers it
to the worker, again or not at all, as it likes). ``refuse`` lists shard indexes whose send fails for good;
``error`` is raised by the next ``send`` (the queue cannot be used at all).
"""

from __future__ import annotations

from collections.abc import Sequence

from ecrcache.models.shards import ShardTask


class MemoryShardQueue:
    """Implements ``ShardQueue``."""

    def __init__(self) -> None:
        self.sent: list[ShardTask] = []
        self.pending: list[ShardTask] = []
        self.refuse: set[int] = set()
        self.error: Exception | None = None
        self.calls = 0

    def send(self, tasks: Sequence[ShardTask]) -> list[int]:
        self.calls += 1
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        unsent = [task.index for task in tasks if task.index in self.refuse]
        accepted = [task for task in tasks if task.index not in self.refuse]
        self.sent += accepted
        self.pending += accepted
        return unsent

    def take(self) -> ShardTask:
        """The next task not delivered yet (as a message body would carry it: JSON and back)."""
        task = self.pending.pop(0)
        return ShardTask.model_validate_json(task.model_dump_json())

    def drain(self) -> list[ShardTask]:
        """Every task not delivered yet."""
        tasks = [ShardTask.model_validate_json(t.model_dump_json()) for t in self.pending]
        self.pending.clear()
        return tasks


__all__ = ["MemoryShardQueue"]
