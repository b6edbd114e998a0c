"""Warm runs as the API sees them: request one now, read a set's last run or one run by id with their
images, list every set's.

``POST /v1/warm-sets/{name}/runs`` records the run ``queued`` together with a ``REQUEST#warm`` item in one
transaction (:meth:`ecrcache.ports.WarmRunStore.request_run`); the item's stream INSERT triggers the warm
planner, which plans that run id. Nothing here talks to an upstream or to ECR.

A run's images are answered capped at :data:`IMAGES_MAX` (a set of 50 patterns x 100 tags x a few Regions
would otherwise near Lambda's 6 MB response limit): failed first, then skipped, then the rest, each by key,
with the number of images that have an outcome beside them. The run's counts stay exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from ecrcache.errors import NotFoundError
from ecrcache.models.records import ResourceKind
from ecrcache.models.warm_run import RUN_DEADLINE, Outcome, RunTrigger, WarmRun
from ecrcache.observability import metrics

if TYPE_CHECKING:
    from ecrcache.models.warm_run import ImageOutcome
    from ecrcache.ports import StateStore, WarmRunStore

IMAGES_MAX: Final = 500
"""Image outcomes one answer carries (about 1 KB each at most: a few hundred KB, far below 6 MB)."""
_FIRST: Final = {Outcome.FAILED: 0, Outcome.SKIPPED: 1}


def capped(outcomes: list[ImageOutcome], limit: int = IMAGES_MAX) -> tuple[ImageOutcome, ...]:
    """The ``limit`` outcomes a user most needs: failed, then skipped, then warmed and fresh, each by key."""
    return tuple(sorted(outcomes, key=lambda o: (_FIRST.get(o.outcome, 2), o.key))[:limit])


@dataclass(frozen=True, slots=True)
class WarmSetRuns:
    """A warm set's run (``None`` before any) and the outcomes of its images so far (capped)."""

    warm_set: str
    run: WarmRun | None
    images: tuple[ImageOutcome, ...] = ()
    images_total: int = 0
    """Images of the run with an outcome (``images`` holds at most :data:`IMAGES_MAX` of them)."""

    @property
    def pending(self) -> int:
        return 0 if self.run is None else max(0, self.run.total - self.run.done)

    @property
    def images_truncated(self) -> bool:
        return self.images_total > len(self.images)


class WarmRunsService:
    def __init__(self, *, desired: StateStore, runs: WarmRunStore, clock: Callable[[], datetime]) -> None:
        self.desired = desired
        self.runs = runs
        self.clock = clock

    def _known(self, name: str) -> None:
        if self.desired.get(ResourceKind.WARM_SET, name) is None:
            raise NotFoundError(f"no warm-set named {name!r}")

    def request(self, name: str, *, actor: str) -> WarmRun:
        """Queue a run of warm set ``name`` now (404 when there is no such set)."""
        self._known(name)
        now = self.clock()
        run = WarmRun(
            run_id=str(uuid.uuid4()),
            warm_set=name,
            trigger=RunTrigger.API,
            requested_by=actor,
            created_at=now,
            deadline=now + RUN_DEADLINE,  # failed as never planned if the planner has not planned it by then
        )
        self.runs.request_run(run)
        metrics.add_metric(name="WarmRunsRequested", unit="Count", value=1)
        return run

    def status(self, name: str) -> WarmSetRuns:
        """The set's last run and its images' outcomes (404 when there is no such set)."""
        self._known(name)
        return self._with_images(name, self.runs.latest_run(name))

    def run(self, name: str, run_id: str) -> WarmSetRuns:
        """One run of the set and its images' outcomes, whatever runs came after it (404: no such set or run)."""
        self._known(name)
        run = self.runs.get_run(name, run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id!r} of warm-set {name!r}")
        return self._with_images(name, run)

    def _with_images(self, name: str, run: WarmRun | None) -> WarmSetRuns:
        outcomes = self.runs.outcomes(run.run_id) if run is not None else []
        return WarmSetRuns(name, run, capped(outcomes), len(outcomes))

    def latest(self) -> list[WarmSetRuns]:
        """Every warm set with its last run (no images), by name."""
        names = sorted(self.desired.snapshot().warm_sets)
        return [WarmSetRuns(name, self.runs.latest_run(name)) for name in names]
