"""One error shape for every 4xx/5xx, and never a 500 for bad input.

``{"code", "message", "details": [{"field", "message", "type"}]}`` with ``Content-Type: application/json``,
whether the error comes from routing, body parsing (before routing), request validation or the service.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functional.api.assertions import assert_error, assert_error_shape
from tests.functional.api.client import ApiClient, ApiResponse, api_event

pytestmark = pytest.mark.functional

MIB = 1024 * 1024
QUAY: dict[str, Any] = {"upstream_kind": "quay"}


def seeded(api: ApiClient) -> ApiClient:
    """A rule used by a warm set, and a credential used by a rule."""
    api.put("/v1/credentials/hub", {"upstream_kind": "docker-hub", "username": "u", "token": "t"})
    api.put("/v1/rules/hub", {"upstream_kind": "docker-hub", "credential": "hub"})
    api.put("/v1/rules/quay", QUAY)
    api.put("/v1/warm-sets/ws", {"rule": "quay", "images": ["coreos/etcd:v3.5.0"]})
    return api


ERRORS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("malformed-json", "PUT", "/v1/rules/quay", {"raw_body": '{"upstream_kind": "quay",}'}, 400, "BadRequest"),
    (
        "malformed-yaml",
        "PUT",
        "/v1/desired-state",
        {"raw_body": "rules: [", "headers": {"Content-Type": "application/yaml"}},
        400,
        "BadRequest",
    ),
    ("unknown-route", "GET", "/v1/repositories", {}, 404, "NotFound"),
    ("unknown-method", "POST", "/v1/rules", {"body": QUAY}, 404, "NotFound"),
    ("unknown-rule", "GET", "/v1/rules/nope", {}, 404, "NotFound"),
    ("unknown-credential", "DELETE", "/v1/credentials/nope", {}, 404, "NotFound"),
    ("unknown-warm-set", "GET", "/v1/warm-sets/nope", {}, 404, "NotFound"),
    ("rule-in-use", "DELETE", "/v1/rules/quay", {}, 409, "Conflict"),
    ("credential-in-use", "DELETE", "/v1/credentials/hub", {}, 409, "Conflict"),
    (
        "stale-if-match",
        "PUT",
        "/v1/rules/quay",
        {"body": QUAY, "headers": {"If-Match": '"5"'}},
        412,
        "PreconditionFailed",
    ),
    ("exists", "PUT", "/v1/rules/quay", {"body": QUAY, "headers": {"If-None-Match": "*"}}, 412, "PreconditionFailed"),
    ("too-large", "PUT", "/v1/rules/quay", {"raw_body": " " * (MIB + 1)}, 413, "PayloadTooLarge"),
    (
        "media-type",
        "PUT",
        "/v1/rules/quay",
        {"raw_body": "upstream_kind: quay", "headers": {"Content-Type": "text/plain"}},
        415,
        "UnsupportedMediaType",
    ),
    ("invalid-body", "PUT", "/v1/rules/quay", {"body": {"upstream_kind": "dockerhub"}}, 422, "ValidationFailed"),
    ("invalid-query", "GET", "/v1/history", {"query": {"limit": "0"}}, 422, "ValidationFailed"),
    ("invalid-header", "PUT", "/v1/rules/quay", {"body": QUAY, "headers": {"If-Match": "v5"}}, 422, "ValidationFailed"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_error_every_status_has_the_one_error_shape(
    api: ApiClient, *, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    # GIVEN a seeded state (where the failure needs one)
    if status in (409, 412):
        seeded(api)
    # WHEN a request fails in any of the ways the API knows
    response = api.call(method, path, **kwargs)
    # THEN the status and code match and the body is the one error shape
    assert_error(response, status, code)


def test_error_422_details_name_every_field_and_the_message_summarises(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a rule body breaks four rules
    body = {"upstream_kind": "quay", "regions": ["cn-north-1"], "deletion_policy": "purge", "x": 1, "y": 2}
    refused = api.put("/v1/rules/quay", body)
    # THEN every field is in details, and the message summarises the first three
    assert refused.status == 422
    details = assert_error_shape(refused)["details"]
    assert sorted(d["field"] for d in details) == ["deletion_policy", "regions", "x", "y"]
    assert refused.json["message"].count(": ") == 3


def test_error_malformed_json_is_400_not_422(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the body is not JSON at all
    refused = api.put("/v1/rules/quay", raw_body="upstream_kind: quay")
    # THEN it is 400 with the body as the field, and the parser's reason
    assert refused.status == 400
    detail = assert_error_shape(refused)["details"][0]
    assert detail["field"] == "body"
    assert detail["type"] == "json_invalid"


def test_error_base64_body_of_a_binary_type_is_415(api: ApiClient) -> None:
    # GIVEN an event API Gateway marked as base64 (its Content-Type matched a binary media type)
    event = api_event("PUT", "/v1/rules/quay", raw_body="AAEC", headers={"Content-Type": "application/octet-stream"})
    event["isBase64Encoded"] = True
    # WHEN it reaches the handler
    out = api.handler(event, api.context)
    # THEN it is 415 in the error shape (a base64 JSON or YAML body is decoded and read like text)
    response = ApiResponse(out["statusCode"], {k: v[-1] for k, v in out["multiValueHeaders"].items()}, out["body"], out)
    assert_error(response, 415, "UnsupportedMediaType")


def test_error_body_size_limit_is_one_mib_in_bytes(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a body of exactly 1 MiB and one of 1 MiB + 1 byte (counted in UTF-8 bytes) are sent
    padding = " " * (MIB - len(json.dumps(QUAY)))
    at_limit = api.put("/v1/rules/quay", raw_body=json.dumps(QUAY) + padding)
    over_by_multibyte = api.put("/v1/rules/quay", raw_body="é" * (MIB // 2) + " ")
    # THEN the first is processed and the second is 413
    assert at_limit.status == 201, at_limit.text
    assert_error(over_by_multibyte, 413, "PayloadTooLarge")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_error_unsupported_media_type_is_415(api: ApiClient, content_type: str) -> None:
    # GIVEN nothing written yet
    # WHEN a rule is sent with a media type the API does not read
    refused = api.put("/v1/rules/quay", raw_body=json.dumps(QUAY), headers={"Content-Type": content_type})
    # THEN it is 415 and nothing is written
    assert_error(refused, 415, "UnsupportedMediaType")
    assert api.get("/v1/rules/quay").status == 404


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/x-www-form-urlencoded", "upstream_kind=quay"),
        (
            "multipart/form-data; boundary=b",
            '--b\r\nContent-Disposition: form-data; name="upstream_kind"\r\n\r\nquay\r\n--b--\r\n',
        ),
    ],
    ids=["urlencoded", "multipart"],
)
def test_error_form_bodies_are_415(api: ApiClient, content_type: str, text: str) -> None:
    # GIVEN nothing written yet
    # WHEN a rule is sent as an HTML form
    refused = api.put("/v1/rules/quay", raw_body=text, headers={"Content-Type": content_type})
    # THEN it is 415 like every other media type the API does not read
    assert refused.status == 415, refused.text
    assert_error_shape(refused)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/yaml", "text/yaml"])
def test_error_json_and_yaml_media_types_are_accepted(api: ApiClient, content_type: str) -> None:
    # GIVEN nothing written yet
    # WHEN a rule is sent as JSON with parameters, or as YAML
    text = json.dumps(QUAY) if "json" in content_type else "upstream_kind: quay\n"
    created = api.put("/v1/rules/quay", raw_body=text, headers={"Content-Type": content_type})
    # THEN it is created
    assert created.status == 201, created.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/rules/%ZZ"),
        ("PUT", "/v1/rules/%ZZ"),
        ("GET", "/v1/rules/%00"),
        ("PUT", "/v1/rules/%00"),
        ("DELETE", "/v1/rules/%C3%28"),
        ("PUT", "/v1/credentials/%E2%80%AE"),
        ("GET", "/v1/warm-sets/%2F"),
        ("PUT", "/v1/rules/" + "a" * 101),
        ("GET", "/v1/rules/..%2F..%2Fcredentials"),
        ("GET", "/v1/history?kind=rule"),
    ],
)
def test_error_odd_paths_are_never_a_500(api: ApiClient, method: str, path: str) -> None:
    # GIVEN nothing written yet
    # WHEN a path holds odd percent-encodings, control characters or traversal
    response = api.call(method, path, body=QUAY if method == "PUT" else None)
    # THEN it is a 4xx in the error shape
    assert 400 <= response.status < 500, response.text
    assert_error_shape(response)


@pytest.mark.parametrize(
    "text",
    ["null", "[]", '"quay"', "42", "NaN", "1e999999", '{"upstream_kind": "quay", "upstream_kind": 7}', "\ufeff{}"],
    ids=["null", "list", "string", "number", "nan", "huge", "duplicate-key", "bom"],
)
def test_error_json_that_is_not_an_object_is_a_4xx(api: ApiClient, text: str) -> None:
    # GIVEN nothing written yet
    # WHEN the JSON body is valid JSON of the wrong shape
    response = api.put("/v1/rules/quay", raw_body=text)
    # THEN it is a 4xx in the error shape
    assert 400 <= response.status < 500, response.text
    assert_error_shape(response)


def test_error_yaml_cannot_run_code(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a YAML body asks for a Python object
    refused = api.put(
        "/v1/desired-state",
        raw_body="rules: !!python/object/apply:os.system ['true']\n",
        headers={"Content-Type": "application/yaml"},
    )
    # THEN the parser refuses the tag where it stands (nothing outside the YAML 1.2 core schema is constructed)
    body = assert_error(refused, 422, "ValidationFailed")
    assert [(d["field"], d["type"]) for d in body["details"]] == [("rules", "yaml_tag")]


def test_error_deeply_nested_json_is_400(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the JSON body nests 50,000 arrays
    refused = api.put("/v1/rules/quay", raw_body="[" * 50_000 + "]" * 50_000)
    # THEN it is a 400 like any other unreadable body
    assert refused.status == 400, refused.text
    assert_error_shape(refused)


def test_error_deeply_nested_yaml_is_400(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN the YAML body nests 1,000 flow sequences
    refused = api.put(
        "/v1/desired-state", raw_body="[" * 1000 + "]" * 1000, headers={"Content-Type": "application/yaml"}
    )
    # THEN it is a 400 like any other unreadable body
    assert refused.status == 400, refused.text
    assert_error_shape(refused)


def yaml_alias_bomb(levels: int, width: int = 10) -> str:
    """A few hundred bytes of YAML whose aliases expand to width**levels strings (the 'billion laughs')."""
    lines = ['a0: &a0 "' + "x" * 50 + '"']
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]" for n in range(1, levels + 1)]
    lines.append(f"rules: {{quay: *a{levels}}}")
    return "\n".join(lines)


def test_error_yaml_alias_expansion_is_bounded(api: ApiClient) -> None:
    # GIVEN nothing written yet
    # WHEN a 374-byte YAML document expands, through aliases, to 100,000 strings
    bomb = yaml_alias_bomb(levels=5)
    assert len(bomb.encode()) < 400
    refused = api.put("/v1/desired-state", raw_body=bomb, headers={"Content-Type": "application/yaml"})
    # THEN it is refused as too large (or as bad YAML) before it is expanded
    assert refused.status in (400, 413), refused.text
    assert_error_shape(refused)
