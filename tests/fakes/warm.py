"""In-memory fakes of the warm planner's read-only ports: pull statistics and upstream tag lists."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ecrcache.models.warm_inputs import PulledTag, TagListing
from ecrcache.models.warm_run import ImageOutcome, WarmRun, WarmTask


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


class MemoryWarmRunStore:
    """The reads and the request of ``WarmRunStore`` in memory (what the API uses); planning is not modelled."""

    def __init__(self) -> None:
        self.runs: dict[str, WarmRun] = {}
        self.images: dict[str, list[ImageOutcome]] = {}

    def request_run(self, run: WarmRun) -> None:
        self.runs[run.run_id] = run

    def get_run(self, warm_set: str, run_id: str) -> WarmRun | None:
        run = self.runs.get(run_id)
        return run if run is not None and run.warm_set == warm_set else None

    def latest_run(self, warm_set: str) -> WarmRun | None:
        mine = [r for r in self.runs.values() if r.warm_set == warm_set]
        return max(mine, key=lambda r: (r.created_at, r.run_id)) if mine else None

    def outcomes(self, run_id: str) -> list[ImageOutcome]:
        return list(self.images.get(run_id, []))

    def create_run(self, run: WarmRun, outcomes: Sequence[ImageOutcome], tasks: Sequence[WarmTask] = ()) -> bool:
        raise NotImplementedError

    def pending_tasks(self, run_id: str) -> list[WarmTask] | None:
        raise NotImplementedError

    def record_outcome(self, run_id: str, warm_set: str, outcome: ImageOutcome) -> WarmRun | None:
        raise NotImplementedError

    def verified(self, region: str, references: Collection[str]) -> dict[str, datetime]:
        raise NotImplementedError

    def record_verified(
        self, region: str, reference: str, *, digest: str, platforms: Sequence[str], at: datetime
    ) -> None:
        raise NotImplementedError

    def claim_fire(self, warm_set: str, fire: datetime) -> bool:
        raise NotImplementedError

    def last_fires(self) -> dict[str, datetime]:
        raise NotImplementedError
