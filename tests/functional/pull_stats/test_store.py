"""The pull-statistics store on moto's DynamoDB: the contract's items, exact and idempotent counts.

Duplicated, reordered and racing batches leave the counters exactly as one delivery of each event in
one batch would; a batch writes one item per counter and per minute, whatever its number of events.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest

from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.engine.pull_stats import coalesce, hash16
from ecrcache.models.pull_stats import CounterKey, Increment
from tests.pull_events import (
    AT,
    NODE,
    REGION,
    RUNNER_ROLE,
    action_body,
    counted,
    pull_body,
)

pytestmark = pytest.mark.functional

DAY = AT.date()


@pytest.fixture
def client(state_table: str) -> Any:
    """A client of its own (tests register botocore handlers on it)."""
    return boto3.client("dynamodb", config=RETRY_CONFIG)


@pytest.fixture
def store(state_table: str, client: Any) -> DynamoDbPullStatsStore:
    return DynamoDbPullStatsStore(state_table, client, sleep=lambda _: None)


def item(client: Any, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    return found


def table_counters(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every pull counter item, without its keys (for comparing whole tables)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for found in page["Items"]:
            if found["pk"]["S"].startswith("PULLS#"):
                out[(found["pk"]["S"], found["sk"]["S"])] = {k: v for k, v in found.items() if k not in ("pk", "sk")}
    return out


def test_a_batch_writes_the_contract_items(store: DynamoDbPullStatsStore, client: Any, state_table: str) -> None:
    # GIVEN two pulls of node:18-alpine (two minutes apart), a pull of node:20, a layer request and an import
    events = [
        counted(pull_body("e1", at=AT)),
        counted(pull_body("e2", at=AT + timedelta(minutes=2))),
        counted(pull_body("e3", tag="20", at=AT + timedelta(seconds=5))),
        counted(pull_body("e4", name="GetDownloadUrlForLayer")),
        counted(action_body("e5", at=AT + timedelta(seconds=1))),
    ]

    # WHEN the batch is recorded
    result = store.record(events)

    # THEN every event is counted, with one write per counter and per minute, in one transaction
    assert sorted(e.event_id for e in result.counted) == ["e1", "e2", "e3", "e4", "e5"]
    assert (result.failed, result.duplicates, result.error) == ((), (), None)
    assert (store.write_requests, store.write_items) == (1, 3 + 2)
    # AND the tag's counter holds the contract's attributes
    day = "PULLS#2026-11-29"
    expires = str(int(AT.replace(hour=0, minute=0, second=0).timestamp()) + 100 * 86400)
    assert item(client, state_table, day, f"{REGION}#{NODE}:18-alpine") == {
        "pk": {"S": day},
        "sk": {"S": f"{REGION}#{NODE}:18-alpine"},
        "pulls": {"N": "2"},
        "first_pulled_at": {"S": "2026-11-29T12:31:07.000000Z"},
        "last_pulled_at": {"S": "2026-11-29T12:33:07.000000Z"},
        "platforms": {"SS": ["linux/amd64"]},
        "principals": {"SS": [hash16(RUNNER_ROLE)]},
        "digests": {"SS": ["sha256:" + "ab" * 32]},
        "imports": {"N": "1"},
        "last_sync_at": {"S": "2026-11-29T12:31:08.000000Z"},
        "last_sync_status": {"S": "SUCCESS"},
        "expires_at": {"N": expires},
    }
    assert item(client, state_table, day, f"{REGION}#{NODE}") == {
        "pk": {"S": day},
        "sk": {"S": f"{REGION}#{NODE}"},
        "layer_requests": {"N": "1"},
        "expires_at": {"N": expires},
    }
    # AND each minute's seen item holds the hashed event ids, at version 1, for 3 days
    seen = item(client, state_table, "PULLSEEN#2026-11-29T12:31", "SEEN")
    assert seen is not None
    assert set(seen["ids"]["SS"]) == {hash16(e) for e in ("e1", "e3", "e4", "e5")}
    assert seen["v"] == {"N": "1"}
    assert seen["expires_at"] == {"N": str(int(AT.replace(second=0).timestamp()) + 3 * 86400)}


def test_the_same_batch_again_counts_nothing_and_writes_nothing(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN a recorded batch
    events = [counted(pull_body(f"e{i}", at=AT + timedelta(seconds=i))) for i in range(3)]
    store.record(events)
    before = table_counters(client, state_table)
    writes = store.write_items

    # WHEN SQS delivers it again
    again = store.record(events)

    # THEN every event is a duplicate, nothing is written, the counters are as they were
    assert ([e.event_id for e in again.duplicates], again.counted, again.failed) == (["e0", "e1", "e2"], (), ())
    assert store.write_items == writes
    assert table_counters(client, state_table) == before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicated_and_reordered_batches_count_exactly(
    seed: int, store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN 40 events over three tags, four minutes and two days
    rng = random.Random(seed)
    events = [
        counted(pull_body(f"e{i}", tag=f"t{i % 3}", at=AT + timedelta(minutes=rng.randrange(4), days=i % 2)))
        for i in range(40)
    ]
    expected = coalesce(events)

    # WHEN they are delivered shuffled, a third of them twice, in batches of random sizes
    deliveries = events + rng.sample(events, 13)
    rng.shuffle(deliveries)
    while deliveries:
        size = rng.randint(1, 12)
        batch, deliveries = deliveries[:size], deliveries[size:]
        unique = list({e.event_id: e for e in batch}.values())  # the engine drops repeats within a batch
        result = store.record(unique)
        assert result.failed == ()

    # THEN the counters are exactly what one delivery of each event adds (counts, sets, first and last)
    counters = table_counters(client, state_table)
    assert {pk_sk: _as_increment(found) for pk_sk, found in counters.items()} == {
        (key.pk, key.sk): _increment_of(inc) for key, inc in expected.items()
    }


def _as_increment(found: dict[str, Any]) -> dict[str, Any]:
    return {
        "pulls": int(found["pulls"]["N"]),
        "first": found["first_pulled_at"]["S"],
        "last": found["last_pulled_at"]["S"],
        "principals": set(found["principals"]["SS"]),
    }


def _increment_of(inc: Increment) -> dict[str, Any]:
    assert inc.first_pulled_at is not None and inc.last_pulled_at is not None
    return {
        "pulls": inc.pulls,
        "first": inc.first_pulled_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "last": inc.last_pulled_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "principals": set(inc.principals),
    }


def test_an_earlier_pull_in_a_later_batch_moves_first_pulled_at_back_and_leaves_last(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    store.record([counted(pull_body("late", at=AT + timedelta(hours=1)))])
    store.record([counted(pull_body("early", at=AT))])
    found = item(client, state_table, "PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")
    assert found is not None
    assert (found["first_pulled_at"]["S"], found["last_pulled_at"]["S"], found["pulls"]["N"]) == (
        "2026-11-29T12:31:07.000000Z",
        "2026-11-29T13:31:07.000000Z",
        "2",
    )


class Racer:
    """Runs ``other`` right before the next ``TransactWriteItems`` of ``client`` leaves (once): a
    concurrent batch that commits between this store's read and its write."""

    def __init__(self, client: Any, other: Callable[[], object]) -> None:
        self.other: Callable[[], object] | None = other
        self.transactions = 0
        client.meta.events.register_first("before-send.dynamodb", self.before_send)

    def before_send(self, request: Any, **_: Any) -> None:
        if request.headers.get("X-Amz-Target", b"").endswith(b".TransactWriteItems"):
            self.transactions += 1
            if self.other is not None:
                other, self.other = self.other, None
                other()


@pytest.fixture
def second_store(state_table: str) -> Iterator[DynamoDbPullStatsStore]:
    yield DynamoDbPullStatsStore(state_table, boto3.client("dynamodb", config=RETRY_CONFIG), sleep=lambda _: None)


def test_a_concurrent_batch_on_the_same_minute_and_counter_makes_one_retry_and_both_count(
    store: DynamoDbPullStatsStore, second_store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN another batch, of other events of the same minute and tag, committing just before this one
    theirs = [counted(pull_body("theirs", at=AT + timedelta(seconds=30)))]
    racer = Racer(client, lambda: second_store.record(theirs))

    # WHEN this batch is recorded
    result = store.record([counted(pull_body("ours", at=AT))])

    # THEN its transaction was cancelled (the minute's version moved), re-read, and made again
    assert [e.event_id for e in result.counted] == ["ours"]
    assert racer.transactions == 2
    # AND both batches counted, with the times of both
    found = item(client, state_table, "PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")
    assert found is not None
    assert (found["pulls"]["N"], found["first_pulled_at"]["S"], found["last_pulled_at"]["S"]) == (
        "2",
        "2026-11-29T12:31:07.000000Z",
        "2026-11-29T12:31:37.000000Z",
    )
    seen = item(client, state_table, "PULLSEEN#2026-11-29T12:31", "SEEN")
    assert seen is not None and seen["v"] == {"N": "2"}


def test_two_deliveries_of_one_event_racing_count_it_once(
    store: DynamoDbPullStatsStore, second_store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN the same event delivered twice, the other delivery committing between this one's read and write
    event = counted(pull_body("same"))
    Racer(client, lambda: second_store.record([event]))

    # WHEN this delivery is recorded
    result = store.record([event])

    # THEN after the retry it finds the event counted: a duplicate, counted once in all
    assert ([e.event_id for e in result.duplicates], result.counted) == (["same"], ())
    found = item(client, state_table, "PULLS#2026-11-29", f"{REGION}#{NODE}:18-alpine")
    assert found is not None and found["pulls"] == {"N": "1"}


def test_a_batch_larger_than_one_transaction_takes_several(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN 150 pulls of 150 tags in one minute
    events = [counted(pull_body(f"e{i}", tag=f"t{i:03}")) for i in range(150)]

    # WHEN recorded
    result = store.record(events)

    # THEN two transactions (99 counters + the minute, then 51 + the minute again, its version threaded)
    assert len(result.counted) == 150
    assert (store.write_requests, store.write_items) == (2, 150 + 2)
    seen = item(client, state_table, "PULLSEEN#2026-11-29T12:31", "SEEN")
    assert seen is not None and (seen["v"], len(seen["ids"]["SS"])) == ({"N": "2"}, 150)


def test_counters_read_back_by_day_and_sort_key_prefix_and_rules_with_their_regions(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN pulls of two repositories and a layer request, and two desired rules
    store.record(
        [
            counted(pull_body("e1")),
            counted(pull_body("e2", repository="docker-hub/bitnami/redis", tag="7")),
            counted(pull_body("e3", name="GetDownloadUrlForLayer")),
        ]
    )
    for prefix, spec in (("docker-hub", '{"upstream_kind":"docker-hub"}'), ("quay", '{"regions":["eu-west-1"]}')):
        client.put_item(
            TableName=state_table,
            Item={"pk": {"S": "DESIRED#rule"}, "sk": {"S": prefix}, "spec": {"S": spec}, "name": {"S": prefix}},
        )

    # WHEN read
    library = store.counters([DAY], [f"{REGION}#docker-hub/library/"])
    everything = store.counters([DAY, DAY + timedelta(days=1)], [""])

    # THEN the prefix selects, layer requests are not image counters, and each rule has its Regions
    assert [c.key for c in library] == [CounterKey(DAY, REGION, NODE, tag="18-alpine")]
    assert library[0].pulls == 1 and library[0].platforms == {"linux/amd64"}
    assert sorted(c.key.repository for c in everything) == ["docker-hub/bitnami/redis", NODE]
    assert store.desired_rules() == {"docker-hub": (), "quay": ("eu-west-1",)}
