"""Credential errors seen outside the health check: which credential, and the evidence. Pure.

* :func:`cache_action_errors`: an ``ECR Pull Through Cache Action`` whose failure ECR blames on the upstream
  credential (classified as the status engine classifies ECR's failures:
  :data:`~ecrcache.engine.status.UpstreamReason.CREDENTIAL_REJECTED` -- ``UpstreamAccessDenied``, the secret
  missing or unreadable...), mapped to the desired rule it went through (the event's ``ecr-repository-prefix``,
  else the longest desired prefix of its repository in its Region, else the Region's ``ROOT`` rule) and that
  rule's credential. One error per credential, the newest event's.
* :func:`warm_error`: a warm that failed with class ``credential``, the credential being the one its upstream
  bucket is keyed by (``<upstream url>#<credential>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ecrcache.engine.upstream_reasons import UpstreamReason, classify_upstream_failure, owning_rule
from ecrcache.models.failure_class import FailureClass

if TYPE_CHECKING:
    from ecrcache.engine.pull_stats import BridgeEvent, PullScope
    from ecrcache.models.events import PullThroughCacheActionDetail
    from ecrcache.models.warm_run import ImageOutcome, WarmTask

__all__ = ["CredentialError", "cache_action_errors", "newest", "warm_error"]


@dataclass(frozen=True, slots=True)
class CredentialError:
    """A credential error seen somewhere else than the health check: what, where and when (the evidence)."""

    credential: str
    message: str
    evidence: str
    at: datetime

    def newer(self, other: CredentialError | None) -> bool:
        return other is None or self.at > other.at


def _failed_action(event: BridgeEvent) -> PullThroughCacheActionDetail | None:
    # On first use: the rotator and the credential health check never read an event (issue 13: cold start).
    from ecrcache.models.events import CACHE_ACTION_DETAIL_TYPE, PullThroughCacheActionDetail  # noqa: PLC0415

    if event.detail_type != CACHE_ACTION_DETAIL_TYPE:
        return None
    try:
        detail = PullThroughCacheActionDetail.model_validate(event.detail)
    except ValidationError:
        return None
    if detail.succeeded:
        return None
    reason = classify_upstream_failure(detail.failure_code, detail.failure_reason)
    return detail if reason is UpstreamReason.CREDENTIAL_REJECTED else None


def cache_action_errors(
    events: Iterable[BridgeEvent], scope: PullScope, credentials: Mapping[str, str]
) -> dict[str, CredentialError]:
    """The credential errors of a batch's pull-through cache actions (``credentials``: rule prefix -> credential)."""
    found: dict[str, CredentialError] = {}
    for event in events:
        detail = _failed_action(event)
        if detail is None:
            continue
        named = (detail.ecr_repository_prefix or "").removesuffix("/")
        prefix = named if named in credentials else owning_rule(event.region, detail.repository_name, scope.managed)
        credential = credentials.get(prefix) if prefix is not None else None
        if credential is None:
            continue
        reference = detail.image_tag or detail.image_digest or ""
        failure = ": ".join(part for part in (detail.failure_code, detail.failure_reason) if part) or detail.sync_status
        error = CredentialError(
            credential,
            f"a pull through rule {prefix} ({event.region}) failed on the credential: {failure}",
            f"ECR Pull Through Cache Action {event.event_id} at {event.time.isoformat()} in {event.region}, "
            f"repository {detail.repository_name}{':' if detail.image_tag else '@'}{reference}: {failure}",
            event.time,
        )
        found = newest((*found.values(), error))
    return found


def newest(errors: Iterable[CredentialError]) -> dict[str, CredentialError]:
    """One error per credential: the newest."""
    found: dict[str, CredentialError] = {}
    for error in errors:
        if error.newer(found.get(error.credential)):
            found[error.credential] = error
    return found


def warm_error(task: WarmTask, outcome: ImageOutcome) -> CredentialError | None:
    """The credential error a warm outcome is, if it failed with class ``credential`` through a credential."""
    if outcome.failure_class is not FailureClass.CREDENTIAL:
        return None
    _, _, credential = task.upstream.partition("#")
    if not credential:
        return None
    why = outcome.message or "the upstream refused the credential"
    return CredentialError(
        credential,
        f"warming through rule {task.rule} ({task.region}) failed on the credential: {why}",
        f"warm run {task.run_id} of warm set {task.warm_set} at {outcome.finished_at.isoformat()}: {task.key}: {why}",
        outcome.finished_at,
    )
