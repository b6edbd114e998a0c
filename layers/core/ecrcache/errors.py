"""Domain errors.

Every error the API can return is one of these; ``ecrcache.http.errors`` maps each to one HTTP
status and the single JSON error shape ``{"code", "message", "details"}``. The reconciler splits
errors into :class:`RetryableError` (raise, let the trigger retry) and :class:`TerminalError`
(record a condition, do not retry), in the ACK requeue style.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule on one field. ``field`` is a dotted path (``rules.docker-hub.upstream_url``)."""

    field: str
    message: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": self.type}


class EcrcacheError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is for people."""

    code = "Error"
    status = 500

    def __init__(self, message: str, details: Sequence[FieldError] = (), *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)
        self.reason = reason or self.code
        """The underlying cause's code (e.g. the AWS error code ``ThrottlingException``), for conditions."""


class BadRequestError(EcrcacheError):
    code = "BadRequest"
    status = 400


class InvalidInputError(EcrcacheError):
    """The request is well-formed but breaks a rule; ``details`` names every field and rule."""

    code = "ValidationFailed"
    status = 422


class NotFoundError(EcrcacheError):
    code = "NotFound"
    status = 404


class ConflictError(EcrcacheError):
    code = "Conflict"
    status = 409


class PreconditionFailedError(EcrcacheError):
    code = "PreconditionFailed"
    status = 412


class PayloadTooLargeError(EcrcacheError):
    code = "PayloadTooLarge"
    status = 413


class UnsupportedMediaTypeError(EcrcacheError):
    code = "UnsupportedMediaType"
    status = 415


class RetryableError(EcrcacheError):
    """A failure that should clear by itself (throttling, 5xx, eventual consistency)."""

    code = "Retryable"
    status = 503


class TerminalError(EcrcacheError):
    """A failure that will not clear without a change of input or permissions."""

    code = "Terminal"
    status = 500


def loc_to_path(loc: Iterable[int | str], prefix: str = "") -> str:
    """Turn a pydantic ``loc`` tuple into a dotted path; list indexes become ``[n]``."""
    out = prefix
    for part in loc:
        if part == "[key]":  # pydantic marks an invalid dict key this way; the path already names it
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def field_errors_from_pydantic(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Flatten a pydantic ``ValidationError``; messages never echo the input value."""
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = err["msg"].removeprefix("Value error, ")
        errors.append(FieldError(field=loc_to_path(loc, prefix) or prefix or "body", message=message, type=err["type"]))
    return errors


def invalid(field: str, message: str) -> InvalidInputError:
    """Shorthand for a single-field :class:`InvalidInputError`."""
    return InvalidInputError(f"{field}: {message}", [FieldError(field=field, message=message)])


class StaleRevisionError(RetryableError):
    """The desired state changed between reading and committing; re-read and try again."""

    code = "StaleRevision"
    status = 409


class LockedError(RetryableError):
    """Another writer holds the lease for a multi-transaction apply."""

    code = "Locked"
    status = 409


class VersionConflictError(PreconditionFailedError):
    """An item's version is not the one the write was conditioned on."""

    def __init__(self, kind: str, name: str, expected: int | None) -> None:
        state = "not to exist" if expected is None else f"to be at version {expected}"
        super().__init__(f"{kind} {name!r} changed: expected it {state}", [FieldError(field=name, message="stale")])
        self.kind = kind
        self.name = name
        self.expected = expected
