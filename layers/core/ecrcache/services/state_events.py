"""Announcing state changes (a rule's condition changed, a warm run finished) on the default event bus.

Best effort by design: the change is already recorded (the rule's status, the run record) and readable through
the API; an event the bus did not take is logged and counted (``StateEventsFailed``, on the dashboard), never a
reason to fail -- and so to retry -- the run that made the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ecrcache.errors import EcrcacheError
from ecrcache.observability import logger, metrics

if TYPE_CHECKING:
    from ecrcache.engine.state_events import StateEvent
    from ecrcache.ports import StateEventPublisher

__all__ = ["announce"]


def announce(publisher: StateEventPublisher | None, events: Sequence[StateEvent]) -> bool:
    """Send ``events`` (none: nothing is called); a failure is logged and counted, not raised. ``False`` only when
    they could not be sent (a caller that would send them again later may)."""
    if publisher is None or not events:
        return True
    try:
        publisher.publish(events)
    except EcrcacheError as exc:
        metrics.add_metric(name="StateEventsFailed", unit="Count", value=len(events))
        logger.warning(
            "state-change events not sent",
            extra={"detail_types": sorted({e.detail_type for e in events}), "error": exc.message},
        )
        return False
    metrics.add_metric(name="StateEventsSent", unit="Count", value=len(events))
    return True
