"""A rotation's outcome recorded on the credential's health at once (:mod:`ecrcache.services.rotation_health`):
a promotion makes it Healthy (and a failure from before it marks nothing); a scheduled re-test that the upstream
refuses marks the current token Invalid; a refused new token says nothing of the current one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from ecrcache.adapters.credential_health_store import PARTITION
from ecrcache.adapters.rotation_store import DynamoDbRotationStore
from ecrcache.adapters.secret_rotation import SecretsManagerRotation
from ecrcache.engine.credential_errors import CredentialError
from ecrcache.errors import TerminalError
from ecrcache.models.credential import UpstreamLogin
from ecrcache.models.credential_health import CredentialHealth, HealthState
from ecrcache.models.upstream_probe import ProbeResult, ProbeTarget
from ecrcache.services.rotation import RotationService
from ecrcache.services.rotation_health import ROTATED, RotationHealth
from tests.functional.credential_health.support import TOKEN, HealthWorld
from tests.functional.rotation.support import RotationWorld, failing, value_of

pytestmark = pytest.mark.functional

NEW = "dckr_pat_HEALTHCANARY_00000000000002"


def _rotations(world: HealthWorld) -> RotationWorld:
    """The rotation function as functions/rotator wires it, on the health world's AWS and clock."""
    secrets = SecretsManagerRotation(world.sm)
    health = RotationHealth(store=world.store, secrets=secrets, notifier=world.service.notifier, clock=world.clock)
    records = DynamoDbRotationStore(world.table, world.dynamodb)
    service = RotationService(
        secrets=secrets,
        probe=health.watching(world.upstream),
        desired=world.service.desired,
        records=records,
        ecr=world.service.ecr,
        clock=world.clock,
        health=health,
    )
    return RotationWorld(
        service, world.desired, records, world.sm, world.ecr, world.upstream, world.validation, world.secret_arn
    )


def _changes(world: HealthWorld) -> list[tuple[str, str]]:
    return [
        (e["detail"]["previous_state"], e["detail"]["state"])
        for e in world.events()
        if e["detail-type"] == "Credential Health Changed"
    ]


def _revoke(world: HealthWorld) -> None:
    """The token is revoked: the upstream and ECR refuse it; a pull fails and marks the credential Invalid."""
    world.upstream.accepted.discard(TOKEN)
    world.validation.accepted.discard(TOKEN)
    world.marks.mark([CredentialError("hub", "pull failed", "ECR Pull Through Cache Action e1", world.clock())])


def test_a_promotion_makes_an_invalid_credential_healthy_at_once_and_announces_it(world: HealthWorld) -> None:
    world.service.check_all()
    _revoke(world)
    assert world.health().state is HealthState.INVALID
    world.upstream.accepted.add(NEW)
    world.validation.accepted.add(NEW)
    rotations = _rotations(world)

    rotations.rotate(rotations.begin(value_of(NEW)))

    health = world.health()
    assert (health.state, health.message, health.evidence, health.marked_at) == (
        HealthState.HEALTHY,
        ROTATED,
        None,
        None,
    )
    assert health.rotated_at is not None and health.checked_at == health.rotated_at
    assert health.announced is HealthState.HEALTHY
    assert _changes(world)[-2:] == [("Healthy", "Invalid"), ("Invalid", "Healthy")]


def test_a_failure_from_before_the_rotation_marks_nothing_after_it(world: HealthWorld) -> None:
    _revoke(world)
    failed_at = world.clock()
    world.upstream.accepted.add(NEW)
    world.validation.accepted.add(NEW)
    rotations = _rotations(world)
    rotations.rotate(rotations.begin(value_of(NEW)))
    before = len(world.events())

    # SQS redelivers a pull-through failure of the old token, minutes later
    world.clock.now += timedelta(minutes=5)
    world.marks.mark([CredentialError("hub", "pull failed", "redelivered e1", failed_at)])

    assert world.health().state is HealthState.HEALTHY
    assert len(world.events()) == before


def test_a_scheduled_retest_the_upstream_refuses_marks_the_current_token_invalid(world: HealthWorld) -> None:
    world.service.check_all()
    assert world.health().state is HealthState.HEALTHY
    world.upstream.accepted.discard(TOKEN)  # revoked upstream; nothing has failed on it yet
    rotations = _rotations(world)

    with pytest.raises(TerminalError):
        rotations.rotate(rotations.begin())  # scheduled: the current token staged again and re-tested

    health = world.health()
    assert health.state is HealthState.INVALID
    assert health.evidence is not None and "testSecret" in health.evidence and "credential" in health.evidence
    assert _changes(world)[-1] == ("Healthy", "Invalid")


def test_a_refused_new_token_says_nothing_of_the_current_one(world: HealthWorld) -> None:
    world.service.check_all()
    rotations = _rotations(world)

    with pytest.raises(TerminalError):
        rotations.rotate(rotations.begin(value_of(NEW)))  # the upstream does not accept NEW

    assert world.health().state is HealthState.HEALTHY
    assert _changes(world) == [("Unknown", "Healthy")]


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("AccessDeniedException", 400)])
def test_the_health_failing_to_record_never_changes_the_rotation(world: HealthWorld, code: str, status: int) -> None:
    world.upstream.accepted.add(NEW)
    world.validation.accepted.add(NEW)
    rotations = _rotations(world)
    client = world.store.client
    client.update_item = failing(  # type: ignore[method-assign]
        client.update_item, lambda kwargs: kwargs["Key"]["pk"] == {"S": PARTITION}, code, status
    )

    messages = rotations.rotate(rotations.begin(value_of(NEW)))

    assert rotations.current_token() == NEW
    assert messages[-1].startswith("AWSCURRENT is the new version")
    assert world.store.health("hub") is None  # not recorded: the daily check will


class _RotatedDuringProbe:
    """The upstream, with a rotation happening while the check probes (the old token already revoked)."""

    def __init__(self, world: HealthWorld, rotate: Callable[[], object]) -> None:
        self.world, self.rotate = world, rotate

    def probe(self, target: ProbeTarget, login: UpstreamLogin | None) -> ProbeResult:
        self.rotate()
        return self.world.upstream.probe(target, login)


def test_a_check_racing_a_promotion_does_not_mark_the_new_token_invalid(world: HealthWorld) -> None:
    world.service.check_all()
    world.upstream.accepted.discard(TOKEN)  # revoked: the check's probe of it is refused
    world.upstream.accepted.add(NEW)
    world.validation.accepted.add(NEW)

    def promote() -> None:  # AWSCURRENT moves to a new version between the check's read and its probe
        world.sm.put_secret_value(SecretId=world.secret_arn, SecretString=value_of(NEW), VersionStages=["AWSCURRENT"])

    world.service.probe = _RotatedDuringProbe(world, promote)
    world.clock.days(1)
    world.service.check_all()

    health = world.health()
    assert health.state is HealthState.UNKNOWN  # the check cannot tell; the next one sees the new token
    assert health.message is not None and "AWSCURRENT moved while the check ran" in health.message
    assert ("Healthy", "Invalid") not in _changes(world)


def test_a_promotion_recorded_while_the_check_ran_wins_over_its_refusal(world: HealthWorld) -> None:
    world.service.check_all()
    world.upstream.accepted.discard(TOKEN)

    def recorded() -> None:  # the rotation's health record lands between the check's read and its write
        at = world.clock()
        world.store.record_rotated(
            CredentialHealth(credential="hub", state=HealthState.HEALTHY, checked_at=at, rotated_at=at, message=ROTATED)
        )

    world.service.probe = _RotatedDuringProbe(world, recorded)
    world.clock.days(1)
    world.service.check_all()

    health = world.health()
    assert (health.state, health.message) == (HealthState.HEALTHY, ROTATED)
    assert ("Healthy", "Invalid") not in _changes(world)
