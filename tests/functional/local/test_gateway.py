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


def test_bodies_are_text_without_binary_media_types(gateway: ApiGateway, recorder: Recorder) -> None:
    # GIVEN the gateway with the template's binary media types (none)
    # WHEN JSON, a form, XML, multipart and raw bytes are sent
    requests.put(f"{gateway.endpoint_url}/v1/rules/quay", json={"upstream_kind": "quay"}, timeout=5)
    for content_type, data in BODIES:
        requests.put(
            f"{gateway.endpoint_url}/v1/rules/quay", data=data, headers={"Content-Type": content_type}, timeout=5
        )
    # THEN every body reaches the function as text, as API Gateway passes it when no binary type matches
    assert json.loads(recorder.events[0]["body"]) == {"upstream_kind": "quay"}
    for event, (_, data) in zip(recorder.events[1:], BODIES, strict=True):
        assert event["isBase64Encoded"] is False
        assert event["body"] == data.decode("utf-8", errors="replace")


BODIES = [
    ("application/x-www-form-urlencoded", b"upstream_kind=quay"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nquay\r\n--b--\r\n'),
    ("application/xml", b"<rule/>"),
    ("text/plain", b"quay"),
    ("application/octet-stream", b"\x00\x01"),
]


@pytest.mark.parametrize(
    ("binary_types", "content_type", "encoded"),
    [
        (("application/octet-stream",), "application/octet-stream", True),
        (("application/octet-stream",), "application/json", False),
        (("image/*",), "image/png", True),
        (("image/*",), "text/plain", False),
        (("*/*",), "application/json; charset=utf-8", True),
        (("application/xml",), "Application/XML; charset=utf-8", True),
    ],
)
def test_a_body_is_base64_only_when_its_content_type_matches_a_binary_media_type(
    recorder: Recorder, binary_types: tuple[str, ...], content_type: str, encoded: bool
) -> None:
    # GIVEN a gateway with binary media types
    with ApiGateway(recorder, port=0, binary_media_types=binary_types) as gateway:
        # WHEN a body is sent
        requests.put(
            f"{gateway.endpoint_url}/v1/rules/quay", data=b"\x00{}", headers={"Content-Type": content_type}, timeout=5
        )
    # THEN it is base64 exactly when its Content-Type matches (exactly, type/* or */*)
    event = recorder.events[0]
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == b"\x00{}"


@pytest.mark.parametrize(
    ("accept", "decoded"), [("image/png", True), ("application/json, image/png", False), (None, False)]
)
def test_a_base64_answer_is_decoded_only_when_the_first_accept_type_is_binary(
    recorder: Recorder, accept: str | None, decoded: bool
) -> None:
    # GIVEN a function answering base64 bytes, behind a gateway with image/* as a binary media type
    recorder.answer = {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png"},
        "body": "iVBORw==",
        "isBase64Encoded": True,
    }
    with ApiGateway(recorder, port=0, binary_media_types=("image/*",)) as gateway:
        # WHEN the client asks with an Accept header
        headers = {"Accept": accept} if accept else {}
        response = requests.get(f"{gateway.endpoint_url}/v1/rules", headers=headers, timeout=5)
    # THEN API Gateway decodes it only when the first Accept type is binary; otherwise the base64 text passes
    assert response.content == (base64.b64decode("iVBORw==") if decoded else b"iVBORw==")


def test_binary_media_types_come_from_the_template() -> None:
    # GIVEN the project's template, and one with binary media types on the API and in Globals
    from devstack.local.template import binary_media_types, load_template
    from tests.conftest import ROOT

    assert binary_media_types(load_template(ROOT / "template.yaml")) == ()
    template = {
        "Globals": {"Api": {"BinaryMediaTypes": ["image~1png"]}},
        "Resources": {
            "Api": {"Type": "AWS::Serverless::Api", "Properties": {"BinaryMediaTypes": ["application~1octet-stream"]}},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Events": {"E": {"Type": "Api", "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/v1"}}}
                },
            },
        },
    }
    # WHEN they are read
    # THEN Globals add up with the API's own, and SAM's ~1 is a /
    assert binary_media_types(template) == ("image/png", "application/octet-stream")


def test_form_xml_and_multipart_bodies_are_415_through_the_local_gateway(state_table: str, lambda_context: Any) -> None:
    # GIVEN the local gateway, set up from the template, in front of the real API handler
    from devstack.local.template import binary_media_types, load_template
    from functions.api.app import lambda_handler
    from tests.conftest import ROOT

    types = binary_media_types(load_template(ROOT / "template.yaml"))
    with ApiGateway(lambda event: lambda_handler(event, lambda_context), port=0, binary_media_types=types) as gateway:
        # WHEN a rule is sent as a form, multipart, XML or bytes
        answers = [
            requests.put(f"{gateway.endpoint_url}/v1/rules/quay", data=data, headers={"Content-Type": t}, timeout=10)
            for t, data in BODIES
        ]
    # THEN each is a 415 naming the accepted types (it was a 400 "base64-encoded bodies are not accepted")
    for response in answers:
        assert response.status_code == 415, response.text
        assert response.json()["code"] == "UnsupportedMediaType"
        assert "application/json" in response.json()["message"]


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
