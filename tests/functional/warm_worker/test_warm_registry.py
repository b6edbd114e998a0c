"""The warm worker end to end: the embedded ECR's pull-through cache pulling from real local registries.

Upstream hosts are mapped as tests/functional/registry/support.py says: Docker Hub is a Bearer-token
registry, ``public.ecr.aws`` an anonymous one, ``quay.io`` the fault proxy in front of the anonymous one
(its faults are what the upstream answers ECR). What the worker records is checked against what was
seeded upstream and what ECR holds afterwards.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.aws import clock
from devstack.aws.ecr_pullthrough import pending_imports
from devstack.registry import FaultKind, SeededImage, Seeder
from devstack.registry.images import ManifestFormat
from devstack.registry.seeder import ImageSpec
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.upstream import UpstreamKind, default_rate_limit
from ecrcache.models.warm_pull import DIGEST_ISSUE
from ecrcache.models.warm_run import Outcome, RunStatus
from tests.functional.registry.support import PullThrough
from tests.functional.warm_worker.support import Warming

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional


def seeded_image(seeded: list[SeededImage], reference: str) -> SeededImage:
    return next(image for image in seeded if image.reference == reference)


@pytest.fixture
def warming(ptc: PullThrough) -> Warming:
    return Warming()


# --------------------------------------------------------------------------------------------------
# Warmed and verified
# --------------------------------------------------------------------------------------------------


def test_a_single_platform_image_is_warmed(ptc: PullThrough, warming: Warming, seeded: list[SeededImage]) -> None:
    alpine = seeded_image(seeded, "library/alpine:3.20")
    ptc.anonymous_rule()
    # WHEN the worker warms a single-platform tag nobody pulled yet
    [outcome] = warming.warm(warming.task("ecr-public", "library/alpine:3.20", platforms=("linux/amd64",)))
    # THEN it is warmed with the upstream's digest, for one manifest request
    assert (outcome.outcome, outcome.digest, outcome.upstream_requests) == (Outcome.WARMED, alpine.digest, 1)
    assert outcome.message is not None
    assert "single-platform" in outcome.message
    # AND ECR has it, its layers imported (asked for by URL only, each once)
    assert ptc.tagged("ecr-public/library/alpine", "3.20") == alpine.digest
    assert pending_imports() == []
    assert warming.warmer.calls == {
        "DescribeImages": 2,
        "BatchGetImage": 1,
        "GetDownloadUrlForLayer": len(alpine.blob_digests),
    }
    # AND the run is finished, the image recorded fresh, the unused reservation (2 of 3) refunded
    assert warming.run().status is RunStatus.SUCCEEDED
    assert ("us-east-1", "ecr-public/library/alpine:3.20") in warming.store.warmed
    assert warming.budget.log[-1] == ("refund", "public.ecr.aws", 2)


def test_a_multi_platform_image_is_warmed_and_every_platform_verified(
    ptc: PullThrough, warming: Warming, token_seeded: list[SeededImage]
) -> None:
    node = seeded_image(token_seeded, "library/node:18-alpine")
    ptc.docker_hub_rule()
    # WHEN the worker warms a multi-platform tag from the (authenticated) Docker Hub stand-in
    [outcome] = warming.warm(warming.task("docker-hub", "library/node:18-alpine"))
    # THEN it is warmed: both platforms verified; the index and its two children were requested upstream
    assert outcome.outcome is Outcome.WARMED
    assert (outcome.digest, outcome.platforms_verified) == (node.digest, ("linux/amd64", "linux/arm64"))
    assert outcome.upstream_requests == 3
    assert ptc.digests("docker-hub/library/node") == {node.digest, *node.child_digests}
    assert warming.warmer.calls["BatchGetImage"] == 3  # the index, then each platform's child by digest
    assert warming.warmer.calls["GetDownloadUrlForLayer"] == len(node.blob_digests)
    assert pending_imports() == []
    assert warming.store.warmed[("us-east-1", "docker-hub/library/node:18-alpine")][:2] == (
        node.digest,
        ("linux/amd64", "linux/arm64"),
    )

    # WHEN the next run comes 25 hours later (ECR's window is over: it re-validates the tag upstream)
    clock.advance(timedelta(hours=25))
    [again] = warming.warm(warming.task("docker-hub", "library/node:18-alpine", run_id="run-2"))
    # THEN it is warmed again for one manifest request: the digest did not change, nothing was imported
    assert (again.outcome, again.digest, again.upstream_requests) == (Outcome.WARMED, node.digest, 1)


def test_a_platform_with_a_variant_matches_the_plain_one(
    ptc: PullThrough, warming: Warming, seeder: Seeder, unique_repo: str
) -> None:
    # GIVEN an index whose arm64 child says variant v8 (containerd: the default arm64, written or not)
    image = seeder.push(ImageSpec(unique_repo, "v1", ("linux/amd64", "linux/arm64/v8"), ManifestFormat.OCI))
    ptc.anonymous_rule()
    [outcome] = warming.warm(warming.task("ecr-public", f"{unique_repo}:v1", platforms=("linux/arm64",)))
    assert (outcome.outcome, outcome.platforms_verified) == (Outcome.WARMED, ("linux/arm64",))
    assert outcome.digest == image.digest


def test_an_index_missing_a_platform_fails_naming_it(
    ptc: PullThrough, warming: Warming, seeder: Seeder, unique_repo: str
) -> None:
    # GIVEN an index with an amd64 child only
    image = seeder.push(ImageSpec(unique_repo, "v1", ("linux/amd64",), index=True))
    ptc.anonymous_rule()
    # WHEN warmed for amd64 and arm64
    [outcome] = warming.warm(warming.task("ecr-public", f"{unique_repo}:v1"))
    # THEN not found, naming the missing platform; the platform it has is warmed and verified
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, FailureClass.NOT_FOUND)
    assert (outcome.platforms_verified, outcome.platforms_missing) == (("linux/amd64",), ("linux/arm64",))
    assert outcome.message == "PlatformNotInIndex (child): the index has no linux/arm64 (it lists linux/amd64)"
    assert image.child_digests[0] in ptc.digests(f"ecr-public/{unique_repo}")
    assert warming.store.warmed == {}
    assert warming.run().status is RunStatus.FAILED


# --------------------------------------------------------------------------------------------------
# Every failure class through the upstream's faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "delay", "expected", "code"),
    [
        (FaultKind.UNAUTHORIZED, 0.0, FailureClass.CREDENTIAL, "UpstreamAccessDenied"),
        (FaultKind.FORBIDDEN, 0.0, FailureClass.CREDENTIAL, "UpstreamAccessDenied"),
        (FaultKind.NOT_FOUND, 0.0, FailureClass.NOT_FOUND, "ImageNotFound"),
        (FaultKind.UNAVAILABLE, 0.0, FailureClass.UPSTREAM_DOWN, "UpstreamUnavailable"),
        (FaultKind.SERVER_ERROR, 0.0, FailureClass.UPSTREAM_DOWN, "UpstreamUnavailable"),
        (FaultKind.TIMEOUT, 2.0, FailureClass.UPSTREAM_DOWN, "UpstreamUnavailable"),  # hangs past ECR's 1 s
    ],
    ids=["401", "403", "404", "503", "500", "hang"],
)
def test_an_upstream_fault_is_classified(  # noqa: PLR0917 - pytest passes fixtures and parameters by name
    ptc: PullThrough,
    warming: Warming,
    seeded: list[SeededImage],
    kind: FaultKind,
    delay: float,
    expected: FailureClass,
    code: str,
) -> None:
    ptc.anonymous_rule("quay", "quay.io")
    ptc.fault_proxy.faults.add(kind, times=5, path=r"/manifests/", delay=delay)
    [outcome] = warming.warm(warming.task("quay", "library/nginx:1.27", platforms=("linux/amd64",)))
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, expected)
    assert outcome.message is not None
    assert outcome.message.startswith(f"{code}: ")
    assert outcome.upstream_requests == 1
    assert warming.budget.log[-1] == ("refund", "quay.io", 2)


def test_a_rate_limit_blocks_the_upstream_and_the_next_image_is_skipped(
    ptc: PullThrough, warming: Warming, seeded: list[SeededImage]
) -> None:
    ptc.anonymous_rule("quay", "quay.io")
    ptc.anonymous_rule()
    ptc.fault_proxy.faults.add(FaultKind.TOO_MANY_REQUESTS, times=5, path=r"/manifests/", retry_after=60)
    # the tasks carry the bucket limit the planner takes with for quay (its kind's default: 600 an hour)
    requests, window = default_rate_limit(UpstreamKind.QUAY)
    nginx, alpine = (
        warming.task("quay", image, platforms=("linux/amd64",), bucket_capacity=requests, bucket_window_seconds=window)
        for image in ("library/nginx:1.27", "library/alpine:3.20")
    )
    other = warming.task("ecr-public", "library/alpine:3.20", platforms=("linux/amd64",))
    warming.plan(nginx, alpine, other)
    # WHEN the upstream answers 429
    first = warming.service.handle(nginx)
    assert (first.outcome, first.failure_class) == (Outcome.FAILED, FailureClass.RATE_LIMIT)
    assert first.message is not None
    assert first.message.startswith("UpstreamTooManyRequests: ")
    # THEN the upstream is blocked for its window (quay publishes none: ours, an hour)
    blocked = warming.budget.blocked_until("quay.io", now=clock.now())
    assert blocked is not None
    assert timedelta(minutes=59) < blocked - clock.now() <= timedelta(hours=1)
    # WHEN the next image of that upstream is handled THEN it is skipped without any ECR call
    calls = warming.warmer.calls.copy()
    second = warming.service.handle(alpine)
    assert (second.outcome, second.failure_class, second.upstream_requests) == (
        Outcome.SKIPPED,
        FailureClass.RATE_LIMIT,
        0,
    )
    assert warming.warmer.calls == calls
    # AND another upstream is warmed as usual; the run ends partial
    assert warming.service.handle(other).outcome is Outcome.WARMED
    run = warming.run()
    assert run.status is RunStatus.PARTIAL
    assert run.counts == {Outcome.FAILED: 1, Outcome.SKIPPED: 1, Outcome.WARMED: 1}


def test_an_unknown_tag_is_not_found(ptc: PullThrough, warming: Warming, seeded: list[SeededImage]) -> None:
    ptc.anonymous_rule()
    [outcome] = warming.warm(warming.task("ecr-public", "library/alpine:0.0-nope"))
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, FailureClass.NOT_FOUND)


def test_a_rejected_credential_is_a_credential_failure(
    ptc: PullThrough, warming: Warming, token_seeded: list[SeededImage]
) -> None:
    ptc.docker_hub_rule(access_token="expired")
    [outcome] = warming.warm(warming.task("docker-hub", "library/node:18-alpine"))
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, FailureClass.CREDENTIAL)
    assert outcome.message is not None
    assert "expired" not in outcome.message  # the token never shows


def test_a_secret_ecr_cannot_use_is_a_credential_failure(
    ptc: PullThrough, warming: Warming, token_seeded: list[SeededImage]
) -> None:
    arn = ptc.aws.secret("ecr-pullthroughcache/broken", {"username": "someone"})
    ptc.aws.ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
    )
    [outcome] = warming.warm(warming.task("docker-hub", "library/node:18-alpine"))
    assert (outcome.failure_class, outcome.upstream_requests) == (FailureClass.CREDENTIAL, 1)
    assert outcome.message is not None
    assert outcome.message.startswith("UnableToGetUpstreamImageException: ")


def test_no_rule_for_the_repository_is_ours(ptc: PullThrough, warming: Warming) -> None:
    [outcome] = warming.warm(warming.task("ecr-public", "library/alpine:3.20"))
    assert (outcome.outcome, outcome.failure_class, outcome.upstream_requests) == (Outcome.FAILED, FailureClass.OURS, 0)


# --------------------------------------------------------------------------------------------------
# At least once, digests
# --------------------------------------------------------------------------------------------------


def test_a_redelivered_task_is_counted_once(ptc: PullThrough, warming: Warming, seeded: list[SeededImage]) -> None:
    ptc.anonymous_rule()
    task = warming.task("ecr-public", "library/alpine:3.20", platforms=("linux/amd64",))
    warming.plan(task, warming.task("ecr-public", "library/nginx:1.27", platforms=("linux/amd64",)))
    first = warming.service.handle(task)
    calls = warming.warmer.calls.copy()
    budget = list(warming.budget.log)
    # WHEN SQS delivers the same message again
    again = warming.service.handle(task)
    # THEN the recorded outcome answers; nothing is pulled, counted or refunded again
    assert again == first
    assert warming.warmer.calls == calls
    assert warming.budget.log == budget
    run = warming.run()
    assert (run.done, run.status, run.upstream_requests) == (1, RunStatus.RUNNING, 1)


def test_a_digest_alone_is_warmed_only_once_cached(
    ptc: PullThrough, warming: Warming, seeded: list[SeededImage]
) -> None:
    nginx = seeded_image(seeded, "library/nginx:1.27")
    ptc.anonymous_rule()
    by_digest = warming.task("ecr-public", f"library/nginx@{nginx.digest}", platforms=("linux/amd64",))
    # WHEN a digest nobody pulled by tag yet is warmed THEN not found, citing the issue and the fix
    [outcome] = warming.warm(by_digest)
    assert (outcome.outcome, outcome.failure_class, outcome.digest) == (
        Outcome.FAILED,
        FailureClass.NOT_FOUND,
        nginx.digest,
    )
    assert outcome.message is not None
    assert DIGEST_ISSUE in outcome.message
    assert "tag@digest" in outcome.message
    # WHEN its tag is warmed first THEN the digest is served from the cache: no upstream request
    warming.warm(warming.task("ecr-public", "library/nginx:1.27", run_id="run-2", platforms=("linux/amd64",)))
    [cached] = warming.warm(by_digest.model_copy(update={"run_id": "run-3"}))
    assert (cached.outcome, cached.digest, cached.upstream_requests) == (Outcome.WARMED, nginx.digest, 0)


def test_a_pinned_tag_warms_by_tag_and_fails_once_the_tag_moved(
    ptc: PullThrough, warming: Warming, seeder: Seeder, unique_repo: str
) -> None:
    first = seeder.image(unique_repo, "v1", platforms=("linux/amd64",))
    ptc.anonymous_rule()
    # WHEN the tag@digest is warmed while the tag still serves the digest THEN warmed, verified
    pinned = warming.task("ecr-public", f"{unique_repo}:v1@{first.digest}", platforms=("linux/amd64",))
    [outcome] = warming.warm(pinned)
    assert (outcome.outcome, outcome.digest) == (Outcome.WARMED, first.digest)
    # WHEN the tag moves upstream and ECR's window is over
    moved = seeder.move_tag(unique_repo, "v1")
    clock.advance(timedelta(hours=25))
    [later] = warming.warm(pinned.model_copy(update={"run_id": "run-2"}))
    # THEN the image fails not found, the message naming both digests
    assert (later.outcome, later.failure_class) == (Outcome.FAILED, FailureClass.NOT_FOUND)
    assert later.message is not None
    assert first.digest in later.message
    assert moved.digest in later.message
    assert later.upstream_requests == 1  # ECR imported the new single image
