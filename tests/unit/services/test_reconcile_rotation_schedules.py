"""Credentials' rotation schedules through the reconciler, on in-memory fakes: ``every_days`` becomes the
secret's schedule with the rotation function, a change is converged, a removal cancels it, nothing moves while a
rotation is in progress, and a failed call is one of the run's errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.engine.rotation_schedule import ObservedRotation
from ecrcache.errors import RetryableError
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.rotation_schedules import RotationSchedules
from tests.fakes.ecr_registry import MemoryEcrRegistry
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOME = "us-east-1"
FN = "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator"
ALICE = "arn:aws:iam::123456789012:user/alice"


def arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{HOME}:123456789012:secret:ecr-pullthroughcache/{name}-AbCdEf"


@dataclass
class MemoryScheduler:
    """Secrets Manager's rotation configuration of each secret, as the API reference describes the calls."""

    secrets: dict[str, ObservedRotation] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail: Exception | None = None
    on_observe: Callable[[], None] | None = None
    """Runs before every read after the first (what happens in Secrets Manager between two reads)."""
    reads: int = 0

    def add(self, name: str, **seen: Any) -> None:
        self.secrets[f"ecr-pullthroughcache/{name}"] = ObservedRotation(
            arn=arn(name),
            enabled=seen.get("enabled", False),
            schedule=seen.get("schedule"),
            function_arn=seen.get("function_arn"),
            in_progress=seen.get("in_progress", False),
        )

    def _by_arn(self, secret_id: str) -> str:
        return next(name for name, seen in self.secrets.items() if seen.arn == secret_id)

    def observe(self, secret_id: str) -> ObservedRotation | None:
        self.reads += 1
        if self.reads > 1 and self.on_observe is not None:
            self.on_observe()
        if secret_id.startswith("arn:"):
            return next((seen for seen in self.secrets.values() if seen.arn == secret_id), None)
        return self.secrets.get(secret_id)

    def remove_label(self, secret_id: str, *, version: str, label: str) -> None:
        self.calls.append(("UpdateSecretVersionStage", secret_id, f"remove {label} from {version}"))

    def set_schedule(self, secret_id: str, *, schedule: str, function_arn: str) -> None:
        self.calls.append(("RotateSecret", secret_id, schedule))
        if self.fail is not None:
            raise self.fail
        name = self._by_arn(secret_id)
        self.secrets[name] = ObservedRotation(secret_id, True, schedule, function_arn)

    def cancel(self, secret_id: str) -> None:
        self.calls.append(("CancelRotateSecret", secret_id, None))
        if self.fail is not None:
            raise self.fail
        name = self._by_arn(secret_id)
        seen = self.secrets[name]
        self.secrets[name] = ObservedRotation(secret_id, False, seen.schedule, seen.function_arn)


@dataclass
class World:
    desired: MemoryStateStore
    scheduler: MemoryScheduler
    service: ReconcileService

    def credential(self, name: str, rotation: dict[str, Any] | None) -> None:
        current = self.desired.get(ResourceKind.CREDENTIAL, name)
        spec = {"upstream_kind": "docker-hub", "username": "ci", **({"rotation": rotation} if rotation else {})}
        write = Write(
            kind=ResourceKind.CREDENTIAL,
            name=name,
            action=WriteAction.UPDATE if current else WriteAction.CREATE,
            expected_version=current.version if current else None,
            spec=spec,
            secret_arn=arn(name),
        )
        self.desired.commit([write], revision=self.desired.revision, actor=ALICE, now=NOW)

    def run(self) -> Any:
        return self.service.reconcile(Scope(), RunTrigger.SCHEDULE)


@pytest.fixture
def world() -> World:
    desired, scheduler = MemoryStateStore(), MemoryScheduler()
    registries: dict[str, MemoryEcrRegistry] = {}
    service = ReconcileService(
        desired=desired,
        status=MemoryStatusStore(),
        registry=lambda region: registries.setdefault(region, MemoryEcrRegistry(region)),
        clock=lambda: NOW,
        stack_region=HOME,
        schedules=RotationSchedules(secrets=scheduler, function_arn=FN),
    )
    return World(desired, scheduler, service)


def test_every_days_becomes_the_secrets_schedule_and_is_converged_when_it_changes(world: World) -> None:
    world.scheduler.add("hub")
    world.credential("hub", {"every_days": 30})
    assert world.run().status is RunStatus.SUCCEEDED
    assert world.scheduler.calls == [("RotateSecret", arn("hub"), "rate(30 days)")]
    # AND the next run changes nothing
    world.run()
    assert len(world.scheduler.calls) == 1
    # WHEN the schedule changes THEN it is set again
    world.credential("hub", {"every_days": 7})
    world.run()
    assert world.scheduler.calls[-1] == ("RotateSecret", arn("hub"), "rate(7 days)")


def test_a_schedule_changed_by_hand_is_put_back(world: World) -> None:
    world.scheduler.add("hub", enabled=True, schedule="rate(90 days)", function_arn=FN)
    world.credential("hub", {"every_days": 30})
    world.run()
    assert world.scheduler.calls == [("RotateSecret", arn("hub"), "rate(30 days)")]


def test_a_credential_that_no_longer_has_a_schedule_gets_it_cancelled(world: World) -> None:
    world.scheduler.add("hub", enabled=True, schedule="rate(30 days)", function_arn=FN)
    world.credential("hub", None)
    world.run()
    assert world.scheduler.calls == [("CancelRotateSecret", arn("hub"), None)]
    world.run()
    assert len(world.scheduler.calls) == 1


def test_a_secret_enabled_without_a_schedule_is_left_alone(world: World) -> None:
    # (a rotation started through the API configures the function without a schedule)
    world.scheduler.add("hub", enabled=True, schedule=None, function_arn=FN)
    world.credential("hub", None)
    world.run()
    assert world.scheduler.calls == []


def test_nothing_moves_while_a_rotation_is_in_progress(world: World) -> None:
    world.scheduler.add("hub", enabled=True, schedule="rate(30 days)", function_arn=FN, in_progress=True)
    world.credential("hub", None)
    world.run()
    assert world.scheduler.calls == []


def test_a_failed_call_is_one_of_the_runs_errors(world: World) -> None:
    world.scheduler.add("hub")
    world.scheduler.fail = RetryableError(
        "Secrets Manager RotateSecret (schedule) failed with ThrottlingException; try again"
    )
    world.credential("hub", {"every_days": 30})
    run = world.run()
    assert any("rotation schedule set to rate(30 days) failed" in e and "ThrottlingException" in e for e in run.errors)
    # AND the next run tries again
    world.scheduler.fail = None
    world.run()
    assert world.scheduler.calls[-1] == ("RotateSecret", arn("hub"), "rate(30 days)")
    assert world.scheduler.secrets["ecr-pullthroughcache/hub"].schedule == "rate(30 days)"


def test_without_a_rotation_function_nothing_is_scheduled(world: World) -> None:
    world.service.schedules = RotationSchedules(secrets=world.scheduler, function_arn="")
    world.scheduler.add("hub")
    world.credential("hub", {"every_days": 30})
    world.run()
    assert world.scheduler.calls == []


# -- review of issue 12 (#2): the API may start a rotation between the phase's read and its call --------------


@pytest.mark.parametrize(
    ("rotation", "seen"),
    [
        (None, {"enabled": True, "schedule": "rate(30 days)", "function_arn": FN}),  # would cancel
        ({"every_days": 7}, {"enabled": True, "schedule": "rate(30 days)", "function_arn": FN}),  # would set
    ],
)
def test_a_rotation_started_after_the_phase_read_the_secret_is_not_touched(
    world: World, rotation: dict[str, Any] | None, seen: dict[str, Any]
) -> None:
    # GIVEN the phase reads the secret with no rotation in progress, and the API starts one right after
    world.scheduler.add("hub", **seen)
    world.credential("hub", rotation)
    world.scheduler.on_observe = lambda: world.scheduler.add("hub", **seen, in_progress=True)
    # WHEN the reconciler runs THEN it reads the secret again and calls neither RotateSecret nor CancelRotateSecret
    world.run()
    assert world.scheduler.reads == 2
    assert world.scheduler.calls == []
    # AND the next run, the rotation over, converges the schedule
    world.scheduler.on_observe = None
    world.scheduler.add("hub", **seen)
    world.run()
    assert [call[0] for call in world.scheduler.calls] == ["RotateSecret" if rotation else "CancelRotateSecret"]


def test_the_phase_runs_only_under_the_lease_of_the_stacks_region(world: World) -> None:
    # GIVEN another reconcile holding the lease of the stack's Region
    world.scheduler.add("hub")
    world.credential("hub", {"every_days": 30})
    status = world.service.status
    assert status.acquire_lease(HOME, "another-run", now=NOW, ttl_seconds=300)
    # WHEN a run comes THEN it leaves the schedules to the lease holder, and says the Region is busy
    run = world.run()
    assert world.scheduler.calls == []
    assert any("another reconcile holds the lease for us-east-1" in error for error in run.errors)
    # AND once the lease is free, the next run converges them, and gives the lease back
    status.release_lease(HOME, "another-run")
    world.run()
    assert world.scheduler.calls == [("RotateSecret", arn("hub"), "rate(30 days)")]
    assert status.acquire_lease(HOME, "a-third-run", now=NOW, ttl_seconds=300)
