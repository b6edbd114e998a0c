"""Domain errors.

Every error the API can return is one of these; ``ecrcache.http.errors`` maps each to one HTTP
status and the single JSON error shape ``{"code", "message", "details"}``. The reconciler splits
errors into :class:`RetryableError` (raise, let the trigger retry) and :class:`TerminalError`
(record a condition, do not retry), in the ACK requeue style.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

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


class AlertNotSent(RetryableError):
    """A credential health event the event bus took, but the alert topic did not: it is owed to the topic (sent
    again by the next check), never sent to the bus again."""

    code = "AlertNotSent"


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


# --------------------------------------------------------------------------------------------------
# rendering pydantic errors: the one place, for the API and the CLI

SHOWN_KEY_MAX_LENGTH: Final = 48
"""The longest name a document holds (a credential or warm-set name); a longer unknown key is not shown."""
# The words, and the prefixes upstream registries put on their tokens (GitHub, GitLab, Docker Hub).
_SECRET_LIKE: Final = re.compile(
    r"token|passw|secret|pwd|api[-_]?key|bearer|private[-_]?key|auth|gh[opsur]_|github_pat_|glpat-|dckr_pat_",
    re.IGNORECASE,
)
_BARE_WORD: Final = re.compile(
    r"(?:token|password|passwd|secret|pwd|api[-_]?key|bearer|auth|authorization)", re.IGNORECASE
)
HIDDEN_SUFFIX: Final = " (value hidden)"
_MESSAGES: Final = {"extra_forbidden": "unknown field", "missing": "required field is missing"}


def hidden_key(key: object) -> bool:
    """Whether an unknown or invalid key must not be echoed: it may be a mistyped secret (``token:SECRET``).

    True when it contains token/password/secret-like text (other than the bare word: ``token`` is a field
    name, ``token:abc`` may be a token), is longer than a name can be, or is not printable.
    """
    text = str(key)
    if len(text) > SHOWN_KEY_MAX_LENGTH or not text.isprintable():
        return True
    return _SECRET_LIKE.search(text) is not None and _BARE_WORD.fullmatch(text) is None


@dataclass(frozen=True, slots=True)
class RenderedError:
    """A pydantic error ready to show: where (``loc``, without pydantic's markers), the rule, its type."""

    loc: tuple[int | str, ...]
    message: str
    type: str


def render_validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[RenderedError]:
    """pydantic (or Powertools request-validation) errors as people read them, never echoing a secret-like key.

    ``extra_forbidden`` is "unknown field" and ``missing`` "required field is missing"; a ``ValueError``'s
    text loses its "Value error, " prefix. An unknown key, or an invalid mapping key, that :func:`hidden_key`
    refuses to show moves the error to its mapping with the message's " (value hidden)", and the errors
    inside that invalid key are dropped (the key's own error says what is wrong).
    """
    items = [(_clean_loc(err.get("loc", ())), err) for err in errors]
    hidden: set[tuple[int | str, ...]] = set()
    for loc, err in items:
        key_at = _key_loc(loc, str(err.get("type", "")))
        if key_at is not None and hidden_key(key_at[-1]):
            hidden.add(key_at)
    rendered: list[RenderedError] = []
    for loc, err in items:
        kind = str(err.get("type", "value_error"))
        message = _MESSAGES.get(kind) or str(err.get("msg", "invalid")).removeprefix("Value error, ")
        key_at = _key_loc(loc, kind)
        if key_at is not None and key_at in hidden:
            rendered.append(RenderedError(key_at[:-1], message + HIDDEN_SUFFIX, kind))
        elif not any(loc[:n] in hidden for n in range(1, len(loc) + 1)):
            rendered.append(RenderedError(tuple(p for p in loc if p != "[key]"), message, kind))
    return rendered


def _clean_loc(loc: Iterable[int | str]) -> tuple[int | str, ...]:
    """Without the ``function-...`` steps pydantic adds for validator-wrapped types."""
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _key_loc(loc: tuple[int | str, ...], kind: str) -> tuple[int | str, ...] | None:
    """The loc ending in the key this error is about: an unknown field, or a mapping key that failed validation."""
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        return loc
    if "[key]" in loc:
        index = loc.index("[key]")
        return loc[:index] if index else None
    return None


def field_errors_from_pydantic(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Flatten a pydantic ``ValidationError``; messages never echo the input value."""
    return [
        FieldError(field=loc_to_path(e.loc, prefix) or prefix or "body", message=e.message, type=e.type)
        for e in render_validation_errors(exc.errors(include_url=False, include_input=False))
    ]


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
