"""The warm planner's decisions: due fires, resolution into ECR references, order, freshness, budget cuts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.engine.upstream_buckets import bucket_key, bucket_label
from ecrcache.engine.warm import (
    FRESHNESS_SLACK,
    MAX_PATTERN_MATCHES,
    Resolution,
    RunContext,
    Wanted,
    allocate,
    due_fire,
    ecr_repository,
    finished_status,
    freshness_horizon,
    is_fresh,
    next_fire,
    order_wanted,
    plan_run,
    resolve,
    scheduled_run_id,
    upstream_path,
)
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.rule import RuleSpec
from ecrcache.models.warm_inputs import PulledTag, TagListing
from ecrcache.models.warm_run import Outcome, RunStatus
from ecrcache.models.warm_set import WarmSetSpec

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64
HUB = RuleSpec.model_validate({"upstream_kind": "docker-hub", "credential": "hub"})
ECR_TO_ECR = RuleSpec.model_validate(
    {
        "upstream_kind": "ecr",
        "upstream_url": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
        "upstream_repository_prefix": "base",
    }
)


def warm_set(**fields: object) -> WarmSetSpec:
    return WarmSetSpec.model_validate({"rule": "docker-hub", **fields})


def context(
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
    *,
    now: datetime = NOW,
    schedule: str | None = "cron(0 5 * * ? *)",
) -> RunContext:
    return RunContext(
        run_id="run-1",
        warm_set="ci",
        rule="docker-hub",
        upstream="registry-1.docker.io",
        platforms=platforms,
        restore_archived=False,
        now=now,
        limit=(200, 21_600),
        schedule=schedule,
    )


# -------------------------------------------------------------------------------------------- due-ness


@pytest.mark.parametrize(
    ("last_claimed", "created_at", "expected"),
    [
        (None, NOW - timedelta(days=2), datetime(2026, 11, 29, 5, tzinfo=UTC)),  # never claimed: due
        (datetime(2026, 11, 28, 5, tzinfo=UTC), NOW - timedelta(days=2), datetime(2026, 11, 29, 5, tzinfo=UTC)),
        (datetime(2026, 11, 29, 5, tzinfo=UTC), NOW - timedelta(days=2), None),  # this fire is claimed
        (None, datetime(2026, 11, 29, 6, tzinfo=UTC), None),  # the set is newer than the fire
        (None, datetime(2026, 11, 29, 5, tzinfo=UTC), datetime(2026, 11, 29, 5, tzinfo=UTC)),
    ],
)
def test_due_fire(last_claimed: datetime | None, created_at: datetime, expected: datetime | None) -> None:
    assert due_fire("cron(0 5 * * ? *)", NOW, last_claimed=last_claimed, created_at=created_at) == expected


def test_a_missed_fire_is_caught_up_once_with_the_latest_fire() -> None:
    # GIVEN a set last claimed three days ago (ticks were missed) WHEN the tick comes THEN the latest fire is due
    fire = due_fire("rate(1 day)", NOW, last_claimed=NOW - timedelta(days=3), created_at=NOW - timedelta(days=9))
    assert fire == datetime(2026, 11, 29, tzinfo=UTC)


def test_scheduled_run_ids_are_deterministic_per_set_and_fire() -> None:
    fire = datetime(2026, 11, 29, 5, tzinfo=UTC)
    assert scheduled_run_id("ci", fire) == scheduled_run_id("ci", fire)
    assert scheduled_run_id("ci", fire) != scheduled_run_id("ci", fire + timedelta(days=1))
    assert scheduled_run_id("ci", fire) != scheduled_run_id("nightly", fire)


# ------------------------------------------------------------------------------------ repository mapping


@pytest.mark.parametrize(
    ("prefix", "rule", "path", "repository"),
    [
        ("docker-hub", HUB, "library/node", "docker-hub/library/node"),
        ("team/hub/", HUB, "library/node", "team/hub/library/node"),
        ("ROOT", RuleSpec.model_validate({"upstream_kind": "quay"}), "argoproj/argocd", "argoproj/argocd"),
        ("my-app", ECR_TO_ECR, "base/image1", "my-app/image1"),
        ("my-app", ECR_TO_ECR, "other/image1", None),  # outside the upstream prefix
    ],
)
def test_ecr_repository_and_back(prefix: str, rule: RuleSpec, path: str, repository: str | None) -> None:
    assert ecr_repository(prefix, rule, path) == repository
    if repository is not None:
        assert upstream_path(prefix, rule, repository) == path


def test_a_repository_outside_the_prefix_has_no_upstream_path() -> None:
    assert upstream_path("docker-hub", HUB, "quay/argoproj/argocd") is None


# -------------------------------------------------------------------------------------------- resolution


def test_images_patterns_and_top_resolve_into_ecr_references_once_each() -> None:
    # GIVEN a set naming images, a pattern and top tags that overlap
    spec = warm_set(
        images=["library/node:18-alpine", f"library/python:3.12@{DIGEST}"],
        tag_patterns=["library/node:20.*-alpine"],
        top={"count": 2},
    )
    listing = TagListing("library/node", ("20.9-alpine", "20.10-alpine", "20.10", "18-alpine"), requests=1)
    top = [PulledTag("docker-hub/library/node", "18-alpine", 50), PulledTag("docker-hub/library/redis", "7", 9)]

    # WHEN resolved
    resolution = resolve(spec, prefix="docker-hub", rule=HUB, tag_lists={"library/node": listing}, top=top)

    # THEN each reference appears once; pinned first (by pulls), then the rest by pulls, then as named
    assert [w.reference for w in resolution.wanted] == [
        "docker-hub/library/node:18-alpine",  # pinned, 50 pulls
        "docker-hub/library/python:3.12",  # pinned, tag@digest warms by tag, keeps the digest
        "docker-hub/library/redis:7",  # top, 9 pulls
        "docker-hub/library/node:20.10-alpine",  # pattern matches, highest version first
        "docker-hub/library/node:20.9-alpine",
    ]
    assert resolution.wanted[1].digest == DIGEST
    assert resolution.wanted[0].pulls == 50
    assert resolution.unwarmable == ()


def test_a_digest_only_image_is_warmed_by_its_digest_at_the_cost_of_one_request() -> None:
    # GIVEN a set pinning a digest alone (ECR can serve it once cached; it cannot fetch an uncached one)
    spec = warm_set(images=[f"library/node@{DIGEST}", "library/node:18"])
    resolution = resolve(spec, prefix="docker-hub", rule=HUB, tag_lists={})
    # THEN it is queued by digest (the worker warms it from the cache, or fails it naming tag@digest)
    assert resolution.unwarmable == ()
    assert [w.reference for w in resolution.wanted] == [
        f"docker-hub/library/node@{DIGEST}",
        "docker-hub/library/node:18",
    ]
    plan = plan_run(resolution, context(), regions=["us-east-1"], fresh={}, budget_left=100)
    digest_task, tag_task = plan.to_warm
    assert (digest_task.tag, digest_task.digest, digest_task.reserved_requests) == (None, DIGEST, 1)
    assert tag_task.reserved_requests == 3
    # AND it is fresh like any image, under its digest reference
    seen = {"us-east-1": {f"docker-hub/library/node@{DIGEST}": NOW - timedelta(hours=2)}}
    plan = plan_run(resolution, context(), regions=["us-east-1"], fresh=seen, budget_left=100)
    assert [(o.digest, o.outcome) for o in plan.settled] == [(DIGEST, Outcome.FRESH)]


def test_an_image_outside_the_rules_upstream_prefix_is_unwarmable() -> None:
    spec = WarmSetSpec(rule="my-app", images=("other/image1:v1", "base/image1:v1"))
    resolution = resolve(spec, prefix="my-app", rule=ECR_TO_ECR, tag_lists={})
    assert [w.reference for w in resolution.wanted] == ["my-app/image1:v1"]
    assert [u.image for u in resolution.unwarmable] == ["other/image1:v1"]
    assert "upstream_repository_prefix 'base'" in resolution.unwarmable[0].message


def test_a_failed_tag_listing_settles_its_pattern_with_the_listings_class_and_cost() -> None:
    spec = warm_set(tag_patterns=["library/node:20.*"])
    listing = TagListing("library/node", requests=2, failure=FailureClass.RATE_LIMIT, message="429 Too Many Requests")
    resolution = resolve(spec, prefix="docker-hub", rule=HUB, tag_lists={"library/node": listing})
    [failed] = resolution.unwarmable
    assert (failed.failure_class, failed.upstream_requests, failed.tag) == (FailureClass.RATE_LIMIT, 2, "20.*")
    assert "429" in failed.message


def test_a_pattern_never_listed_is_a_fault_of_ours() -> None:
    spec = warm_set(tag_patterns=["library/node:20.*"])
    [failed] = resolve(spec, prefix="docker-hub", rule=HUB, tag_lists={}).unwarmable
    assert failed.failure_class is FailureClass.OURS


def test_a_pattern_adds_at_most_its_share_of_tags() -> None:
    spec = warm_set(tag_patterns=["library/node:1.*"])
    tags = tuple(f"1.{n}" for n in range(MAX_PATTERN_MATCHES + 20))
    resolution = resolve(
        spec, prefix="docker-hub", rule=HUB, tag_lists={"library/node": TagListing("library/node", tags)}
    )
    assert len(resolution.wanted) == MAX_PATTERN_MATCHES
    assert resolution.wanted[0].tag == f"1.{MAX_PATTERN_MATCHES + 19}"  # the highest kept


def test_top_tags_beyond_count_only_rank_and_tags_outside_the_rule_are_ignored() -> None:
    spec = warm_set(images=["library/alpine:3.20"], top={"count": 1})
    top = [
        PulledTag("quay/argoproj/argocd", "v2", 99),  # another rule's repository
        PulledTag("docker-hub/library/nginx", "1.27", 80),
        PulledTag("docker-hub/library/alpine", "3.20", 5),  # ranks the pinned image, is not a top pick
    ]
    resolution = resolve(spec, prefix="docker-hub", rule=HUB, tag_lists={}, top=top)
    assert [(w.reference, w.pulls) for w in resolution.wanted] == [("docker-hub/library/alpine:3.20", 5)]


def test_order_pins_first_then_pulls_then_the_order_named() -> None:
    wanted = [
        Wanted("a:1", "p/a", "1"),
        Wanted("b:1", "p/b", "1", pinned=True),
        Wanted("c:1", "p/c", "1"),
        Wanted("d:1", "p/d", "1", pinned=True),
    ]
    ordered = order_wanted(wanted, {"p/c:1": 10, "p/d:1": 1})
    assert [w.image for w in ordered] == ["d:1", "b:1", "c:1", "a:1"]


# ----------------------------------------------------------------------------- freshness and budget cuts


def resolution_of(*names: str) -> Resolution:
    return Resolution(tuple(Wanted(f"library/{n}:1", f"docker-hub/library/{n}", "1") for n in names))


def test_fresh_images_cost_nothing_and_stale_ones_are_cut_at_the_runs_budget() -> None:
    # GIVEN three images in two Regions; one fresh in us-east-1 (verified 3 h ago), one refreshed 25 h ago
    fresh = {
        "us-east-1": {
            "docker-hub/library/a:1": NOW - timedelta(hours=3),
            "docker-hub/library/b:1": NOW - timedelta(hours=25),
        }
    }

    # WHEN planned with a budget for two stale images (3 requests each: manifest + 2 platforms)
    plan = plan_run(
        resolution_of("a", "b", "c"), context(), regions=["us-east-1", "eu-west-1"], fresh=fresh, budget_left=7
    )

    # THEN in order: a fresh in us-east-1, a and b bought, the rest skipped by the run's budget
    assert [(t.region, t.repository) for t in plan.to_warm] == [
        ("eu-west-1", "docker-hub/library/a"),
        ("us-east-1", "docker-hub/library/b"),
    ]
    assert plan.cost == 6
    assert all(t.reserved_requests == 3 for t in plan.to_warm)
    settled = [(o.region, o.repository, o.outcome) for o in plan.settled]
    assert settled == [
        ("us-east-1", "docker-hub/library/a", Outcome.FRESH),
        ("eu-west-1", "docker-hub/library/b", Outcome.SKIPPED),
        ("us-east-1", "docker-hub/library/c", Outcome.SKIPPED),
        ("eu-west-1", "docker-hub/library/c", Outcome.SKIPPED),
    ]
    skipped = plan.settled[1]
    assert skipped.failure_class is None and "budget" in (skipped.message or "")


def warmed_fires(schedule: str, start: datetime, period: timedelta, fires: int, *, lag: timedelta) -> list[int]:
    """The fires (by index) at which a set warms its one image: each fire planned by a tick 3 minutes late,
    each warm verified ``lag`` after its tick (the worker runs after the planner)."""
    seen: datetime | None = None
    warmed: list[int] = []
    reference = "docker-hub/library/a:1"
    for index in range(fires):
        tick = start + index * period + timedelta(minutes=3)
        fresh = {"us-east-1": {reference: seen}} if seen is not None else {}
        plan = plan_run(
            resolution_of("a"), context(now=tick, schedule=schedule), regions=["us-east-1"], fresh=fresh, budget_left=9
        )
        if plan.to_warm:
            warmed.append(index)
            seen = tick + lag
        else:
            assert [o.outcome for o in plan.settled] == [Outcome.FRESH]
    return warmed


@pytest.mark.parametrize("lag", [timedelta(seconds=40), timedelta(minutes=20), timedelta(0)])
def test_a_daily_set_warms_its_images_every_day(lag: timedelta) -> None:
    # GIVEN a set firing at 05:00 daily, whose worker verifies each image just after the tick (yesterday's
    # verification is 23 h 59 min old at today's tick: "within 24 h", but gone before tomorrow's fire)
    fires = warmed_fires("cron(0 5 * * ? *)", datetime(2026, 11, 1, 5, tzinfo=UTC), timedelta(days=1), 5, lag=lag)
    # THEN every fire warms it (not every other one)
    assert fires == [0, 1, 2, 3, 4]


def test_a_six_hourly_set_warms_its_images_once_a_day_at_the_fire_before_their_window_ends() -> None:
    fires = warmed_fires(
        "rate(6 hours)", datetime(2026, 11, 1, tzinfo=UTC), timedelta(hours=6), 12, lag=timedelta(seconds=40)
    )
    # the fires 6, 12 and 18 h later skip it (the next fire comes within its 24 h); 24 h later it is warmed
    assert fires == [0, 4, 8]


def test_an_hourly_set_skips_an_image_until_its_last_fire_before_the_window_ends() -> None:
    fires = warmed_fires(
        "rate(1 hour)", datetime(2026, 11, 1, tzinfo=UTC), timedelta(hours=1), 49, lag=timedelta(seconds=40)
    )
    assert fires == [0, 24, 48]


@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [
        ("cron(0 5 * * ? *)", datetime(2026, 11, 29, 4, 30, tzinfo=UTC), datetime(2026, 11, 29, 5, tzinfo=UTC)),
        ("cron(0 5 * * ? *)", datetime(2026, 11, 29, 5, 3, tzinfo=UTC), None),  # tomorrow: not within the hour
        ("rate(1 hour)", datetime(2026, 11, 29, 5, 3, 17, tzinfo=UTC), datetime(2026, 11, 29, 6, tzinfo=UTC)),
        ("rate(1 hour)", datetime(2026, 11, 29, 5, tzinfo=UTC), datetime(2026, 11, 29, 6, tzinfo=UTC)),  # not now
        ("cron(59 5 * * ? *)", datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC), datetime(2026, 11, 29, 5, 59, tzinfo=UTC)),
        ("cron(1 6 * * ? *)", datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC), None),  # 61 minutes away
    ],
)
def test_next_fire_within_an_hour(schedule: str, now: datetime, expected: datetime | None) -> None:
    assert next_fire(schedule, now, within=timedelta(hours=1)) == expected


def test_the_freshness_horizon_is_the_next_fire_within_the_slack_else_the_slack() -> None:
    assert freshness_horizon(NOW, "rate(1 hour)") == NOW + timedelta(hours=1)  # 12:00 -> 13:00 either way
    late = NOW + timedelta(minutes=4)
    assert freshness_horizon(late, "rate(1 hour)") == NOW + timedelta(hours=1)
    assert freshness_horizon(late, "cron(0 5 * * ? *)") == late + FRESHNESS_SLACK
    assert freshness_horizon(late) == late + FRESHNESS_SLACK
    # fresh: ECR's 24 h from `seen` last beyond the horizon
    assert is_fresh(late - timedelta(hours=22, minutes=59), late + FRESHNESS_SLACK)
    assert not is_fresh(late - timedelta(hours=23), late + FRESHNESS_SLACK)


def test_unwarmable_images_fail_in_every_region_counting_their_requests_once() -> None:
    resolution = resolve(
        warm_set(tag_patterns=["library/node:20.*"]),
        prefix="docker-hub",
        rule=HUB,
        tag_lists={
            "library/node": TagListing(
                "library/node", requests=3, failure=FailureClass.UPSTREAM_DOWN, message="timed out"
            )
        },
    )
    plan = plan_run(resolution, context(), regions=["us-east-1", "eu-west-1"], fresh={}, budget_left=100)
    assert [(o.region, o.outcome, o.failure_class, o.upstream_requests) for o in plan.settled] == [
        ("us-east-1", Outcome.FAILED, FailureClass.UPSTREAM_DOWN, 3),
        ("eu-west-1", Outcome.FAILED, FailureClass.UPSTREAM_DOWN, 0),
    ]


def test_the_bucket_pays_for_the_first_tasks_and_the_rest_are_rate_limited() -> None:
    plan = plan_run(
        resolution_of("a", "b", "c"), context(("linux/amd64",)), regions=["us-east-1"], fresh={}, budget_left=100
    )

    allocation = allocate(plan, 5, why="the upstream's bucket is empty")

    assert [t.repository for t in allocation.tasks] == ["docker-hub/library/a", "docker-hub/library/b"]
    assert allocation.unused == 1
    [skipped] = allocation.skipped
    assert (skipped.outcome, skipped.failure_class, skipped.message) == (
        Outcome.SKIPPED,
        FailureClass.RATE_LIMIT,
        "the upstream's bucket is empty",
    )


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({}, RunStatus.SUCCEEDED),
        ({Outcome.WARMED: 2, Outcome.FRESH: 1}, RunStatus.SUCCEEDED),
        ({Outcome.WARMED: 2, Outcome.SKIPPED: 1}, RunStatus.PARTIAL),
        ({Outcome.FRESH: 1, Outcome.FAILED: 1}, RunStatus.PARTIAL),
        ({Outcome.FAILED: 2, Outcome.SKIPPED: 1}, RunStatus.FAILED),
    ],
)
def test_finished_status(counts: dict[Outcome, int], status: RunStatus) -> None:
    assert finished_status(counts) is status


def test_the_bucket_is_keyed_by_the_upstream_and_the_credential() -> None:
    assert bucket_key("registry-1.docker.io", None) == "registry-1.docker.io"
    assert bucket_key("registry-1.docker.io", "hub") == "registry-1.docker.io#hub"
    assert bucket_key("registry-1.docker.io", "hub") != bucket_key("registry-1.docker.io", "hub-paid")
    assert bucket_label("registry-1.docker.io#hub") == "registry-1.docker.io (credential hub)"
    assert bucket_label("quay.io") == "quay.io"


def test_the_buckets_limit_is_the_credentials_else_the_kinds_default() -> None:
    from ecrcache.engine.warm import rate_limit_of
    from ecrcache.models.credential import CredentialSpec

    plain = CredentialSpec.model_validate({"upstream_kind": "docker-hub", "username": "ci"})
    paid = CredentialSpec.model_validate(
        {"upstream_kind": "docker-hub", "username": "ci", "rate_limit": {"requests": 5000, "window_seconds": 3600}}
    )
    assert rate_limit_of(HUB, None) == (200, 21_600)
    assert rate_limit_of(HUB, plain) == (200, 21_600)
    assert rate_limit_of(HUB, paid) == (5000, 3600)
