"""DynamoDB on moto with scripted failures: a wire of our own answers the scripted operations' attempts.

Moto's handler (``BotocoreStubber.process_request``) is where the answer is made, once per HTTP attempt,
so botocore's retries see each scripted answer in turn and a scripted attempt never reaches moto's
backend; every other attempt goes on to moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import pytest
from moto.core.botocore_stubber import BotocoreStubber

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
INTERNAL: Final[Answer] = (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"})
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
            if operation not in self.answers and not operation.startswith(("Batch", "Transact", "Query")):
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


def no_botocore_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry backoff, recorded instead of slept; and the adaptive mode's client-side rate
    limiter (which waits on a condition after throttling) let through at once."""
    slept: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", slept.append)
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket.acquire", lambda *_, **__: True)
    return slept


@dataclass
class Fault:
    """``times`` attempts of ``operation`` whose body ``when`` matches get ``answer`` (after ``skip``
    matching attempts went on to moto); ``applied``: moto handles the attempt first (the call took
    effect, its answer is lost)."""

    operation: str
    answer: Answer | Callable[[dict[str, Any]], Answer]
    times: int = 1
    when: Callable[[dict[str, Any]], bool] = lambda _: True
    skip: int = 0
    applied: bool = False


class FaultWire:
    """Moto's DynamoDB, some attempts answered by a :class:`Fault` instead; every attempt is recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *faults: Fault) -> None:
        self.faults = [replace(fault) for fault in faults]
        self.sent: list[tuple[str, dict[str, Any]]] = []
        dispatch = BotocoreStubber.process_request

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else target
            if not target.startswith("DynamoDB_"):
                return dispatch(stubber, request)
            operation = target.rsplit(".", 1)[-1]
            body: dict[str, Any] = json.loads(request.body or b"{}")
            self.sent.append((operation, body))
            fault = next((f for f in self.faults if f.operation == operation and f.times and f.when(body)), None)
            if fault is None:
                return dispatch(stubber, request)
            if fault.skip:
                fault.skip -= 1
                return dispatch(stubber, request)
            fault.times -= 1
            if fault.applied:
                dispatch(stubber, request)
            status, answer = fault.answer(body) if callable(fault.answer) else fault.answer
            return status, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(answer).encode()

        monkeypatch.setattr(BotocoreStubber, "process_request", process_request)

    def count(self, operation: str, when: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
        return sum(1 for name, body in self.sent if name == operation and when(body))
