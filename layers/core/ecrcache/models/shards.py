"""The reconcile fan-out: one shard of a Region's repositories per SQS message, and the run's shard counts.

A deep reconcile of a Region with more managed repositories than one shard (:data:`DEFAULT_SHARD_SIZE`)
does the Region's rules, templates and exclusions itself, then sends the per-repository work as
:class:`ShardTask` s (sorted names, chunked) to the shard queue; a worker deep-reads, plans, applies and
verifies one shard, and reports it. A fast reconcile whose plan changes more repositories than one shard (a rule's
``keep_last`` changed under 20,000 cached repositories) sends those repositories the same way, as shards the
worker plans from the applied fingerprints (:attr:`ShardTask.deep` false). The run record counts its shards
(:class:`ShardCounts`) and stays ``running`` until ``done + failed == total``; whoever makes it so finishes the
run (exactly once).

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ecrcache.models.shard_limits import DEFAULT_SHARD_DEADLINE_SECONDS, DEFAULT_SHARD_SIZE, MAX_SHARD_SIZE

__all__ = [
    "DEFAULT_SHARD_DEADLINE_SECONDS",
    "DEFAULT_SHARD_SIZE",
    "MAX_SHARD_ERRORS",
    "MAX_SHARD_PREFIXES",
    "MAX_SHARD_SIZE",
    "FanoutMarker",
    "ShardCounts",
    "ShardRecord",
    "ShardReport",
    "ShardResult",
    "ShardState",
    "ShardTask",
]

MAX_TASK_PREFIXES: Final = 1000
"""At most this many prefixes on a task (a Region's desired, retired and ECR's rules: ECR allows 50 rules a
registry; 1,000 of at most 30 characters still fit an SQS message next to 500 names)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_SHARD_PREFIXES: Final = 50
"""A shard's report names at most this many rule prefixes (ECR allows 50 rules a Region); more are summed."""

MAX_SHARD_ERRORS: Final = 5
"""A shard's report keeps at most this many error lines (the run record keeps 50 over every shard)."""

MAX_SHARD_ERROR_LENGTH: Final = 512


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHARD_ERROR_LENGTH else text[: MAX_SHARD_ERROR_LENGTH - 1] + "…"


def _cut_errors(errors: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_cut(e) for e in errors[:MAX_SHARD_ERRORS])


def _cap_prefixes(counts: Mapping[str, int]) -> dict[str, int]:
    """The :data:`MAX_SHARD_PREFIXES` largest counts by prefix; the rest summed under ``""`` (no rule)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:MAX_SHARD_PREFIXES])
    rest = sum(n for _, n in ranked[MAX_SHARD_PREFIXES:])
    return kept | ({"": kept.get("", 0) + rest} if rest else {})


class ShardState(StrEnum):
    """Where one shard is: sent (``queued``), delivered again after a retryable failure (``retrying``), reported
    (``done``), or given up (``failed``: its last attempt failed, it could not be sent, or the fan-out's deadline
    passed without its report). A worker's attempt is not recorded while it runs: the report's write is
    conditioned on the state the worker read (a no-op shard writes its report and nothing else)."""

    QUEUED = "queued"
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
    prefixes: tuple[str, ...] = Field(
        default=(),
        max_length=MAX_TASK_PREFIXES,
        description=(
            "The rule prefixes known in the Region when the coordinator planned (desired, retired and ECR's rules) "
            "that a repository of the shard is under: the worker picks each repository's owner among these and the "
            "desired rules it reads, as the in-process deep read does (a repository whose owner is no desired rule "
            "is left alone)."
        ),
    )
    deep: bool = Field(
        default=True,
        description=(
            "True: a deep resync's shard (the worker reads each repository's lifecycle policy, repository policy and "
            "tags, and plans from what ECR holds). False: a fast run's per-repository changes, too many for its own "
            "invocation (the worker plans from what ecrcache last applied, as the fast run did, and reads deeply only "
            "to verify what it wrote). A task without the field (sent before it existed) is a deep one."
        ),
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


class FanoutMarker(_Frozen):
    """A Region's unfinished fan-out (the ``fan`` attribute of its status item): the run whose shards are out,
    and until when they may report. A run finding one starts no other fan-out of the Region, and leaves its own
    per-repository changes to it (but those of repositories created after it started: in none of its shards)."""

    run_id: str = Field(min_length=1, max_length=128)
    deadline: AwareDatetime
    started_at: AwareDatetime | None = None
    """When the run that fanned out started (``None``: a marker written before the field: every repository is
    taken to be in its shards)."""
    prefixes: tuple[str, ...] | None = None
    """The rules whose repositories a fast run's fan-out sends (``None``: every rule's, a deep resync's)."""

    def covers(self, created_at: datetime | None, prefix: str) -> bool:
        """Whether a repository of rule ``prefix`` created at ``created_at`` (``None``: not known) may be in the
        fan-out's shards."""
        if self.prefixes is not None and prefix not in self.prefixes:
            return False
        return self.started_at is None or created_at is None or created_at < self.started_at


class ShardReport(_Frozen):
    """What a worker did with one shard (kept on the shard's item; the finished run adds them up)."""

    repositories: int = Field(default=0, ge=0, description="Names in the shard.")
    found: int = Field(default=0, ge=0, description="Of those, repositories ECR still has (the others are gone).")
    applied: dict[str, int] = Field(default_factory=dict, description="Actions applied, by kind.")
    failed_actions: int = Field(default=0, ge=0)
    left_after_verify: int = Field(default=0, ge=0)
    failures: Annotated[dict[str, int], AfterValidator(_cap_prefixes)] = Field(
        default_factory=dict, description="Rule prefix -> repositories not brought to the rule's settings."
    )
    errors: Annotated[tuple[str, ...], AfterValidator(_cut_errors)] = ()


class ShardRecord(_Frozen):
    """One shard's item as stored: its state, the repositories of each rule it holds (what a failed shard counts
    against each rule), whether it was ever retried, and its report once done (or why it failed)."""

    run_id: str
    region: str
    index: int = Field(ge=0)
    state: ShardState
    rules: dict[str, int] = Field(default_factory=dict, description="Rule prefix -> repositories in the shard.")
    retried: bool = False
    report: ShardReport | None = None
    error: str | None = None

    @property
    def repositories(self) -> int:
        return sum(self.rules.values())


class ShardResult(_Frozen):
    """What one delivery of a shard came to (the worker's answer for its record)."""

    run_id: str
    region: str
    index: int
    outcome: Literal["done", "failed", "dropped"]
    """``dropped``: the shard was already reported (a redelivery, a redriven message of a finished run)."""
    report: ShardReport | None = None
    finished: bool = False
    """This delivery finished the run (its last shard)."""
