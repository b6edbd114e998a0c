"""A finished warm run's ``Warm Run Finished`` event: announced at least once, counted exactly once.

Whoever finishes a run (the worker recording its last image, the planner finding nothing to warm, the planner's
tick settling it at its deadline) announces it, then sets the run's ``announced`` flag with a conditional write
(:meth:`~ecrcache.ports.WarmRunStore.mark_announced`). The announcement comes first: an invocation that dies
between finishing the run and announcing it leaves the run finished but unannounced, and such a run stays listed
for the tick (:meth:`~ecrcache.ports.WarmRunStore.overdue_runs`), which announces it on its next pass, as does a
redelivered task of the run. So the event is sent at least once (DESIGN.md: events are at-least-once; two callers
racing may both send it), and ``WarmRunsFinished`` is counted exactly once, by the call whose flag write
succeeded. An event that could not be sent leaves the flag unset: the tick tries again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecrcache.engine.state_events import warm_run_finished
from ecrcache.errors import EcrcacheError
from ecrcache.observability import count_by, logger
from ecrcache.services.state_events import announce

if TYPE_CHECKING:
    from ecrcache.models.warm_run import WarmRun
    from ecrcache.ports import StateEventPublisher, WarmRunStore

__all__ = ["announce_finished"]


def announce_finished(runs: WarmRunStore, events: StateEventPublisher | None, run: WarmRun | None) -> bool:
    """Announce ``run`` if it is finished and not announced yet, then flag it; ``True`` only for the call whose flag
    write succeeded (it counted ``WarmRunsFinished``). Never raises: what fails is left for the tick."""
    if run is None or run.announced or (event := warm_run_finished(run)) is None:
        return False
    if not announce(events, [event]):
        return False
    try:
        flagged = runs.mark_announced(run)
    except EcrcacheError as exc:
        logger.warning(
            "a warm run's announcement was not recorded; the planner's tick sends it again",
            extra={"run_id": run.run_id, "warm_set": run.warm_set, "error": exc.message},
        )
        return False
    if flagged:
        count_by("WarmRunsFinished", dimension="status", value=run.status.value, count=1)
    return flagged
