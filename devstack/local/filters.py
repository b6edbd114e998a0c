"""Event patterns for the local runner: Lambda event filtering and EventBridge rules share one grammar.

Lambda's ``FilterCriteria`` (event source mappings) use the EventBridge pattern syntax, evaluated on
the record as the function would receive it (for DynamoDB streams: ``eventName``, ``dynamodb.Keys``,
``dynamodb.NewImage`` ... in DynamoDB JSON). A record is delivered when *any* filter matches (OR
across filters); records that match none are dropped, as Lambda drops them.

The matching is moto's (``moto.events.models.EventPattern``: exact values, ``prefix``, ``suffix``,
``anything-but``, ``numeric``, ``exists``, ``equals-ignore-case``, ``wildcard``, ``cidr``, ``$or``) --
the same matcher the embedded EventBridge uses for rules, so the runner does not carry a second one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moto.events.models import EventPattern

__all__ = ["FilterSet", "PatternError", "compile_pattern"]


class PatternError(ValueError):
    """A pattern that is not valid EventBridge pattern JSON."""


def compile_pattern(raw: str | Mapping[str, Any]) -> Any:
    """A moto ``EventPattern`` for a JSON string or an already parsed pattern."""
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        pattern = EventPattern.load(text)
    except Exception as exc:  # moto raises InvalidEventPatternException (a JsonRESTError)
        reason = getattr(exc, "message", None) or str(exc)
        raise PatternError(f"invalid event pattern {text}: {reason}") from exc
    if not isinstance(pattern.get_pattern(), dict):
        raise PatternError(f"invalid event pattern {text}: a pattern is a JSON object")
    return pattern


@dataclass(frozen=True)
class FilterSet:
    """Lambda ``FilterCriteria.Filters``: no filters = everything passes; otherwise any one must match."""

    raw: tuple[str, ...]
    _patterns: tuple[Any, ...]

    @classmethod
    def from_criteria(cls, criteria: Mapping[str, Any] | None) -> FilterSet:
        filters: Sequence[Any] = (criteria or {}).get("Filters") or []
        raw: list[str] = []
        for entry in filters:
            pattern = entry.get("Pattern") if isinstance(entry, Mapping) else None
            if pattern is None:
                raise PatternError("every FilterCriteria.Filters entry needs a Pattern")
            raw.append(pattern if isinstance(pattern, str) else json.dumps(pattern))
        return cls(raw=tuple(raw), _patterns=tuple(compile_pattern(p) for p in raw))

    def __len__(self) -> int:
        return len(self.raw)

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self._patterns:
            return True
        return any(bool(p.matches_event(dict(record))) for p in self._patterns)
