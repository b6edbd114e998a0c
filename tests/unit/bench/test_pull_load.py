"""The warming benchmark's model of Lambda's SQS batching and of DynamoDB item sizes (bench/pull_load.py).

What the benchmark reports as "writes per 10,000 pull events" depends on these being right: a batch
closes at ``BatchSize`` records, when its window has passed, or before the 6 MB payload; several batches
gathering at once share the messages; an item's size follows DynamoDB's documented rules.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.pull_load import PAYLOAD_LIMIT, EventFactory, EventSource, Load, Record, attribute_size, batches, item_size

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def records(count: int, *, every: float = 1.0, size: int = 100) -> list[Record]:
    return [
        Record(T0 + timedelta(seconds=i * every), {"n": i}, size, ("tag", f"docker-hub/a:{i}")) for i in range(count)
    ]


def test_a_batch_closes_at_its_size() -> None:
    formed = batches(records(25, every=0.1), EventSource(batch_size=10, window_seconds=30))
    assert [len(b) for b in formed] == [10, 10, 5]


def test_a_batch_closes_when_its_window_has_passed() -> None:
    # one record a second, a 30 s window: 31 records fit (0 s .. 30 s), the 32nd opens the next batch
    formed = batches(records(70, every=1.0), EventSource(batch_size=1000, window_seconds=30))
    assert [len(b) for b in formed] == [31, 31, 8]


def test_a_batch_stays_under_the_payload_limit() -> None:
    size = PAYLOAD_LIMIT // 4  # the envelope takes a few bytes: three records fit, not four
    formed = batches(records(7, every=0.01, size=size), EventSource(batch_size=10_000, window_seconds=300))
    assert [len(b) for b in formed] == [3, 3, 1]


def test_every_record_is_in_exactly_one_batch_in_arrival_order_within_it() -> None:
    source = EventSource(batch_size=50, window_seconds=5, gatherers=5)
    sent = records(1000, every=0.05)
    formed = batches(sent, source)
    assert sorted(r.body["n"] for b in formed for r in b) == list(range(1000))
    assert all([r.body["n"] for r in b] == sorted(r.body["n"] for r in b) for b in formed)
    assert len(formed) > 1000 / 50  # five batches gathering at once: smaller batches, more of them


def test_gatherers_are_dealt_at_random_not_in_turn() -> None:
    # five events per pull: dealt in turn, each batch would hold only one kind of event
    events = EventFactory(Load(events=500, images=5)).records()
    formed = batches(events, EventSource(batch_size=1000, window_seconds=300, gatherers=5))
    assert all(len(Counter(r.counter[0] for r in b)) == 3 for b in formed)


def test_the_events_of_a_pull_are_a_tag_a_digest_and_the_layers() -> None:
    events = EventFactory(Load(events=5, images=1)).records()
    assert [r.counter[0] for r in events] == ["tag", "digest", "layer", "layer", "layer"]
    assert events[0].counter == ("tag", "docker-hub/library/bench-00:1.0")
    assert events[-1].at - events[0].at == timedelta(milliseconds=400)
    assert all(r.size > len(r.body["body"]) for r in events)  # the SQS record wraps the event


def test_item_sizes_follow_dynamodb_rules() -> None:
    # "Item sizes and formats": strings are UTF-8 bytes, a number about 1 byte per 2 significant digits + 1,
    # a set the sum of its members, attribute names count too
    assert attribute_size({"S": "héllo"}) == 6
    assert attribute_size({"N": "12345"}) == 4
    assert attribute_size({"SS": ["ab", "cde"]}) == 5
    assert item_size({"pk": {"S": "PULLS#2026-11-29"}, "pulls": {"N": "7"}}) == 2 + 16 + 5 + 2
