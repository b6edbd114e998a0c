"""Ownership: the one place that decides whether ecrcache may change a rule or template in ECR.

ecrcache changes only what it owns: the pull-through cache rules and creation templates it created,
or took over because the user said so (``adopt: true`` on the desired rule). Ownership is recorded
in the state table (ECR has no tags on either); nothing else makes a rule ours. In particular a
rule made by hand that happens to be identical to the desired one is still someone else's: taking
it silently would hand it to ecrcache for good (a later change of the desired rule would rewrite
it, ``deletion_policy: delete`` would delete it, its cached repositories would be patched).

:func:`claim` decides for one rule or template of one prefix, from four facts:

=========  ======  =======  =====  ==============================================================
in ECR     ours    desired  adopt  claim
=========  ======  =======  =====  ==============================================================
no         any     any      any    :attr:`Claim.ABSENT` (a desired one is created, and is ours)
yes        yes     any      any    :attr:`Claim.OURS` (converged; a retired one follows its
                                   ``deletion_policy``)
yes        no      yes      yes    :attr:`Claim.ADOPTABLE` (taken over, then converged)
yes        no      yes      no     :attr:`Claim.BLOCKED` (nothing changes; the rule is Blocked)
yes        no      no       any    :attr:`Claim.NOT_OURS` (reported, never changed)
=========  ======  =======  =====  ==============================================================

Whether the rule in ECR is identical to the desired one changes only what taking it over costs
(an ``adopt_*`` action that only records ownership, or an update), never whether it is ours.

:func:`ownership_block` applies it to a desired prefix (its rule and its template together): the
:class:`~ecrcache.engine.plan.Blocked` entry the planner reports, the API's dry run and apply show,
and the rule's status carries (``Synced`` false and ``Terminal`` true, reason ``Blocked``). A
blocked prefix gets no action at all: not its rule, not its template, not its cached repositories.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Final

from ecrcache.engine.plan import Blocked

if TYPE_CHECKING:
    from ecrcache.models.observed import DesiredRule, ObservedRegion, Ownership

__all__ = ["ADOPT_HINT", "Claim", "claim", "ownership_block"]

ADOPT_HINT: Final = (
    "To keep what ECR holds as it is, remove the rule from the desired state and run `ecrcache import` "
    "(it adds the rule as ECR has it); to let ecrcache take it over and make it match this rule, set "
    "`adopt: true` on the rule."
)


class Claim(StrEnum):
    """What ecrcache may do with one rule or template of one prefix (see the module's table)."""

    ABSENT = "absent"
    """Not in ECR: nothing to decide (a desired one is created, and from then on ours)."""
    OURS = "ours"
    """Created or taken over by ecrcache: converged while desired, then ``deletion_policy`` decides."""
    ADOPTABLE = "adoptable"
    """Someone else's, desired with ``adopt: true``: ecrcache takes it over (records it), then converges it."""
    BLOCKED = "blocked"
    """Someone else's, desired without ``adopt: true``: nothing is changed, the rule is Blocked."""
    NOT_OURS = "not_ours"
    """Someone else's and not desired: reported, never changed."""

    @property
    def may_change(self) -> bool:
        """Whether ecrcache may make (or has made) ECR calls that change it."""
        return self in (Claim.ABSENT, Claim.OURS, Claim.ADOPTABLE)


def claim(*, present: bool, owned: bool, desired: bool, adopt: bool) -> Claim:
    """Whether a rule or template of one prefix is ecrcache's to change (the module's table).

    ``present``: ECR holds it; ``owned``: ecrcache recorded creating or taking it over; ``desired``:
    the prefix is desired in this Region; ``adopt``: the desired rule says ``adopt: true``.
    """
    if not present:
        return Claim.ABSENT
    if owned:
        return Claim.OURS
    if not desired:
        return Claim.NOT_OURS
    return Claim.ADOPTABLE if adopt else Claim.BLOCKED


def ownership_block(rule: DesiredRule, observed: ObservedRegion, ownership: Ownership) -> Blocked | None:
    """The :class:`Blocked` entry for a desired rule whose prefix holds a rule or template in ECR that
    is not ecrcache's, without ``adopt: true``; ``None`` when ecrcache may plan the prefix."""
    prefix = rule.prefix
    found_rule = observed.rules.get(prefix)
    claims = {
        "pull-through cache rule": claim(
            present=found_rule is not None, owned=prefix in ownership.rules, desired=True, adopt=rule.spec.adopt
        ),
        "repository creation template": claim(
            present=prefix in observed.templates,
            owned=prefix in ownership.templates,
            desired=True,
            adopt=rule.spec.adopt,
        ),
    }
    colliding = [what for what, found in claims.items() if found is Claim.BLOCKED]
    if not colliding:
        return None
    what = " and a ".join(colliding)
    upstream = ""
    if found_rule is not None and "pull-through cache rule" in colliding:
        wanted = rule.spec.effective_url()
        upstream = (
            f" (it points at {found_rule.upstream_registry_url}"
            + ("" if found_rule.upstream_registry_url == wanted else f"; this rule at {wanted}")
            + ")"
        )
    reason = (
        f"ECR already has a {what} for prefix {prefix!r} that ecrcache did not create{upstream}: nothing is "
        f"changed in ECR for this rule. {ADOPT_HINT}"
    )
    return Blocked(region=observed.region, prefix=prefix, reason=reason)
