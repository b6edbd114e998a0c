"""Ownership: :func:`~ecrcache.engine.ownership.claim` decides alone whether ecrcache may change a rule
or template, and the planner does exactly what it says, for every combination of desired (or
retired, or neither) x owned x in ECR (absent, identical, different) x ``adopt``, for rules and for
templates.
"""

from __future__ import annotations

import itertools
from typing import Final, Literal

import pytest

from ecrcache.engine.ownership import ADOPT_HINT, Claim, claim, ownership_block
from ecrcache.engine.plan import Plan
from ecrcache.engine.planner import plan_region
from ecrcache.models.observed import DesiredRule, ObservedRegion, Ownership
from tests.unit.engine.planner_support import (
    KEEP_10,
    KEEP_20,
    REGION,
    desired,
    region,
    repo,
    rule_of,
    template_of,
)

pytestmark = pytest.mark.unit

# --------------------------------------------------------------------------------------------------
# claim(): the table, every row


CLAIMS: Final = {
    # (present, owned, desired, adopt): claim
    (False, False, False, False): Claim.ABSENT,
    (False, False, False, True): Claim.ABSENT,
    (False, False, True, False): Claim.ABSENT,
    (False, False, True, True): Claim.ABSENT,
    (False, True, False, False): Claim.ABSENT,
    (False, True, False, True): Claim.ABSENT,
    (False, True, True, False): Claim.ABSENT,
    (False, True, True, True): Claim.ABSENT,
    (True, True, False, False): Claim.OURS,
    (True, True, False, True): Claim.OURS,
    (True, True, True, False): Claim.OURS,
    (True, True, True, True): Claim.OURS,
    (True, False, False, False): Claim.NOT_OURS,
    (True, False, False, True): Claim.NOT_OURS,
    (True, False, True, False): Claim.BLOCKED,
    (True, False, True, True): Claim.ADOPTABLE,
}


def test_claim_table_covers_every_combination() -> None:
    assert set(CLAIMS) == set(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize(("facts", "expected"), list(CLAIMS.items()), ids=str)
def test_claim(facts: tuple[bool, bool, bool, bool], expected: Claim) -> None:
    present, owned, is_desired, adopt = facts
    assert claim(present=present, owned=owned, desired=is_desired, adopt=adopt) is expected


def test_only_blocked_and_not_ours_may_not_change() -> None:
    assert {c for c in Claim if not c.may_change} == {Claim.BLOCKED, Claim.NOT_OURS}


# --------------------------------------------------------------------------------------------------
# The planner, for every combination


Desired = Literal["desired", "retired", "neither"]
Present = Literal["absent", "identical", "different"]
Resource = Literal["rule", "template"]

# What the planner does with the rule or template under test, and with the prefix:
#   create / adopt / change / delete: the action for it ("change" is replace_rule / update_template);
#   "-": nothing; "unmanaged": reported, never changed; "BLOCKED": the prefix is Blocked (no action at all).
OUTCOMES: Final[dict[tuple[Desired, bool, Present, bool], str]] = {
    # (desired, owned, present, adopt): outcome
    ("desired", False, "absent", False): "create",
    ("desired", False, "absent", True): "create",
    ("desired", True, "absent", False): "create",
    ("desired", True, "absent", True): "create",
    ("desired", True, "identical", False): "-",
    ("desired", True, "identical", True): "-",
    ("desired", True, "different", False): "change",
    ("desired", True, "different", True): "change",
    ("desired", False, "identical", False): "BLOCKED",
    ("desired", False, "identical", True): "adopt",
    ("desired", False, "different", False): "BLOCKED",
    ("desired", False, "different", True): "change",
    # retired (deleted desired rule, deletion_policy delete): deleted only when ours
    ("retired", False, "absent", False): "-",
    ("retired", False, "absent", True): "-",
    ("retired", True, "absent", False): "-",
    ("retired", True, "absent", True): "-",
    ("retired", True, "identical", False): "delete",
    ("retired", True, "identical", True): "delete",
    ("retired", True, "different", False): "delete",
    ("retired", True, "different", True): "delete",
    ("retired", False, "identical", False): "unmanaged",
    ("retired", False, "identical", True): "unmanaged",
    ("retired", False, "different", False): "unmanaged",
    ("retired", False, "different", True): "unmanaged",
    # neither desired nor retired: reported, never changed
    ("neither", False, "absent", False): "-",
    ("neither", False, "absent", True): "-",
    ("neither", True, "absent", False): "-",
    ("neither", True, "absent", True): "-",
    ("neither", True, "identical", False): "unmanaged",
    ("neither", True, "identical", True): "unmanaged",
    ("neither", True, "different", False): "unmanaged",
    ("neither", True, "different", True): "unmanaged",
    ("neither", False, "identical", False): "unmanaged",
    ("neither", False, "identical", True): "unmanaged",
    ("neither", False, "different", False): "unmanaged",
    ("neither", False, "different", True): "unmanaged",
}
ACTION: Final = {
    ("rule", "create"): "create_rule",
    ("rule", "adopt"): "adopt_rule",
    ("rule", "change"): "replace_rule",
    ("rule", "delete"): "delete_rule",
    ("template", "create"): "create_template",
    ("template", "adopt"): "adopt_template",
    ("template", "change"): "update_template",
    ("template", "delete"): "delete_template",
}
REPOSITORY: Final = "quay/library/alpine"
PRESENT: Final[tuple[Present, ...]] = ("absent", "identical", "different")


def test_outcome_table_covers_every_combination() -> None:
    combinations = itertools.product(["desired", "retired", "neither"], [False, True], PRESENT, [False, True])
    assert set(OUTCOMES) == set(combinations)


def _world(
    resource: Resource, where: Desired, owned: bool, present: Present, adopt: bool
) -> tuple[list[DesiredRule], list[DesiredRule], ObservedRegion, Ownership]:
    """The rule or template under test as the row says; the other one of the prefix is ecrcache's and
    matches, and a cached repository under the prefix lacks the rule's tag mutability."""
    rule = desired("quay", lifecycle=KEEP_20, deletion_policy="delete", adopt=adopt)
    different = desired("quay", lifecycle=KEEP_10, upstream_repository_prefix="team")
    shown = different if present == "different" else rule
    rules = {"quay": rule_of(shown if resource == "rule" else rule)}
    templates = {"quay": template_of(shown if resource == "template" else rule)}
    if present == "absent":
        rules = {} if resource == "rule" else rules
        templates = {} if resource == "template" else templates
    other = "template" if resource == "rule" else "rule"
    owners = {other: frozenset({"quay"}), resource: frozenset({"quay"}) if owned else frozenset()}
    observed = region(
        rules.values(),
        templates.values(),
        [repo(REPOSITORY, mutability="IMMUTABLE_WITH_EXCLUSION", exclusions=["latest"])],
    )
    ownership = Ownership(rules=owners["rule"], templates=owners["template"])
    return ([rule] if where == "desired" else []), ([rule] if where == "retired" else []), observed, ownership


def _outcome(resource: Resource, found: Plan) -> str:
    kinds = {action.kind.value for action in found.actions if action.kind.scope == resource}
    if any(b.prefix == "quay" and b.reason.startswith("ECR already has") for b in found.blocked):
        assert found.actions == (), "a blocked prefix gets no action at all"
        return "BLOCKED"
    if kinds:
        [kind] = kinds
        return next(outcome for (r, outcome), value in ACTION.items() if r == resource and value == kind)
    if any(u.kind == resource and u.name == "quay" for u in found.unmanaged):
        return "unmanaged"
    return "-"


@pytest.mark.parametrize("resource", ["rule", "template"])
@pytest.mark.parametrize(("facts", "expected"), list(OUTCOMES.items()), ids=str)
def test_plan_region_does_what_ownership_says(
    resource: Resource, facts: tuple[Desired, bool, Present, bool], expected: str
) -> None:
    # GIVEN the rule or template of prefix quay as the row says
    where, owned, present, adopt = facts
    wanted, retired, observed, ownership = _world(resource, where, owned, present, adopt)
    # WHEN planned
    found = plan_region(wanted, retired, observed, ownership, deep=False)
    # THEN it is created, adopted, changed, deleted, reported or blocked exactly as the table says
    assert _outcome(resource, found) == expected, found.summary()
    # AND the cached repository is patched only for a desired prefix that is not blocked
    patched = any(a.target == REPOSITORY for a in found.actions)
    assert patched is (where == "desired" and expected != "BLOCKED")
    # AND a takeover says so
    if where == "desired" and not owned and present == "different" and adopt:
        [action] = [a for a in found.actions if a.kind.scope == resource]
        assert "takes over" in action.reason and "adopt: true" in action.reason


# --------------------------------------------------------------------------------------------------
# The Blocked entry: one text for the plan, the API's dry run and apply, and the rule's status


def test_ownership_block_names_what_collides_where_it_points_and_what_to_do() -> None:
    # GIVEN a hand-made Quay rule and template at prefix conflict2, declared with another upstream
    hand_made = desired("conflict2")
    declared = desired("conflict2", kind="ecr-public")
    observed = region([rule_of(hand_made)], [template_of(hand_made)])
    # WHEN checked
    block = ownership_block(declared, observed, Ownership())
    # THEN it is blocked, saying what, where each points, and the two ways out
    assert block is not None
    assert (block.region, block.prefix) == (REGION, "conflict2")
    assert block.reason.startswith(
        "ECR already has a pull-through cache rule and a repository creation template for prefix 'conflict2' "
        "that ecrcache did not create (it points at quay.io; this rule at public.ecr.aws): nothing is changed "
        "in ECR for this rule."
    )
    assert block.reason.endswith(ADOPT_HINT)
    assert "`ecrcache import`" in ADOPT_HINT and "`adopt: true`" in ADOPT_HINT


def test_ownership_block_of_an_identical_rule_does_not_repeat_the_upstream() -> None:
    rule = desired("quay")
    block = ownership_block(rule, region([rule_of(rule)]), Ownership())
    assert block is not None
    assert "(it points at quay.io)" in block.reason
    assert "repository creation template" not in block.reason


@pytest.mark.parametrize(
    ("ownership", "adopt"),
    [(Ownership(rules=frozenset({"quay"}), templates=frozenset({"quay"})), False), (Ownership(), True)],
)
def test_ownership_block_is_none_when_ours_or_adopted(ownership: Ownership, adopt: bool) -> None:
    rule = desired("quay", adopt=adopt)
    assert ownership_block(rule, region([rule_of(rule)], [template_of(rule)]), ownership) is None
