"""Request helpers shared by the routes: caller identity, conditional headers, ETags, YAML."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import yaml
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import BaseModel, ValidationError

from ecrcache.errors import (
    BadRequestError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    field_errors_from_pydantic,
    invalid,
)
from ecrcache.models.common import parse_resource_name
from ecrcache.services.desired_state import Precondition
from ecrcache.yaml_safe import ALIAS_PROBLEM, NoAliasLoader

MAX_BODY_BYTES = 1024 * 1024
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')


def caller_arn(app: APIGatewayRestResolver) -> str:
    """The IAM identity API Gateway authenticated (AWS_IAM auth on every method)."""
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or identity.user or "unknown"


def header(app: APIGatewayRestResolver, name: str) -> str | None:
    value = app.current_event.headers.get(name)
    return value if value else None


def parse_etag(value: str, name: str) -> int:
    match = _ETAG.match(value)
    if not match:
        raise invalid(name, 'must be an ETag this API returned, e.g. "3"')
    return int(match.group(1))


def precondition(if_match: str | None, if_none_match: str | None = None) -> Precondition:
    """The conditional headers a route declares, parsed (an empty header counts as absent)."""
    if_match = if_match or None
    if_none_match = if_none_match or None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise invalid("If-None-Match", 'only "*" is supported (create only)')
    if if_match is not None and if_match.strip() == "*":
        # RFC 9110 §13.1.1: "*" holds only when the resource exists.
        return Precondition(if_match_any=True)
    return Precondition(
        if_match=parse_etag(if_match, "If-Match") if if_match is not None else None,
        if_none_match=if_none_match is not None,
    )


def if_match_revision(if_match: str | None) -> int | None:
    """The desired-state revision a document was based on; ``*`` (or nothing) means any."""
    return parse_etag(if_match, "If-Match") if if_match and if_match.strip() != "*" else None


def path_name(raw: str) -> str:
    """Path parameters arrive percent-encoded from REST APIs (a prefix's `/` is `%2F`)."""
    return unquote(raw)


def resource_name(raw: str) -> str:
    """A credential or warm-set name from the path, checked like the body's fields."""
    try:
        return parse_resource_name(path_name(raw))
    except ValidationError as exc:
        details = field_errors_from_pydantic(exc, "name")
        raise InvalidInputError(f"name: {details[0].message}", details) from None


def etag(version: int) -> str:
    return f'"{version}"'


def json_response[M: BaseModel | dict[str, Any]](
    model: M, *, status: int = 200, version: int | None = None
) -> Response[M]:
    """A JSON response; Powertools validates and serialises ``model`` against the route's declared type."""
    headers = {"ETag": etag(version)} if version is not None else {}
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model, headers=headers)


def wants_yaml(app: APIGatewayRestResolver, format_param: str | None) -> bool:
    if format_param is not None:
        return format_param == "yaml"
    accept = header(app, "Accept") or ""
    return any(t in accept for t in YAML_TYPES)


def yaml_response(data: Any, *, status: int = 200, etag_value: str | None = None) -> Response[Any]:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    headers = {"ETag": etag_value} if etag_value else {}
    return Response(status_code=status, content_type="application/yaml", body=text, headers=headers)


JSON_TYPES = ("application/json",)


def normalise_body(event: dict[str, Any]) -> None:
    """Before routing: enforce the body size and turn a YAML body into the JSON the routes validate."""
    body = event.get("body")
    if body is None:
        return
    if event.get("isBase64Encoded"):
        raise BadRequestError("base64-encoded bodies are not accepted; send JSON or YAML text")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if body and content_type and content_type not in YAML_TYPES and not content_type.endswith("json"):
        raise UnsupportedMediaTypeError(f"{content_type} bodies are not accepted; send application/json")
    if content_type in YAML_TYPES:
        event["body"] = json.dumps(_load_yaml(body), default=str)
        for key in ("headers", "multiValueHeaders"):
            for name in list(event.get(key) or {}):
                if name.lower() == "content-type":
                    event[key][name] = "application/json" if key == "headers" else ["application/json"]


def _load_yaml(body: str) -> Any:
    """A YAML body as data; what makes it unreadable (or an alias) is a 400 saying where."""
    try:
        return yaml.load(body, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f": {problem}" if problem == ALIAS_PROBLEM else ""
        raise BadRequestError(f"the request body is not valid YAML{where}{detail}") from exc
    except RecursionError as exc:
        raise BadRequestError("the request body is nested too deeply") from exc
