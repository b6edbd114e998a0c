"""What the warm planner reads besides the desired state: an upstream's tag list and pull counts.

:class:`TagListing` is what listing an upstream repository's tags came to (the adapter
``ecrcache.adapters.upstream_registry`` produces it; a failure is classified, never raised, so one
unreachable repository does not stop the run). :class:`PulledTag` is one row of the pull statistics'
most-pulled tags (``ecrcache.ports.PullStats``). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ecrcache.models.failure_class import FailureClass


@dataclass(frozen=True, slots=True)
class TagListing:
    """The tags of one upstream repository (``GET /v2/<name>/tags/list``, every page read)."""

    repository: str
    """The repository path at the upstream (``library/node``)."""
    tags: tuple[str, ...] = ()
    requests: int = 0
    """Requests that reached the upstream registry (token requests to its auth realm excluded)."""
    failure: FailureClass | None = None
    message: str | None = None
    """Why the listing failed (or stopped early): built from statuses and error codes, never from a credential."""
    retry_at: datetime | None = None
    """For a rate limit: when the upstream said it resets (``Retry-After`` / ``RateLimit-Reset``), if it said."""
    complete: bool = True
    """``False`` when the listing stopped at its request allowance with pages left (``tags`` holds what was read)."""

    @property
    def failed(self) -> bool:
        return self.failure is not None


class PulledTag(NamedTuple):
    """One most-pulled tag of a rule's cached repositories over a window: ``(repository, tag, pulls)``."""

    repository: str
    """The ECR repository (``docker-hub/library/node``)."""
    tag: str
    pulls: int
