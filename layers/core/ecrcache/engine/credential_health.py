"""Credential health decisions: the state a check's findings come to, the expiry alerts due, the events.

Pure: the service (:mod:`ecrcache.services.credential_health`) gathers the findings (the upstream probe, ECR's
``ValidatePullThroughCacheRule``, the budget) and passes ``now``; this module decides.

* **State** (:func:`decide`): any refusal (the upstream refused the token, ECR's failure text blames the
  credential, the secret is missing or not a credential) -> ``Invalid``; else a finding that cannot tell (rate
  limit, outage, budget empty, an AWS call failing) -> ``Unknown`` -- except that a credential already
  ``Invalid`` stays so (only a passing check clears it); else ``Expiring`` within
  :data:`~ecrcache.models.credential_health.EXPIRING_WITHIN_DAYS` days of ``expires_at``, else ``Healthy``. A
  credential error seen elsewhere after the check began wins over the check's pass (newer evidence); a rotation
  promoted after the check began wins over the check's findings (it may have tried the token replaced).
* **Expiry alerts** (:func:`alert_due`): at 14, 7, 1 and 0 days before ``expires_at`` (UTC days), each once per
  ``expires_at``; a check that finds several thresholds crossed at once (a credential created 5 days before its
  expiry) sends the most urgent one and counts the others as sent.
* **Events** (:func:`health_changed`, :func:`expiring`): the ``detail`` of ``Credential Health Changed`` and
  ``Credential Expiring`` on the default bus (``source: ecrcache``; schemas in ``docs/events/``). One the bus
  took but the alert topic did not is owed to the topic (:func:`owe`, at most :data:`MAX_OWED` kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from ecrcache.engine.state_events import EVENT_SOURCE
from ecrcache.models.credential_health import (
    EXPIRING_WITHIN_DAYS,
    EXPIRY_THRESHOLDS,
    CredentialHealth,
    HealthState,
    HealthView,
)

__all__ = [
    "EVENT_SOURCE",
    "EXPIRING_DETAIL_TYPE",
    "HEALTH_CHANGED_DETAIL_TYPE",
    "MAX_OWED",
    "Alert",
    "Findings",
    "HealthDecision",
    "HealthEvent",
    "alert_due",
    "announced_state",
    "days_to_expiry",
    "decide",
    "health_changed",
    "marked",
    "owe",
    "owed_event",
    "still_owed",
    "view",
]

HEALTH_CHANGED_DETAIL_TYPE: Final = "Credential Health Changed"
EXPIRING_DETAIL_TYPE: Final = "Credential Expiring"
MAX_TEXT: Final = 2000
"""Messages and evidence are cut to this many characters (an event's detail and an item stay small)."""


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Findings:
    """What one check of a credential found, each a line naming where: ``refused`` blames the credential,
    ``unsure`` could not tell, ``passed`` went through. ``started_at``: when the check began."""

    started_at: datetime
    refused: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()
    passed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """One event for the default bus (and the alert topic): its ``detail-type``, ``detail`` and a subject line."""

    detail_type: str
    detail: dict[str, Any]
    subject: str


@dataclass(frozen=True, slots=True)
class Alert:
    """An expiry alert due: its threshold, and the ``alerts_sent`` to record once it is delivered."""

    threshold: int
    event: HealthEvent
    sent: frozenset[str]


@dataclass(frozen=True, slots=True)
class HealthDecision:
    """The new health (alerts not yet counted as sent), and what to announce."""

    health: CredentialHealth
    changed: HealthEvent | None = None
    alert: Alert | None = None


def days_to_expiry(expires_at: date | None, now: datetime) -> int | None:
    """Whole days from ``now``'s UTC date to ``expires_at`` (a UTC date): 0 on the day, negative after."""
    if expires_at is None:
        return None
    return (expires_at - now.astimezone(UTC).date()).days


def _sent_key(expires_at: date, threshold: int) -> str:
    return f"{expires_at.isoformat()}#{threshold}"


def alert_due(
    credential: str, expires_at: date | None, now: datetime, sent: Iterable[str]
) -> tuple[Alert | None, frozenset[str]]:
    """The expiry alert due now, if any, and ``sent`` kept for this ``expires_at`` only."""
    if expires_at is None:
        return None, frozenset()
    prefix = f"{expires_at.isoformat()}#"
    kept = frozenset(key for key in sent if key.startswith(prefix))
    days = days_to_expiry(expires_at, now)
    assert days is not None
    crossed = [threshold for threshold in EXPIRY_THRESHOLDS if days <= threshold]
    if not crossed or _sent_key(expires_at, min(crossed)) in kept:
        return None, kept
    threshold = min(crossed)
    detail = {
        "credential": credential,
        "expires_at": expires_at.isoformat(),
        "days_to_expiry": days,
        "threshold": threshold,
    }
    when = "has expired" if days < 0 else ("expires today" if days == 0 else f"expires in {days} day(s)")
    event = HealthEvent(EXPIRING_DETAIL_TYPE, detail, f"ecrcache: credential {credential} {when}")
    sent_now = kept | {_sent_key(expires_at, t) for t in crossed}
    return Alert(threshold, event, sent_now), kept


def _passed_state(days: int | None) -> HealthState:
    return HealthState.EXPIRING if days is not None and days <= EXPIRING_WITHIN_DAYS else HealthState.HEALTHY


def _state(
    previous: CredentialHealth, found: Findings, days: int | None
) -> tuple[HealthState, str | None, str | None, datetime | None]:
    """``(state, message, evidence, marked_at)`` the findings come to."""
    if previous.rotated_at is not None and previous.rotated_at >= found.started_at:
        # A rotation promoted a new token while the check ran: the check may have tried the old one.
        return previous.state, previous.message, previous.evidence, previous.marked_at
    if found.refused:
        refused = "; ".join(found.refused)
        return HealthState.INVALID, refused, f"health check at {found.started_at.isoformat()}: {refused}", None
    if previous.state is HealthState.INVALID:
        if previous.marked_at is not None and previous.marked_at >= found.started_at:
            return HealthState.INVALID, previous.message, previous.evidence, previous.marked_at
        if found.unsure:
            message = f"still Invalid: the check could not tell ({'; '.join(found.unsure)})"
            return HealthState.INVALID, message, previous.evidence, previous.marked_at
    if found.unsure:
        return HealthState.UNKNOWN, "; ".join(found.unsure), None, None
    state = _passed_state(days)
    message = "; ".join(found.passed) or "nothing to check"
    if state is HealthState.EXPIRING:
        message = f"expires in {days} day(s); {message}"
    return state, message, None, None


def decide(
    credential: str,
    previous: CredentialHealth | None,
    found: Findings,
    *,
    expires_at: date | None,
    now: datetime,
) -> HealthDecision:
    """The health ``found`` comes to, and the events it calls for (see the module)."""
    before = previous or CredentialHealth(credential=credential)
    days = days_to_expiry(expires_at, now)
    state, message, evidence, marked_at = _state(before, found, days)
    alert, kept = alert_due(credential, expires_at, now, before.alerts_sent)
    health = CredentialHealth(
        credential=credential,
        state=state,
        checked_at=now,
        message=_cut(message),
        evidence=_cut(evidence),
        expires_at=expires_at,
        marked_at=marked_at,
        rotated_at=before.rotated_at,
        announced=before.announced,
        alerts_sent=kept,
        alerts_owed=before.alerts_owed,
    )
    changed = health_changed(health, previous=announced_state(before), expires_at=expires_at, now=now)
    return HealthDecision(health, changed, alert)


MAX_OWED: Final = 8
"""Alert topic messages owed at most (the newest kept): a topic that keeps failing does not grow the item."""


def owe(event: HealthEvent, at: datetime) -> str:
    """``event`` owed to the alert topic since ``at``, as ``alerts_owed`` keeps it (JSON, no secret in it)."""
    owed = {"at": at.isoformat(), "detail_type": event.detail_type, "detail": event.detail, "subject": event.subject}
    return json.dumps(owed, sort_keys=True)


def owed_event(text: str) -> HealthEvent:
    """The event :func:`owe` kept."""
    owed = json.loads(text)
    return HealthEvent(str(owed["detail_type"]), dict(owed["detail"]), str(owed["subject"]))


def still_owed(owed: Iterable[str]) -> frozenset[str]:
    """The :data:`MAX_OWED` newest of ``owed`` (the others are dropped: the topic has been failing for days)."""
    return frozenset(sorted(owed, key=lambda text: str(json.loads(text)["at"]))[-MAX_OWED:])


def announced_state(health: CredentialHealth | None) -> HealthState:
    """The state users last heard of (``Unknown`` before any event)."""
    if health is None or health.announced is None:
        return HealthState.UNKNOWN
    return health.announced


def health_changed(
    health: CredentialHealth, *, previous: HealthState, expires_at: date | None, now: datetime
) -> HealthEvent | None:
    """``Credential Health Changed`` when ``health`` is not the state last announced, else ``None``."""
    if health.state is previous:
        return None
    detail = {
        "credential": health.credential,
        "state": health.state.value,
        "previous_state": previous.value,
        "checked_at": (health.checked_at or now).isoformat(),
        "message": health.message,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
        "days_to_expiry": days_to_expiry(expires_at, now),
    }
    subject = f"ecrcache: credential {health.credential} is {health.state.value} (was {previous.value})"
    return HealthEvent(HEALTH_CHANGED_DETAIL_TYPE, detail, subject)


def view(health: CredentialHealth | None, *, expires_at: date | None, now: datetime) -> HealthView:
    """A credential's health as the API shows it (``Unknown`` before any check)."""
    shown = health or CredentialHealth(credential="")
    return HealthView(
        state=shown.state,
        checked_at=shown.checked_at,
        message=shown.message,
        evidence=shown.evidence,
        expires_at=expires_at,
        days_to_expiry=days_to_expiry(expires_at, now),
    )


def marked(credential: str, *, message: str, evidence: str, at: datetime) -> CredentialHealth:
    """The health a credential error seen elsewhere (``evidence``) marks at once: ``Invalid`` (the stored
    ``expires_at``, ``announced`` and ``alerts_sent`` are left as they are)."""
    return CredentialHealth(
        credential=credential,
        state=HealthState.INVALID,
        checked_at=at,
        message=_cut(message),
        evidence=_cut(evidence),
        marked_at=at,
    )
