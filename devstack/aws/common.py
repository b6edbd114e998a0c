"""Shared plumbing of the ECR extension: exceptions, model-constraint validation, paging, patching.

* Exceptions are :class:`moto.core.exceptions.ServiceException` subclasses whose ``code`` is the
  botocore error shape name, so moto serialises them with the model's HTTP status and boto3 raises
  ``ClientError`` with that code.
* :func:`validate_input` enforces the botocore *model* constraints (required, length, range,
  pattern, enum) on the server side, as AWS does for callers that skip client-side validation
  (AWS CLI with ``--no-paginate``? no -- any SDK with ``parameter_validation=False``, raw HTTP). It
  raises ``ValidationException`` in the standard AWS wording
  (``1 validation error detected: Value 'x' at 'field' failed to satisfy constraint: ...``).
* :func:`paginate` implements ``maxResults``/``nextToken`` with opaque tokens.
* :func:`add_response_action` / :func:`wrap_response_action` / :func:`add_backend_method` patch moto's
  ``ECRResponse``/``ECRBackend`` idempotently (moto looks handlers up by name at call time).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import botocore.session
from botocore.model import ListShape, OperationModel, ServiceModel, Shape, StringShape, StructureShape
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.models import ECRBackend
from moto.ecr.responses import ECRResponse

__all__ = [
    "InvalidParameterException",
    "LifecyclePolicyPreviewInProgressException",
    "LifecyclePolicyPreviewNotFoundException",
    "LimitExceededException",
    "PullThroughCacheRuleAlreadyExistsException",
    "PullThroughCacheRuleNotFoundException",
    "SecretNotFoundException",
    "TemplateAlreadyExistsException",
    "TemplateNotFoundException",
    "UnableToAccessSecretException",
    "UnableToDecryptSecretValueException",
    "UnableToGetUpstreamImageException",
    "UnableToGetUpstreamLayerException",
    "UnsupportedUpstreamRegistryException",
    "ValidationException",
    "add_backend_method",
    "add_response_action",
    "api_action",
    "output_members",
    "paginate",
    "patch_once",
    "request_params",
    "validate_input",
    "wrap_response_action",
]

PATCH_MARK: Final = "_ecrcache_patch"


# --------------------------------------------------------------------------------------------------
# Exceptions (code == botocore error shape name)
# --------------------------------------------------------------------------------------------------


class EcrError(ServiceException):
    """Base of the extension's ECR errors; raise with the message only."""

    code = "ServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidParameterException(EcrError):
    code = "InvalidParameterException"


class ValidationException(EcrError):
    code = "ValidationException"


class LimitExceededException(EcrError):
    code = "LimitExceededException"


class PullThroughCacheRuleAlreadyExistsException(EcrError):
    code = "PullThroughCacheRuleAlreadyExistsException"


class PullThroughCacheRuleNotFoundException(EcrError):
    code = "PullThroughCacheRuleNotFoundException"


class UnsupportedUpstreamRegistryException(EcrError):
    code = "UnsupportedUpstreamRegistryException"


class SecretNotFoundException(EcrError):
    code = "SecretNotFoundException"


class UnableToAccessSecretException(EcrError):
    code = "UnableToAccessSecretException"


class UnableToDecryptSecretValueException(EcrError):
    code = "UnableToDecryptSecretValueException"


class UnableToGetUpstreamImageException(EcrError):
    code = "UnableToGetUpstreamImageException"


class UnableToGetUpstreamLayerException(EcrError):
    code = "UnableToGetUpstreamLayerException"


class TemplateAlreadyExistsException(EcrError):
    code = "TemplateAlreadyExistsException"


class TemplateNotFoundException(EcrError):
    code = "TemplateNotFoundException"


class LifecyclePolicyPreviewInProgressException(EcrError):
    code = "LifecyclePolicyPreviewInProgressException"


class LifecyclePolicyPreviewNotFoundException(EcrError):
    code = "LifecyclePolicyPreviewNotFoundException"


# --------------------------------------------------------------------------------------------------
# Model-constraint validation (server side)
# --------------------------------------------------------------------------------------------------


@functools.cache
def _service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("ecr")


@functools.cache
def _operation(name: str) -> OperationModel:
    return _service_model().operation_model(name)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 256 else text[:253] + "..."


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    if isinstance(shape, StructureShape):
        _check_structure(shape, value, path, errors)
    elif isinstance(shape, ListShape):
        if isinstance(value, list):
            _check_length(value, len(value), shape.metadata, path, errors)
            for index, item in enumerate(value):
                _check(shape.member, item, f"{path}.{index + 1}.member", errors)
    elif isinstance(shape, StringShape) or shape.type_name == "string":
        if isinstance(value, str):
            _check_string(shape, value, path, errors)
    elif shape.type_name in {"integer", "long"} and isinstance(value, int):
        _check_range(value, shape.metadata, path, errors)


def _check_structure(shape: StructureShape, value: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"Value at '{path}' failed to satisfy constraint: Member must be a structure")
        return
    for required in shape.required_members:
        if value.get(required) is None:
            where = _join(path, required)
            errors.append(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _check(member, value[name], _join(path, name), errors)


def _check_string(shape: Shape, value: str, path: str, errors: list[str]) -> None:
    _check_length(value, len(value), shape.metadata, path, errors)
    enum = getattr(shape, "enum", None) or []
    if enum and value not in enum:
        errors.append(
            f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(enum)}]"
        )
    pattern = shape.metadata.get("pattern")
    if pattern and re.fullmatch(pattern, value) is None:
        errors.append(
            f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern}"
        )


def _check_range(value: int, meta: dict[str, Any], path: str, errors: list[str]) -> None:
    if "min" in meta and value < meta["min"]:
        errors.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {meta['min']}"
        )
    if "max" in meta and value > meta["max"]:
        errors.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: "
            f"Member must have value less than or equal to {meta['max']}"
        )


def _check_length(value: Any, length: int, meta: dict[str, Any], path: str, errors: list[str]) -> None:
    if "min" in meta and length < meta["min"]:
        errors.append(
            f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and length > meta["max"]:
        errors.append(
            f"Value '{_short(value)}' at '{path}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {meta['max']}"
        )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_input(operation_name: str, params: dict[str, Any]) -> None:
    """Raise ``ValidationException`` when ``params`` break the botocore model of the operation."""
    shape = _operation(operation_name).input_shape
    if shape is None:
        return
    errors: list[str] = []
    _check(shape, params, "", errors)
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ValidationException(f"{len(errors)} validation {noun} detected: {'; '.join(errors)}")


# --------------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------------


def _encode_token(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": index}).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        index = json.loads(base64.urlsafe_b64decode(token.encode()))["i"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidParameterException(
            "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'"
        ) from exc
    if not isinstance(index, int) or index < 0:
        raise InvalidParameterException(
            "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'"
        )
    return index


def paginate[T](
    items: Sequence[T], max_results: int | None, next_token: str | None, default: int = 100
) -> tuple[list[T], str | None]:
    """One page of ``items`` (already in a stable order) and the token of the next page, if any."""
    start = _decode_token(next_token) if next_token else 0
    size = max_results or default
    page = list(items[start : start + size])
    end = start + size
    return page, (_encode_token(end) if end < len(items) else None)


# --------------------------------------------------------------------------------------------------
# Request helpers and patching
# --------------------------------------------------------------------------------------------------


def output_members(operation_name: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` restricted to the members of the operation's output shape (what the caller sees)."""
    shape = _operation(operation_name).output_shape
    if shape is None:
        return {}
    return {k: v for k, v in result.items() if k in shape.members and v is not None}


def api_action(
    operation_name: str,
    body: Callable[[Any, dict[str, Any]], dict[str, Any]],
    *,
    mutating: bool,
) -> Callable[[Any], ActionResult]:
    """Build an ``ECRResponse`` handler: parse -> validate against the model -> ``body`` -> result.

    ``body(response, params)`` returns the output dict (botocore member names). Mutating operations
    emit their CloudTrail event -- also when they fail (CloudTrail records failed calls with
    ``errorCode``/``errorMessage``; consumers filter on their absence).
    """

    # Imported here: the EventBridge extension (which events imports) patches moto with this module's patch_once.
    from devstack.aws import events  # noqa: PLC0415

    def handler(self: Any) -> ActionResult:
        params = request_params(self)
        try:
            validate_input(operation_name, params)
            result = output_members(operation_name, body(self, params))
        except ServiceException as exc:
            if mutating:
                events.emit_api_call(self, operation_name, params, None, error_code=exc.code, error_message=exc.message)
            raise
        if mutating:
            events.emit_api_call(self, operation_name, params, result)
        return ActionResult(result)

    handler.__name__ = _snake(operation_name)
    handler.__doc__ = f"ECR {operation_name} (ecrcache embedded extension)."
    return handler


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def request_params(response: Any) -> dict[str, Any]:
    """The request of a moto response object as a dict of botocore member names.

    ECR is AWS JSON 1.1 and moto does not run its automated parser for it, so this reads the JSON
    body (or the parsed params when a service has automated parsing on).
    """
    if getattr(response, "automated_parameter_parsing", False):
        params: Any = getattr(response, "params", None)
        if params is not None and hasattr(params, "original_dict"):
            params = params.original_dict()
        return dict(params) if isinstance(params, dict) else {}
    body = getattr(response, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise ValidationException("The request body is not valid JSON") from exc
    return parsed if isinstance(parsed, dict) else {}


def add_response_action(name: str, fn: Callable[..., Any]) -> None:
    """Add (or replace) a handler on ``ECRResponse``; ``name`` is the snake_case operation name."""
    setattr(fn, PATCH_MARK, True)
    setattr(ECRResponse, name, fn)


def add_backend_method(name: str, fn: Callable[..., Any]) -> None:
    """Add a method to ``ECRBackend`` (backend logic, callable as ``backend.<name>(...)``)."""
    setattr(fn, PATCH_MARK, True)
    setattr(ECRBackend, name, fn)


def wrap_response_action(name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Wrap moto's existing handler ``name`` once (re-wrapping an already patched handler is a no-op)."""
    current = getattr(ECRResponse, name)
    if getattr(current, PATCH_MARK, False):
        return
    wrapper = make_wrapper(current)
    setattr(wrapper, PATCH_MARK, True)
    setattr(wrapper, "__wrapped__", current)  # noqa: B010 - explicit, for introspection
    setattr(ECRResponse, name, wrapper)


def patch_once(owner: type, name: str, wrap: Callable[[Any], Any], *, mark: str) -> None:
    """Replace ``owner.name`` by ``wrap(current)`` once: the replacement carries the attribute ``mark``, so a second
    install (every embedded-AWS start calls it) leaves it as it is. Each extension has a mark of its own, so two
    extensions may wrap the same method one over the other."""
    current = getattr(owner, name)
    if getattr(current, mark, False):
        return
    wrapped = wrap(current)
    setattr(wrapped, mark, True)
    setattr(owner, name, wrapped)


def wrap_backend_method(name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Wrap moto's existing ``ECRBackend`` method ``name`` once."""
    current = getattr(ECRBackend, name)
    if getattr(current, PATCH_MARK, False):
        return
    wrapper = make_wrapper(current)
    setattr(wrapper, PATCH_MARK, True)
    setattr(wrapper, "__wrapped__", current)  # noqa: B010
    setattr(ECRBackend, name, wrapper)
