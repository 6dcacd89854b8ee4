"""Storage of the hub: its region registry, trust lists, cursors, events and pushed data.

Every function takes a ``sqlite3`` connection inside the caller's unit of work
(:meth:`node.store._db.Database.write_unit` or ``read_unit``); :mod:`node.hub` keeps
the rules (who may register, what is a duplicate, what is stale).  Nothing here
verifies a signature.

Invariants:

* ``hub_regions`` holds one row per registered region; registering a region also
  gives it a ``hub_cursors`` row (cursor 0), so every registered region has one;
* ``hub_trust_lists`` versions only grow; the newest row is the trust list served;
* per region, ``hub_events`` holds one row per applied ``seq`` (1, 2, 3 … up to the
  cursor) with its signed receipt; an event's rows, its ``hub_events`` row and the
  cursor advance are written in the caller's ONE unit;
* ``hub_batches`` holds one row per pushed snapshot batch; redaction rewrites the
  row in place (``present`` counts the leaves still held);
* ``hub_status_lists`` keeps per (region, list id) the newest list by ``issued_at``;
* on PostgreSQL (issue 18) every leaf still held also has a ``hub_leaf_keys`` row
  (batch, index, province pseudonym), written with the batch by ONE binary COPY and
  deleted with its redaction, so a lookup by pseudonym is an index scan instead of a
  scan of every batch's pseudonym blob (which SQLite keeps: ADR 0401).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from node.store._pg_bulk import copy_rows, pg_of

__all__ = [
    "add_trust_list",
    "append_event",
    "batch_blob",
    "batches_with_leaves",
    "cursor_of",
    "cursor_row",
    "event_at",
    "event_seq",
    "event_table",
    "insert_batch",
    "latest_trust_list",
    "move_cursor",
    "receipt_at",
    "receipts_from",
    "record_evidence",
    "record_witnessed",
    "region_keys",
    "region_rows",
    "region_with_leaves",
    "rewrite_batch",
    "status_issued_at",
    "trust_list_hash",
    "upsert_region",
    "upsert_status_list",
    "witnessed_row",
]


# -- registry and trust lists ------------------------------------------------------------


def region_keys(conn: sqlite3.Connection, region: str) -> tuple[bytes, bytes] | None:
    """(root_public_key, key_set) of a registered region, or None."""
    row = conn.execute(
        "SELECT root_public_key, key_set FROM hub_regions WHERE region = ?", (region,)
    ).fetchone()
    return None if row is None else (bytes(row[0]), bytes(row[1]))


def upsert_region(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection,
    region: str,
    name: str,
    root_public_key: bytes,
    key_set: bytes,
    schemes: str,
    endpoints: str,
    tls_sha256: bytes,
    domestic: bool,
    now: int,
) -> None:
    """Add the region, or update all but its root key and registration time; its cursor
    row is created when missing."""
    conn.execute(
        "INSERT INTO hub_regions (region, name, root_public_key, key_set, schemes, endpoints,"
        " tls_sha256, domestic, registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (region) DO UPDATE SET name = excluded.name, key_set = excluded.key_set,"
        " schemes = excluded.schemes, endpoints = excluded.endpoints,"
        " tls_sha256 = excluded.tls_sha256, domestic = excluded.domestic,"
        " updated_at = excluded.updated_at",
        (region, name, root_public_key, key_set, schemes, endpoints,
         tls_sha256, int(domestic), now, now),
    )  # fmt: skip
    conn.execute("INSERT INTO hub_cursors (region) VALUES (?) ON CONFLICT DO NOTHING", (region,))


def region_rows(conn: sqlite3.Connection) -> list[Any]:
    """(region, name, root_public_key, key_set, schemes, endpoints, tls_sha256, domestic)
    of every registered region, by region id."""
    return conn.execute(
        "SELECT region, name, root_public_key, key_set, schemes, endpoints, tls_sha256, domestic"
        " FROM hub_regions ORDER BY region"
    ).fetchall()


def latest_trust_list(conn: sqlite3.Connection) -> tuple[int, bytes, int, int] | None:
    """(version, envelope, issued_at, expires_at) of the newest trust list, or None."""
    row = conn.execute(
        "SELECT version, envelope, issued_at, expires_at FROM hub_trust_lists"
        " ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]), row[2], row[3])


def trust_list_hash(conn: sqlite3.Connection, version: int) -> bytes:
    """The registry hash stored with trust list ``version`` (which exists)."""
    (stored_hash,) = conn.execute(
        "SELECT registry_sha256 FROM hub_trust_lists WHERE version = ?", (version,)
    ).fetchone()
    return bytes(stored_hash)


def add_trust_list(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, version: int, envelope: bytes, issued_at: int, expires_at: int,
    registry_sha256: bytes,
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO hub_trust_lists (version, envelope, issued_at, expires_at, registry_sha256)"
        " VALUES (?, ?, ?, ?, ?)",
        (version, envelope, issued_at, expires_at, registry_sha256),
    )


# -- cursors, events and receipts ------------------------------------------------------


def cursor_row(conn: sqlite3.Connection, region: str) -> Any:
    """(cursor, witnessed_size, witnessed_root) of the region, or None."""
    return conn.execute(
        "SELECT cursor, witnessed_size, witnessed_root FROM hub_cursors WHERE region = ?",
        (region,),
    ).fetchone()


def cursor_of(conn: sqlite3.Connection, region: str) -> int:
    """The region's cursor (the highest seq stored); the region is registered."""
    (cursor,) = conn.execute(
        "SELECT cursor FROM hub_cursors WHERE region = ?", (region,)
    ).fetchone()
    return int(cursor)


def receipt_at(conn: sqlite3.Connection, region: str, seq: int) -> bytes | None:
    """The receipt of the region's event ``seq``, or None."""
    last = conn.execute(
        "SELECT receipt FROM hub_events WHERE region = ? AND seq = ?", (region, seq)
    ).fetchone()
    return None if last is None else bytes(last[0])


def event_at(conn: sqlite3.Connection, region: str, seq: int) -> Any:
    """(event_id, content_sha256, receipt) of the region's event ``seq``, or None."""
    return conn.execute(
        "SELECT event_id, content_sha256, receipt FROM hub_events WHERE region = ? AND seq = ?",
        (region, seq),
    ).fetchone()


def event_seq(conn: sqlite3.Connection, region: str, event_id: str) -> int | None:
    """The seq the region's event ``event_id`` was stored under, or None."""
    row = conn.execute(
        "SELECT seq FROM hub_events WHERE region = ? AND event_id = ?", (region, event_id)
    ).fetchone()
    return None if row is None else int(row[0])


def receipts_from(conn: sqlite3.Connection, region: str, from_seq: int, limit: int) -> list[bytes]:
    """Up to ``limit`` receipts of the region from ``from_seq`` on, in seq order."""
    rows = conn.execute(
        "SELECT receipt FROM hub_events WHERE region = ? AND seq >= ? ORDER BY seq LIMIT ?",
        (region, from_seq, limit),
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def append_event(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, region: str, seq: int, event_id: str, kind: str, content: bytes,
    leaves: int, receipt: bytes, now: int,
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO hub_events (region, seq, event_id, kind, content_sha256, leaves,"
        " receipt, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (region, seq, event_id, kind, content, leaves, receipt, now),
    )


def move_cursor(conn: sqlite3.Connection, region: str, seq: int, now: int) -> None:
    conn.execute(
        "UPDATE hub_cursors SET cursor = ?, last_push_at = ? WHERE region = ?",
        (seq, now, region),
    )


# -- witnessing -------------------------------------------------------------------------


def witnessed_row(conn: sqlite3.Connection, region: str) -> Any:
    """(witnessed_size, witnessed_root, witnessed_checkpoint) of the region, or None."""
    return conn.execute(
        "SELECT witnessed_size, witnessed_root, witnessed_checkpoint FROM hub_cursors"
        " WHERE region = ?",
        (region,),
    ).fetchone()


def record_evidence(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection, region: str, reason: str, previous: bytes | None, presented: bytes,
    proof: bytes, now: int,
) -> int:  # fmt: skip
    """A split view or rollback of the region's log; the evidence row's id."""
    (evidence_id,) = conn.execute(
        "INSERT INTO hub_witness_evidence (region, reason, previous, presented, proof,"
        " detected_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (region, reason, previous, presented, proof, now),
    ).fetchone()
    return int(evidence_id)


def record_witnessed(
    conn: sqlite3.Connection, region: str, size: int, root: bytes, cosigned: bytes
) -> None:
    """The region's newest co-signed log checkpoint."""
    conn.execute(
        "INSERT INTO hub_cursors (region, witnessed_size, witnessed_root, witnessed_checkpoint)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (region) DO UPDATE SET"
        " witnessed_size = excluded.witnessed_size, witnessed_root = excluded.witnessed_root,"
        " witnessed_checkpoint = excluded.witnessed_checkpoint",
        (region, size, root, cosigned),
    )


# -- pushed data -----------------------------------------------------------------------


_PSEUDONYM = 32  # bytes of a province pseudonym in a batch's concatenated blob
_GONE = bytes(_PSEUDONYM)  # a redacted leaf's pseudonym
_INSERT_BATCH = (
    "INSERT INTO hub_batches (region, batch_id, period, scheme_id, scheme_version,"
    " payload_type, leaves, present, root_hash, checkpoint, pseudonyms, batch,"
    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _leaf_keys(bid: int, pseudonyms: bytes, period: str) -> Iterator[tuple[int, int, bytes, str]]:
    for idx in range(len(pseudonyms) // _PSEUDONYM):
        name = pseudonyms[idx * _PSEUDONYM : (idx + 1) * _PSEUDONYM]
        if name != _GONE:
            yield bid, idx, name, period


def insert_batch(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """One pushed batch: (region, batch_id, period, scheme_id, scheme_version,
    payload_type, leaves, present, root_hash, checkpoint, pseudonyms, batch,
    received_at); on PostgreSQL with its leaves' pseudonyms in one COPY."""
    raw = pg_of(conn)
    if raw is None:
        conn.execute(_INSERT_BATCH, row)
        return
    (bid,) = conn.execute(_INSERT_BATCH + " RETURNING id", row).fetchone()
    copy_rows(
        raw,
        "hub_leaf_keys",
        ("batch", "idx", "pseudonym", "period"),
        _leaf_keys(bid, row[10], row[2]),
    )


def region_with_leaves(
    conn: sqlite3.Connection, region: str, pseudonym: bytes | None = None
) -> list[Any]:
    """(id, pseudonyms) of the region's batches that still hold a leaf; on PostgreSQL,
    given ``pseudonym``, only those holding a leaf of it (found by its index)."""
    if pseudonym is not None and pg_of(conn) is not None:
        return conn.execute(
            "SELECT id, pseudonyms FROM hub_batches WHERE region = ? AND present > 0"
            " AND id IN (SELECT batch FROM hub_leaf_keys WHERE pseudonym = ?)",
            (region, pseudonym),
        ).fetchall()
    return conn.execute(
        "SELECT id, pseudonyms FROM hub_batches WHERE region = ? AND present > 0", (region,)
    ).fetchall()


def batches_with_leaves(conn: sqlite3.Connection) -> list[Any]:
    """(id, region, batch_id, pseudonyms) of every batch that still holds a leaf."""
    return conn.execute(
        "SELECT id, region, batch_id, pseudonyms FROM hub_batches WHERE present > 0"
    ).fetchall()


def batch_blob(conn: sqlite3.Connection, bid: int) -> bytes:
    """The stored serialised batch of row ``bid`` (which exists)."""
    (raw,) = conn.execute("SELECT batch FROM hub_batches WHERE id = ?", (bid,)).fetchone()
    return bytes(raw)


def rewrite_batch(
    conn: sqlite3.Connection, bid: int, batch: bytes, pseudonyms: bytes, removed: int
) -> None:
    """The batch row after ``removed`` leaves were redacted in place (on PostgreSQL,
    their ``hub_leaf_keys`` rows deleted with it)."""
    conn.execute(
        "UPDATE hub_batches SET batch = ?, pseudonyms = ?, present = present - ? WHERE id = ?",
        (batch, pseudonyms, removed, bid),
    )
    if pg_of(conn) is not None:
        conn.execute(
            "DELETE FROM hub_leaf_keys WHERE batch = ?"
            " AND substring(? FROM (idx * 32 + 1)::integer FOR 32) = ?",
            (bid, pseudonyms, _GONE),
        )


def status_issued_at(conn: sqlite3.Connection, region: str, list_id: str) -> int | None:
    """``issued_at`` of the stored status list, or None."""
    row = conn.execute(
        "SELECT issued_at FROM hub_status_lists WHERE region = ? AND list_id = ?",
        (region, list_id),
    ).fetchone()
    return None if row is None else int(row[0])


def upsert_status_list(
    conn: sqlite3.Connection, region: str, list_id: str, issued_at: int, envelope: bytes
) -> None:
    """Store the list unless the stored one under its id was issued later."""
    conn.execute(
        "INSERT INTO hub_status_lists (region, list_id, issued_at, envelope)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (region, list_id) DO UPDATE SET"
        " issued_at = excluded.issued_at, envelope = excluded.envelope"
        " WHERE excluded.issued_at >= hub_status_lists.issued_at",
        (region, list_id, issued_at, envelope),
    )


def event_table(conn: sqlite3.Connection) -> list[Any]:
    """(region, seq, kind, leaves) of every applied event, by region and seq (the demo's
    view of what the hub holds)."""
    return conn.execute(
        "SELECT region, seq, kind, leaves FROM hub_events ORDER BY region, seq"
    ).fetchall()
