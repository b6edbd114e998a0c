"""Fixtures for the reconciler's adapters: the ECR registry on the embedded AWS, the status store on moto.

``ecr`` runs the embedded AWS in-process (``install()`` + ``moto.mock_aws()``), whose
``DescribeRepositories`` pages like ECR (100 a page by default), so the tests can count pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3
import moto
import pytest

from devstack.aws import install, ports
from devstack.aws.ports import AuthCheckResult
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry
from tests.conftest import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

LIFECYCLE_TEXT = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "expire untagged images after 14 days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 14,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)
POLICY_TEXT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "pull",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            }
        ],
    }
)


class _TokenChecker:
    """Upstream auth check for ValidatePullThroughCacheRule: the token ``good`` is valid."""

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        if access_token == "good":
            return AuthCheckResult(is_valid=True)
        return AuthCheckResult(is_valid=False, failure="upstream rejected the credential (401)")


@dataclass
class Sleeps:
    """An injectable ``sleep`` that records the delays and may run something on each call."""

    delays: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))


@dataclass
class Ecr:
    """Clients for setting up and inspecting the embedded ECR (not counted by the registry)."""

    ecr: ECRClient
    secretsmanager: SecretsManagerClient
    sleeps: Sleeps
    registry: Boto3EcrRegistry

    def secret(self, name: str, token: str = "good") -> str:  # noqa: S107 - a fake upstream token
        value = json.dumps({"username": "user", "accessToken": token})
        return self.secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]

    def repository(self, name: str) -> str:
        return self.ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ecr]:
    """The embedded AWS in-process, a registry for ``REGION`` with a recording ``sleep``."""
    install()
    ports.set_upstream_auth_checker(_TokenChecker())
    try:
        with moto.mock_aws():
            sleeps = Sleeps()
            yield Ecr(
                ecr=boto3.client("ecr", region_name=REGION),
                secretsmanager=boto3.client("secretsmanager", region_name=REGION),
                sleeps=sleeps,
                registry=Boto3EcrRegistry(REGION, sleep=sleeps),
            )
    finally:
        ports.set_upstream_auth_checker(None)
