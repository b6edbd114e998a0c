"""The state table as ``template.yaml`` declares it supports what the design relies on.

Versioned writes with a history item in one transaction, conflict detection, "history across all
resources, newest first" through ``gsi1``, and a NEW_AND_OLD_IMAGES stream for the reconciler.
The item layout here is illustrative; the point is the table definition.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.template import table_definition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef

pytestmark = pytest.mark.functional


def _versioned_write(
    table: str, *, name: str, version: int, read_version: int | None, at: str
) -> list[TransactWriteItemTypeDef]:
    """Put a desired rule at ``version`` if it is still at ``read_version``, and record history."""
    desired: PutTypeDef = {
        "TableName": table,
        "Item": {"pk": {"S": f"RULE#{name}"}, "sk": {"S": "DESIRED"}, "version": {"N": str(version)}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    if read_version is not None:
        desired["ConditionExpression"] = "version = :read"
        desired["ExpressionAttributeValues"] = {":read": {"N": str(read_version)}}
    history: PutTypeDef = {
        "TableName": table,
        "Item": {
            "pk": {"S": f"RULE#{name}"},
            "sk": {"S": f"HISTORY#{at}"},
            "gsi1pk": {"S": "HISTORY"},
            "gsi1sk": {"S": f"{at}#RULE#{name}"},
            "version": {"N": str(version)},
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    return [{"Put": desired}, {"Put": history}]


@pytest.fixture
def client(state_table: str) -> DynamoDBClient:
    return boto3.client("dynamodb")


def test_table_definition_has_the_keys_create_table_takes() -> None:
    # GIVEN the template's state table WHEN it is turned into create_table arguments
    definition = table_definition()

    # THEN it has exactly the keys of a create_table call (TableName aside), streams enabled
    assert set(definition) == {
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "GlobalSecondaryIndexes",
        "StreamSpecification",
    }
    assert definition["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert definition["BillingMode"] == "PAY_PER_REQUEST"


def test_state_table_fixture_builds_the_template_table(client: DynamoDBClient, state_table: str) -> None:
    # GIVEN the state_table fixture WHEN the table is described
    table = client.describe_table(TableName=state_table)["Table"]
    ttl = client.describe_time_to_live(TableName=state_table)["TimeToLiveDescription"]

    # THEN it is the template's table, with TTL on, and TABLE_NAME names it for the code under test
    assert [index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])] == ["gsi1"]
    assert ttl.get("AttributeName") == "expires_at"
    assert ttl.get("TimeToLiveStatus") == "ENABLED"
    assert os.environ["TABLE_NAME"] == state_table


def test_state_table_transaction_writes_desired_item_and_history(client: DynamoDBClient, state_table: str) -> None:
    # GIVEN an empty state table
    # WHEN a rule is created with its history item in one transaction
    client.transact_write_items(
        TransactItems=_versioned_write(state_table, name="docker-hub", version=1, read_version=None, at="2026-11-29T12")
    )

    # THEN both items are there
    items = client.query(
        TableName=state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "RULE#docker-hub"}},
    )["Items"]
    assert sorted(item["sk"]["S"] for item in items) == ["DESIRED", "HISTORY#2026-11-29T12"]


def test_state_table_stale_write_is_cancelled_and_writes_nothing(client: DynamoDBClient, state_table: str) -> None:
    # GIVEN a rule at version 2
    for version, read, at in ((1, None, "2026-11-29T12"), (2, 1, "2026-11-29T13")):
        client.transact_write_items(
            TransactItems=_versioned_write(state_table, name="ghcr", version=version, read_version=read, at=at)
        )

    # WHEN a writer that read version 1 tries to write version 2 again
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(
            TransactItems=_versioned_write(state_table, name="ghcr", version=2, read_version=1, at="2026-11-29T14")
        )

    # THEN the transaction is cancelled by the condition, and neither item was written
    error = caught.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason.get("Code") for reason in error.get("CancellationReasons", [])]
    assert reasons[0] == "ConditionalCheckFailed"
    desired = client.get_item(TableName=state_table, Key={"pk": {"S": "RULE#ghcr"}, "sk": {"S": "DESIRED"}})
    assert desired["Item"]["version"] == {"N": "2"}
    history = client.get_item(
        TableName=state_table, Key={"pk": {"S": "RULE#ghcr"}, "sk": {"S": "HISTORY#2026-11-29T14"}}
    )
    assert "Item" not in history


def test_state_table_gsi1_lists_history_of_all_resources_newest_first(client: DynamoDBClient, state_table: str) -> None:
    # GIVEN changes to two rules at interleaved times
    for name, version, read, at in (
        ("docker-hub", 1, None, "2026-11-29T10"),
        ("quay", 1, None, "2026-11-29T11"),
        ("docker-hub", 2, 1, "2026-11-29T12"),
    ):
        client.transact_write_items(
            TransactItems=_versioned_write(state_table, name=name, version=version, read_version=read, at=at)
        )

    # WHEN history is queried through gsi1, descending
    page = client.query(
        TableName=state_table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :h",
        ExpressionAttributeValues={":h": {"S": "HISTORY"}},
        ScanIndexForward=False,
    )

    # THEN every resource's history comes back, newest first, with the whole item (projection ALL)
    assert [item["gsi1sk"]["S"] for item in page["Items"]] == [
        "2026-11-29T12#RULE#docker-hub",
        "2026-11-29T11#RULE#quay",
        "2026-11-29T10#RULE#docker-hub",
    ]
    assert page["Items"][0]["version"] == {"N": "2"}


def test_state_table_stream_carries_new_and_old_images(client: DynamoDBClient, state_table: str) -> None:
    # GIVEN a rule created and then updated
    client.transact_write_items(
        TransactItems=_versioned_write(state_table, name="k8s", version=1, read_version=None, at="2026-11-29T12")
    )
    client.transact_write_items(
        TransactItems=_versioned_write(state_table, name="k8s", version=2, read_version=1, at="2026-11-29T13")
    )

    # WHEN the reconciler reads the table's stream from the start
    stream_arn = client.describe_table(TableName=state_table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    # THEN the update of the desired item carries both images
    desired = [r for r in records if r["dynamodb"]["Keys"]["sk"] == {"S": "DESIRED"}]
    assert [r["eventName"] for r in desired] == ["INSERT", "MODIFY"]
    update = desired[1]["dynamodb"]
    assert update["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert update["OldImage"]["version"] == {"N": "1"}
    assert update["NewImage"]["version"] == {"N": "2"}
