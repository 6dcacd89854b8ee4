"""Storage of a region's push to its hub: ``push_state`` and ``push_receipts``.

:mod:`node.federation._push` checks each receipt against the outbox event it answers;
this module only writes and reads rows, inside the caller's unit of work.

Invariants:

* ``push_state`` holds one row per hub, created on first use;
* ``push_receipts`` holds each hub receipt once per (hub, seq).
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "add_push_receipt",
    "push_failed",
    "push_receipts_through",
    "push_succeeded",
    "push_witnessed",
]


def add_push_receipt(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, hub: str, seq: int, event_id: str, receipt: bytes, verified: int
) -> None:
    """Keep a hub receipt; one already held for (hub, seq) is kept."""
    conn.execute(
        "INSERT INTO push_receipts (hub, seq, event_id, receipt, verified)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hub, seq) DO NOTHING",
        (hub, seq, event_id, receipt, int(verified)),  # an integer column on both engines
    )


def push_receipts_through(conn: sqlite3.Connection, hub: str) -> int:
    """The highest seq of a receipt held from ``hub`` (0: none)."""
    return int(
        conn.execute(
            "SELECT coalesce(max(seq), 0) FROM push_receipts WHERE hub = ?", (hub,)
        ).fetchone()[0]
    )


def _push_row(conn: sqlite3.Connection, hub: str) -> None:
    conn.execute("INSERT INTO push_state (hub) VALUES (?) ON CONFLICT (hub) DO NOTHING", (hub,))


def push_succeeded(conn: sqlite3.Connection, hub: str, cursor: int, now: int) -> None:
    """The hub holds the outbox up to ``cursor``: the error and failure count clear."""
    _push_row(conn, hub)
    conn.execute(
        "UPDATE push_state SET cursor = ?, last_push_at = ?, last_error = '',"
        " failures = 0 WHERE hub = ?",
        (cursor, now, hub),
    )


def push_failed(conn: sqlite3.Connection, hub: str, error: str) -> None:
    """A push that failed with ``error``: one more failure."""
    _push_row(conn, hub)
    conn.execute(
        "UPDATE push_state SET last_error = ?, failures = failures + 1 WHERE hub = ?",
        (error, hub),
    )


def push_witnessed(conn: sqlite3.Connection, hub: str, witnessed: bytes) -> None:
    """The hub's co-signed log checkpoint (after :func:`push_succeeded` or
    :func:`push_failed` in the same unit)."""
    conn.execute("UPDATE push_state SET witnessed = ? WHERE hub = ?", (witnessed, hub))
