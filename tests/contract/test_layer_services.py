"""The layer's botocore models (``layers/core/aws-services.txt``) follow the code.

The layer's build (``layers/core/Makefile``) deletes the model of every AWS service not listed in
``aws-services.txt``; a client of such a service would fail only on Lambda, at creation
(``UnknownServiceError``). These tests read the code: the services it makes clients of (``boto3.client("x")``
in the adapters, DynamoDB for Powertools' idempotency) must be exactly the listed ones, and every client
method it calls must be an operation (or paginator) of a listed service in the pinned botocore.
``tests/contract/test_sam_build.py`` checks the built layer itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from tests.conftest import ROOT

pytestmark = pytest.mark.contract

SERVICES_FILE = ROOT / "layers" / "core" / "aws-services.txt"
CLIENT_HELPERS = {"get_paginator", "can_paginate", "close", "get_waiter", "meta", "exceptions"}
POWERTOOLS_CLIENTS = {"DynamoDBPersistenceLayer": "dynamodb", "Tracer": "xray"}
"""Powertools utilities the code uses that make clients of their own: idempotency's DynamoDB persistence, and
the Tracer, whose ``aws_xray_sdk`` recorder makes an X-Ray client (its sampling rules' poller) at import."""


def listed_services() -> set[str]:
    names = (line.split("#", 1)[0].strip() for line in SERVICES_FILE.read_text(encoding="utf-8").splitlines())
    return {name for name in names if name}


def _trees(*roots: Path) -> Iterator[tuple[Path, ast.AST]]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_boto3_client(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "boto3"
    )


def _client_calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    """``(method, call)`` for each call of a method on something named like a client."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        named = ast.unparse(receiver).rsplit(".", 1)[-1]
        if named in {"client", "_client"} or _is_boto3_client(receiver):
            yield node.func.attr, node


def created_services() -> tuple[set[str], list[str]]:
    """Services of the code's ``boto3.client(...)`` calls, and the calls whose service is not a literal."""
    found: set[str] = set()
    unreadable: list[str] = []
    for path, tree in _trees(ROOT / "layers" / "core" / "ecrcache", ROOT / "functions"):
        for node in ast.walk(tree):
            if _is_boto3_client(node):
                assert isinstance(node, ast.Call)
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
                else:
                    unreadable.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id in POWERTOOLS_CLIENTS:
                found.add(POWERTOOLS_CLIENTS[node.id])
    return found, unreadable


def called_operations() -> dict[str, set[str]]:
    """Client method (snake_case) -> where it is called; ``get_paginator("x")`` counts as ``x``."""
    calls: dict[str, set[str]] = {}
    for path, tree in _trees(ROOT / "layers" / "core" / "ecrcache"):
        for method, node in _client_calls(tree):
            name = method
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            elif method in CLIENT_HELPERS:
                continue
            calls.setdefault(name, set()).add(f"{path.relative_to(ROOT)}:{node.lineno}")
    return calls


def test_listed_services_are_exactly_those_the_code_makes_clients_of() -> None:
    # GIVEN the code's clients WHEN compared with the layer's list
    found, unreadable = created_services()

    # THEN every client's service is a literal (so this test can see it) and the two sets are equal
    assert unreadable == [], "boto3.client(...) with a computed service name"
    assert found == listed_services()


def test_every_client_method_the_code_calls_is_an_operation_of_a_listed_service() -> None:
    # GIVEN the pinned botocore's models of the listed services (the ones the layer keeps)
    session = botocore.session.get_session()
    operations: set[str] = set()
    paginators: set[str] = set()
    for service in listed_services():
        model = session.get_service_model(service)
        for operation in model.operation_names:
            model.operation_model(operation)  # each loads: its input and output shapes resolve
            operations.add(xform_name(operation))
        pages = session.get_paginator_model(service)._paginator_config  # type: ignore[attr-defined]
        paginators |= {xform_name(name) for name in pages}

    # WHEN the code's client calls are listed
    calls = called_operations()

    # THEN each one is an operation of a kept model (an unknown one would fail on Lambda)
    assert calls, "no client call found: the scan is broken"
    missing = {name: sorted(where) for name, where in calls.items() if name not in operations | paginators}
    assert missing == {}
