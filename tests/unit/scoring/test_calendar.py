"""Working days on the Chinese calendar, across the 2026 National Day week (H15, N21)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from scoring import CalendarError, WorkingDayCalendar, parse_holiday_file

CAL = WorkingDayCalendar()


def test_2026_holidays_and_make_up_days() -> None:
    assert not CAL.is_working_day(date(2026, 10, 1))  # National Day
    assert not CAL.is_working_day(date(2026, 9, 25))  # Mid-Autumn (Friday)
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, make-up working day
    assert CAL.is_working_day(date(2026, 9, 20))  # Sunday, make-up working day
    assert CAL.coverage(2026) == "official"


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        pytest.param(date(2026, 9, 24), 3, date(2026, 9, 30), id="heihe-forward-over-mid-autumn"),
        pytest.param(date(2026, 9, 30), 7, date(2026, 10, 15), id="heihe-source-over-national-day"),
        pytest.param(date(2026, 9, 19), 3, date(2026, 9, 22), id="make-up-sunday-counts"),
        pytest.param(
            date(2026, 9, 29), 5, date(2026, 10, 12), id="hainan-source-over-national-day"
        ),
        pytest.param(date(2026, 11, 20), 1, date(2026, 11, 23), id="friday-plus-one"),
    ],
)
def test_deadlines(start: date, days: int, expected: date) -> None:
    assert CAL.add_working_days(start, days) == expected
    assert CAL.working_days_between(start, expected) == days


def test_uncovered_year_counts_weekdays_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    cal = WorkingDayCalendar()
    assert cal.coverage(2031) == "weekends-only"
    with caplog.at_level(logging.WARNING, logger="huxin.calendar"):
        assert cal.add_working_days(date(2031, 1, 2), 3) == date(2031, 1, 7)
        cal.add_working_days(date(2031, 2, 2), 3)
    warnings = [r for r in caplog.records if "2031" in r.getMessage()]
    assert len(warnings) == 1


def test_operator_holiday_file_for_uncovered_year() -> None:
    year = parse_holiday_file(
        "year = 2031\nholidays = [2031-01-01, 2031-01-02, 2031-01-03]\nworkdays = [2031-01-04]\n"
    )
    cal = WorkingDayCalendar().with_year(year)
    assert cal.coverage(2031) == "operator"
    # 1-3 Jan holidays, 4 Jan (Saturday) a make-up working day.
    assert cal.add_working_days(date(2030, 12, 31), 2) == date(2031, 1, 6)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("holidays = [2031-01-01]", "year", id="missing-year"),
        pytest.param("year = 2031\nholidays = ['2031-01-01']", "holidays", id="string-dates"),
        pytest.param("year = 2031\nholidays = [2030-01-01]", "holidays", id="wrong-year"),
        pytest.param("year = 2031\nholidays = []", "holidays", id="no-holidays"),
        pytest.param(
            "year = 2031\nholidays = [2031-01-01]\nworkdays = [2031-01-01]", "workdays", id="both"
        ),
        pytest.param("year = ", "toml", id="bad-toml"),
    ],
)
def test_bad_holiday_files(text: str, field: str) -> None:
    with pytest.raises(CalendarError) as info:
        parse_holiday_file(text)
    assert info.value.field == field


def test_deadline_bounds() -> None:
    with pytest.raises(CalendarError):
        CAL.add_working_days(date(2026, 1, 1), 0)
