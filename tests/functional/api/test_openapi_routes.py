"""The API describes itself: `/v1/openapi.json` and the Swagger UI at `/v1/docs`, served by the same handler."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.functional.api.client import ApiClient

pytestmark = pytest.mark.functional

EXPECTED_OPERATIONS = {
    ("/v1/rules", "get"),
    ("/v1/rules/{prefix}", "get"),
    ("/v1/rules/{prefix}", "put"),
    ("/v1/rules/{prefix}", "delete"),
    ("/v1/credentials", "get"),
    ("/v1/credentials/{name}", "get"),
    ("/v1/credentials/{name}", "put"),
    ("/v1/credentials/{name}", "delete"),
    ("/v1/warm-sets", "get"),
    ("/v1/warm-sets/{name}", "get"),
    ("/v1/warm-sets/{name}", "put"),
    ("/v1/warm-sets/{name}", "delete"),
    ("/v1/desired-state", "get"),
    ("/v1/desired-state", "put"),
    ("/v1/history", "get"),
    ("/v1/pulls", "get"),
}


def served_spec(api: ApiClient) -> dict[str, Any]:
    response = api.get("/v1/openapi.json")
    assert response.status == 200, response.text
    spec: dict[str, Any] = response.json
    return spec


@cache
def generated_spec() -> dict[str, Any]:
    from ecrcache.http.app import openapi_json
    from functions.api.app import app

    spec: dict[str, Any] = json.loads(openapi_json(app))
    return spec


def test_openapi_json_is_served_as_json(api: ApiClient) -> None:
    # GIVEN the api function
    # WHEN the spec is fetched
    response = api.get("/v1/openapi.json")
    # THEN it is OpenAPI 3.1 JSON describing the desired-state operations (the controller's too)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    spec = response.json
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] == "ecrcache API"
    assert {(p, m) for p, item in spec["paths"].items() for m in item} >= EXPECTED_OPERATIONS
    assert {t["name"] for t in spec["tags"]} >= {"rules", "credentials", "warm-sets", "desired-state", "history"}
    assert "/v1/openapi.json" not in spec["paths"]
    assert "/v1/docs" not in spec["paths"]


def test_openapi_json_is_the_spec_the_resolver_generates(api: ApiClient) -> None:
    # GIVEN the api function
    # WHEN the served spec is compared with the one generated from the resolver
    # THEN they are the same document
    assert served_spec(api) == generated_spec()
    assert api.get("/v1/openapi.json").json == served_spec(api)


def test_openapi_docs_serve_swagger_ui(api: ApiClient) -> None:
    # GIVEN the api function
    # WHEN the docs are opened in a browser
    page = api.get("/v1/docs", headers={"Accept": "text/html"})
    # THEN it is the Swagger UI page, self-contained (the API runs in private networks too)
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html"
    assert "SwaggerUIBundle" in page.text
    assert not re.search(r"<script[^>]+src=\"https?://", page.text)


def test_openapi_docs_json_describes_the_same_operations(api: ApiClient) -> None:
    # GIVEN the api function
    # WHEN the docs' own spec is fetched
    docs = api.get("/v1/docs", query={"format": "json"})
    # THEN it describes the same operations with the same schemas as /v1/openapi.json
    assert docs.status == 200
    assert docs.json["paths"] == served_spec(api)["paths"]
    assert docs.json["components"] == served_spec(api)["components"]


def test_openapi_every_write_describes_its_preconditions() -> None:
    # GIVEN the spec (the one served, see above)
    spec = generated_spec()
    # WHEN the parameters of every PUT and DELETE are listed
    # THEN each takes If-Match, each single-resource PUT also If-None-Match
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
            if method in {"put", "delete"}:
                assert "if-match" in names, (path, method)
            if method == "put" and "{" in path:
                assert "if-none-match" in names, (path, method)


def test_openapi_credential_token_is_write_only_in_the_spec() -> None:
    # GIVEN the spec (the one served, see above)
    schemas = generated_spec()["components"]["schemas"]
    # WHEN the credential schemas are read
    # THEN the token is in the request body only, never in what the API returns
    assert "token" in schemas["CredentialPut-Input"]["properties"]
    assert "token" not in schemas["CredentialSpec"]["properties"]
    assert "token" not in schemas["CredentialResource"]["properties"]
    assert "token" not in schemas["CredentialPut-Output"].get("properties", {})


@pytest.mark.parametrize(("path", "method"), sorted(EXPECTED_OPERATIONS))
def test_openapi_every_documented_operation_is_routed(api: ApiClient, path: str, method: str) -> None:
    # GIVEN an operation of the spec
    concrete = path.replace("{prefix}", "quay").replace("{name}", "nothing-here")
    # WHEN it is called (with an empty body for writes)
    response = api.call(method.upper(), concrete, body={} if method == "put" else None)
    # THEN the router finds it: whatever the answer, it is not "no route"
    assert "no route for" not in response.text, response.text


def error_param(path: str, method: str) -> Any:
    return pytest.param(path, method, id=f"{method.upper()} {path}")


@pytest.mark.parametrize(("path", "method"), [error_param(p, m) for p, m in sorted(EXPECTED_OPERATIONS)])
def test_openapi_every_documented_error_uses_the_error_shape(path: str, method: str) -> None:
    # GIVEN the spec (the one served, see above)
    responses = generated_spec()["paths"][path][method]["responses"]
    # WHEN its 4xx/5xx responses are read
    errors = {status: r for status, r in responses.items() if status[0] in "45"}
    # THEN each one documents the ErrorResponse schema the API answers with
    assert errors
    for status, response in errors.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (status, schema)
