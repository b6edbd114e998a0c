"""The warm worker's pure decisions: platforms (containerd's rules), failure classes, upstream requests, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.engine.upstream_buckets import MIN_BLOCK_SECONDS, block_until
from ecrcache.engine.warm_pull import (
    FAILURE_CLASSES,
    blob_digests,
    classify,
    fresh_outcome,
    normalize_platform,
    outcome_of,
    platform_matches,
    select_children,
    skipped_outcome,
    upstream_requests,
)
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_pull import (
    DIGEST_ISSUE,
    DIGEST_NOT_CACHED,
    IMAGE_ARCHIVED,
    LAYER_STILL_IMPORTING,
    NOT_VERIFIED,
    PLATFORM_MISSING,
    TAG_MOVED,
    TIMEOUT,
    CachedImage,
    EcrFailure,
    PullStage,
    WarmPull,
)
from ecrcache.models.warm_run import ImageOutcome, Outcome, WarmTask

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
OLD = "sha256:" + "0" * 64
NEW = "sha256:" + "1" * 64


def task(**changes: Any) -> WarmTask:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "warm_set": "base",
        "region": "us-east-1",
        "rule": "docker-hub",
        "upstream": "registry-1.docker.io",
        "repository": "docker-hub/library/node",
        "image": "library/node:18-alpine",
        "tag": "18-alpine",
        "platforms": ("linux/amd64", "linux/arm64"),
        "reserved_requests": 3,
        "bucket_capacity": 200,
        "bucket_window_seconds": 21_600,
    }
    return WarmTask(**(fields | changes))


def entry(os_name: str, arch: str, variant: str | None = None, digest: str = NEW) -> dict[str, Any]:
    platform = {"os": os_name, "architecture": arch} | ({"variant": variant} if variant else {})
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "platform": platform}


# --------------------------------------------------------------------------------------------------
# Platforms
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "platform", "matches"),
    [
        ("linux/amd64", {"os": "linux", "architecture": "amd64"}, True),
        # arm64's v8 is the default: written with or without it, on either side (containerd normalizeArch)
        ("linux/arm64", {"os": "linux", "architecture": "arm64", "variant": "v8"}, True),
        ("linux/arm64/v8", {"os": "linux", "architecture": "arm64"}, True),
        ("linux/arm64", {"os": "linux", "architecture": "aarch64"}, True),
        ("linux/arm64", {"os": "linux", "architecture": "arm64", "variant": "v9"}, False),
        ("linux/amd64", {"os": "linux", "architecture": "x86_64"}, True),
        ("linux/amd64", {"os": "linux", "architecture": "amd64", "variant": "v1"}, True),
        ("linux/amd64", {"os": "linux", "architecture": "amd64", "variant": "v3"}, False),
        # arm without a variant is arm/v7
        ("linux/arm/v7", {"os": "linux", "architecture": "arm"}, True),
        ("linux/arm/v6", {"os": "linux", "architecture": "arm"}, False),
        ("linux/arm/v6", {"os": "linux", "architecture": "armel"}, True),
        ("linux/amd64", {"os": "windows", "architecture": "amd64"}, False),
        # buildx attestation manifests are listed as unknown/unknown: never a platform
        ("linux/amd64", {"os": "unknown", "architecture": "unknown"}, False),
        ("linux/amd64", None, False),
        ("linux/amd64", {}, False),
    ],
)
def test_platform_matching_follows_containerd(wanted: str, platform: dict[str, str] | None, matches: bool) -> None:
    assert platform_matches(wanted, platform) is matches


def test_normalize_platform() -> None:
    assert normalize_platform("Linux", "AArch64", "8") == ("linux", "arm64", "")
    assert normalize_platform("macos", "i386", "v2") == ("darwin", "386", "")
    assert normalize_platform("linux", "arm64", "9.0") == ("linux", "arm64", "v9")
    assert normalize_platform("linux", "armhf") == ("linux", "arm", "v7")


def test_select_children_takes_the_first_match_and_names_the_missing() -> None:
    manifests = [
        entry("unknown", "unknown", digest="sha256:" + "9" * 64),
        entry("linux", "amd64", digest="sha256:" + "a" * 64),
        entry("linux", "arm64", "v8", digest="sha256:" + "b" * 64),
        entry("linux", "arm64", digest="sha256:" + "c" * 64),
    ]
    found, missing = select_children(manifests, ("linux/arm64", "linux/amd64", "linux/s390x"))
    assert found == {"linux/arm64": "sha256:" + "b" * 64, "linux/amd64": "sha256:" + "a" * 64}
    assert missing == ("linux/s390x",)


def test_blob_digests_are_config_then_layers_once_without_foreign_layers() -> None:
    shared = "sha256:" + "5" * 64
    manifests: list[dict[str, Any]] = [
        {"config": {"digest": "sha256:c1"}, "layers": [{"digest": shared}, {"digest": "sha256:l1"}]},
        {
            "config": {"digest": "sha256:c2"},
            "layers": [
                {"digest": shared},
                {"digest": "sha256:win", "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"},
                {"digest": "sha256:url", "urls": ["https://example.com/layer"]},
            ],
        },
    ]
    assert blob_digests(manifests) == ["sha256:c1", shared, "sha256:l1", "sha256:c2"]


# --------------------------------------------------------------------------------------------------
# Failure classes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("UpstreamAccessDenied", FailureClass.CREDENTIAL),
        ("UnableToGetUpstreamImageException", FailureClass.CREDENTIAL),
        ("UpstreamTooManyRequests", FailureClass.RATE_LIMIT),
        ("ImageNotFound", FailureClass.NOT_FOUND),
        ("InvalidImageTag", FailureClass.NOT_FOUND),
        ("ImageTagDoesNotMatchDigest", FailureClass.NOT_FOUND),
        (PLATFORM_MISSING, FailureClass.NOT_FOUND),
        (DIGEST_NOT_CACHED, FailureClass.NOT_FOUND),
        (TAG_MOVED, FailureClass.NOT_FOUND),
        ("UpstreamUnavailable", FailureClass.UPSTREAM_DOWN),
        ("UnableToGetUpstreamLayerException", FailureClass.UPSTREAM_DOWN),
        (TIMEOUT, FailureClass.UPSTREAM_DOWN),
        (LAYER_STILL_IMPORTING, FailureClass.UPSTREAM_DOWN),
        (IMAGE_ARCHIVED, FailureClass.ARCHIVED),
        ("AccessDeniedException", FailureClass.OURS),
        ("KmsError", FailureClass.OURS),
        ("ServerException", FailureClass.OURS),
        ("ThrottlingException", FailureClass.OURS),
        ("RepositoryNotFoundException", FailureClass.OURS),
        ("ImageInaccessible", FailureClass.OURS),
        (NOT_VERIFIED, FailureClass.OURS),
        ("EndpointConnectionError", FailureClass.OURS),
    ],
)
def test_failure_codes_map_to_the_class_a_user_acts_on(code: str, expected: FailureClass) -> None:
    assert classify(EcrFailure(code, "why", PullStage.MANIFEST)) is expected


def test_every_class_but_ours_has_a_code() -> None:
    assert set(FAILURE_CLASSES.values()) == set(FailureClass) - {FailureClass.OURS}


# --------------------------------------------------------------------------------------------------
# Upstream requests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_task", "pull", "expected"),
    [
        # uncached multi-platform tag: the index plus every child ECR caches with it
        (task(), WarmPull(cached_before=None, served_digest=NEW, index_children=3), 4),
        # uncached single image
        (task(), WarmPull(cached_before=None, served_digest=NEW), 1),
        # the tag moved upstream: ECR imported the new index
        (task(), WarmPull(cached_before=CachedImage(OLD), served_digest=NEW, index_children=2), 3),
        # cached, same digest: one re-validation of the manifest (an upper bound)
        (task(), WarmPull(cached_before=CachedImage(NEW), served_digest=NEW, index_children=2), 1),
        # a digest served from the cache: no upstream request
        (task(tag=None, digest=NEW), WarmPull(cached_before=CachedImage(NEW), served_digest=NEW), 0),
        # the upstream answered the manifest request with a failure: it was reached
        (task(), WarmPull(failure=EcrFailure("UpstreamTooManyRequests", "", PullStage.MANIFEST)), 1),
        (task(), WarmPull(failure=EcrFailure("UpstreamUnavailable", "", PullStage.MANIFEST)), 1),
        (task(tag=None, digest=NEW), WarmPull(failure=EcrFailure(DIGEST_NOT_CACHED, "", PullStage.MANIFEST)), 1),
        # nothing reached the upstream: our fault, or archived before the pull
        (task(), WarmPull(failure=EcrFailure("AccessDeniedException", "", PullStage.MANIFEST)), 0),
        (task(), WarmPull(failure=EcrFailure(IMAGE_ARCHIVED, "", PullStage.LOOKUP)), 0),
    ],
)
def test_upstream_requests_estimate(the_task: WarmTask, pull: WarmPull, expected: int) -> None:
    assert upstream_requests(the_task, pull) == expected


# --------------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------------


def test_a_verified_index_is_warmed_with_its_platforms() -> None:
    pull = WarmPull(served_digest=NEW, index_children=2, platforms_verified=("linux/amd64", "linux/arm64"), layers=6)
    outcome = outcome_of(task(), pull, now=NOW)
    assert outcome == ImageOutcome(
        image="library/node:18-alpine",
        region="us-east-1",
        repository="docker-hub/library/node",
        tag="18-alpine",
        digest=NEW,
        outcome=Outcome.WARMED,
        platforms_verified=("linux/amd64", "linux/arm64"),
        upstream_requests=3,
        finished_at=NOW,
    )


def test_a_single_image_is_warmed_and_says_its_platform_is_not_checked() -> None:
    outcome = outcome_of(task(), WarmPull(served_digest=NEW), now=NOW)
    assert outcome.outcome is Outcome.WARMED
    assert outcome.platforms_verified == ()
    assert outcome.message is not None
    assert "single-platform" in outcome.message
    assert "linux/amd64, linux/arm64" in outcome.message


def test_a_missing_platform_fails_not_found_naming_it() -> None:
    failure = EcrFailure(PLATFORM_MISSING, "the index has no linux/arm64 (it lists linux/amd64)", PullStage.CHILD)
    pull = WarmPull(
        served_digest=NEW,
        index_children=1,
        platforms_verified=("linux/amd64",),
        platforms_missing=("linux/arm64",),
        failure=failure,
    )
    outcome = outcome_of(task(), pull, now=NOW)
    assert (outcome.outcome, outcome.failure_class) == (Outcome.FAILED, FailureClass.NOT_FOUND)
    assert outcome.platforms_missing == ("linux/arm64",)
    assert outcome.message is not None
    assert "linux/arm64" in outcome.message
    assert outcome.upstream_requests == 2


def test_a_credential_failure_says_what_to_do() -> None:
    reason = "The authentication to the upstream registry failed"
    failure = EcrFailure("UpstreamAccessDenied", reason, PullStage.MANIFEST)
    outcome = outcome_of(task(), WarmPull(failure=failure), now=NOW)
    assert outcome.failure_class is FailureClass.CREDENTIAL
    assert outcome.message == (
        "UpstreamAccessDenied: The authentication to the upstream registry failed -- "
        "the upstream refused the rule's credential: check or rotate it"
    )


def test_a_failure_after_the_manifest_names_its_stage() -> None:
    failure = EcrFailure("UnableToGetUpstreamLayerException", "no layer", PullStage.LAYERS)
    outcome = outcome_of(task(), WarmPull(served_digest=NEW, failure=failure), now=NOW)
    assert outcome.failure_class is FailureClass.UPSTREAM_DOWN
    assert outcome.message is not None
    assert outcome.message.startswith("UnableToGetUpstreamLayerException (layers): no layer")


def test_a_digest_only_outcome_keeps_its_digest() -> None:
    failure = EcrFailure(DIGEST_NOT_CACHED, f"not cached ({DIGEST_ISSUE}): name it tag@digest", PullStage.MANIFEST)
    outcome = outcome_of(task(tag=None, digest=NEW), WarmPull(failure=failure), now=NOW)
    assert (outcome.tag, outcome.digest) == (None, NEW)
    assert outcome.key == f"us-east-1#docker-hub/library/node@{NEW}"
    assert outcome.message is not None
    assert DIGEST_ISSUE in outcome.message
    assert "tag@digest" in outcome.message


def test_an_archived_image_keeps_the_restore_flag() -> None:
    failure = EcrFailure(IMAGE_ARCHIVED, "restore started", PullStage.LOOKUP)
    outcome = outcome_of(task(restore_archived=True), WarmPull(failure=failure, restored=True), now=NOW)
    assert (outcome.outcome, outcome.failure_class, outcome.restored) == (Outcome.FAILED, FailureClass.ARCHIVED, True)
    assert outcome.upstream_requests == 0


def test_skipped_and_fresh_outcomes() -> None:
    until = NOW + timedelta(hours=6)
    skipped = skipped_outcome(task(), now=NOW, blocked_until=until)
    assert (skipped.outcome, skipped.failure_class, skipped.upstream_requests) == (
        Outcome.SKIPPED,
        FailureClass.RATE_LIMIT,
        0,
    )
    assert skipped.message is not None
    assert until.isoformat() in skipped.message
    assert skipped.message.startswith("not attempted: registry-1.docker.io answered")
    keyed = skipped_outcome(task(upstream="registry-1.docker.io#hub"), now=NOW, blocked_until=until)
    assert (keyed.message or "").startswith("not attempted: registry-1.docker.io (credential hub) answered")
    fresh = fresh_outcome(task(), now=NOW, verified_at=NOW - timedelta(hours=1))
    assert (fresh.outcome, fresh.failure_class, fresh.upstream_requests) == (Outcome.FRESH, None, 0)


# --------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------


def test_block_until_is_one_window_and_at_least_a_minute() -> None:
    assert block_until(NOW, 21_600) == NOW + timedelta(hours=6)
    assert block_until(NOW, 1) == NOW + timedelta(seconds=MIN_BLOCK_SECONDS)
