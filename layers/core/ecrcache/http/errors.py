"""One error shape for every 4xx/5xx the API returns: ``{"code", "message", "details"}``.

The single exception -> HTTP table (style.md §6.9 item 2): domain errors carry their status;
request validation failures become 422 (or 400 when the body is not JSON at all); anything
unexpected is a 500 whose message names no internals.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from ecrcache.errors import EcrcacheError, FieldError, RetryableError, loc_to_path, render_validation_errors
from ecrcache.observability import logger
from ecrcache.parsing import ACCEPTED_MEDIA_TYPES


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Dotted path of the offending field, e.g. `lifecycle.rules[0].selection.countUnit`.")
    message: str = Field(description="The rule that was broken.")
    type: str = Field(description="Machine-readable error type.")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable error code, e.g. `ValidationFailed`, `NotFound`, `PreconditionFailed`.")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


def error_response(
    status: int, code: str, message: str, details: list[FieldError] | None = None, *, retry_after: int | None = None
) -> Response[Any]:
    body = ErrorResponse(
        code=code,
        message=message,
        details=[ErrorDetail(**d.as_dict()) for d in (details or [])],
    )
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=headers,
    )


# Paths Powertools reports start with where the value came from; keep that for query/header/path
# parameters and drop it for the body, so a body field reads `upstream_kind`, not `body.upstream_kind`.
def _field_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return loc_to_path(parts) or "body"


def _validation_details(exc: RequestValidationError) -> list[FieldError]:
    details = []
    for err in render_validation_errors(exc.errors()):
        loc, message = err.loc, err.message
        if err.type == "json_invalid":  # the parser before routing catches these; kept for a direct resolve()
            message, loc = "not valid JSON", ("body",)
        details.append(FieldError(field=_field_path(loc), message=message, type=err.type))
    return details


def request_id(event: Any, context: Any) -> str:
    """API Gateway's request id (the logs' correlation id), else the Lambda request id."""
    try:
        found = event["requestContext"]["requestId"]
    except (KeyError, TypeError, IndexError):
        found = None
    found = found or getattr(context, "aws_request_id", None)
    return str(found) if found else "unknown"


def internal_error_message(request_id: str) -> str:
    """The 500's message: the request id to quote, which the log line with the exception carries too."""
    return f"an unexpected error occurred; quote request id {request_id} when reporting it"


def proxy_error(exc: EcrcacheError | None, request_id: str) -> dict[str, Any]:
    """An error as the API Gateway proxy result, for failures outside the resolver (``None``: unexpected)."""
    if exc is None:
        body = ErrorResponse(code="InternalError", message=internal_error_message(request_id))
        status = 500
    else:
        details = [ErrorDetail(**d.as_dict()) for d in exc.details]
        body = ErrorResponse(code=exc.code, message=exc.message, details=details)
        status = exc.status
    return {
        "statusCode": status,
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    def _validation(exc: RequestValidationError) -> Response[Any]:
        details = _validation_details(exc)
        if any(d.type == "json_invalid" for d in details):
            return error_response(400, "BadRequest", "the request body is not valid JSON", details)
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
        return error_response(422, "ValidationFailed", summary or "the request is invalid", details)

    def _domain(exc: EcrcacheError) -> Response[Any]:
        retry_after = None
        if isinstance(exc, RetryableError):
            logger.warning("retryable failure", extra={"code": exc.code, "error": exc.message})
            retry_after = 2
        return error_response(exc.status, exc.code, exc.message, list(exc.details), retry_after=retry_after)

    def _too_deep(exc: RecursionError) -> Response[Any]:
        return error_response(400, "BadRequest", "the request body is nested too deeply")

    def _media_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        accepted = ", ".join(ACCEPTED_MEDIA_TYPES)
        return error_response(415, "UnsupportedMediaType", f"the accepted media types are {accepted}")

    def _bad_json(exc: json.JSONDecodeError) -> Response[Any]:
        return error_response(
            400, "BadRequest", f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        )

    def _not_found(exc: Exception) -> Response[Any]:
        return error_response(404, "NotFound", f"no route for {app.current_event.http_method} {app.current_event.path}")

    def _unexpected(exc: Exception) -> Response[Any]:
        correlation = request_id(app.current_event.raw_event, app.lambda_context)
        logger.exception("unhandled error", extra={"request_id": correlation})
        return error_response(500, "InternalError", internal_error_message(correlation))

    app.exception_handler(RequestValidationError)(_validation)
    app.exception_handler(EcrcacheError)(_domain)
    app.exception_handler(json.JSONDecodeError)(_bad_json)
    app.exception_handler(RequestUnsupportedContentType)(_media_type)
    app.exception_handler(RecursionError)(_too_deep)
    app.not_found(_not_found)
    app.exception_handler(Exception)(_unexpected)


_ERROR_TEXT = {
    400: "Malformed request (body, query or token)",
    404: "No such resource",
    409: "Conflict: still referenced, quota, or another writer holds the lease",
    412: "If-Match / If-None-Match did not hold",
    413: "Body too large",
    415: "Body is neither JSON nor YAML (the message names the accepted media types)",
    422: "Validation failed; details name each field",
    500: "Unexpected error; the message carries the request id, which the logs carry with the exception",
    503: "AWS throttled or failed after retries; retry after Retry-After",
}


def responses(
    ok: type[BaseModel] | None = None,
    *,
    status: int = 200,
    description: str = "OK",
    also: dict[int, type[BaseModel] | None] | None = None,
) -> dict[int, Any]:
    """OpenAPI responses of a route: its success status(es) and the one error shape for every error."""
    out: dict[int, Any] = {
        code: {"description": text, "content": {"application/json": {"model": ErrorResponse}}}
        for code, text in _ERROR_TEXT.items()
    }
    for code, model in {status: ok, **(also or {})}.items():
        text = description if code == status else {201: "Created", 204: "Deleted"}.get(code, "OK")
        out[code] = (
            {"description": text, "content": {"application/json": {"model": model}}}
            if model is not None
            else {"description": text, "content": {}}  # no body (Powertools would document its return type)
        )
    return out
