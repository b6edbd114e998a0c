"""ReconcileService on in-memory fakes: what a run writes, records and raises, Region by Region.

The functional tests (``tests/functional/reconcile``) run it on the embedded AWS through the
deployed handler; these pin the service's own decisions, one situation each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.engine.status import UNVERIFIED
from ecrcache.errors import EcrcacheError, RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints, ObservedRegion, ObservedRepository, RepositoryDetails
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import ConditionType, ReconcileRun, RuleStatus, RunStatus, RunTrigger
from ecrcache.services.reconcile import LEASE_SECONDS, ReconcileService, Scope
from tests.fakes.ecr_registry import REGION, MemoryEcrRegistry
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
HUB_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"
QUAY: dict[str, Any] = {"upstream_kind": "quay"}
KEEP_10: dict[str, Any] = {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 10}}}
FAST = Scope()
EVENT_TRIGGERS = [RunTrigger.STREAM, RunTrigger.CLOUDTRAIL, RunTrigger.CACHE_EVENT]
K = ActionKind


@dataclass
class World:
    desired: MemoryStateStore
    status: MemoryStatusStore
    registries: dict[str, MemoryEcrRegistry]
    service: ReconcileService

    @property
    def ecr(self) -> MemoryEcrRegistry:
        """ECR in the stack's Region."""
        return self.registries[REGION]

    def write(
        self, kind: ResourceKind, name: str, spec: dict[str, Any] | None, *, secret_arn: str | None = None
    ) -> None:
        """Create, update or (``spec`` None) delete one desired item."""
        current = self.desired.get(kind, name)
        action = WriteAction.DELETE if spec is None else WriteAction.UPDATE if current else WriteAction.CREATE
        write = Write(
            kind=kind,
            name=name,
            action=action,
            expected_version=current.version if current else None,
            spec=spec,
            secret_arn=secret_arn,
        )
        self.desired.commit([write], revision=self.desired.revision, actor=ALICE, now=NOW)

    def run(self, trigger: RunTrigger = RunTrigger.SCHEDULE, scope: Scope = FAST) -> ReconcileRun:
        return self.service.reconcile(scope, trigger, run_id=f"run-{len(self.status.runs) + 1}")

    def conditions(self, prefix: str) -> dict[str, tuple[bool, str]]:
        status = self.status.statuses[REGION, prefix]
        return {c.type.value: (c.status, c.reason) for c in status.conditions}


@pytest.fixture
def world() -> World:
    desired, status = MemoryStateStore(), MemoryStatusStore()
    registries = {REGION: MemoryEcrRegistry(REGION)}

    def registry(region: str) -> MemoryEcrRegistry:
        return registries.setdefault(region, MemoryEcrRegistry(region))

    service = ReconcileService(
        desired=desired, status=status, registry=registry, clock=lambda: NOW, stack_region=REGION
    )
    return World(desired, status, registries, service)


def repository(name: str) -> ObservedRepository:
    return ObservedRepository(
        name=name, arn=f"arn:aws:ecr:{REGION}:123456789012:repository/{name}", details=RepositoryDetails()
    )


# --------------------------------------------------------------------------------------------------
# Converging


def test_a_first_run_creates_owns_and_records_synced(world: World) -> None:
    # GIVEN a desired rule and nothing in ECR
    world.write(ResourceKind.RULE, "quay", QUAY)
    # WHEN reconciled
    run = world.run()
    # THEN ECR has the rule and template, both owned, the rule Synced, and the run says so
    assert set(world.ecr.state.rules) == set(world.ecr.state.templates) == {"quay"}
    assert world.status.ownership(REGION).rules == world.status.ownership(REGION).templates == {"quay"}
    assert world.conditions("quay")["Synced"] == (True, "Converged")
    assert run.status is RunStatus.SUCCEEDED
    assert run.summary == {"create_rule": 1, "create_template": 1, "left_after_verify": 0}
    assert world.status.runs[run.run_id] == run and run.finished_at == NOW
    assert world.status.leases == {}


def test_a_root_rule_converges_to_synced_its_note_is_not_a_block(world: World) -> None:
    # GIVEN a desired ROOT rule (whose plan carries a note: existing repositories are not patched)
    world.write(ResourceKind.RULE, "ROOT", QUAY)
    # WHEN reconciled
    run = world.run()
    # THEN its rule and template exist and it is Synced, not Terminal/Blocked
    assert set(world.ecr.state.rules) == {"ROOT"}
    assert world.conditions("ROOT")["Synced"] == (True, "Converged")
    assert world.conditions("ROOT")["Terminal"][0] is False
    assert run.status is RunStatus.SUCCEEDED


def test_a_converged_run_writes_nothing(world: World) -> None:
    # GIVEN a converged Region
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.run()
    world.ecr.applied.clear()
    world.status.writes.clear()
    # WHEN reconciled again
    run = world.run()
    # THEN no action reached ECR; only the run record (running: this run was given its id, as a requested
    # run is; then finished, with the Region's stamp) was written: no lease, no status write (nothing changed)
    assert world.ecr.applied == []
    assert world.status.writes == [("put_run", run.run_id), ("put_run", run.run_id)]
    assert world.status.stamps[REGION].run_id == run.run_id
    assert world.status.rule_status(REGION, "quay").last_run_id == run.run_id  # type: ignore[union-attr]
    assert run.summary == {"left_after_verify": 0}
    assert run.status is RunStatus.SUCCEEDED


def test_the_drift_count_grows_with_each_correction(world: World) -> None:
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.run()
    # GIVEN someone deletes the template behind the controller's back
    world.ecr.state = world.ecr.state.model_copy(update={"templates": {}})
    # WHEN reconciled THEN it is put back and counted
    assert world.run().summary == {"create_template": 1, "left_after_verify": 0}
    assert world.status.statuses[REGION, "quay"].drift_corrected == 3


# --------------------------------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize(
    ("retryable", "condition", "other"),
    [(False, "Terminal", "Recoverable"), (True, "Recoverable", "Terminal")],
)
def test_a_failed_action_is_recorded_on_its_rule(world: World, retryable: bool, condition: str, other: str) -> None:
    # GIVEN ECR refuses to create the rule
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.ecr.failures[K.CREATE_RULE, "quay"] = ActionResult.failure("Refused", "no way", retryable=retryable)
    # WHEN reconciled
    run = world.run(RunTrigger.STREAM)  # an action failure is not the trigger's to retry: no raise
    # THEN the other action still ran, the rule is not Synced, the failure's kind holds
    assert set(world.ecr.state.templates) == {"quay"}
    assert world.conditions("quay") == {
        "Synced": (False, "ApplyFailed"),
        condition: (True, "Refused"),
        other: (False, "None"),
    }
    # AND the run is partial, with the failure and what verify still plans
    assert run.status is RunStatus.PARTIAL
    assert run.summary == {"create_template": 1, "failed_actions": 1, "left_after_verify": 1}
    assert run.errors == (f"{REGION}:quay: create_rule quay: Refused: no way",)
    # AND ownership was claimed before the call: dropped when ECR refused it, kept when the call may
    # have reached ECR (a retryable failure), so the rule is never mistaken for someone else's
    assert world.status.ownership(REGION).rules == ({"quay"} if retryable else set())


def test_a_run_cut_off_right_after_creating_a_rule_still_owns_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a run that stops (the function times out) right after ECR created the rule
    world.write(ResourceKind.RULE, "quay", QUAY)
    create = world.ecr.apply

    def created_then_cut_off(action: Any) -> ActionResult:
        result = create(action)
        if action.kind is K.CREATE_RULE:
            raise TimeoutError("the function timed out")
        return result

    monkeypatch.setattr(world.ecr, "apply", created_then_cut_off)
    with pytest.raises(TimeoutError):
        world.run()
    monkeypatch.undo()
    # WHEN the next run comes
    run = world.run()
    # THEN the rule it made is its own (claimed before the call), not someone else's to be Blocked
    assert "quay" in world.status.ownership(REGION).rules
    assert run.summary == {"create_template": 1, "left_after_verify": 0}
    assert world.conditions("quay")["Synced"] == (True, "Converged")


@pytest.mark.parametrize("trigger", [RunTrigger.SCHEDULE, RunTrigger.API])
def test_a_held_lease_makes_the_run_busy(world: World, trigger: RunTrigger) -> None:
    # GIVEN another reconcile holds the Region's lease
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.status.leases[REGION] = ("other-run", NOW + timedelta(seconds=LEASE_SECONDS))
    # WHEN a scheduled (or API) run comes
    run = world.run(trigger)
    # THEN it read ECR (to find it had work there) but applied nothing, and says why; the schedule comes back
    assert world.ecr.calls == {"observe": 1}
    assert world.ecr.applied == []
    assert run.status is RunStatus.FAILED
    assert run.errors == (f"another reconcile holds the lease for {REGION}",)
    assert run.summary == {}
    assert world.status.leases[REGION][0] == "other-run"


@pytest.mark.parametrize("trigger", EVENT_TRIGGERS)
def test_a_held_lease_makes_an_event_retry(world: World, trigger: RunTrigger) -> None:
    world.write(ResourceKind.RULE, "quay", QUAY)  # work to do: a quiet Region needs no lease
    world.status.leases[REGION] = ("other-run", NOW + timedelta(seconds=LEASE_SECONDS))
    with pytest.raises(RetryableError, match="another reconcile is running in us-east-1"):
        world.run(trigger)
    # AND the run record is stored all the same
    [run] = world.status.runs.values()
    assert run.status is RunStatus.FAILED


def test_an_expired_lease_is_taken_over(world: World) -> None:
    world.status.leases[REGION] = ("crashed-run", NOW - timedelta(seconds=1))
    assert world.run().status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("error", "condition"),
    [
        (RetryableError("ECR is throttling", reason="ThrottlingException"), "Recoverable"),
        (TerminalError("ECR denied the read", reason="AccessDeniedException"), "Terminal"),
    ],
)
def test_a_region_failure_is_recorded_on_every_rule(world: World, error: EcrcacheError, condition: str) -> None:
    # GIVEN two rules, and ECR cannot be read
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.write(ResourceKind.RULE, "k8s", {"upstream_kind": "k8s"})
    world.ecr.observe_error = error
    # WHEN reconciled
    run = world.run()
    # THEN both rules say so, the run failed, and the lease is released
    for prefix in ("k8s", "quay"):
        assert world.conditions(prefix)["Synced"] == (False, "RegionFailed")
        assert world.conditions(prefix)[condition] == (True, error.reason)
    assert run.status is RunStatus.FAILED
    assert run.summary == {"region_failures": 1}
    assert run.errors == (f"{REGION}: {error.message}",)
    assert world.status.leases == {}


@pytest.mark.parametrize("trigger", EVENT_TRIGGERS)
def test_a_retryable_region_failure_makes_an_event_retry(world: World, trigger: RunTrigger) -> None:
    world.ecr.observe_error = RetryableError("ECR is throttling")
    with pytest.raises(RetryableError, match="the reconcile failed for now"):
        world.run(trigger)


@pytest.mark.parametrize("trigger", EVENT_TRIGGERS)
def test_a_terminal_region_failure_is_not_retried(world: World, trigger: RunTrigger) -> None:
    world.ecr.observe_error = TerminalError("ECR denied the read")
    assert world.run(trigger).status is RunStatus.FAILED


def test_a_region_failure_that_cannot_be_recorded_still_ends_the_run(world: World) -> None:
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.ecr.observe_error = TerminalError("ECR denied the read")
    world.status.fail["rule_status"] = RetryableError("DynamoDB is throttling")
    assert world.run().summary == {"region_failures": 1}
    assert (REGION, "quay") not in world.status.statuses


# --------------------------------------------------------------------------------------------------
# Verify


def test_what_verify_still_finds_is_not_trusted_next_time(world: World) -> None:
    # GIVEN a cached repository, and ECR that answers ok to its lifecycle policy but keeps none
    world.ecr.state = ObservedRegion(region=REGION, repositories={"quay/a": repository("quay/a")})
    world.write(ResourceKind.RULE, "quay", KEEP_10)
    world.ecr.ignored.add((K.PUT_LIFECYCLE_POLICY, "quay/a"))
    # WHEN reconciled
    run = world.run()
    # THEN verify (a deep read of the repository it touched) found the policy missing
    assert run.summary == {"create_rule": 1, "create_template": 1, "put_lifecycle_policy": 1, "left_after_verify": 1}
    assert world.conditions("quay")["Synced"] == (False, "NotConverged")
    # AND the fingerprint recorded for it is marked unverified: the next fast resync writes it again
    assert world.status.fingerprints[REGION]["quay/a"] == AppliedFingerprints(lifecycle=UNVERIFIED)
    world.ecr.ignored.clear()
    assert world.run().summary == {"put_lifecycle_policy": 1, "left_after_verify": 0}


def test_fingerprints_of_repositories_gone_are_forgotten(world: World) -> None:
    world.write(ResourceKind.RULE, "quay", QUAY)
    world.status.fingerprints[REGION] = {"quay/gone": AppliedFingerprints(tags="t")}
    world.run()
    assert world.status.fingerprints[REGION] == {}


# --------------------------------------------------------------------------------------------------
# Validation and blocked rules


def test_a_rule_with_a_credential_is_validated_after_it_was_written(world: World) -> None:
    world.write(ResourceKind.CREDENTIAL, "hub", {"upstream_kind": "docker-hub", "username": "ci"}, secret_arn=HUB_ARN)
    world.write(ResourceKind.RULE, "docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    world.ecr.validations["docker-hub"] = (False, "upstream said 401")
    world.run()
    validation = world.status.statuses[REGION, "docker-hub"].validation
    assert (validation.is_valid, validation.failure, validation.checked_at) == (False, "upstream said 401", NOW)
    # AND a converged fast run does not ask again; the deep one does (and an error means "could not tell")
    world.ecr.validate_error = RetryableError("ECR is throttling")
    world.run()
    assert world.ecr.calls["validate_rule"] == 1
    world.run(scope=Scope(deep=True))
    validation = world.status.statuses[REGION, "docker-hub"].validation
    assert (validation.is_valid, validation.failure) == (None, "ECR is throttling")


def test_a_rule_whose_credential_has_no_secret_is_blocked(world: World) -> None:
    world.write(ResourceKind.RULE, "docker-hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    run = world.run()
    assert world.conditions("docker-hub")["Synced"] == (False, "Blocked")
    assert run.errors == ("docker-hub: credential 'hub' has no secret yet",)
    assert run.status is RunStatus.FAILED


# --------------------------------------------------------------------------------------------------
# Rules no longer desired


def test_the_status_of_a_rule_no_longer_desired_is_forgotten(world: World) -> None:
    # GIVEN a status left for a rule nobody wants any more (and the controller never owned)
    world.status.statuses[REGION, "old"] = RuleStatus()
    # WHEN reconciled THEN it is dropped
    world.run()
    assert (REGION, "old") not in world.status.statuses


def test_a_deleted_rule_keeps_its_status_until_its_ecr_rule_is_deleted(world: World) -> None:
    # GIVEN an owned rule, deleted from the desired state with deletion_policy: delete
    world.write(ResourceKind.RULE, "quay", {**QUAY, "deletion_policy": "delete"})
    world.run()
    world.write(ResourceKind.RULE, "quay", None)
    # WHEN ECR refuses to delete it
    world.ecr.failures[K.DELETE_RULE, "quay"] = ActionResult.failure("Refused", "no way", retryable=True)
    run = world.run()
    # THEN the template went, the rule and its status stay (the next run tries again)
    assert run.summary == {"delete_template": 1, "failed_actions": 1, "left_after_verify": 1}
    assert set(world.ecr.state.rules) == {"quay"} and world.ecr.state.templates == {}
    # AND its status says it is not Synced: the deletion failed, retried (not the Converged it had)
    status = world.status.rule_status(REGION, "quay")
    assert status is not None and not status.synced
    synced = status.condition(ConditionType.SYNCED)
    recoverable = status.condition(ConditionType.RECOVERABLE)
    assert synced is not None and synced.reason == "ApplyFailed" and "delete_rule quay: Refused" in synced.message
    assert recoverable is not None and recoverable.status and recoverable.reason == "Refused"
    # WHEN ECR lets it go THEN the status goes too
    world.ecr.failures.clear()
    assert world.run().summary == {"delete_rule": 1, "left_after_verify": 0}
    assert (REGION, "quay") not in world.status.statuses


def test_a_region_only_in_the_statuses_is_visited(world: World) -> None:
    # GIVEN a rule status in a Region no desired rule names any more
    world.status.statuses["eu-west-1", "quay"] = RuleStatus()
    # WHEN reconciled THEN that Region was read and its stale status dropped
    world.run()
    # (read once without the lease, which found the stale status to drop, then again under it)
    assert world.registries["eu-west-1"].calls["observe"] == 2
    assert world.status.all_status() == []


def test_the_plan_is_read_only(world: World) -> None:
    world.write(ResourceKind.RULE, "quay", QUAY)
    plan = world.service.plan()
    assert [(a.kind, a.target) for a in plan.actions] == [(K.CREATE_RULE, "quay"), (K.CREATE_TEMPLATE, "quay")]
    assert world.ecr.applied == [] and world.status.writes == []
