"""POST /v1/import: existing ECR rules and templates adopted into the desired state, then by the reconciler."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import FakeLambdaContext
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

LIFECYCLE = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged after 7 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
            "action": {"type": "expire"},
        }
    ]
}


@pytest.fixture
def api(state_table: str, lambda_context: FakeLambdaContext) -> ApiClient:
    return ApiClient(lambda_context)


def _secret(name: str) -> str:
    sm = boto3.client("secretsmanager")
    return sm.create_secret(Name=name, SecretString=json.dumps({"username": "ci", "accessToken": "t0ken"}))["ARN"]


def test_import_adopts_rules_and_templates_made_by_hand(api: ApiClient) -> None:
    # GIVEN rules made by hand: quay with a creation template, ghcr with a credential, k8s plain
    ecr = boto3.client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    ecr.create_repository_creation_template(
        prefix="quay",
        appliedFor=["PULL_THROUGH_CACHE"],
        lifecyclePolicy=json.dumps(LIFECYCLE),
        imageTagMutability="MUTABLE",
    )
    arn = _secret("ecr-pullthroughcache/ghcr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ghcr", upstreamRegistryUrl="ghcr.io", credentialArn=arn)
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")

    # WHEN an import is previewed
    preview = api.call("POST", "/v1/import", query={"dryRun": "true"})
    # THEN quay and k8s would be imported, ghcr waits for its credential, and nothing is written
    assert preview.status == 200, preview.text
    by_prefix = {r["prefix"]: r for r in preview.json["rules"]}
    assert by_prefix["quay"]["imported"] and by_prefix["k8s"]["imported"]
    assert not by_prefix["ghcr"]["imported"]
    assert "PUT /v1/credentials/ghcr" in by_prefix["ghcr"]["reason"]
    assert api.get("/v1/rules").json["items"] == []

    # WHEN the credential is declared without a token (its existing secret is adopted) and the import runs
    cred = api.put("/v1/credentials/ghcr", {"upstream_kind": "github-container-registry", "username": "ci"})
    assert cred.status == 201, cred.text
    assert cred.json["secret_arn"] == arn
    done = api.call("POST", "/v1/import")
    assert done.status == 200, done.text
    assert {r["prefix"] for r in done.json["rules"] if r["imported"]} == {"quay", "k8s", "ghcr"}

    # THEN the desired rules match ECR: the template's lifecycle came along, deletion is retained
    quay = api.get("/v1/rules/quay").json
    assert quay["spec"]["deletion_policy"] == "retain"
    assert quay["rendered"]["lifecycle_policy"]["rules"][0]["selection"]["countNumber"] == 7
    # AND the plan adopts the rules and quay's template as they are; only the templates the other rules
    # lack are created (every managed rule gets one)
    plan = api.get("/v1/plan").json
    actions = {(a["kind"], a["target"]) for a in plan["actions"]}
    assert actions == {
        ("adopt_rule", "quay"),
        ("adopt_rule", "k8s"),
        ("adopt_rule", "ghcr"),
        ("adopt_template", "quay"),
        ("create_template", "k8s"),
        ("create_template", "ghcr"),
    }, plan["actions"]


def test_import_again_changes_nothing(api: ApiClient) -> None:
    boto3.client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    assert api.call("POST", "/v1/import").status == 200
    again = api.call("POST", "/v1/import")
    assert again.status == 200
    assert [r["reason"] for r in again.json["rules"]] == ["already in the desired state"]
    assert again.json["revision"] is None


def test_import_rejects_unknown_regions_field(api: ApiClient) -> None:
    bad = api.call("POST", "/v1/import", body={"regions": ["not a region"]})
    assert bad.status == 422
    assert bad.json["details"][0]["field"].startswith("regions")


def test_credential_without_token_and_without_secret_needs_token(api: ApiClient) -> None:
    # GIVEN no secret ecr-pullthroughcache/hub WHEN a credential is created without a token THEN 422 on token
    r = api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "ci"})
    assert r.status == 422
    assert r.json["details"][0]["field"] == "token"
