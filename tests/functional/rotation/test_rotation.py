"""The four rotation steps on the embedded AWS: a staged token promoted and validated, a scheduled re-test,
the template's guards, a bad token refused at testSecret, a rule not validating after promotion rolled back,
and two rotations at once. After every failure ``AWSCURRENT`` is a working token and no ``AWSPENDING`` is left.
"""

from __future__ import annotations

import uuid

import pytest

from ecrcache.models.rotation import RotationOutcome, RotationStep, StepStatus
from ecrcache.services.rotation import RotationFailed
from tests.functional.rotation.support import BAD_TOKEN, NEW_TOKEN, OLD_TOKEN, STEPS, RotationWorld, value_of

pytestmark = pytest.mark.functional


def test_a_staged_token_is_tested_promoted_and_validated(world: RotationWorld) -> None:
    # GIVEN an operator's new token staged as AWSPENDING, the rotation started
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))

    # WHEN Secrets Manager runs the four steps
    messages = world.rotate(token)

    # THEN the new token is current, the old one previous, nothing pending
    assert world.stages() == {token: {"AWSCURRENT"}, old: {"AWSPREVIOUS"}}
    assert world.current_token() == NEW_TOKEN
    # AND it was tried at the upstream (Docker Hub's default probe), and ECR validated the rule with it
    assert [str(t) for t in world.upstream.probed] == ["registry-1.docker.io/ratelimitpreview/test:latest"]
    assert world.validation.checked == [NEW_TOKEN]
    assert messages[0] == "a new value is staged as AWSPENDING for this rotation: nothing to create"
    assert messages[3] == f"AWSCURRENT is the new version; validated in ECR: docker-hub ({world.region})"
    # AND the record shows every step and the outcome
    record = world.record(token)
    assert {step: entry.status for step, entry in record.steps.items()} == dict.fromkeys(STEPS, StepStatus.SUCCEEDED)
    assert (record.outcome, record.promoted_at is not None, record.secret_arn) == (
        RotationOutcome.PROMOTED,
        True,
        world.secret_arn,
    )


def test_a_scheduled_rotation_re_tests_and_re_validates_the_current_token(world: RotationWorld) -> None:
    # GIVEN a scheduled rotation: RotateSecret made an empty AWSPENDING version, no new token exists
    token = world.begin()

    # WHEN the four steps run
    messages = world.rotate(token)

    # THEN the current token was staged again, tested upstream, promoted (same value) and validated
    assert "the current token is staged again as AWSPENDING" in messages[0]
    assert world.current_token() == OLD_TOKEN
    assert world.labelled("AWSCURRENT") == token
    assert world.labelled("AWSPENDING") is None
    assert world.validation.checked == [OLD_TOKEN]
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_a_bad_token_is_refused_at_test_with_the_current_token_untouched(world: RotationWorld) -> None:
    # GIVEN a staged token the upstream does not accept
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(BAD_TOKEN))
    world.step(RotationStep.CREATE, token)
    world.step(RotationStep.SET, token)

    # WHEN testSecret runs THEN it fails naming the upstream's answer (never the token)
    with pytest.raises(RotationFailed) as refused:
        world.step(RotationStep.TEST, token)
    assert "the upstream did not accept the new token" in refused.value.message
    assert "credential: 401: the upstream's token service rejected the credential" in refused.value.message
    assert BAD_TOKEN not in str(refused.value)

    # AND the old token is still current, and no AWSPENDING is left (it would block the next rotation)
    assert world.current_token() == OLD_TOKEN
    assert world.stages() == {old: {"AWSCURRENT"}}
    record = world.record(token)
    assert (record.outcome, record.steps[RotationStep.TEST].status) == (RotationOutcome.REFUSED, StepStatus.FAILED)

    # WHEN Secrets Manager retries the rotation THEN each step refuses at the guard and changes nothing
    for step in STEPS:
        with pytest.raises(RotationFailed, match="is not AWSPENDING"):
            world.step(step, token)
    assert world.stages() == {old: {"AWSCURRENT"}}
    assert world.record(token).outcome is RotationOutcome.REFUSED  # the outcome stays the first one


def test_a_rule_that_does_not_validate_after_promotion_is_rolled_back(world: RotationWorld) -> None:
    # GIVEN a token the upstream accepts, but with which ECR cannot validate the rule
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    world.validation.accepted = {OLD_TOKEN}
    for step in STEPS[:3]:
        world.step(step, token)

    # WHEN finishSecret promotes it THEN it fails naming the rule, its Region and ECR's failure text
    with pytest.raises(RotationFailed) as rolled_back:
        world.step(RotationStep.FINISH, token)
    message = rolled_back.value.message
    assert "rolled back: AWSCURRENT is the previous version again" in message
    assert f"docker-hub ({world.region}): UpstreamAccessDenied: 401 Unauthorized from the upstream" in message

    # AND the old token is current again, the new one previous, nothing pending
    assert world.current_token() == OLD_TOKEN
    assert world.stages() == {old: {"AWSCURRENT"}, token: {"AWSPREVIOUS"}}
    assert world.validation.checked == [NEW_TOKEN]
    record = world.record(token)
    assert (record.outcome, record.promoted_at is not None) == (RotationOutcome.ROLLED_BACK, True)

    # WHEN Secrets Manager retries finishSecret THEN the guard refuses it: the roll-back stands
    with pytest.raises(RotationFailed, match="is not AWSPENDING"):
        world.step(RotationStep.FINISH, token)
    assert world.current_token() == OLD_TOKEN
    assert world.record(token).outcome is RotationOutcome.ROLLED_BACK


@pytest.mark.parametrize("step", STEPS)
def test_rotation_disabled_is_refused_and_changes_nothing(world: RotationWorld, step: RotationStep) -> None:
    token = world.begin(value_of(NEW_TOKEN))
    world.enable_rotation(enabled=False)
    before = world.stages()
    with pytest.raises(RotationFailed, match="is not enabled for rotation; nothing was changed"):
        world.step(step, token)
    assert world.stages() == before


@pytest.mark.parametrize("step", STEPS)
def test_an_unknown_token_is_refused_and_changes_nothing(world: RotationWorld, step: RotationStep) -> None:
    pending = world.begin(value_of(NEW_TOKEN))
    before = world.stages()
    unknown = str(uuid.uuid4())
    with pytest.raises(RotationFailed, match="has no stage for rotation"):
        world.step(step, unknown)
    assert world.stages() == before
    assert world.labelled("AWSPENDING") == pending
    assert world.record(unknown).outcome is RotationOutcome.FAILED


@pytest.mark.parametrize("step", STEPS)
def test_a_version_already_current_needs_nothing(world: RotationWorld, step: RotationStep) -> None:
    # GIVEN a rotation that was promoted
    token = world.begin(value_of(NEW_TOKEN))
    world.rotate(token)
    before = world.stages()
    checked = len(world.validation.checked)
    # WHEN a step of it is invoked again THEN it does nothing
    assert world.step(step, token) == "the version is already AWSCURRENT: nothing to do"
    assert world.stages() == before
    assert len(world.validation.checked) == checked
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_every_step_is_idempotent_when_retried_before_the_next(world: RotationWorld) -> None:
    token = world.begin()
    for step in STEPS:
        world.step(step, token)
        if step is not RotationStep.FINISH:
            world.step(step, token)  # Secrets Manager's retry of a step whose answer was lost
    assert world.current_token() == OLD_TOKEN
    assert world.labelled("AWSCURRENT") == token
    assert world.labelled("AWSPENDING") is None


def test_a_second_rotation_staged_while_one_is_pending_takes_over(world: RotationWorld) -> None:
    # GIVEN rotation A staged and created, then an operator stages B: AWSPENDING is on one version at most,
    # so it moves to B (PutSecretValue). RotateSecret itself refuses to start while AWSPENDING is on another
    # version than AWSCURRENT (RotateSecret API reference); a second staging is how two rotations meet.
    old = world.labelled("AWSCURRENT")
    first = world.begin(value_of(BAD_TOKEN))
    world.step(RotationStep.CREATE, first)
    second = world.begin(value_of(NEW_TOKEN))
    assert world.labelled("AWSPENDING") == second

    # WHEN A's remaining steps arrive THEN each is refused at the guard, and B's AWSPENDING is left alone
    for step in STEPS[1:]:
        with pytest.raises(RotationFailed, match="another rotation took over"):
            world.step(step, first)
    assert world.labelled("AWSPENDING") == second
    assert world.current_token() == OLD_TOKEN
    assert world.record(first).outcome is RotationOutcome.FAILED

    # AND B completes
    world.rotate(second)
    assert world.current_token() == NEW_TOKEN
    assert world.stages() == {second: {"AWSCURRENT"}, old: {"AWSPREVIOUS"}}
    assert world.record(second).outcome is RotationOutcome.PROMOTED


def test_a_token_arriving_while_another_is_pending_does_not_disturb_it(world: RotationWorld) -> None:
    # GIVEN rotation A pending WHEN steps come for a token that is no version THEN refused, A untouched
    first = world.begin(value_of(NEW_TOKEN))
    world.step(RotationStep.CREATE, first)
    with pytest.raises(RotationFailed, match="has no stage for rotation"):
        world.step(RotationStep.CREATE, str(uuid.uuid4()))
    world.rotate(first)
    assert world.current_token() == NEW_TOKEN
