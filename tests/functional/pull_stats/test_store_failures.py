"""Every DynamoDB call of the pull-statistics store failing: retried where it can clear, else failed visibly.

A wire of our own (botocore's ``before-send``, once per HTTP attempt) answers the scripted operations;
the others go on to moto. What fails is reported as failed events with the error (the service turns
them into batch item failures), and nothing is half-counted: a failed transaction wrote nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

import boto3
import pytest
from moto.core.botocore_stubber import BotocoreStubber

from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.pull_stats_store import MAX_ATTEMPTS, DynamoDbPullStatsStore
from ecrcache.errors import RetryableError, TerminalError
from tests.pull_events import counted, pull_body

pytestmark = pytest.mark.functional

Answer = tuple[int, dict[str, Any]]
Script = Answer | None | Callable[[dict[str, Any]], Answer | None]
"""What one attempt gets: an answer, moto's (``None``), or an answer made from the request's body."""
THROTTLED: Final[Answer] = (
    400,
    {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate of requests exceeds"},
)
DENIED: Final[Answer] = (
    400,
    {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": "not authorized to perform"},
)
UNAVAILABLE: Final[Answer] = (503, {"__type": "com.amazon.coral.availability#ServiceUnavailableException"})
BOTOCORE_ATTEMPTS: Final = 6
"""``retries.max_attempts`` 5 (adapters/aws.py) counts retries: botocore makes 6 attempts in all."""


def cancelled(*codes: str) -> Answer:
    reasons = [{"Code": code, "Message": "..."} if code != "None" else {"Code": "None"} for code in codes]
    return (
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            "CancellationReasons": reasons,
        },
    )


class Wire:
    """Moto's DynamoDB, answering the next scripted ``(status, body)`` of an operation instead (each HTTP
    attempt takes one); every attempt is recorded. Moto's handler is where the answer is made, so a
    scripted attempt never reaches moto's backend (a ``before-send`` answer would, too)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **answers: Sequence[Script]) -> None:
        self.answers = {operation: list(script) for operation, script in answers.items()}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        dispatch = BotocoreStubber.process_request

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
            if not operation.startswith(("Batch", "Transact", "Query")):
                return dispatch(stubber, request)
            self.sent.append((operation, json.loads(request.body or b"{}")))
            queue = self.answers.get(operation)
            answer = queue.pop(0) if queue else None
            if callable(answer):
                answer = answer(self.sent[-1][1])
            if answer is None:
                return dispatch(stubber, request)
            status, body = answer
            return status, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body).encode()

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.sent if name == operation)

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        return [body for name, body in self.sent if name == operation]


@pytest.fixture(autouse=True)
def botocore_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry backoff, recorded instead of slept; and the adaptive mode's client-side rate
    limiter (which waits on a condition after throttling) let through at once."""
    slept: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", slept.append)
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket.acquire", lambda *_, **__: True)
    return slept


@pytest.fixture
def client(state_table: str) -> Any:
    return boto3.client("dynamodb", config=RETRY_CONFIG)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(state_table: str, client: Any, sleeps: list[float]) -> DynamoDbPullStatsStore:
    return DynamoDbPullStatsStore(state_table, client, sleep=sleeps.append)


def pulls_recorded(client: Any, table: str) -> int:
    found = client.get_item(
        TableName=table,
        Key={"pk": {"S": "PULLS#2026-11-29"}, "sk": {"S": "us-east-1#docker-hub/library/node:18-alpine"}},
    ).get("Item")
    return int(found["pulls"]["N"]) if found else 0


def test_throttling_is_retried_by_botocore_and_the_batch_counts(
    monkeypatch: pytest.MonkeyPatch,
    store: DynamoDbPullStatsStore,
    client: Any,
    state_table: str,
    botocore_sleeps: list[float],
) -> None:
    # GIVEN DynamoDB throttling the first two attempts of the read and of the transaction
    wire = Wire(monkeypatch, BatchGetItem=[THROTTLED, THROTTLED], TransactWriteItems=[THROTTLED, THROTTLED])
    # WHEN a batch is recorded
    result = store.record([counted(pull_body("e1"))])
    # THEN botocore retried each (with backoff) and the third attempts made it
    assert [e.event_id for e in result.counted] == ["e1"]
    assert (wire.count("BatchGetItem"), wire.count("TransactWriteItems")) == (3, 3)
    assert len(botocore_sleeps) == 4
    assert pulls_recorded(client, state_table) == 1


def test_throttling_beyond_botocores_retries_fails_the_events_retryably(
    monkeypatch: pytest.MonkeyPatch,
    store: DynamoDbPullStatsStore,
    client: Any,
    state_table: str,
) -> None:
    wire = Wire(monkeypatch, TransactWriteItems=[THROTTLED] * BOTOCORE_ATTEMPTS)
    result = store.record([counted(pull_body("e1"))])
    assert [e.event_id for e in result.failed] == ["e1"]
    assert result.retryable and result.error is not None and "ThrottlingException" in result.error
    assert wire.count("TransactWriteItems") == BOTOCORE_ATTEMPTS
    assert pulls_recorded(client, state_table) == 0


@pytest.mark.parametrize("operation", ["BatchGetItem", "TransactWriteItems"])
def test_access_denied_fails_every_event_at_once_and_terminally(
    monkeypatch: pytest.MonkeyPatch, operation: str, store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN a role that may not make the call
    wire = Wire(monkeypatch, **{operation: [DENIED]})
    # WHEN a batch is recorded
    result = store.record([counted(pull_body("e1")), counted(pull_body("e2"))])
    # THEN it is asked once, every event fails with the code (and no event content), nothing is counted
    assert sorted(e.event_id for e in result.failed) == ["e1", "e2"]
    assert (result.error, result.retryable) == (f"DynamoDB {operation} failed with AccessDeniedException", False)
    assert wire.count(operation) == 1
    assert wire.count("TransactWriteItems") == (1 if operation == "TransactWriteItems" else 0)
    assert pulls_recorded(client, state_table) == 0


def test_a_5xx_that_outlasts_botocores_retries_is_retryable(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore
) -> None:
    Wire(monkeypatch, BatchGetItem=[UNAVAILABLE] * BOTOCORE_ATTEMPTS)
    result = store.record([counted(pull_body("e1"))])
    assert [e.event_id for e in result.failed] == ["e1"] and result.retryable


def test_a_conditional_check_failure_re_reads_consistently_and_tries_again(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, client: Any, state_table: str, sleeps: list[float]
) -> None:
    # GIVEN the first transaction cancelled by a condition (another batch wrote first)
    wire = Wire(monkeypatch, TransactWriteItems=[cancelled("ConditionalCheckFailed", "None")])
    # WHEN a batch is recorded
    result = store.record([counted(pull_body("e1"))])
    # THEN the store read again, consistently this time, backed off, and counted in the second transaction
    assert [e.event_id for e in result.counted] == ["e1"]
    assert [body["RequestItems"][state_table]["ConsistentRead"] for body in wire.bodies("BatchGetItem")] == [
        False,
        True,
    ]
    assert wire.count("TransactWriteItems") == 2 and len(sleeps) == 1
    assert pulls_recorded(client, state_table) == 1


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError"])
def test_a_transaction_conflict_or_throttled_item_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, reason: str, store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    Wire(monkeypatch, TransactWriteItems=[cancelled("None", reason)])
    assert [e.event_id for e in store.record([counted(pull_body("e1"))]).counted] == ["e1"]
    assert pulls_recorded(client, state_table) == 1


def test_conflicts_that_never_end_fail_the_events_after_the_last_attempt(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, client: Any, state_table: str, sleeps: list[float]
) -> None:
    wire = Wire(monkeypatch, TransactWriteItems=[cancelled("ConditionalCheckFailed")] * MAX_ATTEMPTS)
    result = store.record([counted(pull_body("e1"))])
    assert [e.event_id for e in result.failed] == ["e1"] and result.retryable
    assert result.error is not None and "cancelled 5 times" in result.error
    assert wire.count("TransactWriteItems") == MAX_ATTEMPTS
    assert sleeps == [0.05, 0.1, 0.2, 0.4]  # backoff between attempts, none after the last
    assert pulls_recorded(client, state_table) == 0


def test_a_cancellation_no_retry_can_clear_fails_terminally(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore
) -> None:
    # GIVEN a transaction DynamoDB refuses (e.g. a minute's seen item grown past 400 KB)
    wire = Wire(monkeypatch, TransactWriteItems=[cancelled("ValidationError", "None")])
    result = store.record([counted(pull_body("e1"))])
    # THEN it is not tried again: the events fail, naming the reason
    assert [e.event_id for e in result.failed] == ["e1"]
    assert (result.error, result.retryable) == ("DynamoDB TransactWriteItems was cancelled: ValidationError", False)
    assert wire.count("TransactWriteItems") == 1


def test_a_failure_in_a_later_transaction_keeps_what_the_earlier_one_counted(
    store: DynamoDbPullStatsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 150 tags (two transactions), the second one denied
    events = [counted(pull_body(f"e{i}", tag=f"t{i:03}")) for i in range(150)]
    Wire(monkeypatch, TransactWriteItems=[None, DENIED])
    # WHEN recorded
    result = store.record(events)
    # THEN the first group's 99 events counted, the other 51 failed: redelivered, they count then
    assert (len(result.counted), len(result.failed)) == (99, 51)
    assert {e.event_id for e in result.counted}.isdisjoint(e.event_id for e in result.failed)
    again = store.record(list(result.failed))
    assert len(again.counted) == 51


def test_unprocessed_keys_are_read_again_with_backoff(
    store: DynamoDbPullStatsStore, monkeypatch: pytest.MonkeyPatch, state_table: str, sleeps: list[float]
) -> None:
    # GIVEN a read that leaves all its keys unprocessed once
    def leave_all(body: dict[str, Any]) -> Answer:
        return (200, {"Responses": {state_table: []}, "UnprocessedKeys": body["RequestItems"]})

    wire = Wire(monkeypatch, BatchGetItem=[leave_all])
    # WHEN a batch is recorded THEN the keys were asked again after a pause, and the batch counted
    assert [e.event_id for e in store.record([counted(pull_body("e1"))]).counted] == ["e1"]
    assert wire.count("BatchGetItem") == 2 and sleeps == [0.05]
    assert wire.bodies("BatchGetItem")[1]["RequestItems"] == wire.bodies("BatchGetItem")[0]["RequestItems"]


def test_keys_left_unprocessed_for_good_fail_the_batch_retryably(
    monkeypatch: pytest.MonkeyPatch, store: DynamoDbPullStatsStore, state_table: str
) -> None:
    keys = {state_table: {"Keys": [{"pk": {"S": "x"}, "sk": {"S": "y"}}]}}
    Wire(monkeypatch, BatchGetItem=[(200, {"Responses": {}, "UnprocessedKeys": keys})] * (MAX_ATTEMPTS + 1))
    result = store.record([counted(pull_body("e1"))])
    assert [e.event_id for e in result.failed] == ["e1"] and result.retryable
    assert result.error is not None and "unprocessed" in result.error


@pytest.mark.parametrize(("answer", "error"), [(DENIED, TerminalError), (UNAVAILABLE, RetryableError)])
def test_reading_counters_or_rules_fails_with_a_classified_error(
    monkeypatch: pytest.MonkeyPatch,
    answer: Answer,
    error: type[Exception],
    store: DynamoDbPullStatsStore,
) -> None:
    Wire(monkeypatch, Query=[answer] * 2 * BOTOCORE_ATTEMPTS)
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.counters([counted(pull_body("e1")).at.date()], [""])
    with pytest.raises(error, match="DynamoDB Query failed"):
        store.desired_rules()
