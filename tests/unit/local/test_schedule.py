"""EventBridge schedule expressions -> fire times (rate and AWS 6-field cron, via croniter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.local.schedule import AwsCron, Rate, ScheduleError, aws_cron_to_croniter, parse_schedule

pytestmark = pytest.mark.unit

# Thursday 1 January 2026, 00:00 UTC
START = datetime(2026, 1, 1, tzinfo=UTC)


def fire_times(expression: str, count: int = 3, start: datetime = START) -> list[str]:
    schedule = parse_schedule(expression)
    out: list[str] = []
    moment: datetime | None = start
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_after(moment)
        if moment is None:
            break
        out.append(moment.strftime("%Y-%m-%d %a %H:%M"))
    return out


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(15 minutes)", timedelta(minutes=15)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(12 hours)", timedelta(hours=12)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(7 days)", timedelta(days=7)),
    ],
)
def test_rates(expression: str, period: timedelta) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, Rate)
    assert schedule.period == period
    assert schedule.next_after(START) == START + period


@pytest.mark.parametrize(
    ("expression", "rule"),
    [
        ("rate(1 minutes)", "singular"),
        ("rate(5 minute)", "singular"),
        ("rate(0 minutes)", "positive"),
        ("rate(2 weeks)", "minute"),
        ("every 5 minutes", "rate"),
        ("cron(0 12 * * *)", "6 fields"),
        ("cron(0 12 * * MON *)", "exactly one"),
        ("cron(0 12 ? * ? *)", "exactly one"),
        ("cron(0 12 ? * 8 *)", "day-of-week"),
        ("cron(0 12 * * ? 1969)", "year"),
        ("cron(0 25 * * ? *)", "not a valid"),
    ],
)
def test_expressions_eventbridge_rejects(expression: str, rule: str) -> None:
    with pytest.raises(ScheduleError, match=rule):
        parse_schedule(expression)


def test_the_deep_resync_cron_fires_daily_at_0317_utc() -> None:
    assert fire_times("cron(17 3 * * ? *)") == [
        "2026-01-01 Thu 03:17",
        "2026-01-02 Fri 03:17",
        "2026-01-03 Sat 03:17",
    ]


def test_weekday_names_range() -> None:
    assert fire_times("cron(0 12 ? * MON-FRI *)", 4) == [
        "2026-01-01 Thu 12:00",
        "2026-01-02 Fri 12:00",
        "2026-01-05 Mon 12:00",
        "2026-01-06 Tue 12:00",
    ]


def test_minute_increments() -> None:
    assert fire_times("cron(0/15 * * * ? *)", 4) == [
        "2026-01-01 Thu 00:15",
        "2026-01-01 Thu 00:30",
        "2026-01-01 Thu 00:45",
        "2026-01-01 Thu 01:00",
    ]


def test_day_of_week_numbers_are_one_to_seven_from_sunday() -> None:
    assert fire_times("cron(0 8 ? * 2 *)", 2) == ["2026-01-05 Mon 08:00", "2026-01-12 Mon 08:00"]
    assert fire_times("cron(0 8 ? * 1 *)", 1) == ["2026-01-04 Sun 08:00"]
    assert fire_times("cron(0 8 ? * 7 *)", 1) == ["2026-01-03 Sat 08:00"]
    assert fire_times("cron(0 8 ? * 2-6 *)", 3) == [
        "2026-01-01 Thu 08:00",
        "2026-01-02 Fri 08:00",
        "2026-01-05 Mon 08:00",
    ]
    assert fire_times("cron(0 8 ? * 1,7 *)", 2) == ["2026-01-03 Sat 08:00", "2026-01-04 Sun 08:00"]


def test_nth_weekday_of_the_month() -> None:
    # 6#3 = the third Friday
    assert fire_times("cron(0 8 ? * 6#3 *)", 2) == ["2026-01-16 Fri 08:00", "2026-02-20 Fri 08:00"]


def test_last_day_of_month_and_last_weekday_of_month() -> None:
    assert fire_times("cron(0 8 L * ? *)", 3) == [
        "2026-01-31 Sat 08:00",
        "2026-02-28 Sat 08:00",
        "2026-03-31 Tue 08:00",
    ]
    # 6L = the last Friday of the month
    assert fire_times("cron(0 8 ? * 6L *)", 2) == ["2026-01-30 Fri 08:00", "2026-02-27 Fri 08:00"]
    # L alone in day-of-week = the last day of the week (Saturday)
    assert fire_times("cron(0 8 ? * L *)", 1) == ["2026-01-03 Sat 08:00"]


def test_nearest_weekday() -> None:
    # 2026-01-31 is a Saturday -> Friday 30th; 2026-02-15 is a Sunday -> Monday 16th
    assert fire_times("cron(0 9 31W * ? *)", 2) == ["2026-01-30 Fri 09:00", "2026-03-31 Tue 09:00"]
    assert fire_times("cron(0 9 15W * ? *)", 2) == ["2026-01-15 Thu 09:00", "2026-02-16 Mon 09:00"]
    # 1W on a Saturday (2026-08-01) moves forward to Monday the 3rd, never into July
    assert fire_times("cron(0 9 1W 8 ? *)", 1) == ["2026-08-03 Mon 09:00"]
    # LW: last weekday (2026-01-31 is a Saturday)
    assert fire_times("cron(0 9 LW * ? *)", 2) == ["2026-01-30 Fri 09:00", "2026-02-27 Fri 09:00"]


def test_the_year_field_is_honoured() -> None:
    assert fire_times("cron(0 0 1 1 ? 2028)", 2) == ["2028-01-01 Sat 00:00"]
    assert fire_times("cron(0 0 1 1 ? 2027-2029)", 5) == [
        "2027-01-01 Fri 00:00",
        "2028-01-01 Sat 00:00",
        "2029-01-01 Mon 00:00",
    ]
    assert fire_times("cron(0 0 1 1 ? 2026/2)", 3) == [
        "2028-01-01 Sat 00:00",  # 2026-01-01 00:00 is not strictly after the start
        "2030-01-01 Tue 00:00",
        "2032-01-01 Thu 00:00",
    ]
    assert fire_times("cron(0 0 1 1 ? 2025)", 1) == []  # past years never fire


def test_months_by_name() -> None:
    assert fire_times("cron(30 6 1 JAN,JUL ? *)", 3) == [
        "2026-01-01 Thu 06:30",
        "2026-07-01 Wed 06:30",
        "2027-01-01 Fri 06:30",
    ]


def test_translation_to_croniter() -> None:
    expression, years, weekday = aws_cron_to_croniter("0 8 ? * 2#1 2027")
    assert expression == "0 8 * * 1#1"
    assert years == frozenset({2027})
    assert weekday is None
    cron = parse_schedule("cron(0 8 ? * MON-FRI *)")
    assert isinstance(cron, AwsCron)
    assert cron.croniter_expression == "0 8 * * 1-5"
    assert cron.years is None


def test_naive_datetimes_are_utc() -> None:
    assert parse_schedule("cron(17 3 * * ? *)").next_after(datetime(2026, 1, 1)) == datetime(
        2026, 1, 1, 3, 17, tzinfo=UTC
    )
