"""The archived path end to end on the embedded ECR's archive storage class (``devstack.aws.ecr_storage``).

That storage class comes with the embedded AWS's own branch of issue 11: until it is merged this module
is skipped (the adapter's archive handling is covered against stubbed ECR answers in
tests/unit/adapters/test_ecr_warm.py). The embedded ECR answers ``ImageNotFound`` for an archived
image and restores in 20 minutes of its clock, as the ECR User Guide says.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.aws import clock
from devstack.registry import SeededImage
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import Outcome
from tests.functional.registry.support import PullThrough
from tests.functional.warm_worker.support import Warming

pytest.importorskip("devstack.aws.ecr_storage", reason="the embedded archive storage class is not merged yet")

pytest_plugins = ["tests.functional.registry.fixtures", "tests.functional.registry.pullthrough"]
pytestmark = pytest.mark.functional

REPO = "docker-hub/library/node"
RESTORE = timedelta(minutes=21)


def archive(ptc: PullThrough, digest: str) -> None:
    ptc.aws.ecr.update_image_storage_class(
        repositoryName=REPO, imageId={"imageDigest": digest}, targetStorageClass="ARCHIVE"
    )


def test_an_archived_index_is_reported_restored_and_warmed_again(
    ptc: PullThrough, token_seeded: list[SeededImage]
) -> None:
    node = next(image for image in token_seeded if image.reference == "library/node:18-alpine")
    ptc.docker_hub_rule()
    warming = Warming()
    [first] = warming.warm(warming.task("docker-hub", "library/node:18-alpine"))
    assert first.outcome is Outcome.WARMED
    # GIVEN the index and its children archived (a lifecycle rule would archive the index first)
    for digest in (node.digest, *node.child_digests):
        archive(ptc, digest)
    clock.advance(timedelta(hours=25))

    # WHEN a run warms it without restore_archived THEN it fails archived, nothing pulled or restored
    [kept] = warming.warm(warming.task("docker-hub", "library/node:18-alpine", run_id="run-2"))
    assert (kept.outcome, kept.failure_class, kept.restored, kept.upstream_requests) == (
        Outcome.FAILED,
        FailureClass.ARCHIVED,
        False,
        0,
    )
    assert kept.message is not None
    assert "restore_archived" in kept.message

    # WHEN a run may restore THEN the index's restore starts
    restoring = warming.task("docker-hub", "library/node:18-alpine", run_id="run-3", restore_archived=True)
    [started] = warming.warm(restoring)
    assert (started.failure_class, started.restored) == (FailureClass.ARCHIVED, True)
    statuses = ptc.aws.ecr.describe_images(repositoryName=REPO, imageIds=[{"imageDigest": node.digest}])
    assert statuses["imageDetails"][0]["imageStatus"] == "ACTIVATING"

    # WHEN the next run comes after the restore THEN the children (still archived) are restored together
    clock.advance(RESTORE)
    [children] = warming.warm(restoring.model_copy(update={"run_id": "run-4"}))
    assert (children.failure_class, children.restored) == (FailureClass.ARCHIVED, True)
    assert children.message is not None
    assert "linux/amd64" in children.message
    assert "linux/arm64" in children.message

    # WHEN the run after that comes THEN the image is warmed and every platform verified again
    clock.advance(RESTORE)
    [warmed] = warming.warm(restoring.model_copy(update={"run_id": "run-5"}))
    assert (warmed.outcome, warmed.digest, warmed.platforms_verified) == (
        Outcome.WARMED,
        node.digest,
        ("linux/amd64", "linux/arm64"),
    )
