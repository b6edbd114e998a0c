"""`/v1/desired-state`: export the whole desired state, apply a whole document (JSON or YAML).

An apply validates everything first, then writes all of it or nothing; documents with more changes
than one DynamoDB transaction holds go through the lease and are committed in chunks.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.aws_support import aws, scan, secret_value
from tests.functional.api.client import ALICE, ApiClient, ApiResponse

pytestmark = pytest.mark.functional


TOKEN = "dckr_pat_desired_state_test_0001"
NEW_TOKEN = "dckr_pat_desired_state_test_0002"

DOCUMENT: dict[str, Any] = {
    "version": 1,
    "credentials": {
        "docker-hub": {"upstream_kind": "docker-hub", "username": "ci-bot", "token": TOKEN, "expires_at": "2027-06-30"}
    },
    "rules": {
        "docker-hub": {
            "upstream_kind": "docker-hub",
            "credential": "docker-hub",
            "lifecycle": {"presets": {"expire_untagged_after_days": 7, "keep_last": 20}},
        },
        "team/quay": {"upstream_kind": "quay", "upstream_repository_prefix": "team"},
        "ROOT": {"upstream_kind": "ecr-public", "description": "everything else"},
    },
    "warm_sets": {"base": {"rule": "docker-hub", "images": ["library/node:18-alpine"], "platforms": ["linux/amd64"]}},
}


def document(*, tokens: bool = True) -> dict[str, Any]:
    """A copy of DOCUMENT; without tokens it is what a later apply of the same file sends."""
    out = copy.deepcopy(DOCUMENT)
    if not tokens:
        for credential in out["credentials"].values():
            credential.pop("token", None)
    return out


def secret_names() -> list[str]:
    return sorted(s["Name"] for s in aws("secretsmanager").list_secrets()["SecretList"])


def all_history(api: ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = {"limit": "100", **({"next_token": token} if token else {})}
        page = api.get("/v1/history", query=query).json
        items.extend(page["items"])
        token = page["next_token"]
        if not token:
            return items


def apply(api: ApiClient, body: dict[str, Any], **query: str) -> ApiResponse:
    return api.put("/v1/desired-state", body, query=query or None)


def changes(response: ApiResponse) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["name"]) for c in response.json["changes"]]


# -- export -------------------------------------------------------------------------------------------


def test_desired_state_export_of_an_empty_state(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the desired state is exported
    exported = api.get("/v1/desired-state")
    # THEN it is an empty version-1 document at revision 0
    assert exported.status == 200
    assert exported.etag == '"0"'
    assert exported.json == {"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}


def test_desired_state_export_as_yaml_matches_json(api: ApiClient) -> None:
    # GIVEN a desired state
    apply(api, DOCUMENT)
    # WHEN it is exported as JSON, as YAML by query, and as YAML by Accept
    as_json = api.get("/v1/desired-state")
    by_query = api.get("/v1/desired-state", query={"format": "yaml"})
    by_accept = api.get("/v1/desired-state", headers={"Accept": "application/yaml"})
    # THEN all three carry the same document and ETag, and no token
    assert as_json.headers["Content-Type"] == "application/json"
    for exported in (by_query, by_accept):
        assert exported.status == 200
        assert exported.headers["Content-Type"] == "application/yaml"
        assert exported.etag == as_json.etag == '"1"'
        assert yaml.safe_load(exported.text) == as_json.json
        assert TOKEN not in exported.text
    assert set(as_json.json["credentials"]["docker-hub"]) == {
        "upstream_kind",
        "username",
        "expires_at",
        "rotation",
        "description",
    }
    # AND ?format=json wins over Accept
    assert api.get("/v1/desired-state", query={"format": "json"}, headers={"Accept": "application/yaml"}).json


# -- apply --------------------------------------------------------------------------------------------


def test_desired_state_apply_creates_everything_in_dependency_order(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a document with a credential, three rules and a warm set is applied
    applied = apply(api, DOCUMENT)
    # THEN it is one change per resource, credentials first and warm sets last, at revision 1
    assert applied.status == 200, applied.text
    assert applied.json["dry_run"] is False
    assert applied.json["revision"] == 1
    assert changes(applied) == [
        ("create", "credential", "docker-hub"),
        ("create", "rule", "ROOT"),
        ("create", "rule", "docker-hub"),
        ("create", "rule", "team/quay"),
        ("create", "warm-set", "base"),
    ]
    assert [c["secret_changed"] for c in applied.json["changes"]] == [True, False, False, False, False]
    # AND every resource exists, written by the caller, and the secret holds the token
    assert api.get("/v1/rules/team%2Fquay").json["updated_by"] == ALICE
    assert api.get("/v1/rules/docker-hub").json["rendered"]["lifecycle_policy"]["rules"][1]["selection"] == {
        "tagStatus": "tagged",
        "tagPatternList": ["*"],
        "countType": "imageCountMoreThan",
        "countNumber": 20,
    }
    assert api.get("/v1/warm-sets/base").status == 200
    assert secret_value("ecr-pullthroughcache/docker-hub") == {"username": "ci-bot", "accessToken": TOKEN}
    # AND the export ETag is the new revision
    assert api.get("/v1/desired-state").etag == '"1"'
    # AND history has one entry per resource at that revision
    entries = all_history(api)
    assert sorted((e["kind"], e["name"]) for e in entries) == sorted((k, n) for _, k, n in changes(applied))
    assert {(e["revision"], e["action"], e["by"]) for e in entries} == {(1, "create", ALICE)}


def test_desired_state_applying_the_same_document_again_changes_nothing(api: ApiClient, state_table: str) -> None:
    # GIVEN a document applied once
    apply(api, DOCUMENT)
    before = scan(state_table)
    # WHEN the same document is applied again without tokens
    second = apply(api, document(tokens=False))
    # THEN there are no changes, the revision stays, and the table is untouched
    assert second.status == 200, second.text
    assert second.json["changes"] == []
    assert second.json["revision"] == 1
    assert scan(state_table) == before


def test_desired_state_token_for_an_existing_credential_is_a_change(api: ApiClient) -> None:
    # GIVEN a document applied once
    apply(api, DOCUMENT)
    # WHEN it is applied again with a new token only
    rotated = document()
    rotated["credentials"]["docker-hub"]["token"] = NEW_TOKEN
    applied = apply(api, rotated)
    # THEN only the credential changes, marked as a secret change, and the secret holds the new token
    assert applied.status == 200, applied.text
    assert changes(applied) == [("update", "credential", "docker-hub")]
    assert applied.json["changes"][0]["secret_changed"] is True
    assert applied.json["changes"][0]["fields"] == []
    assert api.get("/v1/credentials/docker-hub").json["version"] == 2
    assert secret_value("ecr-pullthroughcache/docker-hub") == {"username": "ci-bot", "accessToken": NEW_TOKEN}


def test_desired_state_update_lists_the_fields_that_change(api: ApiClient) -> None:
    # GIVEN a document applied once
    apply(api, DOCUMENT)
    # WHEN the ROOT rule's description and the warm set's images change
    changed = document(tokens=False)
    changed["rules"]["ROOT"]["description"] = "the rest"
    changed["warm_sets"]["base"]["images"] = ["library/node:20-alpine"]
    applied = apply(api, changed)
    # THEN exactly those resources and fields are updated, with before and after in history
    assert applied.status == 200, applied.text
    assert [(c["name"], c["fields"]) for c in applied.json["changes"]] == [
        ("ROOT", ["description"]),
        ("base", ["images"]),
    ]
    latest = api.get("/v1/history", query={"kind": "rule", "name": "ROOT", "limit": "1"}).json["items"][0]
    assert latest["action"] == "update"
    assert latest["before"]["description"] == "everything else"
    assert latest["after"]["description"] == "the rest"


def test_desired_state_rule_may_use_a_credential_already_stored(api: ApiClient) -> None:
    # GIVEN a credential written on its own
    api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "ci-bot", "token": TOKEN})
    # WHEN a document adds a rule that uses it, without the credential section
    applied = apply(api, {"version": 1, "rules": {"hub": {"upstream_kind": "docker-hub", "credential": "hub"}}})
    # THEN the reference resolves against the store
    assert applied.status == 200, applied.text
    assert changes(applied) == [("create", "rule", "hub")]


def test_desired_state_dry_run_writes_nothing(api: ApiClient, state_table: str) -> None:
    # GIVEN a desired state
    apply(api, {"version": 1, "rules": {"quay": {"upstream_kind": "quay"}}})
    before = scan(state_table)
    secrets_before = secret_names()
    # WHEN a document with a new credential (and token), rules and a warm set is dry-run with prune
    dry = apply(api, DOCUMENT, dryRun="true", prune="true")
    # THEN the changes are listed and the revision is the current one
    assert dry.status == 200, dry.text
    assert dry.json["dry_run"] is True
    assert dry.json["revision"] == 1
    assert ("create", "credential", "docker-hub") in changes(dry)
    assert changes(dry)[-1] == ("delete", "rule", "quay")
    # AND not one item nor secret was written
    assert scan(state_table) == before
    assert secret_names() == secrets_before == []


def test_desired_state_prune_deletes_only_what_is_omitted_in_dependency_order(api: ApiClient) -> None:
    # GIVEN the document plus resources that will be omitted: a credential, its rule, and a warm set
    bigger = document()
    bigger["credentials"]["old-hub"] = {"upstream_kind": "docker-hub", "username": "old", "token": TOKEN}
    bigger["rules"]["old-hub"] = {"upstream_kind": "docker-hub", "credential": "old-hub"}
    bigger["rules"]["old-quay"] = {"upstream_kind": "quay"}
    bigger["warm_sets"]["old-ws"] = {"rule": "old-quay", "images": ["coreos/etcd:v3.5.0"]}
    apply(api, bigger)
    # WHEN the original document, with one changed rule, is applied with prune
    smaller = document(tokens=False)
    smaller["rules"]["team/quay"]["description"] = "kept and changed"
    pruned = apply(api, smaller, prune="true")
    # THEN the update comes first, then the deletes: warm sets, rules, credentials
    assert pruned.status == 200, pruned.text
    assert changes(pruned) == [
        ("update", "rule", "team/quay"),
        ("delete", "warm-set", "old-ws"),
        ("delete", "rule", "old-hub"),
        ("delete", "rule", "old-quay"),
        ("delete", "credential", "old-hub"),
    ]
    # AND what the document keeps is untouched (still version 1), what it omits is gone
    exported = api.get("/v1/desired-state").json
    assert sorted(exported["rules"]) == ["ROOT", "docker-hub", "team/quay"]
    assert sorted(exported["credentials"]) == ["docker-hub"]
    assert sorted(exported["warm_sets"]) == ["base"]
    assert api.get("/v1/rules/docker-hub").json["version"] == 1
    assert api.get("/v1/rules/team%2Fquay").json["version"] == 2
    # AND the omitted credential's secret is scheduled for deletion, the kept one is not
    sm = aws("secretsmanager")
    assert "DeletedDate" in sm.describe_secret(SecretId="ecr-pullthroughcache/old-hub")
    assert "DeletedDate" not in sm.describe_secret(SecretId="ecr-pullthroughcache/docker-hub")


def test_desired_state_without_prune_keeps_what_is_omitted(api: ApiClient) -> None:
    # GIVEN the document applied
    apply(api, DOCUMENT)
    # WHEN a document with only a new rule is applied without prune
    applied = apply(api, {"version": 1, "rules": {"k8s": {"upstream_kind": "k8s"}}})
    # THEN only the new rule is created; nothing is deleted
    assert changes(applied) == [("create", "rule", "k8s")]
    assert sorted(api.get("/v1/desired-state").json["rules"]) == ["ROOT", "docker-hub", "k8s", "team/quay"]


def test_desired_state_prune_refuses_to_orphan_a_reference(api: ApiClient, state_table: str) -> None:
    # GIVEN the document applied
    apply(api, DOCUMENT)
    before = scan(state_table)
    # WHEN a document keeps the warm set but omits its rule, with prune
    broken = document(tokens=False)
    del broken["rules"]["docker-hub"]
    refused = apply(api, broken, prune="true")
    # THEN it is refused naming the warm set's reference, and nothing is written
    assert_error(refused, 422, "ValidationFailed")
    assert "warm_sets.base.rule" in fields(refused)
    assert scan(state_table) == before


# -- a prune that declares nothing, a document without version (issue 10, item 2) -----------------------

EMPTY_DOCUMENTS = [
    pytest.param({"version": 1}, id="version only"),
    pytest.param({"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}, id="empty sections"),
]


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry run"])
@pytest.mark.parametrize("body", EMPTY_DOCUMENTS)
def test_desired_state_prune_of_a_document_declaring_nothing_needs_allow_empty(
    api: ApiClient, state_table: str, *, body: dict[str, Any], dry_run: bool
) -> None:
    # GIVEN rules, a credential and a warm set
    apply(api, DOCUMENT)
    before = scan(state_table)
    # WHEN a document that declares nothing is applied with prune but without allowEmpty
    query = {"prune": "true", **({"dryRun": "true"} if dry_run else {})}
    refused = apply(api, body, **query)
    # THEN it is 422 naming allowEmpty and what it would do, and nothing is written or deleted
    body_out = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["query.allowEmpty"]
    assert "delete every rule, credential and warm set" in body_out["message"]
    assert scan(state_table) == before
    assert "DeletedDate" not in aws("secretsmanager").describe_secret(SecretId="ecr-pullthroughcache/docker-hub")


def test_desired_state_prune_of_a_document_declaring_nothing_with_allow_empty_deletes_everything(
    api: ApiClient,
) -> None:
    # GIVEN rules, a credential and a warm set
    apply(api, DOCUMENT)
    # WHEN a document that declares nothing is applied with prune and allowEmpty
    pruned = apply(api, {"version": 1}, prune="true", allowEmpty="true")
    # THEN everything is deleted, as asked
    assert pruned.status == 200, pruned.text
    assert api.get("/v1/desired-state").json == {"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}
    assert "DeletedDate" in aws("secretsmanager").describe_secret(SecretId="ecr-pullthroughcache/docker-hub")


def test_desired_state_empty_document_without_prune_needs_no_allow_empty(api: ApiClient) -> None:
    # GIVEN rules, a credential and a warm set
    apply(api, DOCUMENT)
    # WHEN a document that declares nothing is applied without prune
    applied = apply(api, {"version": 1})
    # THEN nothing changes
    assert applied.status == 200, applied.text
    assert applied.json["changes"] == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty object"),
        pytest.param({"rules": {"quay": {"upstream_kind": "quay"}}}, id="rules without version"),
    ],
)
@pytest.mark.parametrize("query", [{}, {"prune": "true"}, {"prune": "true", "allowEmpty": "true"}])
def test_desired_state_document_without_version_is_422_naming_version(
    api: ApiClient, state_table: str, *, body: dict[str, Any], query: dict[str, str]
) -> None:
    # GIVEN rules, a credential and a warm set
    apply(api, DOCUMENT)
    before = scan(state_table)
    # WHEN a document without "version" is applied (with or without prune)
    refused = apply(api, body, **query)
    # THEN it is 422 naming version, and nothing is written or deleted
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["version"]
    assert scan(state_table) == before


# -- YAML ---------------------------------------------------------------------------------------------


def test_desired_state_yaml_round_trip_changes_nothing(api: ApiClient, state_table: str) -> None:
    # GIVEN a desired state, exported as YAML
    apply(api, DOCUMENT)
    exported = api.get("/v1/desired-state", query={"format": "yaml"})
    before = scan(state_table)
    # WHEN the YAML is applied back as is, with its ETag
    assert exported.etag is not None
    applied = api.put(
        "/v1/desired-state",
        raw_body=exported.text,
        headers={"Content-Type": "application/yaml", "If-Match": exported.etag},
        query={"prune": "true"},
    )
    # THEN nothing changes
    assert applied.status == 200, applied.text
    assert applied.json["changes"] == []
    assert applied.json["revision"] == 1
    assert scan(state_table) == before


def test_desired_state_yaml_document_is_applied_like_json(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the document is sent as YAML (with a comment and a YAML date)
    text = "# managed in git\n" + yaml.safe_dump(DOCUMENT, sort_keys=False).replace("'2027-06-30'", "2027-06-30")
    applied = api.put("/v1/desired-state", raw_body=text, headers={"Content-Type": "application/yaml"})
    # THEN it is applied exactly like the JSON document
    assert applied.status == 200, applied.text
    assert len(applied.json["changes"]) == 5
    assert api.get("/v1/credentials/docker-hub").json["spec"]["expires_at"] == "2027-06-30"


def test_desired_state_malformed_yaml_is_400_with_the_position(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML document does not parse
    refused = api.put(
        "/v1/desired-state", raw_body="rules:\n  quay: [upstream_kind\n", headers={"Content-Type": "application/yaml"}
    )
    # THEN it is 400 naming the line and column
    body = assert_error(refused, 400, "BadRequest")
    assert "line" in body["message"]
    assert "column" in body["message"]


# -- validation: everything first, then write all or nothing ------------------------------------------


def test_desired_state_bad_document_names_every_field_and_writes_nothing(api: ApiClient, state_table: str) -> None:
    # GIVEN a desired state
    apply(api, {"version": 1, "rules": {"quay": {"upstream_kind": "quay"}}})
    before = scan(state_table)
    # WHEN a document breaks five rules in four resources
    bad = document()
    bad["rules"]["team/quay"]["upstream_url"] = "docker.io"
    bad["rules"]["docker-hub"]["lifecycle"] = {
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
    bad["rules"]["k8s"] = {"upstream_kind": "k8s", "mirror": True}
    bad["credentials"]["docker-hub"]["username"] = "has space"
    bad["warm_sets"]["base"]["schedule"] = "rate(1 minute)"
    refused = apply(api, bad)
    # THEN it is one 422 listing each field by its document path
    assert_error(refused, 422, "ValidationFailed")
    assert sorted(fields(refused)) == [
        "credentials.docker-hub.username",
        "rules.docker-hub.lifecycle.rules[0].selection.countUnit",
        "rules.k8s.mirror",
        "rules.team/quay.upstream_url",
        "warm_sets.base.schedule",
    ]
    # AND nothing is written: no item, no history, no secret
    assert scan(state_table) == before
    assert secret_names() == []


def test_desired_state_cross_resource_errors_are_all_listed(api: ApiClient, state_table: str) -> None:
    # GIVEN nothing written yet
    # WHEN a document's rule uses a GitHub credential for Docker Hub and ROOT maps an upstream prefix
    bad = document()
    bad["credentials"]["docker-hub"]["upstream_kind"] = "github-container-registry"
    bad["rules"]["ROOT"]["upstream_repository_prefix"] = "library"
    refused = apply(api, bad)
    # THEN both are listed
    assert_error(refused, 422, "ValidationFailed")
    assert sorted(fields(refused)) == ["rules.ROOT.upstream_repository_prefix", "rules.docker-hub.credential"]
    assert scan(state_table) == []


def test_desired_state_references_to_the_store_are_checked(api: ApiClient, state_table: str) -> None:
    # GIVEN nothing written yet
    # WHEN a rule names a credential and a warm set a rule that exist neither in the document nor the store
    refused = apply(
        api,
        {
            "version": 1,
            "rules": {"hub": {"upstream_kind": "docker-hub", "credential": "missing"}},
            "warm_sets": {"ws": {"rule": "nowhere", "images": ["library/node:18"]}},
        },
    )
    # THEN both references are listed, and nothing is written
    assert_error(refused, 422, "ValidationFailed")
    assert sorted(fields(refused)) == ["rules.hub.credential", "warm_sets.ws.rule"]
    assert scan(state_table) == []


def test_desired_state_missing_token_is_listed_with_the_other_errors(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a new credential has no token and a warm set names a rule that does not exist
    refused = apply(
        api,
        {
            "version": 1,
            "credentials": {"hub": {"upstream_kind": "docker-hub", "username": "ci-bot"}},
            "warm_sets": {"ws": {"rule": "nowhere", "images": ["library/node:18"]}},
        },
    )
    # THEN both are listed in one 422
    assert_error(refused, 422, "ValidationFailed")
    assert sorted(fields(refused)) == ["credentials.hub.token", "warm_sets.ws.rule"]


def test_desired_state_new_credential_without_token_is_422(api: ApiClient, state_table: str) -> None:
    # GIVEN nothing written yet
    # WHEN a document creates a credential without its token
    refused = apply(api, {"version": 1, "credentials": {"hub": {"upstream_kind": "docker-hub", "username": "ci-bot"}}})
    # THEN the 422 names credentials.hub.token, and nothing is written
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["credentials.hub.token"]
    assert scan(state_table) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 2}, "version"),
        ({"version": 1, "rule": {}}, "rule"),
        ({"version": 1, "rules": {"quay": {"upstream_kind": "quay"}, "quay/": {"upstream_kind": "quay"}}}, "rules"),
        ({"version": 1, "rules": {"Bad Prefix": {"upstream_kind": "quay"}}}, "rules.Bad Prefix"),
        (
            {"version": 1, "credentials": {"Bad": {"upstream_kind": "docker-hub", "username": "u", "token": TOKEN}}},
            "credentials.Bad",
        ),
    ],
    ids=["version", "unknown-section", "aliased-prefixes", "bad-prefix", "bad-credential-name"],
)
def test_desired_state_malformed_document_is_422_naming_the_field(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    # GIVEN nothing written yet
    # WHEN the document itself is malformed
    refused = apply(api, body)
    # THEN it is 422 naming the field (keys of maps included)
    assert_error(refused, 422, "ValidationFailed")
    assert any(f.startswith(field) for f in fields(refused)), refused.text
    assert secret_names() == []


def test_desired_state_document_over_the_rule_quota_is_refused(api: ApiClient, state_table: str) -> None:
    # GIVEN nothing written yet
    # WHEN a document declares 51 rules for the stack's Region
    refused = apply(api, {"version": 1, "rules": {f"r{i:02d}": {"upstream_kind": "quay"} for i in range(51)}})
    # THEN it is refused naming "rules", and nothing is written
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["rules"]
    assert "50" in body["message"]
    assert scan(state_table) == []


def test_desired_state_document_adding_the_51st_rule_to_the_store_is_409(api: ApiClient) -> None:
    # GIVEN 50 rules in the store
    apply(api, {"version": 1, "rules": {f"r{i:02d}": {"upstream_kind": "quay"} for i in range(50)}})
    # WHEN a document adds one more without prune
    refused = apply(api, {"version": 1, "rules": {"r50": {"upstream_kind": "quay"}}})
    # THEN it is a 409 conflict with the quota, and nothing is written
    assert_error(refused, 409, "Conflict")
    assert fields(refused) == ["rules"]
    assert api.get("/v1/rules/r50").status == 404


# -- revision preconditions ---------------------------------------------------------------------------


def test_desired_state_stale_if_match_is_412_and_writes_nothing(api: ApiClient, state_table: str) -> None:
    # GIVEN a document exported at revision 1, then another change (revision 2)
    apply(api, DOCUMENT)
    etag = api.get("/v1/desired-state").etag
    assert etag == '"1"'
    api.put("/v1/rules/k8s", {"upstream_kind": "k8s"})
    before = scan(state_table)
    # WHEN a change based on the export is applied with its ETag
    changed = document()
    changed["rules"]["ROOT"]["description"] = "based on revision 1"
    changed["credentials"]["docker-hub"]["token"] = NEW_TOKEN
    refused = api.put("/v1/desired-state", changed, headers={"If-Match": etag})
    # THEN it is 412 and nothing is written, the secret included
    body = assert_error(refused, 412, "PreconditionFailed")
    assert "revision 2" in body["message"]
    assert scan(state_table) == before
    assert secret_value("ecr-pullthroughcache/docker-hub") == {"username": "ci-bot", "accessToken": TOKEN}


def test_desired_state_current_if_match_applies(api: ApiClient) -> None:
    # GIVEN a document exported at revision 1
    apply(api, DOCUMENT)
    etag = api.get("/v1/desired-state").etag
    assert etag is not None
    # WHEN a change is applied with that ETag (weak form)
    changed = document(tokens=False)
    changed["rules"]["ROOT"]["description"] = "based on revision 1"
    applied = api.put("/v1/desired-state", changed, headers={"If-Match": f"W/{etag}"})
    # THEN it lands at revision 2
    assert applied.status == 200, applied.text
    assert applied.json["revision"] == 2


@pytest.mark.parametrize(
    "headers", [{"If-Match": "*"}, {"if-match": "*"}, {"If-Match": ""}], ids=["star", "lowercase star", "empty"]
)
def test_desired_state_if_match_any_revision_applies(api: ApiClient, headers: dict[str, str]) -> None:
    # GIVEN a document applied (revision 1)
    apply(api, DOCUMENT)
    # WHEN a change is applied with If-Match "*" or an empty If-Match (any revision)
    changed = document(tokens=False)
    changed["rules"]["ROOT"]["description"] = "any revision"
    applied = api.put("/v1/desired-state", changed, headers=headers)
    # THEN it lands at revision 2
    assert applied.status == 200, applied.text
    assert applied.json["revision"] == 2


def test_desired_state_garbage_if_match_is_422(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the If-Match is not an ETag this API returns
    refused = api.put("/v1/desired-state", DOCUMENT, headers={"If-Match": "yesterday"})
    # THEN it is 422 naming If-Match
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["If-Match"]


# -- large documents: the lease and chunked commits ---------------------------------------------------


def large_document() -> dict[str, Any]:
    """60 changes (more than the 49 one transaction holds): 5 credentials, 50 rules, 5 warm sets."""
    credentials = {
        f"hub{i}": {"upstream_kind": "docker-hub", "username": f"bot{i}", "token": f"{TOKEN}-{i}"} for i in range(5)
    }
    rules: dict[str, Any] = {f"hub{i}": {"upstream_kind": "docker-hub", "credential": f"hub{i}"} for i in range(5)}
    rules |= {f"team/q{i:02d}": {"upstream_kind": "quay", "description": f"rule {i}"} for i in range(45)}
    warm_sets = {f"ws{i}": {"rule": f"hub{i}", "images": [f"library/app{i}:1.0"]} for i in range(5)}
    return {"version": 1, "credentials": credentials, "rules": rules, "warm_sets": warm_sets}


def test_desired_state_large_document_is_applied_and_pruned_completely(api: ApiClient, state_table: str) -> None:
    # GIVEN nothing written yet
    # WHEN a document with 60 changes is applied
    applied = apply(api, large_document())
    # THEN every change is written, in two transactions (revision 2)
    assert applied.status == 200, applied.text
    assert len(applied.json["changes"]) == 60
    assert applied.json["revision"] == 2
    exported = api.get("/v1/desired-state")
    assert exported.etag == '"2"'
    assert (len(exported.json["credentials"]), len(exported.json["rules"]), len(exported.json["warm_sets"])) == (
        5,
        50,
        5,
    )
    # AND every secret holds its token
    assert all(
        secret_value(f"ecr-pullthroughcache/hub{i}") == {"username": f"bot{i}", "accessToken": f"{TOKEN}-{i}"}
        for i in range(5)
    )
    # AND history is complete: one create per resource, with what was written and who wrote it
    entries = all_history(api)
    assert len(entries) == 60
    assert {(e["action"], e["version"], e["by"]) for e in entries} == {("create", 1, ALICE)}
    stored = {
        (k, n): spec
        for k, section in (("rule", "rules"), ("credential", "credentials"), ("warm-set", "warm_sets"))
        for n, spec in exported.json[section].items()
    }
    assert {(e["kind"], e["name"]): e["after"] for e in entries} == stored
    # AND each chunk kept references whole: credentials before rules before warm sets
    revision = {(e["kind"], e["name"]): e["revision"] for e in entries}
    assert max(revision["credential", f"hub{i}"] for i in range(5)) <= min(
        revision["rule", f"hub{i}"] for i in range(5)
    )
    assert max(revision["rule", f"hub{i}"] for i in range(5)) <= min(revision["warm-set", f"ws{i}"] for i in range(5))
    # AND the lease is released
    meta = next(i for i in scan(state_table) if i["pk"]["S"] == "META")
    assert set(meta) == {"pk", "sk", "revision"}
    # AND WHEN an empty document is then applied with prune (60 deletions, two transactions again)
    pruned = apply(api, {"version": 1}, prune="true", allowEmpty="true")
    # THEN all 60 are deleted, in dependency order, and each deletion is in history
    assert pruned.status == 200, pruned.text
    kinds = [c["kind"] for c in pruned.json["changes"]]
    assert kinds == ["warm-set"] * 5 + ["rule"] * 50 + ["credential"] * 5
    assert api.get("/v1/desired-state").json == {"version": 1, "rules": {}, "credentials": {}, "warm_sets": {}}
    entries = all_history(api)
    assert sorted(e["action"] for e in entries) == ["create"] * 60 + ["delete"] * 60
    assert pruned.json["revision"] == 4
    assert not [i for i in scan(state_table) if i["pk"]["S"].startswith("DESIRED#")]
