"""Credential health events on the account's default event bus (then the alert topic, when the stack has one).

Each event is one ``PutEvents`` entry (``Source: ecrcache``, ``DetailType`` ``Credential Health Changed`` or
``Credential Expiring``; the schemas are in ``docs/events/``). ``PutEvents`` answers 200 with
``FailedEntryCount`` for entries it did not take (EventBridge API reference, "PutEvents": check
``FailedEntryCount`` and resend the entries that failed): such an entry is an error here like a failed call.
botocore's adaptive retries cover throttling and 5xx first (``RETRY_CONFIG``). Each channel's delivery is
told apart: the topic failing after the bus took the event raises :class:`~ecrcache.errors.AlertNotSent` (the
service records the event as sent and owes it to the topic only); :meth:`~EventBridgeHealthNotifier.alert`
sends an owed one to the topic alone. No event ever holds a token:
the details are names, states, dates and the failure texts the check recorded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import RETRY_CONFIG, classify
from ecrcache.engine.state_events import EVENT_SOURCE
from ecrcache.errors import AlertNotSent, EcrcacheError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

    from ecrcache.adapters.alert_topic import SnsAlerts
    from ecrcache.engine.credential_health import HealthEvent

__all__ = ["EventBridgeHealthNotifier"]


class EventBridgeHealthNotifier:
    """Implements :class:`ecrcache.ports.HealthNotifier`: the default bus, then the alert topic if there is one."""

    def __init__(self, client: EventBridgeClient | None = None, *, alerts: SnsAlerts | None = None) -> None:
        self._client = client
        self.alerts = alerts

    @property
    def client(self) -> EventBridgeClient:
        """Made on first use: the pull statistics and the warm worker hold a notifier they rarely use."""
        if self._client is None:
            self._client = boto3.client("events", config=RETRY_CONFIG)
        return self._client

    def publish(self, event: HealthEvent) -> None:
        try:
            out = self.client.put_events(
                Entries=[{"Source": EVENT_SOURCE, "DetailType": event.detail_type, "Detail": json.dumps(event.detail)}]
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "EventBridge PutEvents") from exc
        if out.get("FailedEntryCount", 0):
            codes = sorted({str(e.get("ErrorCode", "Unknown")) for e in out.get("Entries", []) if e.get("ErrorCode")})
            raise RetryableError(
                f"EventBridge PutEvents did not take the event ({', '.join(codes)})", reason="PutEvents"
            )
        if self.alerts is not None:
            try:
                self.alerts.send(event)
            except EcrcacheError as exc:  # the bus took it: only the topic owes it
                raise AlertNotSent(
                    f"the alert topic did not take the event ({exc.message})", reason=exc.reason
                ) from exc

    def alert(self, event: HealthEvent) -> None:
        if self.alerts is not None:
            self.alerts.send(event)
