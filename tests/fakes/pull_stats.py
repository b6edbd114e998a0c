"""In-memory :class:`ecrcache.ports.PullStatsStore` and :class:`ecrcache.ports.PullCompactionStore`: the same
contracts (pending deltas, seen ids per minute, counters marked by the run that wrote them), no DynamoDB."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from ecrcache.engine.pull_stats import delta_of, plus
from ecrcache.errors import EcrcacheError
from ecrcache.models.pull_stats import (
    CompactionState,
    CounterKey,
    CounterMark,
    DailyCounter,
    Increment,
    PullDelta,
    PullEvent,
)


class MemoryPullStatsStore:
    def __init__(self, rules: dict[str, tuple[str, ...]] | None = None) -> None:
        self.rules = dict(rules or {})
        self.credentials: dict[str, str] = {}
        """Rule prefix -> credential (:meth:`rule_credentials`)."""
        self.deltas_pending: dict[str, PullDelta] = {}
        self.seen_ids: dict[tuple[str, str], frozenset[str]] = {}
        """(minute, writer) -> ids."""
        self.stored: dict[CounterKey, DailyCounter] = {}
        self.marks: dict[CounterKey, str] = {}
        self.write_items = 0
        self.fail_add: EcrcacheError | None = None
        self.fail_rules: EcrcacheError | None = None
        self.queries: list[tuple[tuple[date, ...], tuple[str, ...]]] = []
        self._sequence = 0

    def add(self, events: Sequence[PullEvent], now: datetime) -> int:
        if self.fail_add is not None:
            raise self.fail_add
        if not events:
            return 0
        self._sequence += 1
        self.deltas_pending[f"{now.isoformat()}#{self._sequence:08d}"] = delta_of(events)
        self.write_items += 1
        return 1

    def pending(self, *, consistent: bool = True) -> list[tuple[str, PullDelta]]:
        return sorted(self.deltas_pending.items())

    def pending_keys(self, limit: int) -> list[str]:
        return sorted(self.deltas_pending)[:limit]

    def deltas(self, sort_keys: Collection[str], *, skip_unreadable: bool = False) -> dict[str, PullDelta]:
        return {sk: self.deltas_pending[sk] for sk in sort_keys if sk in self.deltas_pending}

    def seen(
        self, minutes: Iterable[str], *, except_run: str | None = None, consistent: bool = True
    ) -> dict[str, frozenset[str]]:
        wanted = set(minutes)
        out: dict[str, frozenset[str]] = {}
        for (minute, writer), ids in self.seen_ids.items():
            if minute in wanted and writer != except_run:
                out[minute] = out.get(minute, frozenset()) | ids
        return out

    def counters(self, days: Iterable[date], sort_key_prefixes: Collection[str]) -> list[DailyCounter]:
        wanted, prefixes = tuple(days), tuple(sorted(sort_key_prefixes))
        self.queries.append((wanted, prefixes))
        return [
            c
            for k, c in self.stored.items()
            if k.is_image and k.day in wanted and any(k.sk.startswith(p) for p in prefixes)
        ]

    def counters_of(self, keys: Collection[CounterKey]) -> list[DailyCounter]:
        return [self.stored[k] for k in keys if k in self.stored]

    def desired_rules(self) -> dict[str, tuple[str, ...]]:
        if self.fail_rules is not None:
            raise self.fail_rules
        return dict(self.rules)

    def rule_credentials(self) -> dict[str, str]:
        if self.fail_rules is not None:
            raise self.fail_rules
        return dict(self.credentials)


class MemoryPullCompactionStore:
    """The compaction's side of :class:`MemoryPullStatsStore` (one lease, counters marked by run)."""

    def __init__(self, pulls: MemoryPullStatsStore) -> None:
        self.pulls = pulls
        self.lease = CompactionState()
        self.write_items = 0

    def state(self) -> CompactionState:
        return self.lease

    def claim(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        *,
        run: str,
        deltas: Sequence[str] = (),
        resume: bool = False,
        backlog: bool = False,
        generation: int = 0,
    ) -> bool:
        if self.lease.held(now):
            return False
        if resume:
            if self.lease.run != run:
                return False
        elif self.lease.run is not None or self.lease.generation != generation:
            return False
        until = int((now + lease).timestamp())
        kept = (self.lease.deltas, self.lease.backlog) if resume else (tuple(deltas), backlog)
        self.lease = replace(self.lease, owner=owner, until=until, run=run, deltas=kept[0], backlog=kept[1])
        self.write_items += 1
        return True

    def release(self, owner: str) -> bool:
        if self.lease.owner != owner or self.lease.run is None:
            return False
        self.lease = replace(self.lease, until=0)
        self.write_items += 1
        return True

    def finish(self, owner: str, now: datetime, *, backlog: bool = False) -> bool:
        if self.lease.owner != owner:
            return False
        generation = self.lease.generation + 1
        self.lease = CompactionState(owner=owner, compacted_at=None if backlog else now, generation=generation)
        self.write_items += 1
        return True

    def marks(self, keys: Collection[CounterKey]) -> dict[CounterKey, CounterMark]:
        return {k: CounterMark(exists=k in self.pulls.stored, run=self.pulls.marks.get(k)) for k in keys}

    def fold(self, key: CounterKey, increment: Increment, mark: CounterMark, run: str) -> None:
        if mark.run == run:
            return
        if key.is_image:
            self.pulls.stored[key] = plus(self.pulls.stored.get(key), key, increment)
        self.pulls.marks[key] = run
        self.write_items += 1

    def put_seen(self, run: str, counted: Mapping[str, Collection[str]]) -> None:
        for minute, ids in counted.items():
            self.pulls.seen_ids[(minute, run)] = frozenset(ids)
            self.write_items += 1

    def delete_deltas(self, sort_keys: Collection[str]) -> None:
        for sk in sort_keys:
            if self.pulls.deltas_pending.pop(sk, None) is not None:
                self.write_items += 1
