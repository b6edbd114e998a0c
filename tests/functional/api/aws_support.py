"""What the API wrote to AWS (moto), read back by the functional tests with their own clients."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3


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
    """The ``AWSCURRENT`` value of a secret. Asked for by label: moto 5.2.5's UpdateSecretVersionStage
    moves the label but not its ``default_version_id``, so a GetSecretValue without VersionStage
    returns the old value."""
    client = aws("secretsmanager")
    value: dict[str, Any] = json.loads(
        client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    )
    return value


def secret_stages(secret_id: str) -> dict[str, list[str]]:
    """Version id -> the staging labels it carries."""
    stages: dict[str, list[str]] = aws("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return stages


def rotate_secret_as_aws(**kwargs: Any) -> dict[str, Any]:
    """Secrets Manager's ``RotateSecret`` as the API reference describes it, up to invoking the function (which these
    tests do not run): refused with ``InvalidRequestException`` while ``AWSPENDING`` is on a version other than
    ``AWSCURRENT``; otherwise the rotation is configured (``RotationEnabled``) and the ``ClientRequestToken`` becomes a
    version carrying ``AWSPENDING`` and no value. moto 5.2.5's own differs (tooling.md §2: it needs the function in
    its Lambda backend, and moves ``AWSCURRENT`` itself)."""
    from botocore.exceptions import ClientError
    from moto.secretsmanager.models import FakeSecret, secretsmanager_backends

    from tests.conftest import ACCOUNT_ID, REGION

    backend = secretsmanager_backends[ACCOUNT_ID][REGION]
    secret_id = kwargs["SecretId"]
    secret = next(s for s in backend.secrets.values() if secret_id in (s.arn, s.name))
    assert isinstance(secret, FakeSecret), "a replica cannot be rotated"
    stages = {version: v["version_stages"] for version, v in secret.versions.items()}
    current = next((v for v, labels in stages.items() if "AWSCURRENT" in labels), None)
    if any("AWSPENDING" in labels and v != current for v, labels in stages.items()):
        error: Any = {"Error": {"Code": "InvalidRequestException", "Message": "A previous rotation isn't complete."}}
        raise ClientError(error, "RotateSecret")
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = kwargs["RotationLambdaARN"]
    token = kwargs["ClientRequestToken"]
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": 0, "version_id": token, "version_stages": ["AWSPENDING"]}
    return {"ARN": secret.arn, "Name": secret.name, "VersionId": token}
