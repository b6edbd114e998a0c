"""State-change events for the account's default event bus (``source: ecrcache``): what changed, as values.

Users wire Slack, ticketing or their own automation to these with an EventBridge rule; the JSON Schemas are in
``docs/events/`` (``rule-condition-changed.schema.json``, ``warm-run-finished.schema.json``) and a test checks
every event built here against them. The credential health events (``Credential Health Changed``,
``Credential Expiring``) are :mod:`ecrcache.engine.credential_health`'s, sent with the alert topic as well.

Pure: the caller passes the statuses and runs (with the times in them); no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ecrcache.models.condition_type import ConditionType

if TYPE_CHECKING:
    from ecrcache.models.status import RuleStatus
    from ecrcache.models.warm_run import WarmRun

__all__ = [
    "ANNOUNCED_CONDITIONS",
    "EVENT_SOURCE",
    "RULE_CONDITION_CHANGED",
    "WARM_RUN_FINISHED",
    "StateEvent",
    "rule_condition_events",
    "warm_run_finished",
]

EVENT_SOURCE: Final = "ecrcache"
"""The ``source`` of every event ecrcache puts on the default bus (these, and the credential health events of
:mod:`ecrcache.engine.credential_health`)."""
RULE_CONDITION_CHANGED: Final = "Rule Condition Changed"
WARM_RUN_FINISHED: Final = "Warm Run Finished"
ANNOUNCED_CONDITIONS: Final = (ConditionType.SYNCED, ConditionType.TERMINAL, ConditionType.RECOVERABLE)
"""The conditions the reconciler decides (``UpstreamHealthy`` follows ECR's pull events, not a run)."""
MAX_MESSAGE: Final = 2000


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One ``PutEvents`` entry: its ``detail-type`` and ``detail`` (the source is always :data:`EVENT_SOURCE`)."""

    detail_type: str
    detail: dict[str, Any]


def rule_condition_events(
    region: str, prefix: str, before: RuleStatus, after: RuleStatus, *, run_id: str | None
) -> list[StateEvent]:
    """One event per announced condition whose ``status`` changed (or appeared) from ``before`` to ``after``.

    A new reason or message on an unchanged status is no change (``last_transition`` does not move either):
    a rule failing the same way every 15 minutes sends one event, when it started failing."""
    events = []
    for kind in ANNOUNCED_CONDITIONS:
        old, new = before.condition(kind), after.condition(kind)
        if new is None or (old is not None and old.status == new.status):
            continue
        detail = {
            "region": region,
            "prefix": prefix,
            "condition": kind.value,
            "status": new.status,
            "previous_status": None if old is None else old.status,
            "reason": new.reason,
            "message": new.message[:MAX_MESSAGE] if new.message else None,
            "last_transition": new.last_transition.isoformat(),
            "run_id": run_id,
        }
        events.append(StateEvent(RULE_CONDITION_CHANGED, detail))
    return events


def warm_run_finished(run: WarmRun) -> StateEvent | None:
    """The event of a finished run (``None`` while it is not finished)."""
    if run.finished_at is None:
        return None
    detail = {
        "warm_set": run.warm_set,
        "run_id": run.run_id,
        "trigger": run.trigger.value,
        "status": run.status.value,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "total": run.total,
        "counts": {outcome.value: n for outcome, n in sorted(run.counts.items())},
        "upstream_requests": run.upstream_requests,
        "stopped_upstreams": list(run.stopped_upstreams),
        "message": run.message[:MAX_MESSAGE] if run.message else None,
    }
    return StateEvent(WARM_RUN_FINISHED, detail)
