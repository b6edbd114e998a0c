"""Secrets Manager's ``RotateSecret`` in the embedded AWS (``devstack.aws.secrets_rotation``), as AWS documents it.

A rotation function here is a Python callable registered for a Lambda ARN (``devstack.aws.ports``); over HTTP
(the local stack) a function host's ``Invoke`` URL. What AWS documents, and what is only reported, is in the
module's docstring: the steps run asynchronously, in order, with the secret's ARN, after an empty
``AWSPENDING`` version is made; Secrets Manager never moves ``AWSCURRENT``; a rotation in progress refuses the
next one; ``RotateImmediately=false`` runs ``testSecret`` alone.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.aws import ports, secrets_rotation
from tests.conftest import ACCOUNT_ID, REGION
from tests.functional.embedded_aws.conftest import EmbeddedAws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import RotationRulesTypeTypeDef

pytestmark = pytest.mark.functional

NAME = "ecr-pullthroughcache/ghcr"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:ecrcache-rotator"
OLD = json.dumps({"username": "ecrcache-demo", "accessToken": "old-token"})
NEW = json.dumps({"username": "ecrcache-demo", "accessToken": "new-token"})


class Recorder:
    """A rotation function that records its events; ``fail_at`` raises at that step, ``hold_at`` waits there
    until :meth:`release`; ``act`` does what the rotation template does (stage, then promote)."""

    def __init__(
        self, *, fail_at: str | None = None, hold_at: str | None = None, act: SecretsManagerClient | None = None
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_at = fail_at
        self.hold_at = hold_at
        self.act = act
        self.held = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    @property
    def steps(self) -> list[str]:
        return [str(e["Step"]) for e in self.events]

    def __call__(self, event: Mapping[str, Any]) -> Any:
        self.events.append(dict(event))
        step = str(event["Step"])
        if step == self.hold_at:
            self.held.set()
            assert self._release.wait(30), "the test never released the function"
        if step == self.fail_at:
            raise RuntimeError(f"{step} failed on purpose")
        if self.act is not None:
            self._template_step(step, str(event["SecretId"]), str(event["ClientRequestToken"]))
        return {"step": step, "message": f"{step} done"}

    def _template_step(self, step: str, arn: str, token: str) -> None:
        sm = self.act
        assert sm is not None
        if step == "createSecret":
            sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=NEW, VersionStages=["AWSPENDING"])
        elif step == "finishSecret":
            current = _version_with(sm, arn, "AWSCURRENT")
            sm.update_secret_version_stage(
                SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
            )
            sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)


def _version_with(sm: SecretsManagerClient, secret: str, label: str) -> str:
    stages = sm.describe_secret(SecretId=secret)["VersionIdsToStages"]
    return next(version for version, labels in stages.items() if label in labels)


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return str(exc.value.response["Error"]["Code"]), str(exc.value.response["Error"]["Message"])


def _token() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def secret(embedded_aws: EmbeddedAws) -> str:
    return embedded_aws.secret(NAME, OLD)


@pytest.fixture
def unchecked() -> SecretsManagerClient:
    """A client that sends what it is given: the server's own validation answers."""
    return boto3.client("secretsmanager", region_name=REGION, config=Config(parameter_validation=False))


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"ClientRequestToken": "too-short"}, "ClientRequestToken must be 32-64"),
        ({"ClientRequestToken": "x" * 65}, "ClientRequestToken must be 32-64"),
        ({"RotationRules": {"AutomaticallyAfterDays": 0}}, "AutomaticallyAfterDays must be an integer within 1-1000"),
        ({"RotationRules": {"AutomaticallyAfterDays": 1001}}, "AutomaticallyAfterDays must be an integer within"),
        (
            {"RotationRules": {"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(7 days)"}},
            "AutomaticallyAfterDays or ScheduleExpression, but not both",
        ),
        ({"RotationRules": {"ScheduleExpression": "rate(2 hours)"}}, "at most every four hours"),
        ({"RotationRules": {"ScheduleExpression": "every day"}}, "ScheduleExpression must be rate("),
        ({"RotationRules": {"ScheduleExpression": "cron(0 4 * * ?)"}}, "ScheduleExpression must be rate("),
        ({"RotationRules": {"ScheduleExpression": "rate(1 day);"}}, "ScheduleExpression must be 1-256 characters"),
        ({"RotationRules": {"ScheduleExpression": "rate(1 day)", "Duration": "3"}}, "Duration must match [0-9]+h"),
        ({"RotationRules": {"ScheduleExpression": "rate(6 hours)", "Duration": "7h"}}, "next rotation window"),
        ({"RotationRules": {"AutomaticallyAfterDays": 1, "Duration": "25h"}}, "next UTC day"),
        ({"RotationRules": {"Duration": "2h"}}, "Duration needs AutomaticallyAfterDays or ScheduleExpression"),
        ({"RotationLambdaARN": "a" * 2049}, "RotationLambdaARN must be a string of at most 2048"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field_and_nothing_starts(
    embedded_aws: EmbeddedAws, unchecked: SecretsManagerClient, secret: str, arguments: dict[str, Any], field: str
) -> None:
    function = Recorder()
    ports.register_lambda(FUNCTION, function)
    with pytest.raises(ClientError) as refused:
        unchecked.rotate_secret(SecretId=secret, **{"RotationLambdaARN": FUNCTION, **arguments})
    code, message = _error(refused)
    assert (code, field in message) == ("InvalidParameterException", True), message
    described = embedded_aws.secretsmanager.describe_secret(SecretId=secret)
    assert "RotationEnabled" not in described
    assert list(described["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    assert secrets_rotation.runs() == []


@pytest.mark.parametrize(
    ("rules", "described"),
    [
        ({"AutomaticallyAfterDays": 30}, {"AutomaticallyAfterDays": 30}),
        ({"AutomaticallyAfterDays": 1, "Duration": "24h"}, {"AutomaticallyAfterDays": 1, "Duration": "24h"}),
        ({"ScheduleExpression": "rate(12 hours)", "Duration": "2h"},
         {"ScheduleExpression": "rate(12 hours)", "Duration": "2h"}),
        ({"ScheduleExpression": "rate(10 days)"},
         {"ScheduleExpression": "rate(10 days)", "AutomaticallyAfterDays": 10}),
        ({"ScheduleExpression": "cron(0 16 1,15 * ? *)"}, {"ScheduleExpression": "cron(0 16 1,15 * ? *)"}),
    ],
)  # fmt: skip
def test_good_rules_are_kept_and_described(
    embedded_aws: EmbeddedAws, secret: str, rules: RotationRulesTypeTypeDef, described: dict[str, Any]
) -> None:
    ports.register_lambda(FUNCTION, Recorder())
    embedded_aws.secretsmanager.rotate_secret(
        SecretId=secret, RotationLambdaARN=FUNCTION, RotationRules=rules, RotateImmediately=False
    )
    assert secrets_rotation.wait_idle(10)
    answer = embedded_aws.secretsmanager.describe_secret(SecretId=secret)
    assert answer["RotationRules"] == described
    assert (answer["RotationEnabled"], answer["RotationLambdaARN"]) == (True, FUNCTION)


def test_without_a_function_now_or_before_rotation_is_refused(embedded_aws: EmbeddedAws, secret: str) -> None:
    with pytest.raises(ClientError) as refused:
        embedded_aws.secretsmanager.rotate_secret(SecretId=secret)
    assert _error(refused) == ("InvalidRequestException", secrets_rotation.NO_FUNCTION_MESSAGE)


def test_a_function_secrets_manager_cannot_invoke_is_refused_and_nothing_changes(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    # GIVEN no function registered for the ARN (Lambda would not let Secrets Manager invoke it)
    with pytest.raises(ClientError) as refused:
        embedded_aws.secretsmanager.rotate_secret(
            SecretId=secret, RotationLambdaARN=FUNCTION, RotationRules={"AutomaticallyAfterDays": 7}
        )
    # THEN AccessDeniedException, in AWS's words, and the secret is as it was
    assert _error(refused) == ("AccessDeniedException", secrets_rotation.CANNOT_INVOKE_MESSAGE)
    described = embedded_aws.secretsmanager.describe_secret(SecretId=secret)
    assert "RotationEnabled" not in described
    assert list(described["VersionIdsToStages"].values()) == [["AWSCURRENT"]]


def test_an_unknown_secret_is_not_found(embedded_aws: EmbeddedAws) -> None:
    ports.register_lambda(FUNCTION, Recorder())
    with pytest.raises(ClientError) as refused:
        embedded_aws.secretsmanager.rotate_secret(SecretId="ecr-pullthroughcache/none", RotationLambdaARN=FUNCTION)
    assert _error(refused)[0] == "ResourceNotFoundException"


# -- the run ----------------------------------------------------------------------------------------


def test_rotate_answers_at_once_with_an_empty_pending_version_then_runs_the_steps_in_order_with_the_arn(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    function = Recorder(hold_at="createSecret")
    ports.register_lambda(FUNCTION, function)
    token = _token()

    # WHEN a rotation starts (the function holds at createSecret)
    rules: RotationRulesTypeTypeDef = {"AutomaticallyAfterDays": 30}
    answer = sm.rotate_secret(SecretId=NAME, ClientRequestToken=token, RotationLambdaARN=FUNCTION, RotationRules=rules)
    assert function.held.wait(10)

    # THEN RotateSecret answered before the steps ran, naming the new version
    assert (answer["ARN"], answer["Name"], answer["VersionId"]) == (secret, NAME, token)
    # AND the new version is AWSPENDING without a value; the old one is still AWSCURRENT
    assert sm.describe_secret(SecretId=secret)["VersionIdsToStages"] == {current: ["AWSCURRENT"], token: ["AWSPENDING"]}
    with pytest.raises(ClientError) as empty:
        sm.get_secret_value(SecretId=secret, VersionId=token, VersionStage="AWSPENDING")
    assert _error(empty)[0] == "ResourceNotFoundException"

    function.release()
    assert secrets_rotation.wait_idle(10)
    # AND every step ran once, in order, with the secret's ARN (not the name sent) and the token
    assert function.steps == list(secrets_rotation.STEPS)
    assert {(e["SecretId"], e["ClientRequestToken"]) for e in function.events} == {(secret, token)}
    assert all(36 <= len(e["RotationToken"]) <= 256 for e in function.events)
    # AND Secrets Manager moved no label (this function promotes nothing): AWSCURRENT is where it was
    described = sm.describe_secret(SecretId=secret)
    assert described["VersionIdsToStages"] == {current: ["AWSCURRENT"], token: ["AWSPENDING"]}
    assert sm.get_secret_value(SecretId=secret)["SecretString"] == OLD
    # AND the rotation configuration and dates are described
    assert (described["RotationEnabled"], described["RotationLambdaARN"]) == (True, FUNCTION)
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 30}
    rotated = described["LastRotatedDate"]
    assert described["NextRotationDate"] - rotated == timedelta(days=30)
    assert [r.state for r in secrets_rotation.runs(secret)] == ["succeeded"]


def test_a_function_that_stages_and_promotes_rotates_the_secret(embedded_aws: EmbeddedAws, secret: str) -> None:
    sm = embedded_aws.secretsmanager
    old = _version_with(sm, secret, "AWSCURRENT")
    ports.register_lambda(FUNCTION, Recorder(act=sm))
    token = sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)["VersionId"]
    assert secrets_rotation.wait_idle(10)
    assert sm.get_secret_value(SecretId=secret)["SecretString"] == NEW
    assert sm.describe_secret(SecretId=secret)["VersionIdsToStages"] == {old: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    # AND with AWSPENDING gone, the next rotation may start
    assert sm.rotate_secret(SecretId=secret)["VersionId"] != token
    assert secrets_rotation.wait_idle(10)


@pytest.mark.parametrize("failing", secrets_rotation.STEPS)
def test_a_failed_step_ends_the_run_leaving_the_pending_version_and_blocks_the_next_rotation(
    embedded_aws: EmbeddedAws, secret: str, failing: str
) -> None:
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    function = Recorder(fail_at=failing)
    ports.register_lambda(FUNCTION, function)
    token = sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)["VersionId"]
    assert secrets_rotation.wait_idle(10)

    # THEN the steps up to the failed one ran, no further
    steps = list(secrets_rotation.STEPS)
    assert function.steps == steps[: steps.index(failing) + 1]
    (run,) = secrets_rotation.runs(secret)
    assert (run.state, run.steps[-1].ok, run.steps[-1].message) == ("failed", False, f"{failing} failed on purpose")
    # AND AWSCURRENT is untouched, the empty pending version stays (the function did not clean it), no rotation date
    described = sm.describe_secret(SecretId=secret)
    assert described["VersionIdsToStages"] == {current: ["AWSCURRENT"], token: ["AWSPENDING"]}
    assert "LastRotatedDate" not in described or described["LastRotatedDate"] is None
    # AND the next RotateSecret is refused: a previous rotation is still in progress
    with pytest.raises(ClientError) as refused:
        sm.rotate_secret(SecretId=secret)
    assert _error(refused) == ("InvalidRequestException", secrets_rotation.IN_PROGRESS_MESSAGE)
    assert len(function.events) == len(run.steps)


def test_while_a_rotation_runs_another_is_refused_and_the_same_token_is_idempotent(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    sm = embedded_aws.secretsmanager
    function = Recorder(hold_at="testSecret")
    ports.register_lambda(FUNCTION, function)
    token = _token()
    sm.rotate_secret(SecretId=secret, ClientRequestToken=token, RotationLambdaARN=FUNCTION)
    assert function.held.wait(10)
    try:
        # WHEN a second rotation (another token) starts while AWSPENDING is on the running one's version
        with pytest.raises(ClientError) as refused:
            sm.rotate_secret(SecretId=secret, ClientRequestToken=_token())
        # THEN refused
        assert _error(refused) == ("InvalidRequestException", secrets_rotation.IN_PROGRESS_MESSAGE)
        # AND the same request again (a retry of the call) answers the same and starts nothing
        again = sm.rotate_secret(SecretId=secret, ClientRequestToken=token, RotationLambdaARN=FUNCTION)
        assert again["VersionId"] == token
    finally:
        function.release()
    assert secrets_rotation.wait_idle(10)
    assert function.steps == list(secrets_rotation.STEPS)
    assert len(secrets_rotation.runs(secret)) == 1


def test_pending_on_the_current_version_does_not_block_and_moves_to_the_new_one(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    # GIVEN AWSPENDING on the AWSCURRENT version (a finished rotation may end so)
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    sm.update_secret_version_stage(SecretId=secret, VersionStage="AWSPENDING", MoveToVersionId=current)
    ports.register_lambda(FUNCTION, Recorder())
    token = sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)["VersionId"]
    assert secrets_rotation.wait_idle(10)
    assert sm.describe_secret(SecretId=secret)["VersionIdsToStages"] == {current: ["AWSCURRENT"], token: ["AWSPENDING"]}


def test_rotate_immediately_false_runs_only_test_secret_and_removes_its_version(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    function = Recorder()
    ports.register_lambda(FUNCTION, function)
    rules: RotationRulesTypeTypeDef = {"AutomaticallyAfterDays": 7}
    token = sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION, RotationRules=rules, RotateImmediately=False)[
        "VersionId"
    ]
    assert secrets_rotation.wait_idle(10)
    assert function.steps == ["testSecret"]
    assert function.events[0]["ClientRequestToken"] == token
    described = sm.describe_secret(SecretId=secret)
    # "This test creates an AWSPENDING version of the secret and then removes it."
    assert described["VersionIdsToStages"] == {current: ["AWSCURRENT"]}
    assert described["RotationEnabled"] is True
    assert described.get("LastRotatedDate") is None
    # AND nothing is in progress: a rotation may start
    sm.rotate_secret(SecretId=secret)
    assert secrets_rotation.wait_idle(10)


def test_retries_run_every_step_again_when_set(embedded_aws: EmbeddedAws, secret: str) -> None:
    function = Recorder(fail_at="testSecret")
    ports.register_lambda(FUNCTION, function)
    secrets_rotation.settings.retries = 1
    embedded_aws.secretsmanager.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)
    assert secrets_rotation.wait_idle(10)
    assert function.steps == ["createSecret", "setSecret", "testSecret"] * 2
    (run,) = secrets_rotation.runs(secret)
    assert (run.state, run.attempts) == ("failed", 2)


# -- CancelRotateSecret ----------------------------------------------------------------------------


def test_cancel_turns_rotation_off_keeps_the_configuration_and_answers_no_version_when_none_runs(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    # GIVEN a secret rotated every 30 days (configured without a rotation now)
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    ports.register_lambda(FUNCTION, Recorder())
    rules: RotationRulesTypeTypeDef = {"ScheduleExpression": "rate(30 days)"}
    sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION, RotationRules=rules, RotateImmediately=False)
    assert secrets_rotation.wait_idle(10)
    assert "NextRotationDate" in sm.describe_secret(SecretId=secret)
    # WHEN rotation is cancelled
    answer = sm.cancel_rotate_secret(SecretId=NAME)
    # THEN the answer names the secret, and no version: no rotation was in progress (moto names AWSCURRENT's)
    assert (answer["ARN"], answer["Name"]) == (secret, NAME)
    assert "VersionId" not in answer
    # AND rotation is off, nothing is scheduled; the function and rules stay, the labels are untouched
    described = sm.describe_secret(SecretId=secret)
    assert described["RotationEnabled"] is False
    assert "NextRotationDate" not in described
    assert described["RotationLambdaARN"] == FUNCTION
    assert described["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    assert described["VersionIdsToStages"] == {current: ["AWSCURRENT"]}
    # AND RotateSecret turns it on again ("To turn on automatic rotation again, call RotateSecret")
    sm.rotate_secret(SecretId=secret, RotateImmediately=False)
    assert secrets_rotation.wait_idle(10)
    assert sm.describe_secret(SecretId=secret)["RotationEnabled"] is True


def test_cancel_during_a_rotation_invokes_no_further_step_and_leaves_the_labels(
    embedded_aws: EmbeddedAws, secret: str
) -> None:
    # GIVEN a rotation held in its setSecret step
    sm = embedded_aws.secretsmanager
    current = _version_with(sm, secret, "AWSCURRENT")
    function = Recorder(hold_at="setSecret", act=sm)
    ports.register_lambda(FUNCTION, function)
    token = sm.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)["VersionId"]
    assert function.held.wait(10)
    # WHEN it is cancelled
    try:
        answer = sm.cancel_rotate_secret(SecretId=secret)
    finally:
        function.release()
    assert secrets_rotation.wait_idle(10)
    # THEN the answer names the partially created version
    assert answer["VersionId"] == token
    # AND the step under way finished, no later one was invoked, the run is cancelled
    assert function.steps == ["createSecret", "setSecret"]
    assert [r.state for r in secrets_rotation.runs(secret)] == ["cancelled"]
    # AND the labels stay as the rotation left them ("You might need to remove the staging label AWSPENDING")
    described = sm.describe_secret(SecretId=secret)
    assert described["VersionIdsToStages"] == {current: ["AWSCURRENT"], token: ["AWSPENDING"]}
    assert described["RotationEnabled"] is False
    with pytest.raises(ClientError) as refused:
        sm.rotate_secret(SecretId=secret)
    assert _error(refused) == ("InvalidRequestException", secrets_rotation.IN_PROGRESS_MESSAGE)


def test_cancel_refuses_what_moto_refuses(embedded_aws: EmbeddedAws, secret: str) -> None:
    sm = embedded_aws.secretsmanager
    with pytest.raises(ClientError) as missing:
        sm.cancel_rotate_secret(SecretId="ecr-pullthroughcache/none")
    assert _error(missing)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as never:
        sm.cancel_rotate_secret(SecretId=secret)
    assert _error(never)[0] == "InvalidRequestException"


# -- over HTTP: the local stack's function hosts ----------------------------------------------------------


class _FunctionHost(BaseHTTPRequestHandler):
    """Lambda's ``Invoke`` API as the local function host answers it; fails ``testSecret``."""

    events: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.events.append(event)
        failed = event["Step"] == "testSecret"
        refusal = {"errorType": "RotationFailed", "errorMessage": "upstream refused"}
        body = refusal if failed else {"step": event["Step"]}
        payload = json.dumps(body).encode()
        self.send_response(200)
        if failed:
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def function_host() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    handler = type("Handler", (_FunctionHost,), {"events": events})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/2015-03-31/functions/rotator/invocations", events
    server.shutdown()
    server.server_close()


def test_a_function_host_registered_over_http_runs_the_steps(
    embedded_aws_server: str, function_host: tuple[str, list[dict[str, Any]]]
) -> None:
    url, events = function_host
    control = f"{embedded_aws_server}/_ecrcache/secrets/rotation"
    # bad registrations are refused, naming the field
    bad = requests.post(f"{control}/functions", json={"arn": "not-an-arn", "url": url}, timeout=10)
    assert (bad.status_code, bad.json()["error"]) == (400, "'arn' must be a Lambda function ARN")
    bad = requests.post(f"{control}/functions", json={"arn": FUNCTION, "url": "ftp://x"}, timeout=10)
    assert bad.status_code == 400
    assert "'url' must be an http(s) URL" in bad.json()["error"]
    registered = requests.post(f"{control}/functions", json={"arn": FUNCTION, "url": url}, timeout=10)
    assert registered.json() == {"arn": FUNCTION, "url": url}
    assert requests.get(f"{control}/functions", timeout=10).json() == {"functions": [{"arn": FUNCTION, "url": url}]}

    sm = boto3.client(
        "secretsmanager", endpoint_url=embedded_aws_server, region_name=REGION,
        aws_access_key_id="x", aws_secret_access_key="x",
    )  # fmt: skip
    arn = sm.create_secret(Name=NAME, SecretString=OLD)["ARN"]
    token = sm.rotate_secret(SecretId=NAME, RotationLambdaARN=FUNCTION)["VersionId"]
    assert secrets_rotation.wait_idle(10)

    assert [(e["Step"], e["SecretId"], e["ClientRequestToken"]) for e in events] == [
        (step, arn, token) for step in ("createSecret", "setSecret", "testSecret")
    ]
    (run,) = requests.get(f"{control}/runs", params={"secretArn": arn}, timeout=10).json()["runs"]
    assert (run["state"], run["steps"][-1]) == (
        "failed",
        {"step": "testSecret", "ok": False, "message": "RotationFailed: upstream refused"},
    )
    settings = requests.post(f"{control}/settings", json={"retries": 2}, timeout=10).json()
    assert settings == {"retries": 2, "retryDelaySeconds": 0.0}
    assert requests.post(f"{control}/settings", json={"retries": -1}, timeout=10).status_code == 400
    assert requests.delete(f"{control}/functions", json={"arn": FUNCTION}, timeout=10).json() == {"removed": True}


def test_dates_follow_the_injectable_clock(embedded_aws: EmbeddedAws, secret: str) -> None:
    ports.register_lambda(FUNCTION, Recorder())
    embedded_aws.secretsmanager.rotate_secret(
        SecretId=secret, RotationLambdaARN=FUNCTION, RotationRules={"ScheduleExpression": "rate(12 hours)"}
    )
    assert secrets_rotation.wait_idle(10)
    described = embedded_aws.secretsmanager.describe_secret(SecretId=secret)
    assert described["NextRotationDate"] - described["LastRotatedDate"] == timedelta(hours=12)
    assert abs(described["LastRotatedDate"] - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_function_host_that_cannot_be_reached_fails_the_first_step(embedded_aws: EmbeddedAws, secret: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ports.register_lambda(FUNCTION, ports.HttpLambdaInvoker(f"http://127.0.0.1:{port}/invocations", timeout=5))
    embedded_aws.secretsmanager.rotate_secret(SecretId=secret, RotationLambdaARN=FUNCTION)
    assert secrets_rotation.wait_idle(15)
    (run,) = secrets_rotation.runs(secret)
    assert run.state == "failed"
    assert [(s.step, s.ok, s.message) for s in run.steps] == [
        ("createSecret", False, "the function could not be invoked: ConnectionError")
    ]
