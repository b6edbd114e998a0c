"""The warmer's pull-time update exclusion through PlanService and ReconcileService, on in-memory fakes.

The functional tests (``tests/functional/reconcile/test_warmer_exclusion.py``) run it on the embedded
AWS; these pin the services' decisions: when exclusions are read, what ownership is recorded (never an
exclusion ECR already had), and how a refused registration shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.engine.plan import ActionKind, ActionResult
from ecrcache.errors import TerminalError
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import ConditionType, ReconcileRun, RunStatus, RunTrigger
from ecrcache.services.plan import PlanService
from ecrcache.services.reconcile import ReconcileService, Scope
from tests.fakes.ecr_registry import REGION, MemoryEcrRegistry
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
WARMER = "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-AB12"
NEW_WARMER = "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-CD34"
SCANNER = "arn:aws:iam::123456789012:role/security-scanner"
OTHER = "eu-west-1"
QUAY: dict[str, Any] = {"upstream_kind": "quay"}
K = ActionKind


@dataclass
class World:
    desired: MemoryStateStore
    status: MemoryStatusStore
    registries: dict[str, MemoryEcrRegistry]

    def registry(self, region: str) -> MemoryEcrRegistry:
        return self.registries.setdefault(region, MemoryEcrRegistry(region))

    def service(self, warmer: str | None = WARMER) -> ReconcileService:
        return ReconcileService(
            desired=self.desired,
            status=self.status,
            registry=self.registry,
            clock=lambda: NOW,
            stack_region=REGION,
            warmer_role_arn=warmer,
        )

    def write(self, name: str, spec: dict[str, Any] | None) -> None:
        current = self.desired.get(ResourceKind.RULE, name)
        action = WriteAction.DELETE if spec is None else WriteAction.UPDATE if current else WriteAction.CREATE
        write = Write(
            kind=ResourceKind.RULE,
            name=name,
            action=action,
            expected_version=current.version if current else None,
            spec=spec,
        )
        self.desired.commit([write], revision=self.desired.revision, actor=ALICE, now=NOW)

    def run(self, warmer: str | None = WARMER) -> ReconcileRun:
        return self.service(warmer).reconcile(Scope(), RunTrigger.SCHEDULE, run_id=f"run-{len(self.status.runs) + 1}")

    def registered(self, region: str = REGION) -> frozenset[str]:
        return self.registry(region).state.exclusions or frozenset()

    def register_by_hand(self, principal: str, region: str = REGION) -> None:
        ecr = self.registry(region)
        ecr.state = ecr.state.model_copy(update={"exclusions": self.registered(region) | {principal}})


@pytest.fixture
def world() -> World:
    return World(MemoryStateStore(), MemoryStatusStore(), {})


def test_the_warmer_is_registered_and_owned_in_every_region_a_rule_names(world: World) -> None:
    world.write("quay", {**QUAY, "regions": [REGION, OTHER]})
    run = world.run()
    assert run.status is RunStatus.SUCCEEDED
    for region in (REGION, OTHER):
        assert world.registered(region) == {WARMER}
        assert world.status.ownership(region).exclusions == {WARMER}
    assert run.summary["register_exclusion"] == 2
    # AND a second run has nothing to do
    world.registries[REGION].applied.clear()
    assert world.run().summary == {"left_after_verify": 0}
    assert world.registries[REGION].applied == []


def test_exclusions_are_not_read_without_a_warmer_role_or_an_owned_exclusion(world: World) -> None:
    world.write("quay", QUAY)
    world.run(warmer=None)
    assert world.registry(REGION).calls["pull_time_exclusions"] == 0
    assert world.registered() == frozenset()


def test_an_exclusion_ecr_already_had_is_not_recorded_as_ecrcaches(world: World) -> None:
    # GIVEN ECR answers the registration "already exists" (registered by someone between read and write)
    world.write("quay", QUAY)
    world.registry(REGION).failures[K.REGISTER_EXCLUSION, WARMER] = ActionResult.success(existed=True)
    # WHEN reconciled
    run = world.run()
    # THEN the goal holds (the run succeeded) but the claim was dropped: ecrcache never deregisters it
    assert run.status is RunStatus.SUCCEEDED
    assert world.status.ownership(REGION).exclusions == frozenset()
    assert ("record_owned", REGION, "exclusion", WARMER) in world.status.writes  # claimed before the call
    assert ("forget_owned", REGION, "exclusion", WARMER) in world.status.writes


def test_a_refused_registration_is_terminal_on_every_rule_and_not_owned(world: World) -> None:
    # GIVEN ECR's exclusion quota is reached
    world.write("quay", QUAY)
    world.write("hub", QUAY)
    limit = ActionResult.failure("LimitExceededException", "100 exclusions per account", retryable=False)
    world.registry(REGION).failures[K.REGISTER_EXCLUSION, WARMER] = limit
    # WHEN reconciled
    run = world.run()
    # THEN nothing crashed: the run is partial, both rules are Terminal with ECR's code, nothing is owned
    assert run.status is RunStatus.PARTIAL
    assert f"{REGION}: register_exclusion {WARMER}: LimitExceededException: 100 exclusions per account" in run.errors
    for prefix in ("quay", "hub"):
        status = world.status.statuses[REGION, prefix]
        terminal = status.condition(ConditionType.TERMINAL)
        assert terminal is not None
        assert (terminal.status, terminal.reason) == (True, "LimitExceededException")
        assert not status.synced
    assert world.status.ownership(REGION).exclusions == frozenset()


def test_a_throttled_registration_keeps_its_claim_and_is_retried_next_run(world: World) -> None:
    world.write("quay", QUAY)
    ecr = world.registry(REGION)
    ecr.failures[K.REGISTER_EXCLUSION, WARMER] = ActionResult.failure("ThrottlingException", "slow", retryable=True)
    world.run()
    assert world.status.ownership(REGION).exclusions == {WARMER}  # the call may have reached ECR
    del ecr.failures[K.REGISTER_EXCLUSION, WARMER]
    world.run()
    assert world.registered() == {WARMER}


def test_a_changed_warmer_role_replaces_only_ecrcaches_exclusion(world: World) -> None:
    world.write("quay", QUAY)
    world.register_by_hand(SCANNER)
    world.run()
    world.run(warmer=NEW_WARMER)
    assert world.registered() == {SCANNER, NEW_WARMER}
    assert world.status.ownership(REGION).exclusions == {NEW_WARMER}


def test_a_region_without_rules_stays_in_the_runs_until_its_exclusion_is_deregistered(world: World) -> None:
    # GIVEN the warmer registered in eu-west-1, and the only rule there moved back to the stack's Region
    world.write("quay", {**QUAY, "regions": [OTHER]})
    world.run()
    world.write("quay", {**QUAY, "regions": [REGION]})
    ecr = world.registry(OTHER)
    ecr.failures[K.DEREGISTER_EXCLUSION, WARMER] = ActionResult.failure("ThrottlingException", "slow", retryable=True)
    # WHEN the deregistration fails once
    world.run()
    # THEN the Region keeps a status (so the next run covers it) and the exclusion is still owned
    assert (OTHER, "quay") in world.status.statuses
    assert world.status.ownership(OTHER).exclusions == {WARMER}
    # AND once it succeeds, the exclusion is gone, not owned, and the Region's status is dropped
    del ecr.failures[K.DEREGISTER_EXCLUSION, WARMER]
    world.run()
    assert world.registered(OTHER) == frozenset()
    assert world.status.ownership(OTHER).exclusions == frozenset()
    assert (OTHER, "quay") not in world.status.statuses


def test_the_plan_service_plans_what_the_reconciler_applies(world: World) -> None:
    world.write("quay", QUAY)
    planner = PlanService(desired=world.desired, status=world.status, registry=world.registry, stack_region=REGION)
    assert [a.kind for a in planner.plan().actions if a.kind.scope == "exclusion"] == []
    planner.warmer_role_arn = WARMER
    assert [(a.kind, a.target) for a in planner.plan().actions if a.kind.scope == "exclusion"] == [
        (K.REGISTER_EXCLUSION, WARMER)
    ]


def test_a_failed_exclusion_read_fails_the_region_visibly(world: World) -> None:
    world.write("quay", QUAY)
    world.run(warmer=None)  # converged without the feature
    ecr = world.registry(REGION)

    def denied() -> frozenset[str]:
        raise TerminalError("ECR ListPullTimeUpdateExclusions failed with AccessDeniedException")

    ecr.pull_time_exclusions = denied  # type: ignore[method-assign]
    run = world.run()
    assert run.status is RunStatus.FAILED
    status = world.status.statuses[REGION, "quay"]
    assert not status.synced
    assert any("ListPullTimeUpdateExclusions" in c.message for c in status.conditions)
