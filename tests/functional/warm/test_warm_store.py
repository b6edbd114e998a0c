"""The warm run store on moto DynamoDB: runs, requests, outcomes counted once, finishing, freshness, fires."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ecrcache.adapters.dynamodb_codec import iso
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import (
    REQUEST_PARTITION,
    RUN_DEADLINE,
    ImageOutcome,
    Outcome,
    RunStatus,
    RunTrigger,
    WarmRun,
    WarmTask,
)
from ecrcache.ports import RecordedOutcomes, WarmRunStore
from tests.conftest import REGION
from tests.functional.warm.support import Counted, Serialised, raiser

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
DIGEST = "sha256:" + "b" * 64
NOTHING = RecordedOutcomes(frozenset(), None)


@pytest.fixture
def counted(state_table: str) -> Counted:
    return Counted()


@pytest.fixture
def store(state_table: str, counted: Counted) -> DynamoDbWarmRunStore:
    return DynamoDbWarmRunStore(state_table, counted.client, sleep=counted.sleep)


def run(run_id: str = "run-1", *, total: int = 0, created_at: datetime = NOW, **extra: Any) -> WarmRun:
    fields: dict[str, Any] = {"trigger": RunTrigger.SCHEDULE, **extra}
    return WarmRun(run_id=run_id, warm_set="ci", created_at=created_at, total=total, **fields)


def task(name: str, region: str = REGION, run_id: str = "run-1") -> WarmTask:
    return WarmTask(
        run_id=run_id,
        warm_set="ci",
        region=region,
        rule="docker-hub",
        upstream="registry-1.docker.io",
        repository=f"docker-hub/library/{name}",
        image=f"library/{name}:1",
        tag="1",
        platforms=("linux/amd64", "linux/arm64"),
        reserved_requests=3,
        bucket_capacity=200,
        bucket_window_seconds=21_600,
    )


def outcome_of(t: WarmTask, outcome: Outcome = Outcome.WARMED, *, spent: int = 2, **extra: Any) -> ImageOutcome:
    return ImageOutcome(
        image=t.image,
        region=t.region,
        repository=t.repository,
        tag=t.tag,
        digest=DIGEST,
        outcome=outcome,
        upstream_requests=spent,
        finished_at=LATER,
        **extra,
    )


def fresh(name: str) -> ImageOutcome:
    return outcome_of(task(name), Outcome.FRESH, spent=0)


def test_the_adapter_implements_the_port(store: DynamoDbWarmRunStore) -> None:
    port: WarmRunStore = store  # checked by mypy
    assert port.latest_run("ci") is None


def test_a_requested_run_is_queued_with_its_request_for_the_planners_stream(
    store: DynamoDbWarmRunStore, state_table: str
) -> None:
    # GIVEN a run requested through the API WHEN recorded
    requested = run(trigger=RunTrigger.API, requested_by="arn:aws:iam::123456789012:user/alice")
    store.request_run(requested)

    # THEN it reads back queued, and the request item carries the set and the caller
    assert store.get_run("ci", "run-1") == requested
    assert store.latest_run("ci") == requested
    assert store.pending_tasks("run-1") is None  # not planned yet
    request = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=state_table, Key={"pk": {"S": REQUEST_PARTITION}, "sk": {"S": "run-1"}}
    )["Item"]
    assert request["warm_set"] == {"S": "ci"}
    assert request["requested_by"] == {"S": "arn:aws:iam::123456789012:user/alice"}
    assert int(request["expires_at"]["N"]) == int((NOW + timedelta(days=1)).timestamp())


def test_a_run_of_another_set_is_not_found_by_id(store: DynamoDbWarmRunStore) -> None:
    store.request_run(run())
    assert store.get_run("nightly", "run-1") is None
    assert store.get_run("ci", "nope") is None


def test_a_planned_run_keeps_its_settled_outcomes_and_pending_tasks_and_is_planned_once(
    store: DynamoDbWarmRunStore,
) -> None:
    # GIVEN a run of 3 images: one fresh (settled by the planner), two to warm
    tasks = [task("node"), task("python")]
    planned = run(total=3, upstream_requests=1)

    # WHEN created (twice: a redelivered plan)
    assert store.create_run(planned, [fresh("alpine")], tasks) is True
    assert store.create_run(planned.model_copy(update={"total": 9}), [], []) is False

    # THEN the first planning holds: counts, pending tasks, the settled outcome
    got = store.get_run("ci", "run-1")
    assert got is not None
    assert (got.status, got.total, got.counts, got.upstream_requests) == (
        RunStatus.QUEUED,  # no worker outcome yet
        3,
        {Outcome.FRESH: 1},
        1,
    )
    assert store.pending_tasks("run-1") == tasks
    assert [o.repository for o in store.outcomes("run-1")] == ["docker-hub/library/alpine"]


def test_a_run_with_nothing_to_send_is_finished_when_created(store: DynamoDbWarmRunStore) -> None:
    done = run(total=1, status=RunStatus.SUCCEEDED, finished_at=NOW, counts={})
    assert store.create_run(done, [fresh("alpine")], []) is True
    got = store.latest_run("ci")
    assert got is not None
    assert (got.status, got.finished_at, got.counts) == (RunStatus.SUCCEEDED, NOW, {Outcome.FRESH: 1})
    assert store.pending_tasks("run-1") == []


def test_outcomes_count_once_each_and_the_last_one_finishes_the_run(store: DynamoDbWarmRunStore) -> None:
    # GIVEN a planned run of 3 images (one settled fresh)
    tasks = [task("node"), task("python")]
    store.create_run(run(total=3), [fresh("alpine")], tasks)

    # WHEN the worker records the first, twice (a redelivered task)
    first = store.record_outcome("run-1", "ci", outcome_of(tasks[0]))
    again = store.record_outcome("run-1", "ci", outcome_of(tasks[0], spent=5))

    # THEN it counted once (the first call says it recorded it, the second that it did not), and the run is running
    assert (first.recorded, again.recorded) == (True, False)
    assert first.keys == {tasks[0].key}
    assert first.run == again.run
    assert first.run is not None
    assert (first.run.status, first.run.counts, first.run.upstream_requests, first.run.finished_at) == (
        RunStatus.RUNNING,
        {Outcome.FRESH: 1, Outcome.WARMED: 1},
        2,
        None,
    )
    assert store.pending_tasks("run-1") == [tasks[1]]

    # WHEN the last image fails
    result = store.record_outcome(
        "run-1", "ci", outcome_of(tasks[1], Outcome.FAILED, spent=1, failure_class=FailureClass.NOT_FOUND)
    )
    last = result.run

    # THEN the run is finished (by this call), partial, at the last outcome's time; and stays so
    assert last is not None
    assert result.finished is True
    assert (last.status, last.finished_at, last.done, last.upstream_requests) == (RunStatus.PARTIAL, LATER, 3, 3)
    assert store.get_run("ci", "run-1") == last
    assert store.record_outcome("run-1", "ci", outcome_of(tasks[1])) == RecordedOutcomes(frozenset(), last)
    assert store.pending_tasks("run-1") == []
    assert {o.outcome for o in store.outcomes("run-1")} == {Outcome.FRESH, Outcome.WARMED, Outcome.FAILED}


def test_the_upstreams_a_rate_limit_stopped_are_kept_with_the_planners(store: DynamoDbWarmRunStore) -> None:
    # GIVEN a run the planner already saw stopped by quay.io
    tasks = [task("node"), task("python"), task("ubuntu")]
    store.create_run(run(total=3, stopped_upstreams=("quay.io",)), [], tasks)
    limited: dict[str, Any] = {"failure_class": FailureClass.RATE_LIMIT}

    # WHEN workers record a warmed image, then two images Docker Hub's 429 stopped (once redelivered)
    store.record_outcome("run-1", "ci", outcome_of(tasks[0]))
    store.record_outcome(
        "run-1", "ci", outcome_of(tasks[1], Outcome.FAILED, **limited), stopped_upstream="registry-1.docker.io"
    )
    again = store.record_outcome(
        "run-1", "ci", outcome_of(tasks[1], Outcome.FAILED, **limited), stopped_upstream="registry-1.docker.io"
    )
    last = store.record_outcome(
        "run-1",
        "ci",
        outcome_of(tasks[2], Outcome.SKIPPED, spent=0, **limited),
        stopped_upstream="registry-1.docker.io",
    )

    # THEN the run lists both upstreams, once each, however it is read
    assert not again.recorded  # the same image again: nothing counted twice
    assert again.run is not None
    assert again.run.stopped_upstreams == ("quay.io", "registry-1.docker.io")
    assert last.run is not None
    assert last.run.stopped_upstreams == ("quay.io", "registry-1.docker.io")
    assert store.latest_run("ci") == store.get_run("ci", "run-1") == last.run


def test_an_outcome_of_an_unknown_run_is_not_recorded(store: DynamoDbWarmRunStore) -> None:
    assert store.record_outcome("expired", "ci", outcome_of(task("node", run_id="expired"))) == NOTHING
    assert store.outcomes("expired") == []


def test_a_requested_run_is_planned_in_place(store: DynamoDbWarmRunStore) -> None:
    # GIVEN a run queued by the API WHEN the planner plans it (same id, same creation time)
    requested = run(trigger=RunTrigger.API, requested_by="alice")
    store.request_run(requested)
    assert store.create_run(requested.model_copy(update={"total": 1}), [], [task("node")]) is True

    # THEN it is one run, planned, with its task pending
    got = store.latest_run("ci")
    assert got is not None
    assert (got.run_id, got.total, got.requested_by, got.status) == ("run-1", 1, "alice", RunStatus.QUEUED)
    assert store.pending_tasks("run-1") == [task("node")]


def test_an_interrupted_planning_leaves_nothing_behind_when_planned_again(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a planning that wrote its images and failed before recording the run
    store.request_run(run())
    real = counted.client.transact_write_items
    monkeypatch.setattr(counted.client, "transact_write_items", raiser("InternalServerError", 500))
    with pytest.raises(RetryableError):
        store.create_run(run(total=3), [fresh("alpine")], [task("node"), task("python")])
    monkeypatch.setattr(counted.client, "transact_write_items", real)

    # WHEN planned again with a different plan
    assert store.create_run(run(total=1), [], [task("ubuntu")]) is True

    # THEN only the second plan's images are there
    assert store.pending_tasks("run-1") == [task("ubuntu")]
    assert store.outcomes("run-1") == []


def test_an_interrupted_scheduled_planning_is_cleared_too(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a scheduled run (no request item first) whose planning failed after writing its images
    real = counted.client.transact_write_items
    monkeypatch.setattr(counted.client, "transact_write_items", raiser("InternalServerError", 500))
    with pytest.raises(RetryableError):
        store.create_run(run(total=2), [fresh("alpine")], [task("node")])
    monkeypatch.setattr(counted.client, "transact_write_items", real)
    assert store.pending_tasks("run-1") is None

    # WHEN planned again THEN only this plan's images are there
    assert store.create_run(run(total=1), [], [task("ubuntu")]) is True
    assert store.pending_tasks("run-1") == [task("ubuntu")]
    assert store.outcomes("run-1") == []


def test_an_outcome_of_a_run_not_planned_changes_nothing(store: DynamoDbWarmRunStore) -> None:
    queued = run(trigger=RunTrigger.API)
    store.request_run(queued)
    assert store.record_outcome("run-1", "ci", outcome_of(task("node"))) == NOTHING
    assert store.get_run("ci", "run-1") == queued


def test_concurrent_workers_count_every_image_once_and_finish_the_run_once(state_table: str) -> None:
    # GIVEN a run of 40 images, every task delivered twice, to 4 workers at once
    tasks = [task(f"image{i}") for i in range(40)]
    DynamoDbWarmRunStore(state_table).create_run(run(total=40), [], tasks)
    finishes: list[WarmRun] = []
    lock = threading.Lock()

    def worker(part: list[WarmTask]) -> None:
        store = DynamoDbWarmRunStore(state_table, Serialised())  # type: ignore[arg-type]
        for t in part:
            after = store.record_outcome("run-1", "ci", outcome_of(t, spent=1)).run
            if after is not None and after.finished_at is not None:
                with lock:
                    finishes.append(after)

    deliveries = tasks + tasks
    threads = [threading.Thread(target=worker, args=(deliveries[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # THEN the counts are exact and the run finished succeeded
    final = DynamoDbWarmRunStore(state_table).get_run("ci", "run-1")
    assert final is not None
    assert (final.done, final.counts, final.upstream_requests, final.status) == (
        40,
        {Outcome.WARMED: 40},
        40,
        RunStatus.SUCCEEDED,
    )
    assert {f.finished_at for f in finishes} == {LATER}


def test_the_newest_verification_is_kept_and_read_in_batches(store: DynamoDbWarmRunStore, counted: Counted) -> None:
    reference = "docker-hub/library/node:18"
    store.record_verified(REGION, reference, digest=DIGEST, platforms=["linux/arm64", "linux/amd64"], at=LATER)
    store.record_verified(REGION, reference, digest="sha256:" + "0" * 64, platforms=[], at=NOW)  # older: ignored
    many = [f"docker-hub/library/x{i}:1" for i in range(150)]
    counted.calls.clear()

    found = store.verified(REGION, [reference, *many, reference])

    assert found == {reference: LATER}
    assert counted.calls["BatchGetItem"] == 2  # 100 keys a call
    assert store.verified("eu-west-1", [reference]) == {}


def test_a_fire_is_claimed_once_and_only_forward(store: DynamoDbWarmRunStore) -> None:
    fire = datetime(2026, 11, 29, 5, tzinfo=UTC)
    assert store.claim_fire("ci", fire) is True
    assert store.claim_fire("ci", fire) is False
    assert store.claim_fire("ci", fire - timedelta(days=1)) is False
    assert store.claim_fire("nightly", fire) is True
    assert store.claim_fire("ci", fire + timedelta(days=1)) is True
    assert store.last_fires() == {"ci": fire + timedelta(days=1), "nightly": fire}


CALLS: list[tuple[str, Any]] = [
    ("transact_write_items", lambda s: s.request_run(run())),
    ("get_item", lambda s: s.create_run(run(), [], [])),
    ("get_item", lambda s: s.record_outcome("run-1", "ci", outcome_of(task("a")))),
    ("query", lambda s: s.latest_run("ci")),
    ("batch_get_item", lambda s: s.verified(REGION, ["a:1"])),
    ("put_item", lambda s: s.record_verified(REGION, "a:1", digest=DIGEST, platforms=[], at=NOW)),
    ("update_item", lambda s: s.claim_fire("ci", NOW)),
    ("query", lambda s: s.overdue_runs(NOW, limit=1)),
    ("get_item", lambda s: s.finish_if_done("ci", "run-1", at=NOW)),
    ("get_item", lambda s: s.fail_unplanned("ci", "run-1", message="m", at=NOW)),
]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, RetryableError),
        ("InternalServerError", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
@pytest.mark.parametrize(("method", "call"), CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(CALLS)])
def test_failing_dynamodb_calls_are_classified(
    *,
    store: DynamoDbWarmRunStore,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    call: Any,
    code: str,
    status: int,
    expected: type[Exception],
) -> None:
    monkeypatch.setattr(counted.client, method, raiser(code, status))
    with pytest.raises(expected, match="DynamoDB"):
        call(store)


# ----------------------------------------------------------------- concurrent writers, deadlines, open runs


class Stubbed:
    """``method`` of the moto client answered first by a botocore ``Stubber`` (the errors queued with
    :meth:`fail`), then by moto: a write refused as DynamoDB refuses it under concurrent transactions."""

    def __init__(self, counted: Counted, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
        self.stubbed = boto3.client("dynamodb", region_name=REGION)
        self.stubber = Stubber(self.stubbed)
        self.stubber.activate()
        self.method = method
        self.queued = 0
        self.real = getattr(counted.client, method)
        monkeypatch.setattr(counted.client, method, self)

    def fail(self, code: str, reasons: list[dict[str, str]] | None = None) -> Stubbed:
        modeled = {"CancellationReasons": reasons} if reasons is not None else None
        self.stubber.add_client_error(
            self.method, service_error_code=code, service_message="injected", modeled_fields=modeled
        )
        self.queued += 1
        return self

    def __call__(self, **kwargs: Any) -> Any:
        if self.queued:
            self.queued -= 1
            return getattr(self.stubbed, self.method)(**kwargs)
        return self.real(**kwargs)


@pytest.mark.parametrize(
    "reasons",
    [
        [{"Code": "TransactionConflict"}],
        [{"Code": "None"}, {"Code": "TransactionConflict"}],
        [{"Code": "ThrottlingError"}, {"Code": "None"}],
    ],
    ids=["conflict", "conflict-on-the-run", "throttled"],
)
def test_an_outcome_cancelled_by_a_concurrent_transaction_is_tried_again(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch, reasons: list[dict[str, str]]
) -> None:
    # GIVEN a run of two images, and the run item in another worker's transaction at the first attempt
    tasks = [task("node"), task("python")]
    store.create_run(run(total=2), [], tasks)
    Stubbed(counted, monkeypatch, "transact_write_items").fail("TransactionCanceledException", reasons)

    # WHEN the worker records an outcome
    result = store.record_outcome("run-1", "ci", outcome_of(tasks[0]))

    # THEN it is recorded (after one backoff) and counted once
    assert result.recorded
    assert counted.delays == [0.05]
    assert result.run is not None
    assert (result.run.done, result.run.status) == (1, RunStatus.RUNNING)


def test_a_transaction_cancelled_for_good_is_not_tried_again(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(run(total=1), [], [task("node")])
    stub = Stubbed(counted, monkeypatch, "transact_write_items")
    stub.fail("TransactionCanceledException", [{"Code": "ValidationError"}, {"Code": "None"}])
    with pytest.raises(TerminalError, match="cancelled: ValidationError"):
        store.record_outcome("run-1", "ci", outcome_of(task("node")))
    assert counted.delays == []


def test_a_transaction_that_keeps_conflicting_is_retryable_after_bounded_attempts(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(run(total=1), [], [task("node")])
    stub = Stubbed(counted, monkeypatch, "transact_write_items")
    for _ in range(20):
        stub.fail("TransactionCanceledException", [{"Code": "TransactionConflict"}])
    with pytest.raises(RetryableError, match="cancelled 8 times"):
        store.record_outcome("run-1", "ci", outcome_of(task("node")))
    assert len(counted.delays) == 7
    assert max(counted.delays) <= 2.0
    assert store.outcomes("run-1") == []


def test_finishing_waits_out_a_concurrent_transaction_on_the_run(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the last image, and its run item in a transaction when the finishing UpdateItem comes
    store.create_run(run(total=1), [], [task("node")])
    Stubbed(counted, monkeypatch, "update_item").fail("TransactionConflictException")

    # WHEN recorded THEN the run is finished all the same
    result = store.record_outcome("run-1", "ci", outcome_of(task("node")))
    assert result.run is not None
    assert (result.run.status, result.run.finished_at) == (RunStatus.SUCCEEDED, LATER)
    assert counted.delays == [0.05]


def test_a_run_whose_finishing_failed_after_its_last_outcome_is_finished_later(
    store: DynamoDbWarmRunStore, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the last outcome committed, and the finishing write throttled past botocore's retries
    store.create_run(run(total=1), [], [task("node")])
    real = counted.client.update_item
    monkeypatch.setattr(counted.client, "update_item", raiser("ProvisionedThroughputExceededException", 400))
    with pytest.raises(RetryableError):
        store.record_outcome("run-1", "ci", outcome_of(task("node")))
    monkeypatch.setattr(counted.client, "update_item", real)
    stuck = store.get_run("ci", "run-1")
    assert stuck is not None
    assert (stuck.done, stuck.total, stuck.finished_at) == (1, 1, None)

    # WHEN the redelivery finishes it (twice: idempotent)
    first = store.finish_if_done("ci", "run-1", at=LATER + timedelta(minutes=1))
    finished = first.run

    # THEN it is finished once, at the first finishing's time, and no longer open; only the first call finished it
    assert finished is not None
    assert (finished.status, finished.finished_at) == (RunStatus.SUCCEEDED, LATER + timedelta(minutes=1))
    assert first.finished is True
    assert store.finish_if_done("ci", "run-1", at=LATER + timedelta(hours=1)) == RecordedOutcomes(
        frozenset(), finished, finished=False
    )
    # AND it stays listed for the tick until its Warm Run Finished event is recorded as sent, once
    assert [r.run_id for r in store.overdue_runs(NOW + timedelta(days=30), limit=10)] == ["run-1"]
    assert store.mark_announced(finished) is True
    assert store.mark_announced(finished) is False
    assert store.overdue_runs(NOW + timedelta(days=30), limit=10) == []
    assert store.finish_if_done("nightly", "run-1", at=LATER) == RecordedOutcomes(frozenset(), None)


def test_finishing_a_run_not_done_changes_nothing_unless_forced(store: DynamoDbWarmRunStore) -> None:
    store.create_run(run(total=2), [], [task("node"), task("python")])
    store.record_outcome("run-1", "ci", outcome_of(task("node")))
    unfinished = store.finish_if_done("ci", "run-1", at=LATER)
    assert unfinished.run is not None
    assert (unfinished.run.finished_at, unfinished.finished) == (None, False)
    forced = store.finish_if_done("ci", "run-1", at=LATER, force=True)
    assert forced.run is not None
    assert (forced.run.status, forced.run.finished_at, forced.run.done) == (RunStatus.SUCCEEDED, LATER, 1)
    assert forced.finished is True


def gsi_keys(table: str, warm_set: str, created_at: datetime, run_id: str) -> tuple[str | None, str | None]:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=table, Key={"pk": {"S": f"WARMRUN#{warm_set}"}, "sk": {"S": f"{iso(created_at)}#{run_id}"}}
    )["Item"]
    return item.get("gsi1pk", {}).get("S"), item.get("gsi1sk", {}).get("S")


def test_open_runs_are_listed_past_their_deadline_until_they_finish(
    store: DynamoDbWarmRunStore, state_table: str
) -> None:
    # GIVEN a queued run (deadline: a day and an hour later), a planned one with its own deadline, a finished one
    store.request_run(run("queued", trigger=RunTrigger.API))
    planned = run("planned", total=1, deadline=NOW + timedelta(hours=2))
    store.create_run(planned, [], [task("node", run_id="planned")])
    store.create_run(run("done", total=1, status=RunStatus.SUCCEEDED, finished_at=NOW), [fresh("alpine")], [])
    assert gsi_keys(state_table, "ci", NOW, "queued") == ("WARMRUN-OPEN", f"{iso(NOW + RUN_DEADLINE)}#queued")
    # (a finished run is listed by its end until announced)
    assert gsi_keys(state_table, "ci", NOW, "done") == ("WARMRUN-OPEN", f"{iso(NOW)}#done")
    done = store.get_run("ci", "done")
    assert done is not None and store.mark_announced(done) is True
    assert gsi_keys(state_table, "ci", NOW, "done") == (None, None)

    # THEN each is overdue only past its deadline, earliest first; never the finished one
    assert store.overdue_runs(NOW + timedelta(hours=2), limit=10) == []
    assert [r.run_id for r in store.overdue_runs(NOW + timedelta(hours=3), limit=10)] == ["planned"]
    late = NOW + RUN_DEADLINE + timedelta(seconds=1)
    assert [r.run_id for r in store.overdue_runs(late, limit=10)] == ["planned", "queued"]
    assert [r.run_id for r in store.overdue_runs(late, limit=1)] == ["planned"]

    # WHEN the planned one finishes THEN it is listed by its end until announced, then no longer
    finished = store.record_outcome("planned", "ci", outcome_of(task("node", run_id="planned"))).run
    assert finished is not None and finished.finished_at is not None
    assert gsi_keys(state_table, "ci", NOW, "planned") == ("WARMRUN-OPEN", f"{iso(finished.finished_at)}#planned")
    assert store.mark_announced(finished) is True
    assert gsi_keys(state_table, "ci", NOW, "planned") == (None, None)
    assert [r.run_id for r in store.overdue_runs(late, limit=10)] == ["queued"]


def test_the_open_runs_do_not_mix_with_the_other_users_of_the_index(
    store: DynamoDbWarmRunStore, state_table: str
) -> None:
    # The history (gsi1pk HISTORY) and the reconcile runs (RUN) share gsi1: a run of theirs is never listed.
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=state_table,
        Item={"pk": {"S": "X"}, "sk": {"S": "Y"}, "gsi1pk": {"S": "RUN"}, "gsi1sk": {"S": "2000-01-01#r"}},
    )
    store.request_run(run(trigger=RunTrigger.API))
    assert [r.run_id for r in store.overdue_runs(NOW + timedelta(days=2), limit=10)] == ["run-1"]


def test_a_requested_run_never_planned_fails_with_its_message(store: DynamoDbWarmRunStore) -> None:
    store.request_run(run(trigger=RunTrigger.API, requested_by="alice"))
    failed = store.fail_unplanned("ci", "run-1", message="never planned", at=LATER)
    assert failed is not None
    assert (failed.status, failed.finished_at, failed.message, failed.requested_by) == (
        RunStatus.FAILED,
        LATER,
        "never planned",
        "alice",
    )
    assert store.get_run("ci", "run-1") == failed
    assert [r.run_id for r in store.overdue_runs(NOW + timedelta(days=2), limit=10)] == ["run-1"]  # to announce
    assert store.mark_announced(failed) is True
    assert store.overdue_runs(NOW + timedelta(days=2), limit=10) == []
    # AND once finished (or for an unknown run) nothing more is written
    assert store.fail_unplanned("ci", "run-1", message="again", at=LATER) is None
    assert store.fail_unplanned("ci", "nope", message="x", at=LATER) is None


def test_a_planned_run_is_not_failed_as_unplanned(store: DynamoDbWarmRunStore) -> None:
    store.request_run(run(trigger=RunTrigger.API))
    store.create_run(run(total=1, trigger=RunTrigger.API), [], [task("node")])
    assert store.fail_unplanned("ci", "run-1", message="never planned", at=LATER) is None
    got = store.get_run("ci", "run-1")
    assert got is not None
    assert (got.status, got.finished_at) == (RunStatus.QUEUED, None)


def test_many_outcomes_are_recorded_in_transactions_of_100_and_the_recorded_ones_kept(
    store: DynamoDbWarmRunStore, counted: Counted
) -> None:
    # GIVEN a run of 150 images, one of which a worker recorded already
    tasks = [task(f"image{i:03}") for i in range(150)]
    store.create_run(run(total=150), [], tasks)
    store.record_outcome("run-1", "ci", outcome_of(tasks[7], spent=1))
    counted.calls.clear()

    # WHEN all 150 are recorded lost at once
    lost = [outcome_of(t, Outcome.FAILED, spent=0, failure_class=FailureClass.OURS, message="lost") for t in tasks]
    result = store.record_outcomes("run-1", "ci", lost)

    # THEN the 149 others are recorded, the worker's one kept; the run finished partial
    assert result.keys == {t.key for t in tasks} - {tasks[7].key}
    assert result.run is not None
    assert (result.run.status, result.run.counts) == (RunStatus.PARTIAL, {Outcome.WARMED: 1, Outcome.FAILED: 149})
    assert store.outcome("run-1", tasks[7].key) == outcome_of(tasks[7], spent=1)
    assert counted.calls["TransactWriteItems"] == 3  # 99 (cancelled: one has an outcome), 99 without it, the last 50


def test_an_unfinished_run_cannot_be_marked_announced(store: DynamoDbWarmRunStore) -> None:
    store.create_run(run(total=1), [], [task("node")])
    unfinished = store.get_run("ci", "run-1")
    assert unfinished is not None and store.mark_announced(unfinished) is False
    assert store.get_run("ci", "run-1") == unfinished


def test_marking_a_run_announced_that_fails_raises(
    store: DynamoDbWarmRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(run(total=1, status=RunStatus.SUCCEEDED, finished_at=NOW), [fresh("alpine")], [])
    done = store.get_run("ci", "run-1")
    assert done is not None
    monkeypatch.setattr(store.client, "update_item", raiser("ProvisionedThroughputExceededException", 400))
    with pytest.raises(RetryableError):
        store.mark_announced(done)
