"""The pull-statistics stores on moto's DynamoDB: the contract's items, and reading them back.

A batch is one delta item; a compaction writes each counter it touches once (with the run's mark), the
ids it counted per minute, and deletes the deltas. The compaction's exactness under duplicates, resumes
and failures is in ``test_compaction.py``.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from ecrcache.adapters.aws import RETRY_CONFIG
from ecrcache.adapters.pull_compaction_store import DynamoDbPullCompactionStore
from ecrcache.adapters.pull_delta_codec import decode
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.engine.pull_stats import delta_of, hash16
from ecrcache.errors import TerminalError
from ecrcache.models.pull_stats import CounterKey, PullEvent
from ecrcache.services.pull_compaction import PullCompaction
from tests.pull_events import AT, NODE, REGION, RUNNER_ROLE, action_body, counted, pull_body

pytestmark = pytest.mark.functional

DAY = AT.date()
NOW = datetime(2026, 11, 29, 12, 40, tzinfo=UTC)


@pytest.fixture
def client(state_table: str) -> Any:
    return boto3.client("dynamodb", config=RETRY_CONFIG)


@pytest.fixture
def store(state_table: str, client: Any) -> DynamoDbPullStatsStore:
    return DynamoDbPullStatsStore(
        state_table, client, sleep=lambda _: None, new_id=iter(f"id{i}" for i in range(99)).__next__
    )


@pytest.fixture
def compactions(state_table: str, client: Any) -> DynamoDbPullCompactionStore:
    return DynamoDbPullCompactionStore(state_table, client, sleep=lambda _: None)


def compact(store: DynamoDbPullStatsStore, compactions: DynamoDbPullCompactionStore, now: datetime = NOW) -> str:
    outcome = PullCompaction(store, compactions, new_id=lambda: "owner1").run_if_due(now)
    assert outcome is not None and outcome.finished
    return outcome.run


def item(client: Any, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    return found


def items(client: Any, table: str, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for found in page["Items"]:
            if found["pk"]["S"].startswith(prefix):
                out[(found["pk"]["S"], found["sk"]["S"])] = found
    return out


def batch() -> list[PullEvent]:
    """Two pulls of node:18-alpine (two minutes apart), a pull of node:20, a layer request and an import."""
    return [
        counted(pull_body("e1", at=AT)),
        counted(pull_body("e2", at=AT + timedelta(minutes=2))),
        counted(pull_body("e3", tag="20", at=AT + timedelta(seconds=5))),
        counted(pull_body("e4", name="GetDownloadUrlForLayer")),
        counted(action_body("e5", at=AT + timedelta(seconds=1))),
    ]


def test_a_batch_is_one_delta_item_holding_its_events(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # WHEN a batch is recorded
    assert store.add(batch(), NOW) == 1
    # THEN one item was written: the delta, keyed by when it was written, its events in it
    assert (store.write_items, store.write_requests) == (1, 1)
    [((pk, sk), found)] = items(client, state_table, "PULLDELTA").items()
    assert (pk, sk) == ("PULLDELTA", "2026-11-29T12:40:00.000000Z#id0")
    assert set(found) == {"pk", "sk", "delta"}
    assert decode(found["delta"]["B"]) == delta_of(batch())
    assert len(found["delta"]["B"]) < len(zlib.decompress(found["delta"]["B"]))
    # AND it is pending, oldest first, and readable by its key; an empty batch writes nothing
    store.add([counted(pull_body("e6"))], NOW + timedelta(seconds=1))
    assert [sk for sk, _ in store.pending()] == [sk, "2026-11-29T12:40:01.000000Z#id1"]
    assert list(store.deltas([sk, "2026-11-29T00:00:00.000000Z#gone"])) == [sk]
    assert store.add([], NOW) == 0


def test_a_compaction_writes_the_contract_items(
    store: DynamoDbPullStatsStore, compactions: DynamoDbPullCompactionStore, client: Any, state_table: str
) -> None:
    # GIVEN a batch's delta
    store.add(batch(), NOW)
    # WHEN compacted
    run = compact(store, compactions)
    # THEN the tag's counter holds the contract's attributes, marked with the run
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
        "run": {"S": run},
        "expires_at": {"N": expires},
    }
    assert item(client, state_table, day, f"{REGION}#{NODE}") == {
        "pk": {"S": day},
        "sk": {"S": f"{REGION}#{NODE}"},
        "layer_requests": {"N": "1"},
        "run": {"S": run},
        "expires_at": {"N": expires},
    }
    # AND each minute's ids are the run's seen item, kept 15 days; the delta is gone; the lease is free
    seen = item(client, state_table, "PULLSEEN#2026-11-29T12:31", f"{run}#0")
    assert seen is not None
    assert set(seen["ids"]["SS"]) == {hash16(e) for e in ("e1", "e3", "e4", "e5")}
    assert seen["expires_at"] == {"N": str(int(AT.replace(second=0).timestamp()) + 15 * 86400)}
    assert store.seen(["2026-11-29T12:33", "2026-11-29T12:34"]) == {"2026-11-29T12:33": {hash16("e2")}}
    assert store.seen(["2026-11-29T12:33"], except_run=run) == {}
    assert store.pending() == []
    assert item(client, state_table, "PULLCOMPACT", "LEASE") == {
        "pk": {"S": "PULLCOMPACT"},
        "sk": {"S": "LEASE"},
        "owner": {"S": "owner1"},
        "until": {"N": "0"},
        "compacted_at": {"S": "2026-11-29T12:40:00.000000Z"},
        "gen": {"N": "1"},
    }
    # AND the writes: the lease twice, 3 counters, 2 seen items, 1 delta deleted
    assert compactions.write_items == 2 + 3 + 2 + 1


def test_counters_read_back_by_day_and_sort_key_prefix_and_rules_with_their_regions(
    store: DynamoDbPullStatsStore, compactions: DynamoDbPullCompactionStore, client: Any, state_table: str
) -> None:
    # GIVEN pulls of two repositories and a layer request, compacted, and two desired rules
    store.add(
        [
            counted(pull_body("e1")),
            counted(pull_body("e2", repository="docker-hub/bitnami/redis", tag="7")),
            counted(pull_body("e3", name="GetDownloadUrlForLayer")),
        ],
        NOW,
    )
    compact(store, compactions)
    for prefix, spec in (("docker-hub", '{"upstream_kind":"docker-hub"}'), ("quay", '{"regions":["eu-west-1"]}')):
        client.put_item(
            TableName=state_table,
            Item={"pk": {"S": "DESIRED#rule"}, "sk": {"S": prefix}, "spec": {"S": spec}, "name": {"S": prefix}},
        )

    # WHEN read
    library = store.counters([DAY], [f"{REGION}#docker-hub/library/"])
    everything = store.counters([DAY, DAY + timedelta(days=1)], [""])
    times = store.counters_of([CounterKey(DAY, REGION, NODE, tag="18-alpine"), CounterKey(DAY, REGION, NODE, tag="x")])

    # THEN the prefix selects, layer requests are not image counters, and each rule has its Regions
    assert [c.key for c in library] == [CounterKey(DAY, REGION, NODE, tag="18-alpine")]
    assert library[0].pulls == 1 and library[0].platforms == {"linux/amd64"}
    assert sorted(c.key.repository for c in everything) == ["docker-hub/bitnami/redis", NODE]
    assert [(c.key.tag, c.last_pulled_at) for c in times] == [("18-alpine", AT)]
    assert store.desired_rules() == {"docker-hub": (), "quay": ("eu-west-1",)}


def test_a_delta_this_version_cannot_read_is_left_pending_and_skipped(
    store: DynamoDbPullStatsStore, client: Any, state_table: str
) -> None:
    # GIVEN a delta item holding garbage beside a good one
    client.put_item(
        TableName=state_table,
        Item={"pk": {"S": "PULLDELTA"}, "sk": {"S": "2026-11-29T12:00:00.000000Z#bad"}, "delta": {"B": b"garbage"}},
    )
    store.add([counted(pull_body("e1"))], NOW)
    # THEN readers skip it and it stays
    assert [sk for sk, _ in store.pending()] == ["2026-11-29T12:40:00.000000Z#id0"]
    assert item(client, state_table, "PULLDELTA", "2026-11-29T12:00:00.000000Z#bad") is not None
    # AND a run that had listed it (a codec changed between deploys) stops rather than take it for deleted
    with pytest.raises(TerminalError, match="cannot be read by this version"):
        store.deltas(["2026-11-29T12:00:00.000000Z#bad", "2026-11-29T12:40:00.000000Z#id0"])


def test_a_run_that_leaves_a_backlog_does_not_mark_the_table_compacted(
    store: DynamoDbPullStatsStore, compactions: DynamoDbPullCompactionStore, client: Any, state_table: str
) -> None:
    # GIVEN three pending deltas and runs of at most two
    for i in range(3):
        store.add([counted(pull_body(f"e{i}"))], NOW + timedelta(seconds=i))
    compaction = PullCompaction(store, compactions, max_deltas=2, new_id=lambda: "owner1")
    # WHEN a run folds two THEN the lease is free but the table not marked compacted: due at once
    first = compaction.run_if_due(NOW + timedelta(seconds=5))
    assert first is not None and first.deltas == 2
    lease = item(client, state_table, "PULLCOMPACT", "LEASE")
    assert lease is not None and "compacted_at" not in lease and lease["until"] == {"N": "0"}
    second = compaction.run_if_due(NOW + timedelta(seconds=6))
    assert second is not None and second.deltas == 1
    assert compactions.state().compacted_at == NOW + timedelta(seconds=6)
    assert [c.pulls for c in store.counters([DAY], [""])] == [3]


def test_a_run_out_of_time_frees_the_lease_and_keeps_the_run_and_only_its_owner_can(
    store: DynamoDbPullStatsStore, compactions: DynamoDbPullCompactionStore, client: Any, state_table: str
) -> None:
    # GIVEN a run under way
    store.add([counted(pull_body("e1")), counted(pull_body("e2", tag="20"))], NOW)
    outcome = PullCompaction(store, compactions, new_id=lambda: "owner1").run_if_due(NOW, iter([60.0, 1.0]).__next__)
    # THEN it paused before its second counter: the lease is free, the run and its deltas stay
    assert outcome is not None and outcome.paused
    lease = item(client, state_table, "PULLCOMPACT", "LEASE")
    assert lease is not None and lease["until"] == {"N": "0"} and lease["run"] == {"S": outcome.run}
    assert [sk for sk, _ in store.pending()] == [v["S"] for v in lease["deltas"]["L"]]
    # AND another owner cannot free it; with no run under way nobody can
    assert not compactions.release("someone-else")
    done = PullCompaction(store, compactions, new_id=lambda: "owner2").run_if_due(NOW + timedelta(seconds=1))
    assert done is not None and done.finished and done.run == outcome.run
    assert not compactions.release("owner2")
    assert sorted(c.pulls for c in store.counters([DAY], [""])) == [1, 1]
