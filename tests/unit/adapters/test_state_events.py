"""The state-change events' PutEvents: 10 entries a call at most, an entry the bus did not take is an error, and a
failed call is classified (throttling and 5xx retryable, access denied terminal)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.state_events import EventBridgeStateEvents
from ecrcache.engine.state_events import RULE_CONDITION_CHANGED, StateEvent
from ecrcache.errors import RetryableError, TerminalError

pytestmark = pytest.mark.unit


class FakeEvents:
    def __init__(self, *, fail: ClientError | None = None, failed_entries: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail = fail
        self.failed_entries = failed_entries

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if self.fail is not None:
            raise self.fail
        entries = [{"ErrorCode": "ThrottlingException"}] * self.failed_entries
        entries += [{"EventId": "e"}] * (len(Entries) - self.failed_entries)
        return {"FailedEntryCount": self.failed_entries, "Entries": entries}


def events(n: int) -> list[StateEvent]:
    return [StateEvent(RULE_CONDITION_CHANGED, {"prefix": f"p{i}"}) for i in range(n)]


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutEvents")


def test_events_go_ten_a_call_with_source_ecrcache() -> None:
    fake = FakeEvents()
    EventBridgeStateEvents(fake).publish(events(23))  # type: ignore[arg-type]
    assert [len(call) for call in fake.calls] == [10, 10, 3]
    first = fake.calls[0][0]
    assert (first["Source"], first["DetailType"], json.loads(first["Detail"])) == (
        "ecrcache",
        RULE_CONDITION_CHANGED,
        {"prefix": "p0"},
    )


def test_no_event_no_call() -> None:
    fake = FakeEvents()
    EventBridgeStateEvents(fake).publish([])  # type: ignore[arg-type]
    assert fake.calls == []


def test_an_entry_the_bus_did_not_take_is_a_retryable_error() -> None:
    with pytest.raises(RetryableError, match=r"did not take 1 event.*ThrottlingException"):
        EventBridgeStateEvents(FakeEvents(failed_entries=1)).publish(events(2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("InternalException", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
def test_a_failed_call_is_classified(code: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=code):
        EventBridgeStateEvents(FakeEvents(fail=client_error(code, status))).publish(events(1))  # type: ignore[arg-type]
