"""Read-only storage reads of the catalogue commands (SQL stays in this module).

``huxin catalogue fetch`` may run while the node serves: it opens the node's
database read-only (``mode=ro``), never writes, and treats a missing database
as holding nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["persisted_trust_lists"]


def persisted_trust_lists(database: Path, hub: str) -> list[bytes]:
    """The newest trust-list envelope the node persisted from ``hub`` (``[]``: none)."""
    if not database.exists():
        return []
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT envelope FROM trust_lists WHERE issuer = ? ORDER BY version DESC LIMIT 1",
            (hub,),
        ).fetchone()
    except sqlite3.OperationalError:  # a database older than the federation tables
        return []
    finally:
        conn.close()
    return [] if row is None else [bytes(row[0])]
