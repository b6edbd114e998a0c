"""Warm runs as the API sees them: request one now, read a set's last run and its images, list every set's.

``POST /v1/warm-sets/{name}/runs`` records the run ``queued`` together with a ``REQUEST#warm`` item in one
transaction (:meth:`ecrcache.ports.WarmRunStore.request_run`); the item's stream INSERT triggers the warm
planner, which plans that run id. Nothing here talks to an upstream or to ECR.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ecrcache.errors import NotFoundError
from ecrcache.models.records import ResourceKind
from ecrcache.models.warm_run import ImageOutcome, RunTrigger, WarmRun
from ecrcache.observability import metrics
from ecrcache.ports import StateStore, WarmRunStore


@dataclass(frozen=True, slots=True)
class WarmSetRuns:
    """A warm set's last run (``None`` before any) and the outcomes of its images so far."""

    warm_set: str
    run: WarmRun | None
    images: tuple[ImageOutcome, ...] = ()

    @property
    def pending(self) -> int:
        return 0 if self.run is None else max(0, self.run.total - self.run.done)


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
        run = WarmRun(
            run_id=str(uuid.uuid4()), warm_set=name, trigger=RunTrigger.API, requested_by=actor, created_at=self.clock()
        )
        self.runs.request_run(run)
        metrics.add_metric(name="WarmRunsRequested", unit="Count", value=1)
        return run

    def status(self, name: str) -> WarmSetRuns:
        """The set's last run and its images' outcomes (404 when there is no such set)."""
        self._known(name)
        run = self.runs.latest_run(name)
        images = tuple(self.runs.outcomes(run.run_id)) if run is not None else ()
        return WarmSetRuns(name, run, images)

    def latest(self) -> list[WarmSetRuns]:
        """Every warm set with its last run (no images), by name."""
        names = sorted(self.desired.snapshot().warm_sets)
        return [WarmSetRuns(name, self.runs.latest_run(name)) for name in names]
