"""The per-upstream token bucket on moto DynamoDB: refill, refunds, 429 blocks, and no overspending
when two runs take from one bucket at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from ecrcache.adapters.upstream_budget import DynamoDbUpstreamBudget
from ecrcache.engine.upstream_buckets import BucketLimit
from ecrcache.errors import RetryableError, TerminalError
from ecrcache.ports import UpstreamBudget
from tests.conftest import REGION
from tests.functional.warm.support import Counted, Serialised, raiser

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HUB = "registry-1.docker.io"
LIMIT = BucketLimit(capacity=200, window_seconds=21_600)  # Docker Hub: 200 per 6 hours


@pytest.fixture
def counted(state_table: str) -> Counted:
    return Counted()


@pytest.fixture
def budget(state_table: str, counted: Counted) -> DynamoDbUpstreamBudget:
    return DynamoDbUpstreamBudget(state_table, counted.client, sleep=counted.sleep)


def item(table: str, upstream: str = HUB) -> dict[str, Any]:
    found = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=table, Key={"pk": {"S": f"BUDGET#{upstream}"}, "sk": {"S": "BUCKET"}}
    )
    return dict(found.get("Item", {}))


def test_the_adapter_implements_the_port(budget: DynamoDbUpstreamBudget) -> None:
    port: UpstreamBudget = budget  # checked by mypy
    assert port.blocked_until(HUB, now=NOW) is None


def test_a_new_bucket_is_full_and_gives_no_more_than_it_holds(budget: DynamoDbUpstreamBudget, state_table: str) -> None:
    # GIVEN no bucket yet WHEN runs take THEN they get what they ask until the capacity is spent
    assert budget.take(HUB, 150, limit=LIMIT, now=NOW) == 150
    assert budget.take(HUB, 80, limit=LIMIT, now=NOW) == 50
    assert budget.take(HUB, 1, limit=LIMIT, now=NOW) == 0
    stored = item(state_table)
    assert (stored["tokens"]["N"], stored["capacity"]["N"]) == ("0.000000", "200")
    assert stored["refill_per_second"]["N"] == "0.009259"
    assert int(stored["expires_at"]["N"]) > NOW.timestamp() + LIMIT.window_seconds


def test_the_bucket_refills_with_time_up_to_its_capacity(budget: DynamoDbUpstreamBudget) -> None:
    assert budget.take(HUB, 200, limit=LIMIT, now=NOW) == 200
    # half the window later, half the capacity is back
    assert budget.take(HUB, 500, limit=LIMIT, now=NOW + timedelta(hours=3)) == 100
    # three windows later, never more than the capacity
    assert budget.take(HUB, 500, limit=LIMIT, now=NOW + timedelta(hours=21)) == 200


def test_a_refund_gives_back_unspent_tokens_never_above_capacity(budget: DynamoDbUpstreamBudget) -> None:
    assert budget.take(HUB, 200, limit=LIMIT, now=NOW) == 200
    budget.refund(HUB, 30, limit=LIMIT, now=NOW)
    assert budget.take(HUB, 50, limit=LIMIT, now=NOW) == 30
    budget.refund(HUB, 500, limit=LIMIT, now=NOW)
    assert budget.take(HUB, 500, limit=LIMIT, now=NOW) == 200


def test_a_429_block_empties_the_bucket_until_its_reset_then_it_refills_from_empty(
    budget: DynamoDbUpstreamBudget,
) -> None:
    # GIVEN a full bucket WHEN the upstream answers 429 with a reset in an hour
    until = NOW + timedelta(hours=1)
    budget.block(HUB, until=until, limit=LIMIT, now=NOW)

    # THEN nothing is given, nor refunded, before the reset
    assert budget.blocked_until(HUB, now=NOW) == until
    assert budget.take(HUB, 1, limit=LIMIT, now=NOW + timedelta(minutes=59)) == 0
    budget.refund(HUB, 50, limit=LIMIT, now=NOW + timedelta(minutes=30))
    # an earlier block does not shorten it
    budget.block(HUB, until=NOW + timedelta(minutes=10), limit=LIMIT, now=NOW)
    assert budget.blocked_until(HUB, now=NOW) == until

    # AND after the reset the bucket refills from empty (3 hours: half the capacity)
    assert budget.blocked_until(HUB, now=until) is None
    assert budget.take(HUB, 500, limit=LIMIT, now=until + timedelta(hours=3)) == 100


def test_a_charge_beyond_what_the_bucket_holds_is_a_debt_that_later_takes_wait_out(
    budget: DynamoDbUpstreamBudget, state_table: str
) -> None:
    # GIVEN a bucket with 10 tokens left
    assert budget.take(HUB, 190, limit=LIMIT, now=NOW) == 190
    # WHEN a warm spent 40 requests more than were taken for it
    budget.charge(HUB, 40, limit=LIMIT, now=NOW)

    # THEN the bucket is 30 in debt (stored below zero, not clamped at empty)
    assert item(state_table)["tokens"]["N"] == "-30.000000"
    assert budget.take(HUB, 5, limit=LIMIT, now=NOW) == 0
    assert item(state_table)["tokens"]["N"] == "-30.000000"
    # AND nothing is given until the refill (200 per 6 h) has paid it back: 30 tokens take 54 minutes
    assert budget.take(HUB, 5, limit=LIMIT, now=NOW + timedelta(minutes=53)) == 0
    hour = NOW + timedelta(hours=1)
    assert budget.take(HUB, 5, limit=LIMIT, now=hour) == 3  # 33.3 refilled, 30 of them paid the debt
    # AND a refund pays a debt back as the refill does
    budget.charge(HUB, 20, limit=LIMIT, now=hour)
    budget.refund(HUB, 30, limit=LIMIT, now=hour)
    assert budget.take(HUB, 50, limit=LIMIT, now=hour) == 10


def test_a_debt_is_at_most_one_windows_capacity(budget: DynamoDbUpstreamBudget, state_table: str) -> None:
    budget.charge(HUB, 1000, limit=LIMIT, now=NOW)  # a full bucket charged five times its capacity
    assert item(state_table)["tokens"]["N"] == "-200.000000"
    # one window pays the debt back, the next refills: half of the second window gives half the capacity
    assert budget.take(HUB, 500, limit=LIMIT, now=NOW + timedelta(hours=6)) == 0
    assert budget.take(HUB, 500, limit=LIMIT, now=NOW + timedelta(hours=9)) == 100


def test_a_charge_while_blocked_changes_nothing_and_a_block_clears_a_debt(budget: DynamoDbUpstreamBudget) -> None:
    budget.charge(HUB, 300, limit=LIMIT, now=NOW)
    until = NOW + timedelta(hours=1)
    budget.block(HUB, until=until, limit=LIMIT, now=NOW)
    budget.charge(HUB, 50, limit=LIMIT, now=NOW + timedelta(minutes=30))
    # the upstream's window starts afresh at its reset: 3 hours after it, half the capacity
    assert budget.take(HUB, 500, limit=LIMIT, now=until + timedelta(hours=3)) == 100


def test_a_lowered_limit_clamps_the_tokens(budget: DynamoDbUpstreamBudget) -> None:
    assert budget.take(HUB, 10, limit=LIMIT, now=NOW) == 10
    assert budget.take(HUB, 500, limit=BucketLimit(capacity=40, window_seconds=3600), now=NOW) == 40


def test_buckets_are_per_upstream(budget: DynamoDbUpstreamBudget) -> None:
    assert budget.take(HUB, 200, limit=LIMIT, now=NOW) == 200
    assert budget.take("ghcr.io", 5, limit=LIMIT, now=NOW) == 5


def test_nothing_is_written_when_nothing_is_taken(budget: DynamoDbUpstreamBudget, counted: Counted) -> None:
    assert budget.take(HUB, 0, limit=LIMIT, now=NOW) == 0
    budget.refund(HUB, 0, limit=LIMIT, now=NOW)
    budget.charge(HUB, 0, limit=LIMIT, now=NOW)
    assert counted.calls == {}
    assert budget.take(HUB, 200, limit=LIMIT, now=NOW) == 200
    counted.calls.clear()
    assert budget.take(HUB, 1, limit=LIMIT, now=NOW) == 0
    assert counted.calls == {"GetItem": 1}


# --------------------------------------------------------------------------------------------------
# two runs, one bucket


class Interleaved:
    """A client for run A that lets run B take ``b_takes`` tokens between A's read and A's write, once."""

    def __init__(self, other: DynamoDbUpstreamBudget, b_takes: int) -> None:
        self._client = boto3.client("dynamodb", region_name=REGION)
        self._other = other
        self._b_takes = b_takes
        self.b_got: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        if self.b_got is None:
            self.b_got = self._other.take(HUB, self._b_takes, limit=LIMIT, now=NOW)
        return self._client.put_item(**kwargs)


def test_a_run_that_loses_the_race_reads_again_and_the_bucket_is_never_overspent(
    state_table: str, counted: Counted
) -> None:
    # GIVEN a bucket with 100 tokens, and run B taking 80 of them between run A's read and write
    setup = DynamoDbUpstreamBudget(state_table)
    assert setup.take(HUB, 100, limit=LIMIT, now=NOW) == 100
    run_b = DynamoDbUpstreamBudget(state_table)
    racing = Interleaved(run_b, 80)
    run_a = DynamoDbUpstreamBudget(state_table, racing, sleep=counted.sleep)  # type: ignore[arg-type]

    # WHEN run A asks for 50
    got = run_a.take(HUB, 50, limit=LIMIT, now=NOW)

    # THEN A's first write failed its condition, A read again and got only what B left
    assert racing.b_got == 80
    assert got == 20
    assert len(counted.delays) == 1
    assert setup.take(HUB, 1, limit=LIMIT, now=NOW) == 0


def test_two_concurrent_runs_never_take_more_than_capacity_plus_refill(state_table: str) -> None:
    # GIVEN one bucket of 60 (refilling 1 a second) and two runs taking 1 token at a time on their own
    # threads, each with its own clock moving 0.1 s a take
    limit = BucketLimit(capacity=60, window_seconds=60)
    taken: dict[str, int] = {}
    clocks: dict[str, datetime] = {}

    def run(name: str) -> None:
        budget = DynamoDbUpstreamBudget(state_table, Serialised(), sleep=lambda _: None, attempts=1000)  # type: ignore[arg-type]
        now, got = NOW, 0
        for _ in range(150):
            got += budget.take(HUB, 1, limit=limit, now=now)
            now += timedelta(seconds=0.1)
        taken[name], clocks[name] = got, now

    threads = [threading.Thread(target=run, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # THEN together they took at most the capacity plus what refilled in the time the clocks moved
    elapsed = (max(clocks.values()) - NOW).total_seconds()
    assert sum(taken.values()) <= limit.capacity + elapsed * limit.capacity / limit.window_seconds
    # AND the bucket was used up (who got how much depends on the threads' scheduling)
    assert sum(taken.values()) >= limit.capacity


def test_a_bucket_too_contended_fails_retryably(state_table: str, counted: Counted) -> None:
    # GIVEN every conditional write loses (another writer always got there first)
    budget = DynamoDbUpstreamBudget(state_table, counted.client, sleep=counted.sleep, attempts=3)
    DynamoDbUpstreamBudget(state_table).take(HUB, 1, limit=LIMIT, now=NOW)

    def always_changed(**kwargs: Any) -> Any:
        kwargs["ExpressionAttributeValues"] = {":seen": {"N": "1.000000"}}
        return boto3.client("dynamodb", region_name=REGION).put_item(**kwargs)

    counted.client.put_item = always_changed  # type: ignore[method-assign]

    # WHEN a run takes THEN it gives up after its attempts with a retryable error naming the upstream
    with pytest.raises(RetryableError, match=r"budget of registry-1\.docker\.io is contended"):
        budget.take(HUB, 1, limit=LIMIT, now=NOW)
    assert len(counted.delays) == 2


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, RetryableError),
        ("InternalServerError", 500, RetryableError),
        ("AccessDeniedException", 400, TerminalError),
    ],
)
@pytest.mark.parametrize("method", ["get_item", "put_item"])
def test_failing_dynamodb_calls_are_classified(
    *,
    budget: DynamoDbUpstreamBudget,
    counted: Counted,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    code: str,
    status: int,
    expected: type[Exception],
) -> None:
    monkeypatch.setattr(counted.client, method, raiser(code, status))
    with pytest.raises(expected, match="DynamoDB"):
        budget.take(HUB, 1, limit=LIMIT, now=NOW)
