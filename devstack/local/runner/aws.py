"""The embedded AWS as the runner sees it: its clients, the ARNs it names, the queues it sends records to.

Every client talks to the embedded AWS with fixed keys (:func:`_make_client`); the account is the
embedded AWS's own (``sts:GetCallerIdentity``) unless the runner was given one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

__all__ = ["Aws"]

_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def _make_client(service: str, endpoint_url: str, region: str) -> Any:
    """A client of the embedded AWS. One shared session: it caches the service models (fast clients)."""
    global _session  # noqa: PLW0603 - a process-wide cache
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        # Fixed keys: the embedded AWS accepts any, and the user's own (a profile, an SSO session) must
        # never be looked up, let alone sent, by the local stack.
        credentials = {"aws_access_key_id": "ecrcache-local", "aws_secret_access_key": "ecrcache-local"}
        config = Config(
            # DynamoDB Streams with botocore >= 1.44.4 (tooling.md, gotcha 4).
            account_id_endpoint_mode="disabled",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=15,
        )
        make = cast("Callable[..., Any]", _session.client)
        return make(service, region_name=region, endpoint_url=endpoint_url, config=config, **credentials)


class Aws:
    """Clients of the embedded AWS (one per service, made on first use) and the names the runner gives."""

    def __init__(self, *, endpoint_url: str, region: str, stack_name: str, account_id: str | None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self._account_id = account_id
        self._partition = (
            "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        )
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}

    def client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
        if client is None:  # made outside the lock: no other thread waits for a client being built
            client = _make_client(service, self.endpoint_url, self.region)
            with self._lock:
                client = self._clients.setdefault(service, client)
        return client

    @property
    def streams(self) -> DynamoDBStreamsClient:
        client: DynamoDBStreamsClient = self.client("dynamodbstreams")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        client: EventBridgeClient = self.client("events")
        return client

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            sts: STSClient = self.client("sts")
            self._account_id = str(sts.get_caller_identity()["Account"])
        return self._account_id

    def function_arn(self, function: str) -> str:
        return f"arn:{self._partition}:lambda:{self.region}:{self.account_id}:function:{self.stack_name}-{function}"

    def rule_arn(self, name: str, bus: str = "default") -> str:
        bus_name = bus.rsplit("/", 1)[-1]
        resource = f"rule/{name}" if bus_name == "default" else f"rule/{bus_name}/{name}"
        return f"arn:{self._partition}:events:{self.region}:{self.account_id}:{resource}"

    def queue_url(self, arn: str) -> str:
        with self._lock:
            cached = self._queue_urls.get(arn)
        if cached is not None:
            return cached
        parts = arn.split(":")
        url = self.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        with self._lock:
            self._queue_urls[arn] = url
        return url

    def remember_queue(self, arn: str, url: str) -> None:
        with self._lock:
            self._queue_urls[arn] = url

    def send(self, arn: str, body: Mapping[str, Any], attributes: Mapping[str, str | int] | None = None) -> str:
        """Send a dead-letter / destination message; returns the queue name."""
        message_attributes: dict[str, Any] = {
            name: {"DataType": "Number", "StringValue": str(value)}
            if isinstance(value, int)
            else {"DataType": "String", "StringValue": value or "-"}
            for name, value in (attributes or {}).items()
        }
        url = self.queue_url(arn)
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": json.dumps(body, default=str)}
        if message_attributes:
            kwargs["MessageAttributes"] = message_attributes
        self.sqs.send_message(**kwargs)
        return arn.rsplit(":", 1)[-1]
