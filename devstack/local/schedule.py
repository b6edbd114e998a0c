"""EventBridge schedule expressions (``rate(...)`` and AWS's 6-field ``cron(...)``) for the local runner.

:func:`parse_schedule` turns the ``Schedule`` of a SAM ``Schedule`` event into a
:class:`Rate` or an :class:`AwsCron`; both answer ``next_after(t)`` (the first fire time strictly
after ``t``, UTC, as EventBridge rules evaluate cron in UTC).

``rate(value unit)``: ``unit`` is ``minute``/``hour``/``day`` for 1 and ``minutes``/``hours``/``days``
otherwise (EventBridge rejects ``rate(1 minutes)`` and ``rate(5 minute)``, so do we).

``cron(minutes hours day-of-month month day-of-week year)`` follows the EventBridge rules grammar:

* exactly one of day-of-month / day-of-week is ``?``;
* day-of-week is ``1-7`` = ``SUN-SAT`` (or the names); ``L`` (``6L`` = last Friday of the month,
  ``L`` alone = Saturday, the last day of the week) and ``#`` (``2#1`` = the first Monday);
* day-of-month takes ``L`` (last day), ``nW`` (the weekday nearest day n, within the month) and ``LW``
  (the last weekday of the month);
* the year field (``*``, ``2027``, ``2026-2030``, ``2026/2``, lists) is honoured.

The time arithmetic is croniter's: the expression is translated to croniter's 5-field form
(day-of-week shifted to croniter's ``0-6`` = ``SUN-SAT``, ``nL`` -> ``L<n-1>``, ``?`` -> ``*``), and the two
things croniter lacks -- ``W`` and the year -- are applied as filters that skip ahead to the next
month or year that can match.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from croniter import croniter

__all__ = ["AwsCron", "Rate", "Schedule", "ScheduleError", "aws_cron_to_croniter", "parse_schedule"]

MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2199  # the largest year EventBridge accepts
_DAY_NAMES: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # AWS 1..7
_RATE: Final = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON: Final = re.compile(r"^cron\((.*)\)$")
_UNITS: Final = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_W_DAY: Final = re.compile(r"^(\d{1,2})W$")
# A search never needs more steps than this (each step moves at least to the next candidate month).
_MAX_STEPS: Final = 10_000


class ScheduleError(ValueError):
    """A schedule expression EventBridge would reject (the message names the rule broken)."""


class Schedule(Protocol):
    expression: str

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (``None``: it never fires again)."""
        ...


@dataclass(frozen=True)
class Rate:
    """``rate(value unit)``: fires every ``period``."""

    expression: str
    period: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return _utc(moment) + self.period


@dataclass(frozen=True)
class AwsCron:
    """An EventBridge ``cron(...)`` expression (see the module docstring)."""

    expression: str
    croniter_expression: str
    years: frozenset[int] | None  # None = every year
    day_of_month_weekday: str | None  # "15W" / "LW", applied as a filter

    def next_after(self, moment: datetime) -> datetime | None:
        cursor = _utc(moment)
        for _ in range(_MAX_STEPS):
            candidate: datetime = croniter(self.croniter_expression, cursor).get_next(datetime)
            if self.years is not None and candidate.year not in self.years:
                year = next((y for y in sorted(self.years) if y > candidate.year), None)
                if year is None:
                    return None
                cursor = datetime(year, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
                continue
            if self.day_of_month_weekday is not None:
                target = _weekday_day(self.day_of_month_weekday, candidate.year, candidate.month)
                if target is None or candidate.day > target:
                    cursor = _first_of_next_month(candidate) - timedelta(seconds=1)
                    continue
                if candidate.day < target:
                    cursor = candidate.replace(day=target, hour=0, minute=0, second=0) - timedelta(seconds=1)
                    continue
            return candidate
        msg = f"{self.expression}: no fire time found"  # pragma: no cover - bounded by the year range
        raise ScheduleError(msg)


def parse_schedule(expression: str) -> Rate | AwsCron:
    """``rate(...)`` or ``cron(...)`` -> a schedule; :class:`ScheduleError` names what is wrong."""
    text = expression.strip()
    if match := _RATE.match(text):
        value, unit = int(match.group(1)), match.group(2)
        singular = unit.removesuffix("s")
        if singular not in _UNITS:
            raise ScheduleError(f"{expression}: the unit must be minute(s), hour(s) or day(s)")
        if value < 1:
            raise ScheduleError(f"{expression}: the value must be a positive integer")
        if (value == 1) != (unit == singular):
            raise ScheduleError(f"{expression}: use the singular unit for 1 and the plural otherwise")
        return Rate(expression=text, period=value * _UNITS[singular])
    if match := _CRON.match(text):
        converted, years, weekday = aws_cron_to_croniter(match.group(1))
        return AwsCron(expression=text, croniter_expression=converted, years=years, day_of_month_weekday=weekday)
    raise ScheduleError(f"{expression!r}: a schedule expression is rate(value unit) or cron(6 fields)")


def aws_cron_to_croniter(fields_text: str) -> tuple[str, frozenset[int] | None, str | None]:
    """The 6 AWS cron fields -> (croniter 5-field expression, year filter, ``W`` day-of-month filter)."""
    fields = fields_text.split()
    if len(fields) != 6:
        raise ScheduleError(f"cron({fields_text}): EventBridge cron has 6 fields (min hour dom month dow year)")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"cron({fields_text}): exactly one of day-of-month and day-of-week must be '?'")
    weekday: str | None = None
    if dom != "?" and "W" in dom.upper():
        weekday = dom.upper()
        if weekday != "LW" and not ((m := _W_DAY.match(weekday)) and 1 <= int(m.group(1)) <= 31):
            raise ScheduleError(f"cron({fields_text}): day-of-month W takes one day (15W) or LW")
        dom = "*"
    cron_dom = "*" if dom == "?" else dom
    cron_dow = "*" if dow == "?" else _day_of_week(dow, fields_text)
    expression = f"{minutes} {hours} {cron_dom} {month} {cron_dow}"
    if not croniter.is_valid(expression):
        raise ScheduleError(f"cron({fields_text}): not a valid cron expression")
    return expression, _years(year, fields_text), weekday


def _day_of_week(field: str, text: str) -> str:
    """AWS day-of-week (1-7 = SUN-SAT, names, ``nL``, ``n#k``) -> croniter's (0-6 = SUN-SAT)."""
    if field == "*":
        return "*"
    if field.upper() == "L":
        return "6"  # the last day of the week: Saturday
    parts = []
    for item in field.split(","):
        upper = item.upper()
        if upper.endswith("L"):
            parts.append(f"L{_day_number(upper[:-1], text)}")
        elif "#" in upper:
            day, nth = upper.split("#", 1)
            parts.append(f"{_day_number(day, text)}#{nth}")
        elif "-" in upper:
            first, last = upper.split("-", 1)
            parts.append(f"{_day_number(first, text)}-{_day_number(last, text)}")
        else:
            parts.append(str(_day_number(upper, text)))
    return ",".join(parts)


def _day_number(token: str, text: str) -> int:
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    if token.isdigit() and 1 <= int(token) <= 7:
        return int(token) - 1
    raise ScheduleError(f"cron({text}): day-of-week {token!r} is not 1-7 or SUN-SAT")


def _years(field: str, text: str) -> frozenset[int] | None:
    if field == "*":
        return None
    years: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit():
            raise ScheduleError(f"cron({text}): year step {step_text!r} is not a number")
        if span == "*":
            first, last = MIN_YEAR, MAX_YEAR
        elif "-" in span:
            first_text, last_text = span.split("-", 1)
            first, last = _year(first_text, text), _year(last_text, text)
        else:
            first = _year(span, text)
            last = MAX_YEAR if step_text else first
        if first > last or step < 1:
            raise ScheduleError(f"cron({text}): year {item!r} is an empty range")
        years.update(range(first, last + 1, step))
    return frozenset(years)


def _year(token: str, text: str) -> int:
    if not token.isdigit() or not MIN_YEAR <= int(token) <= MAX_YEAR:
        raise ScheduleError(f"cron({text}): year {token!r} is not {MIN_YEAR}-{MAX_YEAR}")
    return int(token)


def _weekday_day(spec: str, year: int, month: int) -> int | None:
    """The day of ``year``/``month`` that ``15W`` (nearest weekday) or ``LW`` (last weekday) selects."""
    last = calendar.monthrange(year, month)[1]
    if spec == "LW":
        day = last
        while calendar.weekday(year, month, day) >= calendar.SATURDAY:
            day -= 1
        return day
    day = int(spec[:-1])
    if day > last:
        return None
    weekday = calendar.weekday(year, month, day)
    if weekday == calendar.SATURDAY:
        return day - 1 if day > 1 else day + 2
    if weekday == calendar.SUNDAY:
        return day + 1 if day < last else day - 2
    return day


def _first_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    return datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
