"""The deep resync's fan-out records in the state table (moto DynamoDB, the table from ``template.yaml``)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.shard_records import fanout_marker
from ecrcache.adapters.status_store import DynamoDbStatusStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints
from ecrcache.models.shards import FanoutMarker, ShardCounts, ShardRecord, ShardReport, ShardState
from ecrcache.models.status import ReconcileRun, RegionStamp, RuleStatus, RunStatus, RunTrigger
from tests.conftest import REGION

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(hours=1)
OTHER = "eu-west-1"


@pytest.fixture
def store(state_table: str) -> DynamoDbStatusStore:
    client = boto3.client("dynamodb", region_name=REGION)
    return DynamoDbStatusStore(state_table, client, sleep=lambda _: None)


def _run(store: DynamoDbStatusStore, run_id: str = "run-1") -> ReconcileRun:
    run = ReconcileRun(run_id=run_id, trigger=RunTrigger.SCHEDULE, scope="all:deep", started_at=NOW)
    store.put_run(run)
    return run


def _shards(run_id: str, region: str, count: int) -> list[ShardRecord]:
    return [
        ShardRecord(run_id=run_id, region=region, index=i, state=ShardState.QUEUED, rules={"quay": 4, "k8s": 1})
        for i in range(count)
    ]


def _counts(store: DynamoDbStatusStore, run_id: str = "run-1") -> ShardCounts | None:
    run = store.get_run(run_id)
    assert run is not None
    return run.shards


def test_a_fanout_is_recorded_with_its_marker_total_and_queued_shards(store: DynamoDbStatusStore) -> None:
    run = _run(store)
    # WHEN a Region's fan-out of 3 shards is recorded, then another Region's of 2
    assert store.start_fanout(run, REGION, _shards("run-1", REGION, 3), deadline=DEADLINE) is None
    assert store.start_fanout(run, OTHER, _shards("run-1", OTHER, 2), deadline=DEADLINE) is None
    # THEN the run counts 5, each Region has its marker, every shard is queued with its rules
    assert _counts(store) == ShardCounts(total=5)
    marker = FanoutMarker(run_id="run-1", deadline=DEADLINE, started_at=run.started_at)
    assert store.region_status(REGION).fanout == store.region_status(OTHER).fanout == marker
    records = store.shard_records("run-1")
    assert [(r.region, r.index, r.state) for r in records] == [
        (OTHER, 0, ShardState.QUEUED),
        (OTHER, 1, ShardState.QUEUED),
        (REGION, 0, ShardState.QUEUED),
        (REGION, 1, ShardState.QUEUED),
        (REGION, 2, ShardState.QUEUED),
    ]
    assert records[0].rules == {"quay": 4, "k8s": 1}
    progress = store.fanout_progress("run-1")
    assert progress is not None
    assert (progress.coordinating, progress.deadline, dict(progress.regions)) == (True, DEADLINE, {REGION: 3, OTHER: 2})
    # AND the runs listing shows the counts too
    assert store.latest_runs(1)[0].shards == ShardCounts(total=5)


def test_a_second_fanout_of_a_region_is_refused_with_the_marker_holding_it(store: DynamoDbStatusStore) -> None:
    first, second = _run(store, "run-1"), _run(store, "run-2")
    store.start_fanout(first, REGION, _shards("run-1", REGION, 2), deadline=DEADLINE)
    # WHEN another run tries to fan the same Region out
    held = store.start_fanout(second, REGION, _shards("run-2", REGION, 2), deadline=DEADLINE)
    # THEN it is told whose it is, and nothing of it was recorded
    assert held == FanoutMarker(run_id="run-1", deadline=DEADLINE, started_at=first.started_at)
    assert _counts(store, "run-2") is None
    assert store.shard_records("run-2") == []
    # AND once the first clears its marker (and only it can), the second may
    store.clear_fanout(REGION, "run-2")
    assert store.region_status(REGION).fanout is not None
    store.clear_fanout(REGION, "run-1")
    assert store.start_fanout(second, REGION, _shards("run-2", REGION, 2), deadline=DEADLINE) is None


def test_a_marker_never_disturbs_the_statuses_version(store: DynamoDbStatusStore) -> None:
    # GIVEN a Region with a status written at version 1
    assert store.write_statuses(REGION, {"quay": RuleStatus()}, version=0)
    store.start_fanout(_run(store), REGION, _shards("run-1", REGION, 1), deadline=DEADLINE)
    # THEN the status write conditioned on the version read still goes through
    found = store.region_status(REGION)
    assert found.version == 1
    assert store.write_statuses(REGION, {"k8s": RuleStatus()}, version=1)


def test_a_shard_moves_only_from_the_state_read_and_its_counts_move_with_it(store: DynamoDbStatusStore) -> None:
    store.start_fanout(_run(store), REGION, _shards("run-1", REGION, 3), deadline=DEADLINE)
    # a first retry counts once, a second one is not a move
    assert store.report_shard("run-1", REGION, 0, expected=ShardState.QUEUED, state=ShardState.RETRYING, error="x")
    assert not store.report_shard("run-1", REGION, 0, expected=ShardState.QUEUED, state=ShardState.RETRYING)
    assert _counts(store) == ShardCounts(total=3, retrying=1)
    # done after a retry: done +1, retrying -1
    report = ShardReport(repositories=5, found=5, applied={"put_lifecycle_policy": 2})
    assert store.report_shard("run-1", REGION, 0, expected=ShardState.RETRYING, state=ShardState.DONE, report=report)
    assert _counts(store) == ShardCounts(total=3, done=1)
    # a redelivery reporting it again is refused, counted nothing
    assert not store.report_shard("run-1", REGION, 0, expected=ShardState.RETRYING, state=ShardState.DONE)
    assert not store.report_shard("run-1", REGION, 0, expected=ShardState.QUEUED, state=ShardState.FAILED)
    assert _counts(store) == ShardCounts(total=3, done=1)
    record = store.shard("run-1", REGION, 0)
    assert record is not None
    assert (record.state, record.retried, record.report) == (ShardState.DONE, True, report)
    # a shard never recorded is recorded failed; twice is refused
    assert store.report_shard("run-1", REGION, 2, expected=ShardState.QUEUED, state=ShardState.FAILED, error="lost")
    assert store.report_shard("run-1", REGION, 7, expected=None, state=ShardState.FAILED, error="never recorded")
    assert not store.report_shard("run-1", REGION, 7, expected=None, state=ShardState.FAILED)
    made = store.client.get_item(
        TableName=store.table_name, Key={"pk": {"S": "RUN#run-1"}, "sk": {"S": f"SHARD#{REGION}#00007"}}
    )
    run_item = store.client.get_item(TableName=store.table_name, Key={"pk": {"S": "RUN#run-1"}, "sk": {"S": "RUN"}})
    assert made["Item"]["expires_at"] == run_item["Item"]["expires_at"]  # it expires with its run
    assert _counts(store) == ShardCounts(total=3, done=1, failed=2)
    assert store.shard("run-1", REGION, 9) is None


def test_the_coordinator_closes_its_part_and_the_run_finishes_once(store: DynamoDbStatusStore) -> None:
    run = _run(store)
    assert store.write_statuses(REGION, {"quay": RuleStatus()}, version=0)
    store.start_fanout(run, REGION, _shards("run-1", REGION, 1), deadline=DEADLINE)
    # WHEN the coordinator closes with its summary and the Region's stamp
    closing = run.model_copy(update={"status": RunStatus.SUCCEEDED, "summary": {"left_after_verify": 0}})
    stamp = RegionStamp(run_id="run-1", at=NOW, revision=3)
    store.close_fanout(closing, {REGION: stamp})
    # THEN the run is still running (its shard has not reported), with the summary, no longer coordinating
    progress = store.fanout_progress("run-1")
    assert progress is not None
    assert (progress.run.status, progress.run.summary, progress.coordinating) == (
        RunStatus.RUNNING,
        {"left_after_verify": 0},
        False,
    )
    assert store.region_status(REGION).stamp == stamp
    # WHEN two callers finish it: exactly one wins
    finished = progress.run.model_copy(update={"status": RunStatus.SUCCEEDED, "finished_at": NOW})
    assert store.finish_fanout(finished)
    assert not store.finish_fanout(finished.model_copy(update={"status": RunStatus.FAILED}))
    found = store.get_run("run-1")
    assert found is not None and found.status is RunStatus.SUCCEEDED
    # AND a run settled meanwhile is not reopened by a late close
    store.close_fanout(closing, {})
    assert store.get_run("run-1") == found


def test_fingerprints_of_named_repositories_are_read_by_key(store: DynamoDbStatusStore) -> None:
    # GIVEN 250 recorded repositories
    names = [f"quay/image-{i:03d}" for i in range(250)]
    store.record_applied(REGION, {name: AppliedFingerprints(lifecycle=name) for name in names})
    calls: Counter[str] = Counter()
    store.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([str(model.name)]))
    # WHEN 120 of them, and 5 unknown, are asked for
    wanted = [*names[:120], *(f"quay/none-{i}" for i in range(5))]
    found = store.applied_of(REGION, wanted)
    # THEN the 120 come back, read in 2 BatchGetItem (100 keys each), not by reading the Region's partition
    assert found == {name: AppliedFingerprints(lifecycle=name) for name in names[:120]}
    assert dict(calls) == {"BatchGetItem": 2}


def test_a_report_to_a_finished_run_is_refused_and_moves_nothing(store: DynamoDbStatusStore) -> None:
    # GIVEN a fanned-out run finished (forced, say) while one of its shards is still queued
    run = _run(store)
    store.start_fanout(run, REGION, _shards("run-1", REGION, 2), deadline=DEADLINE)
    assert store.report_shard("run-1", REGION, 0, expected=ShardState.QUEUED, state=ShardState.DONE)
    assert store.finish_fanout(run.model_copy(update={"status": RunStatus.FAILED, "finished_at": NOW}))
    # WHEN the other shard reports late
    late = store.report_shard("run-1", REGION, 1, expected=ShardState.QUEUED, state=ShardState.DONE)
    # THEN it is refused: the shard as it was, the finished run's counts unmoved
    assert not late
    record = store.shard("run-1", REGION, 1)
    assert record is not None and record.state is ShardState.QUEUED
    assert _counts(store) == ShardCounts(total=2, done=1)


def test_fingerprints_read_by_key_keep_their_tag_keys_and_creation(store: DynamoDbStatusStore) -> None:
    # GIVEN a repository whose record says which tag keys ecrcache applied, and when it was created
    recorded = AppliedFingerprints(tags="t", tag_keys=frozenset({"team", "cost"}), created_at=NOW)
    store.record_applied(REGION, {"quay/a": recorded, "quay/b": AppliedFingerprints(lifecycle="l")})
    # WHEN a shard reads it by key
    found = store.applied_of(REGION, ["quay/a", "quay/b"])
    # THEN it is the record the Region's read gives (the keys kept: a key the rule drops is untagged, not forgotten)
    assert found == {"quay/a": recorded, "quay/b": AppliedFingerprints(lifecycle="l")}
    assert found == store.applied(REGION)


def _cancelled(*reasons: str) -> ClientError:
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": [{"Code": r} for r in reasons],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


def _error(code: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, "TransactWriteItems")


@pytest.mark.parametrize(
    ("error", "expected", "match"),
    [
        (_cancelled("ThrottlingError", "None"), RetryableError, "ThrottlingError"),
        (_cancelled("TransactionConflict", "None"), RetryableError, "kept conflicting"),
        (_error("ProvisionedThroughputExceededException"), RetryableError, "ProvisionedThroughputExceeded"),
        (_error("AccessDeniedException"), TerminalError, "AccessDenied"),
    ],
)
def test_a_report_that_dynamodb_refuses_raises_a_classified_error(
    store: DynamoDbStatusStore,
    monkeypatch: pytest.MonkeyPatch,
    error: ClientError,
    expected: type[Exception],
    match: str,
) -> None:
    store.start_fanout(_run(store), REGION, _shards("run-1", REGION, 1), deadline=DEADLINE)

    def refuse(**_: Any) -> Any:
        raise error

    monkeypatch.setattr(store.client, "transact_write_items", refuse)
    with pytest.raises(expected, match=match):
        store.report_shard("run-1", REGION, 0, expected=ShardState.QUEUED, state=ShardState.DONE)
    monkeypatch.undo()
    assert _counts(store) == ShardCounts(total=1)


def test_a_marker_written_before_its_start_was_recorded_still_reads() -> None:
    # GIVEN a Region item's marker as a version before started_at wrote it
    item = {"fan": {"M": {"run_id": {"S": "run-0"}, "deadline": {"S": DEADLINE.isoformat()}}}}
    # THEN it reads with no start: every repository is taken to be in its shards
    assert fanout_marker(item) == FanoutMarker(run_id="run-0", deadline=DEADLINE)
