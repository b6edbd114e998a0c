"""Every file in ``events/`` is exercised by a handler or parser test, not only shape-checked.

A sample counts when a test function of one of :data:`EXERCISING_TESTS` is parametrized with it (by
the name :func:`tests.conftest.load_event` takes): those tests run it through the reconciler's parser
or through a function's handler, and check what comes out. A new sample the tests do not run, or a
new folder of samples, fails here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from tests.conftest import EVENTS

pytestmark = pytest.mark.contract

ParameterSet = type(pytest.param())  # what pytest.param makes (its class is not public)

EXERCISING_TESTS = {
    "tests.unit.services.test_triggers": "from_event, the reconciler's parser",
    "tests.functional.reconcile.test_sample_events": "the reconciler handler on the embedded AWS",
    "tests.functional.api.test_sample_events": "the api handler on the embedded AWS",
    "tests.functional.pull_stats.test_function": "the pull_stats handler on the embedded AWS",
    "tests.functional.warm.test_planner_function": "the warm planner handler on moto",
    "tests.functional.warm_worker.test_sample_events": "the warm worker handler on the embedded AWS and registry",
    "tests.functional.reconcile.test_fanout_functions": "the reconcile worker handler on the embedded AWS",
    "tests.functional.rotation.test_function": "the rotator handler on the embedded AWS and registry",
    "tests.functional.credential_health.test_function": "the health check handler on the embedded AWS and registry",
}


def _values(argvalues: Iterable[Any]) -> Iterator[Any]:
    """Every single value of a ``parametrize`` list (tuples and ``pytest.param`` unpacked)."""
    for value in argvalues:
        if isinstance(value, ParameterSet):
            yield from value.values
        elif isinstance(value, tuple):
            yield from value
        else:
            yield value


def exercised_by(module_name: str) -> set[str]:
    """The samples the module's test functions are parametrized with."""
    module = importlib.import_module(module_name)
    found: set[str] = set()
    for name, test in vars(module).items():
        if not name.startswith("test_"):
            continue
        for mark in getattr(test, "pytestmark", []):
            if mark.name == "parametrize":
                found |= {v for v in _values(mark.args[1]) if isinstance(v, str) and (EVENTS / v).is_file()}
    return found


def test_every_sample_event_is_run_by_a_handler_or_parser_test() -> None:
    # GIVEN every file in events/ (what `sam local invoke` takes), by the name load_event takes
    samples = {path.relative_to(EVENTS).as_posix() for path in EVENTS.rglob("*") if path.is_file()}
    assert samples

    # WHEN the samples the handler and parser tests are parametrized with are gathered
    exercised = set().union(*(exercised_by(module) for module in EXERCISING_TESTS))

    # THEN none is left out
    assert sorted(samples - exercised) == [], f"run each of these in one of {sorted(EXERCISING_TESTS)}"


@pytest.mark.parametrize("module", sorted(EXERCISING_TESTS))
def test_each_exercising_test_runs_sample_events(module: str) -> None:
    # WHEN the samples a module named here is parametrized with are gathered THEN there are some
    assert exercised_by(module), f"{module} ({EXERCISING_TESTS[module]}) runs no file of events/"
