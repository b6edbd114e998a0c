"""Warm runs past their deadline, settled by the warm planner's tick (:data:`ecrcache.models.warm_run.RUN_DEADLINE`).

A run finishes when its last image gets an outcome. An image whose task is lost never gets one: a body
the worker dropped as malformed, a task moved to ``WarmDlq`` after 3 receives, or one SQS deleted at the
end of the queue's 1-day retention; and a run ``POST .../runs`` queued is never planned when the planner's
stream trigger gives up (its record goes to ``WarmPlannerDlq``). Without a deadline such a run would sit
``queued`` or ``running`` forever. Past it (:func:`~ecrcache.models.warm_run.run_deadline`: a day and an
hour after the run was planned or requested, when no task of it can still arrive):

* a planned run's images without an outcome are recorded ``failed``, class ``ours`` ("lost: ..."), and
  the run finishes (its status from its counts). A worker's outcome arriving later is not counted: the
  image has one;
* a run never planned finishes ``failed``, its message naming the planner's DLQ.

Each tick settles at most :data:`OVERDUE_PER_TICK` runs, earliest deadline first; the rest wait for the next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ecrcache.errors import EcrcacheError
from ecrcache.models.failure_class import FailureClass
from ecrcache.models.warm_run import ImageOutcome, Outcome, run_deadline
from ecrcache.observability import logger, metrics
from ecrcache.services.warm_finished import announce_finished

if TYPE_CHECKING:
    from ecrcache.models.warm_run import WarmRun, WarmTask
    from ecrcache.ports import StateEventPublisher, WarmRunStore

__all__ = ["OVERDUE_PER_TICK", "OverdueRuns", "lost_outcome"]

OVERDUE_PER_TICK: Final = 20
"""Runs one tick settles (each is a few reads and one transaction per 99 lost images)."""


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def lost_outcome(task: WarmTask, *, deadline: datetime, now: datetime) -> ImageOutcome:
    """A task's image that had no outcome by its run's deadline: failed, ours, pointing at where to look."""
    return ImageOutcome(
        image=task.image,
        region=task.region,
        repository=task.repository,
        tag=task.tag,
        digest=task.digest,
        outcome=Outcome.FAILED,
        failure_class=FailureClass.OURS,
        message=f"lost: no outcome by {_at(deadline)} (see WarmDlq / the worker's log)",
        finished_at=now,
    )


def never_planned(deadline: datetime) -> str:
    return (
        f"never planned: the warm planner did not plan this run by {_at(deadline)} "
        "(see WarmPlannerDlq / the planner's log)"
    )


class OverdueRuns:
    """Settles the runs past their deadline (see the module)."""

    def __init__(
        self, runs: WarmRunStore, clock: Callable[[], datetime], *, events: StateEventPublisher | None = None
    ) -> None:
        """``events`` announces each run settled here on the default bus (``Warm Run Finished``)."""
        self.events = events
        self.runs = runs
        self.clock = clock

    def settle(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every overdue run settled (their summaries), and ``<run id>: <error>`` for those that failed
        (left open: the next tick tries them again)."""
        now = self.clock()
        settled: list[dict[str, Any]] = []
        failed: list[str] = []
        try:
            overdue = self.runs.overdue_runs(now, limit=OVERDUE_PER_TICK)
        except EcrcacheError as exc:
            logger.warning("overdue warm runs could not be listed", extra={"error": str(exc)})
            return [], [f"overdue runs: {exc}"]
        for run in overdue:
            try:
                settled.append(self.settle_run(run, now))
            except EcrcacheError as exc:
                logger.warning(
                    "an overdue warm run could not be settled",
                    extra={"run_id": run.run_id, "warm_set": run.warm_set, "error": str(exc)},
                )
                failed.append(f"overdue run {run.run_id} of {run.warm_set}: {exc}")
        return settled, failed

    def settle_run(self, run: WarmRun, now: datetime) -> dict[str, Any]:
        """One overdue run: its lost images recorded and the run finished, or failed as never planned; or a finished
        run whose announcement was lost (its finisher stopped before it): announced now."""
        if run.finished_at is not None:
            announce_finished(self.runs, self.events, run)
            return {"run_id": run.run_id, "warm_set": run.warm_set, "announced": True}
        deadline = run_deadline(run)
        pending = self.runs.pending_tasks(run.run_id)
        if pending is None:
            after = self.runs.fail_unplanned(run.warm_set, run.run_id, message=never_planned(deadline), at=now)
            finished_here = after is not None  # written only if it was unfinished: this call finished it
            lost = 0
        else:
            outcomes = [lost_outcome(t, deadline=deadline, now=now) for t in pending]
            recorded = self.runs.record_outcomes(run.run_id, run.warm_set, outcomes) if outcomes else None
            lost = len(recorded.keys) if recorded is not None else 0
            # ``force``: every image has an outcome now; a run whose counts disagree is finished all the same.
            finish = self.runs.finish_if_done(run.warm_set, run.run_id, at=now, force=True)
            after = finish.run
            # Finished by this sweep (recording the last lost image, or forced): a worker that finished it first
            # has counted and announced it.
            finished_here = finish.finished or (recorded is not None and recorded.finished)
        summary = {
            "run_id": run.run_id,
            "warm_set": run.warm_set,
            "deadline": _at(deadline),
            "planned": pending is not None,
            "lost": lost,
            "status": after.status.value if after is not None else None,
        }
        metrics.add_metric(name="WarmRunsOverdue", unit="Count", value=1)
        metrics.add_metric(name="WarmImagesLost", unit="Count", value=lost)
        logger.warning("a warm run was settled at its deadline", extra=summary)
        if finished_here:  # a worker that finished it first announces it (or the next tick does)
            announce_finished(self.runs, self.events, after)
        return summary
