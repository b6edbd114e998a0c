"""Endpoint resolution (flags, environment, CloudFormation), credentials, retries and HTTP error mapping."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import moto
import pytest
import urllib3.util.retry
from botocore.exceptions import ClientError, CredentialRetrievalError

from ecrcache_cli.client import (
    ApiClient,
    EndpointOptions,
    build_retry,
    is_loopback,
    load_credentials,
    normalise_base_url,
    open_client,
    region_from_host,
    resolve_endpoint,
    stack_api_url,
)
from ecrcache_cli.output import ApiError, CliError, ExitCode
from tests.unit.cli.support import Recorded, RecordingServer, Reply, recording_server, run_cli, unsigned_client

pytestmark = pytest.mark.unit

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/v1"


# -- endpoint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://abc.execute-api.us-east-1.amazonaws.com/prod",
        "https://abc.execute-api.us-east-1.amazonaws.com/prod/",
        "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1",
        " https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/ ",
    ],
)
def test_normalise_base_url_accepts_with_or_without_slash_and_v1(url: str) -> None:
    assert normalise_base_url(url) == "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1"


def test_normalise_base_url_local_and_invalid() -> None:
    assert normalise_base_url("http://127.0.0.1:3000") == "http://127.0.0.1:3000/v1"
    for bad in ("127.0.0.1:3000", "ftp://x/y", "https://h/prod?x=1"):
        with pytest.raises(CliError) as caught:
            normalise_base_url(bad)
        assert caught.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(
    "url",
    ["http://user:s3cr3t@127.0.0.1:3000/", "https://user:s3cr3t@h.example/prod?x=1", "ftp://user:s3cr3t@h/"],
)
def test_an_endpoint_with_user_info_is_a_usage_error_that_never_shows_the_password(url: str) -> None:
    with pytest.raises(CliError) as caught:
        normalise_base_url(url)
    assert caught.value.exit_code is ExitCode.USAGE
    assert "user name or password" in caught.value.message
    assert "s3cr3t" not in caught.value.message
    assert "user" not in caught.value.message.split("must not")[0]
    result = run_cli(["--endpoint", url, "get", "rules"])
    assert result.code == ExitCode.USAGE
    assert "s3cr3t" not in result.output


def test_resolve_endpoint_precedence_flag_env_stack() -> None:
    looked_up: list[tuple[str, str | None, str | None]] = []

    def lookup(stack: str, *, profile: str | None, region: str | None) -> str:
        looked_up.append((stack, profile, region))
        return API_URL

    env = {"ECRCACHE_ENDPOINT": "http://localhost:3000/"}
    both = EndpointOptions(endpoint="http://127.0.0.1:9/v1", stack="s", profile="p", region="r")
    stack_only = EndpointOptions(stack="ecrcache", profile="dev", region="eu-west-1")
    assert resolve_endpoint(both, environ=env, lookup=lookup) == "http://127.0.0.1:9/v1"
    assert resolve_endpoint(EndpointOptions(stack="s"), environ=env, lookup=lookup) == "http://localhost:3000/v1"
    assert resolve_endpoint(stack_only, environ={}, lookup=lookup) == API_URL
    assert looked_up == [("ecrcache", "dev", "eu-west-1")]


def test_no_endpoint_is_a_usage_error_naming_the_three_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECRCACHE_ENDPOINT", raising=False)
    result = run_cli(["get", "rules"])
    assert result.code == 64
    assert "--endpoint URL" in result.stderr
    assert "$ECRCACHE_ENDPOINT" in result.stderr
    assert "--stack NAME" in result.stderr


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1"),
        ("https://abc-vpce-0123.execute-api.ap-south-1.vpce.amazonaws.com/prod", "ap-south-1"),
        ("https://abc.execute-api.cn-north-1.amazonaws.com.cn/prod", "cn-north-1"),
        ("https://api.example.com/ecrcache", None),
        ("http://127.0.0.1:3000", None),
    ],
)
def test_region_from_host(url: str, region: str | None) -> None:
    assert region_from_host(url) == region


@pytest.mark.parametrize(
    ("url", "loopback"),
    [("http://127.0.0.1:3000", True), ("http://localhost:3000", True), ("http://[::1]:3000", True), (API_URL, False)],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


@pytest.fixture
def cloudformation() -> Iterator[None]:
    with moto.mock_aws():
        yield


def create_stack(name: str, outputs: dict[str, str], region: str = "eu-west-1") -> None:
    template = {"Resources": {}, "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    boto3.client("cloudformation", region_name=region).create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_stack_api_url_reads_the_output(cloudformation: None) -> None:
    create_stack("ecrcache", {"StateTableName": "t", "ApiUrl": API_URL})
    assert stack_api_url("ecrcache", profile=None, region="eu-west-1") == API_URL


def test_stack_missing_or_without_output_is_exit_7(cloudformation: None) -> None:
    create_stack("other", {"Something": "x"})
    with pytest.raises(CliError) as missing:
        stack_api_url("ecrcache", profile=None, region="eu-west-1")
    with pytest.raises(CliError) as no_output:
        stack_api_url("other", profile=None, region="eu-west-1")
    assert missing.value.exit_code is no_output.value.exit_code is ExitCode.UNREACHABLE
    assert missing.value.message == "stack 'ecrcache' not found in eu-west-1"
    assert no_output.value.message == "stack 'other' has no ApiUrl output (is it an ecrcache stack?)"


def test_unknown_profile_is_exit_7(cloudformation: None) -> None:
    result = run_cli(["--stack", "ecrcache", "--profile", "no-such-profile", "get", "rules"])
    assert result.code == 7
    assert "no-such-profile" in result.stderr


def test_cli_with_stack_talks_to_its_api_url(cloudformation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stack whose ApiUrl is a local server (loopback, so it could even be unsigned)
    monkeypatch.delenv("ECRCACHE_ENDPOINT", raising=False)
    with recording_server(lambda _: Reply(200, {"items": []})) as server:
        create_stack("ecrcache", {"ApiUrl": server.url + "/v1"}, region="eu-west-1")
        # WHEN the CLI is given the stack name
        result = run_cli(["--stack", "ecrcache", "--region", "eu-west-1", "get", "rules"])
    # THEN it lists the stack API's rules
    assert result.code == 0, result.output
    assert [r.target for r in server.requests] == ["/v1/rules"]
    assert "Credential=" in (server.requests[0].header("Authorization") or "")


# -- credentials ---------------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)


def test_loopback_without_credentials_is_unsigned(no_credentials: None) -> None:
    with recording_server(lambda _: Reply(200, {"items": []})) as server:
        result = run_cli(["--endpoint", server.url, "get", "warm-sets"])
    assert result.code == 0, result.output
    assert server.requests[0].header("Authorization") is None
    assert server.requests[0].header("X-Amz-Date") is None


def test_remote_endpoint_without_credentials_is_exit_7(no_credentials: None) -> None:
    with pytest.raises(CliError) as caught:
        open_client(EndpointOptions(endpoint=API_URL))
    assert caught.value.exit_code is ExitCode.UNREACHABLE
    assert "no AWS credentials found" in caught.value.message


class _RefusingCredentials:
    def get_frozen_credentials(self) -> object:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: sts:AssumeRole"}},
            "AssumeRole",
        )


class _BrokenProcessCredentials:
    def get_frozen_credentials(self) -> object:
        raise CredentialRetrievalError(provider="custom-process", error_msg="the process exited 1")


@pytest.fixture(params=[_RefusingCredentials, _BrokenProcessCredentials])
def failing_credentials(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that fail when resolved: STS refuses the assume-role, or the credential process fails."""
    credentials = request.param()

    class Session:
        region_name = "eu-west-1"

        def __init__(self, **_: object) -> None:
            pass

        def get_credentials(self) -> object:
            return credentials

    monkeypatch.setattr(boto3, "Session", Session)


def test_credentials_that_fail_to_load_are_exit_7_with_a_clear_message(failing_credentials: None) -> None:
    with pytest.raises(CliError) as caught:
        load_credentials("deploy", None)
    assert caught.value.exit_code is ExitCode.UNREACHABLE
    assert caught.value.message.startswith("cannot load AWS credentials")
    result = run_cli(["--endpoint", API_URL, "--profile", "deploy", "get", "rules"])
    assert result.code == ExitCode.UNREACHABLE, result.output
    assert "error: cannot load AWS credentials" in result.stderr
    assert "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr


def test_sts_access_denied_names_the_operation_and_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    class Session:
        region_name = None

        def __init__(self, **_: object) -> None:
            pass

        def get_credentials(self) -> object:
            return _RefusingCredentials()

    monkeypatch.setattr(boto3, "Session", Session)
    with pytest.raises(CliError) as caught:
        load_credentials(None, None)
    assert caught.value.message == (
        "cannot load AWS credentials (AssumeRole): AccessDenied: not authorized to perform: sts:AssumeRole"
    )


def test_loopback_with_credentials_that_fail_to_load_warns_and_sends_unsigned(failing_credentials: None) -> None:
    with recording_server(lambda _: Reply(200, {"items": []})) as server:
        result = run_cli(["--endpoint", server.url, "get", "warm-sets"])
    assert result.code == 0, result.output
    assert result.stderr.startswith("warning: cannot load AWS credentials")
    assert "sending unsigned requests" in result.stderr
    assert server.requests[0].header("Authorization") is None


# -- sending -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_exit_7_naming_the_location(status: int) -> None:
    with recording_server(lambda _: Reply(status, None, {"Location": "https://elsewhere.example/login"})) as server:
        with pytest.raises(CliError) as caught:
            unsigned_client(server.url).put("desired-state", {"version": 1})
        result = run_cli(["--endpoint", server.url, "get", "rules"])
    assert caught.value.exit_code is ExitCode.UNREACHABLE
    assert caught.value.message == (
        f"the API redirected to https://elsewhere.example/login (HTTP {status}); use the ApiUrl output as the endpoint"
    )
    assert result.code == ExitCode.UNREACHABLE
    assert "extract_cookies" not in result.output
    # the redirect is never followed
    assert [r.path for r in server.requests] == ["/v1/desired-state", "/v1/rules"]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, b"<!doctype html><title>404 Not Found</title>", {"Content-Type": "text/html"}),
        Reply(404, None),
        Reply(404, {"message": "Not Found"}),
        Reply(404, {"code": "NotFound"}),
    ],
    ids=["html", "empty", "other-json", "partial-shape"],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["get", "rules"],
        ["get", "rule", "quay"],
        ["credentials", "set", "hub", "--upstream", "docker-hub", "--username", "u", "--token-stdin"],
    ],
)
def test_a_404_without_the_api_error_shape_says_the_endpoint_is_not_the_api(reply: Reply, argv: list[str]) -> None:
    # GIVEN an endpoint that is some other server (e.g. the embedded AWS's port) answering 404
    with recording_server(lambda _: reply) as server:
        # WHEN the CLI calls it
        result = run_cli(["--endpoint", server.url, *argv], input="t0k3n\n")
    # THEN it says the endpoint does not look like the ecrcache API, exit 7 (it said "NOT FOUND (HTTP404, HTTP 404)")
    assert result.code == ExitCode.UNREACHABLE, result.output
    assert f"error: the endpoint {server.url}/v1 does not look like the ecrcache API" in result.stderr
    assert "HTTP404" not in result.stderr


def test_a_404_in_the_api_error_shape_is_not_found() -> None:
    body = {"code": "NotFound", "message": "no rule 'quay'", "details": []}
    with recording_server(lambda _: Reply(404, body)) as server:
        result = run_cli(["--endpoint", server.url, "get", "rule", "quay"])
    assert result.code == ExitCode.NOT_FOUND
    assert result.stderr == "error: no rule 'quay' (NotFound, HTTP 404)\n"


def test_a_prepared_request_carries_no_cookie_header() -> None:
    prepared = unsigned_client("http://127.0.0.1:1").prepare("GET", "rules")
    assert "Cookie" not in prepared.headers


def test_user_agent_accept_and_caller_header() -> None:
    with recording_server(lambda _: Reply(200, {})) as server:
        unsigned_client(server.url, caller_arn="arn:aws:iam::1:user/bob").get("plan")
    request = server.requests[0]
    assert (request.header("User-Agent") or "").startswith("ecrcache-cli/")
    assert request.header("Accept") == "application/json"
    assert request.header("X-Ecrcache-Caller-Arn") == "arn:aws:iam::1:user/bob"
    assert request.header("Content-Type") is None


def fast_client(server: RecordingServer) -> ApiClient:
    return unsigned_client(server.url, retry=build_retry(total=3, backoff_factor=0))


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_idempotent_requests_are_retried_on_throttling_and_gateway_errors(status: int) -> None:
    with recording_server() as server:
        server.replies = [Reply(status, {"message": "slow down"}, {"Retry-After": "0"}), Reply(200, {"ok": True})]
        answer = fast_client(server).put("rules/quay", {"upstream_kind": "quay"})
    assert answer.json() == {"ok": True}
    assert [r.method for r in server.requests] == ["PUT", "PUT"]


def test_post_is_not_retried() -> None:
    with recording_server() as server:
        server.replies = [Reply(503, {"code": "ServiceUnavailable", "message": "busy", "details": []})]
        with pytest.raises(ApiError) as caught:
            fast_client(server).post("reconcile")
    assert len(server.requests) == 1
    assert (caught.value.status, caught.value.exit_code) == (503, ExitCode.FAILURE)


def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a server that throttles once, asking for 7 seconds
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry, "time", SimpleNamespace(sleep=slept.append, time=time.time))
    with recording_server() as server:
        server.replies = [Reply(429, None, {"Retry-After": "7"}), Reply(200, {})]
        # WHEN a GET is sent with the CLI's default retry policy
        unsigned_client(server.url).get("plan")
    # THEN it waited what the server asked before trying again
    assert len(server.requests) == 2
    assert slept == [7.0]


def test_retries_give_up_with_the_last_error() -> None:
    reply = Reply(503, {"code": "Throttled", "message": "slow", "details": []})
    with recording_server(lambda _: reply) as server, pytest.raises(ApiError) as caught:
        fast_client(server).get("plan")
    assert len(server.requests) == 4
    assert caught.value.lines() == ["error: slow (Throttled, HTTP 503)"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_connection_refused_is_exit_7_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN nothing listening on the port (and retries that do not really wait)
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry, "time", SimpleNamespace(sleep=slept.append, time=time.time))
    # WHEN the CLI calls it
    result = run_cli(["--endpoint", f"http://127.0.0.1:{free_port()}", "plan"])
    # THEN it retried with backoff, then gave up with exit 7
    assert result.code == 7
    assert result.stderr.startswith("error: cannot reach the API at http://127.0.0.1:")
    assert slept == [1.0, 2.0]  # urllib3: no wait before the first retry, then 0.5 * 2**n


@pytest.mark.parametrize(
    ("status", "code", "argv"),
    [
        (400, 3, ["get", "rules"]),
        (401, 7, ["get", "rules"]),
        (403, 7, ["get", "rules"]),
        (404, 4, ["get", "rule", "quay"]),
        (409, 5, ["delete", "rule", "quay", "--if-match", '"1"']),
        (412, 5, ["delete", "rule", "quay", "--if-match", '"1"']),
        (413, 3, ["get", "rules"]),
        (415, 3, ["get", "rules"]),
        (422, 3, ["get", "rules"]),
        (423, 5, ["get", "rules"]),
        (500, 1, ["get", "rules"]),
    ],
)
def test_http_errors_map_to_exit_codes_through_the_cli(status: int, code: int, argv: list[str]) -> None:
    body = {"code": "Some", "message": "it failed", "details": [{"field": "f", "message": "m", "type": "t"}]}
    with recording_server(lambda _: Reply(status, body)) as server:
        result = run_cli(["--endpoint", server.url, *argv])
    assert result.code == code, result.output
    assert result.stderr == f"error: it failed (Some, HTTP {status})\n  - f: m\n"
    assert result.stdout == ""


def test_any_request_path_is_encoded_once(no_credentials: None) -> None:
    seen: list[Recorded] = []

    def respond(request: Recorded) -> Reply:
        seen.append(request)
        return Reply(200, {"spec": {}})

    with recording_server(respond) as server:
        run_cli(["--endpoint", server.url, "get", "warm-set", "a b/c%d"])
    assert seen[0].target == "/v1/warm-sets/a%20b%2Fc%25d"
