"""The warm planner: which warm sets are due, what each run warms, within which budget; tasks to the queue.

Two triggers (``functions/warm_planner``):

* the ``{"tick": true}`` schedule (every 5 minutes): :meth:`WarmPlannerService.tick` plans every set whose
  schedule fired since the fire last claimed for it (:func:`ecrcache.engine.warm.due_fire`), one run per
  fire with a run id derived from the set and the fire, and claims the fire after the run is planned
  (a tick that fails part-way leaves the fire for the next tick, which plans the same run id);
* a ``REQUEST#warm`` item's stream INSERT (``POST /v1/warm-sets/{name}/runs``): that run.

Planning one run (:meth:`WarmPlannerService.plan`, idempotent on the run id): a run already planned only
has its pending tasks sent again (a redelivery after a crash between recording and sending). Otherwise:
the set and its rule are read from the desired state (a missing one fails the run with a message that
names it); the tag patterns' upstream repositories are listed with the rule's credential, each listing
taking its requests from the upstream's token bucket first; the set is resolved, ordered, checked for
freshness in every Region of the rule, cut at the run's budget and at what the bucket grants; the run is
recorded with the outcomes settled here, then its tasks are sent to the warm queue.

The bucket (:class:`~ecrcache.ports.UpstreamBudget`) is shared by every run and keyed by the rule's
upstream URL and credential (:func:`ecrcache.engine.upstream_buckets.bucket_key`: an upstream's limit is per account);
its limit is the rule's credential's ``rate_limit``, else the upstream kind's default
(:func:`ecrcache.models.upstream.default_rate_limit`). A 429 while listing tags blocks the bucket until the
upstream's reset and stops the run for that upstream: every image is then skipped as ``rate_limit``.
Tokens a planning took and did not use are refunded; tokens of a planning that crashed are not (the
bucket under-spends, it never over-spends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ecrcache.engine.upstream_buckets import BucketLimit, bucket_key, bucket_label
from ecrcache.engine.warm import (
    RunContext,
    allocate,
    count_outcomes,
    due_fire,
    finished_status,
    plan_run,
    rate_limit_of,
    resolve,
    scheduled_run_id,
)
from ecrcache.errors import EcrcacheError
from ecrcache.models.credential import CredentialSpec
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.records import ResourceKind
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_inputs import PulledTag, TagListing
from ecrcache.models.warm_run import REQUEST_PARTITION, RUN_DEADLINE, Outcome, RunStatus, RunTrigger, WarmRun
from ecrcache.models.warm_set import WarmSetSpec
from ecrcache.observability import count_by, logger, metrics
from ecrcache.services.warm_finished import announce_finished
from ecrcache.services.warm_overdue import OverdueRuns

if TYPE_CHECKING:
    from ecrcache.models.warm_run import (
        ImageOutcome,
        WarmTask,
    )
    from ecrcache.ports import (
        PullStats,
        StateEventPublisher,
        StateStore,
        UpstreamBudget,
        UpstreamTags,
        WarmQueue,
        WarmRunStore,
    )

TAG_LIST_REQUESTS: Final = 10
"""Requests one pattern's tag listing may take (pages of up to 1,000 tags each)."""
POPULARITY_DEPTH: Final = 500
"""Most pulled tags read to rank a run's images (the set's ``top`` takes the first ``count`` of them)."""
DEFAULT_WINDOW_DAYS: Final = 14
DEFAULT_BLOCK: Final = timedelta(hours=1)
"""How long a 429 without a reset time blocks the upstream's bucket."""


class PlanRequest(BaseModel):
    """One run to plan: a scheduled fire's or a requested one's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1, max_length=128)
    warm_set: str = Field(min_length=1, max_length=256)
    trigger: RunTrigger
    created_at: AwareDatetime
    requested_by: str | None = None
    fire: AwareDatetime | None = None
    """The scheduled fire the run is for (claimed once it is planned)."""


class WarmRequest(BaseModel):
    """A ``REQUEST#warm`` item read back from the state table's stream (keys and image deserialised)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str = Field(min_length=1, max_length=128)
    warm_set: str = Field(min_length=1, max_length=256)

    @classmethod
    def from_stream_image(
        cls, keys: Mapping[str, object], new_image: Mapping[str, object] | None
    ) -> WarmRequest | None:
        """The request a stream record carries, or ``None`` (another item, or the request's TTL removal)."""
        if keys.get("pk") != REQUEST_PARTITION or new_image is None:
            return None
        return cls.model_validate({"run_id": keys.get("sk"), "warm_set": new_image.get("warm_set")})


@dataclass
class TickResult:
    planned: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """``<set>: <error>`` for every due set that could not be planned (its fire stays due), and every
    overdue run that could not be settled (it stays open)."""
    settled: list[dict[str, Any]] = field(default_factory=list)
    """Runs settled at their deadline (:mod:`ecrcache.services.warm_overdue`)."""

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "settled": self.settled, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class _Upstream:
    """What a run needs to know about its rule's upstream."""

    url: str
    credential: str | None
    limit: BucketLimit
    bucket: str
    """The upstream's token bucket (:func:`~ecrcache.engine.upstream_buckets.bucket_key`): URL and credential."""

    @property
    def label(self) -> str:
        return bucket_label(self.bucket)


@dataclass
class _Spend:
    """Upstream requests a planning spent (tag lists), and whether a rate limit stopped it."""

    requests: int = 0
    blocked_until: datetime | None = None


def _summary(run: WarmRun, *, sent: int, resent: bool = False) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "warm_set": run.warm_set,
        "status": run.status.value,
        "total": run.total,
        "tasks_sent": sent,
        "resent": resent,
    }


class WarmPlannerService:
    def __init__(
        self,
        *,
        desired: StateStore,
        runs: WarmRunStore,
        budget: UpstreamBudget,
        queue: WarmQueue,
        tags: UpstreamTags,
        pulls: PullStats,
        clock: Callable[[], datetime],
        stack_region: str,
        events: StateEventPublisher | None = None,
    ) -> None:
        """``events`` announces the runs finished here (nothing to warm, planning failed, settled at their deadline)
        on the default bus (``Warm Run Finished``); the worker announces the others."""
        self.events = events
        self.desired = desired
        self.runs = runs
        self.budget = budget
        self.queue = queue
        self.tags = tags
        self.pulls = pulls
        self.clock = clock
        self.stack_region = stack_region
        self.overdue = OverdueRuns(runs, clock, events=events)

    # -- triggers ------------------------------------------------------------------------------

    def due(self) -> list[PlanRequest]:
        """A request for every warm set whose schedule fired since its last claimed fire."""
        now = self.clock()
        claimed = self.runs.last_fires()
        due: list[PlanRequest] = []
        for name, stored in sorted(self.desired.snapshot().warm_sets.items()):
            schedule = str(stored.spec.get("schedule") or WarmSetSpec.model_fields["schedule"].default)
            fire = due_fire(schedule, now, last_claimed=claimed.get(name), created_at=stored.created_at)
            if fire is not None:
                run_id = scheduled_run_id(name, fire)
                due.append(
                    PlanRequest(run_id=run_id, warm_set=name, trigger=RunTrigger.SCHEDULE, created_at=fire, fire=fire)
                )
        return due

    def tick(self, plan: Callable[[PlanRequest], dict[str, Any]] | None = None) -> TickResult:
        """Settle the runs past their deadline (first: a few, bounded, so that a slow planning cannot starve
        them), then plan every due set with ``plan`` (default :meth:`plan`; the handler passes its idempotent
        wrapper) and claim its fire. A set that fails is reported and left due; the others go on."""
        result = TickResult()
        result.settled, result.failed = self.overdue.settle()
        for request in self.due():
            try:
                result.planned.append((plan or self.plan)(request))
                if request.fire is not None:
                    self.runs.claim_fire(request.warm_set, request.fire)
            except (EcrcacheError, ValueError) as exc:  # ValueError: a stored spec that no longer validates
                logger.warning(
                    "a due warm set could not be planned", extra={"warm_set": request.warm_set, "error": str(exc)}
                )
                result.failed.append(f"{request.warm_set}: {exc}")
        return result

    def requested(self, request: WarmRequest) -> PlanRequest:
        """The plan request of a run ``POST /v1/warm-sets/{name}/runs`` queued (its recorded time and caller)."""
        queued = self.runs.get_run(request.warm_set, request.run_id)
        return PlanRequest(
            run_id=request.run_id,
            warm_set=request.warm_set,
            trigger=RunTrigger.API,
            created_at=queued.created_at if queued is not None else self.clock(),
            requested_by=queued.requested_by if queued is not None else None,
        )

    # -- one run -------------------------------------------------------------------------------

    def plan(self, request: PlanRequest) -> dict[str, Any]:
        """Plan ``request``'s run once (a planned run's pending tasks are sent again); its summary."""
        if (resent := self._resend(request)) is not None:
            return resent
        now = self.clock()
        run, outcomes, tasks, upstream = self._plan_new(request, now)
        if not self.runs.create_run(run, outcomes, tasks):  # planned concurrently: theirs stands
            if upstream is not None:
                reserved = sum(t.reserved_requests for t in tasks)
                self.budget.refund(upstream.bucket, reserved, limit=upstream.limit, now=now)
            return self._resend(request) or {"run_id": request.run_id, "resent": False}
        self.queue.send(tasks)
        announce_finished(self.runs, self.events, run)  # nothing left for the worker: finished here
        metrics.add_metric(name="WarmRunsPlanned", unit="Count", value=1)
        metrics.add_metric(name="WarmTasksSent", unit="Count", value=len(tasks))
        logger.info("warm run planned", extra=_summary(run, sent=len(tasks)))
        return _summary(run, sent=len(tasks))

    def _resend(self, request: PlanRequest) -> dict[str, Any] | None:
        """A planned run's pending tasks sent again (its summary); ``None`` when the run is not planned."""
        pending = self.runs.pending_tasks(request.run_id)
        if pending is None:
            return None
        self.queue.send(pending)
        logger.info(
            "run already planned; pending tasks sent again", extra={"run_id": request.run_id, "tasks": len(pending)}
        )
        run = self.runs.get_run(request.warm_set, request.run_id)
        return _summary(run, sent=len(pending), resent=True) if run else {"run_id": request.run_id, "resent": True}

    def _plan_new(
        self, request: PlanRequest, now: datetime
    ) -> tuple[WarmRun, list[ImageOutcome], list[WarmTask], _Upstream | None]:
        stored = self.desired.get(ResourceKind.WARM_SET, request.warm_set)
        if stored is None:
            return self._failed(request, now, f"warm set {request.warm_set!r} does not exist (deleted?)"), [], [], None
        spec = WarmSetSpec.model_validate(stored.spec)
        rule_item = self.desired.get(ResourceKind.RULE, spec.rule)
        if rule_item is None:
            message = f"rule {spec.rule!r} of warm set {request.warm_set!r} does not exist: nothing to pull through"
            return self._failed(request, now, message, budget=spec.budget.max_upstream_requests_per_run), [], [], None
        rule = RuleSpec.model_validate(rule_item.spec)
        upstream = self._upstream(rule)
        spend = _Spend(blocked_until=self.budget.blocked_until(upstream.bucket, now=now))
        budget = spec.budget.max_upstream_requests_per_run
        listings = self._list_tags(spec, upstream, spend, budget=budget, now=now)
        top = self._top(spec, now)
        resolution = resolve(spec, prefix=spec.rule, rule=rule, tag_lists=listings, top=top)
        regions = rule.regions or (self.stack_region,)
        references = [w.reference for w in resolution.wanted]
        fresh = {region: self._fresh(region, references, now) for region in regions}
        context = RunContext(
            run_id=request.run_id,
            warm_set=request.warm_set,
            rule=spec.rule,
            upstream=upstream.bucket,
            platforms=spec.platforms,
            restore_archived=spec.restore_archived,
            now=now,
            limit=(upstream.limit.capacity, upstream.limit.window_seconds),
            schedule=spec.schedule,
        )
        plan = plan_run(resolution, context, regions=regions, fresh=fresh, budget_left=max(0, budget - spend.requests))
        tokens = 0
        if spend.blocked_until is None and plan.cost:
            tokens = self.budget.take(upstream.bucket, plan.cost, limit=upstream.limit, now=now)
        allocation = allocate(plan, tokens, why=self._why_skipped(upstream, spend))
        self.budget.refund(upstream.bucket, allocation.unused, limit=upstream.limit, now=now)
        outcomes = [*plan.settled, *allocation.skipped]
        run = self._run(request, now, outcomes, list(allocation.tasks), spend=spend, budget=budget, upstream=upstream)
        return run, outcomes, list(allocation.tasks), upstream

    # -- helpers -------------------------------------------------------------------------------

    def _upstream(self, rule: RuleSpec) -> _Upstream:
        credential: CredentialSpec | None = None
        if rule.credential is not None:
            stored = self.desired.get(ResourceKind.CREDENTIAL, rule.credential)
            credential = CredentialSpec.model_validate(stored.spec) if stored is not None else None
        requests, window = rate_limit_of(rule, credential)
        return _Upstream(
            url=rule.effective_url(),
            credential=rule.credential,
            limit=BucketLimit(capacity=requests, window_seconds=window),
            bucket=bucket_key(rule.effective_url(), rule.credential),
        )

    def _list_tags(
        self, spec: WarmSetSpec, upstream: _Upstream, spend: _Spend, *, budget: int, now: datetime
    ) -> dict[str, TagListing]:
        """Every pattern's upstream repository listed, its requests taken from the bucket first."""
        listings: dict[str, TagListing] = {}
        for repository in dict.fromkeys(p.repository for p in spec.parsed_tag_patterns()):
            if spend.blocked_until is not None:
                message = f"{upstream.label} is rate-limited until {spend.blocked_until.isoformat()}"
                listings[repository] = TagListing(repository, failure=FailureClass.RATE_LIMIT, message=message)
                continue
            allowance = min(TAG_LIST_REQUESTS, budget - spend.requests)
            taken = self.budget.take(upstream.bucket, allowance, limit=upstream.limit, now=now) if allowance > 0 else 0
            if taken == 0:
                why = (
                    "the run's budget is spent"
                    if allowance <= 0
                    else f"the request budget of {upstream.label} is spent"
                )
                listings[repository] = TagListing(repository, failure=FailureClass.RATE_LIMIT, message=why)
                continue
            listing = self.tags.list_tags(upstream.url, repository, credential=upstream.credential, max_requests=taken)
            self.budget.refund(upstream.bucket, taken - listing.requests, limit=upstream.limit, now=now)
            spend.requests += listing.requests
            listings[repository] = listing
            if listing.failure is FailureClass.RATE_LIMIT:  # the upstream answered 429
                count_by("UpstreamRateLimited", dimension="source", value="tag_list", count=1)
                until = listing.retry_at if listing.retry_at and listing.retry_at > now else now + DEFAULT_BLOCK
                self.budget.block(upstream.bucket, until=until, limit=upstream.limit, now=now)
                spend.blocked_until = until
        return listings

    def _top(self, spec: WarmSetSpec, now: datetime) -> list[PulledTag]:
        window = spec.top.window_days if spec.top is not None else DEFAULT_WINDOW_DAYS
        return [PulledTag(*row) for row in self.pulls.top_tags(spec.rule, POPULARITY_DEPTH, window, now)]

    def _fresh(self, region: str, references: Sequence[str], now: datetime) -> dict[str, datetime]:
        """When each reference was last verified by the warmer or refreshed by ECR in ``region`` (the later)."""
        if not references:
            return {}
        seen = dict(self.runs.verified(region, references))
        for reference, at in self.pulls.last_synced(region, references, now).items():
            seen[reference] = max(at, seen.get(reference, at))
        return seen

    @staticmethod
    def _why_skipped(upstream: _Upstream, spend: _Spend) -> str:
        if spend.blocked_until is not None:
            return f"{upstream.label} answered 429 (rate limit): stopped until {spend.blocked_until.isoformat()}"
        limit = upstream.limit
        return (
            f"the request budget of {upstream.label} is spent ({limit.capacity} per {limit.window_seconds} s; "
            "set the credential's rate_limit if the account allows more)"
        )

    def _run(
        self,
        request: PlanRequest,
        now: datetime,
        outcomes: Sequence[ImageOutcome],
        tasks: Sequence[WarmTask],
        *,
        spend: _Spend,
        budget: int,
        upstream: _Upstream,
    ) -> WarmRun:
        counts = count_outcomes(outcomes)
        done = not tasks
        fresh = counts.get(Outcome.FRESH, 0)
        # What planning found; the run's counts say how it ended (a finished run read "0 skipped or failed"
        # beside "2 skipped, 1 failed" when this did not say it was the plan).
        message = (
            f"planned {len(outcomes) + len(tasks)} images: {len(tasks)} to warm, {fresh} fresh, "
            f"{len(outcomes) - fresh} skipped or failed when planned"
        )
        return WarmRun(
            run_id=request.run_id,
            warm_set=request.warm_set,
            trigger=request.trigger,
            requested_by=request.requested_by,
            status=finished_status(counts) if done else RunStatus.QUEUED,
            created_at=request.created_at,
            finished_at=now if done else None,
            deadline=None if done else now + RUN_DEADLINE,  # the tasks are sent now: their retention starts now
            total=len(outcomes) + len(tasks),
            counts=counts,
            upstream_requests=spend.requests,
            budget=budget,
            stopped_upstreams=(upstream.url,) if spend.blocked_until is not None else (),
            message=message,
        )

    @staticmethod
    def _failed(request: PlanRequest, now: datetime, message: str, *, budget: int = 0) -> WarmRun:
        logger.warning("warm run failed before planning", extra={"run_id": request.run_id, "reason": message})
        return WarmRun(
            run_id=request.run_id,
            warm_set=request.warm_set,
            trigger=request.trigger,
            requested_by=request.requested_by,
            status=RunStatus.FAILED,
            created_at=request.created_at,
            finished_at=now,
            budget=budget,
            message=message,
        )


def parse_request(keys: Mapping[str, object], new_image: Mapping[str, object] | None) -> WarmRequest | None:
    """A stream record's warm request; ``None`` for another item. Raises ``ValueError`` for a malformed one."""
    try:
        return WarmRequest.from_stream_image(keys, new_image)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()}))
        raise ValueError(f"a warm request with invalid {fields}") from None


class TickInput(BaseModel):
    """The planner's schedule input (``template.yaml``): ``{"tick": true}``, the whole event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick: Literal[True]
