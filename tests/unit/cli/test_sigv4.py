"""The CLI signs with botocore's SigV4 and sends exactly what it signed.

A local server records each request as it arrived; the test rebuilds an ``AWSRequest`` from the
method, the request target (percent-encoding untouched), the headers named in ``SignedHeaders``
and the body, signs it again with botocore for ``execute-api`` at the same frozen instant, and
compares: any byte changed after signing (a re-encoded ``%2F``, a reordered query, a header added
or rewritten, a re-serialised body) would give a different signature.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ecrcache_cli.client import CALLER_ARN_HEADER, USER_AGENT, ApiClient, EndpointOptions, open_client
from tests.unit.cli.support import Recorded, RecordingServer, Reply, recording_server, run_cli

pytestmark = pytest.mark.unit

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN//example+token="
FROZEN = datetime(2026, 5, 17, 12, 34, 56)
REGION = "eu-central-1"


@pytest.fixture(autouse=True)
def fixed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: FROZEN)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with recording_server(lambda _: Reply(200, {"ok": True}, {"ETag": '"1"'})) as running:
        yield running


def resign(server: RecordingServer, request: Recorded, region: str = REGION) -> dict[str, str]:
    """Sign what the server received, as API Gateway would verify it; returns the headers botocore sets."""
    authorization = request.header("Authorization") or ""
    match = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert match, authorization
    signed = match.group(1).split(";")
    headers = {name: request.header(name) or "" for name in signed}
    rebuilt = AWSRequest(method=request.method, url=server.url + request.target, headers=headers, data=request.body)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "execute-api", region).add_auth(rebuilt)
    return dict(rebuilt.headers.items())


def client(server: RecordingServer, **options: str) -> ApiClient:
    built = open_client(EndpointOptions(endpoint=server.url, region=REGION, **options))
    assert isinstance(built, ApiClient)
    return built


def assert_signature_matches(server: RecordingServer, request: Recorded) -> None:
    expected = resign(server, request)
    assert request.header("Authorization") == expected["Authorization"]
    assert request.header("X-Amz-Date") == expected["X-Amz-Date"] == "20260517T123456Z"
    assert request.header("X-Amz-Security-Token") == expected["X-Amz-Security-Token"] == SESSION_TOKEN
    if request.header("x-amz-content-sha256") is not None:
        assert request.header("x-amz-content-sha256") == expected.get("X-Amz-Content-SHA256")
    credential = f"Credential={ACCESS_KEY}/20260517/{REGION}/execute-api/aws4_request"
    assert credential in (request.header("Authorization") or "")


def test_sigv4_get_with_percent_encoded_slash_is_sent_as_signed(server: RecordingServer) -> None:
    # GIVEN a client for the local server, signing with fixed credentials at a frozen instant
    api = client(server)
    # WHEN it gets a rule whose prefix contains "/"
    api.get("rules/docker-hub%2Flibrary")
    # THEN the path arrives still percent-encoded, and the signature is botocore's for exactly that request
    request = server.requests[-1]
    assert request.target == "/v1/rules/docker-hub%2Flibrary"
    assert_signature_matches(server, request)
    assert request.header("User-Agent") == USER_AGENT


def test_sigv4_query_string_is_signed_in_the_order_and_encoding_sent(server: RecordingServer) -> None:
    # GIVEN a query with a "/", a space and several keys
    api = client(server)
    # WHEN the history of one rule is read
    api.get("history", query={"name": "team/quay x", "kind": "rule", "limit": 5, "next_token": None})
    # THEN the query is encoded once (RFC 3986), None values are left out, and the signature matches
    request = server.requests[-1]
    assert request.target == "/v1/history?name=team%2Fquay%20x&kind=rule&limit=5"
    assert_signature_matches(server, request)


def test_sigv4_put_with_a_body_and_conditional_headers(server: RecordingServer) -> None:
    # GIVEN a whole-document PUT with dryRun/prune, an If-Match and the local stack's caller header
    api = client(server, caller_arn="arn:aws:iam::123456789012:user/alice")
    document = {"version": 1, "rules": {"docker-hub/library": {"upstream_kind": "docker-hub"}}}
    # WHEN it is sent
    api.put("desired-state", document, query={"dryRun": True, "prune": True}, headers={"If-Match": '"7"'})
    # THEN body, query and headers are the ones signed (the caller header and If-Match included)
    request = server.requests[-1]
    assert request.method == "PUT"
    assert request.target == "/v1/desired-state?dryRun=true&prune=true"
    assert request.json() == document
    assert request.header("Content-Type") == "application/json"
    signed = re.search(r"SignedHeaders=([^,]+)", request.header("Authorization") or "")
    assert signed is not None
    assert {"host", "if-match", "content-type", "x-amz-date", "x-amz-security-token"} <= set(signed.group(1).split(";"))
    assert CALLER_ARN_HEADER.lower() in signed.group(1).split(";")
    assert_signature_matches(server, request)


def test_sigv4_delete_via_the_cli_encodes_the_rule_prefix(server: RecordingServer) -> None:
    # GIVEN the CLI pointed at the local server
    # WHEN a rule with a "/" in its prefix is deleted (GET for the ETag, then DELETE with If-Match)
    server.respond = lambda r: Reply(
        204 if r.method == "DELETE" else 200, None if r.method == "DELETE" else {}, {"ETag": '"4"'}
    )
    result = run_cli(["--endpoint", server.url + "/v1/", "--region", REGION, "delete", "rule", "team/quay"])
    # THEN both requests use the encoded path and carry valid signatures
    assert result.code == 0, result.output
    assert [(r.method, r.target) for r in server.requests] == [
        ("GET", "/v1/rules/team%2Fquay"),
        ("DELETE", "/v1/rules/team%2Fquay"),
    ]
    assert server.requests[1].header("If-Match") == '"4"'
    for request in server.requests:
        assert_signature_matches(server, request)


def test_sigv4_region_comes_from_an_execute_api_host() -> None:
    # GIVEN an API Gateway URL in eu-west-3 and --region us-east-2
    built = open_client(
        EndpointOptions(endpoint="https://abc123.execute-api.eu-west-3.amazonaws.com/prod", region="us-east-2")
    )
    # THEN the URL's Region wins for signing
    assert isinstance(built, ApiClient)
    assert built.region == "eu-west-3"
    assert built.base_url == "https://abc123.execute-api.eu-west-3.amazonaws.com/prod/v1"
    prepared = built.prepare("GET", "rules")
    assert "/eu-west-3/execute-api/aws4_request" in str(prepared.headers["Authorization"])
