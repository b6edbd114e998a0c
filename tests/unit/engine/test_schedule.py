"""Due-ness: the most recent fire time of a warm set's schedule, checked against EventBridge's witness.

Table tests pin the AWS cron forms (``L``, ``LW``, ``W``, ``#``, ``dL``, the year) and ``rate(...)``
phased at the epoch; a property test checks :func:`ecrcache.engine.schedule.last_fire` against
``devstack.local.schedule`` (croniter + filters, the local stack's EventBridge) on generated
expressions and times: the answer is a fire time, and the witness finds no fire after it up to ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.local.schedule import parse_schedule
from ecrcache.engine.schedule import last_fire

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        # rate: multiples of the period since the epoch
        ("rate(1 day)", "2026-11-29T12:34:56", "2026-11-29T00:00:00"),
        ("rate(1 hour)", "2026-11-29T12:34:56", "2026-11-29T12:00:00"),
        ("rate(12 hours)", "2026-11-29T11:59:59", "2026-11-29T00:00:00"),
        ("rate(90 minutes)", "1970-01-01T02:59:00", "1970-01-01T01:30:00"),
        ("rate(7 days)", "1970-01-15T00:00:00", "1970-01-15T00:00:00"),
        # cron: a time today at or before now, else the latest earlier day
        ("cron(0 5 * * ? *)", "2026-11-29T05:00:00", "2026-11-29T05:00:00"),
        ("cron(0 5 * * ? *)", "2026-11-29T04:59:59", "2026-11-28T05:00:00"),
        ("cron(30 */6 * * ? *)", "2026-11-29T13:00:00", "2026-11-29T12:30:00"),
        ("cron(15 9,17 ? * MON-FRI *)", "2026-11-29T12:00:00", "2026-11-27T17:15:00"),  # Sunday -> Friday
        ("cron(0 0 L * ? *)", "2026-03-15T00:00:00", "2026-02-28T00:00:00"),
        ("cron(0 0 L 2 ? *)", "2025-01-01T00:00:00", "2024-02-29T00:00:00"),  # leap year
        ("cron(0 0 LW * ? *)", "2026-06-01T00:00:00", "2026-05-29T00:00:00"),  # 31 May 2026 is a Sunday
        ("cron(0 0 15W * ? *)", "2026-08-31T00:00:00", "2026-08-14T00:00:00"),  # 15 Aug 2026 is a Saturday
        ("cron(0 0 1W * ? *)", "2026-08-31T00:00:00", "2026-08-03T00:00:00"),  # 1 Aug is Saturday: Monday 3rd
        ("cron(0 0 31W * ? *)", "2026-06-30T00:00:00", "2026-05-29T00:00:00"),  # 31 May Sunday: Friday 29th
        ("cron(0 8 ? * 2#1 *)", "2026-12-31T00:00:00", "2026-12-07T08:00:00"),  # first Monday of December
        ("cron(0 8 ? * 6L *)", "2026-12-31T00:00:00", "2026-12-25T08:00:00"),  # last Friday of December
        ("cron(0 8 ? * L *)", "2026-11-29T00:00:00", "2026-11-28T08:00:00"),  # L: Saturdays
        ("cron(0 8 ? * SUN *)", "2026-11-29T09:00:00", "2026-11-29T08:00:00"),
        ("cron(0 0 1 JAN ? 2024-2025)", "2026-06-01T00:00:00", "2025-01-01T00:00:00"),
        ("cron(0 0 1 1 ? 2030)", "2026-06-01T00:00:00", None),  # not yet
        ("cron(0 12 29 2 ? *)", "2027-03-01T00:00:00", "2024-02-29T12:00:00"),
    ],
)
def test_last_fire(expression: str, now: str, expected: str | None) -> None:
    # GIVEN a schedule and a moment WHEN its most recent fire is asked THEN it is the expected time
    assert last_fire(expression, at(now)) == (at(expected) if expected else None)


def test_a_time_with_an_offset_is_read_in_utc() -> None:
    # GIVEN 06:30 at +02:00 (04:30 UTC) WHEN a daily 05:00 UTC schedule is asked THEN yesterday's fire
    now = datetime.fromisoformat("2026-11-29T06:30:00+02:00")
    assert last_fire("cron(0 5 * * ? *)", now) == at("2026-11-28T05:00:00")


def test_an_invalid_expression_is_refused_with_its_rule() -> None:
    with pytest.raises(ValueError, match="exactly one of day-of-month and day-of-week"):
        last_fire("cron(0 5 * * * *)", at("2026-11-29T00:00:00"))


# --------------------------------------------------------------------------------------------------
# against the witness (devstack's EventBridge, croniter-based)

_MINUTES = st.sampled_from(["0", "30", "0/15", "5,35", "59"])
_HOURS = st.sampled_from(["0", "5", "*/6", "9-17", "23", "*"])
_DOM = st.sampled_from(["*", "1", "15", "L", "LW", "15W", "1W", "31W", "1-7", "29", "31"])
_MONTH = st.sampled_from(["*", "2", "JAN,JUL", "3-5", "*/3", "DEC"])
_DOW = st.sampled_from(["*", "MON-FRI", "1", "L", "6L", "2#1", "5#5", "SAT,SUN", "3"])
_YEAR = st.sampled_from(["*", "*", "2025-2027", "2026/2", "2024,2026"])
_EXPRESSIONS = st.builds(
    lambda m, h, dom, mon, dow, y, day_of_week: (
        f"cron({m} {h} ? {mon} {dow} {y})" if day_of_week else f"cron({m} {h} {dom} {mon} ? {y})"
    ),
    _MINUTES,
    _HOURS,
    _DOM,
    _MONTH,
    _DOW,
    _YEAR,
    st.booleans(),
)
_NOWS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=300, deadline=None)
@given(expression=_EXPRESSIONS, now=_NOWS)
def test_last_fire_agrees_with_the_local_eventbridge(expression: str, now: datetime) -> None:
    # GIVEN an AWS cron expression and a moment; the local stack's EventBridge as the witness
    witness = parse_schedule(expression)

    # WHEN the most recent fire is computed
    fire = last_fire(expression, now)

    # THEN it is a fire time of the witness, and the witness has none after it up to now
    if fire is None:
        try:
            first = witness.next_after(datetime(2019, 12, 31, 23, 59, tzinfo=UTC))
        except ValueError:  # the witness gives up on a day no month has (31 February): it never fires
            return
        assert first is None or first > now
        return
    assert fire <= now
    assert witness.next_after(fire - timedelta(seconds=1)) == fire
    following = witness.next_after(fire)
    assert following is None or following > now
