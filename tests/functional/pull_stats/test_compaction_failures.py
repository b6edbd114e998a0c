"""DynamoDB failing under the two-stage pull statistics, on moto: the batch's delta, every call of the compaction.

A wire of our own (moto's botocore handler, once per HTTP attempt) answers the scripted calls with an
error; the others go on to moto. A delta that cannot be written fails the whole batch (SQS delivers it
again) and counts nothing; a compaction that fails fails no record (``PullStatsCompactionFailed``), and
a later run (resumed once the lease runs out) leaves the counters exactly as one delivery of each event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import boto3
import pytest

from ecrcache.adapters import pull_stats_store
from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.pull_delta_codec import encode_events
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.pull_stats import PullEvent
from tests.functional.dynamodb_wire import (
    BOTOCORE_ATTEMPTS,
    DENIED,
    INTERNAL,
    THROTTLED,
    UNAVAILABLE,
    Answer,
    Fault,
    no_botocore_sleeps,
)
from tests.functional.dynamodb_wire import (
    FaultWire as Wire,
)
from tests.functional.pull_stats.test_compaction import (
    E1,
    E2,
    E3,
    E4,
    E5,
    E6,
    E7,
    E8,
    EXPIRED,
    INTERVAL,
    T0,
    Clock,
    Stack,
    b_pull,
    lease_item,
    partition,
    records,
    reference,
    sequence,
    service_of,
)
from tests.pull_events import AT, WARMER_ROLE, pull_body

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("metrics_sent")]

Body = dict[str, Any]


# What each call of the stores sends (its body), to aim a fault at one of them


def delta_put(body: Body) -> bool:
    return bool(body["Item"]["pk"]["S"] == "PULLDELTA")


def lease(body: Body) -> bool:
    return bool(body["Key"]["pk"]["S"] == "PULLCOMPACT")


def claim(body: Body) -> bool:
    return lease(body) and "compacted_at" not in body["UpdateExpression"]


def finish(body: Body) -> bool:
    return lease(body) and "compacted_at" in body["UpdateExpression"]


def counter(body: Body) -> bool:
    return bool(body["Key"]["pk"]["S"].startswith("PULLS#"))


def query_of(prefix: str) -> Callable[[Body], bool]:
    return lambda body: bool(body["ExpressionAttributeValues"][":pk"]["S"].startswith(prefix))


def keys_of(prefix: str) -> Callable[[Body], bool]:
    def matches(body: Body) -> bool:
        (wanted,) = body["RequestItems"].values()
        return bool(wanted["Keys"][0]["pk"]["S"].startswith(prefix))

    return matches


def writes(kind: str) -> Callable[[Body], bool]:
    def matches(body: Body) -> bool:
        (requests,) = body["RequestItems"].values()
        return kind in requests[0]

    return matches


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def botocore_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    return no_botocore_sleeps(monkeypatch)


@pytest.fixture
def stack(state_table: str) -> Stack:
    client = boto3.client("dynamodb", config=RETRY_CONFIG)
    pulls = DynamoDbPullStatsStore(state_table, client, sleep=lambda _: None, new_id=sequence("delta"))
    return Stack(client, state_table, pulls)


def failed_compactions(sent: list[tuple[str, float]]) -> int:
    return sum(int(value) for name, value in sent if name == "PullStatsCompactionFailed")


# --------------------------------------------------------------------------------------------------
# The batch's delta


PUT_FAULTS: Final = {
    "throttled-beyond-retries": (THROTTLED, BOTOCORE_ATTEMPTS, "ThrottlingException"),
    "access-denied": (DENIED, 1, "AccessDeniedException"),
    "unavailable-beyond-retries": (UNAVAILABLE, BOTOCORE_ATTEMPTS, "ServiceUnavailableException"),
}


@pytest.mark.parametrize("fault", PUT_FAULTS.values(), ids=PUT_FAULTS.keys())
def test_a_delta_that_cannot_be_written_fails_the_whole_batch_and_counts_nothing(
    monkeypatch: pytest.MonkeyPatch, stack: Stack, metrics_sent: list[tuple[str, float]], fault: tuple[Answer, int, str]
) -> None:
    # GIVEN DynamoDB refusing the delta's PutItem
    answer, attempts, code = fault
    service = service_of(stack, Clock(T0))
    wire = Wire(monkeypatch, Fault("PutItem", answer, times=attempts, when=delta_put))

    # WHEN a batch of three pulls and the warmer's pull is recorded
    outcome = service.record(records(E1, E2, E3, pull_body("w1", role=WARMER_ROLE)))

    # THEN every counted record failed (the warmer's pull was dropped, not failed), after botocore's attempts
    assert outcome.failed == ("msg-0", "msg-1", "msg-2")
    assert outcome.error is not None and code in outcome.error
    assert wire.count("PutItem", delta_put) == attempts
    # AND nothing was written and no compaction was tried
    assert partition(stack.client, stack.table, "PULLDELTA") == [] and stack.counters() == {}
    assert wire.count("GetItem") == 0 and lease_item(stack.client, stack.table) is None
    assert ("PullEventsFailed", 3) in metrics_sent and failed_compactions(metrics_sent) == 0

    # WHEN SQS delivers the batch again THEN it counts, once
    assert service.record(records(E1, E2, E3)).failed == ()
    assert stack.counters() == reference(E1, E2, E3)


def test_a_batch_split_over_deltas_and_failed_half_way_counts_once_when_delivered_again(
    monkeypatch: pytest.MonkeyPatch, stack: Stack
) -> None:
    # GIVEN a batch too big for one delta (one event per delta here), its second delta refused
    def one_per_delta(events: list[PullEvent]) -> list[bytes]:
        return encode_events(events, limit=1)

    monkeypatch.setattr(pull_stats_store, "encode_events", one_per_delta)
    clock = Clock(T0)
    service = service_of(stack, clock)
    Wire(monkeypatch, Fault("PutItem", DENIED, when=delta_put, skip=1))

    # WHEN it is recorded, then delivered again
    first = service.record(records(E1, E2, E3))
    written = len(stack.pending())
    clock.now = T0 + timedelta(seconds=5)
    again = service.record(records(E1, E2, E3))

    # THEN the first delivery failed whole (one delta written), the second counted each event once
    assert (first.failed, written) == (("msg-0", "msg-1", "msg-2"), 1)
    assert again.failed == ()
    assert stack.counters() == reference(E1, E2, E3)
    assert stack.pending() == []


# --------------------------------------------------------------------------------------------------
# The compaction's calls


@dataclass(frozen=True)
class Case:
    fault: Fault
    started: bool
    """Whether the run had taken the lease when it failed (the next run is then a resume, one lease later)."""


def cases() -> dict[str, Case]:
    return {
        "lease-read-throttled": Case(Fault("GetItem", THROTTLED, BOTOCORE_ATTEMPTS, lease), started=False),
        "pending-query-denied": Case(Fault("Query", DENIED, 1, query_of("PULLDELTA")), started=False),
        "claim-unavailable": Case(Fault("UpdateItem", UNAVAILABLE, BOTOCORE_ATTEMPTS, claim), started=False),
        "seen-query-unavailable": Case(Fault("Query", UNAVAILABLE, BOTOCORE_ATTEMPTS, query_of("PULLSEEN#")), True),
        "seen-write-denied": Case(Fault("BatchWriteItem", DENIED, 1, writes("PutRequest")), started=True),
        "marks-read-throttled": Case(Fault("BatchGetItem", THROTTLED, BOTOCORE_ATTEMPTS, keys_of("PULLS#")), True),
        "first-counter-throttled": Case(Fault("UpdateItem", THROTTLED, BOTOCORE_ATTEMPTS, counter), started=True),
        "third-counter-denied": Case(Fault("UpdateItem", DENIED, 1, counter, skip=2), started=True),
        "delete-throttled": Case(Fault("BatchWriteItem", THROTTLED, BOTOCORE_ATTEMPTS, writes("DeleteRequest")), True),
        "seen-unprocessed": Case(
            Fault("BatchWriteItem", lambda body: (200, {"UnprocessedItems": body["RequestItems"]}), 8),
            started=True,
        ),
        "finish-denied": Case(Fault("UpdateItem", DENIED, 1, finish), started=True),
    }


@pytest.mark.parametrize("case", cases().values(), ids=cases().keys())
def test_a_compaction_that_fails_fails_no_record_and_a_later_run_completes_exactly(
    monkeypatch: pytest.MonkeyPatch, stack: Stack, metrics_sent: list[tuple[str, float]], case: Case
) -> None:
    # GIVEN a service, two pending batches (E3 in both), and DynamoDB failing a call of the compaction
    clock = Clock(T0)
    service = service_of(stack, clock)
    stack.add([E1, E2, E3], T0 - timedelta(seconds=2))
    stack.add([E3, E4, E5, E8], T0 - timedelta(seconds=1))
    wire = Wire(monkeypatch, case.fault)

    # WHEN a batch comes (the compaction is due)
    outcome = service.record(records(E6, E7))

    # THEN the batch counted, the failed call was made, the compaction failure counted
    assert (outcome.failed, outcome.counted) == ((), 2)
    assert wire.faults[0].times == 0 and wire.count(case.fault.operation) > 0
    assert failed_compactions(metrics_sent) == 1
    lease = lease_item(stack.client, stack.table)
    assert (lease is not None and "run" in lease) == case.started

    # WHEN later batches come (one with a copy of E1), the last an interval after the one that compacted
    clock.now = T0 + EXPIRED
    assert service.record(records(E1, b_pull("e10", AT + timedelta(minutes=4)))).failed == ()
    clock.now = T0 + EXPIRED + INTERVAL
    assert service.record(records()).failed == ()

    # THEN every event is counted exactly once, nothing is pending, no run is under way
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8, b_pull("e10", AT + timedelta(minutes=4)))
    assert stack.pending() == []
    assert "run" not in (lease_item(stack.client, stack.table) or {})
    assert failed_compactions(metrics_sent) == 1


def test_a_counter_write_applied_whose_answer_was_lost_is_not_a_lost_lease(
    monkeypatch: pytest.MonkeyPatch, stack: Stack, metrics_sent: list[tuple[str, float]]
) -> None:
    # GIVEN two pending batches, and DynamoDB applying the second counter write but answering a 500
    # (botocore sends it again; that attempt fails its condition: the counter already has the run's mark)
    service = service_of(stack, Clock(T0))
    stack.add([E1, E2, E3], T0 - timedelta(seconds=2))
    stack.add([E3, E4, E5, E8], T0 - timedelta(seconds=1))
    wire = Wire(monkeypatch, Fault("UpdateItem", INTERNAL, 1, counter, skip=1, applied=True))

    # WHEN a batch comes (the compaction is due)
    outcome = service.record(records(E6, E7))

    # THEN the run took its own mark for the write it made, and finished: exact, nothing failed
    assert (outcome.failed, outcome.counted) == ((), 2)
    assert wire.faults[0].times == 0
    assert failed_compactions(metrics_sent) == 0
    assert stack.counters() == reference(E1, E2, E3, E4, E5, E6, E7, E8)
    assert "run" not in (lease_item(stack.client, stack.table) or {})


def test_a_run_cut_short_while_deleting_more_than_one_request_of_deltas_finishes_on_resume(
    monkeypatch: pytest.MonkeyPatch, stack: Stack
) -> None:
    # GIVEN 30 deltas (two BatchWriteItem requests to delete), the second delete request denied
    bodies = [b_pull(f"x{i:02}", AT + timedelta(seconds=i), tag=f"t{i % 3}") for i in range(30)]
    for i, body in enumerate(bodies):
        stack.add([body, bodies[i - 1]], T0 - timedelta(seconds=60 - i))
    Wire(monkeypatch, Fault("BatchWriteItem", DENIED, when=writes("DeleteRequest"), skip=1))

    # WHEN compacted: the run fails; then resumed once its lease ran out
    with pytest.raises(TerminalError, match="AccessDeniedException"):
        stack.compaction().run_if_due(T0)
    left = len(stack.pending())
    counted = stack.counters()
    resumed = stack.compaction().run_if_due(T0 + EXPIRED)

    # THEN the first 25 deltas were gone; the resume deleted the rest and folded nothing again
    assert left == 5 and counted == reference(*bodies)
    assert resumed is not None and (resumed.resumed, resumed.deltas, resumed.events, resumed.finished) == (
        True,
        30,
        0,
        True,
    )
    assert stack.counters() == reference(*bodies) and stack.pending() == []


def test_a_resume_whose_delta_read_fails_is_resumed_again(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> None:
    # GIVEN a run that failed at its first counter, and its resume failing to read its deltas
    stack.add([E1, E2])
    stack.add([E3, E1])
    Wire(
        monkeypatch,
        Fault("UpdateItem", DENIED, when=counter),
        Fault("BatchGetItem", THROTTLED, BOTOCORE_ATTEMPTS, keys_of("PULLDELTA"), skip=1),  # the resume's read
    )
    with pytest.raises(TerminalError):
        stack.compaction().run_if_due(T0)
    run = (lease_item(stack.client, stack.table) or {})["run"]

    # WHEN resumed (it fails), then resumed again
    with pytest.raises(RetryableError, match="BatchGetItem"):
        stack.compaction().run_if_due(T0 + EXPIRED)
    again = stack.compaction().run_if_due(T0 + 2 * EXPIRED)

    # THEN the same run was completed, each event counted once
    assert again is not None and again.resumed and again.run == run["S"] and again.duplicates == 1
    assert stack.counters() == reference(E1, E2, E3) and stack.pending() == []


READ_FAULTS: Final = {
    "pending-unavailable": (Fault("Query", UNAVAILABLE, BOTOCORE_ATTEMPTS, query_of("PULLDELTA")), RetryableError),
    "seen-denied": (Fault("Query", DENIED, 1, query_of("PULLSEEN#")), TerminalError),
}


@pytest.mark.parametrize(("fault", "error"), READ_FAULTS.values(), ids=READ_FAULTS.keys())
def test_a_reader_that_cannot_read_the_pending_deltas_fails_with_a_classified_error(
    monkeypatch: pytest.MonkeyPatch, stack: Stack, fault: Fault, error: type[Exception]
) -> None:
    # GIVEN a pending delta, and DynamoDB failing what the reader reads with the counters
    service = service_of(stack, Clock(T0))
    stack.add([E1])
    Wire(monkeypatch, fault)
    # WHEN the pulls are read THEN the error is classified (the API answers 503 / 500), never a partial answer
    with pytest.raises(error, match="DynamoDB Query failed"):
        service.pulls(None, top=10, window_days=7, now=AT)
