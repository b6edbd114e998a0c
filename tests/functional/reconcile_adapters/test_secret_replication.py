"""The Secrets Manager replication adapter and the secret store's delete, on the embedded AWS: what they
read, the calls they make, and every failure path (throttling, 5xx, access denied) answered as the
module docstring's table says."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest

from devstack.aws import secrets_replication
from ecrcache.adapters.secret_replication import SecretsManagerReplication, observed_secret
from ecrcache.adapters.secrets_store import SecretsManagerStore
from ecrcache.engine.plan import ActionKind, JsonObject, PlannedAction
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.secret_replica import replica_arn
from tests.conftest import REGION
from tests.functional.reconcile.support import FAULTS, failing, recording

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.functional

OTHER = "eu-west-1"
NAME = "ecr-pullthroughcache/hub"


@pytest.fixture
def sm(aws: None) -> Iterator[SecretsManagerClient]:
    secrets_replication.reset()
    yield boto3.client("secretsmanager", region_name=REGION)
    secrets_replication.reset()


def action(kind: ActionKind, arn: str, region: str = OTHER) -> PlannedAction:
    add: JsonObject = {"SecretId": arn, "AddReplicaRegions": [{"Region": region}]}
    remove: JsonObject = {"SecretId": arn, "RemoveReplicaRegions": [region]}
    request: JsonObject = {"remove": remove, "replicate": add} if kind is ActionKind.RETRY_REPLICA else {}
    if kind is ActionKind.REPLICATE_SECRET:
        request = add
    elif kind is ActionKind.REMOVE_REPLICA:
        request = remove
    return PlannedAction(kind=kind, region=region, target=NAME, rule_prefix="", reason="test", request=request)


def test_describe_reads_the_primary_and_its_replicas(sm: SecretsManagerClient) -> None:
    adapter = SecretsManagerReplication(sm)
    assert adapter.describe(NAME) is None
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    found = adapter.describe(NAME)
    assert found is not None and (found.name, found.arn, found.primary_region, found.replicas) == (
        NAME,
        arn,
        REGION,
        {},
    )
    secrets_replication.settings.replication_delay = timedelta(seconds=30)
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    found = adapter.describe(NAME)
    assert found is not None and found.replicas[OTHER].status == "InProgress"
    assert found.arn_in(OTHER) == replica_arn(arn, OTHER)


def test_apply_replicates_retries_and_removes_with_exactly_the_planned_requests(sm: SecretsManagerClient) -> None:
    adapter = SecretsManagerReplication(sm)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    with recording(sm, "replicate_secret_to_regions") as adds, recording(sm, "remove_regions_from_replication") as rms:
        assert adapter.apply(action(ActionKind.REPLICATE_SECRET, arn)).ok
        assert adapter.apply(action(ActionKind.RETRY_REPLICA, arn)).ok
        assert adapter.apply(action(ActionKind.REMOVE_REPLICA, arn)).ok
    assert adds == [{"SecretId": arn, "AddReplicaRegions": [{"Region": OTHER}]}] * 2
    assert rms == [{"SecretId": arn, "RemoveReplicaRegions": [OTHER]}] * 2
    assert (
        "ReplicationStatus" not in sm.describe_secret(SecretId=arn)
        or not sm.describe_secret(SecretId=arn)["ReplicationStatus"]
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize(
    ("kind", "method"),
    [
        (ActionKind.REPLICATE_SECRET, "replicate_secret_to_regions"),
        (ActionKind.REMOVE_REPLICA, "remove_regions_from_replication"),
        (ActionKind.RETRY_REPLICA, "remove_regions_from_replication"),
        (ActionKind.RETRY_REPLICA, "replicate_secret_to_regions"),
    ],
)
def test_a_failing_call_is_a_result_never_an_exception(
    sm: SecretsManagerClient, fault: str, kind: ActionKind, method: str
) -> None:
    adapter = SecretsManagerReplication(sm)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    code, _, retryable = FAULTS[fault]
    with failing(sm, method, fault):
        result = adapter.apply(action(kind, arn))
    assert (result.ok, result.code, result.retryable) == (False, code, retryable)
    assert result.message is not None and "injected" in result.message


def test_a_refused_replication_is_terminal_and_removing_from_a_gone_secret_is_done(sm: SecretsManagerClient) -> None:
    adapter = SecretsManagerReplication(sm)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    own_region = adapter.apply(action(ActionKind.REPLICATE_SECRET, arn, region=REGION))
    assert (own_region.ok, own_region.code, own_region.retryable) == (False, "InvalidParameterException", False)
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert adapter.apply(action(ActionKind.REMOVE_REPLICA, arn)).ok
    unknown = adapter.apply(action(ActionKind.CREATE_RULE, arn))
    assert (unknown.ok, unknown.code) == (False, "UnsupportedAction")


@pytest.mark.parametrize(("fault", "error"), [("throttling", RetryableError), ("access-denied", TerminalError)])
def test_a_failing_describe_raises_its_class(
    sm: SecretsManagerClient, fault: str, error: type[RetryableError | TerminalError]
) -> None:
    adapter = SecretsManagerReplication(sm)
    with failing(sm, "describe_secret", fault), pytest.raises(error, match="DescribeSecret"):
        adapter.describe(NAME)


def test_observed_secret_reads_a_replicas_own_describe() -> None:
    described = {
        "ARN": f"arn:aws:secretsmanager:{OTHER}:123456789012:secret:{NAME}-AbCdEf",
        "Name": NAME,
        "PrimaryRegion": REGION,
        "ReplicationStatus": [{"Region": OTHER, "Status": "InSync", "StatusMessage": "Replication succeeded"}],
    }
    found = observed_secret(described)
    assert (found.primary_region, found.replicas[OTHER].in_sync, found.deleted) == (REGION, True, False)


# --------------------------------------------------------------------------------------------------
# Deleting a credential's secret (the API's SecretsManagerStore)


def test_delete_removes_the_replicas_then_schedules_the_secret(sm: SecretsManagerClient) -> None:
    store = SecretsManagerStore(sm)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}, {"Region": "us-west-2"}])
    assert store.replica_regions(NAME) == (OTHER, "us-west-2")
    assert store.delete(NAME) is True
    described = sm.describe_secret(SecretId=arn)
    assert "DeletedDate" in described and not described.get("ReplicationStatus")
    assert boto3.client("secretsmanager", region_name=OTHER).list_secrets()["SecretList"] == []
    assert store.replica_regions("ecr-pullthroughcache/none") == ()


@pytest.mark.parametrize(("fault", "error"), [("throttling", RetryableError), ("access-denied", TerminalError)])
def test_delete_that_cannot_remove_the_replicas_schedules_nothing(
    sm: SecretsManagerClient, fault: str, error: type[RetryableError | TerminalError]
) -> None:
    store = SecretsManagerStore(sm)
    arn = sm.create_secret(Name=NAME, SecretString="{}")["ARN"]
    sm.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": OTHER}])
    with failing(sm, "remove_regions_from_replication", fault), pytest.raises(error) as caught:
        store.delete(NAME)
    assert "nothing was deleted" in caught.value.message and OTHER in caught.value.message
    assert "DeletedDate" not in sm.describe_secret(SecretId=arn)
