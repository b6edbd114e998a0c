"""The warming benchmark's model of SQS batching, DynamoDB item sizes and its own arithmetic (bench/pull_load.py).

What the benchmark reports as "writes per 10,000 pull events" depends on these being right: a batch
closes at ``BatchSize`` records, when its window has passed, or before the 6 MB payload, and is invoked
then; several batches gathering at once share the messages; the records stream past (never all held);
an item's size and a write's units follow DynamoDB's documented rules; the writes are sorted by kind;
and the counters read back must be the traffic's, or the run stops.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.pull_load import (
    COUNTER_WRITES,
    DELTA_DELETES,
    DELTA_PUTS,
    LEASE_WRITES,
    PAYLOAD_LIMIT,
    SEEN_ITEMS,
    CountMismatchError,
    EventFactory,
    EventSource,
    Load,
    Record,
    WriteLog,
    attribute_size,
    batches,
    check_exact,
    item_size,
    per_events,
    record_size,
    write_units,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def records(count: int, *, every: float = 1.0, size: int = 100) -> list[Record]:
    return [
        Record(T0 + timedelta(seconds=i * every), {"n": i}, size, ("tag", f"docker-hub/a:{i}")) for i in range(count)
    ]


def sizes(source: EventSource, sent: list[Record]) -> list[int]:
    return [len(b.records) for b in batches(sent, source)]


# --------------------------------------------------------------------------------------------------
# Batching


def test_a_batch_closes_at_its_size() -> None:
    # GIVEN records 0.1 s apart, BatchSize 10
    # WHEN batched
    # THEN batches of 10, and the rest when its window has passed
    assert sizes(EventSource(batch_size=10, window_seconds=30), records(25, every=0.1)) == [10, 10, 5]


def test_a_batch_closes_when_its_window_has_passed() -> None:
    # GIVEN one record a second and a 30 s window: 31 records fit (0 s .. 30 s), the 32nd opens the next batch
    assert sizes(EventSource(batch_size=1000, window_seconds=30), records(70, every=1.0)) == [31, 31, 8]


def test_a_batch_stays_under_the_payload_limit() -> None:
    # GIVEN records of a quarter of the payload limit: the envelope takes a few bytes, three fit, not four
    size = PAYLOAD_LIMIT // 4
    formed = list(batches(records(7, every=0.01, size=size), EventSource(batch_size=10_000, window_seconds=300)))
    assert [len(b.records) for b in formed] == [3, 3, 1]
    assert all(b.payload <= PAYLOAD_LIMIT for b in formed)


def test_a_batch_is_invoked_when_its_poller_closes_it() -> None:
    # GIVEN 25 records 0.1 s apart, BatchSize 10, a 30 s window
    formed = list(batches(records(25, every=0.1), EventSource(batch_size=10, window_seconds=30)))
    # THEN a full batch is invoked at its last record, the rest when the window from its first record has passed
    assert [b.at for b in formed] == [
        T0 + timedelta(seconds=0.9),
        T0 + timedelta(seconds=1.9),
        T0 + timedelta(seconds=2.0 + 30),
    ]


def test_every_record_is_in_exactly_one_batch_in_arrival_order_and_invocations_in_time_order() -> None:
    # GIVEN five batches gathering at once, small batches and a short window
    source = EventSource(batch_size=50, window_seconds=5, gatherers=5)
    formed = list(batches(records(1000, every=0.05), source))
    # THEN no record is lost or doubled, each batch keeps arrival order, and invocations never go back in time
    assert sorted(r.body["n"] for b in formed for r in b.records) == list(range(1000))
    assert all([r.body["n"] for r in b.records] == sorted(r.body["n"] for r in b.records) for b in formed)
    assert all(a.at <= b.at for a, b in itertools.pairwise(formed))
    assert all(b.at >= b.records[-1].at for b in formed)
    assert len(formed) > 1000 / 50  # five batches gathering at once: smaller batches, more of them


def test_batches_form_as_the_records_stream_past() -> None:
    # GIVEN an endless stream of records, counted as they are taken
    taken = 0

    def endless() -> Iterator[Record]:
        nonlocal taken
        for i in itertools.count():
            taken += 1
            yield Record(T0 + timedelta(seconds=i * 0.1), {"n": i}, 100, ("tag", "docker-hub/a:1"))

    # WHEN the first three batches are asked for
    first = list(itertools.islice(batches(endless(), EventSource(batch_size=10, window_seconds=30)), 3))
    # THEN they come without the stream being exhausted, and only the records they hold were taken
    assert [len(b.records) for b in first] == [10, 10, 10]
    assert taken == 30


def test_gatherers_are_dealt_at_random_not_in_turn() -> None:
    # GIVEN five events per pull: dealt in turn, each batch would hold only one kind of event
    events = list(EventFactory(Load(events=500, images=5)).stream())
    formed = batches(events, EventSource(batch_size=1000, window_seconds=300, gatherers=5))
    assert all(len(Counter(r.counter[0] for r in b.records)) == 3 for b in formed)


# --------------------------------------------------------------------------------------------------
# Traffic


def test_the_events_of_a_pull_are_a_tag_a_digest_and_the_layers() -> None:
    events = list(EventFactory(Load(events=5, images=1, pulls_per_day=1_000)).stream())
    assert [r.counter[0] for r in events] == ["tag", "digest", "layer", "layer", "layer"]
    assert events[0].counter == ("tag", "docker-hub/library/bench-00:1.0")
    assert events[-1].at - events[0].at == timedelta(milliseconds=400)
    assert all(r.size > len(r.body["body"]) for r in events)  # the SQS record wraps the event


def test_the_traffic_covers_its_minutes_in_time_order_whole_pulls_only() -> None:
    # GIVEN half a minute at 500,000 pulls a day (about 174 pulls, their calls interleaved)
    load = Load(minutes=0.5, pulls_per_day=500_000)
    events = list(EventFactory(load).stream())
    # THEN the events come in time order, every pull whole, none starting after the end
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    kinds = Counter(r.counter[0] for r in events)
    assert kinds["tag"] == kinds["digest"] == kinds["layer"] // 3 > 100
    assert max(r.at for r in events if r.counter[0] == "tag") < load.end


def test_a_record_s_size_is_its_bytes_in_the_payload() -> None:
    # GIVEN generated records (bodies with quotes; a backslash added to one)
    events = list(EventFactory(Load(events=10, images=2)).stream())
    escaped = {**events[0].body, "body": events[0].body["body"].replace("1.0", '1.0\\\\"')}
    assert escaped["body"] != events[0].body["body"]
    # THEN the size is what json.dumps writes for it, plus the comma between records
    for record in [e.body for e in events] + [escaped]:
        assert record_size(record) == len(json.dumps(record)) + 1


# --------------------------------------------------------------------------------------------------
# Sizes, units and the per-10,000 arithmetic


def test_item_sizes_follow_dynamodb_rules() -> None:
    # "Item sizes and formats": strings are UTF-8 bytes, a number about 1 byte per 2 significant digits + 1,
    # a set the sum of its members, binary its bytes, attribute names count too
    assert attribute_size({"S": "héllo"}) == 6
    assert attribute_size({"N": "12345"}) == 4
    assert attribute_size({"SS": ["ab", "cde"]}) == 5
    assert attribute_size({"B": b"\x00" * 10}) == 10
    assert item_size({"pk": {"S": "PULLS#2026-11-29"}, "pulls": {"N": "7"}}) == 2 + 16 + 5 + 2


def test_a_write_costs_a_unit_per_kb_of_the_larger_item() -> None:
    assert write_units(0, 100) == 1  # a new small item
    assert write_units(1024, 0) == 1  # a delete of a 1 KB item
    assert write_units(1025, 10) == 2  # a delete or shrink of a 1 KB + 1 byte item
    assert write_units(500, 3000) == 3  # an update that grows the item


def test_per_10000_events_scales_the_items_by_the_events() -> None:
    assert per_events(200, 10_000) == 200
    assert per_events(1_452, 209_175) == pytest.approx(69.42, abs=0.01)
    assert per_events(300, 5_000) == 600  # a quieter load: fewer events, the same writes, a higher rate
    with pytest.raises(ValueError, match="no events"):
        per_events(1, 0)


# --------------------------------------------------------------------------------------------------
# Writes by kind


class _Hooks:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., None]] = {}

    def register(self, event: str, handler: Callable[..., None], unique_id: str) -> None:
        self.handlers[event] = handler


class _Client:
    def __init__(self) -> None:
        self.meta = type("Meta", (), {"events": _Hooks()})()


class _Reader:
    """Answers an updated item's read-back: a 2,000-byte counter, a small lease item."""

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs["Key"]["pk"]["S"].startswith("PULLS#"):
            return {"Item": {**kwargs["Key"], "digests": {"S": "x" * 2000}}}
        return {"Item": {**kwargs["Key"], "owner": {"S": "abc"}}}


def _call(client: _Client, operation: str, params: dict[str, Any], *, status: int = 200) -> None:
    """One call as botocore announces it: its parameters, then its response."""
    context: dict[str, Any] = {}
    hooks = client.meta.events.handlers
    hooks["before-parameter-build.dynamodb"](params=params, model=None, context=context)
    response = type("Response", (), {"status_code": status})()
    model = type("Model", (), {"name": operation})()
    hooks["after-call.dynamodb"](http_response=response, parsed={}, model=model, context=context)


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_the_writes_are_sorted_by_kind_with_their_units() -> None:
    # GIVEN a write log on a client
    client = _Client()
    log = WriteLog(client, _Reader())
    delta = {**_key("PULLDELTA", "2026-11-29T09:00:30Z#a"), "delta": {"B": b"z" * 3000}}
    # WHEN a delta is put, a compaction runs (claim, a counter, a seen item, the delta's delete, finish),
    # and a conditional update fails
    _call(client, "PutItem", {"TableName": "t", "Item": delta})
    claim = "SET #owner = :owner, #until = :until, #run = :run, deltas = :deltas"
    _call(client, "UpdateItem", {"TableName": "t", "Key": _key("PULLCOMPACT", "LEASE"), "UpdateExpression": claim})
    counter = {"TableName": "t", "Key": _key("PULLS#2026-11-29", "us-east-1#a:1"), "UpdateExpression": "ADD pulls :p"}
    _call(client, "UpdateItem", counter)
    _call(client, "UpdateItem", counter, status=400)
    seen = {**_key("PULLSEEN#2026-11-29T09:00", "run#0"), "ids": {"SS": ["a" * 16] * 100}}
    deletes = [{"DeleteRequest": {"Key": _key("PULLDELTA", "2026-11-29T09:00:30Z#a")}}]
    _call(client, "BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": seen}}, *deletes]}})
    finish = "SET compacted_at = :at, #until = :zero REMOVE #run, deltas"
    _call(client, "UpdateItem", {"TableName": "t", "Key": _key("PULLCOMPACT", "LEASE"), "UpdateExpression": finish})
    # THEN each kind is counted once per item written (not the failed update), one run finished,
    # and the delta's units are paid at its put and again at its delete
    writes = log.snapshot(requests=6)
    assert writes.items == Counter({DELTA_PUTS: 1, LEASE_WRITES: 2, COUNTER_WRITES: 1, SEEN_ITEMS: 1, DELTA_DELETES: 1})
    assert writes.runs == 1
    assert writes.units[DELTA_PUTS] == writes.units[DELTA_DELETES] == 3
    assert writes.units[COUNTER_WRITES] == 2  # the counter read back after the update: about 2 KB
    assert writes.units[SEEN_ITEMS] == 2  # 100 ids of 16 bytes
    assert writes.total == 6


# --------------------------------------------------------------------------------------------------
# Exactness


EXPECTED = Counter({("tag", "r:1.0"): 3, ("digest", "r@sha256:a"): 2, ("digest", "r@sha256:b"): 1, ("layer", "r"): 9})


def test_counters_that_hold_the_traffic_pass() -> None:
    check_exact(EXPECTED, {"r:1.0": 3, "r@sha256:a": 2, "r@sha256:b": 1}, {"r": 9}, when="compacted")
    check_exact(EXPECTED, {"r:1.0": 3, "r@sha256:a": 2, "r@sha256:b": 1}, when="pending")  # layers not read


@pytest.mark.parametrize(
    ("pulls", "layers", "named"),
    [
        ({"r:1.0": 3, "r@sha256:a": 2}, {"r": 9}, "pulls of r@sha256:b: 0 counted, 1 in the traffic"),
        ({"r:1.0": 4, "r@sha256:a": 2, "r@sha256:b": 1}, {"r": 9}, "pulls of r:1.0: 4 counted, 3"),
        ({"r:1.0": 3, "r@sha256:a": 2, "r@sha256:b": 1, "s:1.0": 1}, {"r": 9}, "pulls of s:1.0: 1 counted, 0"),
        ({"r:1.0": 3, "r@sha256:a": 2, "r@sha256:b": 1}, {"r": 8}, "layer requests of r: 8 counted, 9"),
    ],
)
def test_a_counter_that_differs_from_the_traffic_stops_the_run(
    pulls: dict[str, int], layers: dict[str, int], named: str
) -> None:
    with pytest.raises(CountMismatchError, match=named):
        check_exact(EXPECTED, pulls, layers, when="compacted")
