"""Every step failing in turn -- AWS throttling or refusing a call, the upstream not answering -- leaves a working
token ``AWSCURRENT`` and says so in the step's failure and the rotation's record. A definitive failure takes
``AWSPENDING`` off the new version; one that should clear by itself (throttling, the upstream rate limiting or
down) keeps it, so that Secrets Manager's retries can succeed (review #7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ecrcache.errors import RetryableError
from ecrcache.models.rotation import RotationOutcome, RotationStep, StepStatus
from ecrcache.models.upstream_probe import ProbeStatus
from ecrcache.services.rotation import RotationFailed
from tests.functional.rotation.support import NEW_TOKEN, OLD_TOKEN, STEPS, RotationWorld, failing, value_of

pytestmark = pytest.mark.functional

THROTTLED = ("ThrottlingException", 400)
DENIED = ("AccessDeniedException", 400)


def move_of(label: str, *, to: str | None = None) -> Any:
    """Matches ``UpdateSecretVersionStage`` calls moving ``label`` (to version ``to``, when given)."""
    return lambda kw: kw.get("VersionStage") == label and (to is None or kw.get("MoveToVersionId") == to)


def assert_untouched(world: RotationWorld, old: str | None, *, pending: str | None = None) -> None:
    """The previous token is current, and AWSPENDING is on ``pending`` (``None``: on no version)."""
    assert world.current_token() == OLD_TOKEN
    assert world.labelled("AWSCURRENT") == old
    assert world.labelled("AWSPENDING") == pending


KEPT = "AWSPENDING stays on the new version for Secrets Manager's retries"


def test_create_secret_refused_staging_the_current_token_leaves_it_current(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a scheduled rotation, and PutSecretValue denied
    old = world.labelled("AWSCURRENT")
    token = world.begin()
    monkeypatch.setattr(world.sm, "put_secret_value", failing(world.sm.put_secret_value, lambda _: True, *DENIED))
    # WHEN createSecret runs THEN it fails naming the call, and takes AWSPENDING off the new version
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.CREATE, token)
    assert "Secrets Manager PutSecretValue (AWSPENDING) failed with AccessDeniedException" in failed.value.message
    assert "AWSPENDING was taken off the new version, the previous token stays current" in failed.value.message
    assert_untouched(world, old)
    record = world.record(token)
    assert (record.outcome, record.steps[RotationStep.CREATE].status) == (RotationOutcome.FAILED, StepStatus.FAILED)


def test_test_secret_failing_to_read_the_pending_value_leaves_the_current_token(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    world.step(RotationStep.CREATE, token)
    world.step(RotationStep.SET, token)
    reading_pending = lambda kw: kw.get("VersionStage") == "AWSPENDING"  # noqa: E731
    monkeypatch.setattr(world.sm, "get_secret_value", failing(world.sm.get_secret_value, reading_pending, *DENIED))
    with pytest.raises(RotationFailed, match="GetSecretValue \\(AWSPENDING\\) failed with AccessDeniedException"):
        world.step(RotationStep.TEST, token)
    assert_untouched(world, old)
    assert world.record(token).outcome is RotationOutcome.FAILED


def test_create_secret_throttled_keeps_awspending_and_its_retry_succeeds(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a scheduled rotation, and PutSecretValue throttled
    old = world.labelled("AWSCURRENT")
    token = world.begin()
    monkeypatch.setattr(world.sm, "put_secret_value", failing(world.sm.put_secret_value, lambda _: True, *THROTTLED))
    # WHEN createSecret runs THEN it fails, keeping AWSPENDING on the new version
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.CREATE, token)
    assert "PutSecretValue (AWSPENDING) failed with ThrottlingException" in failed.value.message
    assert KEPT in failed.value.message
    assert world.labelled("AWSPENDING") == token
    assert world.labelled("AWSCURRENT") == old
    # WHEN Secrets Manager retries the rotation THEN it goes through
    monkeypatch.undo()
    world.rotate(token)
    assert world.labelled("AWSCURRENT") == token
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_the_state_table_throttled_at_test_keeps_awspending(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB throttling the read of the credential's desired state
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:2]:
        world.step(step, token)
    client = world.service.desired.client  # type: ignore[attr-defined]
    throttled = ("ProvisionedThroughputExceededException", 400)
    monkeypatch.setattr(client, "get_item", failing(client.get_item, lambda _: True, *throttled))
    # WHEN testSecret runs THEN it fails and AWSPENDING (the operator's staged token) stays for the retry
    with pytest.raises(RotationFailed, match=KEPT):
        world.step(RotationStep.TEST, token)
    assert_untouched(world, old, pending=token)
    monkeypatch.undo()
    assert world.step(RotationStep.TEST, token)


@pytest.mark.parametrize(
    ("status", "message", "retry_at"),
    [
        (ProbeStatus.RATE_LIMIT, "429 Too Many Requests for the probe image", datetime(2026, 12, 1, 6, tzinfo=UTC)),
        (ProbeStatus.UPSTREAM_DOWN, "503 from the upstream for /v2/", None),
    ],
)
def test_an_upstream_rate_limiting_or_down_keeps_awspending_for_the_retry(
    world: RotationWorld, status: ProbeStatus, message: str, retry_at: datetime | None
) -> None:
    # GIVEN the upstream throttles or is down WHEN testSecret runs THEN it fails with why, AWSPENDING kept
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    world.upstream.answer = (status, message, retry_at)
    for step in STEPS[:2]:
        world.step(step, token)
    with pytest.raises(RotationFailed) as refused:
        world.step(RotationStep.TEST, token)
    assert f"{status.value}: {message}" in refused.value.message
    if retry_at is not None:
        assert f"(retry after {retry_at.isoformat()})" in refused.value.message
    assert KEPT in refused.value.message
    assert_untouched(world, old, pending=token)
    # AND the rotation is still in progress: testSecret failed, the record says it is retried, no outcome (review
    # of issue 12, #1: an outcome here was overwritten "promoted" by the retry that followed)
    record = world.record(token)
    assert record.outcome is None
    assert record.steps[RotationStep.TEST].status is StepStatus.FAILED
    assert record.message is not None and record.message.startswith("retrying: testSecret failed")
    # WHEN the upstream is back and Secrets Manager retries THEN the rotation goes through
    world.upstream.answer = None
    world.rotate(token)
    assert world.current_token() == NEW_TOKEN
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_a_probe_image_gone_refuses_the_rotation_for_good(world: RotationWorld) -> None:
    # GIVEN the probe image gone (does not clear until the credential's probe is set) WHEN testSecret runs
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    world.upstream.answer = (ProbeStatus.NOT_FOUND, "404: the probe image is not at the upstream", None)
    for step in STEPS[:2]:
        world.step(step, token)
    # THEN refused, and AWSPENDING taken off (it would block the next RotateSecret)
    with pytest.raises(RotationFailed, match="not_found: 404") as refused:
        world.step(RotationStep.TEST, token)
    assert "AWSPENDING was taken off the new version" in refused.value.message
    assert_untouched(world, old)
    assert world.record(token).outcome is RotationOutcome.REFUSED


@pytest.mark.parametrize(("code", "status", "kept"), [(*THROTTLED, True), (*DENIED, False)])
def test_finish_secret_failing_to_move_awscurrent_leaves_the_previous_token(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, code: str, status: int, kept: bool
) -> None:
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    update = world.sm.update_secret_version_stage
    monkeypatch.setattr(world.sm, "update_secret_version_stage", failing(update, move_of("AWSCURRENT"), code, status))
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.FINISH, token)
    assert "AWSCURRENT could not be moved to the new version" in failed.value.message
    assert (KEPT in failed.value.message) is kept
    assert_untouched(world, old, pending=token if kept else None)
    assert world.validation.checked == []
    # a throttled move is retried by Secrets Manager: no outcome yet (the rotation is still in progress)
    assert world.record(token).outcome is (None if kept else RotationOutcome.FAILED)


@pytest.mark.parametrize(
    ("operation", "code", "words"),
    [
        ("validate_pull_through_cache_rule", "ThrottlingException", "ValidatePullThroughCacheRule failed"),
        ("validate_pull_through_cache_rule", "AccessDeniedException", "ValidatePullThroughCacheRule failed"),
        ("get_paginator", "ThrottlingException", f"the rules in {'us-east-1'} could not be read"),
    ],
)
def test_ecr_failing_to_validate_after_promotion_keeps_the_tested_token_and_is_retried(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, operation: str, code: str, words: str
) -> None:
    # GIVEN ECR throttles or refuses the validation (or the listing of rules) after promotion
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    client = world.service.ecr(world.region).client  # type: ignore[attr-defined]
    monkeypatch.setattr(client, operation, failing(getattr(client, operation), lambda _: True, code, 400))
    # WHEN finishSecret runs THEN it fails, but nothing blamed the new token: it stays current (no roll-back)
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.FINISH, token)
    assert "rolled back" not in failed.value.message
    assert words in failed.value.message
    assert "the new token (which the upstream accepted at testSecret) stays AWSCURRENT" in failed.value.message
    assert world.current_token() == NEW_TOKEN
    assert world.record(token).steps[RotationStep.FINISH].status is StepStatus.FAILED
    # WHEN Secrets Manager retries finishSecret with ECR answering THEN it validates again and is promoted
    monkeypatch.undo()
    assert "validated in ECR: docker-hub (us-east-1)" in world.step(RotationStep.FINISH, token)
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_a_roll_back_that_fails_is_said_and_resumed_by_the_next_attempt(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule that does not validate with the new token, and the move back failing once
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    world.validation.accepted = {OLD_TOKEN}
    for step in STEPS[:3]:
        world.step(step, token)
    update = world.sm.update_secret_version_stage
    move_back = move_of("AWSCURRENT", to=old)
    monkeypatch.setattr(world.sm, "update_secret_version_stage", failing(update, move_back, *THROTTLED))

    # WHEN finishSecret runs THEN it fails saying the new token (accepted upstream at testSecret) is still current
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.FINISH, token)
    assert "rolling back failed" in failed.value.message
    assert "the new token (which the upstream accepted at testSecret) is still AWSCURRENT" in failed.value.message
    assert world.current_token() == NEW_TOKEN
    assert world.labelled("AWSPENDING") is None
    assert world.record(token).outcome is RotationOutcome.FAILED

    # WHEN Secrets Manager retries finishSecret (Secrets Manager answers again) THEN it validates again and rolls back
    monkeypatch.setattr(world.sm, "update_secret_version_stage", update)
    with pytest.raises(RotationFailed, match="rolled back"):
        world.step(RotationStep.FINISH, token)
    assert_untouched(world, old)
    assert world.record(token).outcome is RotationOutcome.ROLLED_BACK


def test_awspending_that_cannot_be_taken_off_is_said_with_the_fix(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.begin(value_of(NEW_TOKEN))
    world.upstream.accepted = {OLD_TOKEN}
    for step in STEPS[:2]:
        world.step(step, token)
    update = world.sm.update_secret_version_stage
    monkeypatch.setattr(world.sm, "update_secret_version_stage", failing(update, move_of("AWSPENDING"), *DENIED))
    with pytest.raises(RotationFailed) as failed:
        world.step(RotationStep.TEST, token)
    assert f"AWSPENDING could not be taken off version {token}" in failed.value.message
    assert "update-secret-version-stage --version-stage AWSPENDING" in failed.value.message
    assert world.current_token() == OLD_TOKEN


def test_secrets_manager_failing_before_any_step_changes_nothing_and_is_retried(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.begin(value_of(NEW_TOKEN))
    before = world.stages()
    monkeypatch.setattr(world.sm, "describe_secret", failing(world.sm.describe_secret, lambda _: True, *THROTTLED))
    with pytest.raises(RetryableError, match="DescribeSecret failed with ThrottlingException"):
        world.step(RotationStep.CREATE, token)
    monkeypatch.undo()
    assert world.stages() == before


def test_a_state_table_that_cannot_record_never_changes_the_rotation_before_finish(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the state table throttling every record write
    token = world.begin(value_of(NEW_TOKEN))
    client = world.records.client
    monkeypatch.setattr(client, "update_item", failing(client.update_item, lambda _: True, *THROTTLED))
    # WHEN the first three steps run THEN they succeed all the same, and each lost record is logged
    for step in STEPS[:3]:
        world.step(step, token)
    assert "a rotation record could not be written" in caplog.text


def test_a_promotion_that_cannot_be_recorded_is_not_made(world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the state table throttling the write of promoted_at (review #6)
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    client = world.records.client
    promoting = lambda kw: "promoted_at" in kw["UpdateExpression"]  # noqa: E731
    monkeypatch.setattr(client, "update_item", failing(client.update_item, promoting, *THROTTLED))
    # WHEN finishSecret runs THEN AWSCURRENT does not move, AWSPENDING stays for the retry
    with pytest.raises(RotationFailed, match="the promotion could not be recorded"):
        world.step(RotationStep.FINISH, token)
    assert_untouched(world, old, pending=token)
    # WHEN Secrets Manager retries THEN it is promoted and validated
    monkeypatch.undo()
    world.step(RotationStep.FINISH, token)
    assert world.record(token).outcome is RotationOutcome.PROMOTED


def test_an_attempt_dying_after_the_move_is_validated_by_the_retry(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN finishSecret's invocation dying (a Lambda timeout) right after AWSCURRENT moved to the new version
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    secrets = world.service.secrets
    move = secrets.move_current

    def move_then_die(*args: Any, **kwargs: Any) -> None:
        move(*args, **kwargs)
        raise TimeoutError("Task timed out")

    monkeypatch.setattr(secrets, "move_current", move_then_die)
    with pytest.raises(TimeoutError):
        world.step(RotationStep.FINISH, token)
    monkeypatch.undo()
    assert world.current_token() == NEW_TOKEN
    # WHEN Secrets Manager retries finishSecret, ECR refusing the new token THEN it validates and rolls back
    world.validation.accepted = {OLD_TOKEN}
    with pytest.raises(RotationFailed, match="rolled back"):
        world.step(RotationStep.FINISH, token)
    assert world.labelled("AWSCURRENT") == old
    assert world.record(token).outcome is RotationOutcome.ROLLED_BACK
