"""When a monthly run is due (H3): pure date arithmetic, UTC like every date of the node.

The run of month M is due at ``monthly_day`` of M+1, ``monthly_hour``:00 UTC.  At
any instant the node's target is the NEWEST month whose run is due
(:func:`due_period`); an older month missed while the node was down is not run
again by the scheduler (the published month is the newest; ``huxin score
publish --period`` runs an older one on purpose).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["due_at", "due_period", "next_due", "previous_period"]


def previous_period(year: int, month: int) -> str:
    """``YYYY-MM`` of the month before ``year``-``month``."""
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def due_at(period: str, day: int, hour: int) -> datetime:
    """When the run of ``period`` (``YYYY-MM``) is due."""
    year, month = int(period[:4]), int(period[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, day, hour, tzinfo=UTC)


def due_period(now: datetime, day: int, hour: int) -> str:
    """The newest month whose run is due at ``now`` (an aware datetime)."""
    now = now.astimezone(UTC)
    last = previous_period(now.year, now.month)
    if now >= due_at(last, day, hour):
        return last
    return previous_period(int(last[:4]), int(last[5:7]))


def next_due(now: datetime, day: int, hour: int) -> tuple[str, datetime]:
    """The next month to become due after the current target, and when."""
    now = now.astimezone(UTC)
    target = due_period(now, day, hour)
    year, month = int(target[:4]), int(target[5:7])
    following = f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"
    return following, due_at(following, day, hour)
