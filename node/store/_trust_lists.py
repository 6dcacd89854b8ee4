"""Storage of the trust lists a node accepted and refused (``trust_lists``, ``trust_refusals``).

:mod:`node.federation._trust` verifies a list and decides whether it is newer; this
module only writes and reads rows.  ``conn`` functions run inside the caller's unit of
work; ``db`` functions read on the database's reader (:class:`node.store._db.Database`).

Invariants:

* ``trust_lists`` holds every accepted list once per (issuer, version); the highest
  version is the one a node, and each of its peer-port workers, loads;
* every refused list leaves a ``trust_refusals`` row.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "accept_trust_list",
    "newest_trust_envelope",
    "newest_trust_list",
    "refuse_trust_list",
]


def refuse_trust_list(
    conn: sqlite3.Connection, at: int, source: str, version: int, reason: str
) -> None:
    conn.execute(
        "INSERT INTO trust_refusals (at, source, version, reason) VALUES (?, ?, ?, ?)",
        (at, source, version, reason),
    )


def accept_trust_list(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, issuer: str, version: int, expires_at: int, envelope: bytes,
    sha256: bytes, accepted_at: int, source: str,
) -> None:  # fmt: skip
    """Persist an accepted list; a list already held under (issuer, version) is kept."""
    conn.execute(
        "INSERT INTO trust_lists"
        " (issuer, version, expires_at, envelope, sha256, accepted_at, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issuer, version) DO NOTHING",
        (issuer, version, expires_at, envelope, sha256, accepted_at, source),
    )


async def newest_trust_envelope(db: Any, hub: str) -> Any:
    """(envelope,) of the highest persisted list (of issuer ``hub`` when given), or None."""
    return (
        await db.fetchone(
            "SELECT envelope FROM trust_lists WHERE issuer = ? ORDER BY version DESC LIMIT 1",
            (hub,),
        )
        if hub
        else await db.fetchone("SELECT envelope FROM trust_lists ORDER BY version DESC LIMIT 1")
    )


async def newest_trust_list(db: Any, hub: str) -> Any:
    """(envelope, version) of the highest persisted list (of issuer ``hub`` when given),
    or None."""
    return await db.fetchone(
        "SELECT envelope, version FROM trust_lists"
        + (" WHERE issuer = ?" if hub else "")
        + " ORDER BY version DESC LIMIT 1",
        (hub,) if hub else (),
    )
