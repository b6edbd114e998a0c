"""Reconcile: desired state -> observe ECR -> plan -> apply -> verify -> record status.

One use case for every trigger (stream, schedule, CloudTrail drift, pull-through events, the API):
the trigger only chooses the :class:`Scope` (which Regions, which repositories to read deeply).
Planning is :class:`~ecrcache.services.plan.PlanService`'s (read only, shared with ``GET /v1/plan``).
The plan is applied action by action; a failure on one action never stops the others. Verify
re-reads (deeply, for every repository the run touched) and plans again: whatever is left is a
recorded failure on its rule's ``Synced`` condition. What all that means for each rule's status,
for ownership and for the run summary is decided by the pure :mod:`ecrcache.engine.status`; this
service does the I/O around it.

A credential's secret replicas (rules outside the stack's Region need their Region's:
:mod:`ecrcache.engine.replicas`) are reconciled in the same run, by :class:`~.replicas.ReplicaPhases`:
added before the Regions are planned (so a rule there finds its replica), removed after them (once ECR
there, as verify read it, has no rule using it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from ecrcache.engine.plan import Plan
from ecrcache.engine.planner import plan as plan_regions
from ecrcache.engine.role_path import ANY_ROLE
from ecrcache.engine.shards import managed_repositories, repository_work, without_repositories
from ecrcache.engine.status import (
    RegionSummary,
    RunSummary,
    action_errors,
    run_status,
)
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.status import ReconcileRun, RegionStamp, RunTrigger
from ecrcache.observability import logger
from ecrcache.services.plan import FAST_SCOPE, PlanService, Scope, release_code
from ecrcache.services.quiet_regions import QuietRegions, unsettled
from ecrcache.services.reconcile_apply import RegionApplier
from ecrcache.services.reconcile_shards import ShardFinisher, run_metrics
from ecrcache.services.replicas import ReplicaPhases
from ecrcache.services.rule_statuses import RuleStatusRecorder

if TYPE_CHECKING:
    from datetime import datetime

    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.observed import ObservedRegion, ObservedRepository, ObservedRule
    from ecrcache.models.region_records import RegionState, RegionStatus
    from ecrcache.models.shards import FanoutMarker
    from ecrcache.models.status import RuleStatusRecord
    from ecrcache.ports import EcrRegistry, SecretReplicator, StateEventPublisher, StateStore, StatusStore
    from ecrcache.services.forwarders import ForwarderOutcome, ForwarderPhase
    from ecrcache.services.plan import DesiredByRegion
    from ecrcache.services.reconcile_apply import RegionOutcome
    from ecrcache.services.reconcile_shards import ShardFanout
    from ecrcache.services.replicas import ReplicaOutcome
    from ecrcache.services.rotation_schedules import RotationSchedules

LEASE_SECONDS = 300
_EVENT_TRIGGERS = frozenset({RunTrigger.STREAM, RunTrigger.CLOUDTRAIL, RunTrigger.CACHE_EVENT})
"""Retried by Lambda / EventBridge when the run raises; the schedules come back by themselves."""
_ECR_EVENT_TRIGGERS = frozenset({RunTrigger.CLOUDTRAIL, RunTrigger.CACHE_EVENT})
"""ECR's events: they say something changed in one Region's ECR, never in a credential's rotation schedule
(changed by desired-state writes - the stream - and checked by the resyncs). Their runs skip the schedule phase:
it takes the stack Region's lease again after the Region's was released, and another run holding it then (the
queue's second concurrent batch, a stream batch, a resync) would make an already reconciled Region's events come
back as busy. The secret replica phases stay: a Region's rules need their replicas, and a held lease there is
never busy (:class:`~.replicas.ReplicaPhases` leaves the replicas to the run holding it)."""


@dataclass(slots=True)
class _RunLog:
    """What a run met so far, Region by Region."""

    errors: list[str]
    regions: list[RegionSummary] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    retryable: bool = False
    rules: dict[str, Mapping[str, ObservedRule]] = field(default_factory=dict)
    """ECR's rules after the run, by Region reconciled (what replica removals are checked against)."""
    stamps: dict[str, RegionStamp] = field(default_factory=dict)
    """The Regions reconciled, stamped with this run (written with the finished run record)."""
    started: bool = False
    """The run record says ``running`` (written before the first lease: a run that only reads writes it once)."""
    fanned: bool = False
    """A Region's deep read went to shard workers: the run finishes when they have all reported."""

    def add_replicas(self, outcome: ReplicaOutcome) -> None:
        """Count a replica phase in the run (its errors, its line in the summary)."""
        self.errors.extend(outcome.errors)
        summary = outcome.summary()
        if summary is not None:
            self.regions.append(summary)

    def add_forwarder(self, outcome: ForwarderOutcome) -> None:
        """Count a Region's forwarder phase in the run (its errors, its line in the summary)."""
        self.errors.extend(outcome.errors)
        if outcome.summary is not None:
            self.regions.append(outcome.summary)

    @property
    def summary(self) -> RunSummary:
        return RunSummary(tuple(self.regions))


class ReconcileService:
    """One reconcile run over every Region it covers: plan (with :class:`PlanService`), apply, verify,
    record; each Region under its lease. The full ECR port: it can write."""

    def __init__(
        self,
        *,
        desired: StateStore,
        status: StatusStore,
        registry: Callable[[str], EcrRegistry],
        clock: Callable[[], datetime],
        stack_region: str,
        warmer_role_arn: str | None = None,
        replicas: SecretReplicator | None = None,
        sleep: Callable[[float], None] = time.sleep,
        schedules: RotationSchedules | None = None,
        role_path: RoleScope = ANY_ROLE,
        events: StateEventPublisher | None = None,
        forwarders: ForwarderPhase | None = None,
        shards: ShardFanout | None = None,
        planner_code: Callable[[], str] = release_code,
    ) -> None:
        """``replicas`` reconciles credentials' secret replicas (``None``: not at all, and rules outside
        the stack's Region that take a credential are blocked); ``sleep`` paces the wait for new ones;
        ``schedules`` converges credentials' rotation schedules (``None``: not at all); ``role_path`` is the
        stack's EcrRolePath (a rule naming a role outside it is blocked: the reconciler may not pass it);
        ``events`` announces rules' condition changes on the default bus (``None``: not at all); ``forwarders``
        keeps an event forwarder in every other Region a rule names (``None``: none, :mod:`.forwarders`); ``shards``
        fans a deep run's read of a Region with more repositories than one shard out to shard workers (``None``:
        every deep read in this run, :mod:`.reconcile_shards`); ``planner_code``: the planning code's identity, part
        of the Regions' quiet digests (:mod:`ecrcache.adapters.code_identity`)."""
        self.shards = shards
        self.finisher = ShardFinisher(status=status, clock=clock, events=events)
        self.applier = RegionApplier(status=status, registry=registry)
        self.forwarders = forwarders
        self.schedules = schedules
        self.events = events
        self.desired = desired
        self.status = status
        self.registry = registry
        self.clock = clock
        self.statuses = RuleStatusRecorder(status=status, registry=registry, clock=clock, events=events)
        self.stack_region = stack_region
        self.planner = PlanService(
            desired=desired,
            status=status,
            registry=registry,
            stack_region=stack_region,
            warmer_role_arn=warmer_role_arn,
            secrets=replicas,
            role_path=role_path,
            forwarders=forwarders.planner if forwarders is not None else None,
            planner_code=planner_code,
        )
        self.quiet = QuietRegions(
            planner=self.planner, status=status, clock=clock, events=events, forwarders=forwarders
        )
        self.replicas = (
            None
            if replicas is None
            else ReplicaPhases(replicas=replicas, status=status, clock=clock, stack_region=stack_region, sleep=sleep)
        )

    def plan(self, scope: Scope = FAST_SCOPE) -> Plan:
        """What a reconcile of ``scope`` would do now (read only)."""
        return self.planner.plan(scope)

    # -- a run ---------------------------------------------------------------------------------

    def reconcile(self, scope: Scope, trigger: RunTrigger, *, run_id: str | None = None) -> ReconcileRun:
        run = ReconcileRun(
            run_id=run_id or str(uuid.uuid4()), trigger=trigger, scope=scope.describe(), started_at=self.clock()
        )
        log = _RunLog(errors=[])
        if not _quiet_scope(scope) or run_id is not None:  # long reads, or a run someone waits for: shown at once
            self._started(run, log)
        inputs, _ = self._read_desired(scope, run, log)
        log.errors[:0] = [f"{prefix}: {problem}" for prefix, problem in sorted(inputs.problems.items())]
        self.finisher.settle(inputs.recorded.values())  # fan-outs past their deadline (any run touching them)
        for region in inputs.regions:
            self._run_region(region, inputs, scope=scope, run=run, log=log)
        if scope.deep and scope.regions is None:
            self._sweep_forwarders(inputs, run.run_id, log)
        if self.replicas is not None:
            log.add_replicas(self.replicas.remove(inputs, log.rules, run_id=run.run_id))
        if self.schedules is not None and trigger not in _ECR_EVENT_TRIGGERS:
            self._converge_schedules(run.run_id, log)
        done = self._finish(run, log)
        if trigger in _EVENT_TRIGGERS:
            if log.busy:
                raise RetryableError(f"another reconcile is running in {', '.join(log.busy)}; the trigger will retry")
            if log.retryable:
                raise RetryableError(f"the reconcile failed for now ({log.errors[-1]}); the trigger will retry")
        return done

    def _converge_schedules(self, run_id: str, log: _RunLog) -> None:
        """The rotation-schedule phase (:mod:`ecrcache.services.rotation_schedules`), under the lease of the stack's
        Region (where the secrets are): two runs at once would both act on the same secrets (schedule calls, the
        sweep of abandoned rotations). Held by another run: that run does it (a busy Region, as for rules)."""
        assert self.schedules is not None
        if not self.status.acquire_lease(self.stack_region, run_id, now=self.clock(), ttl_seconds=LEASE_SECONDS):
            if self.stack_region not in log.busy:
                log.busy.append(self.stack_region)
            return
        try:
            snapshot = self.desired.snapshot(warm_sets=False)
            log.errors.extend(self.schedules.converge(snapshot).errors)
        except EcrcacheError as exc:
            log.errors.append(f"rotation schedules not converged: {exc.message}")
        finally:
            self.status.release_lease(self.stack_region, run_id)

    def _started(self, run: ReconcileRun, log: _RunLog) -> None:
        if not log.started:
            self.status.put_run(run)
            log.started = True

    def _read_desired(
        self, scope: Scope, run: ReconcileRun, log: _RunLog
    ) -> tuple[DesiredByRegion, list[RuleStatusRecord]]:
        """The desired rules per Region, after the secret replicas they need were added (when they can be).

        Records still in the store's former layout are migrated first (once: under no lease, the migration
        keeps a status already in the current layout and is idempotent)."""
        if self.replicas is None:
            inputs, records = self.planner.read_desired(scope, applied=False)
        else:
            snapshot = self.desired.snapshot(warm_sets=False)
            secrets = self.planner.read_secrets(snapshot)
            plan = self.planner.replica_plan(snapshot, secrets, scope)
            if plan:
                self._started(run, log)
            added = self.replicas.add(plan, secrets, run_id=run.run_id)
            log.add_replicas(added)
            inputs, records = self.planner.read_desired(
                scope, snapshot=snapshot, secrets=added.secrets, failures=added.failures, applied=False
            )
        if inputs.home is not None and not inputs.home.status.migrated:
            moved = self.status.migrate_legacy(inputs.regions)
            logger.info("status records migrated to one item per Region", extra={"moved": moved})
            return self._read_desired(scope, run, log) if moved or self.replicas is None else (inputs, records)
        return inputs, records

    def _run_region(
        self, region: str, inputs: DesiredByRegion, *, scope: Scope, run: ReconcileRun, log: _RunLog
    ) -> None:
        """Reconcile one Region under its lease (unless a first read finds nothing to do there: a quiet
        Region needs no lease, it writes nothing); a failure of the whole Region is recorded on its rules."""
        run_id = run.run_id
        try:
            if _quiet_scope(scope) and self._quiet_region(region, inputs, scope, run_id, log):
                return
        except EcrcacheError as exc:  # the Region is read again under its lease, where a failure is recorded
            logger.warning("first read of a Region failed", extra={"region": region, "error": exc.message})
        if not self.status.acquire_lease(region, run_id, now=self.clock(), ttl_seconds=LEASE_SECONDS):
            log.busy.append(region)
            return
        self._started(run, log)
        try:
            self._run_region_ecr(region, inputs, scope=scope, run=run, log=log)
            self._converge_forwarder(region, inputs, run_id, log)
        finally:
            self.status.release_lease(region, run_id)

    def _run_region_ecr(
        self, region: str, inputs: DesiredByRegion, *, scope: Scope, run: ReconcileRun, log: _RunLog
    ) -> None:
        """The Region's ECR work (the caller holds its lease); a whole Region's failure is recorded on its rules."""
        run_id = run.run_id
        try:
            outcome, left = self._reconcile_region(region, inputs, scope, run, log)
        except EcrcacheError as exc:
            log.errors.append(f"{region}: {exc.message}")
            log.regions.append(RegionSummary.region_failure())
            log.retryable |= isinstance(exc, RetryableError)
            self.statuses.record_region_failure(
                region, inputs.desired_in(region), exc, run_id, revision=inputs.revision
            )
            return
        log.errors.extend(action_errors(region, outcome.failures))
        log.regions.append(outcome.summary(left))
        log.rules[region] = outcome.rules
        if inputs.desired_in(region):  # a Region with no desired rule has no status to stamp
            log.stamps[region] = RegionStamp(run_id=run_id, at=outcome.at, revision=inputs.revision)

    def _fan_out(
        self, region: str, inputs: DesiredByRegion, run: ReconcileRun, outcome: RegionOutcome, log: _RunLog
    ) -> bool:
        """Send the Region's shards (:attr:`RegionOutcome.shards`: its deep read's, or its many changes'); whether
        any was recorded (the run then finishes when they have all reported, whatever happens to it after)."""
        if outcome.shards is None or self.shards is None:
            return False
        known = {*inputs.prefixes(region), *outcome.rules}  # the owners a deep read picks among
        fanned = self.shards.fan_out(
            self.finisher, run, region, outcome.shards, revision=inputs.revision, known=known, deep=outcome.shards_deep
        )
        log.errors.extend(fanned.errors)
        log.fanned |= fanned.shards > 0
        return fanned.shards > 0

    def _quiet_region(self, region: str, inputs: DesiredByRegion, scope: Scope, run_id: str, log: _RunLog) -> bool:
        """Whether a first read finds nothing to do in the Region (:mod:`.quiet_regions`): it is then done with no
        lease and no write but its digest's (the run's record stamps it). ``False``: work, done under its lease."""
        found = self.quiet.find(region, inputs, scope, run_id)
        if found is None:
            return False
        log.regions.append(RegionSummary())
        log.rules[region] = found.rules
        if inputs.desired_in(region):  # the stamp only moves forward: a run that reconciled it meanwhile keeps its own
            log.stamps[region] = RegionStamp(run_id=run_id, at=found.at, revision=inputs.revision)
        return True

    def _converge_forwarder(self, region: str, inputs: DesiredByRegion, run_id: str, log: _RunLog) -> None:
        """The Region's event forwarder, after its ECR work whatever became of it (:mod:`.forwarders`)."""
        if self.forwarders is not None:
            wanted = region in inputs.named_regions
            log.add_forwarder(self.forwarders.converge_recorded(region, wanted=wanted, run_id=run_id))

    def _sweep_forwarders(self, inputs: DesiredByRegion, run_id: str, log: _RunLog) -> None:
        """Deep runs over every Region: strays deleted, each under its Region's lease (:meth:`.sweep_strays`)."""
        if self.forwarders is not None:
            outcomes, busy = self.forwarders.sweep_strays(inputs.regions, run_id, lease_seconds=LEASE_SECONDS)
            for outcome in outcomes:
                log.add_forwarder(outcome)
            log.busy.extend(busy)

    def _finish(self, run: ReconcileRun, log: _RunLog) -> ReconcileRun:
        """Store the finished run record and report it (metrics, log)."""
        summary = log.summary
        status = run_status(summary, errors=bool(log.errors), busy=bool(log.busy))
        errors = list(log.errors)
        if log.busy:
            errors.append(f"another reconcile holds the lease for {', '.join(log.busy)}")
        done = run.model_copy(
            update={
                "finished_at": self.clock(),
                "status": status,
                "summary": summary.as_dict(),
                "errors": tuple(errors),
            }
        )
        if log.fanned and self.shards is not None:  # running until its shards report; whoever finishes it reports it
            done = self.shards.close(self.finisher, done, log.stamps)
        else:
            self.status.finish_run(done, log.stamps)
            run_metrics(done.summary)
        logger.info("reconcile finished", extra={"run_id": run.run_id, "status": done.status, "summary": done.summary})
        return done

    # -- one Region ----------------------------------------------------------------------------

    def _reconcile_region(
        self, region: str, inputs: DesiredByRegion, scope: Scope, run: ReconcileRun, log: _RunLog
    ) -> tuple[RegionOutcome, Plan]:
        run_id, desired = run.run_id, inputs.desired_in(region)
        observed, state, reads, deep = self._observe_first(region, inputs, scope, self.status.read_region(region))
        ownership, applied = state.status.ownership, dict(state.applied)
        plan = self.planner.plan_region(region, inputs, observed, ownership)
        leave, holder = self._leave_to_shards(region, plan, observed, state.status.fanout, run_id)
        here = without_repositories(plan, leave)
        outcome = self.applier.apply(region, here, observed, applied, ownership)
        outcome.applying, outcome.applying_run = leave, holder
        if any(a.kind.calls_aws for a in here.actions):
            after, left, read = self._verify(region, inputs, reads, outcome)
        else:  # nothing in ECR changed: the observation is still what verify would read
            after, left, read = observed, Plan(), state.status
        outcome.rules = after.rules
        if settled := _settled(reads, after, left, deep, outcome.recorded, leave=leave):
            self.status.record_applied(region, settled)
        if scope.deep:  # the daily deep resync also checks every credential against its upstream
            outcome.validated.update(r.prefix for r in desired if r.spec.credential is not None)
        if scope.deep and not reads.deep:  # the run read the Region on the fast path: its shards read it deeply
            outcome.shards = managed_repositories(after, plan, desired, inputs.retired_in(region))
        elif leave and holder == run_id:  # its changes to more repositories than one shard: its shards make them
            outcome.shards, outcome.shards_deep = leave, False
        if outcome.shards is not None and not self._fan_out(region, inputs, run, outcome, log) and holder == run_id:
            # Its shards could not be recorded: the changes it left to them are not made (left, as the errors say).
            unmade = (a for a in plan.actions if a.kind.scope == "repository" and a.target in leave)
            left = Plan(actions=(*left.actions, *unmade))
            outcome.applying, outcome.applying_run = {}, None
        outcome.at = self.statuses.record(
            region,
            inputs=inputs,
            observed=after,
            plan=here,
            left=left,
            outcome=outcome,
            run_id=run_id,
            recorded=state.status,
        )
        if not (left.actions or leave or outcome.failures or outcome.shards is not None):
            self.quiet.record_converged(region, inputs, after, read)
        return outcome, left

    def _leave_to_shards(
        self, region: str, plan: Plan, observed: ObservedRegion, marker: FanoutMarker | None, run_id: str
    ) -> tuple[dict[str, str], str | None]:
        """The repositories (name -> rule) whose changes the run leaves to shard workers, and whose workers (none:
        the run makes every change itself, as without shard workers configured).

        While another run's fan-out of the Region is unfinished, the changes of the repositories its shards may
        hold are left to it, however few (a run never races an unfinished fan-out over the same repositories; what
        its shards do not make, the first run after it finds still to do): not those of a repository ECR created
        after it started, of a rule a fast run's fan-out does not hold, or that this run read deeply (:func:`_waits`),
        unless they are too many to make here. Else a plan changing more repositories than one shard leaves them
        all to this run's own shards; fewer are made here."""
        if self.shards is None:
            return {}, None
        work = repository_work(plan)
        if work and marker is not None and marker.run_id != run_id and not self.finisher.release(region, marker):
            found = observed.repositories
            waiting = {name: rule for name, rule in work.items() if _waits(marker, found.get(name), rule)}
            if self.shards.wanted(len(work) - len(waiting)):  # too many to make here, and no second fan-out: all wait
                waiting = work
            if waiting:
                logger.info(
                    "repository changes left to an unfinished fan-out",
                    extra={"region": region, "repositories": len(waiting), "run_id": marker.run_id},
                )
            return waiting, marker.run_id if waiting else None
        if not self.shards.wanted(len(work)):
            return {}, None
        return work, run_id

    def _observe_first(
        self, region: str, inputs: DesiredByRegion, scope: Scope, state: RegionState
    ) -> tuple[ObservedRegion, RegionState, Scope, Literal[True] | set[str]]:
        """The Region as the run first reads it (and the scope its reads keep to, what it read deeply): as ``scope``
        says, with the repositories named as new that no run settled. A deep read with shard workers configured lists
        first: more repositories than one shard (or another run's fan-out unfinished there) and the run reads on the
        fast path, its shards deeply (:mod:`.reconcile_shards`); else it reads them deeply itself, as without."""
        prefixes = inputs.prefixes(region)
        deep = _first_deep(scope, state.applied)
        if deep is True and self.shards is not None:
            observed, state = self.planner.observe_region(region, prefixes, deep=False, state=state)
            if state.status.fanout is not None or self.shards.wanted(len(observed.repositories)):
                return observed, state, replace(scope, deep=False), set()
            return self.registry(region).read_details(observed), state, scope, deep
        observed, state = self.planner.observe_region(region, prefixes, deep=deep, state=state)
        if again := unsettled(scope, observed):  # applied to an earlier repository of that name: read it too
            deep = deep if deep is True else deep | again
            observed, state = self.planner.observe_region(region, prefixes, deep=deep, state=state)
        return observed, state, scope, deep

    def _verify(
        self, region: str, inputs: DesiredByRegion, scope: Scope, outcome: RegionOutcome
    ) -> tuple[ObservedRegion, Plan, RegionStatus]:
        """Re-read (deeply where the run wrote) and plan again: what is left did not converge (but the changes left
        to shard workers, :attr:`RegionOutcome.applying`); with the Region's status as read then."""
        deep: bool | Collection[str] = scope.deep or (outcome.touched | set(scope.deep_repositories))
        after, state = self.planner.observe_region(region, inputs.prefixes(region), deep=deep)
        after_owned = state.status.ownership
        planned = plan_regions(
            {region: inputs.desired_in(region)},
            {region: inputs.retired_in(region)},
            {region: after},
            {region: after_owned},
            warmer_role=self.planner.warmer_role_arn,
            role_path=self.planner.role_path,
        )
        left = without_repositories(planned, outcome.applying)
        # What verify still finds wrong must not be trusted by the next fast resync.
        unsure = {a.target for a in left.actions if a.kind.scope == "repository"}
        if unsure:
            self.applier.mark_unverified(region, unsure)
        return after, left, state.status


def _waits(marker: FanoutMarker, repo: ObservedRepository | None, rule: str) -> bool:
    """Whether a repository's change waits for the unfinished fan-out ``marker`` names: it may be in its shards, and
    this run did not read it deeply (what a deep read found, an event's drift or a new repository, is made at once:
    the fan-out's shard may have read it before, or plan it from fingerprints that do not show it)."""
    return repo is None or (repo.details is None and marker.covers(repo.created_at, rule))


def _first_deep(scope: Scope, applied: Mapping[str, AppliedFingerprints]) -> Literal[True] | set[str]:
    """What a run under the lease reads deeply first: as the scope says, and the repositories named as new that
    no run settled (:attr:`Scope.new_repositories`; one settled before may have been created again since: the
    listing tells, :func:`~.quiet_regions.unsettled`)."""
    if scope.deep:
        return True
    new = {name for name in scope.new_repositories if (a := applied.get(name)) is None or a.created_at is None}
    return set(scope.deep_repositories) | new


def _settled(
    scope: Scope,
    after: ObservedRegion,
    left: Plan,
    deep: Literal[True] | set[str],
    recorded: Mapping[str, AppliedFingerprints],
    *,
    leave: Collection[str] = (),
) -> dict[str, AppliedFingerprints]:
    """The repositories named as new this run read deeply and left converged, with their creation time: their
    record (as this run ``recorded`` it, else as read) says they are settled (a later event about the same
    repository reads it no more). Those whose changes were ``leave``-d to shard workers are not settled yet."""
    unsure = {action.target for action in left.actions} | set(leave)
    return {
        name: (recorded.get(name) or repo.applied or AppliedFingerprints()).model_copy(
            update={"created_at": repo.created_at}
        )
        for name in sorted(scope.new_repositories)
        if (deep is True or name in deep)
        and name not in unsure
        and (repo := after.repositories.get(name)) is not None
        and repo.created_at is not None
        and not repo.settled
    }


def _quiet_scope(scope: Scope) -> bool:
    """A fast run with no repository to read deeply: its reads are cheap enough to make twice when it has work."""
    return not scope.deep and not scope.deep_repositories


__all__ = ["LEASE_SECONDS", "ReconcileService", "Scope"]
