"""Runs past their deadline, settled by the planner's tick on moto: lost images fail as ``ours`` and the run
finishes; a requested run never planned fails; a run within its deadline, or finished, is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import RUN_DEADLINE, ImageOutcome, Outcome, RunStatus, RunTrigger, WarmRun
from tests.functional.warm.planner_support import Planner, make_queue
from tests.functional.warm.support import raiser

pytestmark = pytest.mark.functional

IMAGES = ["library/node:18-alpine", "library/python:3.12-slim", "library/ubuntu:22.04"]
PLANNED_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DEADLINE = PLANNED_AT + RUN_DEADLINE


@pytest.fixture
def planner(state_table: str) -> Planner:
    return Planner(state_table, make_queue())


def planned_run(planner: Planner) -> WarmRun:
    """A scheduled run of three images planned at 12:00, one of them warmed by a worker, two lost."""
    planner.hub_rule()
    planner.warm_set(images=IMAGES)
    assert planner.service.tick().failed == []
    run = planner.latest()
    tasks = planner.sent()
    planner.runs.record_outcome(
        run.run_id,
        "ci",
        ImageOutcome(
            image=tasks[0].image,
            region=tasks[0].region,
            repository=tasks[0].repository,
            tag=tasks[0].tag,
            outcome=Outcome.WARMED,
            upstream_requests=3,
            finished_at=PLANNED_AT + timedelta(minutes=1),
        ),
    )
    return run


def test_a_planned_run_has_the_deadline_of_its_tasks_retention(planner: Planner) -> None:
    run = planned_run(planner)
    # The fire was 05:00; its tasks were sent at 12:00: their retention (and the run's deadline) counts from then.
    assert (run.created_at, run.deadline) == (datetime(2026, 11, 29, 5, tzinfo=UTC), DEADLINE)


def test_the_tick_settles_a_run_whose_images_were_lost(planner: Planner) -> None:
    # GIVEN a run whose two other tasks never got an outcome (dead-lettered, expired)
    run = planned_run(planner)

    # WHEN a tick comes before the deadline THEN the run is left alone
    planner.clock.now = DEADLINE - timedelta(minutes=1)
    assert planner.service.tick().settled == []

    # WHEN a tick comes past it
    planner.clock.now = DEADLINE + timedelta(minutes=4)
    result = planner.service.tick()

    # THEN the two images are failed as lost (ours), and the run finished partial
    assert result.settled == [
        {
            "run_id": run.run_id,
            "warm_set": "ci",
            "deadline": DEADLINE.isoformat(),
            "planned": True,
            "lost": 2,
            "status": "partial",
        }
    ]
    settled = planner.runs.get_run("ci", run.run_id)
    assert settled is not None
    assert (settled.status, settled.finished_at, settled.counts) == (
        RunStatus.PARTIAL,
        planner.clock.now,
        {Outcome.WARMED: 1, Outcome.FAILED: 2},
    )
    lost = [o for o in planner.runs.outcomes(run.run_id) if o.outcome is Outcome.FAILED]
    assert {(o.failure_class, o.message) for o in lost} == {
        (
            FailureClass.OURS,
            f"lost: no outcome by {DEADLINE.isoformat()} (see WarmDlq / the worker's log)",
        )
    }
    assert planner.runs.pending_tasks(run.run_id) == []

    # AND the next tick settles nothing; a worker's outcome arriving now is not counted
    assert planner.service.tick().settled == []
    late = planner.runs.record_outcome(run.run_id, "ci", lost[0].model_copy(update={"outcome": Outcome.WARMED}))
    assert not late.recorded


def test_a_requested_run_never_planned_fails_at_its_deadline(planner: Planner) -> None:
    # GIVEN a run requested through the API whose planning never happened (the stream's retries exhausted)
    planner.hub_rule()
    planner.warm_set(images=IMAGES)
    requested = WarmRun(
        run_id="r-lost",
        warm_set="ci",
        trigger=RunTrigger.API,
        requested_by="alice",
        created_at=PLANNED_AT,
        deadline=DEADLINE,
    )
    planner.runs.request_run(requested)

    # WHEN the tick comes past its deadline
    planner.clock.now = DEADLINE + timedelta(minutes=1)
    result = planner.service.tick()

    # THEN it is failed with a message saying where to look
    assert [(s["run_id"], s["planned"], s["status"]) for s in result.settled] == [("r-lost", False, "failed")]
    failed = planner.runs.get_run("ci", "r-lost")
    assert failed is not None
    assert (failed.status, failed.finished_at, failed.message) == (
        RunStatus.FAILED,
        planner.clock.now,
        f"never planned: the warm planner did not plan this run by {DEADLINE.isoformat()} "
        "(see WarmPlannerDlq / the planner's log)",
    )


def test_a_finished_run_is_never_settled(planner: Planner) -> None:
    planner.hub_rule()
    planner.warm_set(images=["library/node:18-alpine"])
    planner.service.tick()
    run = planner.latest()
    [task] = planner.sent()
    planner.runs.record_outcome(
        run.run_id,
        "ci",
        ImageOutcome(
            image=task.image,
            region=task.region,
            repository=task.repository,
            tag=task.tag,
            outcome=Outcome.WARMED,
            finished_at=PLANNED_AT,
        ),
    )
    planner.clock.now = DEADLINE + timedelta(days=1)
    # (finished by the store call above, which announces nothing: the tick only completes its announcement)
    assert planner.service.tick().settled == [{"run_id": run.run_id, "warm_set": "ci", "announced": True}]
    assert planner.service.tick().settled == []
    finished = planner.runs.get_run("ci", run.run_id)
    assert finished is not None
    assert finished.status is RunStatus.SUCCEEDED
    assert planner.runs.outcomes(run.run_id)[0].outcome is Outcome.WARMED


def test_a_table_failure_while_settling_is_reported_and_the_due_sets_are_planned(
    planner: Planner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an overdue run, and the index's query throttled past botocore's retries
    planned_run(planner)
    planner.clock.now = DEADLINE + timedelta(minutes=1)
    real, throttled = planner.runs.client.query, raiser("ProvisionedThroughputExceededException", 400)

    def query(**kwargs: Any) -> Any:
        return (throttled if "IndexName" in kwargs else real)(**kwargs)

    monkeypatch.setattr(planner.runs.client, "query", query)

    # WHEN the tick comes THEN the failure is reported, today's fire is planned all the same
    result = planner.service.tick()
    assert result.settled == []
    assert [f.split(":")[0] for f in result.failed] == ["overdue runs"]
    assert len(result.planned) == 1

    # AND the next tick settles the run
    monkeypatch.undo()
    assert [s["lost"] for s in planner.service.tick().settled] == [2]


def test_a_run_that_cannot_be_settled_is_reported_and_left_for_the_next_tick(
    planner: Planner, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = planned_run(planner)
    planner.clock.now = DEADLINE + timedelta(minutes=1)
    monkeypatch.setattr(planner.runs.client, "transact_write_items", raiser("InternalServerError", 500))
    result = planner.service.tick()
    assert result.settled == []
    assert result.failed[0].startswith(f"overdue run {run.run_id} of ci: ")
    still = planner.runs.get_run("ci", run.run_id)
    assert still is not None
    assert still.finished_at is None
    monkeypatch.undo()
    assert [(s["run_id"], s["status"]) for s in planner.service.tick().settled] == [(run.run_id, "partial")]
