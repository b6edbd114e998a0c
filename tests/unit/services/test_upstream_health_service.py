"""UpstreamHealthService on the in-memory status store: a cache action lands on its rule's status, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.engine.status import UpstreamObservation
from ecrcache.models.status import ConditionType, RuleStatus, UpstreamCheckSource
from ecrcache.services.upstream_health import CacheAction, UpstreamHealthService, UpstreamRecorded
from tests.fakes.status_store import MemoryStatusStore

pytestmark = pytest.mark.unit

REGION = "us-east-1"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def action(
    prefix: str | None = "quay",
    repository: str = "quay/library/alpine",
    *,
    healthy: bool = False,
    at: datetime = NOW,
    code: str | None = "UpstreamTooManyRequests",
    region: str = REGION,
) -> CacheAction:
    seen = UpstreamObservation(
        source=UpstreamCheckSource.PULL,
        at=at,
        healthy=healthy,
        failure_code=None if healthy else code,
        repository=repository,
        image="3.20",
    )
    return CacheAction(region, prefix, repository, seen)


@pytest.fixture
def store() -> MemoryStatusStore:
    store = MemoryStatusStore()
    for prefix in ("quay", "team/quay", "ROOT"):
        store.put_rule_status(REGION, prefix, RuleStatus(last_reconciled_at=NOW))
    return store


def upstream(store: MemoryStatusStore, prefix: str) -> tuple[bool, str] | None:
    status = store.rule_status(REGION, prefix)
    condition = status.condition(ConditionType.UPSTREAM_HEALTHY) if status else None
    return None if condition is None else (condition.status, condition.reason)


def test_a_failed_pull_is_recorded_on_its_rule_and_a_later_success_clears_it(store: MemoryStatusStore) -> None:
    service = UpstreamHealthService(status=store)
    assert service.record(action()) == UpstreamRecorded(REGION, "quay", False, "RateLimited")
    assert upstream(store, "quay") == (False, "RateLimited")
    assert upstream(store, "team/quay") is None  # other rules untouched

    assert service.record(action(healthy=True, at=NOW + timedelta(minutes=1))) is not None
    assert upstream(store, "quay") == (True, "PullSucceeded")


def test_the_same_event_twice_records_the_same_health(store: MemoryStatusStore) -> None:
    service = UpstreamHealthService(status=store)
    service.record(action())
    first = store.rule_status(REGION, "quay")
    service.record(action())
    assert store.rule_status(REGION, "quay") == first


def test_a_late_older_event_changes_nothing(store: MemoryStatusStore) -> None:
    service = UpstreamHealthService(status=store)
    service.record(action(at=NOW))
    assert service.record(action(healthy=True, at=NOW - timedelta(seconds=5))) is None
    assert upstream(store, "quay") == (False, "RateLimited")


def test_a_reconcile_writing_the_status_keeps_the_recorded_health(store: MemoryStatusStore) -> None:
    # GIVEN a recorded failure WHEN the reconciler writes the rule's status from an earlier read
    stale = store.rule_status(REGION, "quay")
    UpstreamHealthService(status=store).record(action())
    assert stale is not None
    store.put_rule_status(REGION, "quay", stale.model_copy(update={"drift_corrected": 1}))
    # THEN the upstream health is still there
    assert upstream(store, "quay") == (False, "RateLimited")


@pytest.mark.parametrize(
    ("prefix", "repository", "rule"),
    [
        ("team/quay/", "team/quay/a", "team/quay"),  # a trailing '/' as ECR may write it
        (None, "team/quay/library/alpine", "team/quay"),  # no prefix in the event: the longest rule
        (None, "library/alpine", "ROOT"),  # no rule by name: ROOT
    ],
)
def test_the_rule_is_the_events_prefix_or_the_rule_the_repository_is_under(
    store: MemoryStatusStore, prefix: str | None, repository: str, rule: str
) -> None:
    recorded = UpstreamHealthService(status=store).record(action(prefix, repository))
    assert recorded is not None and recorded.prefix == rule
    assert upstream(store, rule) == (False, "RateLimited")


@pytest.mark.parametrize(
    "made",
    [
        action("docker-hub", "docker-hub/library/node"),  # a rule made by hand: no status
        action(region="eu-west-1"),  # a Region where the rule is not reconciled
    ],
)
def test_an_action_for_a_rule_without_status_is_ignored(store: MemoryStatusStore, made: CacheAction) -> None:
    before = list(store.writes)
    assert UpstreamHealthService(status=store).record(made) is None
    assert store.writes == before


def test_without_a_rule_by_name_or_root_nothing_is_recorded() -> None:
    store = MemoryStatusStore()
    store.put_rule_status(REGION, "quay", RuleStatus())
    assert UpstreamHealthService(status=store).record(action(None, "ghcr/owner/image")) is None
