"""Every DynamoDB call of the pull-statistics store failing: retried where it can clear, else failed visibly.

A batch is one ``PutItem`` of its delta: a failure botocore cannot retry away fails the whole batch (the
service reports every counted record for redelivery), and nothing is counted from it. Reads (pending
deltas, seen ids, counters, desired rules) fail with a classified error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.dynamodb_codec import BATCH_ATTEMPTS
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.pull_stats import CounterKey
from tests.functional.dynamodb_wire import (
    BOTOCORE_ATTEMPTS,
    DENIED,
    THROTTLED,
    UNAVAILABLE,
    Answer,
    Wire,
    no_botocore_sleeps,
)
from tests.pull_events import AT, NODE, REGION, counted, pull_body

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 29, 12, 40, tzinfo=UTC)


@pytest.fixture(autouse=True)
def botocore_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    return no_botocore_sleeps(monkeypatch)


@pytest.fixture
def client(state_table: str) -> Any:
    return boto3.client("dynamodb", config=RETRY_CONFIG)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(state_table: str, client: Any, sleeps: list[float]) -> DynamoDbPullStatsStore:
    return DynamoDbPullStatsStore(state_table, client, sleep=sleeps.append)


def test_throttling_is_retried_by_botocore_and_the_delta_is_written(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, botocore_sleeps: list[float]
) -> None:
    # GIVEN DynamoDB throttling the first two attempts of the write
    wire = Wire(monkeypatch, PutItem=[THROTTLED, THROTTLED])
    # WHEN a batch is recorded THEN botocore retried (with backoff) and the third attempt made it
    assert store.add([counted(pull_body("e1"))], NOW) == 1
    assert wire.count("PutItem") == 3 and len(botocore_sleeps) == 2
    assert [e.seen_id for _, d in store.pending() for e in d.events] == [counted(pull_body("e1")).seen_id]
    assert (store.write_items, store.write_requests) == (1, 1)


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (THROTTLED, RetryableError, "ThrottlingException"),
        (UNAVAILABLE, RetryableError, "ServiceUnavailable"),
        (DENIED, TerminalError, "AccessDenied"),
    ],
)
def test_a_write_that_fails_beyond_botocores_retries_raises_classified_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, answer: Answer, error: type[Exception], code: str
) -> None:
    Wire(monkeypatch, PutItem=[answer] * BOTOCORE_ATTEMPTS)
    with pytest.raises(error, match="DynamoDB PutItem") as raised:
        store.add([counted(pull_body("e1"))], NOW)
    assert code in str(raised.value)
    assert store.pending() == [] and store.write_items == 0


def test_unprocessed_keys_are_read_again_with_backoff(
    store: DynamoDbPullStatsStore, monkeypatch: pytest.MonkeyPatch, state_table: str, sleeps: list[float]
) -> None:
    # GIVEN a read that leaves all its keys unprocessed once
    def leave_all(body: dict[str, Any]) -> Answer:
        return (200, {"Responses": {state_table: []}, "UnprocessedKeys": body["RequestItems"]})

    wire = Wire(monkeypatch, BatchGetItem=[leave_all])
    # WHEN the planner's counters are read THEN the keys were asked again after a pause
    assert store.counters_of([CounterKey(AT.date(), REGION, NODE, tag="18-alpine")]) == []
    assert wire.count("BatchGetItem") == 2 and sleeps == [0.05]
    assert wire.bodies("BatchGetItem")[1]["RequestItems"] == wire.bodies("BatchGetItem")[0]["RequestItems"]


def test_keys_left_unprocessed_for_good_fail_retryably(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, state_table: str
) -> None:
    keys = {state_table: {"Keys": [{"pk": {"S": "x"}, "sk": {"S": "y"}}]}}
    Wire(monkeypatch, BatchGetItem=[(200, {"Responses": {}, "UnprocessedKeys": keys})] * BATCH_ATTEMPTS)
    with pytest.raises(RetryableError, match="unprocessed"):
        store.deltas(["2026-11-29T12:40:00.000000Z#x"])


@pytest.mark.parametrize(("answer", "error"), [(DENIED, TerminalError), (UNAVAILABLE, RetryableError)])
def test_every_read_fails_with_a_classified_error(
    monkeypatch: pytest.MonkeyPatch, answer: Answer, error: type[Exception], store: DynamoDbPullStatsStore
) -> None:
    Wire(monkeypatch, Query=[answer] * 4 * BOTOCORE_ATTEMPTS)
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.counters([AT.date()], [""])
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.desired_rules()
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.pending()
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.seen(["2026-11-29T12:31"])
