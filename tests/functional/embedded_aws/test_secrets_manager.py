"""Secrets Manager's recovery window in the embedded AWS (``devstack.aws.secrets_deletion``).

A secret scheduled for deletion (``DeleteSecret`` with a recovery window) keeps its name; until
``RestoreSecret`` AWS answers ``InvalidRequestException`` to a ``CreateSecret`` of that name and to
writes and reads of it, while ``DescribeSecret`` shows its ``DeletedDate`` (the botocore model's
error lists and the DeleteSecret reference; the module docstring cites the messages' sources).
moto 5.2.5 alone answers ``ResourceExistsException`` and accepts ``PutSecretValue``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws.secrets_deletion import CREATE_MESSAGE, MARKED_MESSAGE
from tests.conftest import REGION
from tests.functional.embedded_aws.conftest import EmbeddedAws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.functional

NAME = "ecr-pullthroughcache/docker-hub"
OLD = json.dumps({"username": "ci-bot", "accessToken": "old-token-0001"})
NEW = json.dumps({"username": "ci-bot", "accessToken": "new-token-0002"})
TOKEN_A = "a" * 32
TOKEN_B = "b" * 32


def scheduled(sm: SecretsManagerClient) -> str:
    """A secret with one current value, then scheduled for deletion (7-day window); its ARN."""
    arn = sm.create_secret(Name=NAME, SecretString=OLD, ClientRequestToken=TOKEN_A)["ARN"]
    sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    return arn


def refused(call: Callable[[], Any]) -> dict[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return {"Code": str(error.get("Code")), "Message": str(error.get("Message"))}


def test_secrets_create_of_a_name_scheduled_for_deletion_is_invalid_request(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a secret scheduled for deletion
    sm = embedded_aws.secretsmanager
    scheduled(sm)
    # WHEN a secret of the same name is created (with or without a request token)
    for kwargs in ({"ClientRequestToken": TOKEN_B}, {}):
        error = refused(lambda kw=kwargs: sm.create_secret(Name=NAME, SecretString=NEW, **kw))  # type: ignore[misc]
        # THEN it is InvalidRequestException with AWS's text (moto alone says ResourceExistsException)
        assert error == {"Code": "InvalidRequestException", "Message": CREATE_MESSAGE}
    # AND the scheduled secret is untouched
    assert "DeletedDate" in sm.describe_secret(SecretId=NAME)


WRITES_AND_READS: dict[str, Callable[[SecretsManagerClient, str], Any]] = {
    "PutSecretValue": lambda sm, sid: sm.put_secret_value(
        SecretId=sid, SecretString=NEW, ClientRequestToken=TOKEN_B, VersionStages=["ECRCACHE_PENDING"]
    ),
    "UpdateSecret": lambda sm, sid: sm.update_secret(SecretId=sid, SecretString=NEW, ClientRequestToken=TOKEN_B),
    "UpdateSecretVersionStage": lambda sm, sid: sm.update_secret_version_stage(
        SecretId=sid, VersionStage="ECRCACHE_PENDING", MoveToVersionId=TOKEN_A
    ),
    "GetSecretValue": lambda sm, sid: sm.get_secret_value(SecretId=sid, VersionStage="AWSCURRENT"),
    "GetResourcePolicy": lambda sm, sid: sm.get_resource_policy(SecretId=sid),
    "TagResource": lambda sm, sid: sm.tag_resource(SecretId=sid, Tags=[{"Key": "k", "Value": "v"}]),
    "UntagResource": lambda sm, sid: sm.untag_resource(SecretId=sid, TagKeys=["ecrcache:managed"]),
}


@pytest.mark.parametrize("by", ["name", "arn"])
@pytest.mark.parametrize("operation", list(WRITES_AND_READS))
def test_secrets_scheduled_for_deletion_refuses_writes_and_reads(
    embedded_aws: EmbeddedAws, operation: str, by: str
) -> None:
    # GIVEN a secret scheduled for deletion, named by its name or its ARN
    sm = embedded_aws.secretsmanager
    arn = scheduled(sm)
    secret_id = arn if by == "arn" else NAME
    # WHEN it is written or read
    error = refused(lambda: WRITES_AND_READS[operation](sm, secret_id))
    # THEN AWS's InvalidRequestException comes back, and nothing changed
    assert error == {"Code": "InvalidRequestException", "Message": MARKED_MESSAGE}
    described = sm.describe_secret(SecretId=NAME)
    assert "DeletedDate" in described
    assert described["VersionIdsToStages"] == {TOKEN_A: ["AWSCURRENT"]}


def test_secrets_scheduled_for_deletion_can_be_described_listed_and_restored(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a secret scheduled for deletion
    sm = embedded_aws.secretsmanager
    arn = scheduled(sm)
    # THEN it can still be described (with its DeletedDate), its versions listed, and it is listed
    # only with IncludePlannedDeletion
    assert "DeletedDate" in sm.describe_secret(SecretId=arn)
    assert [v["VersionId"] for v in sm.list_secret_version_ids(SecretId=NAME)["Versions"]] == [TOKEN_A]
    assert [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]] == [NAME]
    # WHEN it is restored
    assert sm.restore_secret(SecretId=NAME)["ARN"] == arn
    # THEN it has no DeletedDate, its old value is readable, and it takes a new value again
    assert "DeletedDate" not in sm.describe_secret(SecretId=NAME)
    assert sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["SecretString"] == OLD
    sm.put_secret_value(SecretId=NAME, SecretString=NEW, ClientRequestToken=TOKEN_B)
    assert sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["SecretString"] == NEW
    # AND creating the name is the ordinary "already exists" again
    assert refused(lambda: sm.create_secret(Name=NAME, SecretString=NEW))["Code"] == "ResourceExistsException"


def test_secrets_deleted_without_recovery_frees_the_name(embedded_aws: EmbeddedAws) -> None:
    # GIVEN a secret scheduled for deletion, then deleted at once
    sm = embedded_aws.secretsmanager
    old_arn = scheduled(sm)
    sm.delete_secret(SecretId=NAME, ForceDeleteWithoutRecovery=True)
    # WHEN the name is created again
    created = sm.create_secret(Name=NAME, SecretString=NEW, ClientRequestToken=TOKEN_B)
    # THEN it is a new, readable secret
    assert created["ARN"] != old_arn
    assert sm.get_secret_value(SecretId=NAME)["SecretString"] == NEW


def test_secrets_a_second_scheduled_deletion_is_invalid_request(embedded_aws: EmbeddedAws) -> None:
    sm = embedded_aws.secretsmanager
    scheduled(sm)
    assert refused(lambda: sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7))["Code"] == (
        "InvalidRequestException"
    )


def test_secrets_recovery_window_over_http(embedded_aws_server: str) -> None:
    # GIVEN the embedded AWS served over HTTP, and a secret scheduled for deletion
    sm = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=embedded_aws_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # the embedded AWS takes any credentials
    )
    scheduled(sm)
    # WHEN the name is created again, and a value is put
    create = refused(lambda: sm.create_secret(Name=NAME, SecretString=NEW, ClientRequestToken=TOKEN_B))
    put = refused(lambda: sm.put_secret_value(SecretId=NAME, SecretString=NEW, ClientRequestToken=TOKEN_B))
    # THEN both are refused on the wire as AWS refuses them, until the secret is restored
    assert create == {"Code": "InvalidRequestException", "Message": CREATE_MESSAGE}
    assert put == {"Code": "InvalidRequestException", "Message": MARKED_MESSAGE}
    sm.restore_secret(SecretId=NAME)
    sm.put_secret_value(SecretId=NAME, SecretString=NEW, ClientRequestToken=TOKEN_B)
    assert sm.get_secret_value(SecretId=NAME)["SecretString"] == NEW
