"""A rule's condition types (one enumeration, no pydantic).

Kept apart from :mod:`ecrcache.models.status` (which re-exports it) so that the state-change events, which the warm
worker and the warm planner send when a run finishes, do not build the status models (issue 13: cold start).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConditionType"]


class ConditionType(StrEnum):
    """The ACK condition types, and ``UpstreamHealthy`` (pulls through the rule reach its upstream)."""

    SYNCED = "Synced"
    TERMINAL = "Terminal"
    RECOVERABLE = "Recoverable"
    UPSTREAM_HEALTHY = "UpstreamHealthy"
