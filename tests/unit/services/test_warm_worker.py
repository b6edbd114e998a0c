"""The warm worker service on in-memory fakes: once per image, budget first, 429 blocks, records, settles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.engine.upstream_buckets import BucketLimit
from ecrcache.errors import RetryableError
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_pull import CachedImage, EcrFailure, PullStage, WarmPull
from ecrcache.models.warm_run import Outcome, RunStatus, RunTrigger, WarmRun, WarmTask
from ecrcache.services.credential_health import CredentialMarks
from ecrcache.services.warm_overdue import OverdueRuns
from ecrcache.services.warm_worker import WarmWorkerService, task_from_body, task_limit, verified_reference
from tests.fakes.credential_health import MemoryCredentialHealthStore, RecordingNotifier
from tests.fakes.warm import MemoryUpstreamBudget, MemoryWarmRunStore, ScriptedWarmEcr

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64
HUB = "registry-1.docker.io"
LIMIT = BucketLimit(capacity=200, window_seconds=21_600)


def make_task(image: str = "node", **changes: Any) -> WarmTask:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "warm_set": "base",
        "region": "us-east-1",
        "rule": "docker-hub",
        "upstream": HUB,
        "repository": f"docker-hub/library/{image}",
        "image": f"library/{image}:latest",
        "tag": "latest",
        "platforms": ("linux/amd64", "linux/arm64"),
        "reserved_requests": 3,
        "bucket_capacity": 200,
        "bucket_window_seconds": 21_600,
    }
    return WarmTask(**(fields | changes))


class World:
    def __init__(self, total: int = 2) -> None:
        self.store = MemoryWarmRunStore()
        self.budget = MemoryUpstreamBudget()
        self.ecr = ScriptedWarmEcr()
        self.now = NOW
        self.service = WarmWorkerService(
            store=self.store, budget=self.budget, ecr=lambda region: self.ecr, clock=lambda: self.now
        )
        self.store.create_run(
            WarmRun(run_id="run-1", warm_set="base", trigger=RunTrigger.SCHEDULE, created_at=NOW, total=total), []
        )
        self.budget.take(HUB, 6, limit=LIMIT, now=NOW)  # the planner's reservation for two images

    def answer(self, task: WarmTask, pull: WarmPull) -> None:
        self.ecr.answers[task.key] = pull


INDEX_WARMED = WarmPull(served_digest=DIGEST, index_children=2, platforms_verified=("linux/amd64", "linux/arm64"))


def test_a_warmed_image_is_recorded_verified_and_refunds_what_it_did_not_spend() -> None:
    world = World()
    task = make_task()
    world.answer(task, WarmPull(cached_before=CachedImage(DIGEST), served_digest=DIGEST, index_children=2))
    outcome = world.service.handle(task)
    # THEN warmed, 1 upstream request (a re-validation), recorded with its freshness
    assert (outcome.outcome, outcome.upstream_requests) == (Outcome.WARMED, 1)
    assert world.store.outcome("run-1", task.key) == outcome
    assert world.store.warmed[("us-east-1", "docker-hub/library/node:latest")] == (DIGEST, (), NOW)
    # AND the 2 tokens reserved but not spent go back
    assert world.budget.log[-1] == ("refund", HUB, 2)
    assert world.budget.tokens(HUB) == 200 - 6 + 2


def test_a_redelivered_task_is_not_warmed_or_counted_again() -> None:
    world = World()
    task = make_task()
    world.answer(task, INDEX_WARMED)
    first = world.service.handle(task)
    log = list(world.budget.log)
    second = world.service.handle(task)
    assert second == first
    assert world.ecr.warmed == [task.key]
    assert world.budget.log == log  # no second refund
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert (run.done, run.upstream_requests) == (1, 3)


def test_a_blocked_upstream_skips_without_calling_ecr_or_refunding() -> None:
    world = World()
    until = NOW + timedelta(hours=1)
    world.budget.block(HUB, until=until, limit=LIMIT, now=NOW)
    outcome = world.service.handle(make_task())
    assert (outcome.outcome, outcome.failure_class, outcome.upstream_requests) == (
        Outcome.SKIPPED,
        FailureClass.RATE_LIMIT,
        0,
    )
    assert world.ecr.warmed == []
    assert world.budget.log[-1][0] == "block"


def test_a_rate_limit_blocks_the_upstream_so_the_next_image_is_skipped() -> None:
    world = World()
    first, second = make_task("node"), make_task("python")
    world.answer(first, WarmPull(failure=EcrFailure("UpstreamTooManyRequests", "429", PullStage.MANIFEST)))
    outcome = world.service.handle(first)
    assert (outcome.outcome, outcome.failure_class, outcome.upstream_requests) == (
        Outcome.FAILED,
        FailureClass.RATE_LIMIT,
        1,
    )
    # THEN the upstream is blocked for its window (Docker Hub: 6 hours), with nothing refunded
    assert world.budget.log[-1] == ("block", HUB, NOW + timedelta(seconds=21_600))
    assert world.budget.tokens(HUB) == 0
    # WHEN the next image of that upstream comes THEN it is skipped and ECR is not called
    world.now = NOW + timedelta(minutes=1)
    assert world.service.handle(second).outcome is Outcome.SKIPPED
    assert world.ecr.warmed == [first.key]
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert (run.status, run.counts) == (RunStatus.FAILED, {Outcome.FAILED: 1, Outcome.SKIPPED: 1})
    # AND the run names the upstream that stopped it (it said "stopped upstreams: -" end to end)
    assert run.stopped_upstreams == (HUB,)
    # AND another upstream is not affected
    quay = make_task("quay-image", upstream="quay.io", run_id="run-2")
    assert world.service.handle(quay).outcome is Outcome.WARMED


def test_only_a_rate_limit_stops_an_upstream_in_the_run() -> None:
    world = World(total=1)
    task = make_task()
    world.answer(task, WarmPull(failure=EcrFailure("UpstreamUnavailable", "503", PullStage.MANIFEST)))
    assert world.service.handle(task).failure_class is FailureClass.UPSTREAM_DOWN
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert run.stopped_upstreams == ()


def test_an_image_verified_since_planning_is_fresh_and_refunds_everything() -> None:
    world = World()
    task = make_task()
    world.store.record_verified(
        "us-east-1", verified_reference(task), digest=DIGEST, platforms=(), at=NOW - timedelta(hours=2)
    )
    outcome = world.service.handle(task)
    assert (outcome.outcome, outcome.upstream_requests) == (Outcome.FRESH, 0)
    assert world.ecr.warmed == []
    assert world.budget.log[-1] == ("refund", HUB, 3)


def test_an_image_verified_just_under_a_day_ago_is_warmed_not_called_fresh() -> None:
    # GIVEN yesterday's run of a daily set verified the image 40 s after its tick: the planner queued it
    # today (its window ends before the set's next fire); the worker must not call it fresh either
    world = World()
    task = make_task()
    world.store.record_verified(
        "us-east-1", verified_reference(task), digest=DIGEST, platforms=(), at=NOW - timedelta(hours=23, minutes=59)
    )
    assert world.service.handle(task).outcome is Outcome.WARMED
    assert world.ecr.warmed == [task.key]


def test_an_image_verified_more_than_a_day_ago_is_warmed() -> None:
    world = World()
    task = make_task()
    world.store.record_verified(
        "us-east-1", verified_reference(task), digest=DIGEST, platforms=(), at=NOW - timedelta(hours=25)
    )
    assert world.service.handle(task).outcome is Outcome.WARMED


def test_an_overspend_is_charged_to_the_bucket() -> None:
    world = World()
    task = make_task(reserved_requests=1)  # the planner guessed a single image; it is an index of 4
    world.answer(task, WarmPull(served_digest=DIGEST, index_children=4, platforms_verified=("linux/amd64",)))
    assert world.service.handle(task).upstream_requests == 5
    assert world.budget.log[-1] == ("charge", HUB, 4)
    assert world.budget.tokens(HUB) == 200 - 6 - 4


def test_an_overspend_beyond_what_the_bucket_holds_is_a_debt_later_takes_wait_out() -> None:
    # GIVEN the planner reserved 3 for an image (1 + 2 platforms) and the bucket is otherwise empty
    world = World()
    world.budget.take(HUB, 200, limit=LIMIT, now=NOW)
    assert world.budget.tokens(HUB) == 0
    task = make_task()
    # WHEN the image turns out to be a Docker Hub index of 14 children (attestations included): 15 requests
    world.answer(task, WarmPull(served_digest=DIGEST, index_children=14, platforms_verified=task.platforms))
    assert world.service.handle(task).upstream_requests == 15

    # THEN the 12 requests beyond the reservation are charged: the bucket is 12 in debt, not silently 0
    assert world.budget.log[-1] == ("charge", HUB, 12)
    assert world.budget.tokens(HUB) == -12
    # AND a take gets nothing until the refill (200 per 6 h: 12 in 21.6 min) has paid the debt back and
    # earned a whole token (13 in 23.4 min)
    assert world.budget.take(HUB, 1, limit=LIMIT, now=NOW + timedelta(minutes=21)) == 0
    assert world.budget.take(HUB, 1, limit=LIMIT, now=NOW + timedelta(minutes=24)) == 1


def test_a_failed_image_is_recorded_with_its_class_and_not_marked_verified() -> None:
    world = World()
    task = make_task()
    world.answer(task, WarmPull(failure=EcrFailure("UpstreamAccessDenied", "denied", PullStage.MANIFEST)))
    outcome = world.service.handle(task)
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, FailureClass.CREDENTIAL)
    assert world.store.warmed == {}
    assert world.budget.log[-1] == ("refund", HUB, 2)


def test_a_digest_only_image_is_marked_verified_under_its_digest() -> None:
    world = World()
    task = make_task(tag=None, digest=DIGEST)
    world.answer(task, WarmPull(cached_before=CachedImage(DIGEST), served_digest=DIGEST))
    outcome = world.service.handle(task)
    assert (outcome.outcome, outcome.upstream_requests) == (Outcome.WARMED, 0)
    assert ("us-east-1", f"docker-hub/library/node@{DIGEST}") in world.store.warmed


def test_a_store_failure_raises_so_the_message_is_delivered_again() -> None:
    world = World()
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.store.fail_record_outcome.append(RetryableError("DynamoDB throttled"))
    with pytest.raises(RetryableError):
        world.service.handle(task)
    # THEN nothing was refunded (the redelivery settles it), and the redelivery records the image once
    assert world.budget.log == [("take", HUB, 6)]
    outcome = world.service.handle(task)
    assert outcome.outcome is Outcome.WARMED
    assert world.ecr.warmed == [task.key, task.key]
    assert world.budget.log == [("take", HUB, 6)]  # it spent what was reserved (3 of 3): nothing to settle


def test_a_freshness_record_that_fails_is_logged_and_the_outcome_stands() -> None:
    # The outcome is recorded first: a redelivery must not find its own freshness and call itself fresh.
    world = World()
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.store.fail_record_verified.append(RetryableError("throttled"))
    outcome = world.service.handle(task)
    assert outcome.outcome is Outcome.WARMED
    assert world.store.outcome("run-1", task.key) == outcome
    assert world.store.warmed == {}


def test_a_budget_that_cannot_be_settled_does_not_fail_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    # The outcome is recorded: failing the message would only make its redelivery a no-op.
    world = World()
    task = make_task()
    world.answer(task, WarmPull(served_digest=DIGEST))  # 1 request of the 3 reserved: 2 to refund

    def refund(*args: Any, **kwargs: Any) -> None:
        raise RetryableError("DynamoDB throttled")

    monkeypatch.setattr(world.budget, "refund", refund)
    outcome = world.service.handle(task)
    assert outcome.outcome is Outcome.WARMED
    assert world.store.outcome("run-1", task.key) == outcome


def test_a_run_that_is_unknown_still_answers_the_outcome() -> None:
    world = World()
    task = make_task(run_id="expired-run")
    assert world.service.handle(task).outcome is Outcome.WARMED


def test_the_bucket_limit_is_the_one_the_planner_took_with() -> None:
    assert task_limit(make_task()) == BucketLimit(capacity=200, window_seconds=21_600)
    assert task_limit(make_task(bucket_capacity=5, bucket_window_seconds=60)) == BucketLimit(
        capacity=5, window_seconds=60
    )


def test_a_body_that_is_not_a_task_is_dropped() -> None:
    assert task_from_body('{"run_id": "r"}') is None
    assert task_from_body("not json") is None
    task = make_task()
    assert task_from_body(task.model_dump_json()) == task


def test_a_redelivery_finishes_a_run_whose_last_outcome_was_recorded_but_not_finished() -> None:
    # GIVEN the run's last image, whose outcome commits but whose run's finishing write fails
    world = World(total=1)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.store.fail_finish.append(RetryableError("DynamoDB throttled"))
    with pytest.raises(RetryableError):
        world.service.handle(task)
    stuck = world.store.get_run("base", "run-1")
    assert stuck is not None
    assert (stuck.done, stuck.total, stuck.finished_at) == (1, 1, None)

    # WHEN SQS delivers the message again
    world.now = NOW + timedelta(minutes=1)
    outcome = world.service.handle(task)

    # THEN the image is not warmed again, and the run is finished
    assert outcome == world.store.outcome("run-1", task.key)
    assert world.ecr.warmed == [task.key]
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert (run.status, run.finished_at) == (RunStatus.SUCCEEDED, NOW + timedelta(minutes=1))


def test_two_deliveries_of_one_task_at_once_settle_and_mark_fresh_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a task delivered twice (the planner resent it; SQS is at-least-once), the second read before the
    # first recorded: both find no outcome and no freshness, and both warm
    world = World()
    task = make_task()
    world.answer(task, WarmPull(served_digest=DIGEST))  # 1 request of the 3 reserved: 2 to refund
    first = world.service.handle(task)
    monkeypatch.setattr(world.store, "outcome", lambda run_id, key: None)
    monkeypatch.setattr(world.store, "verified", lambda region, references: {})

    second = world.service.handle(task)

    # THEN only the first delivery's outcome counts: one refund, one freshness record, counted once
    assert world.ecr.warmed == [task.key, task.key]
    assert [entry for entry in world.budget.log if entry[0] == "refund"] == [("refund", HUB, 2)]
    assert world.store.calls["record_verified"] == 1
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert (run.done, run.upstream_requests) == (1, 1)
    assert second.outcome is first.outcome is Outcome.WARMED


def test_a_run_names_the_registry_a_429_stopped_not_its_credentials_bucket() -> None:
    # GIVEN a task whose bucket is a credential's (registry URL # credential, as the planner keys it)
    world = World(total=1)
    task = make_task(upstream=f"{HUB}#dockerhub")
    world.answer(task, WarmPull(failure=EcrFailure("UpstreamTooManyRequests", "429", PullStage.MANIFEST)))
    # WHEN the upstream answers 429
    assert world.service.handle(task).failure_class is FailureClass.RATE_LIMIT
    # THEN that bucket is blocked, and the run lists the registry as the planner does
    assert world.budget.log[-1][:2] == ("block", f"{HUB}#dockerhub")
    run = world.store.get_run("base", "run-1")
    assert run is not None
    assert run.stopped_upstreams == (HUB,)


# -- credential errors -------------------------------------------------------------------------


def _marking_world() -> tuple[World, MemoryCredentialHealthStore, RecordingNotifier]:
    world = World(total=3)
    health, notifier = MemoryCredentialHealthStore(), RecordingNotifier()
    world.service.marks = CredentialMarks(store=health, notifier=notifier, clock=lambda: world.now)
    return world, health, notifier


def test_warms_failing_on_the_credential_mark_it_invalid_once_per_batch() -> None:
    # GIVEN a batch of three images through credential hub's bucket, two refused on the credential
    world, health, notifier = _marking_world()
    tasks = [make_task(image, upstream=f"{HUB}#hub") for image in ("node", "python", "ruby")]
    world.answer(tasks[0], WarmPull(failure=EcrFailure("UpstreamAccessDenied", "denied", PullStage.MANIFEST)))
    world.answer(
        tasks[1], WarmPull(failure=EcrFailure("UnableToGetUpstreamImageException", "secret", PullStage.MANIFEST))
    )
    world.answer(tasks[2], INDEX_WARMED)
    for task in tasks:
        world.service.handle(task)
    assert health.writes == []  # nothing while the batch runs

    # WHEN the batch is done
    assert world.service.flush_marks() == 1

    # THEN one mark, Invalid with the evidence of the newest failure, announced
    assert health.writes.count("mark_invalid") == 1
    marked = health.items["hub"]
    assert marked.state.value == "Invalid"
    assert marked.evidence is not None and "warm run run-1 of warm set base" in marked.evidence
    assert [event.detail["state"] for event in notifier.sent] == ["Invalid"]
    assert world.service.flush_marks() == 0  # flushed: nothing left


def test_a_failure_of_another_class_or_without_a_credential_marks_nothing() -> None:
    world, health, _ = _marking_world()
    limited = make_task("node", upstream=f"{HUB}#hub")
    anonymous = make_task("python")
    world.answer(limited, WarmPull(failure=EcrFailure("UpstreamUnavailable", "503", PullStage.MANIFEST)))
    world.answer(anonymous, WarmPull(failure=EcrFailure("UpstreamAccessDenied", "denied", PullStage.MANIFEST)))
    world.service.handle(limited)
    world.service.handle(anonymous)
    assert world.service.flush_marks() == 0
    assert health.items == {}


def test_a_mark_that_cannot_be_written_never_fails_the_batch() -> None:
    world, health, _ = _marking_world()
    health.fail = RetryableError("DynamoDB UpdateItem failed with ThrottlingException; try again")
    task = make_task("node", upstream=f"{HUB}#hub")
    world.answer(task, WarmPull(failure=EcrFailure("UpstreamAccessDenied", "denied", PullStage.MANIFEST)))
    world.service.handle(task)
    assert world.service.flush_marks() == 0


def test_only_a_429_the_upstream_answered_counts_as_upstream_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the metric UpstreamRateLimited recorded as published
    from ecrcache.services import warm_worker

    counted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        warm_worker,
        "count_by",
        lambda name, *, dimension, value, count: counted.append((name, dimension, value)),
    )
    world = World()
    first, second = make_task("node"), make_task("python")
    world.answer(first, WarmPull(failure=EcrFailure("UpstreamTooManyRequests", "429", PullStage.MANIFEST)))
    # WHEN one image meets a 429 and the next is skipped while the upstream is blocked
    assert world.service.handle(first).outcome is Outcome.FAILED
    world.now = NOW + timedelta(minutes=1)
    assert world.service.handle(second).outcome is Outcome.SKIPPED
    # THEN only the 429 the upstream answered is counted (the skipped image sent no request)
    assert [c for c in counted if c[0] == "UpstreamRateLimited"] == [("UpstreamRateLimited", "source", "warm")]


class _Bus:
    """The default bus as the worker's announcements reach it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def publish(self, events: Any) -> None:
        self.sent.extend(events)


def _finishing_world(monkeypatch: pytest.MonkeyPatch) -> tuple[World, _Bus, list[tuple[str, str]]]:
    """A one-image run, a worker announcing on a recording bus, and the ``WarmRunsFinished`` counts it makes."""
    from ecrcache.services import warm_finished

    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(
        warm_finished,
        "count_by",
        lambda name, *, dimension, value, count: counted.append((name, value)) if name == "WarmRunsFinished" else None,
    )
    world, bus = World(total=1), _Bus()
    world.service.events = bus
    return world, bus, counted


def test_a_redelivered_last_task_does_not_count_or_announce_its_finished_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the run's last image warmed, which finished the run (counted and announced once)
    world, bus, counted = _finishing_world(monkeypatch)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.service.handle(task)
    assert counted == [("WarmRunsFinished", "succeeded")]
    assert len(bus.sent) == 1
    # WHEN SQS delivers the same message again (at least once), twice
    world.now = NOW + timedelta(minutes=1)
    world.service.handle(task)
    world.service.handle(task)
    # THEN the finished run is neither counted nor announced again
    assert counted == [("WarmRunsFinished", "succeeded")]
    assert len(bus.sent) == 1


def test_the_redelivery_that_finishes_the_run_counts_and_announces_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the last outcome recorded by a delivery whose finishing write failed (nothing counted or announced)
    world, bus, counted = _finishing_world(monkeypatch)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.store.fail_finish.append(RetryableError("DynamoDB throttled"))
    with pytest.raises(RetryableError):
        world.service.handle(task)
    assert (counted, bus.sent) == ([], [])
    # WHEN it is delivered again (the redelivery finishes the run), and once more
    world.service.handle(task)
    world.service.handle(task)
    # THEN the run is counted and announced once, by the delivery that finished it
    assert counted == [("WarmRunsFinished", "succeeded")]
    assert len(bus.sent) == 1


class _DyingBus:
    """The invocation ends (a timeout, a crash) as it is about to announce."""

    def publish(self, events: Any) -> None:
        raise RuntimeError("Task timed out after 60.00 seconds")


class _FailingBus:
    """EventBridge refusing PutEvents past botocore's retries (announce logs it, never raises)."""

    def publish(self, events: Any) -> None:
        raise RetryableError("EventBridge PutEvents failed: ThrottlingException")


def test_a_run_whose_finisher_died_before_announcing_it_is_announced_by_a_redelivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the delivery that finishes the run dying before its announcement is sent
    world, bus, counted = _finishing_world(monkeypatch)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.service.events = _DyingBus()
    with pytest.raises(RuntimeError):
        world.service.handle(task)
    run = world.store.get_run("base", "run-1")
    assert run is not None and run.finished_at is not None and not run.announced
    assert counted == []
    # WHEN SQS delivers the task again (twice)
    world.service.events = bus
    world.service.handle(task)
    world.service.handle(task)
    # THEN the run is announced and counted, once
    assert [e.detail["run_id"] for e in bus.sent] == ["run-1"]
    assert counted == [("WarmRunsFinished", "succeeded")]


def test_an_announcement_the_bus_refused_is_left_for_the_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the finishing delivery's announcement refused by EventBridge
    world, bus, counted = _finishing_world(monkeypatch)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.service.events = _FailingBus()
    world.service.handle(task)
    # THEN the run is not flagged (nor counted): the planner's tick lists it, and announces it
    assert counted == []
    [listed] = world.store.overdue_runs(NOW + timedelta(minutes=5), limit=10)
    assert listed.run_id == "run-1"
    settled, failed = OverdueRuns(world.store, lambda: NOW + timedelta(minutes=5), events=bus).settle()
    assert (settled, failed) == ([{"run_id": "run-1", "warm_set": "base", "announced": True}], [])
    assert [e.detail["run_id"] for e in bus.sent] == ["run-1"]
    assert counted == [("WarmRunsFinished", "succeeded")]
    # AND the next tick has nothing more to send
    assert OverdueRuns(world.store, lambda: NOW + timedelta(minutes=10), events=bus).settle() == ([], [])
    assert len(bus.sent) == 1


def test_an_announcement_whose_flag_was_not_written_is_sent_again_by_the_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the finishing delivery's event sent, but its flag write throttled
    world, bus, counted = _finishing_world(monkeypatch)
    task = make_task()
    world.answer(task, INDEX_WARMED)
    world.store.fail_mark_announced.append(RetryableError("DynamoDB UpdateItem failed: ThrottlingException"))
    world.service.handle(task)
    assert (len(bus.sent), counted) == (1, [])
    # WHEN the tick comes THEN it sends it again (at least once) and counts the run, once
    OverdueRuns(world.store, lambda: NOW + timedelta(minutes=5), events=bus).settle()
    assert (len(bus.sent), counted) == (2, [("WarmRunsFinished", "succeeded")])
