"""The size gates of issue 9, measured from the code itself (the style guide's limits).

* no function longer than 60 lines in the product: what ships (``layers/``, ``functions/``) and the CLI (``cli/``);
* no class longer than 400 lines anywhere (the development world, the tests and the benchmark included).

Complexity (mccabe <= 10) is ruff's ``C901`` with ``max-complexity = 10`` in pyproject.toml, run by ``make lint``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.contract

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 400
PRODUCT = ("layers", "functions", "cli")
EVERYWHERE = (*PRODUCT, "devstack", "tests", "bench")


def _sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted((ROOT / root).rglob("*.py"))


def _definitions(path: Path, kinds: tuple[type[ast.AST], ...]) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)", lines


def test_no_product_function_is_longer_than_60_lines() -> None:
    too_long = [
        where
        for path in _sources(*PRODUCT)
        for where, lines in _definitions(path, (ast.FunctionDef, ast.AsyncFunctionDef))
        if lines > MAX_FUNCTION_LINES
    ]
    assert too_long == []


def test_no_class_is_longer_than_400_lines() -> None:
    too_long = [
        where
        for path in _sources(*EVERYWHERE)
        for where, lines in _definitions(path, (ast.ClassDef,))
        if lines > MAX_CLASS_LINES
    ]
    assert too_long == []


def test_the_gates_see_the_code() -> None:
    """A moved folder must not make the gates vacuous."""
    for root in EVERYWHERE:
        assert any(_sources(root)), f"{root}/ has no Python sources: update the gates"
