"""The region's signed status list, rendered from ``status_entries``.

Invariants: the list is built with ``keys.StatusList`` (2 bits per entry, at
least 131,072 entries so a fetch reveals nothing about which attestation is
checked) and signed by the node's signing key; it expires after
:data:`STATUS_TTL_SECONDS`, so verifiers re-fetch; withdrawal, repair and
revocation change rows in the same transaction as the event, so the next
rendering reflects them at once; an attestation issued in an earlier month
than the current one shows as superseded (the new month's grade replaces it).
Two renderings with different contents never carry the same ``issued_at``
(peers keep the highest version and call a second, different list of the same
version an equivocation), and a rendering is never dated before an earlier
one (peers would call it a rollback): a changed list issued within the second
of the previous one is dated one second later.  The last ``(issued_at,
digest)`` is kept in ``node_meta`` and the contents are read and dated in ONE
write transaction, so this holds across the processes serving one database
(peer-port workers, docs/adr/0312; replicas, docs/adr/0702) and across restarts.
Indexes are allocated by :func:`allocate_status_entry`, densely, by the database
inside the writing transaction.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keys import MIN_ENTRIES, Envelope, KeyPair, Status, StatusList
from node.store._dense import lock_dense_indexes, on_postgresql
from node.store._lease import lock_key

if TYPE_CHECKING:
    from node.store._db import Database

__all__ = [
    "STATUS_LIST_ID",
    "STATUS_TTL_SECONDS",
    "allocate_status_entry",
    "next_issue_time",
    "render_status_list",
]

STATUS_LIST_ID = "attestations-1"
STATUS_TTL_SECONDS = 3600


_LAST_ISSUE_KEY = "status_list.last_issue"  # node_meta: "<issued_at>:<digest hex>"

_RENDER_LOCK = lock_key("huxin/status-list-issue")
_ALLOCATE_SQLITE = (  # idx is the rowid: SQLite takes max + 1 under its one writer
    "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, status, "
    "issued_at, expires_at) VALUES (NULL, ?, ?, ?, 0, ?, ?)"
)
_ALLOCATE_PG = (  # under the dense-index lock (docs/adr/0702)
    "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, status, "
    "issued_at, expires_at) VALUES ((SELECT coalesce(max(idx) + 1, 0) FROM status_entries), "
    "?, ?, ?, 0, ?, ?) RETURNING idx"
)


def allocate_status_entry(
    conn: sqlite3.Connection,
    attestation_id: str,
    *,
    subject_key: bytes,
    consent_id: str,
    issued_at: int,
    expires_at: int,
) -> int:
    """Inside a write unit: the next status-list index (dense, from 0), stored VALID
    for ``attestation_id``.  The database allocates it in the writing transaction: on
    SQLite the rowid under the one writer; on PostgreSQL ``max(idx) + 1`` under the
    dense-index lock held to COMMIT, so replicas never hand out one index twice and
    a rolled-back request leaves no hole (docs/adr/0702)."""
    params = (attestation_id, subject_key, consent_id, issued_at, expires_at)
    if on_postgresql(conn):
        lock_dense_indexes(conn)
        return int(conn.execute(_ALLOCATE_PG, params).fetchone()[0])
    return int(conn.execute(_ALLOCATE_SQLITE, params).lastrowid or 0)


def next_issue_time(last: tuple[int, bytes] | None, now: int, digest: bytes) -> int:
    """``now``, unless that would date a changed list like (or before) the last one."""
    if last is not None and now <= last[0]:
        return last[0] if digest == last[1] else last[0] + 1
    return now


def _last_issue(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
    row = conn.execute("SELECT value FROM node_meta WHERE key = ?", (_LAST_ISSUE_KEY,)).fetchone()
    if row is None:
        return None
    at, _, digest = str(row[0]).partition(":")
    try:
        return int(at), bytes.fromhex(digest)
    except ValueError:  # unreadable: date the next list strictly later than anything
        return None


def month_start(now: datetime) -> int:
    """Unix seconds of the first instant of ``now``'s UTC month."""
    utc = now.astimezone(UTC)
    return int(datetime(utc.year, utc.month, 1, tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class _Rendering:
    size: int
    entries: list[tuple[int, int]]
    superseded: list[int]
    issued: int


def _render(conn: sqlite3.Connection, month: int, now: int) -> _Rendering:
    """Inside one write transaction: the contents, then their issue time (stored).

    On PostgreSQL the transaction first takes the list's own lock (held to COMMIT):
    two replicas rendering at once read and date their contents one after the other,
    as the one SQLite writer makes them do (docs/adr/0702)."""
    if on_postgresql(conn):
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_RENDER_LOCK,))
    entries = [
        (int(a), int(b))
        for a, b in conn.execute(
            "SELECT idx, status FROM status_entries WHERE status != 0 ORDER BY idx"
        )
    ]
    used = int(conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM status_entries").fetchone()[0])
    size = max(MIN_ENTRIES, -(-used // MIN_ENTRIES) * MIN_ENTRIES)
    superseded = [
        int(i)
        for (i,) in conn.execute(
            "SELECT idx FROM status_entries WHERE status = 0 AND issued_at < ? ORDER BY idx",
            (month,),
        )
    ]
    digest = hashlib.sha256(repr((size, entries, superseded)).encode()).digest()
    last = _last_issue(conn)
    issued = next_issue_time(last, now, digest)
    if last != (issued, digest):
        conn.execute(
            "INSERT INTO node_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_LAST_ISSUE_KEY, f"{issued}:{digest.hex()}"),
        )
    return _Rendering(size, entries, superseded, issued)


async def render_status_list(db: Database, region: str, signing: KeyPair, at: datetime) -> Envelope:
    """Stored states, plus: a valid attestation issued before this month is
    superseded (a new month's grade replaces it)."""
    month, now = month_start(at), int(at.timestamp())
    r = await db.write_unit(lambda conn: _render(conn, month, now))
    sl = StatusList(region, STATUS_LIST_ID, r.size)
    for idx, status in r.entries:
        sl.set(idx, Status(status))
    for idx in r.superseded:
        sl.set(idx, Status.SUPERSEDED)
    return sl.sign(signing, r.issued, r.issued + STATUS_TTL_SECONDS)
