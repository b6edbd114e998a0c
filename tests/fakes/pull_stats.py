"""An in-memory :class:`ecrcache.ports.PullStatsStore`: the same exactly-once contract, no DynamoDB."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import date

from ecrcache.engine.pull_stats import coalesce
from ecrcache.errors import EcrcacheError
from ecrcache.models.pull_stats import CounterKey, DailyCounter, Increment, PullEvent, RecordResult


def _added(counter: DailyCounter, inc: Increment) -> DailyCounter:
    merged = Increment(
        pulls=counter.pulls,
        first_pulled_at=counter.first_pulled_at,
        last_pulled_at=counter.last_pulled_at,
        digests=counter.digests,
        platforms=counter.platforms,
        principals=counter.principals,
        last_sync_at=counter.last_sync_at,
        last_sync_status=counter.last_sync_status,
    ).merge(inc)
    return replace(
        counter,
        pulls=merged.pulls,
        first_pulled_at=merged.first_pulled_at,
        last_pulled_at=merged.last_pulled_at,
        digests=merged.digests,
        platforms=merged.platforms,
        principals=merged.principals,
        last_sync_at=merged.last_sync_at,
        last_sync_status=merged.last_sync_status,
    )


class MemoryPullStatsStore:
    def __init__(self, rules: dict[str, tuple[str, ...]] | None = None) -> None:
        self.rules = dict(rules or {})
        self.seen: set[str] = set()
        self.stored: dict[CounterKey, DailyCounter] = {}
        self.write_items = 0
        self.fail_record: EcrcacheError | None = None
        """Raised as every event failing (the adapter reports AWS errors, it does not raise them)."""
        self.fail_rules: EcrcacheError | None = None
        self.queries: list[tuple[tuple[date, ...], tuple[str, ...]]] = []

    def record(self, events: Sequence[PullEvent]) -> RecordResult:
        if self.fail_record is not None:
            return RecordResult(failed=tuple(events), error=self.fail_record.message, retryable=True)
        fresh = [e for e in events if e.event_id not in self.seen]
        duplicates = tuple(e for e in events if e.event_id in self.seen)
        for key, inc in coalesce(fresh).items():
            if key.is_image:
                self.stored[key] = _added(self.stored.get(key, DailyCounter(key)), inc)
            self.write_items += 1
        self.write_items += len({e.minute for e in fresh})
        self.seen |= {e.event_id for e in fresh}
        return RecordResult(counted=tuple(fresh), duplicates=duplicates)

    def counters(self, days: Iterable[date], sort_key_prefixes: Collection[str]) -> list[DailyCounter]:
        wanted, prefixes = tuple(days), tuple(sorted(sort_key_prefixes))
        self.queries.append((wanted, prefixes))
        return [c for k, c in self.stored.items() if k.day in wanted and any(k.sk.startswith(p) for p in prefixes)]

    def counters_of(self, keys: Collection[CounterKey]) -> list[DailyCounter]:
        return [self.stored[k] for k in keys if k in self.stored]

    def desired_rules(self) -> dict[str, tuple[str, ...]]:
        if self.fail_rules is not None:
            raise self.fail_rules
        return dict(self.rules)
