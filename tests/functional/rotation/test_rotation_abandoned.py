"""Rotations nobody finishes, and rotations whose start is in doubt (review of issue 12, #1 #3 #4 #5), on the
embedded AWS: the reconciler's sweeper takes an abandoned rotation's ``AWSPENDING`` and staged token off and
records it failed; an API rotation whose staged token is gone is refused rather than re-promoting the old token;
a ``RotateSecret`` whose answer was lost is checked before it is undone; a finishSecret retry after a roll-back
never re-promotes; a 202 is answered for a started rotation even when its record cannot be read back."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from ecrcache.adapters.rotation_schedule import SecretsManagerRotationSchedule
from ecrcache.adapters.rotation_start import SecretsManagerRotationStart
from ecrcache.errors import RetryableError
from ecrcache.models.credential import RotationRequest
from ecrcache.models.rotation import RotationKey, RotationOutcome, RotationStep, staged_label
from ecrcache.models.upstream_probe import ProbeStatus
from ecrcache.services.rotation import RotationFailed
from ecrcache.services.rotation_schedules import RotationSchedules
from ecrcache.services.rotation_sweeper import ABANDON_AFTER, RotationSweeper
from ecrcache.services.rotations import RotationsService
from tests.functional.rotation.support import (
    NEW_TOKEN,
    OLD_TOKEN,
    STEPS,
    RotationWorld,
    _moto_secret,
    failing,
    now,
    value_of,
)

pytestmark = pytest.mark.functional

ALICE = "arn:aws:iam::123456789012:user/alice"
FN = "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator"
LATER = ABANDON_AFTER + timedelta(minutes=5)
SERVER_ERROR = ("InternalServiceError", 500)


def pending_version(world: RotationWorld, token: str) -> None:
    """What ``RotateSecret`` leaves before ``createSecret`` (as :meth:`RotationWorld.begin`), for ``token``."""
    world.enable_rotation()
    secret = _moto_secret(world.secret)
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}


def sweeper(world: RotationWorld, *, after: timedelta = timedelta(0)) -> RotationSweeper:
    return RotationSweeper(
        secrets=SecretsManagerRotationSchedule(world.sm), records=world.records, clock=lambda: now() + after
    )


def sweep(world: RotationWorld, *, after: timedelta = timedelta(0)) -> list[str]:
    versions = world.service.secrets.describe(world.secret)
    swept = sweeper(world, after=after).sweep(world.credential, versions)
    assert swept.errors == []
    return swept.changed


def retryable_test_failure(world: RotationWorld) -> str:
    """A rotation whose testSecret met the upstream rate limiting: AWSPENDING kept for Secrets Manager's retries."""
    token = world.begin(value_of(NEW_TOKEN))
    world.upstream.answer = (ProbeStatus.RATE_LIMIT, "429 Too Many Requests", None)
    for step in STEPS[:2]:
        world.step(step, token)
    with pytest.raises(RotationFailed, match="should clear by itself"):
        world.step(RotationStep.TEST, token)
    world.upstream.answer = None
    return token


# -- #1: retryable failures, and the sweeper ------------------------------------------------------------------


def test_a_retryable_failure_leaves_the_rotation_in_progress_until_its_retry_promotes_it(world: RotationWorld) -> None:
    token = retryable_test_failure(world)
    # THEN no outcome: the operator is not told "refused" for a rotation Secrets Manager still retries
    assert world.record(token).outcome is None
    # WHEN the retry passes THEN promoted: the only outcome the record ever had
    world.rotate(token)
    assert (world.record(token).outcome, world.current_token()) == (RotationOutcome.PROMOTED, NEW_TOKEN)


def test_a_rotation_no_retry_comes_for_is_swept_after_the_bound_and_recorded_failed(world: RotationWorld) -> None:
    old = world.labelled("AWSCURRENT")
    token = retryable_test_failure(world)
    # WHEN the reconciler sweeps within the bound THEN the rotation is left to Secrets Manager's retries
    assert sweep(world) == []
    assert world.labelled("AWSPENDING") == token
    # WHEN it sweeps after the bound (no retry came) THEN AWSPENDING is taken off and the rotation recorded failed
    still = world.record(token).updated_at.isoformat()
    assert sweep(world, after=LATER) == [
        f"credential hub: AWSPENDING taken off version {token} (rotation {token} recorded nothing since {still}, "
        f"more than {ABANDON_AFTER} ago)"
    ]
    assert world.labelled("AWSPENDING") is None
    assert (world.labelled("AWSCURRENT"), world.current_token()) == (old, OLD_TOKEN)
    record = world.record(token)
    assert record.outcome is RotationOutcome.FAILED
    assert record.message is not None and record.message.startswith("abandoned: ")
    # AND a late retry of Secrets Manager's stops at the guard and keeps the record as it is
    with pytest.raises(RotationFailed, match="is not AWSPENDING"):
        world.step(RotationStep.CREATE, token)
    assert world.record(token).message == record.message
    # AND the next rotation can start
    assert world.rotate(world.begin(value_of(NEW_TOKEN)))
    assert world.current_token() == NEW_TOKEN


def test_awspending_left_by_a_rotation_that_ended_is_swept_at_once_and_its_outcome_kept(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the upstream refusing the new token, and AWSPENDING that cannot be taken off
    token = world.begin(value_of(NEW_TOKEN))
    world.upstream.accepted = {OLD_TOKEN}
    removing = lambda kw: kw.get("VersionStage") == "AWSPENDING"  # noqa: E731
    update = world.sm.update_secret_version_stage
    monkeypatch.setattr(
        world.sm, "update_secret_version_stage", failing(update, removing, "AccessDeniedException", 400)
    )
    with pytest.raises(RotationFailed, match="AWSPENDING could not be taken off"):
        world.rotate(token)
    monkeypatch.undo()
    assert world.labelled("AWSPENDING") == token
    # WHEN the reconciler sweeps (no time passed) THEN it takes AWSPENDING off; the record keeps "refused"
    assert sweep(world) == [f"credential hub: AWSPENDING taken off version {token} (rotation {token} ended refused)"]
    assert world.labelled("AWSPENDING") is None
    assert world.record(token).outcome is RotationOutcome.REFUSED


def test_awspending_without_a_record_is_left_alone(world: RotationWorld) -> None:
    # GIVEN Secrets Manager's test of the rotation configuration (an empty AWSPENDING version, no step recorded)
    token = world.begin()
    # WHEN the reconciler sweeps, however late THEN it leaves it
    assert sweep(world, after=LATER) == []
    assert world.labelled("AWSPENDING") == token


def api_rotation(world: RotationWorld, *, staged: bool = True) -> tuple[str, str]:
    """What the API leaves when it dies between PutSecretValue and RotateSecret: the rotation recorded, the token
    staged under its private label; (rotation id, staged version)."""
    token = f"{time.time_ns():032d}"
    world.records.record_start(RotationKey("hub", token, world.secret_arn), requested_by=ALICE, at=now())
    version = f"{time.time_ns() + 1:032d}"
    if staged:
        world.sm.put_secret_value(
            SecretId=world.secret,
            ClientRequestToken=version,
            SecretString=value_of(NEW_TOKEN),
            VersionStages=[staged_label(token)],
        )
    return token, version


def test_a_staged_token_whose_rotation_never_started_is_swept_after_the_bound(world: RotationWorld) -> None:
    token, version = api_rotation(world)
    label = staged_label(token)
    assert sweep(world) == []
    assert world.labelled(label) == version
    changed = sweep(world, after=LATER)
    assert changed and changed[0].startswith(f"credential hub: {label} taken off version {version} (rotation {token}")
    assert world.labelled(label) is None
    assert world.record(token).outcome is RotationOutcome.FAILED
    assert world.current_token() == OLD_TOKEN


def test_a_staged_token_without_a_record_is_swept_at_once(world: RotationWorld) -> None:
    label = staged_label("0" * 36)
    world.sm.put_secret_value(
        SecretId=world.secret, ClientRequestToken="1" * 36, SecretString=value_of(NEW_TOKEN), VersionStages=[label]
    )
    assert sweep(world) == [f"credential hub: {label} taken off version {'1' * 36} (rotation {'0' * 36} has no record)"]
    assert world.labelled(label) is None


def test_the_reconcilers_schedule_phase_runs_the_sweeper(world: RotationWorld, state_table: str) -> None:
    token = retryable_test_failure(world)
    secrets = SecretsManagerRotationSchedule(world.sm)
    phase = RotationSchedules(secrets=secrets, function_arn=FN, sweeper=sweeper(world, after=LATER))
    outcome = phase.converge(world.service.desired.snapshot())
    assert any(f"AWSPENDING taken off version {token}" in change for change in outcome.changed)
    assert world.labelled("AWSPENDING") is None


# -- #3: an API rotation whose staged token is gone ------------------------------------------------------------


def test_an_api_rotation_whose_staged_token_is_gone_is_refused_not_re_promoting_the_old_token(
    world: RotationWorld,
) -> None:
    # GIVEN a rotation started through the API whose staged token's label was taken off (its version empty)
    old = world.labelled("AWSCURRENT")
    token, _ = api_rotation(world, staged=False)
    pending_version(world, token)
    # WHEN createSecret runs THEN it refuses (the current token is not staged in its place)
    with pytest.raises(RotationFailed, match="the staged token is gone"):
        world.step(RotationStep.CREATE, token)
    assert (world.labelled("AWSCURRENT"), world.current_token()) == (old, OLD_TOKEN)
    assert world.labelled("AWSPENDING") is None
    assert world.record(token).outcome is RotationOutcome.REFUSED


def rotations(world: RotationWorld) -> RotationsService:
    return RotationsService(
        desired=world.service.desired,
        secrets=SecretsManagerRotationStart(world.sm),
        records=world.records,
        function_arn=FN,
        clock=now,
    )


def rotate_secret_answer_lost(world: RotationWorld, *, started: bool) -> Callable[..., Any]:
    """``RotateSecret`` answering 500 -- after starting the rotation (``started``) or not."""

    def call(**kwargs: Any) -> Any:
        if started:
            pending_version(world, kwargs["ClientRequestToken"])
        return failing(lambda **_: None, lambda _: True, *SERVER_ERROR)(**kwargs)

    return call


def test_a_rotate_secret_whose_answer_was_lost_but_which_started_answers_202_and_keeps_the_token(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = rotations(world)
    monkeypatch.setattr(world.sm, "rotate_secret", rotate_secret_answer_lost(world, started=True))
    record = service.start("hub", RotationRequest(token=SecretStr(NEW_TOKEN)), actor=ALICE)
    assert record.outcome is None
    assert world.labelled(staged_label(record.rotation_id)) is not None  # for createSecret
    # AND the rotation runs through with the staged token
    world.rotate(record.rotation_id)
    assert (world.record(record.rotation_id).outcome, world.current_token()) == (RotationOutcome.PROMOTED, NEW_TOKEN)


def test_a_rotate_secret_that_failed_without_starting_is_undone(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = rotations(world)
    monkeypatch.setattr(world.sm, "rotate_secret", rotate_secret_answer_lost(world, started=False))
    with pytest.raises(RetryableError, match="not started") as failed:
        service.start("hub", RotationRequest(token=SecretStr(NEW_TOKEN)), actor=ALICE)
    rotation_id = failed.value.message.split()[1]
    assert world.record(rotation_id).outcome is RotationOutcome.FAILED
    assert world.labelled(staged_label(rotation_id)) is None


def test_a_rotate_secret_whose_start_cannot_be_told_is_left_for_the_sweeper(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = rotations(world)
    client = world.sm  # the service's Secrets Manager client
    describe = client.describe_secret
    lost = rotate_secret_answer_lost(world, started=False)

    def rotate_then_describe_fails(**kwargs: Any) -> Any:
        monkeypatch.setattr(client, "describe_secret", failing(describe, lambda _: True, *SERVER_ERROR))
        return lost(**kwargs)

    monkeypatch.setattr(client, "rotate_secret", rotate_then_describe_fails)
    with pytest.raises(RetryableError, match="the rotation may have started") as failed:
        service.start("hub", RotationRequest(token=SecretStr(NEW_TOKEN)), actor=ALICE)
    rotation_id = failed.value.message.split()[1].rstrip(":")
    monkeypatch.undo()
    # THEN nothing is undone or recorded: the rotation is in progress as far as anyone can tell
    assert world.record(rotation_id).outcome is None
    assert world.labelled(staged_label(rotation_id)) is not None
    # AND the sweeper ends it after the bound (it never started)
    sweep(world, after=LATER)
    assert world.labelled(staged_label(rotation_id)) is None
    assert world.record(rotation_id).outcome is RotationOutcome.FAILED


# -- #5: the 202 of a started rotation whose record cannot be read back -----------------------------------------


def test_a_started_rotation_is_answered_even_when_its_record_cannot_be_read_back(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = rotations(world)
    monkeypatch.setattr(world.sm, "rotate_secret", lambda **kw: pending_version(world, kw["ClientRequestToken"]))
    client = world.records.client
    monkeypatch.setattr(client, "get_item", failing(client.get_item, lambda kw: "ROTATION#" in str(kw), *SERVER_ERROR))
    before = now()
    record = service.start("hub", RotationRequest(token=SecretStr(NEW_TOKEN)), actor=ALICE)
    assert (record.credential, record.requested_by, record.outcome) == ("hub", ALICE, None)
    assert record.started_at >= before
    assert world.labelled("AWSPENDING") == record.rotation_id


# -- #4: a finishSecret retry after a roll-back ---------------------------------------------------------------


def test_a_finish_retry_after_a_roll_back_never_re_promotes_the_refused_token(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ECR refusing the new token after promotion, and both removals of AWSPENDING failing
    old = world.labelled("AWSCURRENT")
    token = world.begin(value_of(NEW_TOKEN))
    for step in STEPS[:3]:
        world.step(step, token)
    world.validation.accepted = {OLD_TOKEN}
    removing = lambda kw: kw.get("VersionStage") == "AWSPENDING"  # noqa: E731
    update = world.sm.update_secret_version_stage
    monkeypatch.setattr(
        world.sm, "update_secret_version_stage", failing(update, removing, "AccessDeniedException", 400)
    )
    with pytest.raises(RotationFailed, match="rolled back"):
        world.step(RotationStep.FINISH, token)
    monkeypatch.undo()
    assert (world.labelled("AWSCURRENT"), world.labelled("AWSPENDING")) == (old, token)
    # WHEN Secrets Manager retries finishSecret, ECR now validating anything THEN only AWSPENDING comes off
    world.validation.accepted = {OLD_TOKEN, NEW_TOKEN}
    with pytest.raises(RotationFailed, match="only AWSPENDING is taken off"):
        world.step(RotationStep.FINISH, token)
    assert (world.labelled("AWSCURRENT"), world.current_token()) == (old, OLD_TOKEN)
    assert world.labelled("AWSPENDING") is None
    assert world.record(token).outcome is RotationOutcome.ROLLED_BACK


# -- the sweeper's own failures: each is one of the run's errors, nothing else changes -------------------------


def test_a_sweep_that_cannot_take_the_label_off_or_read_the_record_says_so(
    world: RotationWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = retryable_test_failure(world)
    versions = world.service.secrets.describe(world.secret)
    update = world.sm.update_secret_version_stage
    monkeypatch.setattr(
        world.sm, "update_secret_version_stage", failing(update, lambda _: True, "ThrottlingException", 400)
    )
    swept = sweeper(world, after=LATER).sweep("hub", versions)
    assert swept.changed == []
    assert swept.errors == [
        f"credential hub: AWSPENDING not taken off version {token}: Secrets Manager UpdateSecretVersionStage "
        "(remove AWSPENDING) failed with ThrottlingException; try again"
    ]
    assert world.record(token).outcome is None  # not recorded abandoned while AWSPENDING is still there
    monkeypatch.undo()
    client = world.records.client
    monkeypatch.setattr(client, "get_item", failing(client.get_item, lambda _: True, *SERVER_ERROR))
    swept = sweeper(world, after=LATER).sweep("hub", versions)
    assert swept.errors == [
        f"credential hub: rotation {token} not checked: DynamoDB GetItem (rotation record) failed with "
        "InternalServiceError; try again"
    ]
    monkeypatch.undo()
    assert world.labelled("AWSPENDING") == token
