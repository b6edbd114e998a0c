"""A pull delta as the bytes of one item, and back: nothing lost, size bounded, anything else refused."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from ecrcache.adapters.pull_delta_codec import VERSION, decode, encode, encode_events
from ecrcache.engine.pull_stats import delta_of
from ecrcache.models.pull_stats import CounterKey, Increment, PullEvent

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 29, 12, 31, 7, tzinfo=UTC)


def event(index: int, *, tag: str = "18", kind: str = "pull") -> PullEvent:
    at = AT + timedelta(seconds=index)
    if kind == "layer":
        key, inc = CounterKey(at.date(), "us-east-1", "hub/node"), Increment(layer_requests=1)
    elif kind == "import":
        key = CounterKey(at.date(), "us-east-1", "hub/node", digest="sha256:" + "ab" * 32)
        inc = Increment(import_failures=1, last_sync_at=at, last_sync_status="FAILED")
    else:
        key = CounterKey(at.date(), "eu-west-1", "hub/node", tag=tag)
        inc = Increment(
            pulls=1,
            first_pulled_at=at,
            last_pulled_at=at,
            digests=frozenset({"sha256:" + "cd" * 32}),
            platforms=frozenset({"linux/arm64"}),
            principals=frozenset({f"{index:016x}"}),
        )
    return PullEvent(f"m-{index}", f"e-{index}", f"{index:016x}", at.strftime("%Y-%m-%dT%H:%M"), at, ((key, inc),))


def test_a_delta_round_trips_with_its_increments_and_events() -> None:
    # GIVEN a delta of pulls, a layer request and a failed import
    delta = delta_of([event(0), event(1, tag="20"), event(2, kind="layer"), event(3, kind="import"), event(4)])
    # WHEN encoded and decoded THEN it is the same delta
    assert decode(encode(delta)) == delta


def test_a_batch_too_large_for_one_item_is_split_into_whole_events() -> None:
    # GIVEN 400 events and a limit one delta of them does not fit
    events = [event(i, tag=f"t{i}") for i in range(400)]
    whole = encode(delta_of(events))
    parts = encode_events(events, limit=len(whole) // 3)
    # THEN each part fits and together they hold every event once
    assert len(parts) > 1
    assert all(len(part) <= len(whole) // 3 for part in parts)
    decoded = [decode(part) for part in parts]
    assert sorted(e.seen_id for d in decoded for e in d.events) == sorted(e.seen_id for e in events)
    assert encode_events([]) == []


@pytest.mark.parametrize(
    "data",
    [
        b"not zlib",
        zlib.compress(b"not json"),
        zlib.compress(json.dumps({"v": VERSION + 1, "keys": [], "inc": [], "ev": []}).encode()),
        zlib.compress(json.dumps({"v": VERSION, "keys": [], "inc": [[0]], "ev": []}).encode()),
        zlib.compress(json.dumps({"v": VERSION}).encode()),
    ],
)
def test_anything_else_is_refused_with_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="pull delta"):
        decode(data)
