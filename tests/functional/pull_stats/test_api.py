"""`GET /v1/pulls` through the api handler on moto, over pulls the pull_stats function counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ApiClient
from tests.pull_events import AT, NODE, REGION, pull_body, sqs_batch

pytestmark = pytest.mark.functional

DIGEST = "sha256:" + "ef" * 32


@pytest.fixture
def pulled(rules: ApiClient, invoke: Any) -> ApiClient:
    """node:18-alpine pulled 3 times (today twice, 2 days ago once), node:20 once, node by digest once,
    redis once, and quay's alpine once in eu-west-1."""
    digest_pull = pull_body("d1")
    digest_pull["detail"]["requestParameters"]["imageIds"] = [{"imageDigest": DIGEST}]
    quay = pull_body("q1", repository="quay/prometheus/alpine", tag="3.20")
    quay["region"] = quay["detail"]["awsRegion"] = "eu-west-1"
    batch = sqs_batch(
        pull_body("e1", at=AT - timedelta(days=2)),
        pull_body("e2", at=AT - timedelta(hours=2)),
        pull_body("e3", at=AT - timedelta(hours=1), role="arn:aws:iam::123456789012:role/eks-node"),
        pull_body("e4", tag="20"),
        pull_body("e5", repository="docker-hub/bitnami/redis", tag="7"),
        digest_pull,
        quay,
    )
    assert invoke(batch) == {"batchItemFailures": []}
    return rules


def test_a_rules_most_pulled_images_with_daily_counts(pulled: ApiClient) -> None:
    # WHEN docker-hub's top 3 of the last 3 days are asked
    response = pulled.get("/v1/pulls", query={"rule": "docker-hub", "top": "3", "window_days": "3"})

    # THEN the most pulled comes first, with its pulls per day oldest first and its principals counted
    assert response.status == 200, response.text
    body = response.json
    assert (body["rule"], body["window_days"]) == ("docker-hub", 3)
    first = body["items"][0]
    assert first == {
        "repository": NODE,
        "tag": "18-alpine",
        "pulls": 3,
        "daily": [1, 0, 2],
        "last_pulled_at": "2026-11-29T11:31:07Z",
        "digests": [],
        "platforms": ["linux/amd64"],
        "principals": 2,
        "regions": [REGION],
    }
    # AND a pull by digest is listed under its digest (no tag); only three items
    assert len(body["items"]) == 3
    by_digest = [i for i in body["items"] if "digest" in i]
    assert all("tag" not in i for i in by_digest)
    assert all(i["repository"].startswith("docker-hub/") for i in body["items"])


def test_without_a_rule_every_rules_pulls_are_ranked_with_the_defaults(pulled: ApiClient) -> None:
    body = pulled.get("/v1/pulls").json
    assert (body["rule"], body["window_days"]) == (None, 14)
    assert len(body["items"]) == 5
    assert {len(i["daily"]) for i in body["items"]} == {14}
    assert "quay/prometheus/alpine" in {i["repository"] for i in body["items"]}


def test_a_rule_in_another_region_and_a_trailing_slash(pulled: ApiClient) -> None:
    body = pulled.get("/v1/pulls", query={"rule": "quay/"}).json
    assert body["rule"] == "quay"
    assert [(i["repository"], i["regions"]) for i in body["items"]] == [("quay/prometheus/alpine", ["eu-west-1"])]


def test_an_unknown_rule_is_not_found(pulled: ApiClient) -> None:
    body = assert_error(pulled.get("/v1/pulls", query={"rule": "ghcr"}), 404, "NotFound")
    assert "ghcr" in body["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"top": "0"}, "top"),
        ({"top": "101"}, "top"),
        ({"top": "many"}, "top"),
        ({"window_days": "0"}, "window_days"),
        ({"window_days": "91"}, "window_days"),
        ({"rule": "Docker_Hub!"}, "rule"),
        ({"rule": "x" * 101}, "rule"),
    ],
)
def test_invalid_parameters_are_named(rules: ApiClient, query: dict[str, str], field: str) -> None:
    body = assert_error(rules.get("/v1/pulls", query=query), 422, "ValidationFailed")
    assert [d["field"].removeprefix("query.") for d in body["details"]] == [field]
