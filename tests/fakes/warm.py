"""In-memory fakes of the warm planner's read-only ports: pull statistics and upstream tag lists."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ecrcache.models.warm_inputs import PulledTag, TagListing


@dataclass
class MemoryPullStats:
    """``PullStats`` over fixed rows: ``top`` per rule (most pulled first) and pull-through refreshes per Region."""

    top: dict[str, list[PulledTag]] = field(default_factory=dict)
    synced: dict[str, dict[str, datetime]] = field(default_factory=dict)
    asked: list[tuple[str, int, int]] = field(default_factory=list)

    def top_tags(self, rule: str, count: int, window_days: int, now: datetime) -> Sequence[tuple[str, str, int]]:
        self.asked.append((rule, count, window_days))
        return self.top.get(rule, [])[:count]

    def last_synced(self, region: str, references: Collection[str]) -> dict[str, datetime]:
        known = self.synced.get(region, {})
        return {r: known[r] for r in references if r in known}


@dataclass
class FakeTags:
    """``UpstreamTags`` answering from fixed listings, each costing ``requests`` (capped at the allowance)."""

    listings: dict[str, TagListing] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None, int]] = field(default_factory=list)

    def list_tags(self, upstream_url: str, repository: str, *, credential: str | None, max_requests: int) -> TagListing:
        self.calls.append((upstream_url, repository, credential, max_requests))
        listing = self.listings.get(repository, TagListing(repository, requests=1))
        return TagListing(
            repository,
            listing.tags,
            min(listing.requests, max_requests),
            listing.failure,
            listing.message,
            listing.retry_at,
        )
