"""Read-only reads of the catalogue commands: trust lists and peer material as stored.

``huxin catalogue fetch`` may run while the node serves: these functions open
the node's database read-only (``mode=ro``), never write, and treat a missing
database, or one older than the tables they read, as holding nothing.  What is
stored was verified by the writer (the peer sync); decoding it is the caller's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["newest_trust_list", "peer_material"]


def newest_trust_list(database: Path, hub: str) -> bytes | None:
    """The newest trust-list envelope stored from ``hub``, or None."""
    if not database.exists():
        return None
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
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


def peer_material(database: Path, item: str, limit: int) -> list[bytes] | None:
    """Bodies of the newest ``limit`` peer-material rows of kind ``item``, newest first;
    None when the database is missing or older than the sync tables."""
    if not database.exists():
        return None
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
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
