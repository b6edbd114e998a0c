"""The deep resync's fan-out (issue 14): a Region's per-repository deep read in shards, processed by workers.

A deep reconcile of a Region whose managed repositories are more than one shard (:class:`ShardFanout`'s
``shard_size``), when a shard queue is configured, is the **coordinator**: under the Region's lease it does what a
fast run does (rules, templates, exclusions, the per-repository actions the applied fingerprints call for, the
rules' statuses), then splits the managed repositories (sorted by name) into shards, records them and sends one
:class:`~ecrcache.models.shards.ShardTask` per shard (:meth:`ShardFanout.fan_out`). The run stays ``running``, with
its shard counts, until every shard has reported.

A **worker** (:class:`ShardWorkerService`, one SQS message each) deep-reads only its shard's repositories
(``DescribeRepositories`` by name, never the registry's listing), plans their actions with the current desired
rules, applies them, verifies what it touched and reports the shard ``done`` with its counts, in one transaction
with the run's ``done`` count. A redelivered shard already reported is dropped. A retryable failure marks it
``retrying`` and raises (SQS delivers it again); on the last attempt it is ``failed`` instead.

**Finishing** (:class:`ShardFinisher`): whoever makes ``done + failed == total`` once the coordinator is done (the
last worker, or the coordinator when its shards were quicker) writes the finished run, conditioned on it being
``running`` (exactly one caller wins); the winner clears the Regions' markers, folds the shards' failures into the
rules' statuses (``Synced`` false, ``RepositoriesFailed``; a rule that converged keeps its status) and emits the
run's metrics. **Deadline**: a fan-out whose deadline passed (a shard never reported: its worker was killed, its
message went to the DLQ) is settled by the next reconcile run touching the Region: the shards not reported are
counted failed and the run is finished. A shard redriven from the DLQ later is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

from pydantic import ValidationError

from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.engine.planner import plan_repositories
from ecrcache.engine.role_path import ANY_ROLE
from ecrcache.engine.shards import (
    failed_by_rule,
    finished_run,
    folded_status,
    shard_report,
    shards_of,
    unaccounted,
)
from ecrcache.engine.state_events import rule_condition_events
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.observed import Ownership
from ecrcache.models.shards import (
    DEFAULT_SHARD_DEADLINE_SECONDS,
    DEFAULT_SHARD_SIZE,
    MAX_SHARD_SIZE,
    ShardResult,
    ShardState,
    ShardTask,
)
from ecrcache.models.status import RunStatus
from ecrcache.observability import count_by, logger, metrics
from ecrcache.services.plan import PlanService
from ecrcache.services.reconcile_apply import RegionApplier
from ecrcache.services.state_events import announce

if TYPE_CHECKING:
    from ecrcache.engine.deadline import Deadline
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.observed import DesiredRule, ObservedRegion
    from ecrcache.models.region_records import RegionStatus
    from ecrcache.models.shards import FanoutMarker, ShardRecord, ShardReport
    from ecrcache.models.status import ReconcileRun, RegionStamp
    from ecrcache.ports import EcrRegistry, ShardQueue, StateEventPublisher, StateStore, StatusStore

__all__ = ["FanoutOutcome", "ShardFanout", "ShardFinisher", "ShardWorkerService", "run_metrics", "task_from_body"]


FAST_SHARD_SHARE: Final = (3, 8)
"""A fast run's shard is this share of ``shard_size`` (3/8). ``shard_size`` is sized for a deep shard's 3 reads a
repository; a fast shard's repository can take up to 8 ECR calls (lifecycle policy, repository policy, tag, untag and
tag mutability writes, then the 3 reads that verify them), so its shards hold fewer repositories for the same time."""

REPORT_ATTEMPTS: Final = 3
"""Tries of a shard's report refused because another delivery of the shard changed its state meanwhile."""


def task_from_body(body: str) -> ShardTask | None:
    """The task a shard queue message carries; ``None`` (logged, counted) when the body is not one: the same bytes
    would fail on every delivery, so the message is dropped, not retried (only the coordinator writes the queue)."""
    try:
        return ShardTask.model_validate_json(body)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "rule": e["msg"]} for e in exc.errors()]
        logger.error("a shard queue message is not a shard task; dropped", extra={"problems": problems[:10]})
        metrics.add_metric(name="ShardTasksMalformed", unit="Count", value=1)
        return None


def run_metrics(summary: Mapping[str, int]) -> None:
    """A finished run's metrics from its record's ``summary`` (README "Metrics"): runs, failed actions and Regions
    (zeros too, so a run that went well is seen as such), changes applied in all and by action."""
    metrics.add_metric(name="ReconcileRuns", unit="Count", value=1)
    metrics.add_metric(name="ReconcileFailed", unit="Count", value=summary.get("failed_actions", 0))
    metrics.add_metric(name="ReconcileRegionsFailed", unit="Count", value=summary.get("region_failures", 0))
    kinds = {kind.value for kind in ActionKind}
    applied = {key: n for key, n in summary.items() if key in kinds and n}
    if applied:
        metrics.add_metric(name="ChangesApplied", unit="Count", value=sum(applied.values()))
    for kind, count in applied.items():
        count_by("ReconcileActions", dimension="action", value=kind, count=count)


# --------------------------------------------------------------------------------------------------
# Finishing a fanned-out run


class ShardFinisher:
    """Finishes fanned-out runs (exactly once), folds their shards' failures into the rules' statuses, and settles
    fan-outs past their deadline."""

    def __init__(
        self, *, status: StatusStore, clock: Callable[[], datetime], events: StateEventPublisher | None = None
    ) -> None:
        self.status = status
        self.clock = clock
        self.events = events

    def finish_if_done(self, run_id: str, *, force: bool = False) -> ReconcileRun | None:
        """Finish the run when its coordinator is done and every shard reported (``force``: whatever is left, the
        deadline passed). The finished run when THIS call finished it, else ``None``."""
        progress = self.status.fanout_progress(run_id)
        if progress is None or progress.run.status is not RunStatus.RUNNING or progress.run.shards is None:
            return None
        if not force and (progress.coordinating or not progress.run.shards.finished):
            return None
        records = self.status.shard_records(run_id)
        done = finished_run(progress.run, records, regions=progress.regions, now=self.clock())
        if not self.status.finish_fanout(done):
            return None  # another caller finished it
        for region in sorted(progress.regions):
            self.status.clear_fanout(region, run_id)
        self._fold(done, records, progress.regions)
        run_metrics(done.summary)
        counts = done.shards
        metrics.add_metric(name="ReconcileShards", unit="Count", value=counts.total if counts else 0)
        metrics.add_metric(name="ReconcileShardsFailed", unit="Count", value=counts.failed if counts else 0)
        logger.info(
            "fanned-out reconcile finished", extra={"run_id": run_id, "status": done.status, "shards": done.shards}
        )
        return done

    def _fold(self, run: ReconcileRun, records: Sequence[ShardRecord], regions: Mapping[str, int]) -> None:
        """The rules some of whose repositories the shards did not converge: not ``Synced``; the rules whose changes
        the run left to its shards (``Applying``), the others: ``Synced`` (best effort: the run record says it all
        the same; a status write that keeps conflicting is logged, and the next run settles the condition)."""
        now = self.clock()
        failed, blind = failed_by_rule(records), unaccounted(records, regions)
        for region in sorted({*regions, *failed}):
            try:
                self._fold_region(region, failed.get(region, {}), run.run_id, now, accounted=region not in blind)
            except EcrcacheError as exc:
                logger.warning(
                    "shard failures not recorded on the rules", extra={"region": region, "error": exc.message}
                )

    def _fold_region(
        self, region: str, failed: Mapping[str, int], run_id: str, now: datetime, *, accounted: bool
    ) -> None:
        for _ in range(2):  # a version conflict: read again, write what still differs, once
            recorded = self.status.region_status(region)
            put = {
                prefix: status
                for prefix, current in recorded.statuses.items()
                if (
                    status := folded_status(current, failed.get(prefix, 0), run_id=run_id, now=now, accounted=accounted)
                )
                is not None
            }
            if not put or self.status.write_statuses(region, put, version=recorded.version):
                break
        else:
            raise RetryableError(f"the statuses of {region} kept changing; shard failures not recorded")
        events = [
            event
            for prefix, status in put.items()
            for event in rule_condition_events(region, prefix, recorded.statuses[prefix], status, run_id=run_id)
        ]
        announce(self.events, events)

    def release(self, region: str, marker: FanoutMarker) -> bool:
        """Whether the Region's marker no longer holds it: its run finished (the marker is left over: cleared), or
        its deadline passed (the run is settled now). ``False``: its shards are still out."""
        progress = self.status.fanout_progress(marker.run_id)
        if progress is None or progress.run.status is not RunStatus.RUNNING:
            self.status.clear_fanout(region, marker.run_id)
            return True
        now = self.clock()
        deadline = max(marker.deadline, progress.deadline or marker.deadline)
        if deadline > now:
            return False
        if not self._settle(marker.run_id, progress.regions):
            return False  # a shard could not be failed: the run is finished by the next settling, not with it open
        self.finish_if_done(marker.run_id, force=True)
        self.status.clear_fanout(region, marker.run_id)
        return True

    def _settle(self, run_id: str, regions: Mapping[str, int]) -> bool:
        """Count every shard not reported by the deadline as failed; whether every one now is final."""
        error = "no report by the fan-out's deadline (its worker stopped, or its message is in the DLQ)"
        settled = True
        for region, count in sorted(regions.items()):
            settled &= self.fail_shards(run_id, region, dict.fromkeys(range(count), error), expected=None)
        return settled

    def fail_shards(self, run_id: str, region: str, errors: Mapping[int, str], *, expected: ShardState | None) -> bool:
        """Fail the shards ``errors`` names (index -> why), unless they reported: one transaction each, conditioned
        on the state read (``expected`` ``None``: read now; a report arriving meanwhile wins, a shard never recorded
        is recorded failed). A shard that cannot be failed now (DynamoDB) is left to the deadline: logged. Whether
        every one was failed (or had reported)."""
        records = (
            {}
            if expected is not None
            else {r.index: r for r in self.status.shard_records(run_id) if r.region == region}
        )
        failed = True
        for index, error in sorted(errors.items()):
            found = records.get(index)
            state = expected if expected is not None else (found.state if found is not None else None)
            if found is not None and found.state.final:
                continue
            try:
                won = self.status.report_shard(
                    run_id, region, index, expected=state, state=ShardState.FAILED, error=error
                )
            except EcrcacheError as exc:
                logger.warning("shard not failed", extra={"region": region, "index": index, "error": exc.message})
                won = False
            failed &= won or self._final(run_id, region, index)
        return failed

    def _final(self, run_id: str, region: str, index: int) -> bool:
        """Whether the shard, whose failing was refused or not made, is final now (it reported meanwhile)."""
        try:
            record = self.status.shard(run_id, region, index)
        except EcrcacheError:
            return False
        return record is not None and record.state.final

    def settle(self, recorded: Iterable[RegionStatus]) -> None:
        """Settle the fan-outs past their deadline among the Regions' records (any run touching them does): a
        failure is logged, the next run tries again."""
        now = self.clock()
        for found in recorded:
            marker = found.fanout
            if marker is None or marker.deadline > now:
                continue
            try:
                self.release(found.region, marker)
            except EcrcacheError as exc:
                logger.warning(
                    "fan-out past its deadline not settled", extra={"region": found.region, "error": exc.message}
                )


# --------------------------------------------------------------------------------------------------
# The coordinator


def _not_recorded(finisher: ShardFinisher, run_id: str, region: str, exc: EcrcacheError) -> FanoutOutcome:
    """The fan-out could not be (fully) recorded, so nothing was sent: said in the run's errors. When its shard count
    was recorded after all (the shard items failed), its shards are failed at once, so the run can finish; when even
    that cannot be told, the run finishes as usual (a marker left behind is released by the next deep run: its run
    is finished)."""
    errors = [f"{region}: the Region's shards could not be recorded ({exc.message}): none was sent"]
    try:
        progress = finisher.status.fanout_progress(run_id)
        count = progress.regions.get(region, 0) if progress is not None else 0
        if count:
            finisher.fail_shards(run_id, region, dict.fromkeys(range(count), "could not be recorded"), expected=None)
    except EcrcacheError as again:
        logger.warning("fan-out not recorded, and not told", extra={"region": region, "error": again.message})
        return FanoutOutcome(errors=errors)
    return FanoutOutcome(shards=count, errors=errors)


@dataclass(slots=True)
class FanoutOutcome:
    """What fanning a Region's deep read out did: the shards recorded (and sent, less those that could not be),
    and the run's errors."""

    shards: int = 0
    errors: list[str] = field(default_factory=list)


class ShardFanout:
    """The coordinator's side: when a Region's deep read fans out, and how (records first, then the queue)."""

    def __init__(
        self,
        queue: ShardQueue,
        *,
        shard_size: int = DEFAULT_SHARD_SIZE,
        deadline_seconds: int = DEFAULT_SHARD_DEADLINE_SECONDS,
    ) -> None:
        if not 1 <= shard_size <= MAX_SHARD_SIZE:
            msg = f"shard_size must be between 1 and {MAX_SHARD_SIZE} (an SQS message's size), got {shard_size}"
            raise ValueError(msg)
        if deadline_seconds < 1:
            msg = f"deadline_seconds must be at least 1, got {deadline_seconds}"
            raise ValueError(msg)
        self.queue = queue
        self.shard_size = shard_size
        share, whole = FAST_SHARD_SHARE
        self.fast_shard_size = max(1, shard_size * share // whole)
        self.deadline = timedelta(seconds=deadline_seconds)

    def wanted(self, repositories: int) -> bool:
        """Whether this many repositories are more than one shard: a Region listing them has its deep read fanned
        out, a fast run changing them leaves the changes to shard workers."""
        return repositories > self.shard_size

    def fan_out(
        self,
        finisher: ShardFinisher,
        run: ReconcileRun,
        region: str,
        managed: Mapping[str, str],
        *,
        revision: int | None,
        known: Collection[str] = (),
        deep: bool = True,
    ) -> FanoutOutcome:
        """Record the Region's shards (marker, run total, shard items), then send them; never while another run's
        fan-out of the Region is unfinished (said in the run's errors: a marker left over by a finished run, or past
        its deadline, is released first). Shards that cannot be sent are failed. ``known``: the Region's rule prefixes
        (desired, retired, ECR's), among which the workers pick the repositories' owners (:class:`ShardTask`).
        ``deep`` false: ``managed`` are the repositories a fast run's plan changes (the workers plan them from the
        applied fingerprints, as the run did), in shards of :attr:`fast_shard_size`, and the Region's marker names
        their rules (a later run leaves to this fan-out only their repositories' changes)."""
        shards = shards_of(
            managed,
            run_id=run.run_id,
            region=region,
            size=self.shard_size if deep else self.fast_shard_size,
            revision=revision,
            known=known,
            deep=deep,
        )
        if not shards:
            return FanoutOutcome()
        prefixes = None if deep else set(managed.values())
        try:
            held = self._record(finisher, run, region, [record for _, record in shards], prefixes)
        except EcrcacheError as exc:
            return _not_recorded(finisher, run.run_id, region, exc)
        if held is not None:
            message = f"{region}: the deep read of {region} is still running in run {held.run_id}: no other is started"
            return FanoutOutcome(errors=[message])
        tasks = [task for task, _ in shards]
        try:
            unsent = sorted(set(self.queue.send(tasks)))
        except EcrcacheError as exc:
            logger.warning("shard tasks not sent", extra={"region": region, "error": exc.message})
            unsent = [task.index for task in tasks]
        failed = dict.fromkeys(unsent, "could not be sent to the shard queue")
        finisher.fail_shards(run.run_id, region, failed, expected=ShardState.QUEUED)
        errors = [f"{region}: {len(unsent)} of {len(tasks)} shards could not be sent to the shard queue"] * bool(unsent)
        logger.info(
            "reconcile fanned out",
            extra={"region": region, "deep": deep, "shards": len(tasks), "unsent": len(unsent)},
        )
        return FanoutOutcome(shards=len(tasks), errors=errors)

    def _record(
        self,
        finisher: ShardFinisher,
        run: ReconcileRun,
        region: str,
        records: Sequence[ShardRecord],
        prefixes: Collection[str] | None,
    ) -> FanoutMarker | None:
        """Record the fan-out; ``None`` when recorded, else the marker of the run whose fan-out holds the Region (one
        left by a finished run, or past its deadline, is released and the fan-out recorded after all)."""
        store = finisher.status
        held = store.start_fanout(run, region, records, deadline=finisher.clock() + self.deadline, prefixes=prefixes)
        if held is not None and held.run_id != run.run_id and finisher.release(region, held):
            held = store.start_fanout(
                run, region, records, deadline=finisher.clock() + self.deadline, prefixes=prefixes
            )
        return held

    @staticmethod
    def close(finisher: ShardFinisher, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> ReconcileRun:
        """The coordinating run is done: its record (``running`` until its shards report) and stamps; finished now
        if its shards all reported already. The run as it is recorded after."""
        finisher.status.close_fanout(run, stamps)
        finished = finisher.finish_if_done(run.run_id)
        if finished is not None:
            return finished
        progress = finisher.status.fanout_progress(run.run_id)
        return progress.run if progress is not None else run.model_copy(update={"status": RunStatus.RUNNING})


# --------------------------------------------------------------------------------------------------
# The worker


def _in_time(observed: ObservedRegion) -> ObservedRegion:
    """``observed`` when every repository was read; ``RetryableError`` when the invocation's time ran out first."""
    if observed.unread:
        missed = len(observed.unread)
        msg = f"the invocation's time ran out: {missed} of the shard's repositories not read; the shard is retried"
        raise RetryableError(msg)
    return observed


class ShardWorkerService:
    """One shard of a deep resync: deep-read its repositories, plan, apply, verify, report (see the module)."""

    def __init__(
        self,
        *,
        desired: StateStore,
        status: StatusStore,
        registry: Callable[[str], EcrRegistry],
        clock: Callable[[], datetime],
        stack_region: str,
        warmer_role_arn: str | None = None,
        role_path: RoleScope = ANY_ROLE,
        events: StateEventPublisher | None = None,
    ) -> None:
        """As the reconciler's service is built (``warmer_role_arn`` is accepted for that: a shard plans no
        registry-level exclusion, the coordinator does); ``events`` announces the rules' condition changes the
        run's finish makes."""
        self.status = status
        self.registry = registry
        self.clock = clock
        self.role_path = role_path
        self.desired = desired
        self.planner = PlanService(
            desired=desired,
            status=status,
            registry=registry,
            stack_region=stack_region,
            warmer_role_arn=warmer_role_arn,
            role_path=role_path,
        )
        self.applier = RegionApplier(status=status, registry=registry)
        self.finisher = ShardFinisher(status=status, clock=clock, events=events)

    def process(self, task: ShardTask, *, last_attempt: bool, deadline: Deadline | None = None) -> ShardResult:
        """One delivery of ``task``. Raises :class:`~ecrcache.errors.RetryableError` when the shard should be
        delivered again (it is then ``retrying``); on the ``last_attempt`` the shard is ``failed`` instead.
        ``deadline``: the invocation's time (no shard is started past it: a retry, as any retryable failure)."""
        record = self.status.shard(task.run_id, task.region, task.index)
        if record is None or record.state.final:
            return self._dropped(task, reported=record is not None)
        try:
            if deadline is not None and deadline.expired():
                raise RetryableError("too little time left in this invocation to process a shard")
            report = self._work(task, deadline)
        except EcrcacheError as exc:
            return self._failed(task, record.state, exc, last_attempt=last_attempt)
        return self._report(task, record.state, ShardState.DONE, report=report)

    def _work(self, task: ShardTask, deadline: Deadline | None = None) -> ShardReport:
        """Deep-read the shard's repositories, plan, apply, verify and record; what it came to. A read that runs
        into the ``deadline`` (reads under way abandoned, none started past it) raises ``RetryableError``: the shard
        is delivered again to a fresh invocation, or failed on its last attempt, rather than the invocation killed
        at its timeout with the shard unreported."""
        region = task.region
        desired, revision = self._desired(region)
        applied = self.status.applied_of(region, task.repositories)
        registry = self.registry(region)
        observed = _in_time(
            registry.observe_repositories(task.repositories, applied=applied, stop=deadline, deep=task.deep)
        )
        plan = plan_repositories(desired, observed, role_path=self.role_path, known=task.prefixes, deep=task.deep)
        outcome = self.applier.apply(region, plan, observed, applied, Ownership())
        left = Plan()
        if any(action.kind.calls_aws for action in plan.actions):
            current = {**applied, **outcome.recorded}
            after = registry.observe_repositories(sorted(outcome.touched), applied=current, stop=deadline)
            if after.unread:  # written, not verified: not trusted (the retry, or the next run, writes them again)
                self.applier.mark_unverified(region, after.unread, current)
            after = _in_time(after)
            left = plan_repositories(desired, after, role_path=self.role_path, known=task.prefixes)
            unsure = {action.target for action in left.actions} | (
                self._moved(region, desired, revision, plan) & outcome.touched
            )
            if unsure:
                self.applier.mark_unverified(region, unsure, current)
        return shard_report(
            task, found=len(observed.repositories), applied=outcome.applied, failures=outcome.failures, left=left
        )

    def _moved(self, region: str, desired: Sequence[DesiredRule], revision: int, plan: Plan) -> set[str]:
        """The repositories the shard wrote for rules that changed since it read them: it applied the snapshot read
        at its start, holding no Region lease, so what it wrote for them may be stale (not trusted: the next fast run
        reads them again). A write to another rule meanwhile leaves its writes trusted."""
        if self.desired.snapshot(warm_sets=False).revision == revision:
            return set()
        now = {rule.prefix: rule for rule in self._desired(region)[0]}
        moved = {rule.prefix for rule in desired if now.get(rule.prefix) != rule}
        return {a.target for a in plan.actions if a.kind.scope == "repository" and a.rule_prefix in moved}

    def _desired(self, region: str) -> tuple[list[DesiredRule], int]:
        """The Region's desired rules now, their credentials resolved, and the revision read. A credential's replica
        is not waited for: the coordinator planned the shard with the rules it could plan (their repositories
        only)."""
        snapshot = self.desired.snapshot(warm_sets=False)
        rules = self.planner.desired_rules(snapshot, [region], retired=False).desired_in(region)
        return [rule.model_copy(update={"credential_wait": None}) for rule in rules], snapshot.revision

    def _failed(self, task: ShardTask, read: ShardState, exc: EcrcacheError, *, last_attempt: bool) -> ShardResult:
        """A failure of the shard's run: ``failed`` on the last attempt (or when no retry can help), else
        ``retrying`` (counted on its first retry) and raised, so SQS delivers it again."""
        logger.warning(
            "shard failed",
            extra={"run_id": task.run_id, "region": task.region, "index": task.index, "error": exc.message},
        )
        if last_attempt or not isinstance(exc, RetryableError):
            return self._report(task, read, ShardState.FAILED, error=exc.message)
        if read is ShardState.QUEUED:
            self.status.report_shard(
                task.run_id, task.region, task.index, expected=read, state=ShardState.RETRYING, error=exc.message
            )
        raise exc

    def _report(
        self,
        task: ShardTask,
        read: ShardState,
        state: ShardState,
        *,
        report: ShardReport | None = None,
        error: str | None = None,
    ) -> ShardResult:
        """Report the shard (one transaction with the run's count), then finish the run if it was the last one. A
        report refused because another delivery of the shard moved it meanwhile (marked it ``retrying``) is made
        again against the state read again, a few times; one refused because the shard is final is dropped."""
        for _ in range(REPORT_ATTEMPTS):
            if self.status.report_shard(
                task.run_id, task.region, task.index, expected=read, state=state, report=report, error=error
            ):
                break
            record = self.status.shard(task.run_id, task.region, task.index)
            if record is None or record.state.final:  # another delivery reported it first
                return self._dropped(task, reported=record is not None)
            read = record.state
        else:
            raise RetryableError("the shard's state kept changing under its report (other deliveries); try again")
        finished = self.finisher.finish_if_done(task.run_id)
        outcome: Literal["done", "failed"] = "done" if state is ShardState.DONE else "failed"
        return ShardResult(
            run_id=task.run_id,
            region=task.region,
            index=task.index,
            outcome=outcome,
            report=report,
            finished=finished is not None,
        )

    def _dropped(self, task: ShardTask, *, reported: bool) -> ShardResult:
        """A delivery of a shard already reported (or unknown): counted nothing. The run is finished if it is done:
        the delivery that reported last may have failed to finish it (finishing is idempotent; it raises on
        failure, so this delivery is retried)."""
        metrics.add_metric(name="ReconcileShardsDropped", unit="Count", value=1)
        logger.info("shard already reported (or unknown); dropped", extra={"run_id": task.run_id, "index": task.index})
        finished = self.finisher.finish_if_done(task.run_id) if reported else None
        return ShardResult(
            run_id=task.run_id, region=task.region, index=task.index, outcome="dropped", finished=finished is not None
        )
