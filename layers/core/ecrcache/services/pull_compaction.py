"""The compaction of pull statistics: the pending deltas folded into the daily counters, each written once.

Why two stages: a batch of pull events touches nearly every counter of the day (a tag, a digest per
platform and a repository's layer requests per image), so writing the counters per batch costs an item
per counter per batch. A batch is instead one delta item, and a compaction folds every pending delta
into the counters at most once per :attr:`PullCompaction.interval`: the items written per pull event
fall as the traffic rises (see ``docs/benchmarks.md``).

The pull statistics function runs :meth:`PullCompaction.run_if_due` after it writes a batch's delta: no
schedule, nothing at all on a day without pulls. Readers add the pending deltas themselves, so what
the API answers does not wait for a compaction.

A run (:mod:`ecrcache.adapters.pull_compaction_store` for the items):

1. takes the lease (``PULLCOMPACT``), naming the deltas it folds (the oldest :attr:`max_deltas` pending,
   found by a keys-only query: only those are read)
   and its run id, so that a run cut short is resumed with exactly the same deltas (with more pending
   than that, the run leaves the table due, and the next batch folds the next ones at once);
2. folds them (:func:`~ecrcache.engine.pull_stats.fold`) against the ids counted before in their minutes,
   the run's own ids left out (a resumed run decides as the first attempt did);
3. writes the ids it counted (its own seen items), then each counter once, marked with the run (a
   resumed run skips the counters it marked);
4. deletes the deltas and frees the lease.

A run whose invocation is about to time out stops before its next counter write and frees the lease
(the run stays under way): the next batch resumes it at once, so a run too large for one invocation
finishes over several, each skipping the counters the others marked.

A resumed run that finds some of its deltas deleted was cut short in step 4: steps 2 and 3 were done,
it deletes the rest. Between steps 3 and 4 a reader sees the run's events as counted and its counters
not all written: for those seconds (or until a cut-short run is resumed, one lease later) it answers
fewer pulls, never more.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from ecrcache.engine.pull_stats import fold

if TYPE_CHECKING:
    from ecrcache.models.pull_stats import CompactionState, PullDelta
    from ecrcache.ports import PullCompactionStore, PullStatsStore

__all__ = ["DEFAULT_INTERVAL", "CompactionOutcome", "PullCompaction"]

DEFAULT_INTERVAL: Final = timedelta(minutes=15)
DEFAULT_LEASE: Final = timedelta(minutes=3)
"""Longer than the pull statistics function's timeout (60 s): a run cannot outlive its lease."""
DEFAULT_MAX_DELTAS: Final = 200
"""Deltas per run: up to 200,000 events, about 4 MB compressed (their sort keys in the lease item: about
9 KB); with more pending, the run leaves the table due and the next batch folds the next ones."""
TIME_MARGIN_SECONDS: Final = 10.0
"""A run stops writing counters when its invocation has less time left than this: it frees the lease, and
the next batch resumes it (the counters it marked are not written again)."""


@dataclass(frozen=True, slots=True)
class CompactionOutcome:
    """What one run did."""

    run: str
    resumed: bool
    deltas: int
    events: int
    duplicates: int
    counters: int
    finished: bool
    paused: bool = False
    """Stopped before the invocation's deadline, the run still under way (the next batch resumes it)."""


class PullCompaction:
    """Runs compactions when due, under the lease (see the module docstring)."""

    def __init__(
        self,
        pulls: PullStatsStore,
        store: PullCompactionStore,
        *,
        interval: timedelta = DEFAULT_INTERVAL,
        lease: timedelta = DEFAULT_LEASE,
        max_deltas: int = DEFAULT_MAX_DELTAS,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    ) -> None:
        self.pulls = pulls
        self.store = store
        self.interval = interval
        self.lease = lease
        self.max_deltas = max_deltas
        self.new_id = new_id

    def run_if_due(self, now: datetime, remaining: Callable[[], float] | None = None) -> CompactionOutcome | None:
        """Resume the run under way, or start one if the last finished an interval ago and deltas are
        pending; ``None`` when there is nothing to do now (or another invocation holds the lease).
        ``remaining``: the seconds the invocation has left (a run pauses before they run out)."""
        state = self.store.state()
        if state.held(now):
            return None
        if state.run is not None:
            return self._resume(state, now, remaining)
        if state.compacted_at is not None and now - state.compacted_at < self.interval:
            return None
        keys = self.pulls.pending_keys(self.max_deltas + 1)
        backlog = len(keys) > self.max_deltas
        deltas = self.pulls.deltas(keys[: self.max_deltas], skip_unreadable=True)
        if not deltas:
            return None
        owner = self.new_id()
        run = f"{now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{owner}"
        claimed = self.store.claim(
            owner, now, self.lease, run=run, deltas=sorted(deltas), backlog=backlog, generation=state.generation
        )
        if not claimed:
            return None
        return self._fold(run, owner, deltas, now, remaining, resumed=False, backlog=backlog)

    def _resume(
        self, state: CompactionState, now: datetime, remaining: Callable[[], float] | None
    ) -> CompactionOutcome | None:
        owner = self.new_id()
        run = state.run or ""
        if not self.store.claim(owner, now, self.lease, run=run, resume=True):
            return None
        found = self.pulls.deltas(state.deltas)
        if len(found) < len(state.deltas):  # cut short while deleting: everything else was done
            self.store.delete_deltas(state.deltas)
            finished = self.store.finish(owner, now, backlog=state.backlog)
            return CompactionOutcome(run, True, len(state.deltas), 0, 0, 0, finished)
        return self._fold(run, owner, found, now, remaining, resumed=True, backlog=state.backlog)

    def _fold(
        self,
        run: str,
        owner: str,
        deltas: dict[str, PullDelta],
        now: datetime,
        remaining: Callable[[], float] | None,
        *,
        resumed: bool,
        backlog: bool,
    ) -> CompactionOutcome:
        ordered = [deltas[sk] for sk in sorted(deltas)]
        minutes = {event.minute for delta in ordered for event in delta.events}
        folded = fold(ordered, self.pulls.seen(minutes, except_run=run))
        self.store.put_seen(run, folded.counted)
        marks = self.store.marks(folded.increments.keys())
        for key, increment in folded.increments.items():
            if remaining is not None and remaining() < TIME_MARGIN_SECONDS:
                self.store.release(owner)
                return CompactionOutcome(run, resumed, len(deltas), folded.events, folded.duplicates, 0, False, True)
            self.store.fold(key, increment, marks[key], run)
        self.store.delete_deltas(deltas)
        finished = self.store.finish(owner, now, backlog=backlog)
        return CompactionOutcome(
            run=run,
            resumed=resumed,
            deltas=len(deltas),
            events=folded.events,
            duplicates=folded.duplicates,
            counters=len(folded.increments),
            finished=finished,
        )
