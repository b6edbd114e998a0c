"""When an EventBridge schedule expression last fired: the warm planner's due-ness arithmetic (pure).

:func:`last_fire` answers "the most recent fire time at or before ``now``" for the two forms a warm
set's ``schedule`` takes (validated by :mod:`ecrcache.models.common`):

* ``rate(value unit)``: multiples of the period counted from the Unix epoch (00:00 UTC for
  ``rate(1 day)``, the top of the hour for ``rate(1 hour)``). EventBridge counts a rule's rate from
  when the rule was created; the planner has no such moment (one tick plans every set), so it fixes
  the phase at the epoch: the same set is due at the same times in every deployment.
* ``cron(minutes hours day-of-month month day-of-week year)`` with EventBridge's semantics, in UTC:
  exactly one day field is ``?``; day-of-week ``1-7`` is ``SUN-SAT``; day-of-month ``L`` (last day),
  ``LW`` (last weekday), ``15W`` (the weekday nearest the 15th, never leaving the month); day-of-week
  ``L`` (Saturday, the last day of the week), ``6L`` (the last Friday of the month), ``2#1`` (the
  first Monday); the year field is honoured.

Why a second implementation of AWS cron: ``devstack.local.schedule`` (croniter plus filters for
``W`` and the year) is the *witness* of EventBridge that fires the template's schedules in the local
stack; it is never deployed, and the layer must not depend on it (nor pull croniter and its
dependencies into every cold start for one function). This module searches backwards over calendar
days with the field sets :func:`ecrcache.models.common.cron_values` already computes when the warm
set is validated. ``tests/unit/engine/test_schedule.py`` checks the two against each other on
generated expressions, so a disagreement about what AWS means fails a test rather than a schedule.

No I/O, no clock: ``now`` is an argument.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from ecrcache.models.common import cron_values, parse_cron, parse_rate

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86_400}
MIN_YEAR: Final = 1970
MAX_SEARCH_DAYS: Final = 366 * 8
"""Days searched back within the allowed years and months: every day-of-month/day-of-week form
matches at least once in any 8 consecutive years (29 February does), so a longer search finds nothing."""

DayMatcher = Callable[[date], bool]


def _aws_weekday(day: date) -> int:
    """EventBridge's day-of-week number: SUN = 1 ... SAT = 7."""
    return (day.weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The day ``<day>W`` selects: the weekday nearest ``day`` without leaving the month (``None``: no such day)."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = calendar.weekday(year, month, day)
    if weekday == calendar.SATURDAY:
        return day - 1 if day > 1 else day + 2
    if weekday == calendar.SUNDAY:
        return day + 1 if day < last else day - 2
    return day


def _last_weekday(year: int, month: int) -> int:
    day = calendar.monthrange(year, month)[1]
    while calendar.weekday(year, month, day) >= calendar.SATURDAY:
        day -= 1
    return day


def _day_of_month(text: str) -> DayMatcher:
    upper = text.upper()
    if upper == "L":
        return lambda d: d.day == calendar.monthrange(d.year, d.month)[1]
    if upper == "LW":
        return lambda d: d.day == _last_weekday(d.year, d.month)
    if upper.endswith("W"):
        wanted = int(upper[:-1])
        return lambda d: d.day == _nearest_weekday(d.year, d.month, wanted)
    values = frozenset(cron_values(("0", "0", text, "*", "?", "*"), 2) or ())
    return lambda d: d.day in values


def _day_number(token: str) -> int:
    names = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
    return names.index(token) + 1 if token in names else int(token)


def _day_of_week(text: str) -> DayMatcher:
    upper = text.upper()
    if upper == "L":
        return lambda d: _aws_weekday(d) == 7
    if "#" in upper:
        day_text, _, nth_text = upper.partition("#")
        weekday, nth = _day_number(day_text), int(nth_text)
        return lambda d: _aws_weekday(d) == weekday and (d.day - 1) // 7 + 1 == nth
    if upper.endswith("L"):
        weekday = _day_number(upper[:-1])
        return lambda d: _aws_weekday(d) == weekday and d.day + 7 > calendar.monthrange(d.year, d.month)[1]
    values = frozenset(cron_values(("0", "0", "?", "*", text, "*"), 4) or ())
    return lambda d: _aws_weekday(d) in values


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A validated EventBridge cron expression as sets and a day predicate."""

    minutes: tuple[int, ...]  # ascending
    hours: tuple[int, ...]  # ascending
    months: frozenset[int]
    years: frozenset[int] | None  # None: every year
    day: DayMatcher

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = parse_cron(expression)
        day = _day_of_week(fields[4]) if fields[2] == "?" else _day_of_month(fields[2])
        years = cron_values(fields, 5)
        return cls(
            minutes=tuple(sorted(cron_values(fields, 0) or ())),
            hours=tuple(sorted(cron_values(fields, 1) or ())),
            months=frozenset(cron_values(fields, 3) or ()),
            years=None if fields[5] == "*" else frozenset(years or ()),
            day=day,
        )

    def _latest_time(self, until: time | None) -> time | None:
        """The latest fire time of a matching day at or before ``until`` (``None``: the whole day)."""
        for hour in reversed(self.hours):
            if until is not None and hour > until.hour:
                continue
            for minute in reversed(self.minutes):
                if until is None or hour < until.hour or minute <= until.minute:
                    return time(hour, minute, tzinfo=UTC)
        return None

    def _step_back(self, day: date) -> date | None:
        """``day`` if its year and month can match, else the last day of the latest month before it that can."""
        while day.year >= MIN_YEAR:
            if self.years is not None and day.year not in self.years:
                earlier = [y for y in self.years if y < day.year]
                if not earlier:
                    return None
                day = date(max(earlier), 12, 31)
                continue
            if day.month not in self.months:
                day = day.replace(day=1) - timedelta(days=1)
                continue
            return day
        return None

    def last_fire(self, now: datetime) -> datetime | None:
        """The most recent fire time at or before ``now`` (UTC), or ``None`` if it never fired."""
        moment = now.astimezone(UTC)
        day: date | None = moment.date()
        until: time | None = moment.time()
        for _ in range(MAX_SEARCH_DAYS):
            day = self._step_back(day) if day is not None else None
            if day is None:
                return None
            if day != moment.date():
                until = None
            if self.day(day) and (at := self._latest_time(until)) is not None:
                return datetime.combine(day, at)
            day = day - timedelta(days=1) if day > date(MIN_YEAR, 1, 1) else None
        return None


def last_fire(expression: str, now: datetime) -> datetime | None:
    """The most recent time ``expression`` fired at or before ``now`` (see the module docstring).

    Raises ``ValueError`` for an expression EventBridge would reject.
    """
    if expression.startswith("rate("):
        value, unit = parse_rate(expression)
        period = value * _UNIT_SECONDS[unit]
        elapsed = int((now.astimezone(UTC) - _EPOCH).total_seconds())
        return _EPOCH + timedelta(seconds=elapsed - elapsed % period)
    return CronSchedule.parse(expression).last_fire(now)
