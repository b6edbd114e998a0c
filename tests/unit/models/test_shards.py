"""The fan-out's messages and counts (:mod:`ecrcache.models.shards`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ecrcache.models.shards import MAX_SHARD_SIZE, FanoutMarker, ShardCounts, ShardState, ShardTask

pytestmark = pytest.mark.unit


def _task(repositories: tuple[str, ...]) -> ShardTask:
    return ShardTask(run_id="run-1", region="us-east-1", index=0, repositories=repositories)


def test_a_task_round_trips_as_a_message_body() -> None:
    task = _task(("k8s/a", "quay/b"))
    assert ShardTask.model_validate_json(task.model_dump_json()) == task
    fast = task.model_copy(update={"deep": False})
    assert ShardTask.model_validate_json(fast.model_dump_json()).deep is False


def test_a_task_sent_before_fast_shards_existed_is_a_deep_one() -> None:
    body = '{"run_id": "run-1", "region": "us-east-1", "index": 0, "repositories": ["quay/a"]}'
    assert ShardTask.model_validate_json(body).deep is True


@pytest.mark.parametrize(
    ("repositories", "rule"),
    [
        ((), "at least 1"),
        (("quay/b", "quay/a"), "sorted and unique"),
        (("quay/a", "quay/a"), "sorted and unique"),
        (("x" * 257,), "1 to 256 characters"),
        (tuple(f"r/{i:04d}" for i in range(MAX_SHARD_SIZE + 1)), f"at most {MAX_SHARD_SIZE}"),
    ],
)
def test_a_task_refuses_what_a_coordinator_never_sends(repositories: tuple[str, ...], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        _task(repositories)


def test_a_worst_case_task_fits_in_an_sqs_message() -> None:
    names = tuple(sorted(f"{i:04d}/" + "x" * 251 for i in range(MAX_SHARD_SIZE)))
    body = _task(names).model_dump_json()
    assert len(body.encode()) < 256 * 1024


def test_counts_are_finished_when_every_shard_reported() -> None:
    assert not ShardCounts(total=3, done=1, failed=1, retrying=1).finished
    assert ShardCounts(total=3, done=2, failed=1).finished
    assert {ShardState.DONE, ShardState.FAILED} == {s for s in ShardState if s.final}


def test_a_marker_covers_the_repositories_created_before_its_run_started() -> None:
    started = datetime(2026, 12, 5, 3, 17, tzinfo=UTC)
    marker = FanoutMarker(run_id="run-1", deadline=started + timedelta(hours=3), started_at=started)
    assert marker.covers(started - timedelta(seconds=1), "quay")
    assert not marker.covers(started, "quay")
    assert not marker.covers(started + timedelta(minutes=5), "quay")
    assert marker.covers(None, "quay")  # creation not known: may be in its shards
    older = FanoutMarker(run_id="run-1", deadline=started)  # written before started_at existed: covers everything
    assert older.covers(started + timedelta(days=1), "quay")


def test_a_fast_fanouts_marker_covers_only_its_rules_repositories() -> None:
    started = datetime(2026, 12, 5, 3, 17, tzinfo=UTC)
    marker = FanoutMarker(run_id="run-1", deadline=started, started_at=started, prefixes=("quay",))
    assert marker.covers(started - timedelta(seconds=1), "quay")
    assert not marker.covers(started - timedelta(seconds=1), "k8s")
