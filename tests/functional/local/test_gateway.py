"""The local API gateway: HTTP in, API Gateway REST proxy events out, the function's answer back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from devstack.local.gateway import CALLER_ARN_HEADER, DEFAULT_CALLER, ApiGateway, Route
from devstack.local.invoke import FunctionError, FunctionTimeout, InvokeError

pytestmark = pytest.mark.functional


class Recorder:
    """An ``invoke`` that records events and answers what the test says."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer: Any = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}
        self.error: Exception | None = None

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder) -> Iterator[ApiGateway]:
    with ApiGateway(recorder, port=0, stage="prod") as running:
        yield running


def test_event_keeps_the_path_percent_encoded_and_routes_greedy_paths(gateway: ApiGateway, recorder: Recorder) -> None:
    # WHEN a rule with a "/" in its prefix is read
    requests.get(f"{gateway.endpoint_url}/v1/rules/team%2Fquay?deep=true&x=1&x=2", timeout=5)

    # THEN the event is API Gateway's: encoded path, greedy resource, decoded proxy parameter, both query maps
    event = recorder.events[0]
    assert event["path"] == "/v1/rules/team%2Fquay"
    assert event["resource"] == "/v1/{proxy+}"
    assert event["pathParameters"] == {"proxy": "rules/team/quay"}
    assert event["queryStringParameters"] == {"deep": "true", "x": "2"}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["path"] == "/prod/v1/rules/team%2Fquay"
    parsed = APIGatewayProxyEvent(event)
    assert parsed.http_method == "GET"
    assert parsed.request_context.identity.user_arn == DEFAULT_CALLER


def test_root_route_and_unknown_paths(gateway: ApiGateway, recorder: Recorder) -> None:
    requests.get(f"{gateway.endpoint_url}/v1", timeout=5)
    assert recorder.events[0]["resource"] == "/v1"
    assert recorder.events[0]["pathParameters"] is None

    # an unknown path never reaches the function
    response = requests.get(f"{gateway.endpoint_url}/v2/rules", timeout=5)
    assert response.status_code == 404
    assert "/v1" in response.json()["message"]
    assert len(recorder.events) == 1


def test_caller_identity_comes_from_the_header(gateway: ApiGateway, recorder: Recorder) -> None:
    alice = "arn:aws:iam::210987654321:user/alice"
    requests.get(f"{gateway.endpoint_url}/v1/rules", headers={CALLER_ARN_HEADER: alice}, timeout=5)
    identity = recorder.events[0]["requestContext"]["identity"]
    assert identity["userArn"] == alice
    assert identity["accountId"] == "210987654321"


def test_body_text_and_binary(gateway: ApiGateway, recorder: Recorder) -> None:
    requests.put(f"{gateway.endpoint_url}/v1/rules/quay", json={"upstream_kind": "quay"}, timeout=5)
    requests.put(
        f"{gateway.endpoint_url}/v1/rules/quay",
        data=b"\x00\x01",
        headers={"Content-Type": "application/octet-stream"},
        timeout=5,
    )
    text_event, binary_event = recorder.events
    assert json.loads(text_event["body"]) == {"upstream_kind": "quay"}
    assert text_event["isBase64Encoded"] is False
    assert binary_event["isBase64Encoded"] is True
    assert base64.b64decode(binary_event["body"]) == b"\x00\x01"


def test_response_status_headers_and_body_pass_through(gateway: ApiGateway, recorder: Recorder) -> None:
    recorder.answer = {
        "statusCode": 412,
        "headers": {"Content-Type": "application/json", "ETag": '"3"'},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": '{"code": "PreconditionFailed"}',
        "isBase64Encoded": False,
    }
    response = requests.get(f"{gateway.endpoint_url}/v1/rules/quay", timeout=5)
    assert response.status_code == 412
    assert response.headers["ETag"] == '"3"'
    assert response.headers["X-Multi"] == "a, b"
    assert response.json() == {"code": "PreconditionFailed"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (FunctionError("ApiFunction", "KeyError", "boom"), 502),
        (FunctionTimeout("ApiFunction", 29), 504),
        (InvokeError("ApiFunction: the function host is unreachable"), 502),
    ],
)
def test_function_failures_are_api_gateway_errors(
    gateway: ApiGateway, recorder: Recorder, error: Exception, status: int
) -> None:
    recorder.error = error
    response = requests.get(f"{gateway.endpoint_url}/v1/rules", timeout=5)
    assert response.status_code == status
    assert "boom" not in response.text  # the handler's exception text never reaches the caller


def test_malformed_function_answer_is_a_502(gateway: ApiGateway, recorder: Recorder) -> None:
    recorder.answer = {"body": "no status"}
    assert requests.get(f"{gateway.endpoint_url}/v1/rules", timeout=5).status_code == 502


def test_method_specific_routes() -> None:
    route = Route("/v1/{proxy+}", "GET")
    assert route.match("GET", "/v1/rules") == {"proxy": "rules"}
    assert route.match("PUT", "/v1/rules") is None
    assert Route("/v1").match("POST", "/v1/") == {}
