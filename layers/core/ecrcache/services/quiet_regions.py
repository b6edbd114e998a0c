"""A fast run's Regions with nothing to do: found under no lease, with no write, and (while the Region's quiet digest
stands) without reading one applied fingerprint (issue 14: a no-op fast resync costs at most 5 DynamoDB calls).

:meth:`QuietRegions.find` reads the Region (ECR's rules, templates and repository list; its status as the run read
every Region's) and computes its quiet digest (:mod:`ecrcache.engine.quiet`). When the digest is the one recorded, the
repositories' part of the fast plan is known to be empty: only the rules' part is planned. Otherwise the Region's
applied fingerprints are read (one paginated Query) and everything is planned, as before the digest. When nothing is
to be applied or forgotten and no rule's status would change, the Region is quiet: a digest that changed is recorded
(one UpdateItem, once), and the run stamps the Region with its record. Else the run reconciles it under its lease, and
:meth:`QuietRegions.record_converged` records the digest of what that run left converged.

A digest that cannot be recorded costs the next run one read of the fingerprints, never a wrong plan: the record is
conditioned on no write of the fingerprints since they were read (:mod:`ecrcache.adapters.applied_records`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecrcache.engine.plan import Plan
from ecrcache.engine.quiet import fast_view, with_records
from ecrcache.engine.status import no_longer_desired, rule_findings, rule_status
from ecrcache.errors import EcrcacheError
from ecrcache.models.region_records import RegionState
from ecrcache.models.status import RuleStatus, same_status
from ecrcache.observability import logger
from ecrcache.services.rule_statuses import StatusChanges

if TYPE_CHECKING:
    from datetime import datetime

    from ecrcache.models.observed import ObservedRegion, ObservedRule
    from ecrcache.models.region_records import RegionStatus
    from ecrcache.ports import StateEventPublisher, StatusStore
    from ecrcache.services.forwarders import ForwarderPhase
    from ecrcache.services.plan import DesiredByRegion, PlanService, Scope

__all__ = ["Quiet", "QuietRegions", "unsettled"]


@dataclass(frozen=True, slots=True)
class Quiet:
    """A Region found quiet: ECR's rules there (as read), and when."""

    rules: Mapping[str, ObservedRule]
    at: datetime


@dataclass(frozen=True, slots=True)
class _Read:
    observed: ObservedRegion
    state: RegionState
    plan: Plan
    digest: str | None
    """The digest to record when the Region turns out quiet (``None``: the recorded one stands)."""


class QuietRegions:
    """Finds a fast run's quiet Regions, and records the quiet digests (see the module)."""

    def __init__(
        self,
        *,
        planner: PlanService,
        status: StatusStore,
        clock: Callable[[], datetime],
        events: StateEventPublisher | None,
        forwarders: ForwarderPhase | None,
    ) -> None:
        self.planner = planner
        self.status = status
        self.clock = clock
        self.events = events
        self.forwarders = forwarders

    def find(self, region: str, inputs: DesiredByRegion, scope: Scope, run_id: str) -> Quiet | None:
        """The Region, when a fast run finds nothing to do there (the events of its rules' unchanged statuses are
        reported; a changed digest is recorded); ``None``: it has work, done under its lease."""
        desired = inputs.desired_in(region)
        read = self._read(region, inputs, scope)
        observed, state, plan = read.observed, read.state, read.plan
        recorded = state.status.statuses
        if (
            plan.actions
            or unsettled(scope, observed)
            or no_longer_desired(recorded, desired)
            or any(name not in observed.repositories for name in state.applied)
        ):
            return None
        now = self.clock()
        found = rule_findings(
            [r.prefix for r in desired],
            region=region,
            plan=plan,
            left=Plan(),
            failures={},
            repositories=observed.repositories,
        )
        statuses = {
            r.prefix: rule_status(
                recorded.get(r.prefix) or RuleStatus(),
                found[r.prefix],
                now=now,
                run_id=run_id,
                revision=inputs.revision,
            )
            for r in desired
        }
        if any(not same_status(recorded.get(prefix), status) for prefix, status in statuses.items()):
            return None
        wanted = region in inputs.named_regions  # and the Region's event forwarder needs nothing either
        if self.forwarders and not self.forwarders.in_sync(region, wanted=wanted, record=state.status.forwarder):
            return None
        changes = StatusChanges(region, run_id)
        for prefix, status in statuses.items():
            changes.add(prefix, status, status)
        changes.report(self.events, now=now)
        if read.digest is not None:
            self._record(region, read.digest, state.status.generation)
        return Quiet(rules=observed.rules, at=now)

    def record_converged(
        self, region: str, inputs: DesiredByRegion, after: ObservedRegion, status: RegionStatus
    ) -> None:
        """After a run under the Region's lease left nothing to do (as its verify read the Region: ``after``, with
        ``status``): record the digest, if a fast plan of that read is empty too (a deep read can leave in place what a
        fast plan would act on); refused if the Region's fingerprints were written since that read."""
        owned = status.ownership
        if not self.planner.plan_region(region, inputs, fast_view(after), owned).actions:
            self._record(region, self.planner.digest(region, inputs, after, owned), status.generation)

    def _read(self, region: str, inputs: DesiredByRegion, scope: Scope) -> _Read:
        """The Region as a fast run reads it: its applied fingerprints only when the digest cannot vouch for them
        (none recorded, a fan-out unfinished, repositories named as new: read before ECR; a digest that changed:
        after)."""
        status = inputs.status_of(region)
        state = inputs.state_of(region)
        trusted = status.digest is not None and status.fanout is None and not scope.new_repositories
        if state is None:
            applied = {} if trusted else self.status.applied(region)
            state = RegionState(status=status, applied=applied, applied_read=not trusted)
        observed, _ = self.planner.observe_region(region, inputs.prefixes(region), deep=False, state=state)
        ownership = status.ownership
        digest = self.planner.digest(region, inputs, observed, ownership)
        if not state.applied_read:
            if digest == status.digest:
                rules_only = observed.model_copy(update={"repositories": {}})
                return _Read(observed, state, self.planner.plan_region(region, inputs, rules_only, ownership), None)
            applied = self.status.applied(region)
            observed = with_records(observed, applied)
            state = state.model_copy(update={"applied": applied, "applied_read": True})
        plan = self.planner.plan_region(region, inputs, observed, ownership)
        return _Read(observed, state, plan, None if digest == status.digest else digest)

    def _record(self, region: str, digest: str, generation: int) -> None:
        """Best effort: a digest not recorded costs the next run one read of the Region's fingerprints."""
        try:
            recorded = self.status.record_digest(region, digest, generation=generation)
        except EcrcacheError as exc:
            logger.warning("quiet digest not recorded", extra={"region": region, "error": exc.message})
            return
        logger.debug("quiet digest", extra={"region": region, "recorded": recorded})


def unsettled(scope: Scope, observed: ObservedRegion) -> set[str]:
    """The repositories named as new that ECR lists, not read deeply, and no run settled since their creation."""
    repositories = observed.repositories
    return {
        name
        for name in scope.new_repositories
        if (repo := repositories.get(name)) is not None and not repo.settled and repo.details is None
    }
