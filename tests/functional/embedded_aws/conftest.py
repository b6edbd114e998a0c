"""Fixtures for the embedded AWS (moto + ECR extension) tests.

* ``embedded_aws`` -- in-process: ``install()`` + ``moto.mock_aws()``; boto3 clients and helpers.
* ``embedded_aws_server`` -- a real HTTP server (:class:`EmbeddedAwsServer`) on a free loopback port in
  a thread; yields its endpoint URL and resets moto afterwards.

Process-wide knobs (clock, event faults, lifecycle settings, upstream checker) are reset around
every test that uses either fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import boto3
import moto
import pytest
import requests
from botocore.config import Config

from devstack.aws import (
    clock,
    ecr_lifecycle,
    ecr_storage,
    ecr_throttling,
    events,
    install,
    ports,
    secrets_replication,
    secrets_rotation,
)
from devstack.aws.server import EmbeddedAwsServer
from tests.conftest import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.literals import RuleStateType
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

#: EventBridge pattern for ECR API calls delivered by CloudTrail (ecr-facts §6.3).
CLOUDTRAIL_PATTERN: dict[str, Any] = {
    "source": ["aws.ecr"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {
        "eventSource": ["ecr.amazonaws.com"],
        "eventName": [
            "CreatePullThroughCacheRule",
            "UpdatePullThroughCacheRule",
            "DeletePullThroughCacheRule",
            "CreateRepository",
            "DeleteRepository",
            "PutLifecyclePolicy",
            "DeleteLifecyclePolicy",
            "CreateRepositoryCreationTemplate",
            "UpdateRepositoryCreationTemplate",
            "DeleteRepositoryCreationTemplate",
        ],
    },
}

#: The issue's pull-statistics rule: the CloudTrail events of a pull (read-only management events).
PULL_PATTERN: dict[str, Any] = {
    "source": ["aws.ecr"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventSource": ["ecr.amazonaws.com"], "eventName": ["BatchGetImage", "GetDownloadUrlForLayer"]},
}
ALL_MANAGEMENT_EVENTS: Final = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _reset_process_knobs() -> None:
    events.faults.clear()
    events.clear_recent()
    clock.reset()
    ecr_lifecycle.settings.preview_delay = ecr_lifecycle.LifecycleSettings().preview_delay
    ecr_storage.settings.restore_delay = ecr_storage.StorageSettings().restore_delay
    secrets_replication.reset()
    secrets_rotation.wait_idle(timeout=30)  # a rotation's steps run in a thread: none outlives its test
    secrets_rotation.reset()
    ports.set_upstream_auth_checker(None)
    ports.clear_lambdas()
    ecr_throttling.reset()


@dataclass
class EmbeddedAws:
    """boto3 clients bound to the in-process fake plus small helpers."""

    ecr: ECRClient
    ecr_unchecked: ECRClient  # parameter_validation=False: reaches the server's own validation
    secretsmanager: SecretsManagerClient
    events: EventBridgeClient
    sqs: SQSClient
    sts: STSClient
    account_id: str = ACCOUNT_ID
    region: str = REGION
    _spies: list[str] = field(default_factory=list)

    def secret(self, name: str, value: str | dict[str, str] | None = None, **kwargs: Any) -> str:
        """Create a Secrets Manager secret (JSON-encoding dicts); returns its ARN."""
        payload = value if value is not None else {"username": "user", "accessToken": "token-123"}
        text = json.dumps(payload) if isinstance(payload, dict) else payload
        return self.secretsmanager.create_secret(Name=name, SecretString=text, **kwargs)["ARN"]

    def spy(self, pattern: dict[str, Any] | None = None, name: str = "spy", state: RuleStateType = "ENABLED") -> str:
        """An EventBridge rule on the default bus with an SQS target; returns the queue URL.

        ``state`` is the rule's ``State``: read-only management events (pulls) reach only a rule in
        ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``.
        """
        queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(
            Name=f"{name}-rule",
            EventPattern=json.dumps(pattern or CLOUDTRAIL_PATTERN),
            State=state,
        )
        self.events.put_targets(Rule=f"{name}-rule", Targets=[{"Id": "sqs", "Arn": arn}])
        return queue_url

    def role_session(self, role_name: str, session_name: str) -> boto3.Session:
        """An assumed-role session from moto's STS: its calls carry ``assumed-role/<role>/<session>``."""
        iam = boto3.client("iam", region_name=self.region)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        role_arn = f"arn:aws:iam::{self.account_id}:role/{role_name}"
        creds = self.sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region,
        )

    def received(self, queue_url: str) -> list[dict[str, Any]]:
        """Drain a spy queue: the delivered event envelopes, oldest first."""
        out: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def put_image(
        self,
        repository: str,
        tag: str | None,
        *,
        layers: tuple[str, ...] = ("l1",),
        manifest: dict[str, Any] | None = None,
    ) -> str:
        """Push a (synthetic) image; the digest is the sha256 of the manifest bytes (tooling.md). Returns it."""
        document = manifest or {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(f"cfg-{layers}"),
                "size": 7,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha(layer), "size": 10}
                for layer in layers
            ],
        }
        body = json.dumps(document)
        digest = _sha(body)
        kwargs: dict[str, Any] = {"imageTag": tag} if tag else {}
        self.ecr.put_image(
            repositoryName=repository,
            imageManifest=body,
            imageManifestMediaType=str(document["mediaType"]),
            imageDigest=digest,
            **kwargs,
        )
        return digest


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _Clients:
    ecr: ECRClient
    ecr_unchecked: ECRClient
    secretsmanager: SecretsManagerClient
    events: EventBridgeClient
    sqs: SQSClient
    sts: STSClient


@pytest.fixture(scope="session")
def _aws_clients() -> _Clients:
    """boto3 clients made once: a client created after ``import moto`` is mocked inside any ``mock_aws()``."""
    return _Clients(
        ecr=boto3.client("ecr", region_name=REGION),
        ecr_unchecked=boto3.client("ecr", region_name=REGION, config=Config(parameter_validation=False)),
        secretsmanager=boto3.client("secretsmanager", region_name=REGION),
        events=boto3.client("events", region_name=REGION),
        sqs=boto3.client("sqs", region_name=REGION),
        sts=boto3.client("sts", region_name=REGION),
    )


@pytest.fixture
def embedded_aws(_aws_clients: _Clients) -> Iterator[EmbeddedAws]:
    """The in-process embedded AWS: moto with the ECR extension installed (fresh state per test)."""
    install()
    _reset_process_knobs()
    with moto.mock_aws():
        yield EmbeddedAws(
            ecr=_aws_clients.ecr,
            ecr_unchecked=_aws_clients.ecr_unchecked,
            secretsmanager=_aws_clients.secretsmanager,
            events=_aws_clients.events,
            sqs=_aws_clients.sqs,
            sts=_aws_clients.sts,
        )
    _reset_process_knobs()


@pytest.fixture
def embedded_aws_server() -> Iterator[str]:
    """A real HTTP server on a free loopback port (in a thread); yields its endpoint URL."""
    _reset_process_knobs()
    server = EmbeddedAwsServer("127.0.0.1", 0).start()
    try:
        yield server.endpoint_url
    finally:
        requests.post(f"{server.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        server.stop()
        _reset_process_knobs()
