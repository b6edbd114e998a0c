"""Pull-through cache over time: 24-hour refresh, upstream failures, events, layers, pull times.

ecr-facts §3.2, §3.3, §5.2, §6.1, §9 items 12, 13, 15, 16.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.aws import clock, ecr_pullthrough, upstream
from devstack.aws.ecr_pullthrough import PTC_DETAIL_TYPE, complete_imports, layer_imports, pending_imports
from devstack.registry import FaultKind, LocalRegistry, SeededImage, Seeder, UpstreamMap
from tests.functional.registry.support import PullThrough

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@contextmanager
def aws_error(code: str) -> Iterator[None]:
    with pytest.raises(ClientError) as info:
        yield
    assert info.value.response["Error"]["Code"] == code, info.value.response["Error"]


@pytest.fixture
def fake_time() -> Iterator[clock.FakeClock]:
    with clock.FakeClock(T0) as fake:
        yield fake


def _served(response: Any) -> str:
    assert response["failures"] == [], response["failures"]
    return str(response["images"][0]["imageId"]["imageDigest"])


def test_moved_tag_is_refreshed_only_after_24_hours(
    ptc: PullThrough, fake_time: clock.FakeClock, token_seeder: Seeder, unique_repo: str
) -> None:
    """ecr-facts §3.2 / §9.13: within 24 h the cache answers alone; after, the upstream is asked and the tag moves."""
    # GIVEN a multi-platform tag cached through a Docker Hub rule
    first = token_seeder.image(unique_repo, "stable")
    ptc.docker_hub_rule()
    repository = f"docker-hub/{unique_repo}"
    assert _served(ptc.pull(repository, tag="stable")) == first.digest
    assert [e["detail"]["sync-status"] for e in ptc.actions()] == ["SUCCESS"]
    # GIVEN the upstream then moves the tag
    moved = token_seeder.move_tag(unique_repo, "stable")
    # WHEN pulled 23 h later THEN the cached digest is served and the upstream is not asked
    fake_time.advance(hours=23)
    assert _served(ptc.pull(repository, tag="stable")) == first.digest
    assert ptc.actions() == []
    # WHEN pulled 25 h after the first pull THEN the tag is refreshed to the new digest
    fake_time.advance(hours=2)
    assert _served(ptc.pull(repository, tag="stable")) == moved.digest
    [refresh] = ptc.actions()
    assert refresh["detail"]["sync-status"] == "SUCCESS"
    assert refresh["detail"]["image-digest"] == moved.digest
    # THEN the old digest stays cached (untagged, still pullable by digest), children of both are there
    assert ptc.digests(repository) >= {first.digest, moved.digest, *first.child_digests, *moved.child_digests}
    assert ptc.tagged(repository, "stable") == moved.digest
    assert _served(ptc.pull(repository, digest=first.digest)) == first.digest
    # WHEN pulled again an hour later THEN the fresh validation holds: no upstream contact
    fake_time.advance(hours=1)
    assert _served(ptc.pull(repository, tag="stable")) == moved.digest
    assert ptc.actions() == []


def test_refresh_does_not_move_an_immutable_tag(
    ptc: PullThrough, fake_time: clock.FakeClock, seeder: Seeder, unique_repo: str
) -> None:
    """ecr-facts §3.2: IMMUTABLE tag mutability prevents ECR from updating a cached tag."""
    # GIVEN an immutable cache repository (from its template) holding a tag
    ptc.aws.ecr.create_repository_creation_template(
        prefix="ecr-public", appliedFor=["PULL_THROUGH_CACHE"], imageTagMutability="IMMUTABLE"
    )
    ptc.anonymous_rule()
    first = seeder.image(unique_repo, "v1", platforms=("linux/amd64",))
    repository = f"ecr-public/{unique_repo}"
    assert _served(ptc.pull(repository, tag="v1")) == first.digest
    ptc.actions()
    # WHEN the upstream moves the tag and the cache is pulled after 24 h
    seeder.move_tag(unique_repo, "v1")
    fake_time.advance(days=2)
    # THEN the cached image is still served, and the refused refresh is reported
    assert _served(ptc.pull(repository, tag="v1")) == first.digest
    [event] = ptc.actions()
    assert event["detail"]["sync-status"] != "SUCCESS"
    assert event["detail"]["failure-code"] == "ImageTagAlreadyExistsException"


def test_failed_refresh_serves_the_cached_image(
    ptc: PullThrough, fake_time: clock.FakeClock, seeder: Seeder, unique_repo: str
) -> None:
    """ecr-facts §3.2: "If upstream is unreachable the last cached image is served"; the next pull retries."""
    # GIVEN a tag cached through a rule whose upstream sits behind the fault proxy
    ptc.anonymous_rule("quay", "quay.io")
    first = seeder.image(unique_repo, "v1", platforms=("linux/amd64",))
    repository = f"quay/{unique_repo}"
    assert _served(ptc.pull(repository, tag="v1")) == first.digest
    ptc.actions()
    moved = seeder.move_tag(unique_repo, "v1")
    # WHEN, after 24 h, the upstream answers 503
    fake_time.advance(hours=25)
    ptc.fault_proxy.faults.add(FaultKind.UNAVAILABLE, times=5)
    # THEN the cached image is served and the failed refresh is an event
    assert _served(ptc.pull(repository, tag="v1")) == first.digest
    [failed] = ptc.actions()
    assert failed["detail"]["failure-code"] == "UpstreamUnavailable"
    # WHEN the upstream recovers THEN the next pull refreshes
    ptc.fault_proxy.faults.clear()
    assert _served(ptc.pull(repository, tag="v1")) == moved.digest
    assert [e["detail"]["sync-status"] for e in ptc.actions()] == ["SUCCESS"]


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (FaultKind.UNAUTHORIZED, "UpstreamAccessDenied"),
        (FaultKind.FORBIDDEN, "UpstreamAccessDenied"),
        (FaultKind.TOO_MANY_REQUESTS, "UpstreamTooManyRequests"),
        (FaultKind.SERVER_ERROR, "UpstreamUnavailable"),
        (FaultKind.BAD_GATEWAY, "UpstreamUnavailable"),
        (FaultKind.UNAVAILABLE, "UpstreamUnavailable"),
        (FaultKind.TIMEOUT, "UpstreamUnavailable"),
        (FaultKind.RESET, "UpstreamUnavailable"),
        (FaultKind.NOT_FOUND, "ImageNotFound"),
    ],
)
def test_upstream_failures_are_failure_codes_and_events(
    ptc: PullThrough, seeded: list[SeededImage], kind: FaultKind, code: str
) -> None:
    """ecr-facts §5.2 ImageFailureCode, §6.1 event, §9.12 / §9.16: each upstream failure, reported both ways."""
    # GIVEN a rule whose upstream fails the way under test (the fixture's client timeout is 1 s)
    ptc.anonymous_rule("quay", "quay.io")
    ptc.fault_proxy.faults.add(kind, times=3, path=r"/manifests/", delay=2.0)
    # WHEN a tag is pulled for the first time
    response = ptc.pull("quay/library/alpine", tag="3.20")
    # THEN BatchGetImage reports the ECR failure code for that image
    assert response["images"] == []
    [failure] = response["failures"]
    assert failure["imageId"] == {"imageTag": "3.20"}
    assert failure["failureCode"] == code
    # THEN an `ECR Pull Through Cache Action` event reached the EventBridge rule's SQS queue
    [event] = ptc.actions()
    arn = ptc.aws.ecr.describe_repositories(repositoryNames=["quay/library/alpine"])["repositories"][0]["repositoryArn"]
    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == PTC_DETAIL_TYPE
    assert event["resources"] == [arn]
    assert event["detail"]["sync-status"] != "SUCCESS"
    assert event["detail"]["failure-code"] == code
    assert event["detail"]["failure-reason"]
    assert event["detail"]["ecr-repository-prefix"] == "quay"
    assert event["detail"]["repository-name"] == "quay/library/alpine"
    assert event["detail"]["upstream-registry-url"] == "quay.io"
    assert event["detail"]["image-tag"] == "3.20"


def test_success_event_carries_the_documented_detail(ptc: PullThrough, seeded: list[SeededImage]) -> None:
    """ecr-facts §6.1: the SUCCESS detail, resources=[repository ARN], account and region."""
    alpine = next(image for image in seeded if image.reference == "library/alpine:3.20")
    ptc.anonymous_rule()
    ptc.pull("ecr-public/library/alpine", tag="3.20")
    [event] = ptc.actions()
    assert event["account"] == ptc.aws.account_id
    assert event["region"] == ptc.aws.region
    assert event["resources"] == [
        f"arn:aws:ecr:{ptc.aws.region}:{ptc.aws.account_id}:repository/ecr-public/library/alpine"
    ]
    assert event["detail"] == {
        "sync-status": "SUCCESS",
        "ecr-repository-prefix": "ecr-public",
        "repository-name": "ecr-public/library/alpine",
        "upstream-registry-url": "public.ecr.aws",
        "image-tag": "3.20",
        "image-digest": alpine.digest,
    }


def test_importing_layer_is_inaccessible_until_imports_complete(ptc: PullThrough, seeded: list[SeededImage]) -> None:
    """ecr-facts §3.3 step 4: layer import is asynchronous; GetDownloadUrlForLayer -> LayerInaccessibleException."""
    nginx = next(image for image in seeded if image.reference == "library/nginx:1.27")
    repository = "ecr-public/library/nginx"
    ptc.anonymous_rule()
    with layer_imports("manual"):
        # GIVEN an image pulled while layer imports are held back
        _served(ptc.pull(repository, tag="1.27"))
        layer = nginx.blob_digests[-1]
        assert (repository, layer) in pending_imports()
        # WHEN its layer is asked for THEN it is not available yet
        with aws_error("LayerInaccessibleException"):
            ptc.aws.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=layer)
        # WHEN the imports complete
        assert complete_imports() == len(nginx.blob_digests)
    # THEN a download URL is returned, and it serves exactly the layer's bytes
    url = ptc.aws.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=layer)
    assert url["layerDigest"] == layer
    data = requests.get(url["downloadUrl"], timeout=5).content
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layer
    assert pending_imports() == []
    # THEN a digest no image references is LayersNotFoundException; a tampered URL is refused
    with aws_error("LayersNotFoundException"):
        ptc.aws.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest="sha256:" + "0" * 64)
    assert (
        requests.get(url["downloadUrl"].replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=5).status_code == 403
    )


def test_failed_layer_import_is_unable_to_get_upstream_layer(
    ptc: PullThrough, seeder: Seeder, unique_repo: str
) -> None:
    """ecr-facts §3.3 / §9.12: a layer the upstream will not serve -> UnableToGetUpstreamLayerException; retried."""
    image = seeder.image(unique_repo, "v1", platforms=("linux/amd64",))
    repository = f"quay/{unique_repo}"
    ptc.anonymous_rule("quay", "quay.io")
    # GIVEN the upstream fails every blob download while the image is pulled
    ptc.fault_proxy.faults.add(FaultKind.SERVER_ERROR, times=10, path=r"/blobs/")
    _served(ptc.pull(repository, tag="v1"))
    # WHEN the layer is asked for (and the retry fails too) THEN UnableToGetUpstreamLayerException
    with aws_error("UnableToGetUpstreamLayerException"):
        ptc.aws.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=image.blob_digests[-1])
    # WHEN the upstream recovers THEN the next call imports it and answers a URL
    ptc.fault_proxy.faults.clear()
    url = ptc.aws.ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=image.blob_digests[-1])
    assert url["layerDigest"] == image.blob_digests[-1]


def test_last_recorded_pull_time_is_reported(
    ptc: PullThrough, fake_time: clock.FakeClock, token_seeded: list[SeededImage]
) -> None:
    """ecr-facts §5.2 / §9.15: DescribeImages reports lastRecordedPullTime of the images pulled."""
    node = next(image for image in token_seeded if image.reference == "library/node:18-alpine")
    repository = "docker-hub/library/node"
    ptc.docker_hub_rule()

    def details() -> dict[str, Any]:
        return {d["imageDigest"]: d for d in ptc.aws.ecr.describe_images(repositoryName=repository)["imageDetails"]}

    # WHEN the index is pulled
    ptc.pull(repository, tag="18-alpine")
    # THEN the index has a pull time (the fake clock's); the children, not pulled, have none
    first = details()
    assert first[node.digest]["lastRecordedPullTime"].astimezone(UTC) == T0
    assert first[node.digest]["imagePushedAt"].astimezone(UTC) == T0
    assert all("lastRecordedPullTime" not in first[child] for child in node.child_digests)
    # WHEN pulled again 3 h later, and a child pulled by digest THEN the times move
    fake_time.advance(hours=3)
    ptc.pull(repository, tag="18-alpine")
    ptc.pull(repository, digest=node.child_digests[0])
    later = details()
    assert later[node.digest]["lastRecordedPullTime"].astimezone(UTC) == T0 + timedelta(hours=3)
    assert later[node.child_digests[0]]["lastRecordedPullTime"].astimezone(UTC) == T0 + timedelta(hours=3)


def test_server_mode_pull_download_and_hooks(
    embedded_aws_server: str, registry: LocalRegistry, seeded: list[SeededImage]
) -> None:
    """DESIGN "Local embedded stack": the same data plane over HTTP, plus the /_ecrcache/pullthrough hooks."""
    alpine = next(image for image in seeded if image.reference == "library/alpine:3.20")
    ecr = boto3.client("ecr", region_name="us-east-1", endpoint_url=embedded_aws_server)
    hooks = f"{embedded_aws_server}/_ecrcache/pullthrough"
    with upstream.configured(upstream_map=UpstreamMap({"public.ecr.aws": registry.url}), timeout=2.0):
        try:
            # GIVEN layer imports held back through the HTTP hook
            assert requests.post(f"{hooks}/settings", json={"layerImport": "manual"}, timeout=5).json() == {
                "layerImport": "manual"
            }
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ecr-public", upstreamRegistryUrl="public.ecr.aws")
            # WHEN a tag is pulled over HTTP
            response = ecr.batch_get_image(repositoryName="ecr-public/library/alpine", imageIds=[{"imageTag": "3.20"}])
            assert response["images"][0]["imageId"]["imageDigest"] == alpine.digest
            layer = alpine.blob_digests[-1]
            # THEN the layer is importing until the hook completes the imports
            pending = requests.get(f"{hooks}/layers/pending", timeout=5).json()["pending"]
            assert {"repositoryName": "ecr-public/library/alpine", "layerDigest": layer} in pending
            with aws_error("LayerInaccessibleException"):
                ecr.get_download_url_for_layer(repositoryName="ecr-public/library/alpine", layerDigest=layer)
            completed = requests.post(f"{hooks}/layers/complete", json={}, timeout=10).json()
            assert completed == {"completed": len(alpine.blob_digests), "pending": 0}
            url = ecr.get_download_url_for_layer(repositoryName="ecr-public/library/alpine", layerDigest=layer)
            data = requests.get(url["downloadUrl"], timeout=5).content
            assert "sha256:" + hashlib.sha256(data).hexdigest() == layer
            bad = requests.post(f"{hooks}/settings", json={"layerImport": "sometimes"}, timeout=5)
            assert bad.status_code == 400
        finally:
            ecr_pullthrough.set_layer_import_mode("immediate")


def test_unknown_layer_import_mode_is_rejected() -> None:
    """Bad test-control input is a clear ValueError (the default stays immediate)."""
    with pytest.raises(ValueError, match="sometimes"):
        ecr_pullthrough.set_layer_import_mode("sometimes")
    assert json.dumps(ecr_pullthrough.layer_import_mode()) == '"immediate"'
