"""PlanService's event-forwarder part on in-memory fakes: bounded by the plan's time budget, and the Regions it
wants a forwarder in (``GET /v1/plan``)."""

from __future__ import annotations

from typing import Any

import pytest

from ecrcache.engine.deadline import Deadline
from ecrcache.engine.forwarders import Forwarding
from ecrcache.engine.plan import ActionKind
from ecrcache.models.forwarder import ObservedForwarder
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.services.forwarders import ForwarderPlanner
from ecrcache.services.plan import FORWARDER_UNREAD, PlanService, Scope
from tests.fakes.ecr_registry import REGION, MemoryEcrReader
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore
from tests.unit.services.test_plan_service import ALICE, NOW

pytestmark = pytest.mark.unit

OTHERS = ("eu-west-1", "eu-west-2")
SETTINGS = Forwarding(
    rule_name="ecrcache-fwd-1",
    role_arn="arn:aws:iam::123456789012:role/forward",
    home_region=REGION,
    ignored_roles=("arn:aws:iam::123456789012:role/reconciler", "arn:aws:iam::123456789012:role/worker"),
)


class Forwarders:
    """EventBridge of every Region, read only: the forwarding rules it holds, and the Regions read."""

    def __init__(self) -> None:
        self.held: dict[str, ObservedForwarder] = {}
        self.read: list[str] = []

    def __call__(self, region: str) -> Forwarders._Reader:
        return Forwarders._Reader(self, region)

    class _Reader:
        def __init__(self, outer: Forwarders, region: str) -> None:
            self.outer, self.region = outer, region

        def observe_forwarder(self, name: str) -> ObservedForwarder | None:
            self.outer.read.append(self.region)
            return self.outer.held.get(self.region)


class World:
    def __init__(self) -> None:
        self.desired = MemoryStateStore()
        self.status = MemoryStatusStore()
        self.forwarders = Forwarders()
        self.service = PlanService(
            desired=self.desired,
            status=self.status,
            registry=MemoryEcrReader,
            stack_region=REGION,
            forwarders=ForwarderPlanner(SETTINGS, self.forwarders),
        )

    def put(self, name: str, spec: dict[str, Any]) -> None:
        current = self.desired.get(ResourceKind.RULE, name)
        write = Write(
            kind=ResourceKind.RULE,
            name=name,
            action=WriteAction.UPDATE if current else WriteAction.CREATE,
            expected_version=current.version if current else None,
            spec=spec,
        )
        self.desired.commit([write], revision=self.desired.revision, actor=ALICE, now=NOW)


@pytest.fixture
def world() -> World:
    return World()


def test_a_plan_past_its_budget_reads_no_forwarder_and_says_so(world: World) -> None:
    # GIVEN a rule naming two other Regions, and a deep plan whose deadline has passed
    world.put("quay", {"upstream_kind": "quay", "regions": [REGION, *OTHERS]})
    # WHEN planned
    plan = world.service.plan(Scope(deep=True), stop=Deadline(lambda: -1.0))
    # THEN no EventBridge was read, each other Region has a note, and the plan is incomplete
    assert world.forwarders.read == []
    assert [(n.region, n.message) for n in plan.notes if n.prefix == ""] == [(r, FORWARDER_UNREAD) for r in OTHERS]
    assert plan.complete is False


def test_a_plan_within_its_budget_reads_every_forwarder(world: World) -> None:
    world.put("quay", {"upstream_kind": "quay", "regions": [REGION, *OTHERS]})
    plan = world.service.plan(Scope(deep=True), stop=Deadline(lambda: 20.0))
    assert sorted(world.forwarders.read) == list(OTHERS)
    forwarders = [(a.region, a.kind) for a in plan.actions if a.kind is ActionKind.CREATE_FORWARDER]
    assert forwarders == [(r, ActionKind.CREATE_FORWARDER) for r in OTHERS]
    assert plan.complete is True


def test_a_stored_rule_that_no_longer_validates_still_keeps_its_regions_forwarder(world: World) -> None:
    # GIVEN a forwarder in eu-west-1, and the only rule naming it stored by an older version (it no longer validates)
    world.put("quay", {"upstream_kind": "no-such-registry", "regions": [REGION, "eu-west-1"]})
    world.forwarders.held["eu-west-1"] = ObservedForwarder(name=SETTINGS.rule_name)
    # WHEN planned
    inputs, _ = world.service.read_desired(Scope())
    plan = world.service.forwarder_plan(inputs)
    # THEN the rule is a problem, but its Region is still named: the forwarder is not deleted
    assert "quay" in inputs.problems
    assert "eu-west-1" in inputs.named_regions
    assert ActionKind.DELETE_FORWARDER not in {a.kind for a in plan.actions}
