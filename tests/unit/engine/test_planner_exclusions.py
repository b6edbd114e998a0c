"""The warm worker's pull-time update exclusion: each row of the engine's table, requests, reasons and order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from ecrcache.engine.exclusions import plan_exclusions
from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, Plan, Unmanaged
from ecrcache.engine.planner import plan, plan_region
from ecrcache.models.observed import DesiredRule, ObservedRegion, Ownership
from tests.fakes.simulate import apply_to_observed
from tests.unit.engine.planner_support import ACCOUNT, REGION, converged, desired, kinds, owned, region

pytestmark = pytest.mark.unit

WARMER = f"arn:aws:iam::{ACCOUNT}:role/ecrcache/ecrcache-WarmWorkerFunctionRole-AB12"
OLD_WARMER = f"arn:aws:iam::{ACCOUNT}:role/ecrcache-WarmWorkerFunctionRole-OLD9"
SCANNER = f"arn:aws:iam::{ACCOUNT}:role/security-scanner"
QUAY = desired("quay")
OTHER_REGION = "eu-west-1"


def with_exclusions(observed: ObservedRegion, *principals: str) -> ObservedRegion:
    return observed.model_copy(update={"exclusions": frozenset(principals)})


def ours(*principals: str, rules: Sequence[str] = ("quay",)) -> Ownership:
    return owned(*rules).model_copy(update={"exclusions": frozenset(principals)})


def run(
    rules: Sequence[DesiredRule], observed: ObservedRegion, ownership: Ownership, warmer: str | None = WARMER
) -> Plan:
    return plan_region(rules, (), observed, ownership, deep=False, warmer_role=warmer)


@dataclass(frozen=True)
class Row:
    """One row of the engine's table: the situation and exactly the exclusion work expected."""

    rules: Sequence[DesiredRule]
    registered: Sequence[str]
    ownership: Ownership
    warmer: str | None
    expected: list[tuple[str, str]]
    unmanaged: list[str]


ROWS: dict[str, Row] = {
    "wanted, missing": Row([QUAY], [SCANNER], ours(), WARMER, [("register_exclusion", WARMER)], []),
    "wanted, ours, gone (drift)": Row([QUAY], [], ours(WARMER), WARMER, [("register_exclusion", WARMER)], []),
    "wanted, ours, registered": Row([QUAY], [WARMER], ours(WARMER), WARMER, [], []),
    "wanted, someone else's": Row([QUAY], [WARMER], ours(), WARMER, [], [WARMER]),
    "role changed": Row(
        [QUAY],
        [OLD_WARMER],
        ours(OLD_WARMER),
        WARMER,
        [("deregister_exclusion", OLD_WARMER), ("register_exclusion", WARMER)],  # by target, then kind
        [],
    ),
    "no desired rule in the Region": Row(
        [], [WARMER], ours(WARMER, rules=()), WARMER, [("deregister_exclusion", WARMER)], []
    ),
    "setting cleared": Row([QUAY], [WARMER], ours(WARMER), None, [("deregister_exclusion", WARMER)], []),
    "ours, gone, not wanted": Row([], [], ours(WARMER, rules=()), WARMER, [("forget_exclusion", WARMER)], []),
    "someone else's, not wanted": Row([], [WARMER, SCANNER], Ownership(), WARMER, [], []),
    "someone else's, setting cleared": Row([QUAY], [WARMER], ours(), None, [], []),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_plan_region_plans_exactly_the_exclusion_work_of_the_row(name: str) -> None:
    # GIVEN the row's desired rules, registered exclusions, ownership and warmer role WHEN planned
    row = ROWS[name]
    observed = with_exclusions(converged(row.rules), *row.registered)
    found = run(row.rules, observed, row.ownership, row.warmer)
    # THEN exactly the expected exclusion actions (rules and templates are converged: nothing else)
    assert kinds(found) == row.expected
    assert [u.name for u in found.unmanaged if u.kind == "exclusion"] == row.unmanaged
    assert all(a.kind.scope == "exclusion" and a.rule_prefix == REGISTRY_LEVEL for a in found.actions)


@pytest.mark.parametrize("kind", [k for k in ActionKind if k.scope == "exclusion"])
def test_every_exclusion_kind_has_a_row(kind: ActionKind) -> None:
    assert any(kind.value in {k for k, _ in row.expected} for row in ROWS.values())


@pytest.mark.parametrize("name", list(ROWS))
def test_applying_the_plan_converges_the_row(name: str) -> None:
    # GIVEN a row's plan, applied as ECR would WHEN planned again THEN nothing is left to do
    row = ROWS[name]
    observed = with_exclusions(converged(row.rules), *row.registered)
    first = run(row.rules, observed, row.ownership, row.warmer)
    after, after_owned = apply_to_observed(observed, row.ownership, first)
    assert run(row.rules, after, after_owned, row.warmer).is_empty
    # AND someone else's exclusions are still there
    assert after.exclusions is not None
    assert {p for p in row.registered if p not in row.ownership.exclusions} <= after.exclusions


def test_register_and_deregister_requests_and_sides() -> None:
    found = run([QUAY], with_exclusions(converged([QUAY]), OLD_WARMER), ours(OLD_WARMER))
    by_kind = {a.kind: a for a in found.actions}
    register, deregister = by_kind[ActionKind.REGISTER_EXCLUSION], by_kind[ActionKind.DEREGISTER_EXCLUSION]
    assert (register.kind, register.request, register.before, register.after) == (
        ActionKind.REGISTER_EXCLUSION,
        {"principalArn": WARMER},
        None,
        {"principalArn": WARMER},
    )
    assert (deregister.kind, deregister.request, deregister.before, deregister.after) == (
        ActionKind.DEREGISTER_EXCLUSION,
        {"principalArn": OLD_WARMER},
        {"principalArn": OLD_WARMER},
        None,
    )
    assert WARMER in deregister.reason  # says which role is the warmer's now


def test_forget_makes_no_call_and_sends_nothing() -> None:
    found = run([], with_exclusions(region()), ours(WARMER, rules=()))
    [forget] = found.actions
    assert (forget.kind.calls_aws, forget.request, forget.before, forget.after) == (False, {}, None, None)


@pytest.mark.parametrize(
    ("rules", "ownership", "phrase"),
    [
        ([QUAY], ours(), "keep warmed images out of sinceImagePulled"),
        ([QUAY], ours(WARMER), "deregistered outside ecrcache"),
    ],
)
def test_register_reason_tells_a_first_registration_from_a_repair(
    rules: list[DesiredRule], ownership: Ownership, phrase: str
) -> None:
    found = run(rules, with_exclusions(converged(rules)), ownership)
    assert phrase in found.actions[0].reason


@pytest.mark.parametrize(
    ("rules", "warmer", "phrase"),
    [([], WARMER, "no desired rule names this Region"), ([QUAY], None, "WARMER_ROLE_ARN")],
)
def test_deregister_reason_says_why_it_is_no_longer_wanted(
    rules: list[DesiredRule], warmer: str | None, phrase: str
) -> None:
    found = run(rules, with_exclusions(converged(rules), WARMER), ours(WARMER), warmer)
    assert phrase in found.actions[0].reason


def test_someone_elses_exclusion_of_the_warmer_is_reported_not_changed() -> None:
    found = run([QUAY], with_exclusions(converged([QUAY]), WARMER), ours())
    assert found.is_empty
    [report] = found.unmanaged
    assert report == Unmanaged(kind="exclusion", region=REGION, name=WARMER, reason=report.reason)
    assert "never deregistered by ecrcache" in report.reason


def test_nothing_is_planned_when_the_exclusions_were_not_read() -> None:
    # GIVEN ownership says ecrcache registered one, but the exclusions were not listed
    found = plan_exclusions(converged([QUAY]), ours(OLD_WARMER), warmer_role=WARMER, has_desired=True)
    assert found.actions == ()
    assert found.unmanaged == ()


def test_without_a_warmer_role_and_nothing_owned_nothing_is_planned() -> None:
    found = run([QUAY], with_exclusions(converged([QUAY]), SCANNER), ours(), None)
    assert found.is_empty
    assert found.unmanaged == ()


def test_exclusion_actions_come_after_the_regions_rules_templates_and_repositories() -> None:
    found = run([QUAY], with_exclusions(region()), Ownership())
    assert [a.kind.scope for a in found.actions] == ["rule", "template", "exclusion"]


def test_plan_registers_in_every_region_a_desired_rule_names_and_deregisters_elsewhere() -> None:
    # GIVEN quay desired in us-east-1 and eu-west-1, and an exclusion ecrcache registered in ap-south-1
    other = converged([QUAY]).model_copy(update={"region": OTHER_REGION, "exclusions": frozenset()})
    here = with_exclusions(converged([QUAY]))
    gone = ObservedRegion(region="ap-south-1", exclusions=frozenset({WARMER}))
    found = plan(
        {REGION: [QUAY], OTHER_REGION: [QUAY]},
        {},
        {REGION: here, OTHER_REGION: other, "ap-south-1": gone},
        {REGION: owned("quay"), OTHER_REGION: owned("quay"), "ap-south-1": ours(WARMER, rules=())},
        warmer_role=WARMER,
    )
    assert [(a.region, a.kind.value) for a in found.actions] == [
        ("ap-south-1", "deregister_exclusion"),
        (OTHER_REGION, "register_exclusion"),
        (REGION, "register_exclusion"),
    ]


def test_the_plan_round_trips_as_json_with_exclusion_actions() -> None:
    found = run([QUAY], with_exclusions(converged([QUAY]), OLD_WARMER), ours(OLD_WARMER))
    assert Plan.model_validate(found.model_dump(mode="json")) == found
    assert found.summary() == {"register_exclusion": 1, "deregister_exclusion": 1}
