"""A credential's ``rotation`` schedule as its secret's Secrets Manager rotation schedule, with the reconciler as
deployed, on the embedded Secrets Manager (``devstack.aws.secrets_rotation``: ``RotateSecret`` and
``CancelRotateSecret`` as AWS documents them).

Setting a schedule is ``RotateSecret(RotationLambdaARN, RotationRules={ScheduleExpression}, RotateImmediately=false)``:
Secrets Manager "tests the rotation configuration by running the testSecret step of the Lambda rotation function"
-- here the stack's rotator function (``functions/rotator/app.py``'s handler), registered for the ARN the
reconciler is configured with. Removing it is ``CancelRotateSecret``. Nothing is called while a rotation is in
progress (``AWSPENDING`` on a version other than ``AWSCURRENT``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from devstack.aws import ports, secrets_rotation
from ecrcache.config import RotatorSettings
from tests.conftest import FakeLambdaContext
from tests.functional.reconcile.support import Admin, Reconciler, clients

pytestmark = pytest.mark.functional

NAME = "ecr-pullthroughcache/hub"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator"
"""``ROTATOR_FUNCTION_ARN`` of the tests' environment (``tests/conftest.py``): the reconciler's rotation function."""


class RotatorFunction:
    """``functions.rotator.app.lambda_handler`` as Lambda runs it when the embedded Secrets Manager invokes the
    function; while :attr:`holding`, invocations wait until :meth:`release` (a rotation stays in progress)."""

    def __init__(self, context: FakeLambdaContext) -> None:
        self.context = context
        self.steps: list[str] = []
        self.holding = False
        self.held = threading.Event()
        self._released = threading.Event()
        self._fail = False

    def __call__(self, event: Mapping[str, Any]) -> Any:
        from functions.rotator import app

        self.steps.append(str(event["Step"]))
        if self.holding:
            self.held.set()
            assert self._released.wait(30), "the test never released the rotation"
            if self._fail:
                raise ports.LambdaFunctionError("the held rotation failed")
        return app.lambda_handler(dict(event), self.context)

    def release(self, *, fail: bool) -> None:
        self._fail = fail
        self._released.set()


class SecretsManagerCalls:
    """The reconciler's Secrets Manager rotation-schedule calls (a botocore hook on its client: they go through)."""

    EVENT = "provide-client-params.secrets-manager"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.operations: list[str] = []
        client.meta.events.register(self.EVENT, self._seen, unique_id="reconciler-schedule-calls")

    def _seen(self, model: Any, **_: Any) -> None:
        self.operations.append(str(model.name))

    def writes(self) -> list[str]:
        return [op for op in self.operations if op in {"RotateSecret", "CancelRotateSecret"}]

    def close(self) -> None:
        self.client.meta.events.unregister(self.EVENT, unique_id="reconciler-schedule-calls")


@pytest.fixture
def rotator(
    controller: Reconciler, state_table: str, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RotatorFunction]:
    from functions.rotator import app

    monkeypatch.setattr(app, "settings", RotatorSettings.model_validate({"table_name": state_table}))
    app.service.cache_clear()
    function = RotatorFunction(lambda_context)
    ports.register_lambda(FUNCTION, function)
    try:
        yield function
    finally:
        function.release(fail=True)
        assert secrets_rotation.wait_idle(30)
        ports.unregister_lambda(FUNCTION)
        secrets_rotation.reset()
        app.service.cache_clear()


@pytest.fixture
def calls(controller: Reconciler) -> Iterator[SecretsManagerCalls]:
    assert controller.service.schedules is not None
    recorder = SecretsManagerCalls(controller.service.schedules.secrets.client)  # type: ignore[attr-defined]
    try:
        yield recorder
    finally:
        recorder.close()


def put_hub(alice: Admin, rotation: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"upstream_kind": "docker-hub", "username": "ecrcache-puller"}
    if rotation is not None:
        body["rotation"] = rotation
    response = alice.api.put("/v1/credentials/hub", body)
    assert response.status in {200, 201}, response.text


def reconcile(controller: Reconciler) -> None:
    run = controller.resync()
    assert not run.errors, run.errors
    assert secrets_rotation.wait_idle(30)


def described() -> dict[str, Any]:
    return dict(clients().secretsmanager.describe_secret(SecretId=NAME))


def test_every_days_becomes_the_secrets_schedule_changes_with_it_and_goes_with_it(
    controller: Reconciler, alice: Admin, rotator: RotatorFunction, calls: SecretsManagerCalls
) -> None:
    # GIVEN credential hub rotated every 30 days
    alice.put_credential("hub")
    put_hub(alice, {"every_days": 30})
    # WHEN the reconciler runs
    reconcile(controller)
    # THEN the secret rotates every 30 days with the stack's rotation function, which Secrets Manager tested
    secret = described()
    assert (secret["RotationEnabled"], secret["RotationLambdaARN"]) == (True, FUNCTION)
    assert secret["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    assert "NextRotationDate" in secret
    assert calls.writes() == ["RotateSecret"]
    assert rotator.steps == ["testSecret"]
    (test,) = secrets_rotation.runs(secret["ARN"])
    assert test.state == "succeeded", test.steps
    # AND the test left no version behind, rotated nothing
    assert list(secret["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    # AND a second run changes nothing
    reconcile(controller)
    assert calls.writes() == ["RotateSecret"]

    # WHEN every_days changes
    put_hub(alice, {"every_days": 7})
    reconcile(controller)
    # THEN so does the schedule
    assert described()["RotationRules"]["ScheduleExpression"] == "rate(7 days)"
    assert calls.writes() == ["RotateSecret", "RotateSecret"]

    # WHEN the credential no longer has a schedule
    put_hub(alice, None)
    reconcile(controller)
    # THEN rotation is cancelled: off, nothing scheduled, the labels untouched
    secret = described()
    assert secret["RotationEnabled"] is False
    assert "NextRotationDate" not in secret
    assert list(secret["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    assert calls.writes() == ["RotateSecret", "RotateSecret", "CancelRotateSecret"]
    # AND nothing more is called on the next run
    reconcile(controller)
    assert calls.writes() == ["RotateSecret", "RotateSecret", "CancelRotateSecret"]


def test_nothing_is_called_while_a_rotation_is_in_progress(
    controller: Reconciler, alice: Admin, rotator: RotatorFunction, calls: SecretsManagerCalls
) -> None:
    # GIVEN credential hub rotated every 30 days, converged
    alice.put_credential("hub")
    put_hub(alice, {"every_days": 30})
    reconcile(controller)
    # AND a rotation in progress (Secrets Manager's scheduled rotation, its function still in createSecret)
    rotator.holding = True
    sm = clients().secretsmanager
    token = sm.rotate_secret(SecretId=NAME, ClientRequestToken=str(uuid.uuid4()))["VersionId"]
    assert rotator.held.wait(10)
    before = calls.writes()

    # WHEN the schedule changes, and then goes, while it runs
    put_hub(alice, {"every_days": 7})
    assert not controller.resync().errors
    put_hub(alice, None)
    assert not controller.resync().errors
    # THEN neither RotateSecret (refused: a previous rotation isn't complete) nor CancelRotateSecret (it would
    # cancel the rotation) was called; the schedule is as it was
    assert calls.writes() == before
    secret = described()
    assert (secret["RotationEnabled"], secret["RotationRules"]["ScheduleExpression"]) == (True, "rate(30 days)")

    # WHEN the rotation ends (it failed; its pending version is cleaned up, as an operator would)
    rotator.release(fail=True)
    assert secrets_rotation.wait_idle(30)
    sm.update_secret_version_stage(SecretId=NAME, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    reconcile(controller)
    # THEN the next run removes the schedule
    assert calls.writes() == [*before, "CancelRotateSecret"]
    assert described()["RotationEnabled"] is False
