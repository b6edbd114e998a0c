"""The ECR warm adapter against stubbed ECR answers (botocore Stubber): every call and every failure path.

The embedded ECR drives the same adapter against real registries (tests/functional/warm_worker); here the
answers ECR gives that the embedded one cannot (yet) -- the archive storage class, our role's
``AccessDeniedException``, throttling and 5xx after retries, a read timeout, a layer still importing --
are scripted call by call. Every test ends with ``assert_no_pending_responses``: an answer scripted and
not asked for fails, and a call not scripted becomes a ``UnStubbedResponseError`` failure the
assertions on the failure code catch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from ecrcache.adapters.ecr_warm import Boto3EcrWarmer
from ecrcache.models.warm_pull import (
    ACCEPTED_MEDIA_TYPES,
    DIGEST_ISSUE,
    DIGEST_NOT_CACHED,
    IMAGE_ARCHIVED,
    IMAGE_MEDIA_TYPES,
    LAYER_STILL_IMPORTING,
    NOT_VERIFIED,
    OCI_INDEX,
    OCI_MANIFEST,
    PLATFORM_MISSING,
    TAG_MOVED,
    TIMEOUT,
    CachedImage,
    ImageStatus,
    PullStage,
)
from ecrcache.models.warm_run import WarmTask

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

pytestmark = pytest.mark.unit

REPO = "docker-hub/library/node"
TAG = "18-alpine"
DELAYS = (0.5, 1.0)


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image_manifest(name: str, layers: tuple[str, ...]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(f"cfg-{name}"), "size": 1},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(x), "size": 1} for x in layers
        ],
    }


AMD64 = image_manifest("amd64", ("base", "amd64-app"))
ARM64 = image_manifest("arm64", ("base", "arm64-app"))
AMD64_DIGEST, ARM64_DIGEST = sha(json.dumps(AMD64)), sha(json.dumps(ARM64))


def index_of(*children: tuple[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "platform": p} for d, p in children],
    }


INDEX = index_of(
    (AMD64_DIGEST, {"os": "linux", "architecture": "amd64"}),
    (ARM64_DIGEST, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
)
INDEX_DIGEST = sha(json.dumps(INDEX))
OLD_DIGEST = sha("old")


def make_task(**changes: Any) -> WarmTask:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "warm_set": "base",
        "region": "us-east-1",
        "rule": "docker-hub",
        "upstream": "registry-1.docker.io",
        "repository": REPO,
        "image": f"library/node:{TAG}",
        "tag": TAG,
        "platforms": ("linux/amd64", "linux/arm64"),
        "reserved_requests": 3,
        "bucket_capacity": 200,
        "bucket_window_seconds": 21_600,
    }
    return WarmTask(**(fields | changes))


class Ecr:
    """A warmer on a stubbed client, with one helper per ECR answer."""

    def __init__(self) -> None:
        self.client: ECRClient = boto3.client(
            "ecr", region_name="us-east-1", config=Config(retries={"max_attempts": 1, "mode": "standard"})
        )
        self.slept: list[float] = []
        self.warmer = Boto3EcrWarmer("us-east-1", self.client, sleep=self.slept.append, layer_retry_delays=DELAYS)
        self.stub = Stubber(self.client)

    # -- DescribeImages --------------------------------------------------------------------------

    def describe(self, ids: list[dict[str, str]], details: list[dict[str, Any]]) -> None:
        self.stub.add_response(
            "describe_images",
            {"imageDetails": [{"repositoryName": REPO, **d} for d in details]},
            {"repositoryName": REPO, "imageIds": ids, "filter": {"imageStatus": "ANY"}},
        )

    def describe_error(self, ids: list[dict[str, str]], code: str, *, filtered: bool = True) -> None:
        params: dict[str, Any] = {"repositoryName": REPO, "imageIds": ids}
        if filtered:
            params["filter"] = {"imageStatus": "ANY"}
        self.stub.add_client_error("describe_images", code, f"{code} (stubbed)", expected_params=params)

    def absent(self, image_id: dict[str, str]) -> None:
        self.describe_error([image_id], "ImageNotFoundException")

    # -- BatchGetImage -----------------------------------------------------------------------------

    def get(self, image_id: dict[str, str], manifest: dict[str, Any], *, accepted: tuple[str, ...]) -> None:
        digest = sha(json.dumps(manifest))
        self.stub.add_response(
            "batch_get_image",
            {
                "images": [
                    {
                        "repositoryName": REPO,
                        "imageId": {"imageDigest": digest, **image_id},
                        "imageManifest": json.dumps(manifest),
                        "imageManifestMediaType": manifest["mediaType"],
                    }
                ],
                "failures": [],
            },
            {"repositoryName": REPO, "imageIds": [image_id], "acceptedMediaTypes": list(accepted)},
        )

    def get_failure(self, image_id: dict[str, str], code: str, *, accepted: tuple[str, ...]) -> None:
        self.stub.add_response(
            "batch_get_image",
            {"images": [], "failures": [{"imageId": image_id, "failureCode": code, "failureReason": f"{code} (stub)"}]},
            {"repositoryName": REPO, "imageIds": [image_id], "acceptedMediaTypes": list(accepted)},
        )

    def get_error(self, code: str, status: int = 400) -> None:
        self.stub.add_client_error("batch_get_image", code, f"{code} (stubbed)", http_status_code=status)

    # -- layers, restore ---------------------------------------------------------------------------

    def layers(self, *manifests: dict[str, Any]) -> None:
        seen: list[str] = []
        for manifest in manifests:
            for digest in [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]:
                if digest not in seen:
                    seen.append(digest)
                    self.layer(digest)

    def layer(self, digest: str) -> None:
        self.stub.add_response(
            "get_download_url_for_layer",
            {"downloadUrl": f"https://s3.example/{digest}", "layerDigest": digest},
            {"repositoryName": REPO, "layerDigest": digest},
        )

    def layer_error(self, digest: str, code: str) -> None:
        self.stub.add_client_error(
            "get_download_url_for_layer",
            code,
            f"{code} (stubbed)",
            expected_params={"repositoryName": REPO, "layerDigest": digest},
        )

    def restore(self, digest: str, error: str | None = None) -> None:
        params = {"repositoryName": REPO, "imageId": {"imageDigest": digest}, "targetStorageClass": "STANDARD"}
        if error is not None:
            self.stub.add_client_error(
                "update_image_storage_class", error, f"{error} (stubbed)", expected_params=params
            )
            return
        self.stub.add_response(
            "update_image_storage_class",
            {"repositoryName": REPO, "imageId": {"imageDigest": digest}, "imageStatus": "ACTIVATING"},
            params,
        )


@pytest.fixture
def ecr() -> Iterator[Ecr]:
    fake = Ecr()
    with fake.stub:
        yield fake
        fake.stub.assert_no_pending_responses()


TAG_ID = {"imageTag": TAG}


def uncached_index(ecr: Ecr) -> None:
    """The usual start: the tag is not cached; BatchGetImage serves the index."""
    ecr.absent(TAG_ID)
    ecr.get(TAG_ID, INDEX, accepted=ACCEPTED_MEDIA_TYPES)


def index_verified(ecr: Ecr) -> list[dict[str, str]]:
    ids = [TAG_ID, {"imageDigest": AMD64_DIGEST}, {"imageDigest": ARM64_DIGEST}]
    ecr.describe(
        ids,
        [
            {"imageDigest": INDEX_DIGEST, "imageTags": [TAG], "imageStatus": "ACTIVE"},
            {"imageDigest": AMD64_DIGEST, "imageStatus": "ACTIVE"},
            {"imageDigest": ARM64_DIGEST},  # no imageStatus (older answers): ACTIVE
        ],
    )
    return ids


# --------------------------------------------------------------------------------------------------
# The whole warm
# --------------------------------------------------------------------------------------------------


def test_an_uncached_index_is_pulled_with_its_platforms_layer_urls_and_verified(ecr: Ecr) -> None:
    # GIVEN an uncached multi-platform tag whose children share a layer
    uncached_index(ecr)
    ecr.get({"imageDigest": AMD64_DIGEST}, AMD64, accepted=IMAGE_MEDIA_TYPES)
    ecr.get({"imageDigest": ARM64_DIGEST}, ARM64, accepted=IMAGE_MEDIA_TYPES)
    ecr.layers(AMD64, ARM64)  # each distinct config and layer once
    index_verified(ecr)
    # WHEN warmed
    pull = ecr.warmer.warm(make_task())
    # THEN both platforms are verified, and the facts for the estimate are there
    assert pull.failure is None
    assert (pull.cached_before, pull.served_digest, pull.index_children) == (None, INDEX_DIGEST, 2)
    assert pull.platforms_verified == ("linux/amd64", "linux/arm64")
    assert pull.layers == 5


def test_a_missing_platform_is_named_after_the_others_are_warmed(ecr: Ecr) -> None:
    only_amd64 = index_of((AMD64_DIGEST, {"os": "linux", "architecture": "amd64"}))
    ecr.absent(TAG_ID)
    ecr.get(TAG_ID, only_amd64, accepted=ACCEPTED_MEDIA_TYPES)
    ecr.get({"imageDigest": AMD64_DIGEST}, AMD64, accepted=IMAGE_MEDIA_TYPES)
    ecr.layers(AMD64)
    ecr.describe(
        [TAG_ID, {"imageDigest": AMD64_DIGEST}],
        [{"imageDigest": sha(json.dumps(only_amd64)), "imageTags": [TAG]}, {"imageDigest": AMD64_DIGEST}],
    )
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.platform) == (PLATFORM_MISSING, "linux/arm64")
    assert pull.failure.reason == "the index has no linux/arm64 (it lists linux/amd64)"
    assert (pull.platforms_verified, pull.platforms_missing) == (("linux/amd64",), ("linux/arm64",))


def test_a_tag_that_serves_another_digest_after_the_pull_is_not_verified(ecr: Ecr) -> None:
    uncached_index(ecr)
    ecr.get({"imageDigest": AMD64_DIGEST}, AMD64, accepted=IMAGE_MEDIA_TYPES)
    ecr.layers(AMD64)
    ecr.describe([TAG_ID, {"imageDigest": AMD64_DIGEST}], [{"imageDigest": OLD_DIGEST, "imageTags": [TAG]}])
    pull = ecr.warmer.warm(make_task(platforms=("linux/amd64",)))
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == (NOT_VERIFIED, PullStage.VERIFY)
    assert OLD_DIGEST in pull.failure.reason
    assert INDEX_DIGEST in pull.failure.reason


def test_a_child_missing_after_the_pull_is_found_one_by_one_and_named(ecr: Ecr) -> None:
    uncached_index(ecr)
    ecr.get({"imageDigest": AMD64_DIGEST}, AMD64, accepted=IMAGE_MEDIA_TYPES)
    ecr.get({"imageDigest": ARM64_DIGEST}, ARM64, accepted=IMAGE_MEDIA_TYPES)
    ecr.layers(AMD64, ARM64)
    ids = [TAG_ID, {"imageDigest": AMD64_DIGEST}, {"imageDigest": ARM64_DIGEST}]
    ecr.describe_error(ids, "ImageNotFoundException")  # one id is missing: the whole call fails
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG]}])
    ecr.describe([{"imageDigest": AMD64_DIGEST}], [{"imageDigest": AMD64_DIGEST}])
    ecr.absent({"imageDigest": ARM64_DIGEST})
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.platform) == (NOT_VERIFIED, "linux/arm64")
    assert pull.platforms_verified == ("linux/amd64",)


def test_describe_without_the_filter_when_ecr_refuses_it_with_image_ids(ecr: Ecr) -> None:
    # GIVEN an ECR that refuses filter together with imageIds (undocumented either way)
    ecr.describe_error([TAG_ID], "InvalidParameterException")
    ecr.stub.add_response(
        "describe_images",
        {"imageDetails": [{"imageDigest": AMD64_DIGEST, "imageTags": [TAG]}]},
        {"repositoryName": REPO, "imageIds": [TAG_ID]},
    )
    ecr.get(TAG_ID, AMD64, accepted=ACCEPTED_MEDIA_TYPES)
    ecr.layers(AMD64)
    ecr.describe_error([TAG_ID], "InvalidParameterException")
    ecr.stub.add_response(
        "describe_images",
        {"imageDetails": [{"imageDigest": AMD64_DIGEST, "imageTags": [TAG]}]},
        {"repositoryName": REPO, "imageIds": [TAG_ID]},
    )
    # WHEN warmed THEN it works without the filter
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is None
    assert pull.cached_before == CachedImage(AMD64_DIGEST, ImageStatus.ACTIVE)
    assert not pull.imported


# --------------------------------------------------------------------------------------------------
# Digests
# --------------------------------------------------------------------------------------------------


def test_an_uncached_digest_fails_citing_the_roadmap_issue(ecr: Ecr) -> None:
    digest_id = {"imageDigest": AMD64_DIGEST}
    ecr.absent(digest_id)
    ecr.get_failure(digest_id, "ImageNotFound", accepted=ACCEPTED_MEDIA_TYPES)
    pull = ecr.warmer.warm(make_task(tag=None, digest=AMD64_DIGEST))
    assert pull.failure is not None
    assert pull.failure.code == DIGEST_NOT_CACHED
    assert DIGEST_ISSUE in pull.failure.reason
    assert f"<repository>:<tag>@{AMD64_DIGEST}" in pull.failure.reason


def test_a_pinned_tag_that_moved_names_both_digests_and_goes_no_further(ecr: Ecr) -> None:
    ecr.describe([TAG_ID], [{"imageDigest": OLD_DIGEST, "imageTags": [TAG]}])
    ecr.get(TAG_ID, INDEX, accepted=ACCEPTED_MEDIA_TYPES)  # by tag only, never tag+digest
    pull = ecr.warmer.warm(make_task(digest=OLD_DIGEST))
    assert pull.failure is not None
    assert pull.failure.code == TAG_MOVED
    assert INDEX_DIGEST in pull.failure.reason
    assert OLD_DIGEST in pull.failure.reason
    assert pull.served_digest == INDEX_DIGEST
    assert pull.imported


# --------------------------------------------------------------------------------------------------
# Archive storage class
# --------------------------------------------------------------------------------------------------


def test_an_archived_tag_is_reported_and_not_pulled(ecr: Ecr) -> None:
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG], "imageStatus": "ARCHIVED"}])
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.restored) == (IMAGE_ARCHIVED, False)
    assert "restore_archived" in pull.failure.reason  # and no BatchGetImage: none is scripted


def test_an_archived_tag_is_restored_when_the_warm_set_says_so(ecr: Ecr) -> None:
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG], "imageStatus": "ARCHIVED"}])
    ecr.restore(INDEX_DIGEST)
    pull = ecr.warmer.warm(make_task(restore_archived=True))
    assert pull.failure is not None
    assert (pull.failure.code, pull.restored) == (IMAGE_ARCHIVED, True)
    assert "restore to STANDARD has started" in pull.failure.reason
    assert "next run" in pull.failure.reason


def test_an_image_being_restored_is_not_restored_again(ecr: Ecr) -> None:
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG], "imageStatus": "ACTIVATING"}])
    pull = ecr.warmer.warm(make_task(restore_archived=True))
    assert pull.failure is not None
    assert (pull.failure.code, pull.restored) == (IMAGE_ARCHIVED, False)
    assert "ACTIVATING" in pull.failure.reason


def test_a_restore_that_fails_says_why(ecr: Ecr) -> None:
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG], "imageStatus": "ARCHIVED"}])
    ecr.restore(INDEX_DIGEST, error="ImageStorageClassUpdateNotSupportedException")
    pull = ecr.warmer.warm(make_task(restore_archived=True))
    assert pull.failure is not None
    assert (pull.failure.code, pull.restored) == (IMAGE_ARCHIVED, False)
    assert "restore failed: ImageStorageClassUpdateNotSupportedException" in pull.failure.reason


def test_archived_children_are_found_and_restored_together(ecr: Ecr) -> None:
    # GIVEN an active index (restored earlier) whose children are still archived, one being restored
    ecr.describe([TAG_ID], [{"imageDigest": INDEX_DIGEST, "imageTags": [TAG]}])
    ecr.get(TAG_ID, INDEX, accepted=ACCEPTED_MEDIA_TYPES)
    ecr.get_failure({"imageDigest": AMD64_DIGEST}, "ImageNotFound", accepted=IMAGE_MEDIA_TYPES)
    ecr.describe([{"imageDigest": AMD64_DIGEST}], [{"imageDigest": AMD64_DIGEST, "imageStatus": "ARCHIVED"}])
    ecr.get_failure({"imageDigest": ARM64_DIGEST}, "ImageInaccessible", accepted=IMAGE_MEDIA_TYPES)
    ecr.describe([{"imageDigest": ARM64_DIGEST}], [{"imageDigest": ARM64_DIGEST, "imageStatus": "ACTIVATING"}])
    ecr.restore(AMD64_DIGEST)
    # WHEN warmed with restore_archived
    pull = ecr.warmer.warm(make_task(restore_archived=True))
    # THEN the archived child's restore starts, the one being restored is left alone: one failure names both
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage, pull.failure.platform) == (
        IMAGE_ARCHIVED,
        PullStage.CHILD,
        "linux/amd64, linux/arm64",
    )
    assert pull.restored
    assert f"{REPO}@{AMD64_DIGEST} (linux/amd64) was archived: its restore" in pull.failure.reason
    assert f"{REPO}@{ARM64_DIGEST} (linux/arm64) is being restored" in pull.failure.reason


def test_a_child_not_found_and_not_archived_stays_not_found(ecr: Ecr) -> None:
    uncached_index(ecr)
    ecr.get_failure({"imageDigest": AMD64_DIGEST}, "ImageNotFound", accepted=IMAGE_MEDIA_TYPES)
    ecr.absent({"imageDigest": AMD64_DIGEST})
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage, pull.failure.platform) == (
        "ImageNotFound",
        PullStage.CHILD,
        "linux/amd64",
    )


# --------------------------------------------------------------------------------------------------
# ECR failing the calls
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 400),  # our role
        ("ThrottlingException", 400),  # after botocore's retries
        ("ServerException", 500),
        ("UnableToGetUpstreamImageException", 400),  # the rule's secret
        ("RepositoryNotFoundException", 400),  # no rule, or a template ECR cannot apply
    ],
)
def test_a_manifest_call_that_fails_is_a_failure_not_an_exception(ecr: Ecr, code: str, status: int) -> None:
    ecr.absent(TAG_ID)
    ecr.get_error(code, status)
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == (code, PullStage.MANIFEST)
    assert pull.failure.reason == f"{code} (stubbed)"
    assert pull.served_digest is None


@pytest.mark.parametrize("code", ["UpstreamTooManyRequests", "UpstreamAccessDenied", "UpstreamUnavailable", "KmsError"])
def test_a_per_image_failure_keeps_ecrs_code_and_reason(ecr: Ecr, code: str) -> None:
    ecr.absent(TAG_ID)
    ecr.get_failure(TAG_ID, code, accepted=ACCEPTED_MEDIA_TYPES)
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.reason) == (code, f"{code} (stub)")


def test_a_lookup_that_fails_stops_before_the_pull(ecr: Ecr) -> None:
    ecr.describe_error([TAG_ID], "AccessDeniedException")
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == ("AccessDeniedException", PullStage.LOOKUP)


def test_a_read_timeout_is_reported_as_a_timeout() -> None:
    fake = Ecr()

    def hang(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://api.ecr.us-east-1.amazonaws.com/")

    fake.client.meta.events.register("before-call.ecr.DescribeImages", hang)
    pull = fake.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == (TIMEOUT, PullStage.LOOKUP)


def test_a_layer_still_importing_is_retried_with_backoff(ecr: Ecr) -> None:
    ecr.absent(TAG_ID)
    ecr.get(TAG_ID, AMD64, accepted=ACCEPTED_MEDIA_TYPES)
    config = AMD64["config"]["digest"]
    ecr.layer_error(config, "LayerInaccessibleException")
    ecr.layer_error(config, "LayerInaccessibleException")
    ecr.layers(AMD64)
    ecr.describe([TAG_ID], [{"imageDigest": AMD64_DIGEST, "imageTags": [TAG]}])
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is None
    assert ecr.slept == list(DELAYS)


def test_a_layer_that_never_arrives_fails_after_the_bounded_retries(ecr: Ecr) -> None:
    ecr.absent(TAG_ID)
    ecr.get(TAG_ID, AMD64, accepted=ACCEPTED_MEDIA_TYPES)
    config = AMD64["config"]["digest"]
    for _ in range(len(DELAYS) + 1):
        ecr.layer_error(config, "LayerInaccessibleException")
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == (LAYER_STILL_IMPORTING, PullStage.LAYERS)
    assert "after 3 attempts" in pull.failure.reason
    assert ecr.slept == list(DELAYS)


@pytest.mark.parametrize("code", ["UnableToGetUpstreamLayerException", "LayersNotFoundException", "ServerException"])
def test_a_layer_failure_is_not_retried(ecr: Ecr, code: str) -> None:
    ecr.absent(TAG_ID)
    ecr.get(TAG_ID, AMD64, accepted=ACCEPTED_MEDIA_TYPES)
    ecr.layer_error(AMD64["config"]["digest"], code)
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert (pull.failure.code, pull.failure.stage) == (code, PullStage.LAYERS)
    assert ecr.slept == []


def test_a_manifest_that_is_not_json_is_our_failure(ecr: Ecr) -> None:
    ecr.absent(TAG_ID)
    ecr.stub.add_response(
        "batch_get_image",
        {"images": [{"imageId": {"imageDigest": AMD64_DIGEST}, "imageManifest": "not json"}], "failures": []},
    )
    pull = ecr.warmer.warm(make_task())
    assert pull.failure is not None
    assert pull.failure.code == "InvalidManifest"
