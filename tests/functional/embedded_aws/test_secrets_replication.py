"""Secrets Manager's multi-Region secrets in the embedded AWS (``devstack.aws.secrets_replication``),
and ECR reading a rule's secret in the rule's own Region.

What AWS documents (the module docstring cites it): a replica keeps the primary's name, its ARN is
the primary's with the replica's Region, it is ``InProgress`` before ``InSync`` (or ``Failed``, "Secret
with this name already exists in this region"), the primary's new values reach it, and a primary with
replicas cannot be deleted. ECR takes a secret of the rule's account and Region only (ecr-facts §10).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.aws import clock, ports, secrets_replication
from devstack.aws.ports import AuthCheckResult
from tests.conftest import REGION
from tests.functional.embedded_aws.conftest import EmbeddedAws

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
NAME = "ecr-pullthroughcache/docker-hub"
DOCKER_HUB = "registry-1.docker.io"


def _other() -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=OTHER)


def _other_ecr() -> ECRClient:
    return boto3.client("ecr", region_name=OTHER)


def _code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return str(error.value.response["Error"]["Code"]), str(error.value.response["Error"]["Message"])


def test_replica_keeps_the_name_takes_the_region_in_its_arn_and_follows_the_primary(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a secret replicated to another Region
    sm = embedded_aws.secretsmanager
    arn = embedded_aws.secret(NAME, {"username": "u", "accessToken": "first"})
    answer = sm.replicate_secret_to_regions(SecretId=NAME, AddReplicaRegions=[{"Region": OTHER}])
    # THEN the answer names the primary's ARN (moto alone echoes the name sent), the replica is in sync
    assert answer["ARN"] == arn
    assert [(r["Region"], r["Status"]) for r in answer["ReplicationStatus"]] == [(OTHER, "InSync")]
    # AND in its Region the replica has the same name, the primary's ARN with its Region, the same value
    replica_arn = arn.replace(f":{REGION}:", f":{OTHER}:")
    read = _other().get_secret_value(SecretId=replica_arn)
    assert (read["Name"], read["ARN"]) == (NAME, replica_arn)
    assert json.loads(read["SecretString"])["accessToken"] == "first"
    # AND a new value put on the primary is what the replica answers
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "u", "accessToken": "second"}))
    assert json.loads(_other().get_secret_value(SecretId=NAME)["SecretString"])["accessToken"] == "second"


def test_new_replica_is_in_progress_and_unreadable_until_the_delay_passes(embedded_aws: EmbeddedAws) -> None:
    # GIVEN replication that takes 30 s on the injectable clock
    secrets_replication.settings.replication_delay = timedelta(seconds=30)
    arn = embedded_aws.secret(NAME)
    answer = embedded_aws.secretsmanager.replicate_secret_to_regions(
        SecretId=arn, AddReplicaRegions=[{"Region": OTHER}]
    )
    # THEN it is InProgress, in the answer and in DescribeSecret, and its Region does not have it yet
    assert [r["Status"] for r in answer["ReplicationStatus"]] == ["InProgress"]
    assert [r["Status"] for r in embedded_aws.secretsmanager.describe_secret(SecretId=arn)["ReplicationStatus"]] == [
        "InProgress"
    ]
    with pytest.raises(ClientError) as missing:
        _other().get_secret_value(SecretId=NAME)
    assert _code(missing)[0] == "ResourceNotFoundException"
    assert secrets_replication.pending_replicas() == [(NAME, OTHER)]
    # WHEN the clock passes the delay THEN it is InSync and readable there
    clock.advance(timedelta(seconds=31))
    status = embedded_aws.secretsmanager.describe_secret(SecretId=arn)["ReplicationStatus"]
    assert [(r["Status"], r["StatusMessage"]) for r in status] == [("InSync", "Replication succeeded")]
    assert _other().get_secret_value(SecretId=NAME)["Name"] == NAME
    assert secrets_replication.pending_replicas() == []


def test_replica_removed_while_in_progress_never_appears(embedded_aws: EmbeddedAws) -> None:
    secrets_replication.settings.replication_delay = timedelta(seconds=30)
    arn = embedded_aws.secret(NAME)
    embedded_aws.secretsmanager.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    removed = embedded_aws.secretsmanager.remove_regions_from_replication(SecretId=NAME, RemoveReplicaRegions=[OTHER])
    assert (removed["ARN"], removed["ReplicationStatus"]) == (arn, [])
    clock.advance(timedelta(minutes=5))
    assert secrets_replication.pending_replicas() == []
    with pytest.raises(ClientError) as missing:
        _other().describe_secret(SecretId=NAME)
    assert _code(missing)[0] == "ResourceNotFoundException"


def test_replica_fails_with_the_documented_message_when_the_region_has_a_secret_of_that_name(
    embedded_aws: EmbeddedAws,
) -> None:
    # GIVEN a secret of the same name made by someone in the other Region
    _other().create_secret(Name=NAME, SecretString="theirs")
    arn = embedded_aws.secret(NAME)
    # WHEN the primary is replicated there (no ForceOverwriteReplicaSecret)
    answer = embedded_aws.secretsmanager.replicate_secret_to_regions(
        SecretId=arn, AddReplicaRegions=[{"Region": OTHER}]
    )
    # THEN the replica failed, saying why (moto alone names a secret "simple"), and theirs is untouched
    [status] = answer["ReplicationStatus"]
    assert (status["Status"], status["StatusMessage"]) == ("Failed", secrets_replication.EXISTS_MESSAGE)
    assert _other().get_secret_value(SecretId=NAME)["SecretString"] == "theirs"


def test_primary_with_replicas_cannot_be_deleted_until_they_are_removed(embedded_aws: EmbeddedAws) -> None:
    sm = embedded_aws.secretsmanager
    arn = embedded_aws.secret(NAME)
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}, {"Region": "us-west-2"}])
    with pytest.raises(ClientError) as refused:
        sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    # AWS's reported wording names the ARN and the Regions (gruntwork-io/cloud-nuke#435)
    assert _code(refused) == (
        "InvalidParameterException",
        f"You can't delete secret {arn} that still has replica regions [{OTHER}, us-west-2].",
    )
    sm.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=[OTHER, "us-west-2"])
    assert sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)["ARN"] == arn


def test_secret_scheduled_for_deletion_cannot_be_replicated(embedded_aws: EmbeddedAws) -> None:
    arn = embedded_aws.secret(NAME)
    embedded_aws.secretsmanager.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    with pytest.raises(ClientError) as refused:
        embedded_aws.secretsmanager.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    assert _code(refused)[0] == "InvalidRequestException"


def test_ecr_in_a_region_takes_only_that_regions_secret(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a secret in the stack's Region, its replica being created in the other Region, and ECR there
    secrets_replication.settings.replication_delay = timedelta(seconds=30)
    ports.set_upstream_auth_checker(_AcceptFresh())
    arn = embedded_aws.secret(NAME, {"username": "u", "accessToken": "fresh"})
    embedded_aws.secretsmanager.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    replica = arn.replace(f":{REGION}:", f":{OTHER}:")
    ecr = _other_ecr()

    def create(credential: str) -> None:
        ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl=DOCKER_HUB, credentialArn=credential
        )

    # THEN the stack Region's secret is refused there, and so is the replica until it is in sync
    for credential in (arn, replica):
        with pytest.raises(ClientError) as refused:
            create(credential)
        assert _code(refused)[0] == "SecretNotFoundException"
    # WHEN the replica is in sync THEN the rule is created with it, and validation reads it there
    assert secrets_replication.complete_replication() == 1
    create(replica)
    assert ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")["isValid"] is True
    # AND a value put on the primary is what ECR reads in the other Region
    embedded_aws.secretsmanager.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "u", "accessToken": "stale"})
    )
    result = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    assert (result["isValid"], result.get("failure")) == (False, "token is not fresh")


class _AcceptFresh:
    """The upstream accepts the token ``fresh`` only."""

    def check(
        self,
        *,
        upstream_registry: str,
        upstream_registry_url: str,
        upstream_repository_prefix: str,
        username: str,
        access_token: str,
    ) -> AuthCheckResult:
        if access_token == "fresh":
            return AuthCheckResult(is_valid=True)
        return AuthCheckResult(is_valid=False, failure="token is not fresh")


def test_server_endpoints_set_the_delay_list_and_complete_replicas(embedded_aws_server: str) -> None:
    # GIVEN the embedded AWS over HTTP with replication taking a minute
    settings = requests.post(
        f"{embedded_aws_server}/_ecrcache/secrets/replication/settings", json={"delaySeconds": 60}, timeout=10
    )
    assert settings.json() == {"delaySeconds": 60.0}
    bad = requests.post(
        f"{embedded_aws_server}/_ecrcache/secrets/replication/settings", json={"delaySeconds": -1}, timeout=10
    )
    assert bad.status_code == 400
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=embedded_aws_server)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    # THEN the replica is pending, and completing it makes it InSync
    pending = requests.get(f"{embedded_aws_server}/_ecrcache/secrets/replication/pending", timeout=10).json()
    assert pending == {"pending": [{"name": NAME, "region": OTHER}]}
    done = requests.post(f"{embedded_aws_server}/_ecrcache/secrets/replication/complete", json={}, timeout=10).json()
    assert done == {"completed": 1}
    assert [r["Status"] for r in sm.describe_secret(SecretId=arn)["ReplicationStatus"]] == ["InSync"]
