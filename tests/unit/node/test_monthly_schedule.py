"""When the node's monthly run is due, and the ``[schedule]`` section that says so.

REQ: H3 — scores are recomputed and published monthly: the run of month M is due on
``monthly_day`` of M+1 at ``monthly_hour`` (UTC); the node's target is always the
newest month whose run is due (issue 15 §3, docs/adr/0514).  Every key is bounded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from node.core._config import ConfigError, ScheduleConfig, parse_config
from node.monthly import due_at, due_period, next_due
from tests.support.config import BASE


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "day", "hour", "period"),
    [
        ("2026-10-03T04:59:59", 3, 5, "2026-08"),
        ("2026-10-03T05:00:00", 3, 5, "2026-09"),
        ("2026-10-31T23:59:59", 3, 5, "2026-09"),
        ("2026-01-01T01:59:59", 1, 2, "2025-11"),
        ("2026-01-01T02:00:00", 1, 2, "2025-12"),
        ("2026-02-28T00:00:00", 28, 0, "2026-01"),
        ("2026-03-15T12:00:00", 1, 0, "2026-02"),
    ],
    ids=["hour-before", "due-hour", "end-of-month", "new-year-before", "new-year-due",
         "day-28-february", "mid-month"],
)  # fmt: skip
def test_the_newest_month_whose_run_is_due(now: str, day: int, hour: int, period: str) -> None:
    """REQ: H3 — issue 15 §3: the run of a month is due after it ends, at the configured
    day and hour; before that, the month before it is the newest due."""
    assert due_period(_at(now), day, hour) == period


def test_due_times_are_utc_whatever_the_clock_zone() -> None:
    """REQ: H3 — the node keeps UTC dates: 10:00 Beijing time is 02:00 UTC."""
    beijing = timezone(timedelta(hours=8))
    assert due_period(datetime(2026, 11, 1, 9, 59, tzinfo=beijing), 1, 2) == "2026-09"
    assert due_period(datetime(2026, 11, 1, 10, 0, tzinfo=beijing), 1, 2) == "2026-10"
    assert due_at("2026-12", 1, 2) == datetime(2027, 1, 1, 2, tzinfo=UTC)
    assert next_due(_at("2026-11-01T02:00:00"), 1, 2) == (
        "2026-11",
        datetime(2026, 12, 1, 2, tzinfo=UTC),
    )


def test_schedule_defaults(tmp_path: Path) -> None:
    """REQ: H3 — by default the month runs on the 1st at 02:00 UTC, in the node's process."""
    assert parse_config(BASE, tmp_path).schedule == ScheduleConfig(1, 2, 1, 60, 60.0)
    cfg = parse_config({**BASE, "schedule": {"monthly_day": 28, "monthly_hour": 0}}, tmp_path)
    assert (cfg.schedule.monthly_day, cfg.schedule.monthly_hour) == (28, 0)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"monthly_day": 0}, "schedule.monthly_day"),
        ({"monthly_day": 29}, "schedule.monthly_day"),
        ({"monthly_hour": -1}, "schedule.monthly_hour"),
        ({"monthly_hour": 24}, "schedule.monthly_hour"),
        ({"monthly_hour": "2"}, "schedule.monthly_hour"),
        ({"monthly_day": True}, "schedule.monthly_day"),
        ({"monthly_workers": 0}, "schedule.monthly_workers"),
        ({"monthly_workers": 65}, "schedule.monthly_workers"),
        ({"retry_minutes": 0}, "schedule.retry_minutes"),
        ({"retry_minutes": 1441}, "schedule.retry_minutes"),
        ({"interval_seconds": 0.5}, "schedule.interval_seconds"),
        ({"interval_seconds": 3601}, "schedule.interval_seconds"),
        ({"monthly_minute": 5}, "schedule.monthly_minute"),
    ],
    ids=["day-0", "day-29", "hour-negative", "hour-24", "hour-text", "day-bool",
         "no-workers", "too-many-workers", "retry-0", "retry-over-a-day", "interval-short",
         "interval-long", "unknown-key"],
)  # fmt: skip
def test_bad_schedule_is_refused_naming_the_key(
    tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    """REQ: H3 — issue 15 §3: every [schedule] key has a documented bound."""
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "schedule": values}, tmp_path)
    assert err.value.field == field
