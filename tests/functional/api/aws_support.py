"""What the API wrote to AWS (moto), read back by the functional tests with their own clients; and the rotation
function as the embedded Secrets Manager invokes it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import boto3

from devstack.aws import ports, secrets_rotation


@cache
def aws(service: str) -> Any:
    """One boto3 client per service for the session: moto intercepts it inside every test's mock, as it
    does the adapters' cached clients (a fresh client costs ~0.1 s of service-model loading)."""
    return boto3.client(service)  # type: ignore[call-overload]


def scan(table: str) -> list[dict[str, Any]]:
    """Every item of ``table`` in the low-level client's shape, in key order (so two scans compare)."""
    items: list[dict[str, Any]] = []
    for page in aws("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def secret_value(secret_id: str) -> dict[str, Any]:
    """The ``AWSCURRENT`` value of a secret: what a plain ``GetSecretValue`` returns (the embedded Secrets
    Manager keeps that read on the version carrying ``AWSCURRENT`` after UpdateSecretVersionStage moves it)."""
    client = aws("secretsmanager")
    value: dict[str, Any] = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
    return value


def secret_stages(secret_id: str) -> dict[str, list[str]]:
    """Version id -> the staging labels it carries."""
    stages: dict[str, list[str]] = aws("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return stages


class HeldRotationFunction:
    """The rotation Lambda function for ``function_arn``, as the embedded Secrets Manager's ``RotateSecret``
    invokes it (:func:`devstack.aws.ports.register_lambda`; ``devstack.aws.secrets_rotation``).

    RotateSecret is asynchronous: it answers, then invokes the steps. Each invocation here waits until the test
    lets the steps run (:meth:`run`), so a test sees the secret as RotateSecret leaves it before ``createSecret``
    (the new version ``AWSPENDING``, empty). Then ``handler(event)`` runs the step; raising is the function failing
    (the run ends there, as in Secrets Manager). With no ``handler`` (tests that never run a rotation's steps) every
    invocation fails at once: Secrets Manager leaves the empty ``AWSPENDING`` version, a rotation still in progress.
    :meth:`close` (teardown) fails every invocation still held and waits for the runs to end.
    """

    def __init__(self, function_arn: str, handler: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        self.function_arn = function_arn
        self.handler = handler
        self.failures: list[BaseException] = []
        """What the function raised (the leak scans look into them)."""
        self._gate = threading.Event()
        self._closed = False
        ports.register_lambda(function_arn, self)

    def __call__(self, event: Mapping[str, Any]) -> Any:
        if self.handler is None:
            raise ports.LambdaFunctionError("the rotation function does not run in these tests")
        if not self._gate.wait(60):
            raise ports.LambdaFunctionError("the test never let the rotation steps run")
        if self._closed:
            raise ports.LambdaFunctionError("the test ended before the rotation steps ran")
        try:
            return self.handler(event)
        except Exception as exc:
            self.failures.append(exc)
            raise

    def run(self, timeout: float = 30.0) -> None:
        """Let every rotation started so far run its steps, and wait until none is running."""
        self._gate.set()
        try:
            assert secrets_rotation.wait_idle(timeout), "a rotation did not end"
        finally:
            self._gate.clear()

    def close(self) -> None:
        self._closed = True
        self._gate.set()
        try:
            assert secrets_rotation.wait_idle(30), "a rotation did not end"
        finally:
            ports.unregister_lambda(self.function_arn)
            secrets_rotation.reset()


class RotateSecretCalls:
    """The ``RotateSecret`` requests a client sends, as given to it (a botocore event hook: the call itself goes
    to the embedded AWS unchanged)."""

    EVENT = "provide-client-params.secrets-manager.RotateSecret"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[dict[str, Any]] = []
        client.meta.events.register(self.EVENT, self._seen, unique_id=f"rotate-secret-calls-{id(self)}")

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))

    def close(self) -> None:
        self.client.meta.events.unregister(self.EVENT, unique_id=f"rotate-secret-calls-{id(self)}")
