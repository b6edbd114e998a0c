"""The warmer's exclusion in what a reconcile concludes: shared by every rule of the Region, never lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecrcache.engine.plan import REGISTRY_LEVEL, ActionKind, ActionResult, Plan, PlannedAction
from ecrcache.engine.status import action_errors, forgettable, rule_findings, rule_status
from ecrcache.models.observed import Ownership
from ecrcache.models.status import ConditionType, RuleStatus
from tests.unit.engine.planner_support import ACCOUNT, REGION, desired

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WARMER = f"arn:aws:iam::{ACCOUNT}:role/ecrcache-WarmWorkerFunctionRole-AB12"
LIMIT = ActionResult.failure(
    "LimitExceededException", "RegisterPullTimeUpdateExclusion failed with LimitExceededException", retryable=False
)


def register() -> PlannedAction:
    return PlannedAction(
        kind=ActionKind.REGISTER_EXCLUSION,
        region=REGION,
        target=WARMER,
        rule_prefix=REGISTRY_LEVEL,
        reason="the warm worker's role is not excluded",
        request={"principalArn": WARMER},
    )


def tag(prefix: str) -> PlannedAction:
    return PlannedAction(
        kind=ActionKind.TAG_REPOSITORY, region=REGION, target=f"{prefix}/a", rule_prefix=prefix, reason="tags"
    )


def test_a_failed_exclusion_shows_on_every_rule_of_the_region_as_terminal() -> None:
    # GIVEN two rules and a register_exclusion ECR refused with its quota
    applied = Plan(actions=(register(), tag("quay")))
    found = rule_findings(
        ["quay", "hub"],
        region=REGION,
        plan=applied,
        left=Plan(actions=(register(),)),
        failures={REGISTRY_LEVEL: [(register(), LIMIT)]},
        repositories=[],
    )
    # THEN both rules carry it: not Synced, Terminal with ECR's code, and the action left after verify
    for prefix in ("quay", "hub"):
        status = rule_status(RuleStatus(), found[prefix], now=NOW, run_id="r", revision=1)
        terminal = status.condition(ConditionType.TERMINAL)
        assert terminal is not None
        assert (terminal.status, terminal.reason) == (True, "LimitExceededException")
        assert not status.synced
        assert found[prefix].left == (register(),)
    # AND the shared failure does not eat a rule's own corrected drift (quay's tag succeeded)
    quay = rule_status(RuleStatus(), found["quay"], now=NOW, run_id="r", revision=1)
    assert (found["quay"].planned, found["quay"].shared_failures, quay.drift_corrected) == (1, 1, 1)


def test_a_registered_exclusion_leaves_every_rule_synced() -> None:
    found = rule_findings(
        ["quay"], region=REGION, plan=Plan(actions=(register(),)), left=Plan(), failures={}, repositories=[]
    )
    status = rule_status(RuleStatus(), found["quay"], now=NOW, run_id="r", revision=1)
    assert status.synced
    assert status.drift_corrected == 0  # the registry's action is no rule's drift


def test_run_errors_name_the_region_only_for_a_registry_level_failure() -> None:
    assert action_errors(REGION, {REGISTRY_LEVEL: [(register(), LIMIT)]}) == [
        f"{REGION}: register_exclusion {WARMER}: LimitExceededException: {LIMIT.message}"
    ]


@pytest.mark.parametrize(
    ("exclusions", "desired_left", "dropped"),
    [
        (frozenset({WARMER}), False, []),  # the status keeps the Region in the runs until it is deregistered
        (frozenset({WARMER}), True, ["quay"]),  # a desired rule keeps the Region in the runs
        (frozenset(), False, ["quay"]),
    ],
)
def test_stale_statuses_stay_while_an_owned_exclusion_waits_for_its_deregistration(
    exclusions: frozenset[str], desired_left: bool, dropped: list[str]
) -> None:
    ownership = Ownership(exclusions=exclusions)
    retired = [desired("quay", deletion_policy="retain")]
    assert forgettable(["quay"], retired=retired, ownership=ownership, desired_left=desired_left) == dropped
