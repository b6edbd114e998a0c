"""The warm planner service on moto: due sets planned once per fire, requested runs, freshness, the run's
budget and the upstream's shared bucket, tag patterns and 429s, redelivery, and failures recorded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.adapters.dynamodb_store import DynamoDbStateStore
from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.adapters.warm_queue import SqsWarmQueue
from ecrcache.adapters.warm_store import DynamoDbWarmRunStore
from ecrcache.engine.upstream_buckets import BucketLimit
from ecrcache.errors import RetryableError
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.records import ResourceKind
from ecrcache.models.warm_inputs import PulledTag, TagListing
from ecrcache.models.warm_run import ImageOutcome, Outcome, RunStatus, RunTrigger, WarmRun
from ecrcache.services.warm_planner import WarmRequest
from tests.conftest import REGION
from tests.functional.warm.planner_support import HUB, HUB_BUCKET, Planner, make_queue
from tests.functional.warm.support import Serialised, raiser

pytestmark = pytest.mark.functional

HUB_LIMIT = BucketLimit(capacity=200, window_seconds=21_600)  # Docker Hub's default
FIRE = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
DIGEST = "sha256:" + "c" * 64
IMAGES = ["library/node:18-alpine", "library/python:3.12-slim", "library/ubuntu:22.04"]


@pytest.fixture
def planner(state_table: str) -> Planner:
    return Planner(state_table, make_queue())


def outcomes(planner: Planner, run: WarmRun) -> dict[str, ImageOutcome]:
    return {o.key: o for o in planner.runs.outcomes(run.run_id)}


# -------------------------------------------------------------------------------------------- ticks


def test_a_due_set_is_planned_once_per_fire(planner: Planner) -> None:
    # GIVEN a set firing daily at 05:00, created weeks ago, never run
    planner.hub_rule()
    planner.warm_set(images=IMAGES)

    # WHEN the tick comes at 12:00
    result = planner.service.tick()

    # THEN one run for today's 05:00 fire: every image to warm, on the queue, 3 requests reserved each
    assert result.failed == []
    run = planner.latest()
    assert (run.trigger, run.created_at, run.total, run.status, run.budget) == (
        RunTrigger.SCHEDULE,
        FIRE,
        3,
        RunStatus.QUEUED,
        100,
    )
    tasks = planner.sent()
    assert sorted(t.image for t in tasks) == sorted(IMAGES)
    assert {(t.run_id, t.region, t.reserved_requests, t.platforms) for t in tasks} == {
        (run.run_id, REGION, 3, ("linux/amd64", "linux/arm64"))
    }
    assert planner.runs.last_fires() == {"ci": FIRE}
    assert planner.tokens_left(HUB_LIMIT) == 200 - 9
    assert run.message == "planned 3 images: 3 to warm, 0 fresh, 0 skipped or failed when planned"

    # AND the next ticks before tomorrow's fire plan nothing
    planner.clock.advance(minutes=5)
    assert planner.service.tick().planned == []
    assert planner.sent() == []


def test_a_set_newer_than_its_last_fire_waits_for_the_next(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES, at=datetime(2026, 11, 29, 6, tzinfo=UTC))
    assert planner.service.tick().planned == []
    planner.clock.now = datetime(2026, 11, 30, 5, 1, tzinfo=UTC)
    assert len(planner.service.tick().planned) == 1


def test_a_set_that_fails_to_plan_stays_due_and_does_not_stop_the_others(
    planner: Planner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two due sets; the queue refuses the first set's tasks once
    planner.hub_rule()
    planner.warm_set("a-set", images=IMAGES[:1])
    planner.warm_set("b-set", images=IMAGES[1:2])
    real = planner.queue.client.send_message_batch
    monkeypatch.setattr(planner.queue.client, "send_message_batch", raiser("InternalError", 500))

    def once(**kwargs: Any) -> Any:
        monkeypatch.setattr(planner.queue.client, "send_message_batch", real)
        return raiser("InternalError", 500)(**kwargs)

    monkeypatch.setattr(planner.queue.client, "send_message_batch", once)

    # WHEN the tick comes
    result = planner.service.tick()

    # THEN the first is reported and its fire left unclaimed; the second is planned and claimed
    assert [f.split(":")[0] for f in result.failed] == ["a-set"]
    assert planner.runs.last_fires() == {"b-set": FIRE}
    assert [t.warm_set for t in planner.sent()] == ["b-set"]
    assert planner.tokens_left(HUB_LIMIT) == 200 - 6

    # AND the next tick sends the first set's recorded run again, without planning it twice
    planner.clock.advance(minutes=5)
    again = planner.service.tick()
    assert [p["resent"] for p in again.planned] == [True]
    assert [t.image for t in planner.sent()] == IMAGES[:1]
    assert planner.runs.last_fires() == {"a-set": FIRE, "b-set": FIRE}
    assert planner.tokens_left(HUB_LIMIT) == 194 + 2  # no token taken, 5 minutes of refill (200 per 6 h)


# ----------------------------------------------------------------------------------- requested runs


def test_a_requested_run_is_planned_in_place_with_its_caller(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES[:1])
    queued = WarmRun(
        run_id="req-1", warm_set="ci", trigger=RunTrigger.API, requested_by="alice", created_at=planner.clock.now
    )
    planner.runs.request_run(queued)

    summary = planner.service.plan(planner.service.requested(WarmRequest(run_id="req-1", warm_set="ci")))

    assert summary == {
        "run_id": "req-1",
        "warm_set": "ci",
        "status": "queued",
        "total": 1,
        "tasks_sent": 1,
        "resent": False,
    }
    run = planner.latest()
    assert (run.run_id, run.requested_by, run.trigger, run.total) == ("req-1", "alice", RunTrigger.API, 1)
    assert [t.run_id for t in planner.sent()] == ["req-1"]


def test_planning_a_run_twice_sends_only_its_pending_tasks_again(planner: Planner) -> None:
    # GIVEN a planned run whose first image the worker has warmed
    planner.hub_rule()
    planner.warm_set(images=IMAGES)
    [request] = planner.service.due()
    planner.service.plan(request)
    first = planner.sent()
    warmed = first[0]
    planner.runs.record_outcome(
        warmed.run_id,
        "ci",
        ImageOutcome(
            image=warmed.image,
            region=warmed.region,
            repository=warmed.repository,
            tag=warmed.tag,
            outcome=Outcome.WARMED,
            finished_at=planner.clock.now,
        ),
    )

    # WHEN the same run is planned again (a redelivery)
    summary = planner.service.plan(request)

    # THEN nothing is planned anew: the two pending tasks are sent again, no more tokens taken
    assert summary["resent"] is True
    assert sorted(t.image for t in planner.sent()) == sorted(t.image for t in first[1:])
    assert planner.tokens_left(HUB_LIMIT) == 200 - 9
    assert planner.latest().total == 3


def test_a_missing_warm_set_or_rule_fails_the_run_with_a_message(planner: Planner) -> None:
    planner.runs.request_run(
        WarmRun(run_id="r1", warm_set="gone", trigger=RunTrigger.API, created_at=planner.clock.now)
    )

    planner.service.plan(planner.service.requested(WarmRequest(run_id="r1", warm_set="gone")))
    run = planner.latest("gone")
    assert (run.status, run.message, run.finished_at) == (
        RunStatus.FAILED,
        "warm set 'gone' does not exist (deleted?)",
        planner.clock.now,
    )

    # a set whose rule is gone (deleted out from under it) fails naming the rule
    planner.put(ResourceKind.WARM_SET, "orphan", {"rule": "quay", "images": ["a/b:1"]})
    [request] = planner.service.due()
    planner.service.plan(request)
    orphan = planner.latest("orphan")
    assert orphan.status is RunStatus.FAILED
    assert orphan.message == "rule 'quay' of warm set 'orphan' does not exist: nothing to pull through"
    assert planner.sent() == []


# ------------------------------------------------------------------------------ freshness and budget


def test_images_fresh_in_a_region_cost_nothing_there(planner: Planner) -> None:
    # GIVEN a two-Region rule; node verified 3 h ago in us-east-1; python refreshed by ECR 2 h ago there
    planner.hub_rule(regions=(REGION, "eu-west-1"))
    planner.warm_set(images=IMAGES[:2])
    now = planner.clock.now
    planner.runs.record_verified(
        REGION, "docker-hub/library/node:18-alpine", digest=DIGEST, platforms=[], at=now - timedelta(hours=3)
    )
    planner.pulls.synced[REGION] = {"docker-hub/library/python:3.12-slim": now - timedelta(hours=2)}

    planner.service.tick()

    # THEN only eu-west-1 gets tasks; us-east-1's two images are fresh
    run = planner.latest()
    assert sorted((t.region, t.image) for t in planner.sent()) == [("eu-west-1", i) for i in IMAGES[:2]]
    assert (run.total, run.counts) == (4, {Outcome.FRESH: 2})
    fresh = outcomes(planner, run)[f"{REGION}#docker-hub/library/python:3.12-slim"]
    assert fresh.outcome is Outcome.FRESH and "2 h ago" in (fresh.message or "")


def test_the_runs_budget_cuts_the_least_wanted_images(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES, budget={"max_upstream_requests_per_run": 7})
    planner.service.tick()
    run = planner.latest()
    assert [t.image for t in planner.sent()] == IMAGES[:2]
    skipped = outcomes(planner, run)[f"{REGION}#docker-hub/library/ubuntu:22.04"]
    assert (skipped.outcome, skipped.failure_class) == (Outcome.SKIPPED, None)
    assert planner.tokens_left(HUB_LIMIT) == 200 - 6


def test_an_empty_bucket_skips_the_rest_as_rate_limited(planner: Planner) -> None:
    # GIVEN the upstream's bucket holds 4 tokens (others spent the rest)
    planner.hub_rule()
    planner.warm_set(images=IMAGES)
    planner.budget.take(HUB_BUCKET, 196, limit=HUB_LIMIT, now=planner.clock.now)

    planner.service.tick()

    # THEN one image (3 tokens) goes, the others are skipped as rate_limit; the unused token is refunded
    run = planner.latest()
    assert [t.image for t in planner.sent()] == IMAGES[:1]
    assert (run.total, run.counts, run.status) == (3, {Outcome.SKIPPED: 2}, RunStatus.QUEUED)
    skipped = outcomes(planner, run)[f"{REGION}#docker-hub/library/python:3.12-slim"]
    assert skipped.failure_class is FailureClass.RATE_LIMIT
    assert "request budget of registry-1.docker.io (credential hub) is spent" in (skipped.message or "")
    assert planner.tokens_left(HUB_LIMIT) == 1


def test_the_credentials_rate_limit_sizes_the_bucket(planner: Planner) -> None:
    planner.hub_rule()
    planner.put(
        ResourceKind.CREDENTIAL,
        "hub",
        {"upstream_kind": "docker-hub", "username": "ci-bot", "rate_limit": {"requests": 5, "window_seconds": 3600}},
    )
    planner.warm_set(images=IMAGES)
    planner.service.tick()
    assert [t.image for t in planner.sent()] == IMAGES[:1]
    assert planner.tokens_left(BucketLimit(capacity=5, window_seconds=3600)) == 2


def test_two_credentials_of_one_registry_have_a_bucket_each(planner: Planner) -> None:
    # GIVEN two Docker Hub rules signing in with two accounts: a paid one (2,000 per 6 h) and a small one (5 an hour)
    planner.hub_rule()
    planner.put(
        ResourceKind.CREDENTIAL,
        "hub",
        {
            "upstream_kind": "docker-hub",
            "username": "ci-bot",
            "rate_limit": {"requests": 2000, "window_seconds": 21600},
        },
    )
    planner.put(
        ResourceKind.CREDENTIAL,
        "small",
        {"upstream_kind": "docker-hub", "username": "ci-small", "rate_limit": {"requests": 5, "window_seconds": 3600}},
    )
    planner.put(ResourceKind.RULE, "hub-small", {"upstream_kind": "docker-hub", "credential": "small"})
    planner.warm_set("big", images=IMAGES)
    planner.put(
        ResourceKind.WARM_SET,
        "little",
        {"rule": "hub-small", "schedule": "cron(0 5 * * ? *)", "images": IMAGES},
        at=datetime(2026, 11, 1, tzinfo=UTC),
    )

    # WHEN both sets are planned, the small account's first
    planner.service.plan(next(r for r in planner.service.due() if r.warm_set == "little"))
    planner.service.plan(next(r for r in planner.service.due() if r.warm_set == "big"))

    # THEN each spent its own account's bucket: the small one paid for 1 image (3 of 5), the paid one for 3
    # (one bucket for the registry would have been clamped to 5 by the small account, leaving the paid one 2)
    sent = planner.sent()
    assert sorted((t.warm_set, t.upstream) for t in sent) == [
        ("big", HUB_BUCKET),
        ("big", HUB_BUCKET),
        ("big", HUB_BUCKET),
        ("little", f"{HUB}#small"),
    ]
    assert planner.tokens_left(BucketLimit(capacity=5, window_seconds=3600), f"{HUB}#small") == 2
    assert planner.tokens_left(BucketLimit(capacity=2000, window_seconds=21600)) == 2000 - 9


def test_two_concurrent_runs_share_one_bucket_and_never_overspend(state_table: str) -> None:
    # GIVEN two planners (two invocations) planning two sets of 20 images each at once; the bucket holds 30
    first = Planner(state_table, make_queue())
    first.hub_rule()
    first.put(
        ResourceKind.CREDENTIAL,
        "hub",
        {"upstream_kind": "docker-hub", "username": "ci-bot", "rate_limit": {"requests": 30, "window_seconds": 21600}},
    )
    for name in ("a-set", "b-set"):
        first.warm_set(name, images=[f"team/{name}-{i}:1" for i in range(20)])
    second = Planner(state_table, first.queue_url)
    for each in (first, second):  # each call atomic, as AWS's are (moto in-process is not thread-safe)
        each.service.budget = each.budget = DynamoDbUpstreamBudget(state_table, Serialised())  # type: ignore[arg-type]
        each.service.runs = each.runs = DynamoDbWarmRunStore(state_table, Serialised())  # type: ignore[arg-type]
        each.service.desired = each.desired = DynamoDbStateStore(state_table, Serialised())  # type: ignore[arg-type]
        each.service.queue = each.queue = SqsWarmQueue(first.queue_url, Serialised("sqs"))  # type: ignore[arg-type]
    requests = {r.warm_set: r for r in first.service.due()}
    answers: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda p=p, n=n: answers.update({n: p.service.plan(requests[n])}))
        for p, n in ((first, "a-set"), (second, "b-set"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # THEN the tasks sent reserve at most the bucket's 30 tokens (10 images of 3), and every image is accounted for
    tasks = first.sent()
    assert sum(t.reserved_requests for t in tasks) <= 30
    assert len(tasks) == 10
    for name in ("a-set", "b-set"):
        run = first.latest(name)
        assert run.total == 20
        assert run.counts.get(Outcome.SKIPPED, 0) == 20 - sum(1 for t in tasks if t.warm_set == name)


# ----------------------------------------------------------------------------------- tag patterns


def test_tag_patterns_are_listed_with_the_credential_and_paid_from_both_budgets(planner: Planner) -> None:
    planner.hub_rule()
    planner.tags.listings["library/node"] = TagListing("library/node", ("20.9-alpine", "20.10-alpine", "20.10"), 2)
    planner.warm_set(tag_patterns=["library/node:20.*-alpine"], budget={"max_upstream_requests_per_run": 20})

    planner.service.tick()

    assert planner.tags.calls == [(HUB, "library/node", "hub", 10)]
    run = planner.latest()
    assert run.upstream_requests == 2
    assert [t.tag for t in planner.sent()] == ["20.10-alpine", "20.9-alpine"]
    assert planner.tokens_left(HUB_LIMIT) == 200 - 2 - 6


def test_a_429_while_listing_blocks_the_upstream_and_stops_the_run(planner: Planner) -> None:
    # GIVEN the upstream answers 429 with a reset in 30 minutes
    planner.hub_rule()
    reset = planner.clock.now + timedelta(minutes=30)
    planner.tags.listings["library/node"] = TagListing(
        "library/node", requests=1, failure=FailureClass.RATE_LIMIT, message="429 Too Many Requests", retry_at=reset
    )
    planner.warm_set(images=IMAGES[:1], tag_patterns=["library/node:20.*"])

    planner.service.tick()

    # THEN nothing is sent; the pinned image is skipped as rate_limit; the pattern failed; the bucket is blocked
    run = planner.latest()
    assert planner.sent() == []
    assert (run.status, run.stopped_upstreams, run.counts) == (
        RunStatus.FAILED,
        (HUB,),
        {Outcome.SKIPPED: 1, Outcome.FAILED: 1},
    )
    assert planner.budget.blocked_until(HUB_BUCKET, now=planner.clock.now) == reset
    found = outcomes(planner, run)
    assert found[f"{REGION}#docker-hub/library/node:18-alpine"].failure_class is FailureClass.RATE_LIMIT
    assert "answered 429" in (found[f"{REGION}#docker-hub/library/node:18-alpine"].message or "")

    # AND another set's run during the block lists nothing and sends nothing
    planner.warm_set("other", images=IMAGES[1:2], tag_patterns=["library/python:3.*"])
    planner.clock.advance(minutes=5)
    planner.service.tick()
    assert len(planner.tags.calls) == 1
    assert planner.latest("other").counts == {Outcome.SKIPPED: 1, Outcome.FAILED: 1}


def test_top_tags_come_from_the_pull_statistics_mapped_to_upstream_paths(planner: Planner) -> None:
    planner.hub_rule()
    planner.pulls.top["docker-hub"] = [
        PulledTag("docker-hub/library/nginx", "1.27", 40),
        PulledTag("docker-hub/library/node", "18-alpine", 12),
        PulledTag("docker-hub/library/redis", "7", 3),
    ]
    planner.warm_set(images=["library/alpine:3.20"], top={"count": 2, "window_days": 7})

    planner.service.tick()

    assert [t.image for t in planner.sent()] == ["library/alpine:3.20", "library/nginx:1.27", "library/node:18-alpine"]
    assert planner.pulls.asked == [("docker-hub", 500, 7)]


def test_a_digest_only_image_is_queued_by_its_digest_for_one_request(planner: Planner) -> None:
    # The worker warms it from the cache, or fails it naming tag@digest when ECR does not have it.
    planner.hub_rule()
    planner.warm_set(images=[f"library/node@{DIGEST}", IMAGES[0]])
    planner.service.tick()
    sent = {t.image: t for t in planner.sent()}
    assert sorted(sent) == sorted([f"library/node@{DIGEST}", IMAGES[0]])
    by_digest = sent[f"library/node@{DIGEST}"]
    assert (by_digest.tag, by_digest.digest, by_digest.reserved_requests) == (None, DIGEST, 1)
    assert planner.latest().total == 2


def test_a_run_with_nothing_to_send_is_finished_at_once(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES[:1])
    planner.runs.record_verified(
        REGION, "docker-hub/library/node:18-alpine", digest=DIGEST, platforms=[], at=planner.clock.now
    )
    planner.service.tick()
    run = planner.latest()
    assert (run.status, run.finished_at, run.counts) == (RunStatus.SUCCEEDED, planner.clock.now, {Outcome.FRESH: 1})
    assert planner.tokens_left(HUB_LIMIT) == 200


def test_a_failing_store_fails_the_planning_retryably(planner: Planner, monkeypatch: pytest.MonkeyPatch) -> None:
    planner.hub_rule()
    planner.warm_set(images=IMAGES[:1])
    [request] = planner.service.due()
    monkeypatch.setattr(planner.runs.client, "transact_write_items", raiser("InternalServerError", 500))
    with pytest.raises(RetryableError, match="DynamoDB TransactWriteItems"):
        planner.service.plan(request)
    assert planner.sent() == []
    assert planner.runs.pending_tasks(request.run_id) is None  # not recorded as planned: the next try plans it
