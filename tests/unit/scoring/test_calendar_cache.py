"""The official working-day data is looked up once per day (H15, N7, N21 deadlines)."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar

from scoring import WorkingDayCalendar
from scoring._calendar import official_workday


def test_cached_lookups_answer_as_the_official_data() -> None:
    """N7, N21: every day of three covered years is a working day exactly when the
    official calendar says so, asked once or many times."""
    cal = WorkingDayCalendar()
    day = date(2024, 1, 1)
    while day.year < 2027:
        official = bool(chinese_calendar.is_workday(day))
        assert cal.is_working_day(day) is official
        assert cal.is_working_day(day) is official  # from the cache
        day += timedelta(days=1)
    before = official_workday.cache_info().hits
    cal.add_working_days(date(2025, 9, 30), 10)  # across the National Day holiday
    assert official_workday.cache_info().hits > before


def test_a_year_without_official_data_is_not_cached_as_official() -> None:
    """N21: a year the package does not cover answers None (weekends-only fallback)."""
    assert official_workday(date(2199, 6, 3)) is None
    assert WorkingDayCalendar().is_working_day(date(2199, 6, 3))  # a Monday
