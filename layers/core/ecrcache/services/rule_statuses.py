"""Recording what a reconcile of one Region concluded for each rule: its new status (decided by the pure
:mod:`ecrcache.engine.status`), written once per Region and only when it changed (the store's one item per
Region, conditioned on the version read under the lease); the statuses of rules no longer desired, kept
(not Synced, ``Deleting``) until what ecrcache owns for them is deleted and verified, then dropped; the
condition changes announced and the rule gauges published (:class:`StatusChanges`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ecrcache.engine.state_events import rule_condition_events
from ecrcache.engine.status import (
    Validation,
    deleting_status,
    forgettable,
    no_longer_desired,
    region_failure_status,
    rule_findings,
    rule_status,
    upstream_health,
    validation_observation,
)
from ecrcache.errors import EcrcacheError, RetryableError
from ecrcache.models.status import ConditionType, RuleStatus, same_status
from ecrcache.observability import logger, metrics
from ecrcache.services.state_events import announce

if TYPE_CHECKING:
    from ecrcache.engine.plan import Plan
    from ecrcache.engine.state_events import StateEvent
    from ecrcache.engine.status import (
        Failure,
    )
    from ecrcache.models.observed import DesiredRule, ObservedRegion
    from ecrcache.models.region_records import RegionStatus
    from ecrcache.models.status import UpstreamHealth
    from ecrcache.ports import EcrRegistry, StateEventPublisher, StatusStore
    from ecrcache.services.plan import DesiredByRegion

__all__ = ["RegionResults", "RuleStatusRecorder", "StatusChanges"]


class RegionResults(Protocol):
    """What applying a Region's plan gave that its rules' statuses tell."""

    @property
    def failures(self) -> Mapping[str, Sequence[Failure]]: ...

    @property
    def validated(self) -> Collection[str]: ...

    @property
    def applying(self) -> Mapping[str, str]:
        """The repositories (name -> rule) whose changes shard workers apply (:attr:`applying_run`'s)."""
        ...

    @property
    def applying_run(self) -> str | None: ...


class RuleStatusRecorder:
    """Writes the rules' statuses of the Regions a run reconciled (see the module)."""

    def __init__(
        self,
        *,
        status: StatusStore,
        registry: Callable[[str], EcrRegistry],
        clock: Callable[[], datetime],
        events: StateEventPublisher | None,
    ) -> None:
        self.status = status
        self.registry = registry
        self.clock = clock
        self.events = events

    def record(
        self,
        region: str,
        *,
        inputs: DesiredByRegion,
        observed: ObservedRegion,
        plan: Plan,
        left: Plan,
        outcome: RegionResults,
        run_id: str,
        recorded: RegionStatus,
    ) -> datetime:
        """Every desired rule's new status; the ones that changed, and the statuses of rules no longer desired,
        in one write of the Region's item (conditioned on the version read under the lease). Returns when."""
        now = self.clock()
        desired = inputs.desired_in(region)

        findings_of = partial(
            rule_findings,
            region=region,
            plan=plan,
            left=left,
            failures=outcome.failures,
            repositories=observed.repositories,
            applying=outcome.applying,
            applying_run=outcome.applying_run,
            waiting=outcome.applying_run not in {None, run_id},
        )
        findings = findings_of([r.prefix for r in desired])
        registry = self.registry(region)
        changes = StatusChanges(region, run_id)
        statuses: dict[str, RuleStatus] = {}
        health: dict[str, UpstreamHealth] = {}
        for rule in desired:
            current = recorded.statuses.get(rule.prefix) or RuleStatus()
            validation = None
            if rule.prefix in outcome.validated and rule.spec.credential is not None:
                validation = _validate(registry, rule.prefix)
            status = rule_status(
                current, findings[rule.prefix], now=now, run_id=run_id, revision=inputs.revision, validation=validation
            )
            statuses[rule.prefix] = status
            changes.add(rule.prefix, current, status)
            seen = validation_observation(validation, at=now) if validation is not None else None
            if seen is not None and (found := upstream_health(status, seen)) is not None:
                health[rule.prefix] = found  # a validation tells the upstream's health too
        stale = no_longer_desired(recorded.statuses, desired)
        unsettled = {action.rule_prefix for action in left.actions}  # verify still finds something to do
        drop = [prefix for prefix in self._forgettable(region, inputs, stale) if prefix not in unsettled]
        deleting = [prefix for prefix in stale if prefix not in drop]
        for prefix, finding in findings_of(deleting).items():  # still owned, being deleted: said until verified
            current = recorded.statuses[prefix]
            statuses[prefix] = deleting_status(current, finding, now=now, run_id=run_id, revision=inputs.revision)
            changes.add(prefix, current, statuses[prefix])
        self._write_statuses(region, recorded, statuses, drop)
        for prefix, found in health.items():
            self.status.record_upstream(region, prefix, found)
        changes.report(self.events, now=now)
        return now

    def _forgettable(self, region: str, inputs: DesiredByRegion, stale: Sequence[str]) -> list[str]:
        """The statuses among ``stale`` (rules no longer desired in ``region``) to drop now: nothing of theirs
        is left to delete (ownership read after this run's deletes, which forget what they deleted)."""
        if not stale:
            return []
        ownership = self.status.ownership(region)  # after this run's deletes
        return forgettable(
            stale, retired=inputs.retired_in(region), ownership=ownership, desired_left=bool(inputs.desired_in(region))
        )

    def _write_statuses(
        self, region: str, recorded: RegionStatus, statuses: Mapping[str, RuleStatus], drop: Sequence[str]
    ) -> None:
        """Write what changed (nothing: no write). A version conflict (the lease expired and another run wrote)
        is met by reading the Region's statuses again and writing what still differs, once."""
        for _ in range(2):
            put = {p: s for p, s in statuses.items() if not same_status(recorded.statuses.get(p), s)}
            gone = [p for p in drop if p in recorded.statuses]
            if not put and not gone:
                return
            if self.status.write_statuses(region, put, gone, version=recorded.version):
                return
            recorded = self.status.region_status(region)
        raise RetryableError(f"the statuses of {region} kept changing under this run's lease; not recorded")

    def record_region_failure(
        self, region: str, desired: Sequence[DesiredRule], exc: EcrcacheError, run_id: str, *, revision: int
    ) -> None:
        """Every rule of a Region that could not be reconciled at all is not Synced (best effort)."""
        now = self.clock()
        changes = StatusChanges(region, run_id)
        try:
            recorded = self.status.region_status(region)
            statuses = {}
            for rule in desired:
                current = recorded.statuses.get(rule.prefix) or RuleStatus()
                statuses[rule.prefix] = region_failure_status(current, exc, now=now, run_id=run_id, revision=revision)
                changes.add(rule.prefix, current, statuses[rule.prefix])
            self._write_statuses(region, recorded, statuses, [])
        except EcrcacheError:
            logger.exception("could not record a Region failure on its rules", extra={"region": region})
            return
        changes.report(self.events, now=now)


@dataclass(slots=True)
class StatusChanges:
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
