"""The SQL of bounded refusal logging (ADR 0319): the ``refusal_marks`` table.

One row per refusal key ``(consent id, requester, reason)``: when the key's last
log leaf was appended and how many refusals of the key got no leaf since.
Every function runs inside the refusing write unit and never commits; which
refusal gets a leaf is decided by :mod:`node.exchange._refusals`.

Invariant: a mark is created with the key's first leaf (``unlogged`` 0); a
later leaf resets ``unlogged`` to 0; a refusal without a leaf adds 1.
"""

from __future__ import annotations

import sqlite3

__all__ = ["RefusalKey", "count_unlogged", "insert_mark", "mark_of", "set_logged"]

#: (consent id, requester, reason)
RefusalKey = tuple[str, str, str]

_MARK = (
    "SELECT logged_at, unlogged FROM refusal_marks "
    "WHERE consent_id = ? AND requester = ? AND reason = ?"
)
_NEW = (
    "INSERT INTO refusal_marks (consent_id, requester, reason, logged_at, unlogged) "
    "VALUES (?, ?, ?, ?, 0)"
)
_LOGGED = (
    "UPDATE refusal_marks SET logged_at = ?, unlogged = 0 "
    "WHERE consent_id = ? AND requester = ? AND reason = ?"
)
_SKIPPED = (
    "UPDATE refusal_marks SET unlogged = unlogged + 1 "
    "WHERE consent_id = ? AND requester = ? AND reason = ?"
)


def mark_of(conn: sqlite3.Connection, key: RefusalKey) -> tuple[int, int] | None:
    """(logged_at, unlogged) of the key's mark, or None for its first refusal."""
    mark = conn.execute(_MARK, key).fetchone()
    return None if mark is None else (int(mark[0]), int(mark[1]))


def insert_mark(conn: sqlite3.Connection, key: RefusalKey, logged_at: int) -> None:
    """The key's first refusal got a leaf at ``logged_at``."""
    conn.execute(_NEW, (*key, logged_at))


def set_logged(conn: sqlite3.Connection, key: RefusalKey, logged_at: int) -> None:
    """A later refusal of the key got a leaf at ``logged_at`` (counting the unlogged ones)."""
    conn.execute(_LOGGED, (logged_at, *key))


def count_unlogged(conn: sqlite3.Connection, key: RefusalKey) -> None:
    """A refusal of the key got no leaf: count it for the key's next leaf."""
    conn.execute(_SKIPPED, key)
