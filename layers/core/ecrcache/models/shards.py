"""The deep resync's fan-out: one shard of a Region's repositories per SQS message, and the run's shard counts.

A deep reconcile of a Region with more managed repositories than one shard (:data:`DEFAULT_SHARD_SIZE`)
does the Region's rules, templates and exclusions itself, then sends the per-repository work as
:class:`ShardTask` s (sorted names, chunked) to the shard queue; a worker deep-reads, plans, applies and
verifies one shard, and reports it. The run record counts its shards (:class:`ShardCounts`) and stays
``running`` until ``done + failed == total``; whoever makes it so finishes the run (exactly once).

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DEFAULT_SHARD_DEADLINE_SECONDS",
    "DEFAULT_SHARD_SIZE",
    "MAX_SHARD_SIZE",
    "ShardCounts",
    "ShardState",
    "ShardTask",
]

MAX_SHARD_SIZE: Final = 500
"""At most this many repository names a shard: 500 names of at most 256 characters (ECR's limit) are under
130 KiB of JSON, within an SQS message's 256 KiB."""

DEFAULT_SHARD_SIZE: Final = 500
"""Repositories per shard unless configured (``SHARD_SIZE``)."""

DEFAULT_SHARD_DEADLINE_SECONDS: Final = 3600
"""How long a fan-out may wait for its shards unless configured (``SHARD_DEADLINE_SECONDS``): past it, the next
reconcile run touching the Region finishes it with the shards that never reported counted failed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShardState(StrEnum):
    """Where one shard is: sent (``queued``), being processed (``running``), delivered again after a retryable
    failure (``retrying``), reported (``done``), or given up (``failed``: last attempt, or past the deadline)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ShardState.DONE, ShardState.FAILED)


class ShardTask(_Frozen):
    """One shard of a deep run's repositories in one Region: the shard queue's message body (JSON)."""

    run_id: str = Field(min_length=1, max_length=128, description="The coordinating run.")
    region: str = Field(min_length=1, max_length=32, description="AWS Region of the repositories.")
    index: int = Field(ge=0, description="0-based shard number in the run's Region.")
    repositories: tuple[str, ...] = Field(min_length=1, max_length=MAX_SHARD_SIZE)
    revision: int | None = Field(
        default=None, ge=0, description="The desired-state revision the coordinator planned at (informational)."
    )

    @field_validator("repositories")
    @classmethod
    def _sorted_unique(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name or len(name) > 256 for name in names):
            msg = "repositories: each name must be 1 to 256 characters"
            raise ValueError(msg)
        if list(names) != sorted(set(names)):
            msg = "repositories must be sorted and unique"
            raise ValueError(msg)
        return names


class ShardCounts(_Frozen):
    """A fanned-out run's shards: how many were sent, reported done, failed, and retried (``retrying`` counts
    shards delivered again at least once and not yet final; 0 once every shard is)."""

    total: int = Field(default=0, ge=0)
    done: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    retrying: int = Field(default=0, ge=0)

    @property
    def finished(self) -> bool:
        """Every shard reported (done or failed)."""
        return self.done + self.failed >= self.total
