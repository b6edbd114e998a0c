"""A Lambda context whose remaining time deep reads spend (simulated, never measured), and a reader that spends it."""

from __future__ import annotations

import threading
from typing import Any, Final

import boto3

from ecrcache.adapters.ecr_registry import Boto3EcrReader
from tests.conftest import REGION, FakeLambdaContext

SECONDS_PER_READ: Final = 1_000
START_MS: Final = 28_000
"""The invocation starts with 28 s left: 40 repositories at 1 s each would need 40 s."""


class SimulatedContext(FakeLambdaContext):
    """A Lambda context whose remaining time is spent by the deep reads (not by the wall clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = 0
        self.reads = 0
        self.lowest = START_MS
        self._lock = threading.Lock()

    def read_one(self, **_: Any) -> None:
        with self._lock:
            self.reads += 1
            self.spent += SECONDS_PER_READ

    def get_remaining_time_in_millis(self) -> int:
        with self._lock:
            remaining = START_MS - self.spent
            self.lowest = min(self.lowest, remaining)
            return remaining


def spending_reader(context: SimulatedContext) -> Boto3EcrReader:
    """An ECR reader of the test's moto state whose every repository deep read (its ``GetLifecyclePolicy``)
    costs ``context`` one simulated second."""
    client = boto3.client("ecr", region_name=REGION)
    client.meta.events.register("before-call.ecr.GetLifecyclePolicy", context.read_one)
    return Boto3EcrReader(REGION, client)


def cached_repositories(count: int, prefix: str = "quay/team") -> None:
    """``count`` repositories under ``prefix`` in ECR (as pulls through the cache would leave them)."""
    ecr = boto3.client("ecr", region_name=REGION)
    for i in range(count):
        ecr.create_repository(repositoryName=f"{prefix}/image-{i:02d}")
