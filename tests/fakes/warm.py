"""In-memory fakes of the warm ports: runs and outcomes, the per-upstream budget, ECR's warm data plane,
and the planner's read-only inputs (pull statistics, upstream tag lists).

They keep the contracts of :mod:`ecrcache.ports` (``adapters.warm_store`` and ``adapters.upstream_budget``
are the DynamoDB ones, tested on moto): outcomes
are recorded once per image (a second record of the same image changes nothing), a run finishes when
every image has an outcome, a token bucket refills over its window and a block empties it until then.
Each records its calls, and ``fail_*`` lists make the next calls raise (in order), as a throttled
DynamoDB would after botocore's retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ecrcache.engine.upstream_buckets import BucketLimit
from ecrcache.models.warm_inputs import PulledTag, TagListing
from ecrcache.models.warm_pull import WarmPull
from ecrcache.models.warm_run import ImageOutcome, Outcome, RunStatus, WarmRun, WarmTask, run_deadline
from ecrcache.ports import RecordedOutcomes

__all__ = ["FakeTags", "MemoryPullStats", "MemoryUpstreamBudget", "MemoryWarmRunStore", "ScriptedWarmEcr"]


@dataclass
class MemoryPullStats:
    """``PullStats`` over fixed rows: ``top`` per rule (most pulled first) and pull-through refreshes per Region."""

    top: dict[str, list[PulledTag]] = field(default_factory=dict)
    synced: dict[str, dict[str, datetime]] = field(default_factory=dict)
    asked: list[tuple[str, int, int]] = field(default_factory=list)

    def top_tags(self, rule: str, count: int, window_days: int, now: datetime) -> Sequence[tuple[str, str, int]]:
        self.asked.append((rule, count, window_days))
        return self.top.get(rule, [])[:count]

    def last_synced(self, region: str, references: Collection[str], now: datetime) -> dict[str, datetime]:
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


def _finished_status(counts: dict[Outcome, int]) -> RunStatus:
    good = counts.get(Outcome.WARMED, 0) + counts.get(Outcome.FRESH, 0)
    if good == sum(counts.values()):
        return RunStatus.SUCCEEDED
    return RunStatus.PARTIAL if good else RunStatus.FAILED


@dataclass
class MemoryWarmRunStore:
    """Same contract as the DynamoDB warm store (``WarmRunStore``). ``fail_finish`` makes the next
    finishing fail after the outcome is recorded (as a throttled ``UpdateItem`` after a committed transaction)."""

    runs: dict[str, WarmRun] = field(default_factory=dict)
    images: dict[str, dict[str, ImageOutcome]] = field(default_factory=dict)
    warmed: dict[tuple[str, str], tuple[str, tuple[str, ...], datetime]] = field(default_factory=dict)
    fires: set[tuple[str, datetime]] = field(default_factory=set)
    pending: dict[str, list[WarmTask]] = field(default_factory=dict)
    requested: list[WarmRun] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    fail_record_outcome: list[Exception] = field(default_factory=list)
    fail_record_verified: list[Exception] = field(default_factory=list)
    fail_finish: list[Exception] = field(default_factory=list)
    fail_mark_announced: list[Exception] = field(default_factory=list)

    def create_run(self, run: WarmRun, outcomes: Sequence[ImageOutcome], tasks: Sequence[WarmTask] = ()) -> bool:
        self.calls["create_run"] += 1
        if run.run_id in self.pending:
            return False
        self.runs[run.run_id] = run
        self.pending[run.run_id] = list(tasks)
        for outcome in outcomes:
            self._add(run.run_id, run.warm_set, outcome)
        return True

    def pending_tasks(self, run_id: str) -> list[WarmTask] | None:
        if run_id not in self.pending:
            return None
        recorded = self.images.get(run_id, {})
        return [task for task in self.pending[run_id] if task.key not in recorded]

    def request_run(self, run: WarmRun) -> None:
        self.calls["request_run"] += 1
        self.requested.append(run)
        self.runs[run.run_id] = run

    def record_outcome(
        self, run_id: str, warm_set: str, outcome: ImageOutcome, *, stopped_upstream: str | None = None
    ) -> RecordedOutcomes:
        self.calls["record_outcome"] += 1
        if self.fail_record_outcome:
            raise self.fail_record_outcome.pop(0)
        return self.record_outcomes(run_id, warm_set, [outcome], stopped_upstream=stopped_upstream)

    def record_outcomes(
        self, run_id: str, warm_set: str, outcomes: Sequence[ImageOutcome], *, stopped_upstream: str | None = None
    ) -> RecordedOutcomes:
        run = self.runs.get(run_id)
        if run is None or run.warm_set != warm_set or run_id not in self.pending:
            return RecordedOutcomes(frozenset(), None)
        keys = frozenset(o.key for o in outcomes if self._add(run_id, warm_set, o, stopped_upstream=stopped_upstream))
        at = max((o.finished_at for o in outcomes), default=None)
        if at is None:
            return RecordedOutcomes(keys, self.runs[run_id])
        run, finished = self._finish(run_id, at)
        return RecordedOutcomes(keys, run, finished)

    def _add(self, run_id: str, warm_set: str, outcome: ImageOutcome, *, stopped_upstream: str | None = None) -> bool:
        recorded = self.images.setdefault(run_id, {})
        run = self.runs.get(run_id)
        if outcome.key in recorded or run is None or run.warm_set != warm_set or run.finished_at is not None:
            return False
        recorded[outcome.key] = outcome
        counts = dict(run.counts)
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        self.runs[run_id] = run.model_copy(
            update={
                "counts": counts,
                "upstream_requests": run.upstream_requests + outcome.upstream_requests,
                "stopped_upstreams": tuple(
                    sorted({*run.stopped_upstreams, *([stopped_upstream] if stopped_upstream else [])})
                ),
                "status": RunStatus.RUNNING,
            }
        )
        return True

    def _finish(self, run_id: str, at: datetime, *, force: bool = False) -> tuple[WarmRun, bool]:
        run = self.runs[run_id]
        if run.finished_at is not None or (run.done < run.total and not force):
            return run, False
        if self.fail_finish:
            raise self.fail_finish.pop(0)
        run = run.model_copy(update={"status": _finished_status(dict(run.counts)), "finished_at": at})
        self.runs[run_id] = run
        return run, True

    def finish_if_done(self, warm_set: str, run_id: str, *, at: datetime, force: bool = False) -> RecordedOutcomes:
        self.calls["finish_if_done"] += 1
        run = self.get_run(warm_set, run_id)
        if run is None or run_id not in self.pending:
            return RecordedOutcomes(frozenset(), run)
        finished, done_here = self._finish(run_id, at, force=force)
        return RecordedOutcomes(frozenset(), finished, done_here)

    def overdue_runs(self, now: datetime, *, limit: int) -> list[WarmRun]:
        def due(run: WarmRun) -> datetime:
            return run.finished_at if run.finished_at is not None else run_deadline(run)

        listed = [r for r in self.runs.values() if not r.announced and due(r) < now]
        return sorted(listed, key=due)[:limit]

    def mark_announced(self, run: WarmRun) -> bool:
        self.calls["mark_announced"] += 1
        if self.fail_mark_announced:
            raise self.fail_mark_announced.pop(0)
        held = self.runs.get(run.run_id)
        if held is None or held.finished_at is None or held.announced:
            return False
        self.runs[run.run_id] = held.model_copy(update={"announced": True})
        return True

    def fail_unplanned(self, warm_set: str, run_id: str, *, message: str, at: datetime) -> WarmRun | None:
        run = self.get_run(warm_set, run_id)
        if run is None or run_id in self.pending or run.finished_at is not None:
            return None
        run = run.model_copy(update={"status": RunStatus.FAILED, "finished_at": at, "message": message})
        self.runs[run_id] = run
        return run

    def get_run(self, warm_set: str, run_id: str) -> WarmRun | None:
        run = self.runs.get(run_id)
        return run if run is not None and run.warm_set == warm_set else None

    def latest_run(self, warm_set: str) -> WarmRun | None:
        runs = [r for r in self.runs.values() if r.warm_set == warm_set]
        return max(runs, key=lambda r: r.created_at, default=None)

    def outcomes(self, run_id: str) -> list[ImageOutcome]:
        return list(self.images.get(run_id, {}).values())

    def outcome(self, run_id: str, key: str) -> ImageOutcome | None:
        self.calls["outcome"] += 1
        return self.images.get(run_id, {}).get(key)

    def verified(self, region: str, references: Collection[str]) -> dict[str, datetime]:
        self.calls["verified"] += 1
        return {ref: self.warmed[(region, ref)][2] for ref in references if (region, ref) in self.warmed}

    def record_verified(
        self, region: str, reference: str, *, digest: str, platforms: Sequence[str], at: datetime
    ) -> None:
        self.calls["record_verified"] += 1
        if self.fail_record_verified:
            raise self.fail_record_verified.pop(0)
        self.warmed[(region, reference)] = (digest, tuple(platforms), at)

    def claim_fire(self, warm_set: str, fire: datetime) -> bool:
        if (warm_set, fire) in self.fires:
            return False
        self.fires.add((warm_set, fire))
        return True

    def last_fires(self) -> dict[str, datetime]:
        latest: dict[str, datetime] = {}
        for warm_set, fire in self.fires:
            latest[warm_set] = max(fire, latest.get(warm_set, fire))
        return latest


@dataclass
class _Bucket:
    tokens: float
    updated_at: datetime
    blocked_until: datetime | None = None


@dataclass
class MemoryUpstreamBudget:
    """Token buckets per upstream (``UpstreamBudget``): ``capacity`` tokens refilled over ``window_seconds``;
    a charge may take them below zero (a debt, at most ``-capacity``); nothing changes while blocked."""

    buckets: dict[str, _Bucket] = field(default_factory=dict)
    log: list[tuple[str, str, object]] = field(default_factory=list)
    fail_next: list[Exception] = field(default_factory=list)

    def _bucket(self, upstream: str, limit: BucketLimit, now: datetime) -> _Bucket:
        bucket = self.buckets.setdefault(upstream, _Bucket(float(limit.capacity), now))
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        rate = limit.capacity / limit.window_seconds
        bucket.tokens = max(-float(limit.capacity), min(float(limit.capacity), bucket.tokens + elapsed * rate))
        bucket.updated_at = now
        return bucket

    def _blocked(self, bucket: _Bucket, now: datetime) -> bool:
        return bucket.blocked_until is not None and bucket.blocked_until > now

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def take(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> int:
        self._maybe_fail()
        bucket = self._bucket(upstream, limit, now)
        if self._blocked(bucket, now):
            taken = 0
        else:
            taken = max(0, min(count, int(bucket.tokens)))  # nothing from an empty bucket or one in debt
            bucket.tokens -= taken
        self.log.append(("take", upstream, taken))
        return taken

    def refund(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        self._maybe_fail()
        bucket = self._bucket(upstream, limit, now)
        if not self._blocked(bucket, now):
            bucket.tokens = min(float(limit.capacity), bucket.tokens + count)
        self.log.append(("refund", upstream, count))

    def charge(self, upstream: str, count: int, *, limit: BucketLimit, now: datetime) -> None:
        self._maybe_fail()
        bucket = self._bucket(upstream, limit, now)
        if not self._blocked(bucket, now):
            bucket.tokens = max(-float(limit.capacity), bucket.tokens - count)
        self.log.append(("charge", upstream, count))

    def block(self, upstream: str, *, until: datetime, limit: BucketLimit, now: datetime) -> None:
        self._maybe_fail()
        bucket = self._bucket(upstream, limit, now)
        bucket.tokens = 0.0
        bucket.blocked_until = until
        self.log.append(("block", upstream, until))

    def blocked_until(self, upstream: str, *, now: datetime) -> datetime | None:
        self._maybe_fail()
        bucket = self.buckets.get(upstream)
        if bucket is None or bucket.blocked_until is None or bucket.blocked_until <= now:
            return None
        return bucket.blocked_until

    def tokens(self, upstream: str) -> float:
        return self.buckets[upstream].tokens


@dataclass
class ScriptedWarmEcr:
    """``WarmEcr`` answering what a test scripts per image key (default: a warmed single image)."""

    region: str = "us-east-1"
    answers: dict[str, WarmPull | Callable[[WarmTask], WarmPull]] = field(default_factory=dict)
    warmed: list[str] = field(default_factory=list)

    def warm(self, task: WarmTask) -> WarmPull:
        self.warmed.append(task.key)
        answer = self.answers.get(task.key)
        if answer is None:
            return WarmPull(served_digest="sha256:" + "a" * 64)
        return answer(task) if callable(answer) else answer
