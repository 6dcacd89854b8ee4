"""Read-only storage reads of the catalogue commands (SQL stays in this module).

``huxin catalogue fetch`` may run while the node serves: it opens the node's
database read-only (``mode=ro``), never writes, and treats a missing database
as holding nothing.  Peers' catalogues are stored by the peer sync
(:mod:`node.catalogue._peers`), verified before they are written; they are read
here as stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from google.protobuf.message import DecodeError

from keys import Envelope, KeysError
from node.catalogue._peers import ITEM
from node.pb.v1 import catalogue_pb2

__all__ = ["held_catalogue", "persisted_trust_lists"]

#: At most this many peer catalogues are read (one per region of the trust list).
MAX_HELD_CATALOGUES = 256


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


def held_catalogue(database: Path, scheme_id: str) -> catalogue_pb2.Catalogue | None:
    """The newest peer catalogue the sync stored for ``scheme_id`` (None: none held).

    Rows are verified when stored; a row that does not decode is skipped."""
    if not database.exists():
        return None
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT body FROM peer_material WHERE item = ? ORDER BY fetched_at DESC LIMIT ?",
            (ITEM, MAX_HELD_CATALOGUES),
        ).fetchall()
    except sqlite3.OperationalError:  # a database older than the sync tables
        return None
    finally:
        conn.close()
    for (body,) in rows:
        try:
            cat = catalogue_pb2.Catalogue.FromString(Envelope.from_bytes(bytes(body)).payload)
        except (KeysError, DecodeError):
            continue
        if cat.scheme_id == scheme_id:
            return cat
    return None
