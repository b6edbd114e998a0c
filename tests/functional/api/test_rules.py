"""`/v1/rules` through the real ``lambda_handler``: create, read, replace, delete, preconditions, quota.

Every request is an API Gateway REST proxy event whose path stays percent-encoded, as API Gateway
delivers it; the state table is the one ``template.yaml`` defines, inside moto.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.client import ALICE, ApiClient, enc

pytestmark = pytest.mark.functional

BOB = "arn:aws:iam::123456789012:user/bob"
QUAY: dict[str, Any] = {"upstream_kind": "quay"}
TOKEN = "test-token-not-a-secret"


def put_credential(api: ApiClient, name: str, kind: str) -> None:
    response = api.put(f"/v1/credentials/{name}", {"upstream_kind": kind, "username": "ci-bot", "token": TOKEN})
    assert response.status == 201, response.text


def history(api: ApiClient, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/history", query={"kind": "rule", "name": name}).json["items"]
    return items


# -- create, read, replace, delete -------------------------------------------------------------------


def test_rule_put_creates_it_with_201_and_an_etag(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a quay rule is created
    created = api.put("/v1/rules/quay", QUAY)
    # THEN it is 201 with version 1, the caller's ARN and the defaults filled in
    assert created.status == 201, created.text
    assert created.etag == '"1"'
    body = created.json
    assert body["prefix"] == "quay"
    assert body["version"] == 1
    assert body["updated_by"] == ALICE
    assert body["spec"]["upstream_url"] == "quay.io"
    assert body["spec"]["upstream_repository_prefix"] == "ROOT"
    assert body["spec"]["deletion_policy"] == "retain"
    assert body["rendered"]["repository_creation_template"]["prefix"] == "quay"
    # AND reading it back gives the same resource and ETag
    read = api.get("/v1/rules/quay")
    assert read.status == 200
    assert read.etag == '"1"'
    assert read.json == body


def test_rule_list_returns_every_rule_sorted(api: ApiClient) -> None:
    # GIVEN three rules created out of order
    for prefix in ("zeta", "alpha", "team/quay"):
        assert api.put(f"/v1/rules/{enc(prefix)}", QUAY).status == 201
    # WHEN the rules are listed
    listed = api.get("/v1/rules")
    # THEN all three come back sorted by prefix
    assert listed.status == 200
    assert [r["prefix"] for r in listed.json["items"]] == ["alpha", "team/quay", "zeta"]


def test_rule_put_replaces_it_with_200_and_the_next_version(api: ApiClient) -> None:
    # GIVEN a rule at version 1
    api.put("/v1/rules/quay", QUAY)
    # WHEN Bob replaces it with a changed spec
    replaced = api.put("/v1/rules/quay", {**QUAY, "description": "Quay images"}, caller=BOB)
    # THEN it is 200 at version 2, updated by Bob, created_at unchanged
    assert replaced.status == 200, replaced.text
    assert replaced.etag == '"2"'
    assert replaced.json["version"] == 2
    assert replaced.json["updated_by"] == BOB
    assert replaced.json["spec"]["description"] == "Quay images"
    assert replaced.json["created_at"] == api.get("/v1/rules/quay").json["created_at"]


def test_rule_put_that_changes_nothing_keeps_the_version_and_writes_no_history(api: ApiClient) -> None:
    # GIVEN a rule at version 1 with one history entry
    api.put("/v1/rules/quay", QUAY)
    # WHEN the same spec is sent again (explicit defaults included)
    again = api.put("/v1/rules/quay", {**QUAY, "upstream_url": "quay.io", "deletion_policy": "retain"})
    # THEN it is 200 with the same version, and history did not grow
    assert again.status == 200, again.text
    assert again.etag == '"1"'
    assert again.json["version"] == 1
    assert len(history(api, "quay")) == 1


def test_rule_delete_is_204_and_then_the_rule_is_gone(api: ApiClient) -> None:
    # GIVEN a rule
    api.put("/v1/rules/quay", QUAY)
    # WHEN it is deleted
    deleted = api.delete("/v1/rules/quay")
    # THEN the answer is 204 with no body, and the rule is 404 afterwards
    assert deleted.status == 204
    assert deleted.text == ""
    assert_error(api.get("/v1/rules/quay"), 404, "NotFound")
    assert api.get("/v1/rules").json["items"] == []


def test_rule_get_and_delete_of_an_unknown_rule_are_404(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN an unknown rule is read and deleted
    # THEN both are 404 in the error shape, naming the rule
    assert "nope" in assert_error(api.get("/v1/rules/nope"), 404, "NotFound")["message"]
    assert_error(api.delete("/v1/rules/nope"), 404, "NotFound")


# -- prefixes: nested, ROOT, trailing slash -----------------------------------------------------------


def test_rule_nested_prefix_round_trips_percent_encoded(api: ApiClient) -> None:
    # GIVEN a Docker Hub credential
    put_credential(api, "docker-hub", "docker-hub")
    # WHEN the rule team/docker-hub is created with the '/' sent as %2F
    created = api.put("/v1/rules/team%2Fdocker-hub", {"upstream_kind": "docker-hub", "credential": "docker-hub"})
    # THEN it is stored under the decoded prefix, readable and deletable the same way
    assert created.status == 201, created.text
    assert created.json["prefix"] == "team/docker-hub"
    assert created.json["rendered"]["repository_creation_template"]["prefix"] == "team/docker-hub"
    assert api.get("/v1/rules/team%2Fdocker-hub").json["prefix"] == "team/docker-hub"
    assert [r["prefix"] for r in api.get("/v1/rules").json["items"]] == ["team/docker-hub"]
    assert history(api, "team/docker-hub")[0]["name"] == "team/docker-hub"
    assert api.delete("/v1/rules/team%2Fdocker-hub").status == 204
    assert api.get("/v1/rules/team%2Fdocker-hub").status == 404


def test_rule_root_prefix_round_trips(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN the ROOT rule is created
    created = api.put("/v1/rules/ROOT", {"upstream_kind": "ecr-public"})
    # THEN it is stored as ROOT and reads back
    assert created.status == 201, created.text
    assert created.json["prefix"] == "ROOT"
    assert api.get("/v1/rules/ROOT").json["spec"]["upstream_url"] == "public.ecr.aws"
    assert api.delete("/v1/rules/ROOT").status == 204


def test_rule_root_refuses_an_upstream_repository_prefix(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN the ROOT rule names an upstream repository prefix
    refused = api.put("/v1/rules/ROOT", {"upstream_kind": "quay", "upstream_repository_prefix": "myorg"})
    # THEN it is 422 naming the field, and nothing is written
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["upstream_repository_prefix"]
    assert api.get("/v1/rules/ROOT").status == 404


def test_rule_upstream_repository_prefix_is_kept_for_a_named_prefix(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a named prefix maps to an upstream namespace
    created = api.put("/v1/rules/quay-org", {"upstream_kind": "quay", "upstream_repository_prefix": "myorg"})
    # THEN it is stored as given
    assert created.status == 201, created.text
    assert created.json["spec"]["upstream_repository_prefix"] == "myorg"


def test_rule_trailing_slash_names_the_same_rule(api: ApiClient) -> None:
    # GIVEN a rule created as "quay/" (ECR implies the trailing '/')
    created = api.put("/v1/rules/quay%2F", QUAY)
    assert created.status == 201, created.text
    assert created.json["prefix"] == "quay"
    # WHEN it is read and written with and without the slash
    # THEN every form addresses the one rule "quay"
    assert api.get("/v1/rules/quay").etag == '"1"'
    assert api.get("/v1/rules/quay%2F").json["prefix"] == "quay"
    assert api.get("/v1/rules/quay/").json["prefix"] == "quay"
    assert api.put("/v1/rules/quay", QUAY).status == 200
    assert [r["prefix"] for r in api.get("/v1/rules").json["items"]] == ["quay"]
    assert api.delete("/v1/rules/quay%2F").status == 204
    assert api.get("/v1/rules/quay").status == 404


def test_rule_prefix_with_an_empty_path_component_is_refused(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a rule is written as "quay//" (an empty path component)
    refused = api.put("/v1/rules/quay%2F%2F", QUAY)
    # THEN it is refused like every other malformed prefix
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["prefix"]


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("Docker-Hub", "lowercase"),
        ("a", "2-30 characters"),
        ("x" * 31, "2-30 characters"),
        ("team%2F%2Fquay", "empty path component"),
        ("%2Fquay", "must not start with '/'"),
        ("quay_", "path components"),
    ],
)
def test_rule_malformed_prefix_is_422_naming_prefix(api: ApiClient, prefix: str, reason: str) -> None:
    # GIVEN no rules
    # WHEN a rule is written under a prefix ECR would refuse
    refused = api.put(f"/v1/rules/{prefix}", QUAY)
    # THEN it is 422 naming "prefix" and the rule broken
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["prefix"]
    assert reason in body["details"][0]["message"]


# -- upstream kinds, credentials, lifecycle -----------------------------------------------------------

UPSTREAMS: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("docker-hub", {}, "registry-1.docker.io", "docker-hub"),
    ("github-container-registry", {}, "ghcr.io", "github-container-registry"),
    ("quay", {}, "quay.io", None),
    ("gitlab-container-registry", {}, "registry.gitlab.com", "gitlab-container-registry"),
    ("azure-container-registry", {"upstream_url": "myregistry.azurecr.io"}, "myregistry.azurecr.io", "azure"),
    (
        "ecr",
        {
            "upstream_url": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
            "custom_role_arn": "arn:aws:iam::123456789012:role/ecrcache/ecr-to-ecr-ptc",
        },
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
        None,
    ),
    ("ecr-public", {}, "public.ecr.aws", None),
    ("k8s", {}, "registry.k8s.io", None),
    ("chainguard", {}, "cgr.dev", "chainguard"),
]


@pytest.mark.parametrize(("kind", "extra", "url", "credential"), UPSTREAMS, ids=[u[0] for u in UPSTREAMS])
def test_rule_each_upstream_kind_is_accepted(
    api: ApiClient, kind: str, extra: dict[str, Any], url: str, credential: str | None
) -> None:
    # GIVEN a credential for the kinds that need one
    spec: dict[str, Any] = {"upstream_kind": kind, **extra}
    if credential is not None:
        put_credential(api, credential, kind)
        spec["credential"] = credential
    # WHEN a rule for that upstream is created
    created = api.put("/v1/rules/cache", spec)
    # THEN it is accepted with the upstream URL ECR expects
    assert created.status == 201, created.text
    assert created.json["spec"]["upstream_url"] == url
    assert created.json["spec"]["credential"] == credential
    # AND the credential lists the rule as its user
    if credential is not None:
        assert api.get(f"/v1/credentials/{credential}").json["referenced_by"] == ["cache"]


def test_rule_missing_credential_kind_requirement_is_422(api: ApiClient) -> None:
    # GIVEN no credentials
    # WHEN a Docker Hub rule names no credential
    refused = api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub"})
    # THEN it is 422 naming "credential"
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["credential"]


def test_rule_wrong_credential_kind_is_422_and_writes_nothing(api: ApiClient) -> None:
    # GIVEN a GitHub credential
    put_credential(api, "gh", "github-container-registry")
    # WHEN a Docker Hub rule uses it
    refused = api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "gh"})
    # THEN it is 422 explaining the kinds disagree, and nothing is written
    body = assert_error(refused, 422, "ValidationFailed")
    assert "github-container-registry" in body["message"]
    assert fields(refused)[0].endswith("credential")
    assert api.get("/v1/rules/docker-hub").status == 404


def test_rule_unknown_credential_is_422_and_writes_nothing(api: ApiClient) -> None:
    # GIVEN no credentials
    # WHEN a Docker Hub rule names a credential that does not exist
    refused = api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "nope"})
    # THEN it is 422 naming the credential, and nothing is written
    body = assert_error(refused, 422, "ValidationFailed")
    assert "'nope'" in body["message"]
    assert api.get("/v1/rules/docker-hub").status == 404


@pytest.mark.parametrize("credential", ["gh", "nope"])
def test_rule_credential_error_names_the_body_field(api: ApiClient, credential: str) -> None:
    # GIVEN a GitHub credential
    put_credential(api, "gh", "github-container-registry")
    # WHEN a Docker Hub rule names a credential of the wrong kind, or one that does not exist
    refused = api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": credential})
    # THEN the error names the body field, as for every other field of the body
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["credential"]


def test_rule_unknown_field_is_422_naming_it(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN the body carries a field the model does not know (also nested)
    refused = api.put("/v1/rules/quay", {**QUAY, "upstream": "quay.io", "repository": {"mutable": True}})
    # THEN it is 422 naming each unknown field by its path
    assert_error(refused, 422, "ValidationFailed")
    assert sorted(fields(refused)) == ["repository.mutable", "upstream"]
    assert {d["type"] for d in refused.json["details"]} == {"extra_forbidden"}
    assert api.get("/v1/rules/quay").status == 404


def test_rule_lifecycle_error_names_the_nested_field_path(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a lifecycle rule sets countUnit with imageCountMoreThan
    lifecycle = {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countUnit": "days",
                    "countNumber": 3,
                },
                "action": {"type": "expire"},
            }
        ]
    }
    refused = api.put("/v1/rules/quay", {**QUAY, "lifecycle": lifecycle})
    # THEN the 422 names lifecycle.rules[0].selection.countUnit
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["lifecycle.rules[0].selection.countUnit"]
    assert body["message"].startswith("lifecycle.rules[0].selection.countUnit: ")


PRESETS: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    (
        {"keep_last": 5},
        [
            {
                "rulePriority": 1,
                "description": "Keep the 5 most recently pushed tagged images, expire older tagged images",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 5,
                },
                "action": {"type": "expire"},
            }
        ],
    ),
    (
        {"expire_untagged_after_days": 14, "keep_last": 10},
        [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 14,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 10,
                },
                "action": {"type": "expire"},
            },
        ],
    ),
    (
        {"archive_unpulled_after_days": 30, "expire_archived_after_days": 180},
        [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "sinceImagePulled",
                    "countUnit": "days",
                    "countNumber": 30,
                },
                "action": {"type": "transition", "targetStorageClass": "archive"},
            },
            {
                "rulePriority": 2,
                "selection": {
                    "tagStatus": "any",
                    "storageClass": "archive",
                    "countType": "sinceImageTransitioned",
                    "countUnit": "days",
                    "countNumber": 180,
                },
                "action": {"type": "expire"},
            },
        ],
    ),
]


@pytest.mark.parametrize(("presets", "expected"), PRESETS, ids=["keep_last", "untagged+keep_last", "archive"])
def test_rule_lifecycle_presets_are_rendered(
    api: ApiClient, presets: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    # GIVEN no rules
    # WHEN a rule uses lifecycle presets
    created = api.put("/v1/rules/quay", {**QUAY, "lifecycle": {"presets": presets}})
    # THEN rendered.lifecycle_policy is the ECR policy they compile to
    assert created.status == 201, created.text
    rendered = created.json["rendered"]
    rules = rendered["lifecycle_policy"]["rules"]
    assert [{k: v for k, v in r.items() if k != "description"} for r in rules] == [
        {k: v for k, v in r.items() if k != "description"} for r in expected
    ]
    assert all(r["description"] for r in rules)
    if "description" in expected[0]:
        assert rules[0]["description"] == expected[0]["description"]
    # AND the creation template carries the same policy as ECR's compact text
    assert json.loads(rendered["repository_creation_template"]["lifecyclePolicy"]) == rendered["lifecycle_policy"]


def test_rule_without_lifecycle_renders_no_policy(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a rule has no lifecycle section
    created = api.put("/v1/rules/quay", QUAY)
    # THEN nothing is rendered for it, in the response or the template
    assert created.json["rendered"]["lifecycle_policy"] is None
    assert "lifecyclePolicy" not in created.json["rendered"]["repository_creation_template"]


# -- references and the quota -------------------------------------------------------------------------


def test_rule_used_by_a_warm_set_cannot_be_deleted(api: ApiClient) -> None:
    # GIVEN a rule and a warm set that pulls through it
    api.put("/v1/rules/quay", QUAY)
    assert api.put("/v1/warm-sets/base", {"rule": "quay", "images": ["prometheus/node-exporter:v1.8.0"]}).status == 201
    # WHEN the rule is deleted
    refused = api.delete("/v1/rules/quay")
    # THEN it is 409 naming the warm set, and the rule stays
    body = assert_error(refused, 409, "Conflict")
    assert "base" in body["message"]
    assert fields(refused) == ["base"]
    assert api.get("/v1/rules/quay").status == 200


def fifty_rules(api: ApiClient) -> None:
    document = {"version": 1, "rules": {f"r{i:02d}": QUAY for i in range(50)}}
    assert api.put("/v1/desired-state", document).status == 200


def test_rule_quota_refuses_the_51st_rule_with_409(api: ApiClient) -> None:
    # GIVEN 50 rules, ECR's per-registry maximum
    fifty_rules(api)
    # WHEN a 51st rule is created
    refused = api.put("/v1/rules/r50", QUAY)
    # THEN it is 409 naming the quota, and nothing is written
    body = assert_error(refused, 409, "Conflict")
    assert "50" in body["message"]
    assert fields(refused) == ["rules"]
    assert api.get("/v1/rules/r50").status == 404
    assert len(api.get("/v1/rules").json["items"]) == 50
    # AND an existing rule can still be changed
    assert api.put("/v1/rules/r00", {**QUAY, "description": "still fine"}).status == 200


def test_rule_quota_is_per_region(api: ApiClient) -> None:
    # GIVEN 50 rules in the stack's Region
    fifty_rules(api)
    # WHEN a rule for another Region only is created
    other = api.put("/v1/rules/eu-quay", {**QUAY, "regions": ["eu-west-1"]})
    # THEN it fits: eu-west-1 has no rules yet
    assert other.status == 201, other.text


def test_rule_region_ecr_does_not_have_is_refused(api: ApiClient) -> None:
    # GIVEN no rules
    # WHEN a rule names a Region that does not exist
    refused = api.put("/v1/rules/quay", {**QUAY, "regions": ["xx-east-1"]})
    # THEN it is refused naming the field, and the plan still works
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused)[0].startswith("regions")
    assert api.get("/v1/plan").status == 200


# -- conditional requests -----------------------------------------------------------------------------

PUT_MATRIX: list[tuple[str, bool, dict[str, str], int]] = [
    ("if-match current", True, {"If-Match": '"1"'}, 200),
    ("if-match weak current", True, {"If-Match": 'W/"1"'}, 200),
    ("if-match bare current", True, {"If-Match": "1"}, 200),
    ("if-match stale", True, {"If-Match": '"2"'}, 412),
    ("if-match lowercase stale", True, {"if-match": '"7"'}, 412),
    ("if-match any existing", True, {"If-Match": "*"}, 200),
    ("if-none-match star existing", True, {"If-None-Match": "*"}, 412),
    ("if-none-match lowercase existing", True, {"if-none-match": "*"}, 412),
    ("if-match on missing", False, {"If-Match": '"1"'}, 412),
    ("if-none-match star missing", False, {"If-None-Match": "*"}, 201),
    ("no precondition missing", False, {}, 201),
    ("no precondition existing", True, {}, 200),
    ("if-match empty existing", True, {"If-Match": ""}, 200),
    ("if-none-match empty existing", True, {"If-None-Match": ""}, 200),
    ("if-match garbage", True, {"If-Match": "abc"}, 422),
    ("if-none-match etag", True, {"If-None-Match": '"1"'}, 422),
]


@pytest.mark.parametrize(("exists", "headers", "status"), [m[1:] for m in PUT_MATRIX], ids=[m[0] for m in PUT_MATRIX])
def test_rule_put_honours_conditional_headers(
    api: ApiClient, exists: bool, headers: dict[str, str], status: int
) -> None:
    # GIVEN the rule exists at version 1, or does not exist
    if exists:
        api.put("/v1/rules/quay", QUAY)
    # WHEN it is written with a changed spec and the conditional headers
    response = api.put("/v1/rules/quay", {**QUAY, "description": "changed"}, headers=headers)
    # THEN the status follows RFC 9110, and a refused write changes nothing
    assert response.status == status, response.text
    if status == 412:
        assert_error(response, 412, "PreconditionFailed")
    if status >= 400:
        current = api.get("/v1/rules/quay")
        assert current.status == (200 if exists else 404)
        if exists:
            assert current.json["version"] == 1
            assert current.json["spec"]["description"] is None
    if status == 422:
        assert fields(response) == [next(iter(headers))]


def test_rule_put_with_if_match_star_on_a_missing_rule_is_412(api: ApiClient) -> None:
    # GIVEN no rule "quay"
    # WHEN it is written with If-Match: * ("only if it exists")
    response = api.put("/v1/rules/quay", QUAY, headers={"If-Match": "*"})
    # THEN the precondition fails and nothing is created
    assert_error(response, 412, "PreconditionFailed")
    assert api.get("/v1/rules/quay").status == 404


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Match": '"1"'}, 204),
        ({"If-Match": '"2"'}, 412),
        ({"If-Match": "*"}, 204),
        ({}, 204),
        ({"If-None-Match": "*"}, 412),
        ({"If-None-Match": '"1"'}, 422),
    ],
    ids=["current", "stale", "any", "none", "if-none-match star", "if-none-match etag"],
)
def test_rule_delete_honours_if_match(api: ApiClient, headers: dict[str, str], status: int) -> None:
    # GIVEN a rule at version 1
    api.put("/v1/rules/quay", QUAY)
    # WHEN it is deleted with If-Match (or If-None-Match, which fails on an item that exists)
    response = api.delete("/v1/rules/quay", headers=headers)
    # THEN a stale version is 412 and keeps the rule
    assert response.status == status, response.text
    assert api.get("/v1/rules/quay").status == (200 if status >= 400 else 404)


def test_rule_etag_from_a_read_guards_the_next_write(api: ApiClient) -> None:
    # GIVEN Alice and Bob both read the rule at version 1
    api.put("/v1/rules/quay", QUAY)
    etag = api.get("/v1/rules/quay").etag
    assert etag is not None
    # WHEN Alice writes first, then Bob with the same ETag
    alice = api.put("/v1/rules/quay", {**QUAY, "description": "alice"}, headers={"If-Match": etag})
    bob = api.put("/v1/rules/quay", {**QUAY, "description": "bob"}, headers={"If-Match": etag}, caller=BOB)
    # THEN Alice's write lands and Bob's is refused: no lost update
    assert alice.status == 200
    assert_error(bob, 412, "PreconditionFailed")
    assert api.get("/v1/rules/quay").json["spec"]["description"] == "alice"
    assert [h["by"] for h in history(api, "quay")] == [ALICE, ALICE]


# -- roles: only under the stack's EcrRolePath (the path the reconciler's iam:PassRole covers) ------------

ECR_UPSTREAM = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
OUTSIDE: list[tuple[dict[str, Any], str, str]] = [
    (
        {"upstream_kind": "ecr", "upstream_url": ECR_UPSTREAM, "custom_role_arn": "arn:aws:iam::123456789012:role/x"},
        "custom_role_arn",
        "the IAM path /,",
    ),
    (
        {"upstream_kind": "quay", "repository": {"creation_role_arn": "arn:aws:iam::123456789012:role/ops/ecr/x"}},
        "repository.creation_role_arn",
        "the IAM path /ops/ecr/,",
    ),
    (  # a path that merely starts like it is another path
        {"upstream_kind": "quay", "repository": {"creation_role_arn": "arn:aws:iam::123456789012:role/ecrcache2/x"}},
        "repository.creation_role_arn",
        "the IAM path /ecrcache2/,",
    ),
]


@pytest.mark.parametrize(
    ("spec", "field", "path"), OUTSIDE, ids=[o[1] + "-" + o[2].split()[-1].rstrip(",") for o in OUTSIDE]
)
def test_rule_naming_a_role_outside_the_ecr_role_path_is_422(
    api: ApiClient, spec: dict[str, Any], field: str, path: str
) -> None:
    # GIVEN the stack's EcrRolePath /ecrcache/ (the template's default, ECR_ROLE_PATH)
    # WHEN a rule names a role under another path
    refused = api.put("/v1/rules/cache", spec)
    # THEN it is 422 naming the field, the role's path and EcrRolePath, and nothing is stored
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == [field]
    message = body["details"][0]["message"]
    assert path in message
    assert "EcrRolePath /ecrcache/" in message
    assert api.get("/v1/rules/cache").status == 404


@pytest.mark.parametrize(
    ("arn", "named"),
    [
        ("arn:aws:iam::210987654321:role/ecrcache/ecr-to-ecr", "account 210987654321 in partition aws"),
        ("arn:aws-cn:iam::123456789012:role/ecrcache/ecr-to-ecr", "account 123456789012 in partition aws-cn"),
    ],
)
def test_rule_naming_a_role_of_another_account_or_partition_is_422(api: ApiClient, arn: str, named: str) -> None:
    # GIVEN the stack in account 123456789012, partition aws (ECR_ROLE_ACCOUNT, its Region's partition)
    # WHEN a rule names a role under EcrRolePath but of another account or partition (iam:PassRole is only granted
    # on the stack's own account's roles: such a rule could never be reconciled)
    refused = api.put("/v1/rules/cache", {"upstream_kind": "ecr", "upstream_url": ECR_UPSTREAM, "custom_role_arn": arn})
    # THEN it is 422 naming the field, the role's account and partition, and nothing is stored
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["custom_role_arn"]
    message = body["details"][0]["message"]
    assert f"is a role of {named}" in message
    assert "only roles of the stack's own account (123456789012, partition aws)" in message
    assert api.get("/v1/rules/cache").status == 404


def test_rule_naming_roles_under_the_ecr_role_path_is_accepted(api: ApiClient) -> None:
    spec = {
        "upstream_kind": "ecr",
        "upstream_url": ECR_UPSTREAM,
        "custom_role_arn": "arn:aws:iam::123456789012:role/ecrcache/ecr-to-ecr",
        "repository": {"creation_role_arn": "arn:aws:iam::123456789012:role/ecrcache/team/creation"},
    }
    assert api.put("/v1/rules/cache", spec).status == 201


def test_desired_state_document_naming_a_role_outside_the_ecr_role_path_is_422(api: ApiClient) -> None:
    document = {
        "version": 1,
        "rules": {
            "quay": {"upstream_kind": "quay", "repository": {"creation_role_arn": "arn:aws:iam::123456789012:role/c"}}
        },
    }
    refused = api.put("/v1/desired-state", document)
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["rules.quay.repository.creation_role_arn"]
    assert "EcrRolePath /ecrcache/" in body["details"][0]["message"]
