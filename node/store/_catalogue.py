"""Read-only reads of the catalogue commands: trust lists and peer material as stored.

``huxin catalogue fetch`` may run while the node serves: these functions open
the node's database read-only (``mode=ro``; on PostgreSQL a read-only session),
never write, and treat a missing SQLite file, or one older than the tables they
read, as holding nothing.  The database is a storage target (:mod:`._backend`).  What is
stored was verified by the writer (the peer sync); decoding it is the caller's.
"""

from __future__ import annotations

import sqlite3

from node.store._backend import Target, resolve
from node.store._migrate import connect

__all__ = ["newest_trust_list", "peer_material"]


def _open(database: Target) -> sqlite3.Connection | None:
    """A read-only connection, or None for a SQLite file that does not exist."""
    backend = resolve(database)
    if backend.path is None:
        return connect(database, readonly=True)
    if not backend.path.exists():
        return None
    return sqlite3.connect(f"file:{backend.path}?mode=ro", uri=True)


def newest_trust_list(database: Target, hub: str) -> bytes | None:
    """The newest trust-list envelope stored from ``hub``, or None."""
    conn = _open(database)
    if conn is None:
        return None
    try:
        row = conn.execute(
            "SELECT envelope FROM trust_lists WHERE issuer = ? ORDER BY version DESC LIMIT 1",
            (hub,),
        ).fetchone()
    except sqlite3.OperationalError:  # a database older than the federation tables
        return None
    finally:
        conn.close()
    return None if row is None else bytes(row[0])


def peer_material(database: Target, item: str, limit: int) -> list[bytes] | None:
    """Bodies of the newest ``limit`` peer-material rows of kind ``item``, newest first;
    None when the database is missing or older than the sync tables."""
    conn = _open(database)
    if conn is None:
        return None
    try:
        rows = conn.execute(
            "SELECT body FROM peer_material WHERE item = ? ORDER BY fetched_at DESC LIMIT ?",
            (item, limit),
        ).fetchall()
    except sqlite3.OperationalError:  # a database older than the sync tables
        return None
    finally:
        conn.close()
    return [bytes(body) for (body,) in rows]
