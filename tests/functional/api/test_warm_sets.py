"""`/v1/warm-sets` through the real ``lambda_handler``: a warm set pulls images through an existing rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.client import ALICE, ApiClient

pytestmark = pytest.mark.functional

BOB = "arn:aws:iam::123456789012:user/bob"
WARM: dict[str, Any] = {"rule": "quay", "images": ["prometheus/node-exporter:v1.8.0"]}


@pytest.fixture
def quay(api: ApiClient) -> ApiClient:
    """The API with a quay rule to warm through."""
    assert api.put("/v1/rules/quay", {"upstream_kind": "quay"}).status == 201
    return api


def test_warm_set_put_creates_it_with_defaults(quay: ApiClient) -> None:
    # GIVEN a quay rule
    # WHEN a warm set for it is created
    created = quay.put("/v1/warm-sets/base", WARM)
    # THEN it is 201 at version 1 with the defaults filled in
    assert created.status == 201, created.text
    assert created.etag == '"1"'
    body = created.json
    assert body["name"] == "base"
    assert body["updated_by"] == ALICE
    assert body["spec"]["rule"] == "quay"
    assert body["spec"]["images"] == WARM["images"]
    assert body["spec"]["platforms"]
    assert body["spec"]["schedule"]
    # AND it reads back and lists the same
    assert quay.get("/v1/warm-sets/base").json == body
    assert quay.get("/v1/warm-sets").json["items"] == [body]


def test_warm_set_replace_and_delete(quay: ApiClient) -> None:
    # GIVEN a warm set
    quay.put("/v1/warm-sets/base", WARM)
    # WHEN Bob adds a tag pattern, then it is deleted
    replaced = quay.put("/v1/warm-sets/base", {**WARM, "tag_patterns": ["prometheus/node-exporter:v1.*"]}, caller=BOB)
    deleted = quay.delete("/v1/warm-sets/base")
    # THEN the replace is 200 at version 2 by Bob, the delete 204, and then it is 404
    assert replaced.status == 200, replaced.text
    assert replaced.json["version"] == 2
    assert replaced.json["updated_by"] == BOB
    assert deleted.status == 204
    assert_error(quay.get("/v1/warm-sets/base"), 404, "NotFound")
    assert_error(quay.delete("/v1/warm-sets/base"), 404, "NotFound")


def test_warm_set_put_that_changes_nothing_keeps_the_version(quay: ApiClient) -> None:
    # GIVEN a warm set
    quay.put("/v1/warm-sets/base", WARM)
    # WHEN the same spec is sent again
    again = quay.put("/v1/warm-sets/base", WARM)
    # THEN it is 200 at version 1 and history has one entry
    assert again.status == 200
    assert again.etag == '"1"'
    assert len(quay.get("/v1/history", query={"kind": "warm-set", "name": "base"}).json["items"]) == 1


def test_warm_set_needs_an_existing_rule(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a warm set names a rule that does not exist
    refused = api.put("/v1/warm-sets/base", WARM)
    # THEN it is 422 naming the rule, and nothing is written
    body = assert_error(refused, 422, "ValidationFailed")
    assert "'quay'" in body["message"]
    assert fields(refused)[0].endswith("rule")
    assert api.get("/v1/warm-sets/base").status == 404


def test_warm_set_missing_rule_error_names_the_body_field(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a warm set names a rule that does not exist
    refused = api.put("/v1/warm-sets/base", WARM)
    # THEN the 422 names the body field "rule"
    assert fields(refused) == ["rule"]


def test_warm_set_rule_given_with_a_trailing_slash_is_normalised(quay: ApiClient) -> None:
    # GIVEN a quay rule
    # WHEN a warm set names it as "quay/"
    created = quay.put("/v1/warm-sets/base", {**WARM, "rule": "quay/"})
    # THEN it is accepted and stored as "quay", and it keeps the rule from being deleted
    assert created.status == 201, created.text
    assert created.json["spec"]["rule"] == "quay"
    assert_error(quay.delete("/v1/rules/quay"), 409, "Conflict")


def test_warm_set_in_use_of_its_rule_blocks_the_rule_delete_until_removed(quay: ApiClient) -> None:
    # GIVEN a warm set using the quay rule
    quay.put("/v1/warm-sets/base", WARM)
    # WHEN the rule is deleted, then the warm set, then the rule again
    blocked = quay.delete("/v1/rules/quay")
    removed = quay.delete("/v1/warm-sets/base")
    freed = quay.delete("/v1/rules/quay")
    # THEN the first is 409 naming the warm set, and the rule goes once the warm set is gone
    assert "base" in assert_error(blocked, 409, "Conflict")["message"]
    assert removed.status == 204
    assert freed.status == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rule": "quay"}, "body"),
        ({**WARM, "schedule": "rate(5 minutes)"}, "schedule"),
        ({**WARM, "platforms": []}, "platforms"),
        ({**WARM, "images": ["prometheus/node-exporter:v1.8.0"] * 2}, "images"),
        ({**WARM, "top": {"count": 0}}, "top.count"),
        ({**WARM, "budget": {"max_upstream_requests_per_run": 0}}, "budget.max_upstream_requests_per_run"),
        ({**WARM, "colour": "red"}, "colour"),
        ({**WARM, "rule": "Not A Prefix"}, "rule"),
    ],
    ids=["nothing-to-warm", "too-frequent", "no-platforms", "duplicate-images", "top", "budget", "unknown", "rule"],
)
def test_warm_set_invalid_body_is_422_naming_the_field(quay: ApiClient, body: dict[str, Any], field: str) -> None:
    # GIVEN a quay rule
    # WHEN a warm set body breaks a rule
    refused = quay.put("/v1/warm-sets/base", body)
    # THEN it is 422 naming the field, and nothing is written
    assert_error(refused, 422, "ValidationFailed")
    assert field in fields(refused), refused.text
    assert quay.get("/v1/warm-sets/base").status == 404


@pytest.mark.parametrize("name", ["Base", "base_", "a" * 49, "base%2Fx"])
def test_warm_set_invalid_name_is_422_naming_name(quay: ApiClient, name: str) -> None:
    # GIVEN a quay rule
    # WHEN a warm set is created under an invalid name
    refused = quay.put(f"/v1/warm-sets/{name}", WARM)
    # THEN it is 422 naming "name"
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["name"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"If-Match": '"1"'}, 200), ({"If-Match": '"9"'}, 412), ({"If-None-Match": "*"}, 412)],
    ids=["current", "stale", "create-only"],
)
def test_warm_set_put_honours_conditional_headers(quay: ApiClient, headers: dict[str, str], status: int) -> None:
    # GIVEN a warm set at version 1
    quay.put("/v1/warm-sets/base", WARM)
    # WHEN it is replaced with conditional headers
    response = quay.put("/v1/warm-sets/base", {**WARM, "description": "x"}, headers=headers)
    # THEN a failed precondition is 412 and leaves version 1
    assert response.status == status, response.text
    assert quay.get("/v1/warm-sets/base").json["version"] == (2 if status == 200 else 1)


def test_warm_set_delete_with_stale_if_match_is_412(quay: ApiClient) -> None:
    # GIVEN a warm set at version 1
    quay.put("/v1/warm-sets/base", WARM)
    # WHEN it is deleted with a stale If-Match
    refused = quay.delete("/v1/warm-sets/base", headers={"If-Match": '"2"'})
    # THEN it is 412 and the warm set stays
    assert_error(refused, 412, "PreconditionFailed")
    assert quay.get("/v1/warm-sets/base").status == 200
