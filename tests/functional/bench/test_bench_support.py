"""The benchmarks' rollback of moto's ``TransactWriteItems`` by item (:func:`bench.support.item_rollback_copies`):
what a transaction leaves behind is moto's own, with or without the patch; only its cost changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from bench import support
from bench.support import item_rollback_copies

pytestmark = pytest.mark.functional

TABLE = "bench-rollback"


def _table(client: Any) -> None:
    """The table (with its stream, whose records moto keeps) and one item ``a``/``1`` with ``n`` 1."""
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


@pytest.fixture(params=["moto", "item rollback"])
def dynamodb(request: pytest.FixtureRequest) -> Iterator[Any]:
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
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


def test_a_write_made_while_a_transaction_runs_is_not_undone_by_its_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the item rollback, and another thread that updates an item while a transaction naming it is under way
    # (between the transaction's copy of the item and its failure), as a fan-out's worker threads do
    with moto.mock_aws():
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
        other = boto3.client("dynamodb", region_name="us-east-1")
        others: list[threading.Thread] = []
        saved = support._saved_item

        def saved_then_overtaken(backend: Any, op: dict[str, Any]) -> Any:
            found = saved(backend, op)
            if not others:
                others.append(threading.Thread(target=other.update_item, kwargs=_update("a")["Update"]))
                others[0].start()
                others[0].join(timeout=0.5)  # made at once unless it waits for the transaction
            return found

        monkeypatch.setattr(support, "_saved_item", saved_then_overtaken)
        refused = {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "missing"}, "sk": {"S": "1"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        with item_rollback_copies():
            # WHEN the transaction fails and is rolled back
            with pytest.raises(ClientError, match="TransactionCanceled"):
                client.transact_write_items(TransactItems=[_update("a"), refused])
            others[0].join(timeout=10)
            # THEN the other thread's write stands: the transaction's own change is gone, not the other one
            item = client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"S": "1"}})["Item"]
    assert not others[0].is_alive()
    assert item["n"] == {"N": "2"}
