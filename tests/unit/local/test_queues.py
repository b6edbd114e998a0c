"""Lambda's SQS record and partial batch response rules, and the runner's batch buffer (no AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.local.runner.queues import _PAYLOAD_LIMIT, _Held, lambda_record, parse_batch_response

pytestmark = pytest.mark.unit

ARN = "arn:aws:sqs:eu-west-1:123456789012:jobs"


def message(message_id: str = "m-1", body: str = "{}", **extra: Any) -> dict[str, Any]:
    """A ``ReceiveMessage`` message as boto3 parses it."""
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "MD5OfBody": "md5",
        "Body": body,
        "Attributes": {
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000100",
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1700000000000",
        },
        **extra,
    }


def test_a_message_becomes_lambdas_record() -> None:
    record = lambda_record(message(body='{"a": 1}'), ARN)
    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh-m-1",
        "body": '{"a": 1}',
        "attributes": {
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000100",
        },
        "messageAttributes": {},
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "eu-west-1",
    }
    assert list(record["attributes"]) == [  # Lambda's order
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ]


def test_message_attributes_are_in_lambdas_camel_case_with_binary_as_base64() -> None:
    record = lambda_record(
        message(
            MD5OfMessageAttributes="md5-attrs",
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "warm"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
            Attributes={"ApproximateReceiveCount": "1", "AWSTraceHeader": "Root=1-abc", "Unknown": "x"},
        ),
        ARN,
    )
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "warm", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    assert record["md5OfMessageAttributes"] == "md5-attrs"
    assert record["attributes"] == {"ApproximateReceiveCount": "1", "AWSTraceHeader": "Root=1-abc"}


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"ItemIdentifier": "a"}]}, None),
        ({"batchItemFailures": ["a"]}, None),
        ({"batchItemFailures": {"itemIdentifier": "a"}}, None),
        ("done", None),
        ([{"itemIdentifier": "a"}], None),
    ],
)
def test_partial_batch_responses_follow_lambdas_rules(result: Any, failed: set[str] | None) -> None:
    assert parse_batch_response(result, ["a", "b", "c"]) == failed


def record(message_id: str, body: str = "x", count: str = "1") -> dict[str, Any]:
    return lambda_record(message(message_id, body, Attributes={"ApproximateReceiveCount": count}), ARN)


def test_held_records_are_taken_in_order_up_to_the_batch_size() -> None:
    held = _Held()
    for n in range(5):
        held.add(record(f"m{n}"))
    assert held.full(5)
    assert not held.full(6)
    batch, _ = held.take(3)
    assert [r["messageId"] for r in batch] == ["m0", "m1", "m2"]
    batch, _ = held.take(3)
    assert [r["messageId"] for r in batch] == ["m3", "m4"]
    assert held.records == []
    assert held.size == 0


def test_a_message_received_again_while_held_replaces_its_older_copy() -> None:
    held = _Held()
    held.add(record("m0"))
    held.add(record("m1"))
    held.add(record("m0", count="2"))  # its visibility timeout ran out during the window
    batch, _ = held.take(10)
    assert [(r["messageId"], r["attributes"]["ApproximateReceiveCount"]) for r in batch] == [("m0", "2"), ("m1", "1")]


def test_a_batch_stops_at_the_6_mb_payload_and_always_takes_one() -> None:
    big = "x" * (_PAYLOAD_LIMIT // 3)
    held = _Held()
    for n in range(4):
        held.add(record(f"m{n}", big))
    assert held.full(10_000)  # the payload, not the count
    batch, _ = held.take(10_000)
    assert len(batch) == 2  # a third would pass 6 MB
    assert sum(len(json.dumps(r)) for r in batch) <= _PAYLOAD_LIMIT
    assert [r["messageId"] for r in held.drain()] == ["m2", "m3"]

    oversized = _Held()
    oversized.add(record("huge", "y" * _PAYLOAD_LIMIT))
    batch, _ = oversized.take(10)
    assert [r["messageId"] for r in batch] == ["huge"]
