"""State-change events on the account's default event bus (``PutEvents``, ``Source: ecrcache``).

``PutEvents`` takes at most 10 entries a call and answers 200 with ``FailedEntryCount`` for the entries it did
not take (EventBridge API reference, "PutEvents"): such an entry is an error here like a failed call. botocore's
adaptive retries cover throttling and 5xx first (``RETRY_CONFIG``). The details are names, states, counts and the
texts the status records hold: never a secret.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import RETRY_CONFIG, classify
from ecrcache.engine.state_events import EVENT_SOURCE
from ecrcache.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from ecrcache.engine.state_events import StateEvent

__all__ = ["EventBridgeStateEvents"]

MAX_ENTRIES: Final = 10
"""PutEvents' limit of entries per request (EventBridge API reference, "PutEvents": Entries, 1 to 10 items)."""


class EventBridgeStateEvents:
    """Implements :class:`ecrcache.ports.StateEventPublisher` on the default event bus."""

    def __init__(self, client: EventBridgeClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> EventBridgeClient:
        """Made on first use: most runs change no condition and finish no warm run."""
        if self._client is None:
            self._client = boto3.client("events", config=RETRY_CONFIG)
        return self._client

    def publish(self, events: Sequence[StateEvent]) -> None:
        for start in range(0, len(events), MAX_ENTRIES):
            self._put(events[start : start + MAX_ENTRIES])

    def _put(self, events: Sequence[StateEvent]) -> None:
        entries: list[PutEventsRequestEntryTypeDef] = [
            {"Source": EVENT_SOURCE, "DetailType": event.detail_type, "Detail": json.dumps(event.detail)}
            for event in events
        ]
        try:
            out = self.client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "EventBridge PutEvents") from exc
        if out.get("FailedEntryCount", 0):
            codes = sorted({str(e.get("ErrorCode", "Unknown")) for e in out.get("Entries", []) if e.get("ErrorCode")})
            raise RetryableError(
                f"EventBridge PutEvents did not take {out['FailedEntryCount']} event(s) ({', '.join(codes)})",
                reason="PutEvents",
            )
