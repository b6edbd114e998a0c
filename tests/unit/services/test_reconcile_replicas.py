"""Credentials' secret replicas through the reconciler and the plan, on in-memory fakes: a rule in a
second Region gets that Region's replica, waits while it syncs, and the replica goes when no rule
wants it and no ECR rule there uses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.errors import RetryableError
from ecrcache.models.observed import ObservedRule
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import ReconcileRun, RunStatus, RunTrigger
from ecrcache.services.plan import PlanService
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.fakes.ecr_registry import MemoryEcrRegistry
from tests.fakes.secret_replicas import HOME, MemorySecretReplicas, secret_arn
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
EU = "eu-west-1"
NAME = "ecr-pullthroughcache/hub"
HUB: dict[str, Any] = {"upstream_kind": "docker-hub", "credential": "hub", "regions": [HOME, EU]}
K = ActionKind


@dataclass
class World:
    desired: MemoryStateStore
    status: MemoryStatusStore
    registries: dict[str, MemoryEcrRegistry]
    replicas: MemorySecretReplicas
    service: ReconcileService
    sleeps: list[float] = field(default_factory=list)

    def write(
        self, kind: ResourceKind, name: str, spec: dict[str, Any] | None, *, secret_arn: str | None = None
    ) -> None:
        current = self.desired.get(kind, name)
        action = WriteAction.DELETE if spec is None else WriteAction.UPDATE if current else WriteAction.CREATE
        write = Write(
            kind=kind,
            name=name,
            action=action,
            expected_version=current.version if current else None,
            spec=spec,
            secret_arn=secret_arn or (current.secret_arn if current else None),
        )
        self.desired.commit([write], revision=self.desired.revision, actor=ALICE, now=NOW)

    def hub(self, **spec: Any) -> None:
        """Credential ``hub`` (its secret in the stack's Region) and rule ``docker-hub`` on it."""
        arn = self.replicas.add("hub")
        self.write(ResourceKind.CREDENTIAL, "hub", {"upstream_kind": "docker-hub", "username": "ci"}, secret_arn=arn)
        self.write(ResourceKind.RULE, "docker-hub", {**HUB, **spec})

    def run(self, trigger: RunTrigger = RunTrigger.SCHEDULE) -> ReconcileRun:
        return self.service.reconcile(Scope(), trigger, run_id=f"run-{len(self.status.runs) + 1}")

    def rule(self, region: str) -> ObservedRule | None:
        return self.registry(region).state.rules.get("docker-hub")

    def registry(self, region: str) -> MemoryEcrRegistry:
        return self.registries.setdefault(region, MemoryEcrRegistry(region))

    def conditions(self, region: str) -> dict[str, tuple[bool, str, str]]:
        status = self.status.statuses[region, "docker-hub"]
        return {c.type.value: (c.status, c.reason, c.message) for c in status.conditions}

    def replica_kinds(self) -> list[tuple[ActionKind, str]]:
        return [(a.kind, a.region) for a in self.replicas.applied]


@pytest.fixture
def world() -> World:
    desired, status, replicas = MemoryStateStore(), MemoryStatusStore(), MemorySecretReplicas()
    registries: dict[str, MemoryEcrRegistry] = {}
    sleeps: list[float] = []
    service = ReconcileService(
        desired=desired,
        status=status,
        registry=lambda region: registries.setdefault(region, MemoryEcrRegistry(region)),
        clock=lambda: NOW,
        stack_region=HOME,
        replicas=replicas,
        sleep=sleeps.append,
    )
    return World(desired, status, registries, replicas, service, sleeps)


# --------------------------------------------------------------------------------------------------
# Adding


def test_a_rule_in_a_second_region_gets_that_regions_replica_and_arn(world: World) -> None:
    # GIVEN a credential's rule in the stack's Region and eu-west-1
    world.hub()
    # WHEN reconciled
    run = world.run()
    # THEN the secret was replicated to eu-west-1 (not to its own Region), and each Region's ECR rule
    # uses its own Region's ARN
    assert world.replica_kinds() == [(K.REPLICATE_SECRET, EU)]
    home, eu = world.rule(HOME), world.rule(EU)
    assert home is not None and eu is not None
    assert home.credential_arn == secret_arn("hub") and eu.credential_arn == secret_arn("hub", EU)
    assert world.conditions(EU)["Synced"][:2] == world.conditions(HOME)["Synced"][:2] == (True, "Converged")
    assert run.status is RunStatus.SUCCEEDED
    assert run.summary["replicate_secret"] == 1
    # AND the next run changes nothing
    world.replicas.applied.clear()
    again = world.run()
    assert world.replica_kinds() == [] and "replicate_secret" not in again.summary


def test_the_run_waits_a_little_for_a_new_replica_and_creates_the_rule_once_it_is_in_sync(world: World) -> None:
    # GIVEN Secrets Manager reports the new replica InProgress for two reads
    world.replicas.syncs_after = 2
    world.hub()
    # WHEN reconciled THEN the run read it again after 1 s and 2 s, and created the rule with it
    world.run()
    assert world.sleeps == [1.0, 2.0]
    rule = world.rule(EU)
    assert rule is not None and rule.credential_arn == secret_arn("hub", EU)


def test_a_rule_whose_replica_is_still_in_progress_is_pending_then_created_by_the_next_run(world: World) -> None:
    # GIVEN a replica that takes longer than the run waits
    world.replicas.syncs_after = 100
    world.hub()
    # WHEN reconciled
    run = world.run()
    # THEN nothing is created in eu-west-1: the rule is Pending (Recoverable, not Terminal), naming the replica
    assert world.rule(EU) is None
    synced, terminal, recoverable = (world.conditions(EU)[c] for c in ("Synced", "Terminal", "Recoverable"))
    assert synced[:2] == (False, "Pending") and terminal[0] is False and recoverable[:2] == (True, "Pending")
    assert f"the replica of secret {NAME} in {EU} ({secret_arn('hub', EU)})" in synced[2]
    assert "InProgress" in synced[2]
    # AND the stack Region's rule is not held back; the run waited 15 s at most
    assert world.conditions(HOME)["Synced"][:2] == (True, "Converged")
    assert sum(world.sleeps) == 15.0
    assert run.status is RunStatus.SUCCEEDED
    # WHEN the replica is in sync by the next run THEN the rule is created with it
    world.replicas.syncs_after = 0
    world.replicas.set_replica("hub", EU, "InSync")
    world.run()
    rule = world.rule(EU)
    assert rule is not None and rule.credential_arn == secret_arn("hub", EU)
    assert world.conditions(EU)["Synced"][:2] == (True, "Converged")


@pytest.mark.parametrize(
    ("result", "pending"),
    [
        (
            ActionResult.failure("ThrottlingException", "ReplicateSecretToRegions failed: slow down", retryable=True),
            True,
        ),
        (
            ActionResult.failure("AccessDeniedException", "ReplicateSecretToRegions failed: denied", retryable=False),
            False,
        ),
    ],
)
def test_a_failed_replicate_is_recorded_and_the_rule_waits_with_its_message(
    world: World, result: ActionResult, pending: bool
) -> None:
    # GIVEN ReplicateSecretToRegions fails in eu-west-1
    world.replicas.failures[K.REPLICATE_SECRET, EU] = result
    world.hub()
    # WHEN reconciled
    run = world.run()
    # THEN the run records the failure, the rule waits (Pending when it passes, Blocked when not) saying why
    assert any("replicate_secret" in e and (result.message or "") in e for e in run.errors)
    assert run.summary["failed_actions"] == 1
    assert world.rule(EU) is None
    synced = world.conditions(EU)["Synced"]
    assert synced[:2] == (False, "Pending" if pending else "Blocked")
    assert (result.message or "") in synced[2]
    assert world.conditions(EU)["Terminal"][0] is not pending
    # AND once the call works, the next run replicates and creates the rule
    del world.replicas.failures[K.REPLICATE_SECRET, EU]
    world.run()
    assert world.rule(EU) is not None


def test_a_failed_replica_blocks_its_rule_with_secrets_managers_message_and_is_retried(world: World) -> None:
    # GIVEN eu-west-1 holds someone else's secret of that name: replication fails there
    world.replicas.taken[EU] = "Secret with this name already exists in this region"
    world.hub()
    world.run()
    # THEN the rule is Blocked (Terminal) with Secrets Manager's StatusMessage
    synced = world.conditions(EU)["Synced"]
    assert synced[:2] == (False, "Blocked")
    assert "Secret with this name already exists in this region" in synced[2]
    assert world.conditions(EU)["Terminal"][:2] == (True, "Blocked")
    # AND the next run retries the replica; once the Region is free, the rule is created
    del world.replicas.taken[EU]
    world.replicas.applied.clear()
    world.run()
    assert world.replica_kinds() == [(K.RETRY_REPLICA, EU)]
    assert world.rule(EU) is not None


def test_a_secret_that_cannot_be_described_holds_back_only_the_other_regions(world: World) -> None:
    world.hub()
    world.replicas.describe_errors.append(
        RetryableError("Secrets Manager DescribeSecret failed with ThrottlingException")
    )
    world.run()
    assert world.replicas.applied == []
    assert world.conditions(EU)["Synced"][:2] == (False, "Pending")
    assert "could not be read" in world.conditions(EU)["Synced"][2]
    assert world.conditions(HOME)["Synced"][:2] == (True, "Converged")


def test_replicas_are_left_to_the_run_that_holds_the_stack_regions_lease(world: World) -> None:
    world.hub()
    world.status.acquire_lease(HOME, "another-run", now=NOW, ttl_seconds=300)
    world.run()
    assert world.replicas.applied == []
    assert "does not exist yet" in world.conditions(EU)["Synced"][2]


def test_a_lease_that_cannot_be_read_leaves_the_replicas_for_the_next_run_and_says_so(world: World) -> None:
    # GIVEN the state table failing the replica phase's lease (the Regions' own leases work)
    world.hub()
    world.status.fail["acquire_lease"] = RetryableError("DynamoDB UpdateItem failed with ThrottlingException")
    # WHEN reconciled THEN the run goes on: nothing is replicated, the error is in the run, the rule waits
    run = world.run()
    assert world.replicas.applied == []
    assert any("secret replicas not reconciled" in e and "Throttling" in e for e in run.errors)
    assert world.conditions(EU)["Synced"][:2] == (False, "Pending")
    assert world.conditions(HOME)["Synced"][:2] == (True, "Converged")
    # AND the next run replicates
    world.run()
    assert world.rule(EU) is not None


def test_a_rule_on_the_stack_regions_arn_in_another_region_is_repointed(world: World) -> None:
    # GIVEN a converged pair of rules, then the eu-west-1 rule pointed at the stack Region's ARN (drift)
    world.hub()
    world.run()
    eu = world.registry(EU)
    drifted = eu.state.rules["docker-hub"].model_copy(update={"credential_arn": secret_arn("hub")})
    eu.state = eu.state.model_copy(update={"rules": {"docker-hub": drifted}})
    # WHEN reconciled THEN it uses its Region's replica again
    world.run()
    rule = world.rule(EU)
    assert rule is not None and rule.credential_arn == secret_arn("hub", EU)


# --------------------------------------------------------------------------------------------------
# Removing


def test_a_deleted_rules_replica_goes_after_its_ecr_rule(world: World) -> None:
    # GIVEN a converged rule in two Regions, deletion_policy delete
    world.hub(deletion_policy="delete")
    world.run()
    world.replicas.applied.clear()
    # WHEN the rule is deleted (the credential stays)
    world.write(ResourceKind.RULE, "docker-hub", None)
    run = world.run()
    # THEN the ECR rules are deleted, and then the replica removed
    assert world.rule(EU) is None and world.rule(HOME) is None
    assert world.replica_kinds() == [(K.REMOVE_REPLICA, EU)]
    assert EU not in world.replicas.secrets[NAME].replicas
    assert run.summary["remove_replica"] == 1


def test_a_region_no_rule_names_any_more_keeps_its_replica_until_the_ecr_rule_there_goes(world: World) -> None:
    # GIVEN a converged rule in two Regions
    world.hub()
    world.run()
    world.replicas.applied.clear()
    # WHEN eu-west-1 is dropped from the rule: ECR keeps the rule there (ecrcache leaves it), on the replica
    world.write(ResourceKind.RULE, "docker-hub", {**HUB, "regions": [HOME]})
    world.run()
    # THEN the replica stays, and the plan says why
    assert world.rule(EU) is not None
    assert world.replica_kinds() == []
    planner = PlanService(
        desired=world.desired, status=world.status, registry=world.registry, stack_region=HOME, secrets=world.replicas
    )
    [kept] = [u for u in planner.plan().unmanaged if u.kind == "secret"]
    assert (kept.region, kept.name) == (EU, NAME) and "docker-hub" in kept.reason
    # AND once that ECR rule is deleted (by hand), the next run removes the replica
    eu = world.registry(EU)
    eu.state = eu.state.model_copy(update={"rules": {}})
    world.run()
    assert world.replica_kinds() == [(K.REMOVE_REPLICA, EU)]


def test_a_failed_removal_is_recorded_and_retried(world: World) -> None:
    world.hub(deletion_policy="delete")
    world.run()
    world.write(ResourceKind.RULE, "docker-hub", None)
    denied = ActionResult.failure("AccessDeniedException", "RemoveRegionsFromReplication failed", retryable=False)
    world.replicas.failures[K.REMOVE_REPLICA, EU] = denied
    run = world.run()
    assert run.status is RunStatus.PARTIAL
    assert any("remove_replica" in e and "AccessDeniedException" in e for e in run.errors)
    del world.replicas.failures[K.REMOVE_REPLICA, EU]
    world.run()
    assert EU not in world.replicas.secrets[NAME].replicas


# --------------------------------------------------------------------------------------------------
# The plan (read only) and no replication at all


def test_the_plan_shows_the_replica_before_the_rule_that_waits_for_it(world: World) -> None:
    world.hub()
    planner = PlanService(
        desired=world.desired, status=world.status, registry=world.registry, stack_region=HOME, secrets=world.replicas
    )
    plan = planner.plan()
    assert [(a.kind, a.region) for a in plan.actions if a.kind.scope == "secret"] == [(K.REPLICATE_SECRET, EU)]
    [blocked] = plan.blocked
    assert (blocked.region, blocked.pending) == (EU, True)
    assert "does not exist yet: replicate_secret is planned" in blocked.reason
    assert world.replicas.applied == []  # the plan changes nothing


def test_the_plan_shows_a_removal_the_rule_deletion_of_the_same_plan_allows(world: World) -> None:
    world.hub(deletion_policy="delete")
    world.run()
    world.write(ResourceKind.RULE, "docker-hub", None)
    planner = PlanService(
        desired=world.desired, status=world.status, registry=world.registry, stack_region=HOME, secrets=world.replicas
    )
    kinds = [(a.kind, a.region) for a in planner.plan().actions]
    assert (K.DELETE_RULE, EU) in kinds and (K.REMOVE_REPLICA, EU) in kinds


def test_without_replication_a_credentialed_rule_outside_the_stack_region_is_blocked() -> None:
    world_ = World(MemoryStateStore(), MemoryStatusStore(), {}, MemorySecretReplicas(), None)  # type: ignore[arg-type]
    world_.service = ReconcileService(
        desired=world_.desired, status=world_.status, registry=world_.registry, clock=lambda: NOW, stack_region=HOME
    )
    world_.hub()
    world_.run()
    assert world_.rule(EU) is None and world_.rule(HOME) is not None
    assert world_.conditions(EU)["Terminal"][:2] == (True, "Blocked")
    assert "does not read Secrets Manager replication" in world_.conditions(EU)["Synced"][2]
