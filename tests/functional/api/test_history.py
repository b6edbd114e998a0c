"""`/v1/history`: every write, who made it, before and after, newest first, paginated."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.api.assertions import assert_error
from tests.functional.api.client import ALICE, ApiClient

pytestmark = pytest.mark.functional

BOB = "arn:aws:iam::123456789012:user/bob"
CAROL = "arn:aws:iam::123456789012:role/ci-deployer"
QUAY: dict[str, Any] = {"upstream_kind": "quay"}


def page(api: ApiClient, **query: str) -> dict[str, Any]:
    response = api.get("/v1/history", query=query or None)
    assert response.status == 200, response.text
    body: dict[str, Any] = response.json
    return body


def token_of(key: Any) -> str:
    """A next_token as the API encodes one (URL-safe base64 of the JSON key, unpadded)."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_history_records_create_update_delete_with_before_after_and_by(api: ApiClient) -> None:
    # GIVEN Alice creates a rule, Bob updates it and Carol deletes it
    api.put("/v1/rules/quay", QUAY)
    api.put("/v1/rules/quay", {**QUAY, "description": "by bob"}, caller=BOB)
    api.delete("/v1/rules/quay", caller=CAROL)
    # WHEN the rule's history is read
    items = page(api, kind="rule", name="quay")["items"]
    # THEN it has three entries, newest first, each with who, version and revision
    assert [(i["action"], i["version"], i["by"], i["revision"]) for i in items] == [
        ("delete", 2, CAROL, 3),
        ("update", 2, BOB, 2),
        ("create", 1, ALICE, 1),
    ]
    delete, update, create = items
    # AND before/after are the stored specs: none before a create, none after a delete
    assert create["before"] is None
    assert create["after"]["upstream_url"] == "quay.io"
    assert create["after"]["description"] is None
    assert update["before"] == create["after"]
    assert update["after"] == {**create["after"], "description": "by bob"}
    assert delete["before"] == update["after"]
    assert delete["after"] is None
    assert delete["at"] >= update["at"] >= create["at"]
    assert {i["kind"] for i in items} == {"rule"}
    assert {i["name"] for i in items} == {"quay"}


def test_history_credential_entries_never_hold_the_token(api: ApiClient) -> None:
    # GIVEN a credential created and rotated
    body = {"upstream_kind": "docker-hub", "username": "ci-bot"}
    api.put("/v1/credentials/hub", {**body, "token": "dckr_pat_history_0001"})
    api.put("/v1/credentials/hub", {**body, "token": "dckr_pat_history_0002"})
    # WHEN its history is read
    response = api.get("/v1/history", query={"kind": "credential", "name": "hub"})
    # THEN both writes are there, with metadata only
    assert [i["action"] for i in response.json["items"]] == ["update", "create"]
    assert "dckr_pat_history" not in response.text
    assert response.json["items"][0]["before"] == response.json["items"][0]["after"]


def test_history_is_newest_first_across_kinds(api: ApiClient) -> None:
    # GIVEN a rule, a warm set and a credential written in that order
    api.put("/v1/rules/quay", QUAY)
    api.put("/v1/warm-sets/ws", {"rule": "quay", "images": ["coreos/etcd:v3.5.0"]})
    api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "u", "token": "t"})
    # WHEN the whole history is read, and filtered by kind
    everything = page(api)["items"]
    rules = page(api, kind="rule")["items"]
    # THEN it is newest first, and the filter keeps one kind
    assert [(i["kind"], i["name"]) for i in everything] == [("credential", "hub"), ("warm-set", "ws"), ("rule", "quay")]
    assert [i["revision"] for i in everything] == [3, 2, 1]
    assert [(i["kind"], i["name"]) for i in rules] == [("rule", "quay")]


def test_history_no_op_writes_leave_no_entry(api: ApiClient) -> None:
    # GIVEN a rule
    api.put("/v1/rules/quay", QUAY)
    # WHEN the same spec is written three more times
    for _ in range(3):
        assert api.put("/v1/rules/quay", QUAY).status == 200
    # THEN the history still has the create only
    assert [i["action"] for i in page(api)["items"]] == ["create"]


def test_history_pages_with_next_token_until_complete(api: ApiClient) -> None:
    # GIVEN 7 writes to two rules
    for n in range(4):
        api.put("/v1/rules/quay", {**QUAY, "description": f"v{n}"})
    for n in range(3):
        api.put("/v1/rules/k8s", {"upstream_kind": "k8s", "description": f"v{n}"})
    # WHEN the history is read two entries at a time, following next_token
    pages: list[list[dict[str, Any]]] = []
    query: dict[str, str] = {"limit": "2"}
    while True:
        body = page(api, **query)
        pages.append(body["items"])
        if body["next_token"] is None:
            break
        query = {"limit": "2", "next_token": body["next_token"]}
    # THEN the pages hold every entry once, newest first, and no page exceeds the limit
    revisions = [i["revision"] for p in pages for i in p]
    assert revisions == [7, 6, 5, 4, 3, 2, 1]
    assert all(len(p) <= 2 for p in pages)
    assert len(pages) >= 4


def test_history_of_one_resource_pages_too(api: ApiClient) -> None:
    # GIVEN five writes to one rule among others
    for n in range(5):
        api.put("/v1/rules/quay", {**QUAY, "description": f"v{n}"})
    api.put("/v1/rules/k8s", {"upstream_kind": "k8s"})
    # WHEN its history is read three at a time
    first = page(api, kind="rule", name="quay", limit="3")
    assert first["next_token"] is not None
    second = page(api, kind="rule", name="quay", limit="3", next_token=first["next_token"])
    # THEN the two pages hold its five entries, newest first
    assert [i["version"] for i in first["items"] + second["items"]] == [5, 4, 3, 2, 1]
    assert second["next_token"] is None


@pytest.mark.parametrize("token", ["garbage!", "e30x", token_of([1, 2]), token_of({"pk": "HISTORY"}), "%%%"])
def test_history_garbage_next_token_is_400(api: ApiClient, token: str) -> None:
    # GIVEN some history
    api.put("/v1/rules/quay", QUAY)
    # WHEN a next_token the API never returned is sent
    refused = api.get("/v1/history", query={"next_token": token})
    # THEN it is 400 saying so
    body = assert_error(refused, 400, "BadRequest")
    assert "next_token" in body["message"]


@pytest.mark.parametrize("key", [{"pk": {"S": 1}}, {"pk": {"Q": "x"}}], ids=["wrong-type", "wrong-member"])
def test_history_next_token_with_a_malformed_key_is_400(api: ApiClient, key: dict[str, Any]) -> None:
    # GIVEN some history
    api.put("/v1/rules/quay", QUAY)
    # WHEN a well-encoded next_token holds a malformed DynamoDB key
    refused = api.get("/v1/history", query={"next_token": token_of(key)})
    # THEN it is the same 400 as any other foreign token (not a 503 "try again")
    assert_error(refused, 400, "BadRequest")


def test_history_next_token_dynamodb_rejects_is_400(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN DynamoDB refuses the start key, as it does for a key that is not of the index it queries
    # (moto does not check ExclusiveStartKey, so the refusal is injected)
    from functions.api.app import service

    client = service.store.client  # type: ignore[attr-defined]

    error: Any = {
        "Error": {"Code": "ValidationException", "Message": "The provided starting key is invalid"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }

    def query(**kwargs: Any) -> Any:
        raise ClientError(error, "Query")

    monkeypatch.setattr(client, "query", query)
    # WHEN a forged next_token is sent
    refused = api.get("/v1/history", query={"next_token": token_of({"pk": {"S": "HISTORY#rule#x"}})})
    # THEN it is 400, like any token the API never returned
    assert_error(refused, 400, "BadRequest")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"name": "quay"}, "kind"),
        ({"kind": "repository"}, "query.kind"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"next_token": "x" * 2049}, "query.next_token"),
    ],
    ids=["name-without-kind", "kind", "limit-0", "limit-101", "limit-nan", "token-too-long"],
)
def test_history_invalid_query_is_422_naming_the_parameter(api: ApiClient, query: dict[str, str], field: str) -> None:
    # GIVEN nothing written yet
    # WHEN the history is read with an invalid query
    refused = api.get("/v1/history", query=query)
    # THEN it is 422 naming the parameter
    assert_error(refused, 422, "ValidationFailed")
    assert [d["field"] for d in refused.json["details"]] == [field]


def test_history_of_an_unknown_resource_is_empty(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the history of an unknown rule is read
    body = page(api, kind="rule", name="nope")
    # THEN it is an empty page without a next token
    assert body == {"items": [], "next_token": None}
