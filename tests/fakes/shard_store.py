"""In-memory fan-out records (``ShardStore``), mixed into :class:`tests.fakes.status_store.MemoryStatusStore`.

Same contract as :mod:`ecrcache.adapters.shard_records`: a Region's marker is refused while another is there, a
shard moves only from the state the caller read, and its run's counts move with it; the run finishes once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.shards import FanoutMarker, ShardCounts, ShardRecord, ShardReport, ShardState
from ecrcache.models.status import FanoutProgress, ReconcileRun, RegionStamp, RunStatus


@dataclass
class _Fanout:
    counts: ShardCounts = field(default_factory=ShardCounts)
    coordinating: bool = True
    deadline: datetime | None = None
    regions: dict[str, int] = field(default_factory=dict)


class MemoryShardRecords:
    """The fan-out half of the status store fake (its ``runs``, ``fingerprints`` and ``writes`` are the store's)."""

    runs: dict[str, ReconcileRun]
    fingerprints: dict[str, dict[str, AppliedFingerprints]]
    writes: list[tuple[str, ...]]

    def __init__(self) -> None:
        self.markers: dict[str, FanoutMarker] = {}
        self.shards: dict[tuple[str, str, int], ShardRecord] = {}
        self.fanouts: dict[str, _Fanout] = {}

    def _counted(self, run: ReconcileRun) -> ReconcileRun:
        fan = self.fanouts.get(run.run_id)
        return run if fan is None else run.model_copy(update={"shards": fan.counts})

    def start_fanout(
        self,
        run: ReconcileRun,
        region: str,
        shards: Sequence[ShardRecord],
        *,
        deadline: datetime,
        prefixes: Collection[str] | None = None,
    ) -> FanoutMarker | None:
        if region in self.markers:
            return self.markers[region]
        self.writes.append(("start_fanout", run.run_id, region, str(len(shards))))
        self.markers[region] = FanoutMarker(
            run_id=run.run_id,
            deadline=deadline,
            started_at=run.started_at,
            prefixes=None if prefixes is None else tuple(sorted(prefixes)),
        )
        fan = self.fanouts.setdefault(run.run_id, _Fanout())
        fan.counts = fan.counts.model_copy(update={"total": fan.counts.total + len(shards)})
        fan.coordinating = True
        fan.deadline = deadline
        fan.regions[region] = len(shards)
        for record in shards:
            self.shards[record.run_id, record.region, record.index] = record
        return None

    def shard(self, run_id: str, region: str, index: int) -> ShardRecord | None:
        return self.shards.get((run_id, region, index))

    def shard_records(self, run_id: str) -> list[ShardRecord]:
        return [record for key, record in sorted(self.shards.items()) if key[0] == run_id]

    def report_shard(
        self,
        run_id: str,
        region: str,
        index: int,
        *,
        expected: ShardState | None,
        state: ShardState,
        report: ShardReport | None = None,
        error: str | None = None,
    ) -> bool:
        found = self.shards.get((run_id, region, index))
        if (found.state if found is not None else None) is not expected:
            return False
        if (run := self.runs.get(run_id)) is None or run.status is not RunStatus.RUNNING:
            return False  # the run item's condition: a finished run's counts never move
        self.writes.append(("report_shard", run_id, region, str(index), state.value))
        base = found or ShardRecord(run_id=run_id, region=region, index=index, state=state)
        retried = base.retried or state is ShardState.RETRYING
        self.shards[run_id, region, index] = base.model_copy(
            update={"state": state, "report": report, "error": error, "retried": retried}
        )
        fan = self.fanouts.setdefault(run_id, _Fanout())
        counts = fan.counts.model_dump()
        if state.final:
            counts[state.value] += 1
        if state is ShardState.RETRYING and expected is not ShardState.RETRYING:
            counts["retrying"] += 1
        elif state.final and expected is ShardState.RETRYING:
            counts["retrying"] -= 1
        fan.counts = ShardCounts(**counts)
        return True

    def fanout_progress(self, run_id: str) -> FanoutProgress | None:
        run = self.runs.get(run_id)
        if run is None:
            return None
        fan = self.fanouts.get(run_id, _Fanout(coordinating=False))
        return FanoutProgress(
            run=self._counted(run), coordinating=fan.coordinating, deadline=fan.deadline, regions=dict(fan.regions)
        )

    def close_fanout(self, run: ReconcileRun, stamps: Mapping[str, RegionStamp]) -> None:
        if self.runs[run.run_id].status is RunStatus.RUNNING:
            self.runs[run.run_id] = run.model_copy(update={"status": RunStatus.RUNNING, "shards": None})
        self.fanouts.setdefault(run.run_id, _Fanout()).coordinating = False
        self.writes.append(("close_fanout", run.run_id))

    def finish_fanout(self, run: ReconcileRun) -> bool:
        if self.runs[run.run_id].status is not RunStatus.RUNNING:
            return False
        self.writes.append(("finish_fanout", run.run_id))
        self.runs[run.run_id] = run
        return True

    def clear_fanout(self, region: str, run_id: str) -> None:
        marker = self.markers.get(region)
        if marker is not None and marker.run_id == run_id:
            del self.markers[region]

    def applied_of(self, region: str, names: Collection[str]) -> dict[str, AppliedFingerprints]:
        held = self.fingerprints.get(region, {})
        return {name: held[name] for name in sorted(set(names)) if name in held}


__all__ = ["MemoryShardRecords"]
