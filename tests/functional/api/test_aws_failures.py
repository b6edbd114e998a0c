"""Every AWS call of the api function, failing: throttling, 5xx, access denied, connection errors.

The adapters' boto3 clients are module-level and cached, so a failure is injected by replacing one
method on the very client the service uses (``service.store.client``, ``service.secrets.client``).
Expected: what clears by itself is 503 ``Retryable`` with ``Retry-After``; what does not is 500
``Terminal`` naming the call; and nothing is ever half-written: replaying the history gives exactly
the desired items, and no staged secret value becomes current.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.functional.api.assertions import assert_error
from tests.functional.api.aws_support import aws, scan, secret_stages, secret_value
from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional


HUB: dict[str, Any] = {"upstream_kind": "docker-hub", "username": "ci-bot"}
TOKEN = "dckr_pat_aws_failures_0001"
NEW_TOKEN = "dckr_pat_aws_failures_0002"
SECRET = "ecr-pullthroughcache/hub"
STAGING_LABEL = "ECRCACHE_PENDING"

RETRYABLE = [
    ("ProvisionedThroughputExceededException", 400),
    ("ThrottlingException", 400),
    ("InternalServerError", 500),
    ("ServiceUnavailable", 503),
]
TERMINAL = [("AccessDeniedException", 400)]


def client_error(code: str, status: int, operation: str) -> ClientError:
    error: Any = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(error, operation)


def failing(exc: Exception, *, times: int | None = None, then: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A client method that raises ``exc`` (``times`` times, then calls ``then``; always when ``times`` is None)."""
    calls = {"n": 0}

    def method(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if times is None or calls["n"] <= times:
            raise exc
        assert then is not None
        return then(*args, **kwargs)

    return method


def dynamodb() -> Any:
    from functions.api.app import service

    return service.store.client  # type: ignore[attr-defined]


def secretsmanager() -> Any:
    from functions.api.app import service

    return service.secrets.client  # type: ignore[attr-defined]


def assert_consistent(table: str) -> None:
    """No item without history, no history without item: replaying history gives the desired items."""
    items = scan(table)
    history = sorted((i for i in items if i["pk"]["S"].startswith("HISTORY#")), key=lambda i: int(i["revision"]["N"]))
    replayed: dict[tuple[str, str], tuple[int, Any]] = {}
    for entry in history:
        key = (entry["kind"]["S"], entry["name"]["S"])
        if entry["action"]["S"] == "delete":
            replayed.pop(key, None)
        else:
            replayed[key] = (int(entry["version"]["N"]), json.loads(entry["after"]["S"]))
    desired = {
        (i["kind"]["S"], i["name"]["S"]): (int(i["version"]["N"]), json.loads(i["spec"]["S"]))
        for i in items
        if i["pk"]["S"].startswith("DESIRED#")
    }
    assert desired == replayed
    meta = [i for i in items if i["pk"]["S"] == "META"]
    revision = int(meta[0]["revision"]["N"]) if meta else 0
    assert revision == max((int(e["revision"]["N"]) for e in history), default=0)
    assert not any("lock_owner" in m for m in meta), "the lease was left behind"


def assert_credential_kept(api: ApiClient, table: str) -> None:
    """The credential ``hub`` is still there: its token current, its secret not scheduled for deletion,
    and the table consistent."""
    assert api.get("/v1/credentials/hub").status == 200
    assert "DeletedDate" not in aws("secretsmanager").describe_secret(SecretId=SECRET)
    assert secret_value(SECRET)["accessToken"] == TOKEN
    assert_consistent(table)


def secret_exists() -> bool:
    secrets = aws("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"]
    return any(s["Name"] == SECRET for s in secrets)


# -- DynamoDB -----------------------------------------------------------------------------------------

DYNAMODB_CALLS = [("get_item", "GetItem"), ("query", "Query"), ("transact_write_items", "TransactWriteItems")]


# Every retryable error on the commit, one of them on each read of the snapshot.
RETRYABLE_CASES = [
    pytest.param("transact_write_items", "TransactWriteItems", code, status, id=f"transact_write_items-{code}")
    for code, status in RETRYABLE
] + [
    pytest.param("get_item", "GetItem", "ProvisionedThroughputExceededException", 400, id="get_item"),
    pytest.param("query", "Query", "InternalServerError", 500, id="query"),
]


@pytest.mark.parametrize(("method", "operation", "code", "status"), RETRYABLE_CASES)
def test_aws_dynamodb_retryable_failure_is_503_and_writes_nothing(
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    method: str,
    operation: str,
    code: str,
    status: int,
) -> None:
    # GIVEN a rule, and DynamoDB failing one call with an error that clears by itself
    api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    before = scan(state_table)
    monkeypatch.setattr(dynamodb(), method, failing(client_error(code, status, operation)))
    # WHEN the rule is updated
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay", "description": "changed"})
    # THEN it is 503 Retryable with Retry-After, naming the call, and nothing was written
    body = assert_error(response, 503, "Retryable")
    assert f"DynamoDB {operation}" in body["message"]
    assert code in body["message"]
    monkeypatch.undo()
    assert scan(state_table) == before


@pytest.mark.parametrize(("method", "operation"), DYNAMODB_CALLS, ids=[c[0] for c in DYNAMODB_CALLS])
def test_aws_dynamodb_access_denied_is_500_terminal_naming_the_call(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, method: str, operation: str
) -> None:
    # GIVEN a rule, and the function's role missing a DynamoDB permission
    api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    before = scan(state_table)
    monkeypatch.setattr(dynamodb(), method, failing(client_error("AccessDeniedException", 400, operation)))
    # WHEN the rule is deleted
    response = api.delete("/v1/rules/quay")
    # THEN it is 500 Terminal naming the call and the error, and nothing was written
    body = assert_error(response, 500, "Terminal")
    assert body["message"] == f"DynamoDB {operation} failed with AccessDeniedException"
    assert "Retry-After" not in response.headers
    monkeypatch.undo()
    assert scan(state_table) == before


@pytest.mark.parametrize(
    ("path", "method", "operation"),
    [
        ("/v1/rules", "query", "Query"),
        ("/v1/rules/quay", "get_item", "GetItem"),
        ("/v1/desired-state", "get_item", "GetItem"),
        ("/v1/history", "query", "Query"),
    ],
)
@pytest.mark.parametrize(
    ("code", "status", "expected"), [("ThrottlingException", 400, 503), ("AccessDeniedException", 400, 500)]
)
def test_aws_dynamodb_failure_on_reads(
    api: ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    *,
    path: str,
    method: str,
    operation: str,
    code: str,
    status: int,
    expected: int,
) -> None:
    # GIVEN a rule, and DynamoDB failing the read call
    api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    monkeypatch.setattr(dynamodb(), method, failing(client_error(code, status, operation)))
    # WHEN a read route is called
    response = api.get(path)
    # THEN it is 503 or 500 by the error, naming the call
    body = assert_error(response, expected, "Retryable" if expected == 503 else "Terminal")
    assert f"DynamoDB {operation}" in body["message"]


def test_aws_dynamodb_connection_error_is_503(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB cannot be reached when committing
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(EndpointConnectionError(endpoint_url="https://dynamodb"))
    )
    # WHEN a rule is created
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN it is 503 naming the call, and nothing is written
    body = assert_error(response, 503, "Retryable")
    assert "DynamoDB TransactWriteItems" in body["message"]
    monkeypatch.undo()
    assert_consistent(state_table)
    assert api.get("/v1/rules/quay").status == 404


def cancelled(*reasons: str) -> ClientError:
    error: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": [{"Code": r} for r in reasons],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(error, "TransactWriteItems")


def test_aws_dynamodb_transaction_throttled_once_is_retried(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the first transaction is cancelled for throttling, the next ones go through
    client = dynamodb()
    real = client.transact_write_items
    monkeypatch.setattr(
        client, "transact_write_items", failing(cancelled("None", "ThrottlingError", "None"), times=1, then=real)
    )
    # WHEN a rule is created
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN the service retried and the write landed once
    assert response.status == 201, response.text
    assert len(api.get("/v1/history").json["items"]) == 1
    assert_consistent(state_table)


def test_aws_dynamodb_transaction_always_throttled_is_503(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN every transaction is cancelled for throttling
    monkeypatch.setattr(dynamodb(), "transact_write_items", failing(cancelled("None", "ThrottlingError", "None")))
    # WHEN a rule is created
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN after its retries the service answers 503, and nothing is written
    assert_error(response, 503, "Retryable")
    monkeypatch.undo()
    assert_consistent(state_table)
    assert api.get("/v1/rules/quay").status == 404


def test_aws_dynamodb_failure_while_checking_the_lease_is_503(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the commit loses on the revision, and the GetItem that checks the lease is throttled
    client = dynamodb()
    real_get = client.get_item
    state = {"commit_failed": False}

    def get_item(**kwargs: Any) -> Any:
        if state["commit_failed"]:
            raise client_error("ThrottlingException", 400, "GetItem")
        return real_get(**kwargs)

    def transact(**kwargs: Any) -> Any:
        state["commit_failed"] = True
        raise cancelled("ConditionalCheckFailed", "None", "None")

    monkeypatch.setattr(client, "get_item", get_item)
    monkeypatch.setattr(client, "transact_write_items", transact)
    # WHEN a rule is created
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN it is the same 503 as any other throttled call
    assert_error(response, 503, "Retryable")


# -- the lease (documents larger than one transaction) ------------------------------------------------


def large_document(rules: int = 60) -> dict[str, Any]:
    return {"version": 1, "rules": {f"q{i:02d}": {"upstream_kind": "quay"} for i in range(min(rules, 50))}} | (
        {"credentials": {f"c{i:02d}": {**HUB, "token": f"{TOKEN}-{i}"} for i in range(rules - 50)}}
        if rules > 50
        else {}
    )


def hold_lease(table: str, owner: str, expires_in: int) -> None:
    aws("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": "META"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET lock_owner = :o, lock_expires = :e, revision = if_not_exists(revision, :z)",
        ExpressionAttributeValues={
            ":o": {"S": owner},
            ":e": {"N": str(int(time.time()) + expires_in)},
            ":z": {"N": "0"},
        },
    )


def test_aws_lease_held_by_another_apply_refuses_a_large_document(api: ApiClient, state_table: str) -> None:
    # GIVEN another apply holds the lease
    hold_lease(state_table, "apply-other", expires_in=60)
    # WHEN a document with 60 changes is applied
    response = api.put("/v1/desired-state", large_document())
    # THEN it is refused as locked, nothing is written, and the other apply keeps its lease
    assert_error(response, 409, "Locked")
    items = scan(state_table)
    assert [i["pk"]["S"] for i in items] == ["META"]
    assert items[0]["lock_owner"]["S"] == "apply-other"
    assert not aws("secretsmanager").list_secrets(IncludePlannedDeletion=True)["SecretList"]


def test_aws_lease_held_by_another_apply_refuses_a_single_write(api: ApiClient, state_table: str) -> None:
    # GIVEN another apply holds the lease
    hold_lease(state_table, "apply-other", expires_in=60)
    # WHEN a single rule is written
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN it is refused as locked, and nothing is written
    assert_error(response, 409, "Locked")
    assert api.get("/v1/rules/quay").status == 404


def test_aws_lease_refusal_says_when_to_retry(api: ApiClient, state_table: str) -> None:
    # GIVEN another apply holds the lease
    hold_lease(state_table, "apply-other", expires_in=60)
    # WHEN a single rule is written
    response = api.put("/v1/rules/quay", {"upstream_kind": "quay"})
    # THEN the refusal carries Retry-After, like every retryable failure
    assert response.headers.get("Retry-After", "").isdigit(), response.headers


def test_aws_expired_lease_is_taken_over(api: ApiClient, state_table: str) -> None:
    # GIVEN a lease that expired (its apply died)
    hold_lease(state_table, "apply-dead", expires_in=-5)
    # WHEN a large document and then a single rule are written
    applied = api.put("/v1/desired-state", large_document())
    single = api.put("/v1/rules/q00", {"upstream_kind": "quay", "description": "after the apply"})
    # THEN both land, and the lease is released afterwards
    assert applied.status == 200, applied.text
    assert single.status == 200, single.text
    assert_consistent(state_table)


@pytest.mark.parametrize(
    ("code", "status", "expected"), [("ThrottlingException", 400, 503), ("AccessDeniedException", 400, 500)]
)
def test_aws_failure_taking_the_lease_writes_nothing(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, *, code: str, status: int, expected: int
) -> None:
    # GIVEN DynamoDB fails the UpdateItem that takes the lease
    monkeypatch.setattr(dynamodb(), "update_item", failing(client_error(code, status, "UpdateItem")))
    # WHEN a document with 60 changes is applied
    response = api.put("/v1/desired-state", large_document())
    # THEN the error names UpdateItem, and neither items nor secrets were left behind
    body = assert_error(response, expected, "Retryable" if expected == 503 else "Terminal")
    assert "DynamoDB UpdateItem" in body["message"]
    monkeypatch.undo()
    assert_consistent(state_table)
    assert not [i for i in scan(state_table) if i["pk"]["S"] != "META"]
    assert not aws("secretsmanager").list_secrets()["SecretList"]


def test_aws_chunked_apply_failing_part_way_is_undone(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule, and DynamoDB refusing the second transaction of the next apply
    api.put("/v1/rules/kept", {"upstream_kind": "quay", "description": "before"})
    client = dynamodb()
    real = client.transact_write_items
    calls = {"n": 0}

    def second_fails(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise client_error("AccessDeniedException", 400, "TransactWriteItems")
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", second_fails)
    # WHEN a document with 5 credentials and 50 rules (one of them an update) is applied
    document = large_document(rules=55)
    document["rules"]["kept"] = document["rules"].pop("q49") | {"description": "after"}
    response = api.put("/v1/desired-state", document)
    # THEN it is 500 naming the call, and the first chunk was undone: the state is what it was
    body = assert_error(response, 500, "Terminal")
    assert "TransactWriteItems" in body["message"]
    monkeypatch.undo()
    exported = api.get("/v1/desired-state").json
    assert list(exported["rules"]) == ["kept"]
    assert exported["rules"]["kept"]["description"] == "before"
    assert exported["credentials"] == {}
    # AND the undo is in history, consistent with the items, and the lease is released
    assert_consistent(state_table)
    # AND the secrets staged for the apply were removed
    assert aws("secretsmanager").list_secrets()["SecretList"] == []


def test_aws_chunked_apply_undo_keeps_versions_moving_forward(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 50 rules, one of them updated to version 2
    api.put("/v1/desired-state", {"version": 1, "rules": {f"q{i:02d}": {"upstream_kind": "quay"} for i in range(50)}})
    api.put("/v1/rules/q00", {"upstream_kind": "quay", "description": "v2"})
    created_at = api.get("/v1/rules/q00").json["created_at"]
    client = dynamodb()
    real = client.transact_write_items
    calls = {"n": 0}

    def second_fails(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise client_error("AccessDeniedException", 400, "TransactWriteItems")
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", second_fails)
    # WHEN an empty document is applied with prune and its second chunk fails
    assert api.put("/v1/desired-state", {"version": 1}, query={"prune": "true", "allowEmpty": "true"}).status == 500
    monkeypatch.undo()
    # THEN q00 is back with its spec, a version above 2 (an old ETag must not match), its created_at,
    # and every history entry of q00 has its own version
    restored = api.get("/v1/rules/q00")
    assert restored.json["spec"]["description"] == "v2"
    assert restored.json["version"] > 2
    assert restored.json["created_at"] == created_at
    versions = [h["version"] for h in api.get("/v1/history", query={"kind": "rule", "name": "q00"}).json["items"]]
    writes = [
        h
        for h in api.get("/v1/history", query={"kind": "rule", "name": "q00"}).json["items"]
        if h["action"] != "delete"
    ]
    assert len({h["version"] for h in writes}) == len(writes), versions


# -- Secrets Manager ----------------------------------------------------------------------------------

SECRETS_ERRORS = [
    ("ThrottlingException", 400, 503, "Retryable"),
    ("InternalServiceError", 500, 503, "Retryable"),
    ("AccessDeniedException", 400, 500, "Terminal"),
]


@pytest.mark.parametrize(("code", "status", "expected", "error"), SECRETS_ERRORS, ids=[e[0] for e in SECRETS_ERRORS])
def test_aws_secrets_create_failure_writes_nothing(
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    code: str,
    status: int,
    expected: int,
    error: str,
) -> None:
    # GIVEN Secrets Manager fails CreateSecret
    monkeypatch.setattr(secretsmanager(), "create_secret", failing(client_error(code, status, "CreateSecret")))
    # WHEN a credential is created
    response = api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    # THEN the error names CreateSecret, and there is neither item, history nor secret
    body = assert_error(response, expected, error)
    assert "Secrets Manager CreateSecret" in body["message"]
    monkeypatch.undo()
    assert scan(state_table) == []
    assert not secret_exists()


@pytest.mark.parametrize(("code", "status", "expected", "error"), SECRETS_ERRORS, ids=[e[0] for e in SECRETS_ERRORS])
def test_aws_secrets_put_value_failure_keeps_the_old_token(
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    code: str,
    status: int,
    expected: int,
    error: str,
) -> None:
    # GIVEN a credential, and Secrets Manager failing PutSecretValue
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    before = scan(state_table)
    monkeypatch.setattr(secretsmanager(), "put_secret_value", failing(client_error(code, status, "PutSecretValue")))
    # WHEN its token is replaced
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN the error names PutSecretValue, the item is unchanged and the old token is still current
    body = assert_error(response, expected, error)
    assert "Secrets Manager PutSecretValue" in body["message"]
    monkeypatch.undo()
    assert scan(state_table) == before
    assert secret_value(SECRET)["accessToken"] == TOKEN


@pytest.mark.parametrize("method", ["describe_secret", "update_secret_version_stage"])
@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("AccessDeniedException", 400)])
def test_aws_secrets_promote_failure_is_503_and_the_retry_completes(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, *, method: str, code: str, status: int
) -> None:
    # GIVEN a credential, and Secrets Manager failing the calls that make the new value current
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    operation = "DescribeSecret" if method == "describe_secret" else "UpdateSecretVersionStage"
    monkeypatch.setattr(secretsmanager(), method, failing(client_error(code, status, operation)))
    # WHEN its token is replaced
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN it is 503 asking to repeat the request; the item and its history moved on together,
    # and the old token is still the current one (the new value is staged, not current)
    body = assert_error(response, 503, "Retryable")
    assert "repeat the same request" in body["message"]
    monkeypatch.undo()
    assert_consistent(state_table)
    assert api.get("/v1/credentials/hub").json["version"] == 2
    assert secret_value(SECRET)["accessToken"] == TOKEN
    # AND repeating the request makes the new token current, with no staging label left
    assert api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN}).status == 200
    assert secret_value(SECRET)["accessToken"] == NEW_TOKEN
    assert not any(STAGING_LABEL in labels for labels in secret_stages(SECRET).values())
    assert_consistent(state_table)


def test_aws_secrets_commit_failure_discards_the_staged_value(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credential, and DynamoDB refusing the commit
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("AccessDeniedException", 400, "TransactWriteItems"))
    )
    # WHEN its token is replaced
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN it is 500, the old token is current, and the staged value lost its label
    assert_error(response, 500, "Terminal")
    monkeypatch.undo()
    assert secret_value(SECRET)["accessToken"] == TOKEN
    assert not any(STAGING_LABEL in labels for labels in secret_stages(SECRET).values())
    assert_consistent(state_table)


def test_aws_secrets_commit_failure_removes_a_new_secret(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB refusing the commit
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("ThrottlingException", 400, "TransactWriteItems"))
    )
    # WHEN a credential is created
    response = api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    # THEN it is 503, and the secret created for it was deleted again
    assert_error(response, 503, "Retryable")
    monkeypatch.undo()
    assert not secret_exists()
    assert scan(state_table) == []


def test_aws_secrets_failing_undo_is_logged_and_the_first_error_answered(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a credential; DynamoDB refuses the commit and Secrets Manager refuses to undo the stage
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("AccessDeniedException", 400, "TransactWriteItems"))
    )
    monkeypatch.setattr(
        secretsmanager(),
        "update_secret_version_stage",
        failing(client_error("ThrottlingException", 400, "UpdateSecretVersionStage")),
    )
    # WHEN its token is replaced
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN the commit's error is answered, the failed undo is logged naming the secret,
    # and the staged value never became current
    body = assert_error(response, 500, "Terminal")
    assert "TransactWriteItems" in body["message"]
    assert any(r.getMessage() == "could not undo a staged secret value" for r in caplog.records)
    monkeypatch.undo()
    assert secret_value(SECRET)["accessToken"] == TOKEN
    assert_consistent(state_table)


@pytest.mark.parametrize(
    ("code", "status", "expected"), [("ThrottlingException", 400, 503), ("AccessDeniedException", 400, 500)]
)
def test_aws_secrets_delete_failure_is_reported_and_keeps_the_credential(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, *, code: str, status: int, expected: int
) -> None:
    # GIVEN a credential, and Secrets Manager failing DeleteSecret
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(secretsmanager(), "delete_secret", failing(client_error(code, status, "DeleteSecret")))
    # WHEN the credential is deleted
    response = api.delete("/v1/credentials/hub")
    # THEN the failure is answered, and nothing is half-done: the credential is still there
    assert response.status == expected, response.text
    assert "DeleteSecret" in response.json["message"]
    monkeypatch.undo()
    assert api.get("/v1/credentials/hub").status == 200
    assert_consistent(state_table)


def test_aws_credential_delete_whose_commit_fails_restores_the_secret(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credential, and DynamoDB refusing the commit of its deletion
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("AccessDeniedException", 400, "TransactWriteItems"))
    )
    # WHEN the credential is deleted
    response = api.delete("/v1/credentials/hub")
    # THEN it is 500 naming the commit, the credential stays, and its secret is no longer scheduled for deletion
    body = assert_error(response, 500, "Terminal")
    assert "TransactWriteItems" in body["message"]
    monkeypatch.undo()
    assert_credential_kept(api, state_table)


def test_aws_prune_whose_commit_fails_restores_the_secret(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credential, and DynamoDB refusing the commit of the next apply
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("ThrottlingException", 400, "TransactWriteItems"))
    )
    # WHEN a document without it is applied with prune
    response = api.put("/v1/desired-state", {"version": 1}, query={"prune": "true", "allowEmpty": "true"})
    # THEN it is 503, the credential stays, and its secret is current and not scheduled for deletion
    assert_error(response, 503, "Retryable")
    monkeypatch.undo()
    assert_credential_kept(api, state_table)


def test_aws_secrets_delete_failure_in_a_prune_writes_nothing(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a credential, and Secrets Manager failing DeleteSecret
    api.put("/v1/credentials/hub", {**HUB, "token": TOKEN})
    monkeypatch.setattr(
        secretsmanager(), "delete_secret", failing(client_error("ThrottlingException", 400, "DeleteSecret"))
    )
    # WHEN a document without it is applied with prune
    response = api.put("/v1/desired-state", {"version": 1}, query={"prune": "true", "allowEmpty": "true"})
    # THEN the apply is refused as retryable (a token must not outlive its credential) and nothing changed
    assert_error(response, 503, "Retryable")
    monkeypatch.undo()
    assert_credential_kept(api, state_table)


# A credential created again after its deletion: its secret, scheduled for deletion, is restored and
# takes the new token; a failure on that path writes nothing and leaves the secret scheduled for deletion.

RECREATE_ROUTES = ["credentials set", "apply"]


def deleted_credential(api: ApiClient) -> None:
    """The credential ``hub`` created, then deleted: its secret is scheduled for deletion."""
    assert api.put("/v1/credentials/hub", {**HUB, "token": TOKEN}).status == 201
    assert api.delete("/v1/credentials/hub").status == 204


def recreate(api: ApiClient, route: str) -> Any:
    if route == "credentials set":
        return api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    return api.put("/v1/desired-state", {"version": 1, "credentials": {"hub": {**HUB, "token": NEW_TOKEN}}})


def assert_still_deleted(api: ApiClient, table: str) -> None:
    """Nothing of the failed re-creation is left: no credential, and the secret is scheduled for deletion
    again with its old token (what ``RestoreSecret`` would bring back), the new one never current."""
    assert api.get("/v1/credentials/hub").status == 404
    assert_consistent(table)
    sm = aws("secretsmanager")
    assert "DeletedDate" in sm.describe_secret(SecretId=SECRET)
    sm.restore_secret(SecretId=SECRET)  # to look inside
    assert secret_value(SECRET)["accessToken"] == TOKEN
    assert not any(STAGING_LABEL in labels for labels in secret_stages(SECRET).values())


@pytest.mark.parametrize("route", RECREATE_ROUTES)
@pytest.mark.parametrize(("code", "status", "expected", "error"), SECRETS_ERRORS, ids=[e[0] for e in SECRETS_ERRORS])
def test_aws_secrets_restore_failure_on_recreate_writes_nothing(
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    route: str,
    code: str,
    status: int,
    expected: int,
    error: str,
) -> None:
    # GIVEN a deleted credential, and Secrets Manager failing RestoreSecret (denied, throttled, 5xx)
    deleted_credential(api)
    monkeypatch.setattr(secretsmanager(), "restore_secret", failing(client_error(code, status, "RestoreSecret")))
    # WHEN the credential is created again with a new token
    response = recreate(api, route)
    # THEN the error names RestoreSecret, and nothing is written: the secret stays scheduled for deletion
    body = assert_error(response, expected, error)
    assert "Secrets Manager RestoreSecret" in body["message"]
    monkeypatch.undo()
    assert_still_deleted(api, state_table)


@pytest.mark.parametrize("route", RECREATE_ROUTES)
@pytest.mark.parametrize(("code", "status", "expected", "error"), SECRETS_ERRORS, ids=[e[0] for e in SECRETS_ERRORS])
def test_aws_secrets_put_value_failure_after_restore_schedules_the_deletion_again(
    api: ApiClient,
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    route: str,
    code: str,
    status: int,
    expected: int,
    error: str,
) -> None:
    # GIVEN a deleted credential, and Secrets Manager failing PutSecretValue once the secret is restored
    deleted_credential(api)
    monkeypatch.setattr(secretsmanager(), "put_secret_value", failing(client_error(code, status, "PutSecretValue")))
    # WHEN the credential is created again with a new token
    response = recreate(api, route)
    # THEN the error names PutSecretValue, and the restore is undone: the old token does not come back
    body = assert_error(response, expected, error)
    assert "Secrets Manager PutSecretValue" in body["message"]
    monkeypatch.undo()
    assert_still_deleted(api, state_table)


@pytest.mark.parametrize("route", RECREATE_ROUTES)
def test_aws_commit_failure_after_restore_schedules_the_deletion_again(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    # GIVEN a deleted credential, and DynamoDB refusing the commit that re-creates it
    deleted_credential(api)
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("AccessDeniedException", 400, "TransactWriteItems"))
    )
    # WHEN the credential is created again with a new token
    response = recreate(api, route)
    # THEN the commit's error is answered; the staged token is discarded and the secret scheduled
    # for deletion again (a secret without its credential is no one's to keep)
    body = assert_error(response, 500, "Terminal")
    assert "TransactWriteItems" in body["message"]
    monkeypatch.undo()
    assert_still_deleted(api, state_table)


def test_aws_failing_reschedule_after_a_failed_recreate_is_logged(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a deleted credential; the commit that re-creates it fails, and so does DeleteSecret
    deleted_credential(api)
    monkeypatch.setattr(
        dynamodb(), "transact_write_items", failing(client_error("AccessDeniedException", 400, "TransactWriteItems"))
    )
    monkeypatch.setattr(
        secretsmanager(), "delete_secret", failing(client_error("ThrottlingException", 400, "DeleteSecret"))
    )
    # WHEN the credential is created again
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN the commit's error is answered, the failed undo is logged naming the secret (never the token),
    # and the new token never became current
    assert_error(response, 500, "Terminal")
    undo = [r for r in caplog.records if r.getMessage() == "could not undo a staged secret value"]
    assert undo
    assert all(NEW_TOKEN not in f"{r.__dict__!r}" for r in undo)
    monkeypatch.undo()
    assert api.get("/v1/credentials/hub").status == 404
    assert secret_value(SECRET)["accessToken"] == TOKEN


def test_aws_failing_reschedule_after_a_failed_put_value_is_said_in_the_answer(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a deleted credential; PutSecretValue fails once the secret is restored, and so does DeleteSecret
    deleted_credential(api)
    monkeypatch.setattr(
        secretsmanager(), "put_secret_value", failing(client_error("ThrottlingException", 400, "PutSecretValue"))
    )
    monkeypatch.setattr(
        secretsmanager(), "delete_secret", failing(client_error("AccessDeniedException", 400, "DeleteSecret"))
    )
    # WHEN the credential is created again
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN the answer says PutSecretValue failed AND that the restored secret is live again (what to do),
    # the log names the secret, and neither carries a token
    body = assert_error(response, 503, "Retryable")
    assert "Secrets Manager PutSecretValue" in body["message"]
    assert "could not be scheduled for deletion again" in body["message"]
    assert NEW_TOKEN not in response.text and TOKEN not in response.text
    again = "could not schedule the deletion of a restored secret again"
    logged = [r for r in caplog.records if r.getMessage() == again]
    assert logged and all(NEW_TOKEN not in f"{r.__dict__!r}" for r in logged)
    monkeypatch.undo()
    assert api.get("/v1/credentials/hub").status == 404


@pytest.mark.parametrize(
    ("code", "status", "expected"), [("ThrottlingException", 400, 503), ("AccessDeniedException", 400, 500)]
)
def test_aws_secrets_describe_failure_while_recreating_writes_nothing(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, *, code: str, status: int, expected: int
) -> None:
    # GIVEN a deleted credential, and DescribeSecret (which tells a secret scheduled for deletion) failing
    deleted_credential(api)
    monkeypatch.setattr(secretsmanager(), "describe_secret", failing(client_error(code, status, "DescribeSecret")))
    # WHEN the credential is created again
    response = api.put("/v1/credentials/hub", {**HUB, "token": NEW_TOKEN})
    # THEN the error names DescribeSecret, and nothing is written: the secret stays scheduled for deletion
    body = assert_error(response, expected, "Retryable" if expected == 503 else "Terminal")
    assert "DescribeSecret" in body["message"]
    monkeypatch.undo()
    assert_still_deleted(api, state_table)


@pytest.mark.parametrize(
    ("code", "status", "expected"), [("ThrottlingException", 400, 503), ("AccessDeniedException", 400, 500)]
)
def test_aws_secrets_describe_failure_while_adopting_writes_nothing(
    api: ApiClient, state_table: str, monkeypatch: pytest.MonkeyPatch, *, code: str, status: int, expected: int
) -> None:
    # GIVEN Secrets Manager fails the DescribeSecret that looks for a secret to adopt
    monkeypatch.setattr(secretsmanager(), "describe_secret", failing(client_error(code, status, "DescribeSecret")))
    # WHEN a credential is created without a token
    response = api.put("/v1/credentials/hub", HUB)
    # THEN the error names DescribeSecret, and nothing is written
    body = assert_error(response, expected, "Retryable" if expected == 503 else "Terminal")
    assert "Secrets Manager DescribeSecret" in body["message"]
    monkeypatch.undo()
    assert scan(state_table) == []
