"""A credential's health: the state the daily check (or a credential error seen elsewhere) left it in.

``Healthy``: the upstream took the current token and ECR validated every rule using it, and it does not
expire within :data:`EXPIRING_WITHIN_DAYS` days; ``Expiring``: the same, but it does; ``Invalid``: the upstream
or ECR refused it (the daily check, or at once a pull-through cache action or a warm failing on the
credential -- ``evidence`` says which); ``Unknown``: not checked yet, or the check could not tell (the upstream
rate limiting or down, its token bucket empty, an AWS call failing). An ``Invalid`` credential stays so until a
check passes or a rotation promotes a new token (validated): a check that cannot tell never clears it, and never
makes a credential ``Invalid`` either. A credential error counts only if newer than the last check and rotation.

No field ever holds a token: messages are built from status codes, ECR's failure text and names only.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EXPIRING_WITHIN_DAYS",
    "EXPIRY_THRESHOLDS",
    "CredentialHealth",
    "HealthState",
    "HealthView",
]

EXPIRING_WITHIN_DAYS: Final = 14
"""A working credential whose token expires within this many days is ``Expiring``."""
EXPIRY_THRESHOLDS: Final = (14, 7, 1, 0)
"""Days before ``expires_at`` an alert is sent at (0: at expiry), each once per ``expires_at``."""


class HealthState(StrEnum):
    HEALTHY = "Healthy"
    INVALID = "Invalid"
    EXPIRING = "Expiring"
    UNKNOWN = "Unknown"


class CredentialHealth(BaseModel):
    """What the state table keeps of a credential's health (``HEALTH#credential``, sk = its name)."""

    model_config = ConfigDict(frozen=True)

    credential: str
    state: HealthState = HealthState.UNKNOWN
    checked_at: datetime | None = None
    """When the state was last decided (a check, or a credential error seen elsewhere)."""
    message: str | None = None
    evidence: str | None = None
    """For ``Invalid``: what refused the credential, where and when."""
    expires_at: date | None = None
    """The ``expires_at`` the last check knew (the events of a mark made elsewhere carry it)."""
    marked_at: datetime | None = None
    """When a credential error seen elsewhere last marked it ``Invalid`` (cleared by a passing check)."""
    rotated_at: datetime | None = None
    """When a rotation last promoted a new token (validated upstream and in ECR): a credential error older than
    this is about a token no longer current, and marks nothing."""
    announced: HealthState | None = None
    """The state the last ``Credential Health Changed`` event announced (``None``: none yet)."""
    alerts_sent: frozenset[str] = frozenset()
    """Expiry alerts sent (to the event bus), as ``<expires_at>#<threshold>``."""
    alerts_owed: frozenset[str] = frozenset()
    """Events the bus took but the alert topic did not, as JSON (``ecrcache.engine.credential_health.owe``): sent
    again to the topic alone by the next check."""


class HealthView(BaseModel):
    """A credential's health as the API shows it."""

    model_config = ConfigDict(frozen=True)

    state: HealthState = Field(description="Healthy, Invalid, Expiring or Unknown (not checked yet).")
    checked_at: datetime | None = Field(description="When the state was last decided.")
    message: str | None = Field(description="What the check found (ECR's or the upstream's failure text).")
    evidence: str | None = Field(description="For Invalid: what refused the credential, where and when.")
    expires_at: date | None = Field(description="When the token expires (UTC date), if known.")
    days_to_expiry: int | None = Field(description="Whole UTC days from today to expires_at (negative: expired).")
