"""ECR's 50-rule quota counts what ECR will hold, not only the desired rules.

A rule ECR keeps that is not desired (retained by ``deletion_policy: retain``, or made outside
ecrcache) takes one of the Region's 50 places as surely as a desired one: a write that would make
ECR need a 51st is refused with 409, before anything is written, instead of being accepted and
going Terminal with ``LimitExceededException`` in the reconciler.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ecrcache.errors import RetryableError
from tests.conftest import REGION
from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

QUAY: dict[str, Any] = {"upstream_kind": "quay"}


def ecr_holds(count: int, region: str = REGION) -> list[str]:
    """``count`` pull-through cache rules in ECR that are not desired (kept, or made by hand)."""
    ecr = boto3.client("ecr", region_name=region)
    prefixes = [f"kept-{i:02d}" for i in range(count)]
    for prefix in prefixes:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="quay.io")
    return prefixes


def test_a_rule_is_refused_when_ecr_would_need_a_51st(api: ApiClient) -> None:
    # GIVEN ECR holding 49 rules that are not desired
    ecr_holds(49)
    # WHEN one rule is created THEN it fits (the 50th)
    assert api.put("/v1/rules/quay", QUAY).status == 201
    # WHEN another is created THEN it is 409: ECR would need 51 rules, and nothing is written
    refused = api.put("/v1/rules/k8s", {"upstream_kind": "k8s"})
    body = assert_error(refused, 409, "Conflict")
    assert f"at most 50 pull-through cache rules per registry in {REGION}; this would make 51" in body["message"]
    assert (
        "2 desired and 49 in ECR that are not desired (kept-00, kept-01, kept-02, kept-03, kept-04 and 44 more"
        in (body["message"])
    )
    assert api.get("/v1/rules/k8s").status == 404
    # AND changing a rule without adding one to a Region is still fine
    assert api.put("/v1/rules/quay", {**QUAY, "description": "still fine"}).status == 200


def test_a_document_is_refused_when_ecr_would_need_a_51st(api: ApiClient) -> None:
    ecr_holds(48)
    document = {"version": 1, "rules": {"quay": QUAY, "k8s": {"upstream_kind": "k8s"}, "ecr-public": QUAY}}
    refused = api.put("/v1/desired-state", document, query={"dryRun": "true"})
    body = assert_error(refused, 409, "Conflict")
    assert "this would make 51" in body["message"]
    del document["rules"]["ecr-public"]  # type: ignore[attr-defined]
    assert api.put("/v1/desired-state", document).status == 200


def test_a_desired_rule_already_in_ecr_counts_once(api: ApiClient) -> None:
    # GIVEN ECR holding 49 rules, one of which ("kept-00") becomes desired
    ecr_holds(49)
    assert api.put("/v1/rules/kept-00", QUAY).status == 201
    # WHEN a second new prefix is added THEN 50 fit: kept-00 is counted once
    assert api.put("/v1/rules/quay", QUAY).status == 201


def test_the_quota_is_per_region(api: ApiClient) -> None:
    ecr_holds(50, region="eu-west-1")
    assert api.put("/v1/rules/quay", QUAY).status == 201
    refused = api.put("/v1/rules/eu-quay", {**QUAY, "regions": ["eu-west-1"]})
    assert "in eu-west-1" in assert_error(refused, 409, "Conflict")["message"]


def test_a_new_rule_is_refused_with_503_when_ecr_cannot_be_read(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.api.app import registry

    def unreadable(**_: Any) -> Any:
        raise RetryableError("ECR DescribePullThroughCacheRules failed with ThrottlingException; try again")

    monkeypatch.setattr(registry(REGION), "rules", unreadable)
    refused = api.put("/v1/rules/quay", QUAY)
    body = assert_error(refused, 503, "Retryable")
    assert body["message"].startswith(f"could not read ECR in {REGION} to check its pull-through cache rule quota")
    assert api.get("/v1/rules/quay").status == 404
