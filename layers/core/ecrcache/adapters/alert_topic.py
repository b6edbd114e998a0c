"""The stack's alert topic (``AlertTopic``): one SNS ``Publish`` per credential health event, e-mail-ready.

``Subject`` is the event's one-line summary (SNS API reference, "Publish": printable ASCII, fewer than 100
characters), ``Message`` the event's detail-type and detail as indented JSON, which an e-mail subscription
shows as is. botocore's adaptive retries cover throttling and 5xx (``RETRY_CONFIG``); what still fails is
raised, classified. No message holds a token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import RETRY_CONFIG, classify

if TYPE_CHECKING:
    from ecrcache.engine.credential_health import HealthEvent

__all__ = ["SnsAlerts"]

SUBJECT_MAX: Final = 99
"""SNS ``Subject``: "no line breaks or control characters, and less than 100 characters long" (SNS API
reference, "Publish", ``Subject`` constraints): at most 99."""


def _subject(text: str) -> str:
    printable = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return printable[:SUBJECT_MAX]


class SnsAlerts:
    """The alert topic (``AlertTopic``): one ``Publish`` per event."""

    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        """Made on first use (SNS has no type stubs installed here: ``Any``)."""
        if self._client is None:
            self._client = boto3.client("sns", config=RETRY_CONFIG)
        return self._client

    def send(self, event: HealthEvent) -> None:
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=_subject(event.subject),
                Message=json.dumps({"detail-type": event.detail_type, "detail": event.detail}, indent=2),
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "SNS Publish") from exc
