"""Drive the api ``lambda_handler`` in-process with API Gateway REST proxy events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

ALICE = "arn:aws:iam::123456789012:user/alice"


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    caller: str = ALICE,
) -> dict[str, Any]:
    """An event as API Gateway (REST, AWS_IAM auth, stage ``prod``) delivers it; the path stays percent-encoded."""
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    return {
        "resource": "/v1/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.removeprefix("/v1/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abc123",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"userArn": caller, "caller": "AIDAEXAMPLE", "user": "AIDAEXAMPLE", "sourceIp": "127.0.0.1"},
            "resourcePath": "/v1/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
        },
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")


def enc(name: str) -> str:
    return quote(name, safe="")


class ApiClient:
    """Calls ``functions.api.app.lambda_handler`` like API Gateway would."""

    def __init__(self, context: Any) -> None:
        from functions.api import app as api_app

        self.handler = api_app.lambda_handler
        self.context = context

    def event(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The event :meth:`call` would send (to change before :meth:`send`)."""
        return api_event(method, path, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        return self.send(api_event(method, path, **kwargs))

    def send(self, event: dict[str, Any]) -> ApiResponse:
        out = self.handler(event, self.context)
        headers = {k: v[-1] for k, v in (out.get("multiValueHeaders") or {}).items()}
        headers.update(out.get("headers") or {})
        return ApiResponse(status=out["statusCode"], headers=headers, text=out.get("body") or "", raw=out)

    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.call("GET", path, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
        return self.call("PUT", path, body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.call("DELETE", path, **kwargs)
