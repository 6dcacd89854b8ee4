"""The reads of ``huxin status``: what an operator checks on a node (node/cli/_status.py).

Every function takes a read-only ``sqlite3`` connection and returns plain rows; the
CLI decides what they mean.  A table that does not exist yet (a database older than
the migration adding it, or a hub's tables on a region) reads as no rows, so status
reports what there is instead of failing.

Invariants: read-only, never more than the few rows shown (the newest trust list,
the last five refusals); nothing here decrypts or verifies (the trust list's envelope
is verified by the caller).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "hub_cursors",
    "newest_trust_list",
    "outbox_seq",
    "peer_material",
    "push_states",
    "sync_peers",
    "trust_refusals",
]


_UNDEFINED_TABLE = "42P01"


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows of ``sql``, or none if the table does not exist (yet)."""
    try:
        return list(conn.execute(sql, params).fetchall())
    except sqlite3.OperationalError:  # SQLite: "no such table"
        return []
    except sqlite3.DatabaseError as exc:
        # PostgreSQL (the store's adapter keeps the SQLSTATE): 42P01 undefined_table;
        # the read-only status connection is in autocommit, so nothing is left aborted
        if getattr(exc, "sqlstate", None) == _UNDEFINED_TABLE:
            return []
        raise


def newest_trust_list(conn: sqlite3.Connection) -> list[Any]:
    """[(issuer, version, expires_at, accepted_at, source, envelope)] of the newest
    accepted trust list, or []."""
    return _rows(
        conn,
        "SELECT issuer, version, expires_at, accepted_at, source, envelope FROM trust_lists"
        " ORDER BY version DESC LIMIT 1",
    )


def trust_refusals(conn: sqlite3.Connection) -> list[Any]:
    """(at, source, version, reason) of the last five refused trust lists, newest first."""
    return _rows(
        conn,
        "SELECT at, source, version, reason FROM trust_refusals ORDER BY id DESC LIMIT 5",
    )


def sync_peers(conn: sqlite3.Connection) -> list[Any]:
    """(peer, last_attempt, last_success, failures, next_attempt, last_error) per peer."""
    return _rows(
        conn,
        "SELECT peer, last_attempt, last_success, failures, next_attempt, last_error"
        " FROM sync_peers",
    )


def peer_material(conn: sqlite3.Connection) -> list[Any]:
    """(region, item, version) of the peer material held."""
    return _rows(conn, "SELECT region, item, version FROM peer_material")


def outbox_seq(conn: sqlite3.Connection) -> list[Any]:
    """[(the outbox's highest seq, 0 when empty)], or [] without an outbox table."""
    return _rows(conn, "SELECT COALESCE(MAX(seq), 0) FROM outbox")


def push_states(conn: sqlite3.Connection) -> list[Any]:
    """(hub, cursor, last_push_at, last_error, failures) per hub pushed to."""
    return _rows(conn, "SELECT hub, cursor, last_push_at, last_error, failures FROM push_state")


def hub_cursors(conn: sqlite3.Connection) -> list[Any]:
    """(region, cursor, last_push_at, witnessed_size) per region, on a hub."""
    return _rows(
        conn,
        "SELECT region, cursor, last_push_at, witnessed_size FROM hub_cursors ORDER BY region",
    )
