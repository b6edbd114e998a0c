"""The warm worker's pull-time update exclusion in one Region: what to register, deregister or forget.

ECR updates an image's ``lastRecordedPullTime`` on every pull, except pulls by a principal registered
with ``RegisterPullTimeUpdateExclusion`` (ECR User Guide, "Pull-time update exclusions"). The warm
worker pulls images so that they are cached before anyone needs them; counted as pulls, its pulls would
keep every warmed image out of a ``sinceImagePulled`` lifecycle rule. So the reconciler keeps the
warmer's role (``warmer_role``, the ``WARMER_ROLE_ARN`` setting) registered in every Region a desired
rule names, like any other setting:

============================  ============  =======  ==================================================
wanted (warmer role, and a    registered    ours     plan
desired rule in the Region)   in ECR
============================  ============  =======  ==================================================
yes                           no            any      ``register_exclusion`` (owned: drift repair)
yes                           yes           yes      nothing (converged)
yes                           yes           no       nothing: converged, and reported as
                                                     :class:`~.plan.Unmanaged` (never deregistered)
no (another role, no rule     yes           yes      ``deregister_exclusion``
in the Region, setting off)
no                            no            yes      ``forget_exclusion`` (drop the stale record)
no                            any           no       nothing (someone else's: never touched)
============================  ============  =======  ==================================================

Ownership is recorded when ecrcache registered the exclusion, never adopted: an exclusion someone else
registered for the same role (by hand, or as ``AWS::ECR::PullTimeUpdateExclusion``) is theirs to
remove. Only the principals ecrcache registered are ever deregistered. ECR allows 100 exclusions per
account; a ``LimitExceededException`` is the register action's (terminal) failure, shown on the rules
of the Region.

Nothing is planned when the exclusions were not read (``ObservedRegion.exclusions`` ``None``).

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, PlannedAction, Unmanaged

if TYPE_CHECKING:
    from ecrcache.engine.plan import JsonObject
    from ecrcache.models.observed import ObservedRegion, Ownership

__all__ = ["ExclusionPlan", "plan_exclusions"]

_WHY_WANTED: Final = (
    "the warm worker's role is not excluded from pull-time updates in this Region: its pulls would move "
    "lastRecordedPullTime and keep warmed images out of sinceImagePulled lifecycle rules"
)
_WHY_REPAIR: Final = (
    "the pull-time update exclusion ecrcache registered for the warm worker's role is gone (deregistered "
    "outside ecrcache): register it again"
)
_NOT_OURS: Final = (
    "the warm worker's role is already excluded from pull-time updates by an exclusion ecrcache did not "
    "register: left as it is, and never deregistered by ecrcache"
)
_FORGET: Final = (
    "ecrcache recorded registering this exclusion, but ECR no longer has it and it is no longer wanted: drop the record"
)


@dataclass(frozen=True, slots=True)
class ExclusionPlan:
    """The exclusion actions of one Region, and the warmer's exclusion when it is someone else's."""

    actions: tuple[PlannedAction, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()


def _action(region: str, kind: ActionKind, principal: str, reason: str) -> PlannedAction:
    entry: JsonObject = {"principalArn": principal}
    calls = kind is not ActionKind.FORGET_EXCLUSION
    return PlannedAction(
        kind=kind,
        region=region,
        target=principal,
        rule_prefix=REGISTRY_LEVEL,
        before=None if kind is ActionKind.REGISTER_EXCLUSION or not calls else entry,
        after=entry if kind is ActionKind.REGISTER_EXCLUSION else None,
        reason=reason,
        request=entry if calls else {},
    )


def _why_not_wanted(warmer_role: str | None, has_desired: bool) -> str:
    if not warmer_role:
        return "no warm worker role is set (WARMER_ROLE_ARN) any more: deregister the exclusion ecrcache registered"
    if not has_desired:
        return "no desired rule names this Region any more: deregister the exclusion ecrcache registered"
    return f"the warm worker's role is now {warmer_role}: deregister the exclusion ecrcache registered for the old one"


def plan_exclusions(
    observed: ObservedRegion, ownership: Ownership, *, warmer_role: str | None, has_desired: bool
) -> ExclusionPlan:
    """The module's table for one Region. ``has_desired``: a desired rule names the Region."""
    found = observed.exclusions
    if found is None:
        return ExclusionPlan()
    region = observed.region
    wanted = warmer_role if warmer_role and has_desired else None
    actions: list[PlannedAction] = []
    unmanaged: list[Unmanaged] = []
    if wanted is not None:
        if wanted not in found:
            why = _WHY_REPAIR if wanted in ownership.exclusions else _WHY_WANTED
            actions.append(_action(region, ActionKind.REGISTER_EXCLUSION, wanted, why))
        elif wanted not in ownership.exclusions:
            unmanaged.append(Unmanaged(kind="exclusion", region=region, name=wanted, reason=_NOT_OURS))
    for principal in sorted(p for p in ownership.exclusions if p != wanted):
        if principal in found:
            why = _why_not_wanted(warmer_role, has_desired)
            actions.append(_action(region, ActionKind.DEREGISTER_EXCLUSION, principal, why))
        else:
            actions.append(_action(region, ActionKind.FORGET_EXCLUSION, principal, _FORGET))
    return ExclusionPlan(tuple(actions), tuple(unmanaged))
