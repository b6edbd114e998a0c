"""PlanService on in-memory fakes: the read-only plan over ECR readers (``GET /v1/plan``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.engine.deadline import Deadline
from ecrcache.engine.plan import ActionKind, Plan
from ecrcache.models.observed import ObservedRepository, Ownership, RepositoryDetails
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import RuleStatus
from ecrcache.services.plan import PlanService, Scope
from tests.fakes.ecr_registry import REGION, MemoryEcrReader
from tests.fakes.simulate import apply_to_observed
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
K = ActionKind


class World:
    def __init__(self) -> None:
        self.desired = MemoryStateStore()
        self.status = MemoryStatusStore()
        self.readers: dict[str, MemoryEcrReader] = {}
        self.service = PlanService(desired=self.desired, status=self.status, registry=self.reader, stack_region=REGION)

    def reader(self, region: str) -> MemoryEcrReader:
        return self.readers.setdefault(region, MemoryEcrReader(region))

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

    def make_it_so(self) -> None:
        """ECR as the plan would leave it (what a reconcile would do, without the service)."""
        reader = self.reader(REGION)
        reader.state, _ = apply_to_observed(reader.state, Ownership(), self.service.plan())


@pytest.fixture
def world() -> World:
    return World()


def kinds(world: World) -> list[tuple[str, ActionKind, str]]:
    return [(a.region, a.kind, a.target) for a in world.service.plan().actions]


def test_the_plan_reads_and_writes_nothing(world: World) -> None:
    # GIVEN a desired rule, and ECR behind a reader (it has no way to write)
    world.write("quay", {"upstream_kind": "quay"})
    assert not hasattr(world.reader(REGION), "apply")
    # WHEN planned
    found = kinds(world)
    # THEN it says what a reconcile would do, and nothing was written anywhere
    assert found == [(REGION, K.CREATE_RULE, "quay"), (REGION, K.CREATE_TEMPLATE, "quay")]
    assert world.status.writes == []


@pytest.mark.parametrize(
    ("scope", "regions"),
    [
        (Scope(), ["eu-west-1", "eu-west-2", REGION]),
        (Scope(regions=frozenset({"eu-west-1"})), ["eu-west-1"]),
        (Scope(regions=frozenset({"ap-south-1"})), []),
    ],
)
def test_the_regions_planned(world: World, scope: Scope, regions: list[str]) -> None:
    # GIVEN a rule in the stack's Region, one in eu-west-1, and a status left in eu-west-2
    world.write("quay", {"upstream_kind": "quay"})
    world.write("k8s", {"upstream_kind": "k8s", "regions": ["eu-west-1"]})
    world.status.statuses["eu-west-2", "old"] = RuleStatus()
    # WHEN planned THEN every Region in scope was read
    world.service.plan(scope)
    assert sorted(world.readers) == regions


def test_a_stored_rule_that_no_longer_validates_is_a_problem(world: World) -> None:
    world.write("quay", {"upstream_kind": "no-such-registry"})
    inputs, _ = world.service.read_desired(Scope())
    assert inputs.problems == {"quay": "stored rule no longer validates: 1 error(s)"}
    assert inputs.desired == {}


@pytest.mark.parametrize(
    ("policy", "owned", "expected"),
    [
        ("delete", True, [(REGION, K.DELETE_RULE, "quay"), (REGION, K.DELETE_TEMPLATE, "quay")]),
        ("retain", True, []),
        ("delete", False, []),
    ],
)
def test_a_deleted_rule_is_retired_with_its_last_spec(
    world: World, policy: str, owned: bool, expected: list[tuple[str, ActionKind, str]]
) -> None:
    # GIVEN a rule deleted from the desired state, that ECR still has
    world.write("quay", {"upstream_kind": "quay", "deletion_policy": policy})
    world.make_it_so()
    if owned:
        world.status.record_owned(REGION, "rule", "quay")
        world.status.record_owned(REGION, "template", "quay")
    world.write("quay", None)
    # WHEN planned THEN only an owned rule with deletion_policy: delete is deleted
    assert kinds(world) == expected


@pytest.mark.parametrize("history", ["none", "deleted while invalid"])
def test_an_owned_rule_without_a_usable_last_spec_is_not_retired(world: World, history: str) -> None:
    # GIVEN an owned rule whose history has no spec to plan its deletion from
    if history == "deleted while invalid":
        world.write("quay", {"upstream_kind": "no-such-registry"})
        world.write("quay", None)
    world.status.record_owned(REGION, "rule", "quay")
    # THEN it is not retired (never deleted on a guess)
    inputs, _ = world.service.read_desired(Scope())
    assert inputs.retired == {}


def test_a_deep_plan_stopped_by_its_budget_is_incomplete_with_a_note_per_region(world: World) -> None:
    # GIVEN a rule with three cached repositories, and a budget that allows one deep read
    world.write("quay", {"upstream_kind": "quay"})
    world.make_it_so()
    reader = world.reader(REGION)
    for name in ("quay/a", "quay/b", "quay/c"):
        reader.state.repositories[name] = ObservedRepository(name=name, arn=f"arn:{name}", details=RepositoryDetails())
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1

    # WHEN planned deeply with that budget
    plan = world.service.plan(Scope(deep=True), stop=stop)
    # THEN the plan says it is incomplete, and how many repositories were not read in the Region
    assert plan.complete is False
    [note] = plan.notes
    assert (note.region, note.prefix) == (REGION, "")
    assert note.message.startswith("deep read stopped at the API's time budget: 2 of 3 cached repositories")
    # AND without a budget (or on the fast path) the plan is complete
    assert world.service.plan(Scope(deep=True)).complete is True
    assert world.service.plan(Scope(), stop=lambda: True).complete is True


def test_merged_plans_are_complete_only_when_every_part_is() -> None:
    assert Plan.merge([Plan(), Plan()]).complete is True
    assert Plan.merge([Plan(), Plan(complete=False)]).complete is False


def test_a_deadline_is_shared_out_between_the_regions_as_each_starts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN rules in three Regions, 30 s of budget, and each Region's read taking 4 s of it
    world.write("quay", {"upstream_kind": "quay", "regions": ["eu-west-1", "eu-west-2", REGION]})
    clock = {"left": 30.0}
    seen: list[tuple[float, float]] = []
    for region in ("eu-west-1", "eu-west-2", REGION):
        reader = world.reader(region)
        real = reader.observe

        def observe(*, real: Any = real, stop: Any = None, **kwargs: Any) -> Any:
            seen.append((stop.seconds_left(), stop.hard_seconds_left()))
            clock["left"] -= 4
            return real(stop=stop, **kwargs)

        monkeypatch.setattr(reader, "observe", observe)
    # WHEN planned deeply with that deadline (5 s of grace for the reads under way)
    world.service.plan(Scope(deep=True), stop=Deadline(lambda: clock["left"], grace=5.0))
    # THEN each Region got an equal share of what was left at its start: 30/3, 26/2, then all 22 left
    assert seen == [(10.0, 15.0), (13.0, 18.0), (22.0, 27.0)]


def test_a_plain_stop_is_given_to_every_region_as_it_is(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN rules in two Regions, and a stop that is not a Deadline (no time to share out)
    world.write("quay", {"upstream_kind": "quay", "regions": ["eu-west-1", REGION]})
    given: list[Any] = []
    for region in ("eu-west-1", REGION):
        reader = world.reader(region)
        real = reader.observe

        def observe(*, real: Any = real, stop: Any = None, **kwargs: Any) -> Any:
            given.append(stop)
            return real(stop=stop, **kwargs)

        monkeypatch.setattr(reader, "observe", observe)

    def stop() -> bool:
        return False

    # WHEN planned deeply THEN each Region is given that stop itself
    world.service.plan(Scope(deep=True), stop=stop)
    assert given == [stop, stop]
