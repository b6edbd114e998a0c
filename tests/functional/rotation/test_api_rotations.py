"""``POST/GET /v1/credentials/{name}/rotations``: the API stages the token under a private label, records the
rotation, starts ``RotateSecret`` (the embedded Secrets Manager's, ``devstack.aws.secrets_rotation``); the rotation
function it invokes (:class:`~tests.functional.rotation.api_support.Rotator`) copies the token into ``AWSPENDING``,
tests it, promotes it. Failures of RotateSecret itself are injected on the API's client. Every failure of the start
leaves ``AWSCURRENT`` and the secret's labels as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devstack.aws import secrets_rotation
from ecrcache.models.rotation import STAGED_LABEL_PREFIX, RotationStep
from tests.conftest import FakeLambdaContext
from tests.functional.api.assertions import assert_error
from tests.functional.api.aws_support import scan
from tests.functional.api.client import ALICE, ApiClient
from tests.functional.rotation.api_support import Rotator, api_rotations
from tests.functional.rotation.support import (
    BAD_TOKEN,
    CANARY,
    NEW_TOKEN,
    OLD_TOKEN,
    USERNAME,
    RotationWorld,
    failing,
)
from tests.leaks import PowertoolsLogTap, leaks

pytestmark = pytest.mark.functional

PATH = "/v1/credentials/hub/rotations"


@pytest.fixture
def api(world: RotationWorld, lambda_context: FakeLambdaContext) -> ApiClient:
    return ApiClient(lambda_context)


def post(api: ApiClient, body: Any, name: str = "hub") -> Any:
    return api.call("POST", f"/v1/credentials/{name}/rotations", body=body)


def private_labels(world: RotationWorld) -> list[str]:
    return [label for labels in world.stages().values() for label in labels if label.startswith(STAGED_LABEL_PREFIX)]


def test_a_staged_token_is_tested_promoted_and_validated(
    world: RotationWorld, rotator: Rotator, api: ApiClient
) -> None:
    # GIVEN credential hub with the old token current
    # WHEN a new token is posted
    answer = post(api, {"token": NEW_TOKEN})
    # THEN the rotation is accepted, in progress, recorded with who asked, and findable at its Location
    assert answer.status == 202, answer.text
    body = answer.json
    rotation = body["rotation_id"]
    assert answer.headers["Location"] == f"{PATH}/{rotation}"
    assert body["state"] == "in_progress"
    assert body["requested_by"] == ALICE
    assert body["credential"] == "hub"
    # AND RotateSecret was called with the rotation id, the rotation function, and no rules (no schedule)
    (call,) = rotator.calls
    assert call["ClientRequestToken"] == rotation
    assert call["RotationLambdaARN"].endswith(":function:ecrcache-rotator")
    assert "RotationRules" not in call
    # AND before the steps run the token waits under its private label, not AWSPENDING on a value; the old is current
    assert private_labels(world) == [f"{STAGED_LABEL_PREFIX}{rotation}"]
    assert world.current_token() == OLD_TOKEN
    # WHEN Secrets Manager invokes the steps
    rotator.run()
    # THEN the new token is current, validated, the private label gone, nothing pending
    assert not rotator.failures, rotator.failures
    assert world.current_token() == NEW_TOKEN
    assert private_labels(world) == []
    assert world.labelled("AWSPENDING") in (None, world.labelled("AWSCURRENT"))
    done = api.get(answer.headers["Location"]).json
    assert done["state"] == "promoted"
    assert set(done["steps"]) == {"createSecret", "setSecret", "testSecret", "finishSecret"}
    assert done["steps"]["createSecret"]["message"].startswith("the token staged through the API is copied")
    assert done["promoted_at"] is not None


def test_a_new_username_goes_with_the_token(world: RotationWorld, rotator: Rotator, api: ApiClient) -> None:
    assert post(api, {"token": NEW_TOKEN, "username": "ci-bot-2"}).status == 202
    rotator.run()
    value = json.loads(world.sm.get_secret_value(SecretId=world.secret)["SecretString"])
    assert value == {"username": "ci-bot-2", "accessToken": NEW_TOKEN}


def test_a_token_the_upstream_refuses_leaves_the_old_one_current(
    world: RotationWorld, rotator: Rotator, api: ApiClient
) -> None:
    answer = post(api, {"token": BAD_TOKEN})
    rotator.run()
    found = api.get(answer.headers["Location"]).json
    assert found["state"] == "refused"
    assert found["steps"]["testSecret"]["status"] == "failed"
    assert "did not accept the new token" in found["message"]
    assert world.current_token() == OLD_TOKEN
    assert world.labelled("AWSPENDING") is None
    # AND the next rotation can start
    assert post(api, {"token": NEW_TOKEN}).status == 202


def test_rotations_are_listed_newest_first(world: RotationWorld, rotator: Rotator, api: ApiClient) -> None:
    first = post(api, {"token": BAD_TOKEN}).json["rotation_id"]
    rotator.run()
    second = post(api, {"token": NEW_TOKEN}).json["rotation_id"]
    rotator.run()
    items = api.get(PATH).json["items"]
    assert [(i["rotation_id"], i["state"]) for i in items] == [(second, "promoted"), (first, "refused")]
    assert [i["rotation_id"] for i in api.get(PATH, query={"limit": "1"}).json["items"]] == [second]


def test_a_second_rotation_while_one_is_in_progress_is_409(
    world: RotationWorld, rotator: Rotator, api: ApiClient
) -> None:
    # GIVEN a rotation started whose steps have not run (AWSPENDING on its empty version)
    post(api, {"token": NEW_TOKEN})
    before = world.stages()
    # WHEN another is posted
    answer = post(api, {"token": BAD_TOKEN})
    # THEN 409 naming why; nothing was staged or called
    assert_error(answer, 409, "Conflict")
    assert "in progress" in answer.json["message"]
    assert world.stages() == before
    assert len(rotator.calls) == 1


def test_secrets_manager_refusing_as_in_progress_is_409_and_the_staged_token_is_discarded(
    world: RotationWorld, rotator: Rotator, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Secrets Manager refuses RotateSecret (a rotation it still takes to be in progress)
    client = api_rotations().secrets.client
    monkeypatch.setattr(
        client, "rotate_secret", failing(client.rotate_secret, lambda _: True, "InvalidRequestException", 400)
    )
    answer = post(api, {"token": NEW_TOKEN})
    assert_error(answer, 409, "Conflict")
    assert "previous rotation" in answer.json["message"]
    assert "the staged token was discarded" in answer.json["message"]
    # AND the rotation is recorded failed, the private label is gone, AWSCURRENT untouched
    rotation = answer.json["message"].split()[1]
    record = world.record(rotation)
    assert record.outcome is not None and record.outcome.value == "failed"
    assert record.requested_by == ALICE
    assert private_labels(world) == []
    assert world.current_token() == OLD_TOKEN


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [("ThrottlingException", 400, 503), ("InternalServiceError", 500, 503), ("AccessDeniedException", 400, 500)],
)
def test_rotate_secret_failing_is_recorded_and_discards_the_staged_token(
    *,
    world: RotationWorld,
    rotator: Rotator,
    api: ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    status: int,
    expected: int,
) -> None:
    client = api_rotations().secrets.client
    monkeypatch.setattr(client, "rotate_secret", failing(client.rotate_secret, lambda _: True, code, status))
    answer = post(api, {"token": NEW_TOKEN})
    assert answer.status == expected, answer.text
    assert code in answer.json["message"]
    items = api.get(PATH).json["items"]
    assert [i["state"] for i in items] == ["failed"]
    assert code in items[0]["message"]
    assert private_labels(world) == []
    assert world.current_token() == OLD_TOKEN


def test_put_secret_value_failing_changes_nothing(
    world: RotationWorld, rotator: Rotator, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = api_rotations().secrets.client
    monkeypatch.setattr(
        client, "put_secret_value", failing(client.put_secret_value, lambda _: True, "ThrottlingException", 400)
    )
    before = world.stages()
    answer = post(api, {"token": NEW_TOKEN})
    assert answer.status == 503
    assert "could not be staged" in answer.json["message"]
    assert world.stages() == before
    assert rotator.calls == []
    assert [i["state"] for i in api.get(PATH).json["items"]] == ["failed"]


def test_a_record_that_cannot_be_written_starts_nothing(
    world: RotationWorld, rotator: Rotator, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = api_rotations().records.client
    monkeypatch.setattr(
        records, "update_item", failing(records.update_item, lambda _: True, "AccessDeniedException", 400)
    )
    before = world.stages()
    answer = post(api, {"token": NEW_TOKEN})
    assert_error(answer, 500, "Terminal")
    assert "rotation record" in answer.json["message"]
    assert world.stages() == before
    assert rotator.calls == []


def test_unknown_credential_or_rotation_is_404(world: RotationWorld, rotator: Rotator, api: ApiClient) -> None:
    assert_error(post(api, {"token": NEW_TOKEN}, name="nope"), 404, "NotFound")
    assert_error(api.get("/v1/credentials/nope/rotations"), 404, "NotFound")
    answer = api.get(f"{PATH}/0d9c3f0e-0000-4000-8000-000000000000")
    assert_error(answer, 404, "NotFound")
    assert "no rotation" in answer.json["message"]


def test_a_credential_without_a_secret_is_409(world: RotationWorld, rotator: Rotator, api: ApiClient) -> None:
    world.sm.delete_secret(SecretId=world.secret, ForceDeleteWithoutRecovery=True)
    answer = post(api, {"token": NEW_TOKEN})
    assert_error(answer, 409, "Conflict")
    assert "has no secret" in answer.json["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "token"),
        ({"token": ""}, "token"),
        ({"token": f"{NEW_TOKEN}\n"}, "token"),
        ({"token": NEW_TOKEN, "username": "a:b"}, "username"),
        ({"token": NEW_TOKEN, "extra": 1}, "extra"),
    ],
)
def test_a_bad_body_is_422_naming_the_field_and_never_echoing_the_token(
    world: RotationWorld, rotator: Rotator, api: ApiClient, body: dict[str, Any], field: str
) -> None:
    answer = post(api, body)
    assert_error(answer, 422, "ValidationFailed")
    assert any(field in d["field"] for d in answer.json["details"]), answer.json
    assert CANARY not in answer.text
    assert rotator.calls == []


def promoted(api: ApiClient, rotator: Rotator) -> None:
    post(api, {"token": NEW_TOKEN, "username": USERNAME})
    rotator.run()


def refused(api: ApiClient, rotator: Rotator) -> None:
    post(api, {"token": BAD_TOKEN})
    rotator.run()


def in_progress(api: ApiClient, rotator: Rotator) -> None:
    post(api, {"token": NEW_TOKEN})
    post(api, {"token": BAD_TOKEN})


def bad_body(api: ApiClient, rotator: Rotator) -> None:
    post(api, {"token": f"{BAD_TOKEN} x"})
    post(api, [BAD_TOKEN])


SCENARIOS: dict[str, Callable[[ApiClient, Rotator], None]] = {
    "promoted": promoted,
    "refused": refused,
    "in progress": in_progress,
    "bad body": bad_body,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_staged_token_is_never_in_a_log_item_response_or_exception(
    *,
    world: RotationWorld,
    rotator: Rotator,
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    caplog.set_level("DEBUG", logger="ecrcache-test")
    responses: list[str] = []
    original = api.send

    def send(event: dict[str, Any]) -> Any:
        answer = original(event)
        responses.append(json.dumps(answer.raw))
        return answer

    monkeypatch.setattr(api, "send", send)
    with PowertoolsLogTap() as tap:
        SCENARIOS[scenario](api, rotator)
        api.get(PATH)
    captured = capsys.readouterr()
    assert responses
    found = leaks(
        CANARY,
        lines=[
            *tap.lines.getvalue().splitlines(),
            *captured.out.splitlines(),
            *captured.err.splitlines(),
            *responses,
            *(f"{s.step}: {s.message}" for r in secrets_rotation.runs() for s in r.steps),
        ],
        records=caplog.records,
        exceptions=rotator.failures,
        items=scan(state_table),
    )
    assert not found, found


def test_create_secret_retried_after_the_copy_only_finishes_the_clean_up(
    world: RotationWorld, rotator: Rotator, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rotation whose createSecret copied the token but could not take the private label off
    rotation = post(api, {"token": NEW_TOKEN}).json["rotation_id"]
    sm = world.sm
    monkeypatch.setattr(
        sm,
        "update_secret_version_stage",
        failing(
            sm.update_secret_version_stage,
            lambda kw: kw["VersionStage"].startswith(STAGED_LABEL_PREFIX),
            "ThrottlingException",
            400,
        ),
    )
    with pytest.raises(Exception, match="staged token's label"):
        world.step(RotationStep.CREATE, rotation)
    pending = world.sm.get_secret_value(SecretId=world.secret, VersionId=rotation, VersionStage="AWSPENDING")
    assert CANARY in pending["SecretString"]
    assert private_labels(world) == [f"{STAGED_LABEL_PREFIX}{rotation}"]
    # WHEN Secrets Manager retries the step (the label can be taken off now)
    monkeypatch.undo()
    answer = world.step(RotationStep.CREATE, rotation)
    # THEN the pending version is left as it is and the label is gone; the rotation goes on to promotion
    assert answer.startswith("a new value is staged as AWSPENDING")
    assert private_labels(world) == []
    for step in (RotationStep.SET, RotationStep.TEST, RotationStep.FINISH):
        world.step(step, rotation)
    assert world.current_token() == NEW_TOKEN


def test_secrets_manager_testing_the_configuration_changes_and_records_nothing(
    world: RotationWorld, rotator: Rotator
) -> None:
    # GIVEN RotateSecret(RotateImmediately=false): "Secrets Manager tests the rotation configuration by running the
    # testSecret step ... This test creates an AWSPENDING version of the secret and then removes it."
    before = world.stages()
    token = world.sm.rotate_secret(
        SecretId=world.secret, RotationLambdaARN=rotator.function.function_arn, RotateImmediately=False
    )["VersionId"]
    # WHEN Secrets Manager invokes the rotation function's testSecret for it
    rotator.run()
    # THEN only testSecret ran, and it answered; nothing was recorded, nothing moved, the test version is gone
    assert not rotator.failures, rotator.failures
    (run,) = secrets_rotation.runs(world.secret_arn)
    assert [(s.step, s.ok) for s in run.steps] == [("testSecret", True)]
    assert "test of the rotation configuration" in run.steps[0].message
    assert run.state == "succeeded"
    assert world.records.get("hub", token) is None
    assert world.stages() == before
    assert world.current_token() == OLD_TOKEN


def test_create_secret_failing_for_good_takes_the_staged_token_and_awspending_off(
    world: RotationWorld, rotator: Rotator, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the rotation function may not put the pending value (access denied)
    rotation = post(api, {"token": NEW_TOKEN}).json["rotation_id"]
    sm = world.sm
    monkeypatch.setattr(
        sm, "put_secret_value", failing(sm.put_secret_value, lambda _: True, "AccessDeniedException", 400)
    )
    # WHEN Secrets Manager invokes the steps
    rotator.run()
    # THEN the rotation failed at createSecret, nothing is left labelled, the old token is current
    found = api.get(f"{PATH}/{rotation}").json
    assert found["state"] == "failed"
    assert found["steps"]["createSecret"]["status"] == "failed"
    assert "AccessDeniedException" in found["message"]
    assert private_labels(world) == []
    assert world.labelled("AWSPENDING") is None
    assert world.current_token() == OLD_TOKEN
