"""The region's outbox: an append-only, gap-free sequence of events pushed to the hub.

Events (``kind``) and their ``payload`` bytes (messages of ``hub.proto``):

* ``snapshot_batch`` — a signed Merkle batch of a monthly run (H3); payload =
  the serialised checkpoint ``Envelope``; the leaves live in
  ``snapshot_leaves`` (see :mod:`node.monthly._snapshots`); ``event_id`` = batch id;
* ``status_list`` — payload = a serialised signed ``StatusList`` ``Envelope``;
* ``deregistration`` — payload = a serialised ``Deregistration`` (province
  pseudonym, time); the hub deletes what it holds for that pseudonym (H2).

Invariants:

* ``seq`` is 1, 2, 3, … without gaps, assigned at COMMIT order of the writer
  (SQLite AUTOINCREMENT inside the caller's transaction); rows are never
  updated or deleted (database triggers refuse it);
* appending is a plain INSERT inside the CALLER's unit of work, so the event
  commits or rolls back together with the change it reports;
* appending the same ``event_id`` again with the same kind and payload is a
  no-op returning the existing ``seq``; with different content it raises
  ``EVENT_CONFLICT``;
* no payload holds an ID number; a deregistration holds only the province
  pseudonym, computed here from the sealed ID inside the caller's unit.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from keys import KeysError, Sealer, SealError, province_pseudonym
from node.core._errors import CodedNodeError
from node.pb.v1 import hub_pb2
from node.store._db import Database
from node.store._dense import lock_dense_indexes, on_postgresql

__all__ = [
    "KINDS",
    "Outbox",
    "OutboxError",
    "OutboxEvent",
    "append_sync",
    "deregistration_payload",
    "event_at_sync",
    "last_seq_sync",
    "last_status_list_sync",
    "read_after_sync",
]

KINDS = ("snapshot_batch", "status_list", "deregistration")


class OutboxError(CodedNodeError):
    """An event that cannot be appended; ``code`` is stable."""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    seq: int
    kind: str
    event_id: str
    payload: bytes
    created_at: int


def _check(kind: str, event_id: str, payload: bytes) -> None:
    if kind not in KINDS:
        raise OutboxError("UNKNOWN_EVENT_KIND", f"kind {kind!r} is not one of {KINDS}")
    if not event_id or len(event_id) > 200:
        raise OutboxError("INVALID_EVENT_ID", "event_id must be 1-200 characters")
    if not isinstance(payload, bytes | bytearray):
        raise OutboxError("INVALID_PAYLOAD", "payload must be bytes")


def append_sync(
    conn: sqlite3.Connection, kind: str, event_id: str, payload: bytes, created_at: int
) -> int:
    """Append one event inside the caller's open transaction; returns its ``seq``.

    On PostgreSQL ``seq`` is ``max + 1`` under the dense-index lock held to COMMIT
    (taken before the ``event_id`` check, so a replica appending the same event
    waits and finds it): seqs stay 1, 2, 3, … in commit order across replicas, so
    the push, which sends ``seq > cursor``, never passes an event a slower replica
    commits later (docs/adr/0702)."""
    _check(kind, event_id, payload)
    pg = on_postgresql(conn)
    if pg:
        lock_dense_indexes(conn)
    row = conn.execute(
        "SELECT seq, kind, payload FROM outbox WHERE event_id = ?", (event_id,)
    ).fetchone()
    if row is not None:
        if row[1] != kind or bytes(row[2]) != bytes(payload):
            raise OutboxError("EVENT_CONFLICT", f"event {event_id!r} exists with other content")
        return int(row[0])
    if pg:
        return int(
            conn.execute(
                "INSERT INTO outbox (seq, kind, event_id, payload, created_at) VALUES ("
                "(SELECT coalesce(max(seq), 0) + 1 FROM outbox), ?, ?, ?, ?) RETURNING seq",
                (kind, event_id, bytes(payload), int(created_at)),
            ).fetchone()[0]
        )
    cur = conn.execute(
        "INSERT INTO outbox (kind, event_id, payload, created_at) VALUES (?, ?, ?, ?)",
        (kind, event_id, bytes(payload), int(created_at)),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def read_after_sync(conn: sqlite3.Connection, after: int, limit: int) -> list[OutboxEvent]:
    """Events with ``seq > after`` in order, at most ``limit``."""
    rows = conn.execute(
        "SELECT seq, kind, event_id, payload, created_at FROM outbox WHERE seq > ?"
        " ORDER BY seq LIMIT ?",
        (after, limit),
    ).fetchall()
    return [OutboxEvent(int(s), k, e, bytes(p), int(c)) for s, k, e, p, c in rows]


def event_at_sync(conn: sqlite3.Connection, seq: int) -> Any:
    """(event_id, kind, payload) of event ``seq``, or None."""
    return conn.execute(
        "SELECT event_id, kind, payload FROM outbox WHERE seq = ?", (seq,)
    ).fetchone()


def last_status_list_sync(conn: sqlite3.Connection) -> bytes | None:
    """The payload of the newest ``status_list`` event, or None (a list whose content did
    not change is not queued again)."""
    last = conn.execute(
        "SELECT payload FROM outbox WHERE kind = 'status_list' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return None if last is None else bytes(last[0])


def last_seq_sync(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
    return int(n)


def deregistration_payload(pseudonym: bytes, at: int) -> bytes:
    if len(pseudonym) != 32:
        raise OutboxError("INVALID_PAYLOAD", "province pseudonym must be 32 bytes")
    return hub_pb2.Deregistration(
        province_pseudonym=pseudonym, deregistered_at=at
    ).SerializeToString(deterministic=True)


def _event_id_for(pseudonym: bytes, at: int) -> str:
    return f"dereg/{hashlib.sha256(b'huxin-dereg' + pseudonym).hexdigest()[:32]}/{at}"


class Outbox:
    """The node's outbox (collaborator in :class:`~node.rpc._context.NodeContext`).

    ``province_key`` is None on a node without a hub: then deregistrations are
    not queued (nothing was pushed under a province pseudonym) but local
    snapshot leaves are still deleted.
    """

    def __init__(self, db: Database, sealer: Sealer, province_key: bytes | None) -> None:
        self._db = db
        self._sealer = sealer
        self._province_key = province_key

    @property
    def province_key(self) -> bytes | None:
        return self._province_key

    def pseudonym_of_sync(self, conn: sqlite3.Connection, subject_key: bytes) -> bytes | None:
        """The province pseudonym of a stored subject (unsealed in memory only)."""
        if self._province_key is None:
            return None
        row = conn.execute(
            "SELECT id_sealed FROM subjects WHERE subject_key = ?", (subject_key,)
        ).fetchone()
        if row is None:
            return None
        try:
            id_number = self._sealer.open(bytes(row[0]), subject_key).decode("utf-8")
            return province_pseudonym(self._province_key, id_number)
        except (SealError, KeysError, UnicodeDecodeError):
            raise OutboxError(
                "SEALED_ID_UNREADABLE", "a sealed ID number cannot be opened"
            ) from None

    def deregistration_sync(
        self, conn: sqlite3.Connection, subject_key: bytes, at: int
    ) -> int | None:
        """Inside the caller's unit, BEFORE the subject row is deleted: delete the
        subject's snapshot leaves (keeping their leaf hashes) and queue a
        ``deregistration`` event; returns its ``seq`` (None without a province key)."""
        pseudonym = self.pseudonym_of_sync(conn, subject_key)
        conn.execute(
            "UPDATE snapshot_leaves SET payload = NULL, subject_key = NULL WHERE subject_key = ?",
            (subject_key,),
        )
        if pseudonym is None:
            return None
        return append_sync(
            conn,
            "deregistration",
            _event_id_for(pseudonym, at),
            deregistration_payload(pseudonym, at),
            at,
        )

    def status_list_sync(self, conn: sqlite3.Connection, envelope: bytes, at: int) -> int:
        """Queue a signed status list (serialised ``Envelope``)."""
        event_id = f"status/{hashlib.sha256(envelope).hexdigest()[:32]}"
        return append_sync(conn, "status_list", event_id, envelope, at)

    async def after(self, seq: int, limit: int = 100) -> list[OutboxEvent]:
        return await self._db.read_unit(lambda c: read_after_sync(c, seq, limit))

    async def append(self, kind: str, event_id: str, payload: bytes, at: int) -> int:
        """Append in its own (group-committed) transaction."""
        return await self._db.write_unit(lambda c: append_sync(c, kind, event_id, payload, at))
