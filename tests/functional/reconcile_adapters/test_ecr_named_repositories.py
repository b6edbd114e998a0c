"""The ECR adapter's reads for the deep resync's fan-out: named repositories only (a shard's), and the details of
repositories already listed (a small Region read in process), on the embedded AWS."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecrcache.adapters.ecr_registry import PER_REPOSITORY_READS
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.models.observed import AppliedFingerprints
from tests.conftest import REGION
from tests.functional.reconcile_adapters.conftest import LIFECYCLE_TEXT, Ecr

pytestmark = pytest.mark.functional

APPLIED = AppliedFingerprints(lifecycle="abc")


def test_named_repositories_are_described_100_a_call_and_read_deeply(ecr: Ecr) -> None:
    # GIVEN 250 repositories, and 30 more the shard does not name
    names = [f"quay/image-{i:03d}" for i in range(250)]
    for name in [*names, *(f"quay/other-{i}" for i in range(30))]:
        ecr.repository(name)
    ecr.ecr.put_lifecycle_policy(repositoryName=names[7], lifecyclePolicyText=LIFECYCLE_TEXT)
    # WHEN the shard's repositories are observed
    observed = ecr.registry.observe_repositories(names, applied={names[7]: APPLIED})
    # THEN exactly they are there, read deeply, in ceil(250 / 100) describes and no listing of the registry
    assert sorted(observed.repositories) == names
    assert all(repo.details is not None for repo in observed.repositories.values())
    found = observed.repositories[names[7]]
    assert found.details is not None and found.details.lifecycle_policy is not None
    assert found.applied == APPLIED
    assert (observed.rules, observed.templates) == ({}, {})
    assert ecr.registry.calls["DescribeRepositories"] == 3
    assert all(ecr.registry.calls[op] == 250 for op in PER_REPOSITORY_READS)


def test_names_ecr_does_not_have_are_gone(ecr: Ecr) -> None:
    # GIVEN a batch naming two repositories ECR does not have (ECR refuses the whole call for each)
    names = [f"k8s/pause-{i}" for i in range(6)]
    for name in names:
        ecr.repository(name)
    asked = sorted([*names, "k8s/deleted-a", "k8s/deleted-b"])
    # WHEN it is observed
    observed = ecr.registry.observe_repositories(asked, applied={})
    # THEN the missing ones are left out, each found from ECR's answer naming it (one call each, and the last)
    assert sorted(observed.repositories) == names
    assert ecr.registry.calls["DescribeRepositories"] == 3


def test_a_not_found_answer_naming_no_repository_is_met_by_halving_the_batch(
    ecr: Ecr, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an ECR whose RepositoryNotFoundException does not say which name (its text is not documented)
    names = [f"k8s/pause-{i}" for i in range(8)]
    for name in names:
        ecr.repository(name)
    real = ecr.registry.client.describe_repositories
    batches: list[list[str]] = []

    def terse(**kwargs: Any) -> Any:
        batches.append(list(kwargs["repositoryNames"]))
        try:
            return real(**kwargs)
        except ClientError as exc:
            exc.response["Error"]["Message"] = "The repository does not exist"
            raise

    monkeypatch.setattr(ecr.registry.client, "describe_repositories", terse)
    # WHEN a batch with one missing name is observed
    observed = ecr.registry.observe_repositories([*names, "k8s/zz-gone"], applied={})
    # THEN every existing repository is found, and the missing one alone was asked for last
    assert sorted(observed.repositories) == names
    assert ["k8s/zz-gone"] in batches
    assert len(batches) <= 1 + 2 * 4  # halving 9 names down to 1: a few calls, not one a name


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, RetryableError),
        ("ServerException", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
def test_a_failing_describe_raises_a_classified_error(
    ecr: Ecr, monkeypatch: pytest.MonkeyPatch, code: str, status: int, expected: type[Exception]
) -> None:
    ecr.repository("k8s/pause")

    def fail(**_: Any) -> Any:
        response: Any = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        raise ClientError(response, "DescribeRepositories")

    monkeypatch.setattr(ecr.registry.client, "describe_repositories", fail)
    with pytest.raises(expected, match=code):
        ecr.registry.observe_repositories(["k8s/pause"], applied={})


def test_read_details_reads_the_listed_repositories_without_listing_again(ecr: Ecr) -> None:
    # GIVEN a fast observation of a Region
    for i in range(5):
        ecr.repository(f"quay/image-{i}")
    ecr.ecr.put_lifecycle_policy(repositoryName="quay/image-3", lifecyclePolicyText=LIFECYCLE_TEXT)
    fast = ecr.registry.observe(prefixes=["quay"], deep=False, applied={})
    ecr.ecr.delete_repository(repositoryName="quay/image-4", force=True)
    ecr.registry.calls.clear()
    # WHEN its details are read
    deep = ecr.registry.read_details(fast)
    # THEN only the per-repository reads were made (no listing again) ...
    assert set(ecr.registry.calls) == PER_REPOSITORY_READS
    assert ecr.registry.calls["GetLifecyclePolicy"] == 5  # the deleted one's answered RepositoryNotFound
    # ... and it is the deep observation (the repository deleted since left out)
    assert sorted(deep.repositories) == [f"quay/image-{i}" for i in range(4)]
    assert deep == ecr.registry.observe(prefixes=["quay"], deep=True, applied={})
    assert deep.region == REGION
