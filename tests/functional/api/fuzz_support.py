"""Schemathesis against the api ``lambda_handler`` in-process: a generated case becomes an API Gateway event.

Schemathesis builds the HTTP request (``requests.PreparedRequest``: path parameters percent-encoded,
query string, headers, serialised body); :func:`invoke` turns it into the REST proxy event API Gateway
would deliver (path kept percent-encoded, query decoded) and the handler's answer into a
:class:`schemathesis.Response`, so schemathesis's own checks validate it against the spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import schemathesis
from schemathesis import Response

from tests.functional.api.aws_support import aws
from tests.functional.api.client import ALICE, api_event
from tests.template import table_definition, table_ttl_attribute

BASE_URL = "http://api.test"
# Headers requests/schemathesis add that API Gateway would not pass on, or that carry no meaning here.
DROPPED_HEADERS = frozenset({"authorization", "connection", "accept-encoding", "content-length"})

Check = Callable[..., Any]


def load_schema() -> Any:
    """The spec the API serves, generated from the resolver (not the committed snapshot)."""
    from ecrcache.http.app import openapi_json
    from functions.api.app import app

    return schemathesis.openapi.from_dict(json.loads(openapi_json(app)))


def event_for(request: requests.PreparedRequest, caller: str = ALICE) -> dict[str, Any]:
    """The API Gateway REST proxy event for ``request`` (path percent-encoded, query decoded)."""
    url = urlsplit(request.url or "")
    query = dict(parse_qsl(url.query, keep_blank_values=True)) or None
    body = request.body
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_HEADERS}
    event = api_event(str(request.method), url.path, raw_body=text, query=query, caller=caller)
    # api_event adds JSON Content-Type/Accept; a generated request says what it sends, or nothing.
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


def to_response(out: dict[str, Any], request: requests.PreparedRequest) -> Response:
    """The handler's proxy result as the response schemathesis validates."""
    headers: dict[str, list[str]] = {k.lower(): list(v) for k, v in (out.get("multiValueHeaders") or {}).items()}
    for name, value in (out.get("headers") or {}).items():
        headers[name.lower()] = [value]
    return Response(
        status_code=out["statusCode"],
        headers=headers,
        content=(out.get("body") or "").encode(),
        request=request,
        elapsed=0.0,
        verify=True,
    )


def prepare(case: Any) -> requests.PreparedRequest:
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    return requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
    ).prepare()


def invoke(case: Any, context: Any) -> Response:
    """Send one generated case through ``lambda_handler``."""
    from functions.api.app import lambda_handler

    request = prepare(case)
    return to_response(lambda_handler(event_for(request), context), request)


def check_failures(case: Any, response: Response, checks: Iterable[Check]) -> dict[str, str]:
    """Run each schemathesis check on its own: check name -> failure report (empty when all pass)."""
    found: dict[str, str] = {}
    for check in checks:
        try:
            case.validate_response(response, checks=[check])
        except BaseException as exc:  # schemathesis raises a FailureGroup (a BaseExceptionGroup)
            if isinstance(exc, KeyboardInterrupt):
                raise
            found[check.__name__] = str(exc)
    return found


def error_shape_problem(response: Response) -> str | None:
    """Every 4xx/5xx body is ``{"code", "message", "details"}`` as JSON; ``None`` when it is."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"{response.status_code} body is not JSON: {response.content[:200]!r}"
    if not isinstance(body, dict) or set(body) != {"code", "message", "details"}:
        return f"{response.status_code} body is not the error shape: {response.content[:200]!r}"
    return None


@dataclass
class Observation:
    """What one generated case got back, and which checks failed on it."""

    request: str
    status: int
    failures: dict[str, str] = field(default_factory=dict)


def reset_state(table: str) -> None:
    """A fresh state table (from the template) and no secrets: the state each fuzzed operation starts from."""
    dynamodb = aws("dynamodb")
    if table in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=table)
    dynamodb.create_table(TableName=table, **table_definition())
    if ttl_attribute := table_ttl_attribute():
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
        )
    secrets = aws("secretsmanager")
    for secret in secrets.list_secrets(IncludePlannedDeletion=True)["SecretList"]:
        secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
