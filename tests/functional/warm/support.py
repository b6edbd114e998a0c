"""Helpers of the warm planner's functional tests (a plain module: test modules import it)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from tests.conftest import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Counted:
    """A DynamoDB client that counts its calls, with a recording ``sleep``."""

    def __init__(self) -> None:
        self.client: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
        self.calls: Counter[str] = Counter()
        self.delays: list[float] = []
        self.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


class Serialised:
    """A client whose single calls are atomic, as AWS's are (moto in-process is not thread-safe within one
    call: a transaction deep-copies the table while another thread writes it); a read-modify-write across
    calls still races freely. One lock for every instance and service."""

    _lock = threading.Lock()

    def __init__(self, service: str = "dynamodb") -> None:
        self._client = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


def raiser(code: str, status: int) -> Callable[..., Any]:
    """A client method that fails as botocore raises after its own retries."""
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def fail(*_: Any, **__: Any) -> Any:
        raise ClientError(response, "op")

    return fail
