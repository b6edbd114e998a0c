"""A :class:`~ecrcache.models.pull_stats.PullDelta` as the bytes of one DynamoDB item, and back.

The delta item's ``delta`` attribute is zlib-compressed JSON (version 1)::

    {"v": 1,
     "keys": [[day, region, repository, tag | null, digest | null], ...],
     "inc":  [[key, pulls, layer_requests, imports, import_failures, first_pulled_at, last_pulled_at,
               digests, platforms, principals, last_sync_at, last_sync_status], ...],
     "ev":   [[seen_id, minute, [[key, pulls, layer_requests, imports, import_failures], ...]], ...]}

``key`` is an index into ``keys``; times are ISO 8601 (UTC) or ``null``. A batch of 1,000 pull events is
about 25 KB compressed (the event ids are random, the rest repeats); :func:`encode_events` splits a batch
whose delta would not fit :data:`MAX_DELTA_BYTES` into several deltas, each a whole number of events.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from ecrcache.engine.pull_stats import delta_of
from ecrcache.models.pull_stats import CounterKey, DeltaEvent, Increment, PullDelta

if TYPE_CHECKING:
    from ecrcache.models.pull_stats import PullEvent

__all__ = ["MAX_DELTA_BYTES", "VERSION", "decode", "encode", "encode_events"]

VERSION: Final = 1
MAX_DELTA_BYTES: Final = 300_000
"""A DynamoDB item holds 400 KB, its key and attribute names included: the delta stays well below."""


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _counts(inc: Increment) -> list[int]:
    return [inc.pulls, inc.layer_requests, inc.imports, inc.import_failures]


def encode(delta: PullDelta) -> bytes:
    keys: dict[CounterKey, int] = {}

    def index(key: CounterKey) -> int:
        return keys.setdefault(key, len(keys))

    increments = [
        [
            index(key),
            *_counts(inc),
            _time(inc.first_pulled_at),
            _time(inc.last_pulled_at),
            sorted(inc.digests),
            sorted(inc.platforms),
            sorted(inc.principals),
            _time(inc.last_sync_at),
            inc.last_sync_status,
        ]
        for key, inc in delta.increments.items()
    ]
    events = [
        [event.seen_id, event.minute, [[index(key), *_counts(counts)] for key, counts in event.counts]]
        for event in delta.events
    ]
    document = {
        "v": VERSION,
        "keys": [[k.day.isoformat(), k.region, k.repository, k.tag, k.digest] for k in keys],
        "inc": increments,
        "ev": events,
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)


def _counts_of(values: Sequence[int]) -> Increment:
    pulls, layer_requests, imports, import_failures = values
    return Increment(pulls=pulls, layer_requests=layer_requests, imports=imports, import_failures=import_failures)


def _increment(row: Sequence[Any]) -> Increment:
    pulls, layers, imports, failures, first, last, digests, platforms, principals, sync_at, sync_status = row
    return Increment(
        pulls=pulls,
        layer_requests=layers,
        imports=imports,
        import_failures=failures,
        first_pulled_at=_parse_time(first),
        last_pulled_at=_parse_time(last),
        digests=frozenset(digests),
        platforms=frozenset(platforms),
        principals=frozenset(principals),
        last_sync_at=_parse_time(sync_at),
        last_sync_status=sync_status,
    )


def decode(data: bytes) -> PullDelta:
    """The delta of :func:`encode`'s bytes; ``ValueError`` for anything else (another version included)."""
    try:
        document: dict[str, Any] = json.loads(zlib.decompress(data))
        if document.get("v") != VERSION:
            raise ValueError(f"unknown pull delta version {document.get('v')!r}")
        keys = [CounterKey(date.fromisoformat(d), r, repo, tag=t, digest=g) for d, r, repo, t, g in document["keys"]]
        increments = {keys[row[0]]: _increment(row[1:]) for row in document["inc"]}
        events = tuple(
            DeltaEvent(seen, minute, tuple((keys[k], _counts_of(counts)) for k, *counts in contributions))
            for seen, minute, contributions in document["ev"]
        )
    except (zlib.error, json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a pull delta: {type(exc).__name__}") from exc
    return PullDelta(increments=increments, events=events)


def encode_events(events: Sequence[PullEvent], *, limit: int = MAX_DELTA_BYTES) -> list[bytes]:
    """``events`` as as few deltas as fit ``limit`` bytes each (halved until they do); every event in one."""
    if not events:
        return []
    data = encode(delta_of(events))
    if len(data) <= limit or len(events) == 1:
        return [data]
    half = len(events) // 2
    return [*encode_events(events[:half], limit=limit), *encode_events(events[half:], limit=limit)]
