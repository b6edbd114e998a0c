"""The warm worker service wired as the function wires it, on the embedded ECR, with in-memory stores.

:class:`Warming` holds the real :class:`~ecrcache.adapters.ecr_warm.Boto3EcrWarmer` (on the embedded
ECR, whose pull-through cache reaches the local registries through the ``ptc`` fixture), the in-memory
fakes of the warm run store and the upstream budget (their DynamoDB adapters are the planner branch's),
and the embedded AWS's clock (so "25 hours later" moves ECR's 24-hour refresh window and the worker's
freshness check together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devstack.aws import clock
from ecrcache.adapters.ecr_warm import Boto3EcrWarmer
from ecrcache.models.upstream import UpstreamKind, default_rate_limit
from ecrcache.models.warm_run import ImageOutcome, RunTrigger, WarmRun, WarmTask
from ecrcache.services.warm_worker import WarmWorkerService, task_limit
from tests.conftest import REGION
from tests.fakes.warm import MemoryUpstreamBudget, MemoryWarmRunStore

__all__ = ["UPSTREAMS", "Warming"]

#: Rule prefix -> the upstream URL its rule has (tests/functional/registry/support.py maps each host).
UPSTREAMS = {
    "docker-hub": "registry-1.docker.io",
    "ecr-public": "public.ecr.aws",
    "quay": "quay.io",
    "ghcr": "ghcr.io",
}
#: Rule prefix -> its upstream kind, whose published default limit the planner takes with (and tasks carry).
KINDS = {
    "docker-hub": UpstreamKind.DOCKER_HUB,
    "ecr-public": UpstreamKind.ECR_PUBLIC,
    "quay": UpstreamKind.QUAY,
    "ghcr": UpstreamKind.GITHUB_CONTAINER_REGISTRY,
}


@dataclass
class Warming:
    store: MemoryWarmRunStore = field(default_factory=MemoryWarmRunStore)
    budget: MemoryUpstreamBudget = field(default_factory=MemoryUpstreamBudget)
    warmer: Boto3EcrWarmer = field(default_factory=lambda: Boto3EcrWarmer(REGION, layer_retry_delays=(0.01,)))

    def __post_init__(self) -> None:
        self.service = WarmWorkerService(
            store=self.store, budget=self.budget, ecr=lambda region: self.warmer, clock=clock.now
        )

    def task(self, rule: str, image: str, *, run_id: str = "run-1", **changes: Any) -> WarmTask:
        """The task the planner would queue for ``image`` (``repo:tag``, ``repo@digest`` or both) under ``rule``."""
        name, _, digest = image.partition("@")
        repository, colon, tag = name.rpartition(":")
        if not colon or "/" in tag:
            repository, tag = name, ""
        fields: dict[str, Any] = {
            "run_id": run_id,
            "warm_set": "base",
            "region": REGION,
            "rule": rule,
            "upstream": UPSTREAMS[rule],
            "repository": f"{rule}/{repository}",
            "image": image,
            "tag": tag or None,
            "digest": digest or None,
            "platforms": ("linux/amd64", "linux/arm64"),
            "reserved_requests": 3,
            "bucket_capacity": default_rate_limit(KINDS[rule])[0],
            "bucket_window_seconds": default_rate_limit(KINDS[rule])[1],
        }
        return WarmTask(**(fields | changes))

    def plan(self, *tasks: WarmTask) -> None:
        """Create the run of ``tasks`` (as the planner does) and take their reservations from the budget."""
        for run_id, warm_set in {(t.run_id, t.warm_set) for t in tasks}:
            total = sum(1 for t in tasks if t.run_id == run_id)
            run = WarmRun(run_id=run_id, warm_set=warm_set, trigger=RunTrigger.API, created_at=clock.now(), total=total)
            self.store.create_run(run, [])
        for task in tasks:
            self.budget.take(task.upstream, task.reserved_requests, limit=task_limit(task), now=clock.now())

    def warm(self, *tasks: WarmTask) -> list[ImageOutcome]:
        """Plan the tasks as one run and handle each as the worker would."""
        self.plan(*tasks)
        return [self.service.handle(task) for task in tasks]

    def run(self, run_id: str = "run-1") -> WarmRun:
        run = self.store.runs.get(run_id)
        assert run is not None
        return run
