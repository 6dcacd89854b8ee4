"""The SQL of organisation listing events (H10): the ``organisation_listings`` table.

Every function runs inside the caller's unit and never commits.  What a listing
means for record intake (which list, what error) stays in
:mod:`node.organisations._intake`.

Invariants: rows are never updated or deleted (a removal is its own event), so
the list as it stood on any past day can be read again; a listing id is unique
per department.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

__all__ = ["existing_listing_ids", "insert_listings", "latest_event"]

_CHUNK = 500  # listing ids per IN (...) list, well under SQLite's parameter limit
# latest event on or before the day; a removal on the same day as a listing wins
_LATEST = (
    "SELECT event FROM organisation_listings WHERE organisation_code = ? AND list = ? "
    "AND on_date <= ? ORDER BY on_date DESC, event = 'removed' DESC LIMIT 1"
)


def latest_event(
    conn: sqlite3.Connection, organisation_code: str, list_name: str, day_iso: str
) -> str | None:
    """The organisation's latest event on ``list_name`` on or before ``day_iso`` (a
    removal on the same day as a listing wins), or None."""
    row = conn.execute(_LATEST, (organisation_code, list_name, day_iso)).fetchone()
    return None if row is None else row[0]


def existing_listing_ids(
    conn: sqlite3.Connection, submitted_by: str, ids: Sequence[str]
) -> set[str]:
    """Those of ``ids`` the department stored already."""
    existing: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(part))
        existing.update(
            r[0]
            for r in conn.execute(
                "SELECT listing_id FROM organisation_listings WHERE submitted_by = ? "
                f"AND listing_id IN ({marks})",
                (submitted_by, *part),
            )
        )
    return existing


def insert_listings(
    conn: sqlite3.Connection, rows: Iterable[tuple[str, str, str, str, str, str, str, str]]
) -> None:
    """(submitted_by, listing_id, organisation_code, list, event, on_date, batch_id,
    submitted_at): append listing events."""
    conn.executemany(
        "INSERT INTO organisation_listings (submitted_by, listing_id, organisation_code, "
        "list, event, on_date, batch_id, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
