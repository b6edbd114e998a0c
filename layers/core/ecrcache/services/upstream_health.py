"""Upstream health: what ECR reports about a rule's upstream, recorded on the rule's status.

ECR sends ``ECR Pull Through Cache Action`` for every pull-through attempt, successful or not
(ecr-facts §6.1). :class:`UpstreamHealthService` records each one as the rule's ``UpstreamHealthy``
condition (the pure decision is :func:`ecrcache.engine.status.upstream_health`): a failure with its
classified reason, a later success clearing it. It never starts a reconcile (a failed pull changed
nothing in ECR) and takes no lease: the status store records the health with a write of its own,
newest observation first, that a concurrent reconcile neither loses nor undoes.

Only rules the controller reconciles have a status, so an event for a rule made by hand is ignored.
The same event twice records the same health (and the reconciler's handler is idempotent per event id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecrcache.engine.status import owning_prefix, upstream_health
from ecrcache.models.common import ROOT_PREFIX
from ecrcache.observability import logger, metrics

if TYPE_CHECKING:
    from ecrcache.engine.status import UpstreamObservation
    from ecrcache.ports import StatusStore

__all__ = ["CacheAction", "UpstreamHealthService", "UpstreamRecorded"]


@dataclass(frozen=True, slots=True)
class CacheAction:
    """One pull-through cache action: where, through which rule (``prefix`` as the event names it, if
    it does), the cache repository, and what it tells about the upstream."""

    region: str
    prefix: str | None
    repository: str
    observation: UpstreamObservation


@dataclass(frozen=True, slots=True)
class UpstreamRecorded:
    """The upstream health recorded on a rule."""

    region: str
    prefix: str
    healthy: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"region": self.region, "prefix": self.prefix, "healthy": self.healthy, "reason": self.reason}


class UpstreamHealthService:
    """Records pull-through cache actions on the status of the rule they went through."""

    def __init__(self, *, status: StatusStore) -> None:
        self.status = status

    def record(self, action: CacheAction) -> UpstreamRecorded | None:
        """Record the action on its rule; ``None`` when there is no such rule status, or a newer
        observation is recorded already."""
        prefix = self._rule_prefix(action)
        current = self.status.rule_status(action.region, prefix) if prefix is not None else None
        if prefix is None or current is None:
            logger.info("a pull-through cache action for a rule without status", extra={"prefix": action.prefix})
            return None
        health = upstream_health(current, action.observation)
        if health is None or not self.status.record_upstream(action.region, prefix, health):
            return None  # an older observation, or the rule's status is gone
        recorded = UpstreamRecorded(action.region, prefix, health.condition.status, health.condition.reason)
        if not recorded.healthy:
            metrics.add_metric(name="UpstreamPullFailed", unit="Count", value=1)
            logger.warning(
                "a pull through the cache failed upstream",
                extra={**recorded.as_dict(), "failure_code": health.check.failure_code},
            )
        return recorded

    def _rule_prefix(self, action: CacheAction) -> str | None:
        """The event's ``ecr-repository-prefix``, else the recorded rule the repository is under."""
        if action.prefix:
            return action.prefix.removesuffix("/") or None
        prefixes = {r.prefix for r in self.status.all_status() if r.region == action.region}
        found = owning_prefix(action.repository, prefixes)
        return found if found is not None else (ROOT_PREFIX if ROOT_PREFIX in prefixes else None)
