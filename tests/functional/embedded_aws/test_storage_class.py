"""The archive storage class: UpdateImageStorageClass, image status, restores (ECR User Guide + botocore model).

"Archived images cannot be pulled. Requests to pull the archived image will fail with a 404 error";
they can still be described/listed with status ``ARCHIVED``; DescribeImages/ListImages return only
``ACTIVE`` images unless ``filter.imageStatus`` says otherwise; a restore is ``ACTIVATING`` until done,
"typically up to 20 minutes".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from devstack.aws import clock, ecr_storage
from tests.functional.embedded_aws.conftest import OCI_INDEX, OCI_MANIFEST, EmbeddedAws
from tests.functional.registry.support import PullThrough

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

START = datetime(2026, 4, 1, 8, 0, 0, tzinfo=UTC)
REPO = "team/app"


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def _statuses(embedded_aws: EmbeddedAws, image_status: str | None = None, repo: str = REPO) -> dict[str, str]:
    kwargs: dict[str, Any] = {"filter": {"imageStatus": image_status}} if image_status else {}
    details = embedded_aws.ecr.describe_images(repositoryName=repo, **kwargs)["imageDetails"]
    return {str(d["imageDigest"]): str(d["imageStatus"]) for d in details}


def _archive(embedded_aws: EmbeddedAws, digest: str, repo: str = REPO) -> dict[str, Any]:
    return dict(
        embedded_aws.ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageDigest": digest}, targetStorageClass="ARCHIVE"
        )
    )


def _restore(embedded_aws: EmbeddedAws, digest: str, repo: str = REPO) -> str:
    return embedded_aws.ecr.update_image_storage_class(
        repositoryName=repo, imageId={"imageDigest": digest}, targetStorageClass="STANDARD"
    )["imageStatus"]


@pytest.fixture
def two_images(embedded_aws: EmbeddedAws) -> tuple[str, str]:
    embedded_aws.ecr.create_repository(repositoryName=REPO)
    return embedded_aws.put_image(REPO, "v1", layers=("a",)), embedded_aws.put_image(REPO, "v2", layers=("b",))


def test_archive_hides_the_image_from_default_listings_and_pulls(
    embedded_aws: EmbeddedAws, two_images: tuple[str, str]
) -> None:
    """ARCHIVE: response per the model; default Describe/List show ACTIVE only; a pull gets a 404 failure."""
    v1, v2 = two_images
    with clock.FakeClock(START):
        response = embedded_aws.ecr.update_image_storage_class(
            repositoryName=REPO, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
        )
    assert {k: response[k] for k in ("registryId", "repositoryName", "imageId", "imageStatus")} == {
        "registryId": embedded_aws.account_id,
        "repositoryName": REPO,
        "imageId": {"imageDigest": v1, "imageTag": "v1"},
        "imageStatus": "ARCHIVED",
    }
    assert _statuses(embedded_aws) == {v2: "ACTIVE"}
    assert _statuses(embedded_aws, "ARCHIVED") == {v1: "ARCHIVED"}
    assert _statuses(embedded_aws, "ANY") == {v1: "ARCHIVED", v2: "ACTIVE"}
    [archived] = embedded_aws.ecr.describe_images(repositoryName=REPO, filter={"imageStatus": "ARCHIVED"})[
        "imageDetails"
    ]
    assert archived["lastArchivedAt"] == START
    assert "lastActivatedAt" not in archived
    assert [i["imageDigest"] for i in embedded_aws.ecr.list_images(repositoryName=REPO)["imageIds"]] == [v2]
    listed_all = embedded_aws.ecr.list_images(repositoryName=REPO, filter={"imageStatus": "ANY"})["imageIds"]
    assert {i["imageDigest"] for i in listed_all} == {v1, v2}
    # WHEN the archived image is pulled THEN the call succeeds with a per-image 404 (ImageNotFound [?])
    pulled = embedded_aws.ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageTag": "v1"}, {"imageTag": "v2"}])
    assert [i["imageId"]["imageDigest"] for i in pulled["images"]] == [v2]
    assert pulled["failures"] == [
        {
            "imageId": {"imageDigest": v1, "imageTag": "v1"},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        }
    ]


def test_a_restore_is_activating_until_the_clock_passes_twenty_minutes(
    embedded_aws: EmbeddedAws, two_images: tuple[str, str]
) -> None:
    """STANDARD starts a restore: ACTIVATING (still not pullable), then ACTIVE with lastActivatedAt."""
    v1, _ = two_images
    with clock.FakeClock(START) as fake:
        _archive(embedded_aws, v1)
        fake.advance(timedelta(days=1))
        assert _restore(embedded_aws, v1) == "ACTIVATING"
        assert _restore(embedded_aws, v1) == "ACTIVATING"  # asking again is a no-op [?]
        assert _statuses(embedded_aws, "ACTIVATING") == {v1: "ACTIVATING"}
        pulled = embedded_aws.ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": v1}])
        assert pulled["failures"][0]["failureCode"] == "ImageNotFound"
        fake.advance(ecr_storage.RESTORE_TIME - timedelta(seconds=1))
        assert _statuses(embedded_aws, "ANY")[v1] == "ACTIVATING"
        fake.advance(seconds=1)
        assert _statuses(embedded_aws)[v1] == "ACTIVE"
        [detail] = embedded_aws.ecr.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": v1}])["imageDetails"]
        assert detail["lastActivatedAt"] == START + timedelta(days=1) + ecr_storage.RESTORE_TIME
        assert detail["lastArchivedAt"] == START
        assert len(embedded_aws.ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageDigest": v1}])["images"]) == 1


def test_restores_complete_on_the_explicit_hook_or_at_once(
    embedded_aws: EmbeddedAws, two_images: tuple[str, str]
) -> None:
    """complete_restores() finishes running restores now; restore_delay 0 restores synchronously."""
    v1, v2 = two_images
    _archive(embedded_aws, v1)
    _archive(embedded_aws, v2)
    assert _restore(embedded_aws, v1) == "ACTIVATING"
    assert ecr_storage.pending_restores() == [(REPO, v1)]
    assert ecr_storage.complete_restores() == 1
    assert _statuses(embedded_aws) == {v1: "ACTIVE"}
    ecr_storage.settings.restore_delay = timedelta(0)
    assert _restore(embedded_aws, v2) == "ACTIVE"


def test_storage_class_errors(embedded_aws: EmbeddedAws, two_images: tuple[str, str]) -> None:
    """Model errors: ImageNotFound, RepositoryNotFound, ValidationException (enum); our [?] refusals."""
    v1, _ = two_images
    with pytest.raises(ClientError) as no_image:
        embedded_aws.ecr.update_image_storage_class(
            repositoryName=REPO, imageId={"imageTag": "v9"}, targetStorageClass="ARCHIVE"
        )
    assert _error(no_image)[0] == "ImageNotFoundException"
    with pytest.raises(ClientError) as no_repo:
        embedded_aws.ecr.update_image_storage_class(
            repositoryName="team/none", imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE"
        )
    assert _error(no_repo)[0] == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as bad_class:
        embedded_aws.ecr_unchecked.update_image_storage_class(
            repositoryName=REPO,
            imageId={"imageTag": "v1"},
            targetStorageClass="GLACIER",  # type: ignore[arg-type]
        )
    code, message = _error(bad_class)
    assert code == "ValidationException"
    assert "'GLACIER' at 'targetStorageClass'" in message
    assert "[STANDARD, ARCHIVE]" in message
    # archiving an image whose restore is running is refused [?]; an ACTIVE image asked for STANDARD is a no-op [?]
    _archive(embedded_aws, v1)
    _restore(embedded_aws, v1)
    with pytest.raises(ClientError) as restoring:
        _archive(embedded_aws, v1)
    assert _error(restoring)[0] == "ImageStorageClassUpdateNotSupportedException"
    ecr_storage.complete_restores()
    assert _restore(embedded_aws, v1) == "ACTIVE"


def test_a_child_of_an_active_index_cannot_be_archived(embedded_aws: EmbeddedAws) -> None:
    """Lifecycle rules never archive an image referenced by a manifest list first; neither does the fake [?]."""
    embedded_aws.ecr.create_repository(repositoryName=REPO)
    child = embedded_aws.put_image(REPO, None, layers=("amd64",))
    index = embedded_aws.put_image(
        REPO,
        "multi",
        manifest={
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child,
                    "size": 100,
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        },
    )
    with pytest.raises(ClientError) as info:
        _archive(embedded_aws, child)
    assert _error(info)[0] == "ImageStorageClassUpdateNotSupportedException"
    assert _archive(embedded_aws, index)["imageStatus"] == "ARCHIVED"
    assert _archive(embedded_aws, child)["imageStatus"] == "ARCHIVED"


def test_describe_images_filters_and_pages(embedded_aws: EmbeddedAws, two_images: tuple[str, str]) -> None:
    """moto ignored filter and paging: tagStatus, maxResults/nextToken, and not both paging and imageIds."""
    v1, v2 = two_images
    untagged = embedded_aws.put_image(REPO, None, layers=("c",))
    first = embedded_aws.ecr.describe_images(repositoryName=REPO, maxResults=2)
    rest = embedded_aws.ecr.describe_images(repositoryName=REPO, maxResults=2, nextToken=first["nextToken"])
    assert [d["imageDigest"] for d in first["imageDetails"] + rest["imageDetails"]] == [v1, v2, untagged]
    untagged_only = embedded_aws.ecr.describe_images(repositoryName=REPO, filter={"tagStatus": "UNTAGGED"})
    assert [d["imageDigest"] for d in untagged_only["imageDetails"]] == [untagged]
    assert "imageTags" not in untagged_only["imageDetails"][0]
    with pytest.raises(ClientError) as info:
        embedded_aws.ecr.describe_images(repositoryName=REPO, imageIds=[{"imageTag": "v1"}], maxResults=1)
    assert _error(info)[0] == "InvalidParameterException"


def test_an_archived_cached_tag_is_not_refreshed_or_served(ptc: PullThrough) -> None:
    """Pull-through: an archived cached image answers 404 without asking the upstream (no cache action)."""
    aws = ptc.aws
    ptc.anonymous_rule()
    with clock.FakeClock(START) as fake:
        digest = ptc.pull("ecr-public/library/alpine", tag="3.20")["images"][0]["imageId"]["imageDigest"]
        ptc.actions()
        _archive(aws, digest, repo="ecr-public/library/alpine")
        fake.advance(timedelta(hours=25))  # the 24-hour refresh would ask the upstream
        failed = ptc.pull("ecr-public/library/alpine", tag="3.20")
        assert failed["failures"][0]["failureCode"] == "ImageNotFound"
        assert ptc.actions() == []


def test_restore_hooks_over_http(embedded_aws_server: str) -> None:
    """Server mode: /_ecrcache/images/settings and /_ecrcache/images/restores/{pending,complete}."""
    base = f"{embedded_aws_server}/_ecrcache/images"
    ecr = boto3.client("ecr", endpoint_url=embedded_aws_server, region_name="us-east-1")
    ecr.create_repository(repositoryName=REPO)
    manifest = '{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST + '", "config": {}, "layers": []}'
    digest = ecr.put_image(repositoryName=REPO, imageManifest=manifest, imageTag="v1")["image"]["imageId"][
        "imageDigest"
    ]
    assert requests.post(f"{base}/settings", json={"restoreDelaySeconds": 60}, timeout=10).json() == {
        "restoreDelaySeconds": 60.0
    }
    bad = requests.post(f"{base}/settings", json={"restoreDelaySeconds": -1}, timeout=10)
    assert bad.status_code == 400
    ecr.update_image_storage_class(repositoryName=REPO, imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE")
    ecr.update_image_storage_class(repositoryName=REPO, imageId={"imageTag": "v1"}, targetStorageClass="STANDARD")
    pending = requests.get(f"{base}/restores/pending", timeout=10).json()
    assert pending == {"pending": [{"repositoryName": REPO, "imageDigest": digest}]}
    assert requests.post(f"{base}/restores/complete", json={}, timeout=10).json() == {"completed": 1, "pending": 0}
    [detail] = ecr.describe_images(repositoryName=REPO)["imageDetails"]
    assert detail["imageStatus"] == "ACTIVE"
