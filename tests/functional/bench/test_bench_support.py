"""The benchmarks' rollback of moto's ``TransactWriteItems`` by item (:func:`bench.support.item_rollback_copies`):
what a transaction leaves behind is moto's own, with or without the patch; only its cost changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from bench.support import item_rollback_copies

pytestmark = pytest.mark.functional

TABLE = "bench-rollback"


@pytest.fixture(params=["moto", "item rollback"])
def dynamodb(request: pytest.FixtureRequest) -> Iterator[Any]:
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
        if request.param == "moto":
            yield client
        else:
            with item_rollback_copies():
                yield client


def _items(client: Any) -> list[dict[str, Any]]:
    found = client.scan(TableName=TABLE)["Items"]
    return sorted(found, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def _update(pk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": pk}, "sk": {"S": "1"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def test_a_transaction_that_fails_leaves_every_item_as_it_was(dynamodb: Any) -> None:
    before = _items(dynamodb)
    refused = {
        "Put": {
            "TableName": TABLE,
            "Item": {"pk": {"S": "a"}, "sk": {"S": "2"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    new = {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}}
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=[_update("a"), new, refused])
    assert _items(dynamodb) == before


def test_a_transaction_that_succeeds_writes_every_item(dynamodb: Any) -> None:
    new = {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}}
    dynamodb.transact_write_items(TransactItems=[_update("a"), new])
    assert _items(dynamodb) == [
        {"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "2"}},
        {"pk": {"S": "b"}, "sk": {"S": "1"}},
    ]
