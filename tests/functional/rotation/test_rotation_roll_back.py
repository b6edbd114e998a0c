"""finishSecret rolls back only when ECR blames the credential, and only to a previous token the upstream still
takes (review #4): the usual reason to rotate is that the old token was revoked. Secrets Manager's retries after
a rotation ended leave its record alone (review #11)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.aws.ports import AuthCheckResult
from ecrcache.models.rotation import RotationOutcome, RotationStep, StepStatus
from ecrcache.observability import metrics
from ecrcache.services.rotation import RotationFailed
from tests.functional.rotation.support import NEW_TOKEN, OLD_TOKEN, STEPS, RotationWorld, value_of

pytestmark = pytest.mark.functional


def promoted_then_validated(world: RotationWorld) -> str:
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    return token


def ecr_failing_with(world: RotationWorld, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """ECR's validation answers ``isValid: false`` with ``failure`` whatever the token."""
    monkeypatch.setattr(world.validation, "check", lambda **_: AuthCheckResult(is_valid=False, failure=failure))


@pytest.mark.parametrize(
    "failure",
    [
        "UpstreamTooManyRequests: 429 Too Many Requests from the upstream",
        "the upstream registry is unavailable (503)",
        "ECR reported the rule as not valid",
    ],
)
def test_a_validation_failure_not_about_the_credential_keeps_the_new_token(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    # GIVEN ECR's validation failing for a reason that is not the credential (a rate limit, an outage, no reason)
    token = promoted_then_validated(world)
    ecr_failing_with(world, monkeypatch, failure)
    # WHEN finishSecret runs THEN the step fails naming it, the new token stays current, AWSPREVIOUS is the old one
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.FINISH, token)
    assert f"docker-hub (us-east-1): {failure}" in failed.value.message
    assert "stays AWSCURRENT" in failed.value.message
    assert world.current_token() == NEW_TOKEN
    record = world.record(token)
    assert (record.outcome, record.steps[RotationStep.FINISH].status) == (RotationOutcome.FAILED, StepStatus.FAILED)


def test_a_credential_failure_rolls_back_to_a_previous_token_the_upstream_still_takes(world: RotationWorld) -> None:
    token = promoted_then_validated(world)
    world.validation.accepted = {OLD_TOKEN}
    with pytest.raises(RotationFailed, match="rolled back") as failed:
        world.step(RotationStep.FINISH, token)
    assert "UpstreamAccessDenied" in failed.value.message
    assert world.current_token() == OLD_TOKEN
    assert world.record(token).outcome is RotationOutcome.ROLLED_BACK


def test_a_credential_failure_never_rolls_back_to_a_revoked_token(world: RotationWorld) -> None:
    # GIVEN the old token revoked upstream (the reason for the rotation), and ECR refusing the new one
    token = promoted_then_validated(world)
    world.upstream.accepted = {NEW_TOKEN}
    world.validation.accepted = set()
    # WHEN finishSecret runs THEN the previous token is probed first, refused, and the new one stays current
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.FINISH, token)
    assert "not rolled back: the previous token was not accepted by the upstream either" in failed.value.message
    assert "credential: 401" in failed.value.message
    assert world.current_token() == NEW_TOKEN
    assert world.record(token).outcome is RotationOutcome.FAILED


def test_a_rule_deleted_meanwhile_is_skipped_not_invalid(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the rule deleted between the listing of the rules and its validation
    token = promoted_then_validated(world)
    client = world.service.ecr(world.region).client  # type: ignore[attr-defined]
    validate = client.validate_pull_through_cache_rule

    def deleted_first(**kwargs: Any) -> Any:
        world.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=kwargs["ecrRepositoryPrefix"])
        return validate(**kwargs)

    monkeypatch.setattr(client, "validate_pull_through_cache_rule", deleted_first)
    # WHEN finishSecret runs THEN the rotation is promoted, saying the rule is gone
    message = world.step(RotationStep.FINISH, token)
    assert "gone meanwhile, not validated: docker-hub (us-east-1)" in message
    assert world.current_token() == NEW_TOKEN
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_retries_after_a_roll_back_leave_its_record_and_count_nothing(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rotation rolled back (review #11)
    token = promoted_then_validated(world)
    world.validation.accepted = {OLD_TOKEN}
    with pytest.raises(RotationFailed, match="rolled back"):
        world.step(RotationStep.FINISH, token)
    before = world.record(token)
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda **kw: counted.append(kw["name"]))
    # WHEN Secrets Manager retries the rotation's steps THEN the guard refuses them, and changes no record or metric
    for step in STEPS:
        with pytest.raises(RotationFailed, match="not AWSPENDING"):
            world.step(step, token)
    after = world.record(token)
    assert (after.steps, after.outcome, after.message) == (before.steps, before.outcome, before.message)
    assert counted == []


def test_a_guard_refusal_of_a_rotation_without_outcome_is_recorded(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN rotation A staged, then rotation B taking AWSPENDING over before A recorded an outcome
    first = world.begin(value_of(NEW_TOKEN))
    world.step(RotationStep.CREATE, first)
    world.begin(value_of(NEW_TOKEN))
    counted: list[str] = []
    monkeypatch.setattr(metrics, "add_metric", lambda **kw: counted.append(kw["name"]))
    # WHEN A's next step comes THEN it is refused, and that is recorded and counted
    with pytest.raises(RotationFailed, match="not AWSPENDING"):
        world.step(RotationStep.SET, first)
    record = world.record(first)
    assert record.outcome is RotationOutcome.FAILED
    assert record.steps[RotationStep.SET].status is StepStatus.FAILED
    assert counted == ["RotationFailed"]
