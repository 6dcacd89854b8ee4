"""Storage of what a node fetched from its peers (``peer_material``) and of each peer's
sync attempts (``sync_peers``).

:mod:`node.federation._sync` decides which version is newer; this module only writes
and reads rows, inside the caller's unit of work.

Invariants:

* ``peer_material`` holds per (region, item) the newest version fetched, replaced whole;
* ``sync_peers`` holds one row per peer; ``last_success`` moves only on a success.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "material_version",
    "replace_material",
    "sync_attempt",
    "synced_peers",
]


def material_version(conn: sqlite3.Connection, region: str, item: str) -> Any:
    """(version, sha256) of the held ``item`` of ``region``, or None."""
    return conn.execute(
        "SELECT version, sha256 FROM peer_material WHERE region = ? AND item = ?", (region, item)
    ).fetchone()


def replace_material(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, region: str, item: str, version: str, sha256: bytes, body: bytes,
    fetched_at: int, source: str,
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO peer_material"
        " (region, item, version, sha256, body, fetched_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (region, item) DO UPDATE SET version = excluded.version,"
        " sha256 = excluded.sha256, body = excluded.body, fetched_at = excluded.fetched_at,"
        " source = excluded.source",
        (region, item, version, sha256, body, fetched_at, source),
    )


def sync_attempt(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """One attempt to sync a peer: (peer, last_attempt, last_success, failures,
    next_attempt, last_error, updated); ``last_success`` is kept unless ``failures``
    is 0."""
    conn.execute(
        "INSERT INTO sync_peers (peer, last_attempt, last_success, failures,"
        " next_attempt, last_error, updated) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (peer) DO UPDATE SET last_attempt = excluded.last_attempt,"
        " last_success = CASE WHEN excluded.failures = 0 THEN excluded.last_attempt"
        " ELSE sync_peers.last_success END, failures = excluded.failures,"
        " next_attempt = excluded.next_attempt, last_error = excluded.last_error,"
        " updated = excluded.updated",
        row,
    )


def synced_peers(conn: sqlite3.Connection) -> set[str]:
    """The peers whose last sync attempt succeeded (``failures = 0``)."""
    return {r[0] for r in conn.execute("SELECT peer FROM sync_peers WHERE failures = 0")}
