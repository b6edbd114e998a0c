"""Staging labels of the embedded Secrets Manager (issue 14: moto's stale ``GetSecretValue`` after
``UpdateSecretVersionStage``; :mod:`devstack.aws.secrets_versions`).

Documented (botocore's secretsmanager model): "If you don't specify either a VersionStage or VersionId, Secrets
Manager returns the AWSCURRENT version"; "Each staging label can be attached to only one version at a time";
"If the label is attached and you either do not specify [RemoveFromVersionId], or the version ID does not match,
then the operation fails."
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.functional.embedded_aws.conftest import EmbeddedAws
from tests.functional.embedded_aws.test_pull_through_rules import aws_error

pytestmark = pytest.mark.functional


@dataclass(frozen=True)
class Secret:
    sm: Any
    arn: str
    first: str  # version ids
    second: str

    def value(self, **version: str) -> str:
        return str(self.sm.get_secret_value(SecretId=self.arn, **version)["SecretString"])

    def stages(self) -> dict[str, list[str]]:
        return dict(self.sm.describe_secret(SecretId=self.arn)["VersionIdsToStages"])


@pytest.fixture
def secret(embedded_aws: EmbeddedAws) -> Secret:
    """A secret with ``v1`` (AWSCURRENT) and ``v2`` staged AWSPENDING, as a rotation's ``createSecret`` leaves it."""
    sm = embedded_aws.secretsmanager
    created = sm.create_secret(Name="ecr-pullthroughcache/docker-hub", SecretString="v1")
    second = str(uuid.uuid4())
    sm.put_secret_value(
        SecretId=created["ARN"], ClientRequestToken=second, SecretString="v2", VersionStages=["AWSPENDING"]
    )
    return Secret(sm=sm, arn=created["ARN"], first=created["VersionId"], second=second)


def _finish(secret: Secret, secret_id: str) -> None:
    """A rotation function's ``finishSecret``: AWSCURRENT to the new version, then AWSPENDING off it."""
    secret.sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=secret.second, RemoveFromVersionId=secret.first
    )


@pytest.mark.parametrize("by", ["arn", "name"])
def test_get_secret_value_reads_awscurrent_after_the_label_moves(secret: Secret, by: str) -> None:
    assert (secret.value(), secret.value(VersionStage="AWSPENDING")) == ("v1", "v2")

    _finish(secret, secret.arn if by == "arn" else "ecr-pullthroughcache/docker-hub")

    # "If you don't specify either a VersionStage or VersionId, Secrets Manager returns the AWSCURRENT version."
    assert secret.value() == "v2"
    assert secret.sm.get_secret_value(SecretId=secret.arn)["VersionId"] == secret.second
    assert secret.value(VersionStage="AWSCURRENT") == "v2"
    # "Whenever you move AWSCURRENT, Secrets Manager automatically moves the label AWSPREVIOUS to the version that
    # AWSCURRENT was removed from."
    assert secret.value(VersionStage="AWSPREVIOUS") == "v1"
    assert secret.value(VersionStage="AWSPENDING") == "v2"  # until finishSecret takes it off
    secret.sm.update_secret_version_stage(
        SecretId=secret.arn, VersionStage="AWSPENDING", RemoveFromVersionId=secret.second
    )
    with aws_error("ResourceNotFoundException"):
        secret.value(VersionStage="AWSPENDING")
    assert secret.stages() == {secret.first: ["AWSPREVIOUS"], secret.second: ["AWSCURRENT"]}


def test_a_rollback_moves_the_default_read_back(secret: Secret) -> None:
    _finish(secret, secret.arn)
    secret.sm.update_secret_version_stage(
        SecretId=secret.arn, VersionStage="AWSCURRENT", MoveToVersionId=secret.first, RemoveFromVersionId=secret.second
    )
    assert (secret.value(), secret.value(VersionStage="AWSPREVIOUS")) == ("v1", "v2")


def test_a_label_is_on_one_version_at_a_time(secret: Secret) -> None:
    third = str(uuid.uuid4())
    secret.sm.put_secret_value(SecretId=secret.arn, ClientRequestToken=third, SecretString="v3", VersionStages=["x"])

    # "If the label is attached and you ... do not specify this parameter ... then the operation fails."
    with aws_error(
        "InvalidParameterException", f"Staging label AWSPENDING is currently attached to version {secret.second}"
    ):
        secret.sm.update_secret_version_stage(SecretId=secret.arn, VersionStage="AWSPENDING", MoveToVersionId=third)
    assert secret.value(VersionStage="AWSPENDING") == "v2"
    # "... or the version ID does not match"
    with aws_error("InvalidParameterException"):
        secret.sm.update_secret_version_stage(
            SecretId=secret.arn, VersionStage="AWSPENDING", MoveToVersionId=third, RemoveFromVersionId=secret.first
        )

    secret.sm.update_secret_version_stage(
        SecretId=secret.arn, VersionStage="AWSPENDING", MoveToVersionId=third, RemoveFromVersionId=secret.second
    )
    assert secret.value(VersionStage="AWSPENDING") == "v3"
    assert secret.value() == "v1"
    # moving a label onto the version that has it changes nothing (no duplicate label)
    secret.sm.update_secret_version_stage(SecretId=secret.arn, VersionStage="AWSPENDING", MoveToVersionId=third)
    assert secret.stages()[third] == ["x", "AWSPENDING"]
