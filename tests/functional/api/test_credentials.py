"""`/v1/credentials` through the real ``lambda_handler``, on moto's DynamoDB and Secrets Manager.

The token is write-only: it goes to the secret ``ecr-pullthroughcache/<name>`` and nowhere else
(``test_secrets_never_leak.py`` hunts for it everywhere; here we check the behaviour of the routes).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, fields
from tests.functional.api.aws_support import aws, scan, secret_value
from tests.functional.api.client import ALICE, ApiClient, ApiResponse

pytestmark = pytest.mark.functional


BOB = "arn:aws:iam::123456789012:user/bob"
HUB: dict[str, Any] = {"upstream_kind": "docker-hub", "username": "ci-bot"}
TOKEN = "dckr_pat_credentials_test_0001"
NEW_TOKEN = "dckr_pat_credentials_test_0002"
SECRET = "ecr-pullthroughcache/docker-hub"


def history(api: ApiClient, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/history", query={"kind": "credential", "name": name}).json["items"]
    return items


def create(api: ApiClient) -> ApiResponse:
    created = api.put("/v1/credentials/docker-hub", {**HUB, "token": TOKEN})
    assert created.status == 201, created.text
    return created


def test_credential_put_with_token_creates_it_and_its_secret(api: ApiClient) -> None:
    # GIVEN no credentials
    # WHEN a Docker Hub credential is created with its token
    created = create(api)
    # THEN it is 201 at version 1, with the secret's name and ARN but never the token
    assert created.etag == '"1"'
    body = created.json
    assert body["name"] == "docker-hub"
    assert body["version"] == 1
    assert body["updated_by"] == ALICE
    assert body["secret_name"] == SECRET
    assert body["secret_arn"].startswith(f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET}-")
    assert body["referenced_by"] == []
    assert "token" not in body["spec"]
    assert "token" not in body
    # AND the secret holds the username and token ECR reads
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": TOKEN}
    # AND the credential reads back (and lists) without the token
    read = api.get("/v1/credentials/docker-hub")
    assert read.status == 200
    assert read.etag == '"1"'
    assert read.json == body
    assert api.get("/v1/credentials").json["items"] == [body]


def test_credential_new_one_needs_the_token(api: ApiClient) -> None:
    # GIVEN no credentials
    # WHEN a credential is created without a token
    refused = api.put("/v1/credentials/docker-hub", HUB)
    # THEN it is 422 naming "token", and neither item nor secret exists
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["token"]
    assert api.get("/v1/credentials/docker-hub").status == 404
    assert aws("secretsmanager").list_secrets()["SecretList"] == []


def test_credential_metadata_update_without_token_keeps_the_secret(api: ApiClient) -> None:
    # GIVEN a credential
    create(api)
    # WHEN Bob changes its metadata without sending the token
    updated = api.put("/v1/credentials/docker-hub", {**HUB, "expires_at": "2027-06-30"}, caller=BOB)
    # THEN it is 200 at version 2 and the secret still holds the original token
    assert updated.status == 200, updated.text
    assert updated.etag == '"2"'
    assert updated.json["spec"]["expires_at"] == "2027-06-30"
    assert updated.json["updated_by"] == BOB
    assert updated.json["secret_arn"] == api.get("/v1/credentials/docker-hub").json["secret_arn"]
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": TOKEN}


def test_credential_update_with_token_replaces_the_secret_value(api: ApiClient) -> None:
    # GIVEN a credential
    create(api)
    # WHEN the same metadata is sent with a new token
    updated = api.put("/v1/credentials/docker-hub", {**HUB, "token": NEW_TOKEN})
    # THEN a new version is written (the token changed) and the secret holds the new token
    assert updated.status == 200, updated.text
    assert updated.json["version"] == 2
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": NEW_TOKEN}
    assert [h["version"] for h in history(api, "docker-hub")] == [2, 1]


def test_credential_username_change_needs_the_token(api: ApiClient) -> None:
    # GIVEN a credential
    create(api)
    # WHEN its username changes without a token
    refused = api.put("/v1/credentials/docker-hub", {**HUB, "username": "other-bot"})
    # THEN it is 422 naming "token", and nothing changes
    body = assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["token"]
    assert "username" in body["message"]
    assert api.get("/v1/credentials/docker-hub").json["version"] == 1
    # AND with the token it goes through, secret included
    accepted = api.put("/v1/credentials/docker-hub", {**HUB, "username": "other-bot", "token": NEW_TOKEN})
    assert accepted.status == 200, accepted.text
    assert secret_value(SECRET) == {"username": "other-bot", "accessToken": NEW_TOKEN}


def test_credential_put_that_changes_nothing_is_200_without_history(api: ApiClient) -> None:
    # GIVEN a credential
    create(api)
    # WHEN the same metadata is sent again without a token
    again = api.put("/v1/credentials/docker-hub", HUB)
    # THEN it is 200 with the same version and no new history entry
    assert again.status == 200, again.text
    assert again.etag == '"1"'
    assert len(history(api, "docker-hub")) == 1


def test_credential_list_names_the_rules_that_use_it(api: ApiClient) -> None:
    # GIVEN a credential used by two rules, and one used by none
    create(api)
    api.put("/v1/credentials/spare", {**HUB, "token": NEW_TOKEN})
    for prefix in ("docker-hub", "team%2Fhub"):
        assert api.put(f"/v1/rules/{prefix}", {"upstream_kind": "docker-hub", "credential": "docker-hub"}).status == 201
    # WHEN the credentials are listed and read
    listed = api.get("/v1/credentials").json["items"]
    # THEN each names the prefixes of the rules that use it
    assert [(c["name"], c["referenced_by"]) for c in listed] == [
        ("docker-hub", ["docker-hub", "team/hub"]),
        ("spare", []),
    ]
    assert api.get("/v1/credentials/docker-hub").json["referenced_by"] == ["docker-hub", "team/hub"]


def test_credential_in_use_cannot_be_deleted(api: ApiClient) -> None:
    # GIVEN a credential used by two rules
    create(api)
    for prefix in ("docker-hub", "team%2Fhub"):
        api.put(f"/v1/rules/{prefix}", {"upstream_kind": "docker-hub", "credential": "docker-hub"})
    # WHEN it is deleted
    refused = api.delete("/v1/credentials/docker-hub")
    # THEN it is 409 naming both rules, and credential and secret stay
    body = assert_error(refused, 409, "Conflict")
    assert "docker-hub, team/hub" in body["message"]
    assert fields(refused) == ["docker-hub", "team/hub"]
    assert api.get("/v1/credentials/docker-hub").status == 200
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": TOKEN}


def test_credential_delete_schedules_the_secret_for_deletion(api: ApiClient) -> None:
    # GIVEN an unused credential
    create(api)
    # WHEN it is deleted
    deleted = api.delete("/v1/credentials/docker-hub")
    # THEN it is 204, the credential is gone and its secret is scheduled for deletion (recoverable)
    assert deleted.status == 204
    assert_error(api.get("/v1/credentials/docker-hub"), 404, "NotFound")
    described = aws("secretsmanager").describe_secret(SecretId=SECRET)
    assert "DeletedDate" in described
    assert [h["action"] for h in history(api, "docker-hub")] == ["delete", "create"]


@pytest.mark.parametrize("route", ["DELETE", "prune"])
def test_credential_delete_when_its_secret_is_already_scheduled_for_deletion(api: ApiClient, route: str) -> None:
    # GIVEN a credential whose secret someone deleted in the console (scheduled for deletion)
    create(api)
    aws("secretsmanager").delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)
    # WHEN the credential is deleted, directly or by a document that omits it
    if route == "DELETE":
        deleted = api.delete("/v1/credentials/docker-hub")
    else:
        deleted = api.put("/v1/desired-state", {"version": 1}, query={"prune": "true", "allowEmpty": "true"})
    # THEN it goes, and the secret stays scheduled for deletion
    assert deleted.status in (200, 204), deleted.text
    assert api.get("/v1/credentials/docker-hub").status == 404
    assert "DeletedDate" in aws("secretsmanager").describe_secret(SecretId=SECRET)


def test_credential_delete_whose_secret_is_gone_still_deletes(api: ApiClient) -> None:
    # GIVEN a credential whose secret was removed for good outside ecrcache
    create(api)
    aws("secretsmanager").delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    # WHEN the credential is deleted
    deleted = api.delete("/v1/credentials/docker-hub")
    # THEN it goes
    assert deleted.status == 204, deleted.text
    assert api.get("/v1/credentials/docker-hub").status == 404


def test_credential_delete_of_an_unknown_one_is_404(api: ApiClient) -> None:
    # GIVEN no credentials
    # WHEN one is deleted
    # THEN it is 404
    assert_error(api.delete("/v1/credentials/nope"), 404, "NotFound")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"upstream_kind": "quay", "username": "u", "token": TOKEN}, "upstream_kind"),
        ({"upstream_kind": "docker-hub", "username": "has space", "token": TOKEN}, "username"),
        ({"upstream_kind": "docker-hub", "username": "a:b", "token": TOKEN}, "username"),
        ({"upstream_kind": "docker-hub", "username": "u", "token": ""}, "token"),
        ({"upstream_kind": "docker-hub", "username": "u", "token": "with\nnewline"}, "token"),
        ({"upstream_kind": "docker-hub", "username": "u", "token": TOKEN, "password": "x"}, "password"),
        ({"upstream_kind": "docker-hub", "username": "u", "token": TOKEN, "expires_at": "soon"}, "expires_at"),
        (
            {
                "upstream_kind": "github-container-registry",
                "username": "u",
                "token": TOKEN,
                "rotation": {"strategy": "dockerhub-pat"},
            },
            "rotation.schedule",
        ),
    ],
    ids=[
        "kind-without-credentials",
        "username-space",
        "username-colon",
        "empty-token",
        "token-newline",
        "unknown",
        "date",
        "rotation",
    ],
)
def test_credential_invalid_body_is_422_naming_the_field(api: ApiClient, body: dict[str, Any], field: str) -> None:
    # GIVEN no credentials
    # WHEN a credential body breaks a rule
    refused = api.put("/v1/credentials/docker-hub", body)
    # THEN it is 422 naming the field, and no secret is created
    assert_error(refused, 422, "ValidationFailed")
    assert field in fields(refused)
    assert aws("secretsmanager").list_secrets()["SecretList"] == []


@pytest.mark.parametrize("name", ["Docker-Hub", "-hub", "a" * 49, "hub%2Fx", "hub_"])
def test_credential_invalid_name_is_422_naming_name(api: ApiClient, name: str) -> None:
    # GIVEN no credentials
    # WHEN a credential is created under a name Secrets Manager or EventBridge would refuse
    refused = api.put(f"/v1/credentials/{name}", {**HUB, "token": TOKEN})
    # THEN it is 422 naming "name", and no secret is created
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["name"]
    assert aws("secretsmanager").list_secrets()["SecretList"] == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Match": '"1"'}, 200),
        ({"If-Match": '"3"'}, 412),
        ({"If-None-Match": "*"}, 412),
    ],
    ids=["current", "stale", "create-only"],
)
def test_credential_put_honours_conditional_headers(api: ApiClient, headers: dict[str, str], status: int) -> None:
    # GIVEN a credential at version 1
    create(api)
    # WHEN a new token is sent with conditional headers
    response = api.put("/v1/credentials/docker-hub", {**HUB, "token": NEW_TOKEN}, headers=headers)
    # THEN a failed precondition is 412 and the secret keeps the old token
    assert response.status == status, response.text
    expected = NEW_TOKEN if status == 200 else TOKEN
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": expected}


def test_credential_delete_with_stale_if_match_is_412(api: ApiClient) -> None:
    # GIVEN a credential at version 1
    create(api)
    # WHEN it is deleted with If-Match "2"
    refused = api.delete("/v1/credentials/docker-hub", headers={"If-Match": '"2"'})
    # THEN it is 412; credential and secret stay
    assert_error(refused, 412, "PreconditionFailed")
    assert api.get("/v1/credentials/docker-hub").status == 200
    assert "DeletedDate" not in aws("secretsmanager").describe_secret(SecretId=SECRET)


# -- brownfield: a secret that already exists ---------------------------------------------------------


def existing_secret(username: str = "legacy-bot") -> str:
    """A secret ecr-pullthroughcache/docker-hub made outside ecrcache (by hand, by Terraform)."""
    value = json.dumps({"username": username, "accessToken": "made-by-hand"})
    arn: str = aws("secretsmanager").create_secret(Name=SECRET, SecretString=value)["ARN"]
    return arn


def test_credential_without_token_adopts_an_existing_secret(api: ApiClient) -> None:
    # GIVEN a secret ecr-pullthroughcache/docker-hub that ecrcache did not create
    arn = existing_secret()
    # WHEN the credential is created without a token
    adopted = api.put("/v1/credentials/docker-hub", HUB)
    # THEN it is created pointing at that secret, whose value is left alone
    assert adopted.status == 201, adopted.text
    assert adopted.json["secret_arn"] == arn
    assert secret_value(SECRET) == {"username": "legacy-bot", "accessToken": "made-by-hand"}


def test_credential_without_token_does_not_adopt_a_secret_scheduled_for_deletion(api: ApiClient) -> None:
    # GIVEN a credential deleted a moment ago (its secret is scheduled for deletion)
    create(api)
    api.delete("/v1/credentials/docker-hub")
    # WHEN it is created again without a token
    refused = api.put("/v1/credentials/docker-hub", HUB)
    # THEN the secret is not adopted: the token is needed
    assert_error(refused, 422, "ValidationFailed")
    assert fields(refused) == ["token"]


def test_credential_document_without_token_adopts_an_existing_secret_too(api: ApiClient) -> None:
    # GIVEN a secret ecr-pullthroughcache/docker-hub that ecrcache did not create
    arn = existing_secret()
    # WHEN a document declares the credential without a token
    applied = api.put("/v1/desired-state", {"version": 1, "credentials": {"docker-hub": HUB}})
    # THEN it is adopted, as through PUT /v1/credentials/docker-hub
    assert applied.status == 200, applied.text
    assert api.get("/v1/credentials/docker-hub").json["secret_arn"] == arn


# -- a credential created again after its deletion (issue 10, item 3) ------------------------------------


def deleted_credential(api: ApiClient) -> str:
    """A credential that a rule used, then the rule and the credential deleted: its secret is scheduled
    for deletion (recovery window). Returns the secret's ARN."""
    arn: str = create(api).json["secret_arn"]
    assert api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "docker-hub"}).status == 201
    assert api.delete("/v1/rules/docker-hub").status == 204
    assert api.delete("/v1/credentials/docker-hub").status == 204
    assert "DeletedDate" in aws("secretsmanager").describe_secret(SecretId=SECRET)
    return arn


def recreate(api: ApiClient, route: str) -> ApiResponse:
    """The credential again with a new token: ``credentials set`` (PUT) or ``apply`` (a document)."""
    if route == "credentials set":
        return api.put("/v1/credentials/docker-hub", {**HUB, "token": NEW_TOKEN})
    document = {
        "version": 1,
        "credentials": {"docker-hub": {**HUB, "token": NEW_TOKEN}},
        "rules": {"docker-hub": {"upstream_kind": "docker-hub", "credential": "docker-hub"}},
    }
    return api.put("/v1/desired-state", document)


@pytest.mark.parametrize("route", ["credentials set", "apply"])
def test_credential_recreated_after_delete_restores_its_secret_with_the_new_token(api: ApiClient, route: str) -> None:
    # GIVEN a credential deleted after its rule (its secret scheduled for deletion)
    arn = deleted_credential(api)
    # WHEN it is created again with a new token
    recreated = recreate(api, route)
    # THEN it is written, pointing at the same secret, which is no longer scheduled for deletion
    # and holds the new token as AWSCURRENT (no staged value left over)
    assert recreated.status in (200, 201), recreated.text
    credential = api.get("/v1/credentials/docker-hub").json
    assert credential["secret_arn"] == arn
    described = aws("secretsmanager").describe_secret(SecretId=SECRET)
    assert "DeletedDate" not in described
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": NEW_TOKEN}
    assert not any("ECRCACHE_PENDING" in labels for labels in described["VersionIdsToStages"].values())
    # AND a rule can use it again
    assert api.put("/v1/rules/docker-hub", {"upstream_kind": "docker-hub", "credential": "docker-hub"}).status in (
        200,
        201,
    )


# -- a credential whose secret an ECR rule still uses (issue 10, item 4) --------------------------------

RETAINED = {"upstream_kind": "docker-hub", "credential": "docker-hub", "deletion_policy": "retain"}


def ecr_rule_on_the_secret(arn: str, prefix: str = "docker-hub", *, owned: bool, state_table: str) -> None:
    """An ECR rule ``prefix`` whose credentialArn is ``arn``: created by the reconciler (``owned``, as
    the status store records it) or by hand."""
    from ecrcache.adapters.status_store import DynamoDbStatusStore

    aws("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="registry-1.docker.io", credentialArn=arn
    )
    if owned:
        DynamoDbStatusStore(state_table).record_owned("us-east-1", "rule", prefix)


def retained_rule(api: ApiClient, state_table: str) -> str:
    """Credential docker-hub, its rule (deletion_policy retain) in ECR, then the desired rule deleted:
    ECR keeps the rule, which still uses the secret. Returns the secret's ARN."""
    arn: str = create(api).json["secret_arn"]
    assert api.put("/v1/rules/docker-hub", RETAINED).status == 201
    ecr_rule_on_the_secret(arn, owned=True, state_table=state_table)
    assert api.delete("/v1/rules/docker-hub").status == 204
    return arn


def assert_credential_and_secret_kept(api: ApiClient) -> None:
    assert api.get("/v1/credentials/docker-hub").status == 200
    assert "DeletedDate" not in aws("secretsmanager").describe_secret(SecretId=SECRET)
    assert secret_value(SECRET) == {"username": "ci-bot", "accessToken": TOKEN}


@pytest.mark.parametrize("route", ["DELETE", "prune", "prune dry run"])
def test_credential_used_by_a_rule_retained_in_ecr_cannot_be_deleted(
    api: ApiClient, state_table: str, route: str
) -> None:
    # GIVEN a credential whose rule was deleted with deletion_policy retain: the ECR rule stays and uses it
    retained_rule(api, state_table)
    before = scan(state_table)
    # WHEN the credential is deleted, directly or by a prune that omits it (dry run or not)
    if route == "DELETE":
        refused = api.delete("/v1/credentials/docker-hub")
    else:
        query = {"prune": "true", "allowEmpty": "true", **({"dryRun": "true"} if route == "prune dry run" else {})}
        refused = api.put("/v1/desired-state", {"version": 1}, query=query)
    # THEN it is 409 naming the ECR rule (prefix and Region) and saying what to do; nothing is written,
    # and the secret is not scheduled for deletion
    body = assert_error(refused, 409, "Conflict")
    assert "docker-hub (us-east-1, retained in ECR by ecrcache" in body["message"]
    assert (
        "aws ecr delete-pull-through-cache-rule --ecr-repository-prefix docker-hub --region us-east-1"
        in (body["message"])
    )
    assert "declare the rule again" in body["message"]
    assert [(d["field"], d["message"]) for d in body["details"]] == [
        (
            "docker-hub",
            "pull-through cache rule in ECR (us-east-1), retained by ecrcache after its desired rule was "
            "deleted, uses the secret of credential 'docker-hub'",
        )
    ]
    assert scan(state_table) == before
    assert_credential_and_secret_kept(api)


def test_credential_used_by_a_hand_made_ecr_rule_cannot_be_deleted(api: ApiClient, state_table: str) -> None:
    # GIVEN a credential whose secret a rule made by hand in ECR uses (never managed by ecrcache)
    arn = create(api).json["secret_arn"]
    ecr_rule_on_the_secret(arn, "by-hand", owned=False, state_table=state_table)
    # WHEN it is deleted
    refused = api.delete("/v1/credentials/docker-hub")
    # THEN it is 409 naming that rule too: scheduling the secret's deletion would break it
    body = assert_error(refused, 409, "Conflict")
    assert "by-hand (us-east-1, not managed by ecrcache)" in body["message"]
    assert fields(refused) == ["by-hand"]
    assert_credential_and_secret_kept(api)


def test_credential_can_be_deleted_once_the_retained_ecr_rule_is_gone(api: ApiClient, state_table: str) -> None:
    # GIVEN a credential whose retained ECR rule someone then deleted in ECR
    retained_rule(api, state_table)
    aws("ecr").delete_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub")
    # WHEN it is deleted
    deleted = api.delete("/v1/credentials/docker-hub")
    # THEN it goes, and its secret is scheduled for deletion
    assert deleted.status == 204, deleted.text
    assert "DeletedDate" in aws("secretsmanager").describe_secret(SecretId=SECRET)


@pytest.mark.parametrize("route", ["DELETE", "prune"])
def test_credential_of_a_rule_ecrcache_is_deleting_from_ecr_can_be_deleted(
    api: ApiClient, state_table: str, route: str
) -> None:
    # GIVEN a credential and its rule with deletion_policy delete, in ECR (owned) and not yet reconciled
    arn = create(api).json["secret_arn"]
    assert api.put("/v1/rules/docker-hub", {**RETAINED, "deletion_policy": "delete"}).status == 201
    ecr_rule_on_the_secret(arn, owned=True, state_table=state_table)
    # WHEN the rule and the credential are deleted (one after the other, or by one prune)
    if route == "DELETE":
        assert api.delete("/v1/rules/docker-hub").status == 204
        deleted = api.delete("/v1/credentials/docker-hub")
    else:
        deleted = api.put("/v1/desired-state", {"version": 1}, query={"prune": "true", "allowEmpty": "true"})
    # THEN it is allowed: the reconciler deletes that ECR rule (deletion_policy delete)
    assert deleted.status in (200, 204), deleted.text
    assert api.get("/v1/credentials/docker-hub").status == 404


def test_credential_delete_when_ecr_cannot_be_read_writes_nothing(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credential, and ECR throttling DescribePullThroughCacheRules
    from botocore.exceptions import ClientError

    from functions.api.app import registry

    create(api)
    client = registry("us-east-1").client
    error: Any = {
        "Error": {"Code": "ThrottlingException", "Message": "slow down"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }

    def throttled(**kwargs: Any) -> Any:
        raise ClientError(error, "DescribePullThroughCacheRules")

    monkeypatch.setattr(client, "describe_pull_through_cache_rules", throttled)
    # WHEN it is deleted
    refused = api.delete("/v1/credentials/docker-hub")
    # THEN it is 503 naming the ECR call (whether a rule still uses the secret is unknown), and nothing changes
    body = assert_error(refused, 503, "Retryable")
    assert "ECR DescribePullThroughCacheRules" in body["message"]
    assert body["message"].startswith("could not read ECR in us-east-1 to check which rules still use the secret of")
    monkeypatch.undo()
    assert_credential_and_secret_kept(api)
