"""The deep resync's fan-out as values: which repositories go to shards, the shards, their reports and the
finished run (pure: :mod:`ecrcache.engine.shards`), and a shard's plan (``plan_repositories``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult, Blocked, Plan, PlannedAction
from ecrcache.engine.planner import plan_region, plan_repositories
from ecrcache.engine.shards import (
    REPOSITORIES_FAILED,
    failed_by_rule,
    finished_run,
    folded_status,
    managed_repositories,
    repositories_failed_status,
    repository_work,
    shard_report,
    shards_of,
    unaccounted,
    without_repositories,
)
from ecrcache.engine.status import APPLYING, rule_findings, rule_status
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.models.observed import AppliedFingerprints, ObservedRegion
from ecrcache.models.shards import MAX_SHARD_ERRORS, ShardCounts, ShardRecord, ShardReport, ShardState, ShardTask
from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus, RunStatus, RunTrigger
from tests.unit.engine.planner_support import (
    KEEP_10,
    KEEP_20,
    REGION,
    converged,
    converged_repo,
    desired,
    details_of,
    owned,
    repo,
    rule_of,
    spec,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
QUAY = spec(lifecycle=KEEP_10, tags={"team": "platform"})


def _record(index: int, state: ShardState, *, region: str = REGION, **fields: object) -> ShardRecord:
    return ShardRecord.model_validate(
        {"run_id": "run-1", "region": region, "index": index, "state": state, "rules": {"quay": 3}, **fields}
    )


def _run(**fields: object) -> ReconcileRun:
    base = {"run_id": "run-1", "trigger": RunTrigger.SCHEDULE, "started_at": NOW, "shards": ShardCounts(total=2)}
    return ReconcileRun.model_validate({**base, **fields})


# --------------------------------------------------------------------------------------------------
# managed repositories and shards


def test_managed_repositories_are_those_a_deep_read_would_plan() -> None:
    rules = [desired("quay", QUAY), desired("k8s", spec("k8s", lifecycle=KEEP_10)), desired("hub", spec("docker-hub"))]
    repositories = [
        repo("quay/a"),
        repo("quay/team/b"),  # under an ECR rule ecrcache does not manage, with a longer prefix
        repo("k8s/pause"),
        repo("hub/library/node"),  # its rule is blocked
        repo("retired/x"),  # a retired rule's
        repo("apps/api"),  # under no rule
    ]
    observed = converged(rules, repositories)
    observed = observed.model_copy(update={"rules": {**observed.rules, "quay/team": rule_of(desired("quay/team"))}})
    plan = Plan(blocked=(Blocked(region=REGION, prefix="hub", reason="not ours"),))
    found = managed_repositories(observed, plan, rules, [desired("retired")])
    assert found == {"k8s/pause": "k8s", "quay/a": "quay"}


def test_a_root_rule_manages_no_repository_by_name() -> None:
    rules = [desired(ROOT_PREFIX, spec())]
    assert managed_repositories(converged(rules, [repo("library/node")]), Plan(), rules, []) == {}


def test_shards_are_sorted_chunks_with_each_rules_share() -> None:
    managed = {f"quay/{i}": "quay" for i in range(5)} | {"k8s/a": "k8s", "k8s/b": "k8s"}
    shards = shards_of(managed, run_id="run-1", region=REGION, size=3, revision=7)
    tasks = [task for task, _ in shards]
    assert [t.repositories for t in tasks] == [
        ("k8s/a", "k8s/b", "quay/0"),
        ("quay/1", "quay/2", "quay/3"),
        ("quay/4",),
    ]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert {t.revision for t in tasks} == {7}
    records = [record for _, record in shards]
    assert [r.rules for r in records] == [{"k8s": 2, "quay": 1}, {"quay": 3}, {"quay": 1}]
    assert {r.state for r in records} == {ShardState.QUEUED}
    assert shards_of({}, run_id="run-1", region=REGION, size=3, revision=None) == []


# --------------------------------------------------------------------------------------------------
# a shard's plan


def test_a_shards_plan_is_the_regions_plan_for_its_repositories() -> None:
    # GIVEN rules converged in ECR and repositories drifted in several ways
    rules = [desired("quay", QUAY), desired("quay/team", spec(lifecycle=KEEP_20))]
    repositories = [
        repo("quay/a", details=details_of(spec(lifecycle=KEEP_20)), applied=AppliedFingerprints()),
        repo("quay/team/b", details=details_of(QUAY)),
        converged_repo("quay/c", QUAY),
    ]
    whole = plan_region(rules, [], converged(rules, repositories), owned("quay", "quay/team"), deep=True)
    # WHEN only the repositories are planned (no rule or template read)
    shard = plan_repositories(rules, ObservedRegion(region=REGION, repositories={r.name: r for r in repositories}))
    # THEN the repository actions are the Region plan's, and nothing else is planned
    assert shard.actions == tuple(a for a in whole.actions if a.kind.scope == "repository")
    assert shard.actions
    assert {a.target for a in shard.actions} == {"quay/a", "quay/team/b"}


def test_a_shards_plan_plans_no_rule_or_template_and_blocks_what_cannot_be_sent() -> None:
    rules = [desired("quay", QUAY), desired("hub", spec("docker-hub", lifecycle=KEEP_10), arn=None)]
    hub = rules[1].model_copy(update={"credential_arn": None})
    observed = ObservedRegion(region=REGION, repositories={"hub/x": repo("hub/x", details=details_of(spec()))})
    found = plan_repositories([rules[0], hub], observed)
    assert found.actions == ()
    assert [b.prefix for b in found.blocked] == ["hub"]


# --------------------------------------------------------------------------------------------------
# a fast run's changes left to shards


def _action(kind: ActionKind, target: str, prefix: str = "quay") -> PlannedAction:
    return PlannedAction(kind=kind, region=REGION, target=target, rule_prefix=prefix, reason="r")


def test_the_repository_work_is_the_repositories_a_plan_changes_in_ecr() -> None:
    plan = Plan(
        actions=(
            _action(ActionKind.UPDATE_TEMPLATE, "quay"),
            _action(ActionKind.PUT_LIFECYCLE_POLICY, "quay/a"),
            _action(ActionKind.TAG_REPOSITORY, "quay/a"),
            _action(ActionKind.PUT_LIFECYCLE_POLICY, "k8s/b", "k8s"),
            _action(ActionKind.RECORD_APPLIED, "quay/c"),  # no ECR call: the run records it itself
        )
    )
    assert repository_work(plan) == {"k8s/b": "k8s", "quay/a": "quay"}
    rest = without_repositories(plan, {"quay/a", "k8s/b"})
    assert [(a.kind, a.target) for a in rest.actions] == [
        (ActionKind.UPDATE_TEMPLATE, "quay"),
        (ActionKind.RECORD_APPLIED, "quay/c"),
    ]
    assert without_repositories(plan, ()) is plan


def test_a_rule_whose_changes_went_to_shards_is_applying_until_its_run_finishes() -> None:
    # GIVEN a run that left quay's 2 repositories to its shards (k8s: nothing to do)
    found = rule_findings(
        ["quay", "k8s"],
        region=REGION,
        plan=Plan(),
        left=Plan(),
        failures={},
        repositories=["quay/a", "quay/b", "k8s/c"],
        applying={"quay/a": "quay", "quay/b": "quay"},
        applying_run="run-7",
    )
    quay = rule_status(RuleStatus(), found["quay"], now=NOW, run_id="run-7", revision=3)
    k8s = rule_status(RuleStatus(), found["k8s"], now=NOW, run_id="run-7", revision=3)
    synced = quay.condition(ConditionType.SYNCED)
    assert synced is not None
    assert (synced.status, synced.reason) == (False, APPLYING)
    assert "2 cached repositories" in synced.message and "run-7" in synced.message
    other = k8s.condition(ConditionType.SYNCED)
    assert other is not None and (other.status, other.reason) == (True, "Converged")
    # WHEN the run finishes: quay's shards converged it; a failed count says otherwise; another run's is not ours
    done = folded_status(quay, 0, run_id="run-7", now=NOW)
    assert done is not None
    after = done.condition(ConditionType.SYNCED)
    assert after is not None and (after.status, after.reason) == (True, "Converged")
    failed = folded_status(quay, 1, run_id="run-7", now=NOW)
    assert failed is not None
    refused = failed.condition(ConditionType.SYNCED)
    assert refused is not None and refused.reason == REPOSITORIES_FAILED
    assert folded_status(quay, 0, run_id="run-8", now=NOW) is None
    assert folded_status(k8s, 0, run_id="run-7", now=NOW) is None


def test_an_applying_rule_is_not_synced_when_shards_never_said_what_they_did() -> None:
    # GIVEN a Region whose second shard was never recorded, and another whose shard failed before it was
    records = [_record(0, ShardState.DONE, report=ShardReport()), _record(0, ShardState.FAILED, region="eu-west-1")]
    records[1] = records[1].model_copy(update={"rules": {}})
    assert unaccounted(records, {REGION: 2, "eu-west-1": 1}) == {REGION, "eu-west-1"}
    assert unaccounted(records[:1], {REGION: 1}) == set()
    # THEN a rule the run left Applying is not said Synced: how many repositories is not known
    found = rule_findings(
        ["quay"],
        region=REGION,
        plan=Plan(),
        left=Plan(),
        failures={},
        repositories=["quay/a"],
        applying={"quay/a": "quay"},
        applying_run="run-7",
    )
    applying = rule_status(RuleStatus(), found["quay"], now=NOW, run_id="run-7", revision=3)
    folded = folded_status(applying, 0, run_id="run-7", now=NOW, accounted=False)
    assert folded is not None
    synced = folded.condition(ConditionType.SYNCED)
    assert synced is not None and (synced.status, synced.reason) == (False, REPOSITORIES_FAILED)
    assert synced.message.startswith("Cached repositories of this rule")


def test_fast_shards_say_so_in_their_tasks() -> None:
    shards = shards_of({"quay/a": "quay"}, run_id="run-1", region=REGION, size=2, revision=1, deep=False)
    assert [task.deep for task, _ in shards] == [False]


# --------------------------------------------------------------------------------------------------
# reports and the finished run


def _failure(kind: ActionKind, target: str, prefix: str = "quay") -> tuple[PlannedAction, ActionResult]:
    action = PlannedAction(kind=kind, region=REGION, target=target, rule_prefix=prefix, reason="r")
    return action, ActionResult.failure("ThrottlingException", "slow down", retryable=True)


def test_a_shard_report_counts_each_failing_repository_once() -> None:
    task = ShardTask(run_id="run-1", region=REGION, index=0, repositories=("quay/a", "quay/b", "quay/c"))
    failures = {
        "quay": [_failure(ActionKind.PUT_LIFECYCLE_POLICY, "quay/a"), _failure(ActionKind.TAG_REPOSITORY, "quay/a")]
    }
    left = Plan(
        actions=(
            PlannedAction(
                kind=ActionKind.TAG_REPOSITORY, region=REGION, target="quay/b", rule_prefix="quay", reason="drift"
            ),
        )
    )
    report = shard_report(task, found=2, applied={ActionKind.PUT_LIFECYCLE_POLICY: 2}, failures=failures, left=left)
    assert report.model_dump() == {
        "repositories": 3,
        "found": 2,
        "applied": {"put_lifecycle_policy": 2},
        "failed_actions": 2,
        "left_after_verify": 1,
        "failures": {"quay": 2},
        "errors": report.errors,
    }
    assert len(report.errors) == 3
    assert report.errors[0].startswith("put_lifecycle_policy quay/a: ThrottlingException")


def test_failed_repositories_by_rule_come_from_done_reports_and_failed_shards() -> None:
    records = [
        _record(0, ShardState.DONE, report=ShardReport(failures={"quay": 1})),
        _record(1, ShardState.FAILED),
        _record(2, ShardState.QUEUED),
        _record(0, ShardState.DONE, region="eu-west-1", report=ShardReport()),
    ]
    assert failed_by_rule(records) == {REGION: {"quay": 4}, "eu-west-1": {}}


def test_a_rule_with_failed_repositories_is_not_synced_and_says_how_many() -> None:
    before = RuleStatus().with_condition(ConditionType.SYNCED, status=True, reason="Converged", message="", now=NOW)
    after = repositories_failed_status(before, 12, run_id="run-9", now=NOW)
    synced = after.condition(ConditionType.SYNCED)
    assert synced is not None
    assert (synced.status, synced.reason) == (False, REPOSITORIES_FAILED)
    assert "12 cached repositories" in synced.message and "run-9" in synced.message
    assert after.conditions[1:] == before.conditions[1:]


def test_the_finished_run_adds_its_shards_up() -> None:
    run = _run(summary={"create_rule": 1, "left_after_verify": 0}, shards=ShardCounts(total=2, done=2, retrying=1))
    records = [
        _record(0, ShardState.DONE, report=ShardReport(applied={"put_lifecycle_policy": 3}, left_after_verify=1)),
        _record(1, ShardState.DONE, report=ShardReport(applied={"put_lifecycle_policy": 2, "tag_repository": 1})),
    ]
    done = finished_run(run, records, regions={REGION: 2}, now=NOW)
    assert done.summary == {"create_rule": 1, "left_after_verify": 1, "put_lifecycle_policy": 5, "tag_repository": 1}
    assert (done.status, done.finished_at, done.errors) == (RunStatus.SUCCEEDED, NOW, ())
    assert done.shards == ShardCounts(total=2, done=2)


@pytest.mark.parametrize(
    ("applied", "expected"), [({"put_lifecycle_policy": 1}, RunStatus.PARTIAL), ({}, RunStatus.FAILED)]
)
def test_a_failed_or_lost_shard_makes_the_run_partial_or_failed(applied: dict[str, int], expected: RunStatus) -> None:
    run = _run(shards=ShardCounts(total=3, done=1, failed=1))
    records = [
        _record(0, ShardState.DONE, report=ShardReport(applied=applied)),
        _record(1, ShardState.FAILED, error="boom"),
    ]
    done = finished_run(run, records, regions={REGION: 3}, now=NOW)
    assert done.status is expected
    assert done.errors == (
        f"{REGION}: shard 1 (3 repositories) failed: boom",
        f"{REGION}: 1 shard(s) never recorded (the coordinating run stopped): counted failed",
    )


def test_a_shard_report_keeps_a_few_errors_and_the_largest_rules() -> None:
    report = ShardReport(errors=tuple(f"e{i}" for i in range(20)), failures={f"p{i:02d}": i + 1 for i in range(60)})
    assert len(report.errors) == MAX_SHARD_ERRORS
    assert len(report.failures) == 51
    assert report.failures[""] == sum(range(1, 11))
    assert report.failures["p59"] == 60
