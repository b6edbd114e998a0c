"""Request helpers shared by the routes: the body, caller identity, conditional headers, ETags, YAML."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import BaseModel, ValidationError

from ecrcache.errors import (
    BadRequestError,
    FieldError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    field_errors_from_pydantic,
    invalid,
    loc_to_path,
)
from ecrcache.models.common import parse_resource_name
from ecrcache.parsing import (
    ACCEPTED_MEDIA_TYPES,
    LIMITS,
    YAML_MEDIA_TYPES,
    BodyInvalidError,
    BodySyntaxError,
    BodyTooLargeError,
    dump_yaml,
    media_syntax,
    parse,
    parse_bytes,
)
from ecrcache.services.desired_state import Precondition

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
    return any(t in accept for t in YAML_MEDIA_TYPES)


def yaml_response(data: Any, *, status: int = 200, etag_value: str | None = None) -> Response[Any]:
    text = dump_yaml(data)
    headers = {"ETag": etag_value} if etag_value else {}
    return Response(status_code=status, content_type="application/yaml", body=text, headers=headers)


def normalise_body(event: dict[str, Any]) -> None:
    """Before routing: read the body with the one parser (:mod:`ecrcache.parsing`) and hand the routes canonical JSON.

    JSON and YAML (``Content-Type``, no header meaning JSON) are read within the parser's limits; any
    other media type is a 415 naming the accepted ones. A body API Gateway base64-encoded (its
    ``Content-Type`` matched one of the API's binary media types) is decoded first and then treated
    alike. What the parser refuses is a 413, 400 or 422 naming the field; the routes then validate
    JSON that holds nothing Powertools or pydantic could choke on.
    """
    body = event.get("body")
    if body is None or body == "":
        return
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type")
    syntax = media_syntax(content_type)
    if syntax is None:
        raise _unsupported(content_type)
    try:
        data = parse_bytes(_base64_body(body), syntax) if event.get("isBase64Encoded") else parse(body, syntax)
    except BodyTooLargeError:
        raise PayloadTooLargeError(f"the request body is larger than {LIMITS.max_bytes:,} bytes") from None
    except BodySyntaxError as exc:
        raise _syntax_error(exc, syntax) from None
    except BodyInvalidError as exc:
        raise _invalid(exc) from None
    event["body"] = json.dumps(data)
    event["isBase64Encoded"] = False
    for key in ("headers", "multiValueHeaders"):
        for name in list(event.get(key) or {}):
            if name.lower() == "content-type":
                event[key][name] = "application/json" if key == "headers" else ["application/json"]


def _base64_body(body: str) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise BadRequestError("the request body is marked base64-encoded but is not base64") from None


def _unsupported(content_type: str | None) -> UnsupportedMediaTypeError:
    shown = (content_type or "").split(";")[0].strip()[:100] or "this media type"
    accepted = ", ".join(ACCEPTED_MEDIA_TYPES)
    return UnsupportedMediaTypeError(
        f"{shown} bodies are not accepted; send JSON (application/json) or YAML (application/yaml), "
        f"UTF-8: the accepted media types are {accepted}",
        [FieldError(field="Content-Type", message=f"must be one of {accepted}", type="unsupported_media_type")],
    )


def _syntax_error(exc: BodySyntaxError, syntax: str) -> BadRequestError:
    where = f" (line {exc.line}, column {exc.column})" if exc.line is not None else ""
    if exc.type == "too_deep":
        text = f"the request body is {exc.message}{where}"
    elif exc.type == "not_utf8":
        text = f"the request body is {exc.message}"
    else:
        text = f"the request body is not valid {syntax.upper()}{where}: {exc.message}"
    detail = f"not valid {syntax.upper()}: {exc.message}{where}" if exc.type.endswith("_invalid") else text
    return BadRequestError(text, [FieldError(field="body", message=detail, type=exc.type)])


def _invalid(exc: BodyInvalidError) -> InvalidInputError:
    details = [FieldError(field=loc_to_path(p.loc) or "body", message=p.message, type=p.type) for p in exc.problems]
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
    return InvalidInputError(summary, details)
