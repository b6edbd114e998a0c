"""Applying one Region's plan, action by action (the reconcile run's and a deep-resync shard worker's).

A failure on one action never stops the others: it is kept, by rule, for the rules' statuses. Ownership is claimed
*before* an ECR call that makes a rule or template ecrcache's (so one it made is never taken for someone else's
when the run stops between the call and the record) and settled after it; the fingerprints of what each successful
repository action applied are recorded, and the records of repositories ECR no longer has are forgotten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ecrcache.engine.status import VALIDATE_AFTER, RegionSummary, ownership_change, unverified
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.observability import logger

if TYPE_CHECKING:
    from ecrcache.engine.plan import ActionKind, ActionResult, OwnedKind, Plan, PlannedAction
    from ecrcache.engine.status import Failure
    from ecrcache.models.observed import ObservedRegion, ObservedRule, Ownership
    from ecrcache.ports import EcrRegistry, StatusStore

__all__ = ["RegionApplier", "RegionOutcome"]


@dataclass(slots=True)
class RegionOutcome:
    """What applying one Region's plan did."""

    applied: dict[ActionKind, int] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=lambda: defaultdict(list))
    touched: set[str] = field(default_factory=set)
    validated: set[str] = field(default_factory=set)
    rules: Mapping[str, ObservedRule] = field(default_factory=dict)
    """ECR's rules in the Region after the run (as verify read them)."""
    recorded: dict[str, AppliedFingerprints] = field(default_factory=dict)
    """The applied fingerprints this run recorded, by repository."""
    at: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    """When the run recorded the Region's statuses (its stamp)."""
    shards: dict[str, str] | None = None
    """The repositories (name -> rule) whose deep read goes to shard workers; ``None``: read by the run itself."""
    shards_deep: bool = True
    """Whether :attr:`shards` are a deep read's (else a fast run's changes, planned from the applied fingerprints)."""
    applying: dict[str, str] = field(default_factory=dict)
    """The repositories (name -> rule) whose changes the run left to shard workers (:attr:`applying_run`'s)."""
    applying_run: str | None = None

    def summary(self, left: Plan) -> RegionSummary:
        return RegionSummary(
            applied=tuple(self.applied.items()),
            failed_actions=sum(len(f) for f in self.failures.values()),
            left_after_verify=len(left.actions),
        )


class RegionApplier:
    """Applies plans to ECR through the registry of their Region and records what they changed."""

    def __init__(self, *, status: StatusStore, registry: Callable[[str], EcrRegistry]) -> None:
        self.status = status
        self.registry = registry

    def apply(
        self,
        region: str,
        plan: Plan,
        observed: ObservedRegion,
        applied: Mapping[str, AppliedFingerprints],
        ownership: Ownership,
    ) -> RegionOutcome:
        """Every action of ``plan``; ``applied`` are the fingerprints read with ``observed`` (a record whose
        repository ``observed`` does not hold is forgotten: ECR no longer has it)."""
        outcome = RegionOutcome()
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
                if action.records:
                    repo = observed.repositories.get(action.target)
                    base = (
                        applied_updates.get(action.target) or (repo.applied if repo else None) or AppliedFingerprints()
                    )
                    applied_updates[action.target] = action.record_onto(base)
        if applied_updates:
            self.status.record_applied(region, applied_updates)
            outcome.recorded = applied_updates
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

    def mark_unverified(
        self, region: str, names: Collection[str], applied: Mapping[str, AppliedFingerprints] | None = None
    ) -> None:
        """What verify still finds wrong must not be trusted by the next fast resync: the fingerprints of
        ``names`` (from ``applied`` when given, else the Region's records read now) are marked unverified."""
        marked = unverified(self.status.applied(region) if applied is None else applied, names)
        if marked:
            self.status.record_applied(region, marked)
