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
