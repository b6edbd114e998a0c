"""Warm runs: what the planner asks the worker to warm, what each image's warming came to, and the run.

A run of a warm set is planned once (:class:`WarmRun`, ``queued``), fanned out as one
:class:`WarmTask` per image and Region through SQS, and finished when every task has an
:class:`ImageOutcome`. Images the planner itself settles (fresh within ECR's 24-hour refresh window,
or cut by the budget) get their outcome from the planner and never reach the queue.

Failures are classified, never left as free text: a user acts differently on a rejected credential
(rotate it), a rate limit (wait, raise the budget's spacing), a missing image (fix the warm set), an
upstream outage (nothing to do), an archived image (restore it, or let ``restore_archived`` do it) and
a fault of ours (report it). Messages never carry a secret: they are built from ECR's failure codes and
reasons, which name images and repositories, not credentials.

Nothing here does I/O, reads a clock or the environment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ecrcache.models.failure_class import FailureClass

REQUEST_PARTITION: Final = "REQUEST#warm"
"""``pk`` of the request items ``POST /v1/warm-sets/{name}/runs`` writes (``sk`` is the run id); their
stream INSERT is the planner's trigger (as ``REQUEST#reconcile`` is the reconciler's)."""

REFRESH_WINDOW_HOURS: Final = 24
"""ECR re-validates a cached tag against its upstream at most once per 24 hours (ecr-facts §3.2): a
second warm inside the window spends upstream budget for nothing."""

WARM_QUEUE_RETENTION: Final = timedelta(days=1)
"""``WarmQueue``'s ``MessageRetentionPeriod`` in template.yaml (86400 s; tests/contract keeps the two equal):
a task no worker received and recorded by then is gone (SQS deletes it), as is one moved to ``WarmDlq``
after 3 receives or dropped as malformed. It also covers the planner's stream trigger: DynamoDB Streams keep a
record 24 hours, so no retry can plan a requested run after it."""

RUN_DEADLINE_MARGIN: Final = timedelta(hours=1)
"""Slack past the retention: a worker's last delivery still running (timeout 300 s), ticks every 5 minutes."""

RUN_DEADLINE: Final = WARM_QUEUE_RETENTION + RUN_DEADLINE_MARGIN
"""How long after it is planned (or requested) a run may wait for its images' outcomes. Past it, the
planner's tick records the images still without one as lost (``failed``, class ``ours``) and finishes
the run; a requested run never planned is finished ``failed``."""

MESSAGE_MAX: Final = 512


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= MESSAGE_MAX:
        return value
    return value[: MESSAGE_MAX - 1] + "…"


Message = Annotated[str | None, AfterValidator(_cut)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outcome(StrEnum):
    """What became of one image in one run."""

    WARMED = "warmed"  # pulled through the cache and verified for every requested platform
    FRESH = "fresh"  # verified (by us or by an ECR refresh) within the 24-hour window: nothing to do
    SKIPPED = "skipped"  # not attempted: the run's or the upstream's budget ran out, or a 429 stopped it
    FAILED = "failed"  # attempted and failed; ``failure_class`` says why


class RunStatus(StrEnum):
    QUEUED = "queued"  # planned, tasks on the queue, none finished
    RUNNING = "running"  # some tasks finished
    SUCCEEDED = "succeeded"  # every image warmed or fresh
    PARTIAL = "partial"  # finished, some images skipped or failed
    FAILED = "failed"  # finished, nothing warmed (or planning itself failed)


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    API = "api"


class WarmTask(_Frozen):
    """One image to warm in one Region: the body of a ``WarmQueue`` message."""

    run_id: str = Field(min_length=1, max_length=128)
    warm_set: str = Field(min_length=1, max_length=256)
    region: str = Field(min_length=1, max_length=32)
    rule: str = Field(min_length=1, max_length=30, description="ECR prefix of the rule the image is pulled through.")
    upstream: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "The upstream's token-bucket key, which the worker refunds, charges and blocks: the registry URL, "
            "with #<credential> when the rule signs in (an upstream's limit is per account)."
        ),
    )
    repository: str = Field(min_length=2, max_length=256, description="ECR repository name: <prefix>/<upstream path>.")
    image: str = Field(min_length=1, max_length=512, description="The image as the warm set names it.")
    tag: str | None = None
    digest: str | None = None
    platforms: tuple[str, ...] = Field(min_length=1)
    restore_archived: bool = False
    reserved_requests: int = Field(ge=0, description="Upstream requests the planner took from the budget for it.")
    bucket_capacity: int = Field(ge=1, description="The upstream bucket's capacity the planner took with.")
    bucket_window_seconds: int = Field(ge=1, description="The upstream bucket's refill window the planner took with.")

    @model_validator(mode="after")
    def _tag_or_digest(self) -> WarmTask:
        if self.tag is None and self.digest is None:
            raise ValueError("a warm task needs a tag or a digest")
        return self

    @property
    def key(self) -> str:
        """The image's key within its run: ``<region>#<repository>:<tag>`` (or ``@<digest>``)."""
        reference = f":{self.tag}" if self.tag is not None else f"@{self.digest}"
        return f"{self.region}#{self.repository}{reference}"


class ImageOutcome(_Frozen):
    """What one image's warming came to (per run, per Region)."""

    image: str
    region: str
    repository: str
    tag: str | None = None
    digest: str | None = Field(default=None, description="The digest ECR serves for the reference (the upstream's).")
    outcome: Outcome
    failure_class: FailureClass | None = None
    message: Message = None
    platforms_verified: tuple[str, ...] = ()
    platforms_missing: tuple[str, ...] = ()
    upstream_requests: int = Field(default=0, ge=0, description="Requests that reached (or could reach) the upstream.")
    restored: bool = False
    finished_at: AwareDatetime

    @model_validator(mode="after")
    def _class_only_on_failure(self) -> ImageOutcome:
        failed = self.outcome in (Outcome.FAILED, Outcome.SKIPPED)
        if self.outcome is Outcome.FAILED and self.failure_class is None:
            raise ValueError("a failed image needs a failure_class")
        if not failed and self.failure_class is not None:
            raise ValueError(f"a {self.outcome} image has no failure_class")
        return self

    @property
    def key(self) -> str:
        reference = f":{self.tag}" if self.tag is not None else f"@{self.digest}"
        return f"{self.region}#{self.repository}{reference}"


class WarmRun(_Frozen):
    """One run of one warm set."""

    run_id: str = Field(min_length=1, max_length=128)
    warm_set: str = Field(min_length=1, max_length=256)
    trigger: RunTrigger
    requested_by: str | None = None
    status: RunStatus = RunStatus.QUEUED
    created_at: AwareDatetime
    finished_at: datetime | None = None
    deadline: AwareDatetime | None = Field(
        default=None,
        description=(
            "When an unfinished run is settled: images still without an outcome are recorded failed (lost) "
            "and the run finishes. Null: created_at + 25 h."
        ),
    )
    total: int = Field(default=0, ge=0, description="Images in the run (planner-settled ones included).")
    counts: dict[Outcome, int] = Field(default_factory=dict, description="Images finished, by outcome.")
    upstream_requests: int = Field(default=0, ge=0)
    budget: int = Field(default=0, ge=0, description="The run's max_upstream_requests_per_run.")
    stopped_upstreams: tuple[str, ...] = Field(default=(), description="Upstreams a rate limit stopped in this run.")
    message: Message = None
    announced: bool = Field(
        default=False,
        exclude=True,  # the store's bookkeeping, not part of the API's run
        description="Set once the run's Warm Run Finished event was put on the bus (WarmRunStore.mark_announced).",
    )

    @property
    def done(self) -> int:
        return sum(self.counts.values())


def run_deadline(run: WarmRun) -> datetime:
    """When ``run`` is settled if it has not finished (:data:`RUN_DEADLINE`): its own ``deadline``, set when
    it was planned or requested, else its creation's."""
    return run.deadline if run.deadline is not None else run.created_at + RUN_DEADLINE
