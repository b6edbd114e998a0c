"""One parser for every document ecrcache reads: API request bodies and ``ecrcache apply -f`` files.

:func:`parse` turns JSON or YAML text into JSON data (``dict`` with ``str`` keys, ``list``, ``str``,
``int``, ``float``, ``bool``, ``None``) within explicit :class:`Limits`, or raises a :class:`BodyError`
saying where and why. The API runs it before routing (and hands the routes canonical JSON); the CLI
runs it on each file before validating, so a file the CLI accepts is a body the API accepts.

========================  ==========  ==========================================================
limit                     default     why
========================  ==========  ==========================================================
size                      1 MiB       the largest desired state is far smaller (API Gateway: 10 MB)
nesting depth             32          the deepest field of a document is 11 containers down
integer digits            20          any 64-bit integer; Python refuses int() past 4,300 digits
string length             16,384      the longest string field (a token) is 8,192 characters
key length                256         the longest key (a resource tag key) is 128 characters
========================  ==========  ==========================================================

Mapping keys must be strings and appear once per mapping (JSON and YAML parsers would silently keep
the last). Numbers must be finite (no ``NaN``, ``Infinity``, ``.inf`` or ``1e999``), strings valid
Unicode (no lone surrogates).

YAML is read with the **YAML 1.2 core schema** (https://yaml.org/spec/1.2.2/#1032-tag-resolution),
not PyYAML's YAML 1.1 rules. A plain (unquoted) scalar is:

* null: ``null``, ``Null``, ``NULL``, ``~`` or nothing;
* a boolean: ``true``, ``True``, ``TRUE``, ``false``, ``False``, ``FALSE``;
* an integer: ``[-+]?[0-9]+`` (``010`` is ten), ``0o[0-7]+``, ``0x[0-9a-fA-F]+``;
* a float: ``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?``, ``.inf``, ``.nan`` (refused: not finite);
* otherwise a string: ``yes``/``no``/``on``/``off``, ``0b101``, ``1_000``, ``1:20``, ``2024-01-01``,
  timestamps, ``<<`` and ``=`` are text, as written.

Explicit tags outside the core schema (``!!binary``, ``!!timestamp``, ``!!set``, ``!!python/...``,
local ``!tags``) are refused where they stand, and so are aliases (``*a``: a few hundred bytes of
them expand to gigabytes), so YAML merge keys (``<<: *base``) are not available.

Errors: :class:`BodyTooLargeError` (the API's 413); :class:`BodySyntaxError`, not JSON/YAML at all
or nested too deeply (400, with line and column where known); :class:`BodyInvalidError`, a list of
:class:`BodyProblem` each at a ``loc`` path like pydantic's (422). Messages never echo a value, and
a key that may hold a secret (:func:`ecrcache.errors.hidden_key`) is never shown.

Nothing here does I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ecrcache.errors import hidden_key

if TYPE_CHECKING:
    import yaml

__all__ = [
    "ACCEPTED_MEDIA_TYPES",
    "ALIAS_PROBLEM",
    "JSON_MEDIA_TYPES",
    "LIMITS",
    "YAML_MEDIA_TYPES",
    "BodyError",
    "BodyInvalidError",
    "BodyProblem",
    "BodySyntaxError",
    "BodyTooLargeError",
    "Limits",
    "Syntax",
    "dump_yaml",
    "media_syntax",
    "parse",
    "parse_bytes",
]

Syntax = Literal["json", "yaml"]
Loc = tuple[str | int, ...]

JSON_MEDIA_TYPES: Final = ("application/json",)
YAML_MEDIA_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
ACCEPTED_MEDIA_TYPES: Final = (*JSON_MEDIA_TYPES, *YAML_MEDIA_TYPES)
ALIAS_PROBLEM: Final = "YAML aliases (&/*) are not accepted"
MAX_PROBLEMS: Final = 20
"""A body with more problems reports the first 20 (a 1 MiB body could otherwise hold 100,000)."""
HIDDEN: Final = "(value hidden)"


@dataclass(frozen=True, slots=True)
class Limits:
    """What a document may hold; see the module docstring for the reasons behind each default."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 32
    max_integer_digits: int = 20
    max_string_chars: int = 16_384
    max_key_chars: int = 256


LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class BodyProblem:
    """One value or key that breaks a rule, at ``loc`` (keys and list indexes from the document's root)."""

    loc: Loc
    message: str
    type: str
    line: int | None = None
    column: int | None = None


class BodyError(ValueError):
    """Base class: ``message`` for people, ``type`` for machines, ``line``/``column`` (1-based) when known."""

    def __init__(self, message: str, type_: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type_
        self.line = line
        self.column = column


class BodyTooLargeError(BodyError):
    """The document is larger than :attr:`Limits.max_bytes` (in UTF-8 bytes)."""


class BodySyntaxError(BodyError):
    """Not JSON/YAML at all (``json_invalid`` / ``yaml_invalid``), not UTF-8, or nested too deeply (``too_deep``)."""


class BodyInvalidError(BodyError):
    """Well-formed, but values or keys break the parser's rules; ``problems`` names each one."""

    def __init__(self, problems: list[BodyProblem]) -> None:
        first = problems[0]
        super().__init__(first.message, first.type, line=first.line, column=first.column)
        self.problems = tuple(problems)


def media_syntax(content_type: str | None) -> Syntax | None:
    """``json`` or ``yaml`` for a ``Content-Type`` the API reads (no header means JSON), ``None`` for any other.

    Parameters are allowed, except a ``charset`` other than UTF-8 (JSON is UTF-8, RFC 8259 §8.1).
    """
    if content_type is None or not content_type.strip():
        return "json"
    media, *parameters = (part.strip().lower() for part in content_type.split(";"))
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in {"utf-8", "utf8"}:
            return None
    if media in JSON_MEDIA_TYPES:
        return "json"
    if media in YAML_MEDIA_TYPES:
        return "yaml"
    return None


def parse_bytes(data: bytes, syntax: Syntax, limits: Limits = LIMITS) -> Any:
    """:func:`parse` for raw bytes: the size is checked first, then UTF-8 (a byte-order mark is allowed)."""
    _check_size(len(data), limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodySyntaxError(f"not UTF-8 text (byte {exc.start + 1})", "not_utf8") from None
    return parse(text, syntax, limits)


def parse(text: str, syntax: Syntax, limits: Limits = LIMITS) -> Any:
    """JSON or YAML text as JSON data within ``limits``; raises :class:`BodyError`."""
    _check_size(len(text.encode("utf-8", "surrogatepass")), limits)
    text = text.removeprefix("\ufeff")
    try:
        if syntax == "json":
            return _parse_json(text, limits)
        # On first use: PyYAML and the core-schema reader are imported by a YAML body only (issue 13: cold start).
        from ecrcache.parsing_yaml import parse_yaml  # noqa: PLC0415

        return parse_yaml(text, limits)
    except RecursionError:
        raise _too_deep(limits) from None


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise BodyTooLargeError(f"larger than {limits.max_bytes:,} bytes", "too_large")


def _too_deep(limits: Limits, line: int | None = None, column: int | None = None) -> BodySyntaxError:
    return BodySyntaxError(f"nested more than {limits.max_depth} levels deep", "too_deep", line=line, column=column)


# --------------------------------------------------------------------------------------------------
# the checks both syntaxes share (:class:`_Checks` and :func:`_too_deep` are ecrcache.parsing_yaml's too)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class _Checks:
    """Collects problems (at most :data:`MAX_PROBLEMS`) while the values are converted."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.problems: list[BodyProblem] = []

    def add(self, loc: Loc, message: str, type_: str, mark: yaml.Mark | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
            self.problems.append(BodyProblem(_shown(loc), message, type_, line, column))

    def raise_problems(self) -> None:
        if self.problems:
            raise BodyInvalidError(self.problems)

    def string(self, loc: Loc, value: str, mark: yaml.Mark | None = None) -> str | None:
        if len(value) > self.limits.max_string_chars:
            self.add(
                loc,
                f"string is {len(value):,} characters; at most {self.limits.max_string_chars:,} are accepted",
                "string_too_long",
                mark,
            )
            return None
        if _SURROGATE.search(value):
            self.add(loc, "string is not valid Unicode (a lone surrogate)", "string_unicode", mark)
            return None
        return value

    def key(self, loc: Loc, key: str, seen: dict[str, Any], mark: yaml.Mark | None = None) -> str | None:
        """``key`` when it may be used; else the problem is recorded at ``loc`` (the mapping) or at the key."""
        if len(key) > self.limits.max_key_chars:
            self.add(loc, f"a key is longer than {self.limits.max_key_chars} characters {HIDDEN}", "key_too_long", mark)
            return None
        if _SURROGATE.search(key):
            self.add(loc, f"a key is not valid Unicode {HIDDEN}", "string_unicode", mark)
            return None
        if key in seen:
            if hidden_key(key):
                self.add(loc, f"duplicate key {HIDDEN}: each key may appear once in a mapping", "duplicate_key", mark)
            else:
                self.add((*loc, key), "duplicate key: each key may appear once in a mapping", "duplicate_key", mark)
            return None
        return key

    def integer(self, loc: Loc, digits: str, convert: Callable[[], int], mark: yaml.Mark | None = None) -> int | None:
        count = sum(c.isalnum() for c in digits)
        if count > self.limits.max_integer_digits:
            self.add(
                loc,
                f"integer has {count:,} digits; at most {self.limits.max_integer_digits} are accepted",
                "too_many_digits",
                mark,
            )
            return None
        return convert()

    def number(self, loc: Loc, value: float, mark: yaml.Mark | None = None) -> float | None:
        if not math.isfinite(value):
            self.add(loc, "number is not finite (NaN, infinity, or too large for a float)", "number_not_finite", mark)
            return None
        return value


def _shown(loc: Loc) -> Loc:
    """``loc`` up to the first key that must not be shown (the problem then sits at the mapping)."""
    for index, part in enumerate(loc):
        if isinstance(part, str) and hidden_key(part):
            return loc[:index]
    return loc


# --------------------------------------------------------------------------------------------------
# JSON


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed: its members in order, duplicates included (checked by the walk)."""


@dataclass(frozen=True, slots=True)
class _Number:
    """A JSON number literal, converted during the walk where its path is known."""

    text: str
    integer: bool


def _parse_json(text: str, limits: Limits) -> Any:
    try:
        raw = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=lambda t: _Number(t, integer=True),
            parse_float=lambda t: _Number(t, integer=False),
            parse_constant=lambda t: _Number(t, integer=False),
        )
    except json.JSONDecodeError as exc:
        raise BodySyntaxError(exc.msg, "json_invalid", line=exc.lineno, column=exc.colno) from None
    checks = _Checks(limits)
    data = _json_value(checks, raw, (), 0)
    checks.raise_problems()
    return data


def _json_value(checks: _Checks, raw: Any, loc: Loc, depth: int) -> Any:
    if isinstance(raw, _Pairs | list):
        if depth >= checks.limits.max_depth:
            raise _too_deep(checks.limits)
        if isinstance(raw, _Pairs):
            return _json_object(checks, raw, loc, depth + 1)
        return [_json_value(checks, item, (*loc, index), depth + 1) for index, item in enumerate(raw)]
    if isinstance(raw, _Number):
        if raw.integer:
            return checks.integer(loc, raw.text, lambda: int(raw.text))
        return checks.number(loc, float(raw.text))
    if isinstance(raw, str):
        return checks.string(loc, raw)
    return raw  # True, False, None


def _json_object(checks: _Checks, pairs: _Pairs, loc: Loc, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in pairs:
        usable = checks.key(loc, key, out)
        if usable is not None:
            out[usable] = _json_value(checks, raw, (*loc, usable), depth)
    return out


def dump_yaml(data: Any) -> str:
    """JSON data as block-style YAML (keys in their order, Unicode as is) that :func:`parse` reads back equal."""
    from ecrcache.parsing_yaml import dump_yaml as dump  # noqa: PLC0415 -- on first use (cold start)

    return dump(data)
