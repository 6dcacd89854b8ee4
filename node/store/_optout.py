"""The SQL of voluntariness (N3, N4): who asked not to be scored.

Functions taking a connection run inside the caller's unit of work and never
commit.  Invariant: a person is opted out exactly while an ``opt_outs`` row
holds their ``subject_key``; opting out keeps every record.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "OPTED_OUT_SUBJECTS",
    "delete_current_grade",
    "delete_opt_out",
    "end_active_consents",
    "insert_opt_out",
    "is_opted_out",
    "opted_out_at",
]

#: SQL sub-select of the subject keys that asked not to be scored (for ``NOT IN``).
OPTED_OUT_SUBJECTS = "SELECT subject_key FROM opt_outs"


def opted_out_at(conn: sqlite3.Connection, key: bytes) -> str | None:
    """When the person opted out (ISO time), or None."""
    row = conn.execute("SELECT opted_out_at FROM opt_outs WHERE subject_key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def is_opted_out(conn: sqlite3.Connection, key: bytes) -> bool:
    """Whether the person asked not to be scored."""
    return (
        conn.execute("SELECT 1 FROM opt_outs WHERE subject_key = ?", (key,)).fetchone() is not None
    )


def insert_opt_out(conn: sqlite3.Connection, key: bytes, at_iso: str) -> None:
    """Store the opt-out (the caller checked there is none)."""
    conn.execute("INSERT INTO opt_outs (subject_key, opted_out_at) VALUES (?, ?)", (key, at_iso))


def delete_opt_out(conn: sqlite3.Connection, key: bytes) -> int:
    """Remove the opt-out; returns 1 if the person was opted out."""
    return int(conn.execute("DELETE FROM opt_outs WHERE subject_key = ?", (key,)).rowcount)


def end_active_consents(conn: sqlite3.Connection, key: bytes, now_s: int) -> int:
    """Withdraw, at ``now_s``, every consent of the person still usable; returns how many."""
    return int(
        conn.execute(
            "UPDATE consents SET withdrawn_at = ? WHERE subject_key = ? AND withdrawn_at IS NULL "
            "AND not_after > ? AND uses < max_uses",
            (now_s, key, now_s),
        ).rowcount
    )


def delete_current_grade(conn: sqlite3.Connection, key: bytes) -> None:
    """Drop the person's current grade: nothing is published for them."""
    conn.execute("DELETE FROM current_grades WHERE subject_key = ?", (key,))
