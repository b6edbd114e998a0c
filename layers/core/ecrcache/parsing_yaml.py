"""YAML for :mod:`ecrcache.parsing`: the YAML 1.2 core-schema reader (nodes only, limits checked as it reads) and the
dumper whose output reads back the same under YAML 1.1 and 1.2.

Imported by :func:`ecrcache.parsing.parse` and :func:`ecrcache.parsing.dump_yaml` on first use: a JSON request (nearly
every one the API serves) never imports PyYAML (issue 13: cold start). The rules are :mod:`ecrcache.parsing`'s.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from ecrcache.errors import hidden_key
from ecrcache.parsing import ALIAS_PROBLEM, HIDDEN, BodySyntaxError, Limits, Loc, _Checks, _too_deep

__all__ = ["dump_yaml", "parse_yaml"]

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


def parse_yaml(text: str, limits: Limits) -> Any:
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
    """JSON data as block-style YAML (keys in their order, Unicode as is) that :func:`~ecrcache.parsing.parse` reads
    back equal."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
