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
from typing import Any, Final, Literal

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from ecrcache.errors import hidden_key

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
        return _parse_json(text, limits) if syntax == "json" else _parse_yaml(text, limits)
    except RecursionError:
        raise _too_deep(limits) from None


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise BodyTooLargeError(f"larger than {limits.max_bytes:,} bytes", "too_large")


def _too_deep(limits: Limits, line: int | None = None, column: int | None = None) -> BodySyntaxError:
    return BodySyntaxError(f"nested more than {limits.max_depth} levels deep", "too_deep", line=line, column=column)


# --------------------------------------------------------------------------------------------------
# the checks both syntaxes share


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


# --------------------------------------------------------------------------------------------------
# YAML (1.2 core schema)

_TAG: Final = "tag:yaml.org,2002:"
STR_TAG: Final = f"{_TAG}str"
NULL_TAG: Final = f"{_TAG}null"
BOOL_TAG: Final = f"{_TAG}bool"
INT_TAG: Final = f"{_TAG}int"
FLOAT_TAG: Final = f"{_TAG}float"
MAP_TAG: Final = f"{_TAG}map"
SEQ_TAG: Final = f"{_TAG}seq"

_NULL: Final = re.compile(r"^(?:null|Null|NULL|~|)$")
_BOOL: Final = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT: Final = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT: Final = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_KIND: Final = {NULL_TAG: "null", BOOL_TAG: "a boolean", INT_TAG: "an integer", FLOAT_TAG: "a number"}
_CORE_PATTERNS: Final = {NULL_TAG: _NULL, BOOL_TAG: _BOOL, INT_TAG: _INT, FLOAT_TAG: _FLOAT}


class _CoreResolver(BaseResolver):
    """The YAML 1.2 core schema's tag resolution for plain scalars (everything else is a string)."""


for _tag, _regexp, _first in (
    (NULL_TAG, _NULL, ["~", "n", "N", ""]),
    (BOOL_TAG, _BOOL, list("tTfF")),
    (INT_TAG, _INT, list("-+0123456789")),
    (FLOAT_TAG, _FLOAT, list("-+0123456789.")),
):
    _CoreResolver.add_implicit_resolver(_tag, _regexp, _first)


class _Loader(Reader, Scanner, Parser, Composer, _CoreResolver):
    """PyYAML's reader, scanner, parser and composer with core-schema resolution; nodes only (no constructor).

    Composing refuses aliases and nesting deeper than the limit, at their line and column.
    """

    def __init__(self, text: str, max_depth: int) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)
        self.max_depth = max_depth
        self.depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, ALIAS_PROBLEM, event.start_mark)
        if not self.check_event(yaml.CollectionStartEvent):
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeepError(mark)
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self.depth -= 1


def _compose(text: str, limits: Limits) -> Node | None:
    loader = _Loader(text, limits.max_depth)  # the reader checks every character here
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _TooDeepError(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too deep")
        self.mark = mark


def _parse_yaml(text: str, limits: Limits) -> Any:
    try:
        node = _compose(text, limits)
    except _TooDeepError as exc:
        raise _too_deep(limits, exc.mark.line + 1, exc.mark.column + 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise BodySyntaxError(message, "yaml_invalid", line=line, column=column) from None
    except yaml.YAMLError as exc:  # the reader: a character YAML does not allow
        raise BodySyntaxError(" ".join(str(exc).split()), "yaml_invalid") from None
    if node is None:
        return None
    checks = _Checks(limits)
    data = _yaml_value(checks, node, ())
    checks.raise_problems()
    return data


def _yaml_value(checks: _Checks, node: Node, loc: Loc) -> Any:
    if isinstance(node, MappingNode):
        if node.tag != MAP_TAG:
            return _refuse_tag(checks, node, loc)
        return _yaml_mapping(checks, node, loc)
    if isinstance(node, SequenceNode):
        if node.tag != SEQ_TAG:
            return _refuse_tag(checks, node, loc)
        return [_yaml_value(checks, item, (*loc, index)) for index, item in enumerate(node.value)]
    return _yaml_scalar(checks, node, loc)


def _yaml_scalar(checks: _Checks, node: Node, loc: Loc) -> Any:
    text = str(node.value)
    if node.tag == STR_TAG:
        return checks.string(loc, text, node.start_mark)
    pattern = _CORE_PATTERNS.get(node.tag)
    if pattern is None:
        return _refuse_tag(checks, node, loc)
    if not pattern.match(text):  # an explicit tag on text that is not of its kind: `!!int abc`
        message = f"the {_short_tag(node.tag)} value is not {_KIND[node.tag]} of the YAML 1.2 core schema"
        checks.add(loc, message, "yaml_tag", node.start_mark)
        return None
    return _core_value(checks, node.tag, text, loc, node.start_mark)


def _core_value(checks: _Checks, tag: str, text: str, loc: Loc, mark: yaml.Mark) -> Any:
    """The value of a plain scalar that matched the core schema's pattern for ``tag``."""
    if tag == INT_TAG:
        digits = text.lstrip("+-").removeprefix("0o").removeprefix("0x")
        return checks.integer(loc, digits, lambda: _core_int(text), mark)
    if tag == FLOAT_TAG:
        return checks.number(loc, _core_float(text), mark)
    return None if tag == NULL_TAG else text.lower() == "true"


def _core_int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith("0o"):
        return int(body[2:], 8)
    if body.startswith("0x"):
        return int(body[2:], 16)
    return sign * int(body, 10)


def _core_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def _yaml_mapping(checks: _Checks, node: MappingNode, loc: Loc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _yaml_key(checks, key_node, loc)
        if key is not None:
            usable = checks.key(loc, key, out, key_node.start_mark)
            if usable is not None:
                out[usable] = _yaml_value(checks, value_node, (*loc, usable))
    return out


def _yaml_key(checks: _Checks, node: Node, loc: Loc) -> str | None:
    """A key node as a string; a key that is not one (``~``, ``true``, ``0x1``, ``!!binary``, ``[a]``) is a problem."""
    mark = node.start_mark
    if not isinstance(node, ScalarNode):
        what = "a mapping" if isinstance(node, MappingNode) else "a sequence"
        checks.add(loc, f"keys must be strings, not {what}", "key_not_string", mark)
        return None
    if node.tag == STR_TAG:
        return str(node.value)
    kind = _KIND.get(node.tag)
    if kind is None:
        checks.add(loc, f"keys must be strings; this key has the YAML tag {_short_tag(node.tag)}", "yaml_tag", mark)
        return None
    raw = str(node.value)
    shown = raw if raw and not hidden_key(raw) else None
    if shown is None:
        checks.add(
            loc, f"keys must be strings, but YAML reads a key as {kind} {HIDDEN}: quote it", "key_not_string", mark
        )
    else:
        checks.add(
            (*loc, shown),
            f"keys must be strings, but YAML reads {shown} as {kind}: quote it ('{shown}') to use it as a name",
            "key_not_string",
            mark,
        )
    return None


def _refuse_tag(checks: _Checks, node: Node, loc: Loc) -> None:
    checks.add(
        loc,
        f"the YAML tag {_short_tag(node.tag)} is not accepted: values are strings, numbers, booleans, null, "
        "mappings and sequences (the YAML 1.2 core schema)",
        "yaml_tag",
        node.start_mark,
    )


def _short_tag(tag: str) -> str:
    return f"!!{tag.removeprefix(_TAG)}" if tag.startswith(_TAG) else tag


# --------------------------------------------------------------------------------------------------
# writing YAML both readers agree on


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, also quoting any string YAML 1.2 core would read as another type (``0o17``).

    PyYAML quotes what YAML 1.1 would not read as a string (``yes``, ``0x1``, ``2024-01-01``); with the
    core schema's patterns added, what it writes reads back the same under YAML 1.1 and YAML 1.2.
    """


for _tag, _regexp, _first in (
    (INT_TAG, _INT, list("-+0123456789")),
    (FLOAT_TAG, _FLOAT, list("-+0123456789.")),
):
    _Dumper.add_implicit_resolver(_tag, _regexp, _first)


def dump_yaml(data: Any) -> str:
    """JSON data as block-style YAML (keys in their order, Unicode as is) that :func:`parse` reads back equal."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
