"""Schemathesis against the api ``lambda_handler`` in-process: a generated case becomes an API Gateway event.

Schemathesis builds the HTTP request (``requests.PreparedRequest``: path parameters percent-encoded,
query string, headers, serialised body); :func:`invoke` turns it into the REST proxy event API Gateway
would deliver (path kept percent-encoded, query decoded) and the handler's answer into a
:class:`schemathesis.Response`, so schemathesis's own checks validate it against the spec.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import schemathesis
from hypothesis import strategies as st
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


def error_shape_problem(status: int, content: bytes) -> str | None:
    """Every 4xx/5xx body is ``{"code", "message", "details"}`` as JSON; ``None`` when it is."""
    if status < 400:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status} body is not JSON: {content[:200]!r}"
    if not isinstance(body, dict) or set(body) != {"code", "message", "details"}:
        return f"{status} body is not the error shape: {content[:200]!r}"
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


# -- hostile bodies: what schemathesis does not generate ------------------------------------------------------
#
# Schemathesis writes well-formed JSON (or YAML) from the spec. These strategies write the bodies a hostile or
# careless client sends: huge integers, deep nesting, duplicate keys, YAML 1.1 spellings, tags and aliases,
# odd or wrong content types, base64 bodies. Each is a text the body parser and the routes must answer with a
# 2xx or a 4xx in the error shape, never a 5xx.

BODY_ROUTES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "PUT /v1/rules/{prefix}": ("PUT", "/v1/rules/quay", {"upstream_kind": "quay", "description": "d"}),
    "PUT /v1/credentials/{name}": (
        "PUT",
        "/v1/credentials/hub",
        {"upstream_kind": "docker-hub", "username": "u", "token": "t0k3n"},
    ),
    "PUT /v1/warm-sets/{name}": ("PUT", "/v1/warm-sets/ws", {"rule": "quay", "top": {"count": 5}}),
    "PUT /v1/desired-state": ("PUT", "/v1/desired-state", {"version": 1, "rules": {"quay": {"upstream_kind": "quay"}}}),
    "POST /v1/credentials/{name}/rotations": ("POST", "/v1/credentials/hub/rotations", {"token": "t0k3n-2"}),
    "POST /v1/reconcile": ("POST", "/v1/reconcile", {"deep": True}),
    "POST /v1/import": ("POST", "/v1/import", {"regions": ["us-east-1"]}),
}

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/yaml",
    "text/yaml",
    "application/x-yaml",
    "text/x-yaml; charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "text/xml",
    "text/plain",
    "text/json",
    "application/vnd.api+json",
    "application/octet-stream",
    "image/png",
    "*/*",
    "",
    "json",
    ";;;",
]
ODD_YAML_SCALARS = [
    "~", "null", "Null", "true", "TRUE", "yes", "no", "on", "off", "y", "0x1", "0o17", "010", "0b101", "1_000",
    "1.0", ".5", "1e3", "1e999", ".inf", "-.inf", ".nan", "1:20", "190:20:30", "2024-01-01",
    "2001-12-14t21:59:43.10-05:00", "<<", "=", "!!binary aGk=", "!!timestamp 2024-01-01", "!!str 1", "!!int 12",
    "!!int abc", "!!float 1", "!!bool yes", "!!null ''", "!!python/object/apply:os.system ['true']", "!local x",
    "!!set {a}", "&a x", "*a", "'quoted'", '"\\u0000"', '"\\ud800"', '"\\x07"', "|\n  block", ">\n  folded",
    "[]", "{}", "[a, b", "{a: 1, a: 2}", "{token:SECRET}", "? [a]\n: 1", "-", "---", "...", "%YAML 1.1",
]  # fmt: skip
KEYS = [
    "upstream_kind", "description", "version", "rules", "credentials", "warm_sets", "deep", "regions", "top",
    "count", "quay", "hub", "token", "token:SECRET", "password=x", "~", "true", "0x1", "1.0", "2024-01-01", "<<",
    "", " ", "é", "x" * 300,
]  # fmt: skip


@dataclass(frozen=True)
class HostileRequest:
    """One generated request: the raw body text, its Content-Type (None: no header) and whether it is base64."""

    body: str
    content_type: str | None
    base64: bool

    def event(self, method: str, path: str, caller: str = ALICE) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        raw = self.body
        if self.base64:
            raw = base64.b64encode(self.body.encode("utf-8", "surrogatepass")).decode("ascii")
        event = api_event(method, path, raw_body=raw, caller=caller)
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        event["isBase64Encoded"] = self.base64
        return event


def _digits(count: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", "-"]), count).map(lambda t: t[0] + "9" * t[1])


def _nested(depth: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.tuples(depth, st.booleans()).map(
        lambda t: ('{"a": ' * t[0] + "1" + "}" * t[0]) if t[1] else ("[" * t[0] + "]" * t[0])
    )


HUGE_DIGITS = st.sampled_from([21, 64, 4300, 4301, 5000, 20_000])
DEEP_LEVELS = st.sampled_from([33, 40, 1000, 5000])

# Raw JSON value texts: well-formed JSON values a parser may still choke on, and plain odd values.
JSON_VALUE_TEXT: st.SearchStrategy[str] = st.one_of(
    _digits(HUGE_DIGITS),
    _digits(HUGE_DIGITS),
    _nested(DEEP_LEVELS),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1.0", "0.5", "true", "false", "null"]),
    st.sampled_from(['"\\ud800"', '"\\u0000"', '"' + "x" * 20_000 + '"', '{"a": 1, "a": 2}', "[1, 1]", "{}", "[]"]),
    st.text(max_size=30).map(json.dumps),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@st.composite
def json_mutant(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """The base body as JSON text with odd values spliced in, at the top or one level down, keys perhaps repeated."""
    members = [(key, json.dumps(value)) for key, value in base.items()]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from([*base, *KEYS]))
        value = draw(JSON_VALUE_TEXT)
        if draw(st.booleans()):  # one level down: {"top": {"count": <value>}}
            value = "{" + f"{json.dumps(draw(st.sampled_from(KEYS)))}: {value}" + "}"
        members.append((key, value))
    if draw(st.booleans()):
        members = draw(st.permutations(members))
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in members) + "}"


@st.composite
def yaml_mutant(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """The base body as block YAML with odd scalars, tags, aliases and keys mixed in."""
    lines = [f"{key}: {json.dumps(value)}" for key, value in base.items()]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        key = draw(st.sampled_from([*base, *KEYS, *ODD_YAML_SCALARS[:30]]))
        value = draw(
            st.one_of(
                st.sampled_from(ODD_YAML_SCALARS),
                _digits(HUGE_DIGITS),
                DEEP_LEVELS.map(lambda n: "[" * n + "]" * n),
                st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
            )
        )
        if draw(st.integers(min_value=0, max_value=5)) == 0:  # now and then, odd indentation
            key = draw(st.sampled_from(["  ", "\t", " "])) + key
        lines.append(f"{key}: {value}")
    if draw(st.booleans()):
        lines = draw(st.permutations(lines))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "\n", "", "\n---\nx: 1\n"]))


def hostile_requests(base: dict[str, Any]) -> st.SearchStrategy[HostileRequest]:
    """Bodies for a route whose valid body looks like ``base``, with a content type that may not fit them."""
    # Mostly a type the API reads, so the body reaches the parser; now and then any other.
    json_types = st.sampled_from(["application/json", "application/json; charset=utf-8", None])
    yaml_types = st.sampled_from(["application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"])
    json_like = st.builds(
        HostileRequest,
        body=json_mutant(base),
        content_type=st.one_of(json_types, json_types, json_types, st.sampled_from(CONTENT_TYPES)),
        base64=st.sampled_from([False, False, False, True]),
    )
    yaml_like = st.builds(
        HostileRequest,
        body=yaml_mutant(base),
        content_type=st.one_of(yaml_types, yaml_types, yaml_types, st.sampled_from(CONTENT_TYPES)),
        base64=st.sampled_from([False, False, False, True]),
    )
    anything = st.builds(
        HostileRequest,
        body=st.one_of(st.text(max_size=200), st.just(json.dumps(base)), st.just("upstream_kind=quay&x=1")),
        content_type=st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), st.text(max_size=30)),
        base64=st.booleans(),
    )
    return st.one_of(json_like, json_like, json_like, yaml_like, yaml_like, anything)
