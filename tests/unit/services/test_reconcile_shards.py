"""The fan-out on in-memory fakes: the coordinator's hook in ReconcileService, the worker and the finisher.

The functional tests (``tests/functional/reconcile/test_deep_fanout.py``) run them on the embedded AWS; these pin
the decisions on the fakes the other services' tests use (so those fakes keep the stores' contract).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.models.observed import ObservedRegion, ObservedRepository, RepositoryDetails
from ecrcache.models.records import ResourceKind, Write, WriteAction
from ecrcache.models.shards import ShardCounts, ShardState
from ecrcache.models.status import RunStatus, RunTrigger
from ecrcache.services.reconcile import ReconcileService, Scope
from ecrcache.services.reconcile_shards import ShardFanout, ShardWorkerService, task_from_body
from tests.fakes.ecr_registry import REGION, MemoryEcrRegistry
from tests.fakes.shard_queue import MemoryShardQueue
from tests.fakes.status_store import MemoryStatusStore
from tests.fakes.stores import MemoryStateStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
KEEP_10: dict[str, Any] = {"upstream_kind": "quay", "lifecycle": {"presets": {"keep_last": 10}}}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _world(
    repositories: int, *, shard_size: int = 2
) -> tuple[ReconcileService, ShardWorkerService, MemoryShardQueue, MemoryStatusStore, MemoryEcrRegistry, Clock]:
    desired, status, clock, queue = MemoryStateStore(), MemoryStatusStore(), Clock(), MemoryShardQueue()
    write = Write(kind=ResourceKind.RULE, name="quay", action=WriteAction.CREATE, expected_version=None, spec=KEEP_10)
    desired.commit([write], revision=desired.revision, actor=ALICE, now=NOW)
    repos = {
        f"quay/r{i}": ObservedRepository(
            name=f"quay/r{i}",
            arn=f"arn:aws:ecr:{REGION}:123456789012:repository/quay/r{i}",
            details=RepositoryDetails(),
        )
        for i in range(repositories)
    }
    ecr = MemoryEcrRegistry(REGION, ObservedRegion(region=REGION, repositories=repos))
    common: dict[str, Any] = {
        "desired": desired,
        "status": status,
        "registry": lambda _region: ecr,
        "clock": clock,
        "stack_region": REGION,
    }
    service = ReconcileService(**common, shards=ShardFanout(queue, shard_size=shard_size, deadline_seconds=60))
    return service, ShardWorkerService(**common), queue, status, ecr, clock


def test_a_deep_run_fans_out_and_the_last_shard_finishes_it() -> None:
    service, worker, queue, status, ecr, _ = _world(5)
    run = service.reconcile(Scope(deep=True), RunTrigger.SCHEDULE, run_id="run-1")
    assert (run.status, run.shards) == (RunStatus.RUNNING, ShardCounts(total=3))
    assert ecr.calls["read_details"] == 0
    results = [worker.process(task, last_attempt=False) for task in queue.drain()]
    assert [r.outcome for r in results] == ["done"] * 3
    assert [r.finished for r in results] == [False, False, True]
    finished = status.get_run("run-1")
    assert finished is not None
    assert (finished.status, finished.shards) == (RunStatus.SUCCEEDED, ShardCounts(total=3, done=3))
    assert finished.summary["put_lifecycle_policy"] == 5  # by the coordinator (no fingerprint recorded yet)
    assert status.markers == {}


def test_a_region_of_one_shard_is_read_in_process() -> None:
    service, _, queue, _, ecr, _ = _world(2)
    run = service.reconcile(Scope(deep=True), RunTrigger.SCHEDULE, run_id="run-1")
    assert (run.status, run.shards, queue.sent) == (RunStatus.SUCCEEDED, None, [])
    assert ecr.calls["read_details"] == 1


def test_a_lost_shard_is_settled_by_a_later_run_and_its_redrive_dropped() -> None:
    service, worker, queue, status, _, clock = _world(5)
    service.reconcile(Scope(deep=True), RunTrigger.SCHEDULE, run_id="run-1")
    lost, *others = queue.drain()
    for task in others:
        worker.process(task, last_attempt=False)
    clock.now += timedelta(seconds=61)
    service.reconcile(Scope(), RunTrigger.SCHEDULE, run_id="run-2")
    finished = status.get_run("run-1")
    assert finished is not None
    assert (finished.status, finished.shards) == (RunStatus.PARTIAL, ShardCounts(total=3, done=2, failed=1))
    assert status.shard("run-1", REGION, lost.index) is not None
    assert worker.process(lost, last_attempt=True).outcome == "dropped"
    record = status.shard("run-1", REGION, lost.index)
    assert record is not None and record.state is ShardState.FAILED


def test_a_malformed_message_is_no_task() -> None:
    assert task_from_body('{"run_id": "r", "region": "us-east-1", "index": 0, "repositories": []}') is None
    assert task_from_body("not json") is None


def test_shard_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="shard_size must be between 1 and 500"):
        ShardFanout(MemoryShardQueue(), shard_size=501)
    with pytest.raises(ValueError, match="deadline_seconds must be at least 1"):
        ShardFanout(MemoryShardQueue(), deadline_seconds=0)
