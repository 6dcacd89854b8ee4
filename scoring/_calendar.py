"""Chinese working days for objection deadlines (H15, N21).

Official holidays and make-up working days come from the ``chinese-calendar``
package.  For a year it does not cover, an operator may load a holiday file
(:func:`parse_holiday_file`); without one, the calendar falls back to
"Monday–Friday are working days" and logs a warning once per year, so a
deadline is never silently computed on a calendar nobody checked.

Invariants: a deadline of ``n`` working days after ``start`` is the ``n``-th
working day strictly after ``start`` (the day an objection arrives does not
count); ``n >= 1``.  :meth:`WorkingDayCalendar.coverage` tells which source
decided a year.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

from ._errors import ScoringError

__all__ = [
    "CalendarError",
    "HolidayYear",
    "WorkingDayCalendar",
    "official_workday",
    "parse_holiday_file",
]

log = logging.getLogger("huxin.calendar")

MAX_DEADLINE_DAYS = 60


@lru_cache(maxsize=1 << 16)  # every day of 179 years; the official data never changes
def official_workday(day: date) -> bool | None:
    """``chinese-calendar``'s answer for ``day``, None for a year it does not cover.

    Cached: the package checks each date against the bounds of its whole table on
    every call, which made a record batch's N7 deadlines most of its intake time."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


class CalendarError(ScoringError):
    code = "INVALID_CALENDAR"


@dataclass(frozen=True)
class HolidayYear:
    """An operator-supplied year: official holidays and make-up working days."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date] = frozenset()


def parse_holiday_file(text: str) -> HolidayYear:
    """Parse ``year = 2027`` / ``holidays = [2027-01-01, ...]`` / ``workdays = [...]`` TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError("toml", f"not valid TOML: {exc}") from None
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool):
        raise CalendarError("year", "is required and must be an integer")
    sets: dict[str, frozenset[date]] = {}
    for key in ("holidays", "workdays"):
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, date) for v in values):
            raise CalendarError(key, "must be a list of dates (YYYY-MM-DD)")
        wrong = [v for v in values if v.year != year]
        if wrong:
            raise CalendarError(key, f"{wrong[0]} is not in year {year}")
        sets[key] = frozenset(values)
    overlap = sets["holidays"] & sets["workdays"]
    if overlap:
        raise CalendarError("workdays", f"{min(overlap)} is listed as both holiday and workday")
    if not sets["holidays"]:
        raise CalendarError("holidays", "must list the year's official holidays")
    return HolidayYear(year, sets["holidays"], sets["workdays"])


@dataclass
class WorkingDayCalendar:
    """Working days: official data, then operator files, then weekends only (warned)."""

    overrides: Mapping[int, HolidayYear] = field(default_factory=dict)
    _warned: set[int] = field(default_factory=set, repr=False)

    def coverage(self, year: int) -> str:
        if year in self.overrides:
            return "operator"
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return "weekends-only"
        return "official"

    def with_year(self, year: HolidayYear) -> WorkingDayCalendar:
        return WorkingDayCalendar({**self.overrides, year.year: year})

    def is_working_day(self, day: date) -> bool:
        override = self.overrides.get(day.year)
        if override is not None:
            if day in override.workdays:
                return True
            return day.weekday() < 5 and day not in override.holidays
        official = official_workday(day)
        if official is None:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "no holiday data for %d: counting Monday-Friday only; "
                    "load an operator holiday file for that year",
                    day.year,
                )
            return day.weekday() < 5
        return official

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day strictly after ``start``."""
        if not 1 <= days <= MAX_DEADLINE_DAYS:
            raise CalendarError("days", f"must be between 1 and {MAX_DEADLINE_DAYS}")
        current, left = start, days
        while left:
            current += timedelta(days=1)
            if self.is_working_day(current):
                left -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``(start, end]`` (0 if ``end <= start``)."""
        count, current = 0, start
        while current < end:
            current += timedelta(days=1)
            count += self.is_working_day(current)
        return count
