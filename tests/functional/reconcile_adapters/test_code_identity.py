"""The planning code's identity (part of every Region's quiet digest): it follows the engine's and models' sources."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import ecrcache.engine
import ecrcache.models
from ecrcache.adapters.code_identity import planner_code

pytestmark = pytest.mark.functional


@pytest.fixture
def copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The engine's and models' sources copied, and the packages pointed at the copies."""
    for package in (ecrcache.engine, ecrcache.models):
        source = Path(package.__file__ or "").parent
        target = tmp_path / package.__name__
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.setattr(package, "__file__", str(target / "__init__.py"))
    planner_code.cache_clear()
    yield tmp_path
    planner_code.cache_clear()


def test_the_identity_is_that_of_the_sources_and_changes_with_any_of_them(copied: Path) -> None:
    # GIVEN the identity of the engine's and models' sources as deployed
    first = planner_code()
    assert len(first) == 16 and int(first, 16) >= 0
    planner_code.cache_clear()
    assert planner_code() == first  # read again: the same
    # WHEN one line of the planner changes (a new release)
    planner = copied / "ecrcache.engine" / "planner.py"
    planner.write_text(planner.read_text() + "\n# a release later\n")
    planner_code.cache_clear()
    # THEN the identity changes; so it does when a model changes
    second = planner_code()
    assert second != first
    rule = copied / "ecrcache.models" / "rule.py"
    rule.write_text(rule.read_text() + "\n")
    planner_code.cache_clear()
    assert planner_code() not in {first, second}


def test_the_identity_is_read_once_per_execution_environment(copied: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the identity computed once
    first = planner_code()
    # WHEN the sources can no longer be read (the cache answers: no file is read again)
    monkeypatch.setattr(Path, "read_bytes", lambda _self: b"")
    # THEN the same identity comes back
    assert planner_code() == first
