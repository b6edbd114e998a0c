"""The reconciler's ECR client under a request-rate ceiling, and under the embedded ECR's throttling.

The ceiling (``ECR_REQUEST_RATE``, :mod:`ecrcache.adapters.rate_limit`) is the first line: the registry's calls go
out at most ``rate`` a second, the deep read's threads together, so ECR's buckets are not emptied. botocore's
adaptive retries are the second line: a moderate throttle (:mod:`devstack.aws.ecr_throttling`) is ridden through
with backoff, the caller seeing no error. Time is virtual: a sleep moves a fake clock (the limiter's, botocore's
backoff, the embedded ECR's buckets), so nothing here waits.

botocore's adaptive mode, once throttled, holds every later request of the client in its own token bucket
(``botocore/retries/bucket.py``: ``Clock.current_time`` and a ``threading.Condition`` wait, down to 0.5 requests a
second); the ride-through test puts that bucket on the virtual clock too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from devstack.aws import ecr_throttling
from ecrcache.adapters.ecr_registry import Boto3EcrRegistry, ecr_client
from ecrcache.adapters.rate_limit import RequestRateLimiter
from ecrcache.config import ReconcilerSettings
from ecrcache.models.observed import ObservedRegion
from tests.conftest import REGION
from tests.functional.reconcile_adapters.conftest import LIFECYCLE_TEXT, POLICY_TEXT, Ecr

pytestmark = pytest.mark.functional

REPOSITORIES = [f"quay/org/image-{i:02d}" for i in range(10)]


class VirtualTime:
    """One fake monotonic clock for everyone; a sleep moves it by the time asked (thread-safe)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


class VirtualCondition:
    """``threading.Condition`` for botocore's adaptive token bucket, its timed waits made on the virtual clock."""

    time: VirtualTime

    def __init__(self, lock: Any) -> None:
        self._condition = threading.Condition(lock)

    def __enter__(self) -> bool:
        return self._condition.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._condition.__exit__(*exc)

    def wait(self, timeout: float) -> bool:
        # At least a microsecond, as a real wait takes: the bucket waits again for a remainder below the clock's
        # resolution (floating point), which would otherwise never come.
        self.time.sleep(max(timeout, 1e-6))
        return False

    def notify(self) -> None:
        self._condition.notify()


def adaptive_bucket_on(time: VirtualTime, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's adaptive rate limiter (made with the client) reads and waits on ``time``."""
    monkeypatch.setattr(VirtualCondition, "time", time, raising=False)
    monkeypatch.setattr("botocore.retries.bucket.Clock.current_time", lambda _: time.clock())
    monkeypatch.setattr(
        "botocore.retries.bucket.threading", SimpleNamespace(Lock=threading.Lock, Condition=VirtualCondition)
    )


@pytest.fixture
def repositories(ecr: Ecr) -> list[str]:
    """Ten repositories under ``quay``; every other one with a lifecycle policy, a repository policy and a tag."""
    for i, name in enumerate(REPOSITORIES):
        arn = ecr.repository(name)
        if i % 2 == 0:
            ecr.ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=LIFECYCLE_TEXT)
            ecr.ecr.set_repository_policy(repositoryName=name, policyText=POLICY_TEXT)
            ecr.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": f"t{i}"}])
    return REPOSITORIES


@pytest.fixture
def throttle() -> Iterator[None]:
    """The embedded ECR's throttle is process-wide: nothing throttled after the test."""
    yield
    ecr_throttling.reset()


def deep_read(registry: Boto3EcrRegistry) -> ObservedRegion:
    return registry.observe(prefixes=["quay"], deep=True, applied={})


def details(observed: ObservedRegion) -> dict[str, tuple[bool, bool, dict[str, str]]]:
    out = {}
    for name, repository in observed.repositories.items():
        assert repository.details is not None, name
        found = repository.details
        out[name] = (found.lifecycle_policy is not None, found.repository_policy is not None, dict(found.tags))
    return out


EXPECTED = {
    name: (i % 2 == 0, i % 2 == 0, {"team": f"t{i}"} if i % 2 == 0 else {}) for i, name in enumerate(REPOSITORIES)
}


def test_the_registrys_calls_go_out_under_the_rate(ecr: Ecr, repositories: list[str]) -> None:
    # GIVEN a registry whose client may send 10 requests a second
    time = VirtualTime()
    limiter = RequestRateLimiter(10, clock=time.clock, sleep=time.sleep)
    registry = Boto3EcrRegistry(REGION, ecr_client(REGION, limiter=limiter), deep_read_workers=1)
    sent: list[float] = []
    registry.client.meta.events.register("before-send.ecr", lambda **_: sent.append(time.now))  # after the limiter
    # WHEN it reads the Region deeply (rules, templates, the repository pages, 3 reads a repository)
    observed = deep_read(registry)
    # THEN every request waited its turn: the k-th went out k/10 s after the first, and none was lost or added
    assert details(observed) == EXPECTED
    assert len(sent) == limiter.requests == sum(registry.calls.values()) == 3 + 3 * len(repositories)
    assert [round(t - sent[0], 6) for t in sent] == [round(k / 10, 6) for k in range(len(sent))]
    assert limiter.delayed == len(sent) - 1


def test_the_deep_reads_threads_share_one_ceiling(ecr: Ecr, repositories: list[str]) -> None:
    # GIVEN the deep read's pool of 8 threads on one client limited to 20 requests a second (a clock standing still:
    # each request's wait is then how far its slot is from the first)
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    limiter = RequestRateLimiter(20, clock=lambda: 0.0, sleep=record)
    registry = Boto3EcrRegistry(REGION, ecr_client(REGION, limiter=limiter), deep_read_workers=8)
    # WHEN it reads deeply
    observed = deep_read(registry)
    # THEN the threads took successive slots 50 ms apart: 20 a second for the pool, not for each thread
    assert details(observed) == EXPECTED
    assert limiter.requests == sum(registry.calls.values())
    assert sorted(round(w, 6) for w in waits) == [round(k / 20, 6) for k in range(1, limiter.requests)]


def test_a_registry_without_a_rate_has_no_ceiling(ecr: Ecr, repositories: list[str]) -> None:
    registry = Boto3EcrRegistry(REGION, ecr_client(REGION), deep_read_workers=1)
    assert details(deep_read(registry)) == EXPECTED
    with pytest.raises(ValueError, match="not both"):
        ecr_client(REGION, request_rate=5, limiter=RequestRateLimiter(5))


def test_adaptive_retries_ride_through_a_moderate_throttle(
    ecr: Ecr, repositories: list[str], throttle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the embedded ECR throttling every operation at 5 TPS (a burst of 1), and no ceiling of ours
    time = VirtualTime()
    ecr_throttling.configure("*=5:1", clock=time.clock)
    backoffs: list[float] = []

    def backoff(seconds: float) -> None:
        backoffs.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr("botocore.endpoint.time.sleep", backoff)  # botocore's backoff, on the virtual clock
    adaptive_bucket_on(time, monkeypatch)
    registry = Boto3EcrRegistry(REGION, ecr_client(REGION), deep_read_workers=1)
    # WHEN it reads deeply THEN ECR refused some requests, botocore backed off and retried each, and the read is whole
    assert details(deep_read(registry)) == EXPECTED
    throttled = sum(ecr_throttling.current().throttled.values())
    assert throttled > 0
    assert len(backoffs) == throttled  # one backoff per refused attempt
    assert sum(ecr_throttling.current().admitted.values()) == sum(registry.calls.values())
    # AND from the first refusal on, the adaptive mode's own bucket held the client's requests too
    assert len(time.slept) > len(backoffs)


def test_under_the_ceiling_ecr_refuses_nothing(
    ecr: Ecr, repositories: list[str], throttle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the same throttle, and the registry's client limited to ECR's 5 requests a second (same clock)
    time = VirtualTime()
    ecr_throttling.configure("*=5:1", clock=time.clock)
    backoffs: list[float] = []
    monkeypatch.setattr("botocore.endpoint.time.sleep", backoffs.append)
    limiter = RequestRateLimiter(5, clock=time.clock, sleep=time.sleep)
    registry = Boto3EcrRegistry(REGION, ecr_client(REGION, limiter=limiter), deep_read_workers=1)
    # WHEN it reads deeply THEN no request was refused, none retried: the adaptive retries were not needed
    assert details(deep_read(registry)) == EXPECTED
    assert ecr_throttling.current().throttled == {}
    assert backoffs == []
    assert limiter.requests == sum(registry.calls.values())


def test_the_reconciler_builds_its_registries_under_ecr_request_rate(ecr: Ecr, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.reconciler import app  # its clients are made inside the embedded AWS

    made: list[dict[str, Any]] = []

    def spy(region: str, **kwargs: Any) -> Any:
        made.append({"region": region, **kwargs})
        return ecr_client(region, **kwargs)

    settings = ReconcilerSettings.model_validate({"table_name": "state", "ecr_request_rate": "7"})
    monkeypatch.setattr(app, "settings", settings)
    monkeypatch.setattr(app, "_registries", {})
    monkeypatch.setattr(app, "ecr_client", spy)
    first = app.registry("eu-west-1")
    assert app.registry("eu-west-1") is first  # one registry (one client, one limiter) per Region, kept
    assert made == [{"region": "eu-west-1", "request_rate": 7.0}]
