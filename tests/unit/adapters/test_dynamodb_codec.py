"""The state table's attribute encoding, shared by the desired-state store and the status store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecrcache.adapters.dynamodb_codec import iso, n, parse_iso, s

pytestmark = pytest.mark.unit

PARIS_SUMMER = timezone(timedelta(hours=2))


def test_attribute_values_are_the_low_level_client_shape() -> None:
    # GIVEN a string and a number
    # WHEN encoded
    # THEN they are the client's attribute values (a number travels as text)
    assert (s("quay"), n(42)) == ({"S": "quay"}, {"N": "42"})


@pytest.mark.parametrize(
    ("when", "stored"),
    [
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "2026-03-01T12:00:00.000000Z"),
        (datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=PARIS_SUMMER), "2026-03-01T12:00:00.000005Z"),
    ],
)
def test_times_are_stored_as_fixed_width_utc_text_and_read_back(when: datetime, stored: str) -> None:
    # GIVEN a time in any zone
    # WHEN stored and read back
    # THEN the text is UTC with microseconds and a Z, and it reads back as the same instant
    assert iso(when) == stored
    assert parse_iso(stored) == when


def test_stored_times_sort_as_text_in_time_order() -> None:
    # GIVEN times a microsecond, a second and a day apart (one without a fractional part)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    times = [start, start + timedelta(microseconds=1), start + timedelta(seconds=1), start + timedelta(days=1)]
    # WHEN stored
    texts = [iso(t) for t in reversed(times)]
    # THEN sorting the text sorts the times
    assert sorted(texts) == [iso(t) for t in times]
