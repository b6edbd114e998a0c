"""What a reconcile concludes: each rule's status, ownership, stale statuses and the run summary.

Every case is a tiny table row: the findings of one run for one rule, and the conditions expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult, Blocked, Plan, PlannedAction
from ecrcache.engine.status import (
    DELETING_MESSAGE,
    UNVERIFIED,
    VALIDATE_AFTER,
    Failure,
    OwnershipChange,
    RegionSummary,
    RuleFindings,
    RunSummary,
    Validation,
    action_errors,
    deleting_status,
    forgettable,
    no_longer_desired,
    ownership_change,
    region_failure_status,
    rule_findings,
    rule_status,
    run_status,
    synced_message,
    synced_reason,
    unverified,
)
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints, Ownership
from ecrcache.models.status import ConditionType, RuleStatus, RuleValidation, RunStatus
from tests.unit.engine.planner_support import REGION, desired

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
K = ActionKind


def action(kind: ActionKind = K.PUT_LIFECYCLE_POLICY, target: str = "quay/a", prefix: str = "quay") -> PlannedAction:
    return PlannedAction(kind=kind, region=REGION, target=target, rule_prefix=prefix, reason=f"{kind} needed")


def failed(
    kind: ActionKind = K.PUT_LIFECYCLE_POLICY, target: str = "quay/a", *, code: str = "Boom", retryable: bool = False
) -> Failure:
    return action(kind, target), ActionResult.failure(code, f"{code} happened", retryable=retryable)


THROTTLED = failed(code="ThrottlingException", retryable=True)
DENIED = failed(K.CREATE_RULE, "quay", code="AccessDeniedException")
LEFT = action(K.TAG_REPOSITORY, "quay/b")


def conditions(status: RuleStatus) -> dict[str, tuple[bool, str, str]]:
    return {c.type.value: (c.status, c.reason, c.message) for c in status.conditions}


def new_status(
    found: RuleFindings, current: RuleStatus | None = None, *, validation: Validation | None = None
) -> RuleStatus:
    return rule_status(current or RuleStatus(), found, now=NOW, run_id="run-2", revision=7, validation=validation)


# --------------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Case:
    found: RuleFindings
    synced: tuple[bool, str, str]
    terminal: tuple[bool, str, str]
    recoverable: tuple[bool, str, str]


CASES: dict[str, Case] = {
    "converged": Case(
        RuleFindings(planned=2),
        synced=(True, "Converged", ""),
        terminal=(False, "None", ""),
        recoverable=(False, "None", ""),
    ),
    "nothing planned": Case(
        RuleFindings(),
        synced=(True, "Converged", ""),
        terminal=(False, "None", ""),
        recoverable=(False, "None", ""),
    ),
    "a retryable failure": Case(
        RuleFindings(planned=1, failures=(THROTTLED,)),
        synced=(False, "ApplyFailed", "put_lifecycle_policy quay/a: ThrottlingException: ThrottlingException happened"),
        terminal=(False, "None", ""),
        recoverable=(True, "ThrottlingException", "ThrottlingException happened"),
    ),
    "a terminal failure": Case(
        RuleFindings(planned=1, failures=(DENIED,)),
        synced=(False, "ApplyFailed", "create_rule quay: AccessDeniedException: AccessDeniedException happened"),
        terminal=(True, "AccessDeniedException", "AccessDeniedException happened"),
        recoverable=(False, "None", ""),
    ),
    "both kinds of failure: the first named, the others counted": Case(
        RuleFindings(planned=3, failures=(DENIED, THROTTLED)),
        synced=(
            False,
            "ApplyFailed",
            "create_rule quay: AccessDeniedException: AccessDeniedException happened (and 1 more)",
        ),
        terminal=(True, "AccessDeniedException", "AccessDeniedException happened"),
        recoverable=(True, "ThrottlingException", "ThrottlingException happened"),
    ),
    "a failure without a code": Case(
        RuleFindings(planned=1, failures=((action(), ActionResult(ok=False, retryable=True)),)),
        synced=(False, "ApplyFailed", "put_lifecycle_policy quay/a: None: None"),
        terminal=(False, "None", ""),
        recoverable=(True, "Retryable", ""),
    ),
    "left after verify": Case(
        RuleFindings(planned=1, left=(LEFT, action(K.TAG_REPOSITORY, "quay/c"))),
        synced=(
            False,
            "NotConverged",
            "2 action(s) still planned after apply, e.g. tag_repository quay/b: tag_repository needed",
        ),
        terminal=(False, "None", ""),
        recoverable=(False, "None", ""),
    ),
    "blocked": Case(
        RuleFindings(blocked="credential 'hub' has no secret yet"),
        synced=(False, "Blocked", "credential 'hub' has no secret yet"),
        terminal=(True, "Blocked", "credential 'hub' has no secret yet"),
        recoverable=(False, "None", ""),
    ),
    "blocked wins over a failure and a left-over": Case(
        RuleFindings(planned=1, failures=(THROTTLED,), left=(LEFT,), blocked="partly planned"),
        synced=(False, "Blocked", "partly planned"),
        terminal=(True, "Blocked", "partly planned"),
        recoverable=(True, "ThrottlingException", "ThrottlingException happened"),
    ),
    "pending: waiting for the Region's secret replica is recoverable, not terminal": Case(
        RuleFindings(blocked="waiting for the replica of secret x in eu-west-1", pending=True),
        synced=(False, "Pending", "waiting for the replica of secret x in eu-west-1"),
        terminal=(False, "None", ""),
        recoverable=(True, "Pending", "waiting for the replica of secret x in eu-west-1"),
    ),
    "a retryable failure is named before a pending block": Case(
        RuleFindings(planned=1, failures=(THROTTLED,), blocked="waiting", pending=True),
        synced=(False, "Pending", "waiting"),
        terminal=(False, "None", ""),
        recoverable=(True, "ThrottlingException", "ThrottlingException happened"),
    ),
    "a failure wins over a left-over": Case(
        RuleFindings(planned=1, failures=(THROTTLED,), left=(LEFT,)),
        synced=(False, "ApplyFailed", "put_lifecycle_policy quay/a: ThrottlingException: ThrottlingException happened"),
        terminal=(False, "None", ""),
        recoverable=(True, "ThrottlingException", "ThrottlingException happened"),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_conditions(name: str) -> None:
    # GIVEN what a run found for one rule
    case = CASES[name]
    # WHEN its status is derived
    status = new_status(case.found)
    # THEN the three conditions say exactly that, in ACK order (a run never sets UpstreamHealthy)
    assert conditions(status) == {
        "Synced": case.synced,
        "Terminal": case.terminal,
        "Recoverable": case.recoverable,
    }
    assert [c.type for c in status.conditions] == [
        ConditionType.SYNCED,
        ConditionType.TERMINAL,
        ConditionType.RECOVERABLE,
    ]


@pytest.mark.parametrize(
    ("found", "reason", "message"),
    [
        (RuleFindings(), "Converged", ""),
        (RuleFindings(left=(LEFT,)), "NotConverged", "1 action(s) still planned after apply, e.g. "),
        (RuleFindings(failures=(THROTTLED,)), "ApplyFailed", "put_lifecycle_policy quay/a: "),
        (RuleFindings(blocked="why"), "Blocked", "why"),
    ],
)
def test_synced_reason_and_message(found: RuleFindings, reason: str, message: str) -> None:
    assert synced_reason(found) == reason
    assert synced_message(found).startswith(message)
    assert bool(synced_message(found)) is bool(message)


# --------------------------------------------------------------------------------------------------
# The rest of the status


def test_the_run_and_the_revision_are_recorded() -> None:
    status = new_status(RuleFindings(cached_repositories=4))
    assert (status.last_run_id, status.last_reconciled_at, status.observed_revision) == ("run-2", NOW, 7)
    assert status.cached_repositories == 4


@pytest.mark.parametrize(
    ("before", "found", "after"),
    [
        (0, RuleFindings(), 0),
        (0, RuleFindings(planned=3), 3),
        (5, RuleFindings(planned=3, failures=(THROTTLED,)), 7),
        (5, RuleFindings(planned=1, failures=(THROTTLED, DENIED)), 5),  # never negative
    ],
)
def test_drift_corrected_counts_the_actions_that_succeeded(before: int, found: RuleFindings, after: int) -> None:
    assert new_status(found, RuleStatus(drift_corrected=before)).drift_corrected == after


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    # GIVEN a rule Synced an hour ago, then failing
    synced_earlier = rule_status(RuleStatus(), RuleFindings(), now=EARLIER, run_id="run-1", revision=6)
    failing = new_status(RuleFindings(failures=(THROTTLED,)), synced_earlier)
    # THEN Synced moved (True -> False), Terminal did not (False -> False)
    assert failing.condition(ConditionType.SYNCED).last_transition == NOW  # type: ignore[union-attr]
    assert failing.condition(ConditionType.TERMINAL).last_transition == EARLIER  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        (None, RuleValidation(is_valid=False, failure="old", checked_at=EARLIER)),
        (Validation(True, None), RuleValidation(is_valid=True, failure=None, checked_at=NOW)),
        (
            Validation(False, "upstream said 401"),
            RuleValidation(is_valid=False, failure="upstream said 401", checked_at=NOW),
        ),
        (Validation(None, "ECR throttled"), RuleValidation(is_valid=None, failure="ECR throttled", checked_at=NOW)),
    ],
)
def test_validation_is_recorded_only_when_asked(validation: Validation | None, expected: RuleValidation) -> None:
    current = RuleStatus(validation=RuleValidation(is_valid=False, failure="old", checked_at=EARLIER))
    assert new_status(RuleFindings(), current, validation=validation).validation == expected


@pytest.mark.parametrize(
    ("error", "kind", "other"),
    [
        (RetryableError("ECR is throttling", reason="ThrottlingException"), "Recoverable", "Terminal"),
        (TerminalError("ECR denied the read", reason="AccessDeniedException"), "Terminal", "Recoverable"),
    ],
)
def test_region_failure(error: RetryableError | TerminalError, kind: str, other: str) -> None:
    # GIVEN a rule that was synced, with a drift count
    current = rule_status(RuleStatus(drift_corrected=3), RuleFindings(), now=EARLIER, run_id="run-1", revision=6)
    # WHEN its Region cannot be reconciled
    status = region_failure_status(current, error, now=NOW, run_id="run-2", revision=7)
    # THEN it is not Synced, the error's kind of condition holds, the other is left as it was
    found = conditions(status)
    assert found["Synced"] == (False, "RegionFailed", error.message)
    assert found[kind] == (True, error.reason, error.message)
    assert found[other] == (False, "None", "")
    assert (status.last_run_id, status.last_reconciled_at, status.observed_revision) == ("run-2", NOW, 7)
    assert status.drift_corrected == 3


# --------------------------------------------------------------------------------------------------
# Findings by rule


def test_findings_group_the_run_by_rule() -> None:
    # GIVEN a plan for two rules, one failure, one left-over and a blocked rule (in two Regions)
    plan = Plan(
        actions=(
            action(K.CREATE_RULE, "quay"),
            action(K.ADOPT_TEMPLATE, "quay"),  # no AWS call: not counted
            action(K.PUT_LIFECYCLE_POLICY, "quay/a"),
            action(K.CREATE_RULE, "hub", prefix="hub"),
        ),
        blocked=(
            Blocked(region=REGION, prefix="ghcr", reason="no secret"),
            Blocked(region="eu-west-1", prefix="quay", reason="x"),
        ),
    )
    left = Plan(actions=(action(K.TAG_REPOSITORY, "quay/a"),))
    # WHEN grouped
    found = rule_findings(
        ["quay", "hub", "ghcr"],
        region=REGION,
        plan=plan,
        left=left,
        failures={"hub": [failed(K.CREATE_RULE, "hub")]},
        repositories=["quay/a", "quay/b", "hub/x", "other/y"],
    )
    # THEN each rule has its own
    assert found == {
        "quay": RuleFindings(planned=2, left=(action(K.TAG_REPOSITORY, "quay/a"),), cached_repositories=2),
        "hub": RuleFindings(planned=1, failures=(failed(K.CREATE_RULE, "hub"),), cached_repositories=1),
        "ghcr": RuleFindings(blocked="no secret"),
    }


def test_findings_carry_a_pending_block() -> None:
    plan = Plan(blocked=(Blocked(region=REGION, prefix="hub", reason="waiting for the replica", pending=True),))
    found = rule_findings(["hub"], region=REGION, plan=plan, left=Plan(), failures={}, repositories=[])
    assert found == {"hub": RuleFindings(blocked="waiting for the replica", pending=True)}


@pytest.mark.parametrize(
    ("prefixes", "repositories", "expected"),
    [
        (["quay"], ["quay/a", "quayx/b", "quay"], {"quay": 1}),
        (["team", "team/web"], ["team/a", "team/web/b", "team/web/c"], {"team": 1, "team/web": 2}),
        (["ROOT", "quay"], ["quay/a", "library/node"], {"ROOT": 0, "quay": 1}),
    ],
)
def test_a_repository_counts_for_its_longest_prefix(
    prefixes: list[str], repositories: list[str], expected: dict[str, int]
) -> None:
    found = rule_findings(prefixes, region=REGION, plan=Plan(), left=Plan(), failures={}, repositories=repositories)
    assert {p: f.cached_repositories for p, f in found.items()} == expected


def test_action_errors_name_region_rule_action_and_cause() -> None:
    errors = action_errors(REGION, {"quay": [THROTTLED], "hub": [failed(K.CREATE_RULE, "hub")]})
    assert errors == [
        f"{REGION}:hub: create_rule hub: Boom: Boom happened",
        f"{REGION}:quay: put_lifecycle_policy quay/a: ThrottlingException: ThrottlingException happened",
    ]


# --------------------------------------------------------------------------------------------------
# Ownership, stale statuses, unverified fingerprints


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        (K.CREATE_RULE, OwnershipChange("rule", owned=True)),
        (K.ADOPT_RULE, OwnershipChange("rule", owned=True)),
        (K.UPDATE_RULE, OwnershipChange("rule", owned=True)),
        (K.REPLACE_RULE, OwnershipChange("rule", owned=True)),
        (K.DELETE_RULE, OwnershipChange("rule", owned=False)),
        (K.CREATE_TEMPLATE, OwnershipChange("template", owned=True)),
        (K.ADOPT_TEMPLATE, OwnershipChange("template", owned=True)),
        (K.UPDATE_TEMPLATE, OwnershipChange("template", owned=True)),
        (K.DELETE_TEMPLATE, OwnershipChange("template", owned=False)),
        (K.REGISTER_EXCLUSION, OwnershipChange("exclusion", owned=True)),
        (K.DEREGISTER_EXCLUSION, OwnershipChange("exclusion", owned=False)),
        (K.FORGET_EXCLUSION, OwnershipChange("exclusion", owned=False)),
        *((kind, None) for kind in ActionKind if kind.scope == "repository"),
    ],
)
def test_ownership_change(kind: ActionKind, change: OwnershipChange | None) -> None:
    assert ownership_change(kind) == change


def test_a_credential_is_validated_after_the_rule_was_written() -> None:
    assert {K.CREATE_RULE, K.UPDATE_RULE, K.REPLACE_RULE} == VALIDATE_AFTER


@pytest.mark.parametrize(
    ("recorded", "desired_prefixes", "stale"),
    [
        ([], ["quay"], []),
        (["quay"], ["quay"], []),
        (["quay", "hub"], ["quay"], ["hub"]),
        (["hub", "ghcr"], [], ["hub", "ghcr"]),
    ],
)
def test_no_longer_desired(recorded: list[str], desired_prefixes: list[str], stale: list[str]) -> None:
    assert no_longer_desired(recorded, [desired(p) for p in desired_prefixes]) == stale


@pytest.mark.parametrize(
    ("policy", "ownership", "dropped"),
    [
        ("retain", Ownership(rules=frozenset({"quay"})), ["quay"]),
        ("delete", Ownership(), ["quay"]),
        ("delete", Ownership(rules=frozenset({"quay"})), []),  # still to delete: kept
        ("delete", Ownership(templates=frozenset({"quay"})), []),
    ],
)
def test_forgettable_keeps_a_rule_still_being_deleted(policy: str, ownership: Ownership, dropped: list[str]) -> None:
    retired = [desired("quay", deletion_policy=policy)]
    assert forgettable(["quay"], retired=retired, ownership=ownership) == dropped


def test_a_rule_being_deleted_is_not_synced_and_says_so() -> None:
    # GIVEN a converged rule's status, the rule no longer desired and its deletion under way
    converged = rule_status(RuleStatus(), RuleFindings(), now=NOW, run_id="r1", revision=1)
    later = NOW + timedelta(minutes=15)
    # WHEN nothing of the deletion failed THEN it is not Synced, reason Deleting, since now
    status = deleting_status(converged, RuleFindings(planned=1), now=later, run_id="r2", revision=2)
    synced = status.condition(ConditionType.SYNCED)
    assert synced is not None
    assert (synced.status, synced.reason, synced.message, synced.last_transition) == (
        False,
        "Deleting",
        DELETING_MESSAGE,
        later,
    )
    assert (status.last_run_id, status.observed_revision) == ("r2", 2)
    # WHEN the deletion failed THEN the failure is what it says (Recoverable / Terminal as for any action)
    failed = deleting_status(
        converged, RuleFindings(planned=1, failures=(THROTTLED,)), now=later, run_id="r2", revision=2
    )
    assert failed.condition(ConditionType.SYNCED) is not None
    assert failed.condition(ConditionType.SYNCED).reason == "ApplyFailed"  # type: ignore[union-attr]
    assert failed.condition(ConditionType.RECOVERABLE).status  # type: ignore[union-attr]


def test_forgettable_without_a_retired_rule_drops_everything() -> None:
    assert forgettable(["quay", "hub"], retired=[], ownership=Ownership(rules=frozenset({"quay"}))) == ["quay", "hub"]


@pytest.mark.parametrize(
    ("applied", "expected"),
    [
        (
            AppliedFingerprints(lifecycle="a", policy="b", tags="c"),
            AppliedFingerprints(lifecycle=UNVERIFIED, policy=UNVERIFIED, tags=UNVERIFIED),
        ),
        (AppliedFingerprints(lifecycle="a"), AppliedFingerprints(lifecycle=UNVERIFIED)),
        (AppliedFingerprints(), AppliedFingerprints()),
        # the tag keys ecrcache applied stay its own (so they can still be removed)
        (
            AppliedFingerprints(tags="c", tag_keys=frozenset({"team"})),
            AppliedFingerprints(tags=UNVERIFIED, tag_keys=frozenset({"team"})),
        ),
    ],
)
def test_unverified_keeps_which_aspects_were_applied(
    applied: AppliedFingerprints, expected: AppliedFingerprints
) -> None:
    assert unverified({"quay/a": applied}, ["quay/a"]) == {"quay/a": expected}


def test_unverified_skips_repositories_without_a_record() -> None:
    assert unverified({"quay/a": AppliedFingerprints(tags="c")}, ["quay/b"]) == {}


# --------------------------------------------------------------------------------------------------
# Run summary


def reconciled(*applied: tuple[ActionKind, int], failed_actions: int = 0, left: int = 0) -> RegionSummary:
    return RegionSummary(applied=applied, failed_actions=failed_actions, left_after_verify=left)


SUMMARIES: dict[str, tuple[tuple[RegionSummary, ...], dict[str, int]]] = {
    "no Region": ((), {}),
    "converged": ((reconciled(),), {"left_after_verify": 0}),
    "applied": (
        (reconciled((K.CREATE_RULE, 1), (K.CREATE_TEMPLATE, 1)),),
        {"create_rule": 1, "create_template": 1, "left_after_verify": 0},
    ),
    "failed actions and left-overs": (
        (reconciled((K.TAG_REPOSITORY, 2), failed_actions=3, left=4),),
        {"tag_repository": 2, "failed_actions": 3, "left_after_verify": 4},
    ),
    "a failed Region only": ((RegionSummary.region_failure(),), {"region_failures": 1}),
    "Regions add up, keys in the order they first came": (
        (
            RegionSummary.region_failure(),
            reconciled((K.CREATE_RULE, 1), left=1),
            reconciled((K.PUT_LIFECYCLE_POLICY, 2), (K.CREATE_RULE, 1), failed_actions=1),
            RegionSummary.region_failure(),
        ),
        {
            "region_failures": 2,
            "create_rule": 2,
            "left_after_verify": 1,
            "put_lifecycle_policy": 2,
            "failed_actions": 1,
        },
    ),
}


@pytest.mark.parametrize("name", SUMMARIES)
def test_summary_as_stored(name: str) -> None:
    regions, stored = SUMMARIES[name]
    as_dict = RunSummary(regions).as_dict()
    assert as_dict == stored
    assert list(as_dict) == list(stored)  # the CLI prints the keys in this order


def test_summary_totals() -> None:
    summary = RunSummary(SUMMARIES["Regions add up, keys in the order they first came"][0])
    assert summary.applied == {K.CREATE_RULE: 2, K.PUT_LIFECYCLE_POLICY: 2}
    assert (summary.applied_total, summary.failed_actions, summary.region_failures, summary.left_after_verify) == (
        4,
        1,
        2,
        1,
    )


@pytest.mark.parametrize(
    ("regions", "errors", "busy", "status"),
    [
        ((reconciled(),), False, False, RunStatus.SUCCEEDED),
        ((reconciled((K.CREATE_RULE, 1)),), False, False, RunStatus.SUCCEEDED),
        ((reconciled((K.CREATE_RULE, 1), failed_actions=1),), True, False, RunStatus.PARTIAL),
        ((reconciled(failed_actions=1),), True, False, RunStatus.FAILED),
        ((), False, True, RunStatus.FAILED),
        ((reconciled((K.CREATE_RULE, 1)),), False, True, RunStatus.PARTIAL),
        ((RegionSummary.region_failure(),), True, False, RunStatus.FAILED),
    ],
)
def test_run_status(regions: tuple[RegionSummary, ...], errors: bool, busy: bool, status: RunStatus) -> None:
    assert run_status(RunSummary(regions), errors=errors, busy=busy) is status
