"""The planner announces the runs it finishes itself (``Warm Run Finished``): a run that fails at planning, and a
run settled at its deadline; each event validates against ``docs/events/warm-run-finished.schema.json``. (The
worker's announcement: tests/unit/services/test_state_events.py.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ecrcache.engine.state_events import WARM_RUN_FINISHED, StateEvent
from ecrcache.models.warm_run import RUN_DEADLINE
from tests.conftest import ROOT
from tests.functional.warm.planner_support import Planner, make_queue
from tests.functional.warm.test_warm_store import outcome_of

pytestmark = pytest.mark.functional

SCHEMA = ROOT / "docs" / "events" / "warm-run-finished.schema.json"
PLANNED_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[StateEvent] = []

    def publish(self, events: Sequence[StateEvent]) -> None:
        self.sent.extend(events)


@pytest.fixture
def planner(state_table: str) -> tuple[Planner, RecordingPublisher]:
    planner, publisher = Planner(state_table, make_queue()), RecordingPublisher()
    planner.service.events = planner.service.overdue.events = publisher
    return planner, publisher


def errors_of(detail: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()), format_checker=FormatChecker())
    event = {"source": "ecrcache", "detail-type": WARM_RUN_FINISHED, "detail": json.loads(json.dumps(detail))}
    return [error.message for error in validator.iter_errors(event)]


def test_a_run_that_fails_at_planning_is_announced(planner: tuple[Planner, RecordingPublisher]) -> None:
    # GIVEN a warm set whose rule does not exist
    world, publisher = planner
    world.warm_set(images=["library/node:18-alpine"])
    # WHEN its schedule fires
    assert world.service.tick().failed == []
    # THEN the planner finished the run failed, and said so
    [event] = publisher.sent
    assert (event.detail_type, event.detail["status"], event.detail["warm_set"]) == (WARM_RUN_FINISHED, "failed", "ci")
    assert "does not exist" in event.detail["message"]
    assert errors_of(event.detail) == []


def test_a_run_settled_at_its_deadline_is_announced(planner: tuple[Planner, RecordingPublisher]) -> None:
    # GIVEN a run of two images planned, none of which got an outcome
    world, publisher = planner
    world.hub_rule()
    world.warm_set(images=["library/node:18-alpine", "library/python:3.12-slim"])
    assert world.service.tick().failed == []
    assert publisher.sent == []  # planned, not finished
    run = world.latest()
    # WHEN a tick comes past its deadline
    world.clock.now = PLANNED_AT + RUN_DEADLINE + timedelta(minutes=4)
    world.service.tick()
    # THEN the settled run is announced: both images failed (lost), the run failed
    [event] = publisher.sent
    assert (event.detail["run_id"], event.detail["counts"], event.detail["status"]) == (
        run.run_id,
        {"failed": 2},
        "failed",
    )
    assert errors_of(event.detail) == []


def test_a_run_a_worker_finished_while_the_deadline_sweep_read_it_is_not_announced_again(
    planner: tuple[Planner, RecordingPublisher],
) -> None:
    # GIVEN a run of one image, seen overdue by the sweep (the run as it read it: unfinished)
    world, publisher = planner
    world.hub_rule()
    world.warm_set(images=["library/node:18-alpine"])
    world.service.tick()
    stale = world.latest()
    [task] = world.runs.pending_tasks(stale.run_id) or []
    # AND, meanwhile, a worker records the image's outcome, which finishes the run (the worker announces it)
    outcome = outcome_of(task)
    assert world.runs.record_outcome(stale.run_id, stale.warm_set, outcome).finished is True
    # WHEN the sweep settles the run it read
    summary = world.service.overdue.settle_run(stale, PLANNED_AT + RUN_DEADLINE + timedelta(minutes=4))
    # THEN it finds the run finished and announces nothing (the worker that finished it did)
    assert summary["status"] == "succeeded"
    assert publisher.sent == []
