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
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ecrcache.engine.plan import Plan
from ecrcache.engine.planner import plan as plan_regions
from ecrcache.engine.role_path import ANY_ROLE
from ecrcache.engine.state_events import rule_condition_events
from ecrcache.engine.status import (
    VALIDATE_AFTER,
    RegionSummary,
    RunSummary,
    Validation,
    action_errors,
    forgettable,
    no_longer_desired,
    ownership_change,
    region_failure_status,
    rule_findings,
    rule_status,
    run_status,
    unverified,
    upstream_health,
    validation_observation,
)
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus, RunTrigger
from ecrcache.observability import count_by, logger, metrics
from ecrcache.services.plan import FAST_SCOPE, PlanService, Scope
from ecrcache.services.replicas import ReplicaPhases
from ecrcache.services.state_events import announce

if TYPE_CHECKING:
    from ecrcache.engine.plan import ActionKind, ActionResult, OwnedKind, PlannedAction
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.engine.state_events import StateEvent
    from ecrcache.engine.status import Failure
    from ecrcache.models.observed import DesiredRule, ObservedRegion, ObservedRule, Ownership
    from ecrcache.models.status import RuleStatusRecord
    from ecrcache.ports import EcrRegistry, SecretReplicator, StateEventPublisher, StateStore, StatusStore
    from ecrcache.services.forwarders import ForwarderPhase
    from ecrcache.services.plan import DesiredByRegion
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
class _RegionOutcome:
    """What applying one Region's plan did."""

    applied: dict[ActionKind, int] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    touched: set[str] = field(default_factory=set)
    validated: set[str] = field(default_factory=set)
    rules: Mapping[str, ObservedRule] = field(default_factory=dict)
    """ECR's rules in the Region after the run (as verify read them)."""

    def summary(self, left: Plan) -> RegionSummary:
        return RegionSummary(
            applied=tuple(self.applied.items()),
            failed_actions=sum(len(f) for f in self.failures.values()),
            left_after_verify=len(left.actions),
        )


@dataclass(slots=True)
class _RunLog:
    """What a run met so far, Region by Region."""

    errors: list[str]
    regions: list[RegionSummary] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    retryable: bool = False
    rules: dict[str, Mapping[str, ObservedRule]] = field(default_factory=dict)
    """ECR's rules after the run, by Region reconciled (what replica removals are checked against)."""

    def add_replicas(self, outcome: ReplicaOutcome) -> None:
        """Count a replica phase in the run (its errors, its line in the summary)."""
        self.errors.extend(outcome.errors)
        summary = outcome.summary()
        if summary is not None:
            self.regions.append(summary)

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
    ) -> None:
        """``replicas`` reconciles credentials' secret replicas (``None``: not at all, and rules outside
        the stack's Region that take a credential are blocked); ``sleep`` paces the wait for new ones;
        ``schedules`` converges credentials' rotation schedules (``None``: not at all); ``role_path`` is the
        stack's EcrRolePath (a rule naming a role outside it is blocked: the reconciler may not pass it);
        ``events`` announces rules' condition changes on the default bus (``None``: not at all); ``forwarders``
        keeps an event forwarder in every other Region a rule names (``None``: none, :mod:`.forwarders`)."""
        self.forwarders = forwarders
        self.schedules = schedules
        self.events = events
        self.desired = desired
        self.status = status
        self.registry = registry
        self.clock = clock
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
        self.status.put_run(run)
        log = _RunLog(errors=[])
        inputs, records = self._read_desired(scope, run.run_id, log)
        log.errors[:0] = [f"{prefix}: {problem}" for prefix, problem in sorted(inputs.problems.items())]
        for region in inputs.regions:
            recorded = [r.prefix for r in records if r.region == region]
            self._run_region(region, inputs, scope=scope, run_id=run.run_id, recorded=recorded, log=log)
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
            snapshot = self.desired.snapshot()
            log.errors.extend(self.schedules.converge(snapshot).errors)
        except EcrcacheError as exc:
            log.errors.append(f"rotation schedules not converged: {exc.message}")
        finally:
            self.status.release_lease(self.stack_region, run_id)

    def _read_desired(self, scope: Scope, run_id: str, log: _RunLog) -> tuple[DesiredByRegion, list[RuleStatusRecord]]:
        """The desired rules per Region, after the secret replicas they need were added (when they can be)."""
        if self.replicas is None:
            return self.planner.read_desired(scope)
        snapshot = self.desired.snapshot()
        secrets = self.planner.read_secrets(snapshot)
        added = self.replicas.add(self.planner.replica_plan(snapshot, secrets, scope), secrets, run_id=run_id)
        log.add_replicas(added)
        return self.planner.read_desired(scope, snapshot=snapshot, secrets=added.secrets, failures=added.failures)

    def _run_region(
        self, region: str, inputs: DesiredByRegion, *, scope: Scope, run_id: str, recorded: Sequence[str], log: _RunLog
    ) -> None:
        """Reconcile one Region under its lease; a failure of the whole Region is recorded on its rules."""
        if not self.status.acquire_lease(region, run_id, now=self.clock(), ttl_seconds=LEASE_SECONDS):
            log.busy.append(region)
            return
        try:
            self._run_region_ecr(region, inputs, scope=scope, run_id=run_id, recorded=recorded, log=log)
            self._converge_forwarder(region, inputs, run_id, log)
        finally:
            self.status.release_lease(region, run_id)

    def _run_region_ecr(
        self, region: str, inputs: DesiredByRegion, *, scope: Scope, run_id: str, recorded: Sequence[str], log: _RunLog
    ) -> None:
        """The Region's ECR work (the caller holds its lease); a whole Region's failure is recorded on its rules."""
        try:
            outcome, left = self._reconcile_region(region, inputs, scope, run_id)
            self._forget_stale_status(region, inputs, recorded)
        except EcrcacheError as exc:
            log.errors.append(f"{region}: {exc.message}")
            log.regions.append(RegionSummary.region_failure())
            log.retryable |= isinstance(exc, RetryableError)
            self._record_region_failure(region, inputs.desired_in(region), exc, run_id, revision=inputs.revision)
            return
        log.errors.extend(action_errors(region, outcome.failures))
        log.regions.append(outcome.summary(left))
        log.rules[region] = outcome.rules

    def _converge_forwarder(self, region: str, inputs: DesiredByRegion, run_id: str, log: _RunLog) -> None:
        """The Region's event forwarder (none in the stack's Region), after its ECR work whatever became of it; a
        failure is recorded on its status and in the run, never raised (:mod:`.forwarders`)."""
        if self.forwarders is None or region == self.stack_region:
            return
        try:
            current = {r.region: r.status for r in self.status.forwarder_statuses()}.get(region)
        except EcrcacheError as exc:
            log.errors.append(f"{region}: event forwarder not reconciled: {exc.message}")
            return
        wanted = region in inputs.named_regions
        outcome = self.forwarders.converge(region, wanted=wanted, run_id=run_id, current=current)
        log.errors.extend(outcome.errors)
        if outcome.summary is not None:
            log.regions.append(outcome.summary)

    def _sweep_forwarders(self, inputs: DesiredByRegion, run_id: str, log: _RunLog) -> None:
        """Deep runs over every Region: a forwarding rule found in a Region the run did not visit (no rule names it,
        no record remembers it) is deleted, under that Region's lease (:meth:`ForwarderPhase.strays`)."""
        found, errors = self.forwarders.strays(inputs.regions) if self.forwarders else ([], [])
        log.errors.extend(errors)
        for region in found:
            if not self.status.acquire_lease(region, run_id, now=self.clock(), ttl_seconds=LEASE_SECONDS):
                log.busy.append(region)
                continue
            try:
                self._converge_forwarder(region, inputs, run_id, log)  # not named: deleted
            finally:
                self.status.release_lease(region, run_id)

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
        self.status.put_run(done)
        metrics.add_metric(name="ReconcileRuns", unit="Count", value=1)
        # Zeros too: the alarm on failures and the dashboard see a run that went well as such, not as no data.
        metrics.add_metric(name="ReconcileFailed", unit="Count", value=summary.failed_actions)
        metrics.add_metric(name="ReconcileRegionsFailed", unit="Count", value=summary.region_failures)
        if summary.applied_total:
            metrics.add_metric(name="ChangesApplied", unit="Count", value=summary.applied_total)
        for kind, count in summary.applied.items():
            count_by("ReconcileActions", dimension="action", value=kind.value, count=count)
        logger.info("reconcile finished", extra={"run_id": run.run_id, "status": status, "summary": done.summary})
        return done

    # -- one Region ----------------------------------------------------------------------------

    def _reconcile_region(
        self, region: str, inputs: DesiredByRegion, scope: Scope, run_id: str
    ) -> tuple[_RegionOutcome, Plan]:
        desired, retired = inputs.desired_in(region), inputs.retired_in(region)
        observed, ownership, applied = self.planner.observe(region, inputs.prefixes(region), deep=scope.deep_read)
        plan = plan_regions(
            {region: desired},
            {region: retired},
            {region: observed},
            {region: ownership},
            warmer_role=self.planner.warmer_role_arn,
            role_path=self.planner.role_path,
        )
        outcome = self._apply(region, plan, observed, applied, ownership)
        if any(a.kind.calls_aws for a in plan.actions):
            after, left = self._verify(region, inputs, scope, outcome)
        else:  # nothing in ECR changed: the observation is still what verify would read
            after, left = observed, Plan()
        outcome.rules = after.rules
        if scope.deep:  # the daily deep resync also checks every credential against its upstream
            outcome.validated.update(r.prefix for r in desired if r.spec.credential is not None)
        self._record_status(
            region,
            desired=desired,
            observed=after,
            plan=plan,
            left=left,
            outcome=outcome,
            run_id=run_id,
            revision=inputs.revision,
        )
        return outcome, left

    def _verify(
        self, region: str, inputs: DesiredByRegion, scope: Scope, outcome: _RegionOutcome
    ) -> tuple[ObservedRegion, Plan]:
        """Re-read (deeply where the run wrote) and plan again: what is left did not converge."""
        deep: bool | Collection[str] = scope.deep or (outcome.touched | set(scope.deep_repositories))
        after, after_owned, _ = self.planner.observe(region, inputs.prefixes(region), deep=deep)
        left = plan_regions(
            {region: inputs.desired_in(region)},
            {region: inputs.retired_in(region)},
            {region: after},
            {region: after_owned},
            warmer_role=self.planner.warmer_role_arn,
            role_path=self.planner.role_path,
        )
        # What verify still finds wrong must not be trusted by the next fast resync.
        unsure = {a.target for a in left.actions if a.kind.scope == "repository"}
        if unsure:
            self._mark_unverified(region, unsure)
        return after, left

    def _apply(
        self,
        region: str,
        plan: Plan,
        observed: ObservedRegion,
        applied: Mapping[str, AppliedFingerprints],
        ownership: Ownership,
    ) -> _RegionOutcome:
        outcome = _RegionOutcome()
        registry = self.registry(region)
        applied_updates: dict[str, AppliedFingerprints] = {}
        for action in plan.actions:
            claimed = self._claim(region, action, ownership)
            result = registry.apply(action)
            self._settle_ownership(region, action, result, claimed)
            if not result.ok:
                outcome.failures[action.rule_prefix].append((action, result))
                logger.warning(
                    "action failed",
                    extra={
                        "kind": action.kind,
                        "target": action.target,
                        "code": result.code,
                        "retryable": result.retryable,
                    },
                )
                continue
            outcome.applied[action.kind] = outcome.applied.get(action.kind, 0) + 1
            if action.kind in VALIDATE_AFTER:
                outcome.validated.add(action.target)
            if action.kind.scope == "repository":
                outcome.touched.add(action.target)
                if action.fingerprints:
                    repo = observed.repositories.get(action.target)
                    base = (
                        applied_updates.get(action.target) or (repo.applied if repo else None) or AppliedFingerprints()
                    )
                    applied_updates[action.target] = base.merged(action.fingerprints)
        if applied_updates:
            self.status.record_applied(region, applied_updates)
        gone = [name for name in applied if name not in observed.repositories]
        if gone:
            self.status.forget_applied(region, gone)
        return outcome

    def _settle_ownership(
        self, region: str, action: PlannedAction, result: ActionResult, claimed: OwnedKind | None
    ) -> None:
        """After the call: drop the claim when ECR refused it, or held what it makes already (an
        exclusion someone may have registered: this call made nothing, so it is not ours); otherwise
        record what a successful call changed (a delete or deregister drops ownership)."""
        if claimed is not None:
            if result.existed or (not result.ok and not result.retryable):
                self.status.forget_owned(region, claimed, action.target)
            return
        change = ownership_change(action.kind)
        if change is None or not result.ok or result.existed:
            return
        record = self.status.record_owned if change.owned else self.status.forget_owned
        record(region, change.kind, action.target)

    def _claim(self, region: str, action: PlannedAction, ownership: Ownership) -> OwnedKind | None:
        """Record ownership *before* an ECR call that makes a rule or template ours, so that one the
        controller made is never taken for someone else's (and Blocked) when the run stops between
        the call and the record. Returns what was claimed; the caller drops the claim when ECR
        refused the call (a retryable failure may have reached ECR: the claim stays)."""
        change = ownership_change(action.kind)
        if change is None or not change.owned or not action.kind.calls_aws:
            return None
        owned = {"rule": ownership.rules, "template": ownership.templates, "exclusion": ownership.exclusions}
        if action.target in owned[change.kind]:
            return None
        self.status.record_owned(region, change.kind, action.target)
        return change.kind

    # -- status --------------------------------------------------------------------------------

    def _record_status(
        self,
        region: str,
        *,
        desired: Sequence[DesiredRule],
        observed: ObservedRegion,
        plan: Plan,
        left: Plan,
        outcome: _RegionOutcome,
        run_id: str,
        revision: int,
    ) -> None:
        now = self.clock()
        findings = rule_findings(
            [r.prefix for r in desired],
            region=region,
            plan=plan,
            left=left,
            failures=outcome.failures,
            repositories=observed.repositories,
        )
        registry = self.registry(region)
        changes = _StatusChanges(region, run_id)
        for rule in desired:
            current = self.status.rule_status(region, rule.prefix) or RuleStatus()
            validation = None
            if rule.prefix in outcome.validated and rule.spec.credential is not None:
                validation = _validate(registry, rule.prefix)
            status = rule_status(
                current, findings[rule.prefix], now=now, run_id=run_id, revision=revision, validation=validation
            )
            self.status.put_rule_status(region, rule.prefix, status)
            changes.add(rule.prefix, current, status)
            seen = validation_observation(validation, at=now) if validation is not None else None
            health = upstream_health(status, seen) if seen is not None else None
            if health is not None:  # a validation tells the upstream's health too
                self.status.record_upstream(region, rule.prefix, health)
        changes.report(self.events, now=now)

    def _record_region_failure(
        self, region: str, desired: Sequence[DesiredRule], exc: EcrcacheError, run_id: str, *, revision: int
    ) -> None:
        """Every rule of a Region that could not be reconciled at all is not Synced (best effort)."""
        now = self.clock()
        changes = _StatusChanges(region, run_id)
        for rule in desired:
            try:
                current = self.status.rule_status(region, rule.prefix) or RuleStatus()
                status = region_failure_status(current, exc, now=now, run_id=run_id, revision=revision)
                self.status.put_rule_status(region, rule.prefix, status)
            except EcrcacheError:
                logger.exception("could not record a Region failure on a rule", extra={"prefix": rule.prefix})
                break
            changes.add(rule.prefix, current, status)
        changes.report(self.events, now=now)

    def _forget_stale_status(self, region: str, inputs: DesiredByRegion, recorded: Sequence[str]) -> None:
        """Drop the status of rules no longer desired in ``region`` once nothing is left to do there."""
        stale = no_longer_desired(recorded, inputs.desired_in(region))
        if not stale:
            return
        ownership = self.status.ownership(region)
        drop = forgettable(
            stale, retired=inputs.retired_in(region), ownership=ownership, desired_left=bool(inputs.desired_in(region))
        )
        for prefix in drop:
            self.status.delete_rule_status(region, prefix)

    def _mark_unverified(self, region: str, names: Collection[str]) -> None:
        marked = unverified(self.status.applied(region), names)
        if marked:
            self.status.record_applied(region, marked)


@dataclass(slots=True)
class _StatusChanges:
    """The rule statuses one Region's run recorded: their condition changes (events) and the rule metrics."""

    region: str
    run_id: str
    events: list[StateEvent] = field(default_factory=list)
    statuses: list[RuleStatus] = field(default_factory=list)
    drift_repaired: int = 0

    def add(self, prefix: str, before: RuleStatus, after: RuleStatus) -> None:
        self.events.extend(rule_condition_events(self.region, prefix, before, after, run_id=self.run_id))
        self.statuses.append(after)
        self.drift_repaired += max(after.drift_corrected - before.drift_corrected, 0)

    def report(self, publisher: StateEventPublisher | None, *, now: datetime) -> None:
        """Announce the changes; publish the Region's rule gauges (README "Metrics": the worst Region is the
        Maximum; ``RuleTerminalMinutes`` is how long the longest-Terminal rule has been so, 0 when none is)."""
        if not self.statuses:
            return
        terminal = [s.condition(ConditionType.TERMINAL) for s in self.statuses]
        since = [c.last_transition for c in terminal if c is not None and c.status]
        metrics.add_metric(name="RulesSynced", unit="Count", value=sum(1 for s in self.statuses if s.synced))
        metrics.add_metric(name="RulesNotSynced", unit="Count", value=sum(1 for s in self.statuses if not s.synced))
        metrics.add_metric(name="RulesTerminal", unit="Count", value=len(since))
        minutes = max(((now - t).total_seconds() / 60 for t in since), default=0.0)
        metrics.add_metric(name="RuleTerminalMinutes", unit="Count", value=round(minutes, 1))
        if self.drift_repaired:
            metrics.add_metric(name="DriftRepaired", unit="Count", value=self.drift_repaired)
        announce(publisher, self.events)


def _validate(registry: EcrRegistry, prefix: str) -> Validation:
    """Ask ECR whether the rule reaches its upstream; an error is recorded as "could not tell"."""
    try:
        valid, failure = registry.validate_rule(prefix)
    except EcrcacheError as exc:
        return Validation(is_valid=None, failure=exc.message)
    return Validation(is_valid=valid, failure=failure)


__all__ = ["LEASE_SECONDS", "ReconcileService", "Scope"]
