"""Assertions on the API's answers, shared by the functional API tests.

The API has one error shape for every 4xx/5xx (``{"code", "message", "details": [{"field",
"message", "type"}]}`` as JSON) and a 503 always says when to retry; it is checked here, once, so
that every test that expects an error checks the whole contract and not a copy of part of it.
"""

from __future__ import annotations

from typing import Any

from tests.functional.api.client import ApiResponse


def assert_error_shape(response: ApiResponse) -> dict[str, Any]:
    """The error body of ``response``, after checking it has the one error shape."""
    assert response.headers.get("Content-Type") == "application/json", response.headers
    body: dict[str, Any] = response.json
    assert set(body) == {"code", "message", "details"}
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["message"], str)
    assert body["message"]
    for detail in body["details"]:
        assert set(detail) == {"field", "message", "type"}
        assert all(isinstance(v, str) and v for v in detail.values())
    return body


def assert_error(response: ApiResponse, status: int, code: str) -> dict[str, Any]:
    """The error body of ``response``, after checking its status, shape and code (and, for a 503,
    the ``Retry-After`` header)."""
    assert response.status == status, response.text
    body = assert_error_shape(response)
    assert body["code"] == code
    if status == 503:
        assert response.headers.get("Retry-After", "").isdigit()
    return body


def fields(response: ApiResponse) -> list[str]:
    """The fields an error's details name, in order."""
    return [d["field"] for d in response.json["details"]]
