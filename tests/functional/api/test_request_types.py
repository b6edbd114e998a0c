"""Every request body takes JSON types as they are: no ``true`` read as 1, no ``"yes"`` read as true.

pydantic's lax mode turns ``true`` into 1 for an ``int``, ``"yes"``/``1`` into true for a ``bool`` and
``1.0``/``true`` into ``Literal[1]``. Every integer, boolean and number a route's body declares must be
strict (``StrictInt``, ``StrictBool``, ``Field(strict=True)``), and an integer literal must sit behind a
validator that checks its type. This walks the pydantic core schema of each route's body, so a field a
later change adds is held to the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import TypeAdapter

pytestmark = pytest.mark.functional

NUMERIC = {"int", "bool", "float", "decimal"}


def body_types() -> dict[str, Any]:
    from functions.api.app import app

    found: dict[str, Any] = {}
    for route in [*app._static_routes, *app._dynamic_routes]:
        for param in route.dependant.body_params:
            found[f"{route.method} {route.openapi_path}"] = param.field_info.annotation
    return found


def lax_nodes(node: Any, path: tuple[str, ...] = (), guarded: bool = False) -> Iterator[str]:
    """Paths of integer/boolean/number schemas that are not strict (JSON values of any type are exempt)."""
    if isinstance(node, list):
        for item in node:
            yield from lax_nodes(item, path, guarded)
        return
    if not isinstance(node, dict):
        return
    if "JsonValue" in str(node.get("ref", "")):  # free-form JSON (a repository policy): any type is fine
        return
    kind = node.get("type") if isinstance(node.get("type"), str) else None  # a field may be named "type"
    if kind in NUMERIC and node.get("strict") is not True:
        yield "/".join(path) + f" ({kind})"
    if kind == "literal" and not guarded and any(not isinstance(v, str) for v in node.get("expected", ())):
        yield "/".join(path) + " (literal)"
    guarded = guarded or kind in {"function-before", "function-wrap", "function-plain"}
    for key, value in node.items():
        step = key if key not in {"schema", "metadata"} and not (key == "type" and kind) else None
        yield from lax_nodes(value, (*path, step) if step else path, guarded)


def test_every_route_with_a_body_is_checked() -> None:
    assert set(body_types()) == {
        "PUT /v1/rules/{prefix}",
        "PUT /v1/credentials/{name}",
        "POST /v1/credentials/{name}/rotations",
        "PUT /v1/warm-sets/{name}",
        "PUT /v1/desired-state",
        "POST /v1/reconcile",
        "POST /v1/import",
    }


@pytest.mark.parametrize("route", sorted(body_types()))
def test_request_body_integers_and_booleans_are_strict(route: str) -> None:
    # GIVEN the type a route validates its body with
    schema = TypeAdapter(body_types()[route]).core_schema
    # WHEN its core schema is walked
    lax = sorted(set(lax_nodes(schema)))
    # THEN no integer, boolean or number in it coerces another JSON type
    assert not lax, "lax fields (use StrictInt/StrictBool or Field(strict=True)):\n" + "\n".join(lax)
