"""Repository of citizen consents (grants, uses, withdrawals) and attestation status.

Invariants:

* this module reads and writes rows; whether a consent may be used is decided
  by the consent rules of :mod:`node.exchange._consent`, once, on the row read
  inside the write unit that then counts the use (:func:`count_use`), so the
  decision and the count are one transaction under the writer lock (SQLite) or
  the row's lock taken by :func:`get_consent` (PostgreSQL), and concurrent requests
  can never exceed ``max_uses``;
* a use is counted inside the same transaction that allocates the status-list
  index and appends the log entry; a use given back (:func:`release_use`) is
  given back in that same transaction;
* withdrawal marks every attestation issued under the consent revoked (status
  1) in the same transaction as the withdrawal itself; a status entry's
  subject key is always its consent's (entries are added only from the
  consent row), so withdrawal goes through the subject index, and by the
  consent id alone if the consent row is missing;
* rows hold the subject key and the consent's subject binding only — never an
  ID number;
* a subject's grant history (:meth:`ConsentsRepository.grant_history`) is read
  from these rows, inside the grant's own write transaction when it decides a
  grant, so the limits hold across processes and restarts (docs/adr/0324);
* a consent the node ends itself (:func:`end_consent`: the subject's published grade
  misses its scenario's tier, docs/adr/0512) is withdrawn exactly like a citizen's
  withdrawal -- ``withdrawn_at`` set, its attestations revoked -- with the
  reason in ``withdrawn_reason``, which only the citizen's own views show.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from node.store._db import Database
from node.store._status_list import allocate_status_entry

__all__ = [
    "STATUS_REVOKED",
    "STATUS_SUPERSEDED",
    "STATUS_SUSPENDED",
    "STATUS_VALID",
    "ConsentRow",
    "ConsentsRepository",
    "GrantHistory",
    "add_status_entry",
    "count_use",
    "end_consent",
    "get_consent",
    "grant_history_in",
    "insert_consent",
    "is_opted_out",
    "notify_subject",
    "release_use",
    "withdraw_consent",
]

STATUS_VALID, STATUS_REVOKED, STATUS_SUSPENDED, STATUS_SUPERSEDED = 0, 1, 2, 3

_OPTED_OUT = "SELECT 1 FROM opt_outs WHERE subject_key = ?"
_COLUMNS = (
    "consent_id, subject_key, audience, purpose, scope, not_before, not_after, max_uses, uses, "
    "binding, grant_payload, grant_sha256, granted_at, withdrawn_at"
)


@dataclass(frozen=True, slots=True)
class ConsentRow:
    consent_id: str
    subject_key: bytes
    audience: str
    purpose: str
    scope: int
    not_before: int
    not_after: int
    max_uses: int
    uses: int
    binding: bytes
    grant_payload: bytes
    grant_sha256: bytes
    granted_at: int
    withdrawn_at: int | None

    @classmethod
    def of(cls, row: Any) -> ConsentRow:
        return cls(
            str(row[0]),
            bytes(row[1]),
            str(row[2]),
            str(row[3]),
            int(row[4]),
            int(row[5]),
            int(row[6]),
            int(row[7]),
            int(row[8]),
            bytes(row[9]),
            bytes(row[10]),
            bytes(row[11]),
            int(row[12]),
            None if row[13] is None else int(row[13]),
        )


@dataclass(frozen=True, slots=True)
class GrantHistory:
    """What decides whether a subject may grant another consent at ``now``."""

    recent: tuple[int, ...]  # ``granted_at`` of the grants after ``since``, oldest first
    active: int  # consents neither withdrawn, expired nor used up at ``now``


# Both read through consents_by_subject: a subject's rows only.
_RECENT_GRANTS = (
    "SELECT granted_at FROM consents WHERE subject_key = ? AND granted_at > ? ORDER BY granted_at"
)
_ACTIVE = (
    "SELECT count(*) FROM consents WHERE subject_key = ? AND withdrawn_at IS NULL "
    "AND not_after > ? AND uses < max_uses"
)


def _locking(conn: sqlite3.Connection) -> str:
    """`` FOR UPDATE`` on PostgreSQL, where transactions of several processes run at once
    (READ COMMITTED): the row read to decide is locked until COMMIT, so a concurrent
    unit deciding on the same row waits and then reads the committed result.  SQLite
    needs none: a write unit holds the database's write lock from ``BEGIN IMMEDIATE``."""
    return " FOR UPDATE" if getattr(conn, "dialect", "sqlite") == "postgresql" else ""


def get_consent(conn: sqlite3.Connection, consent_id: str) -> ConsentRow | None:
    """Sync read for write units: the row the unit decides on, locked until COMMIT on
    PostgreSQL (:func:`_locking`), so uses are counted exactly once across processes."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM consents WHERE consent_id = ?{_locking(conn)}", (consent_id,)
    )
    found = row.fetchone()
    return None if found is None else ConsentRow.of(found)


def count_use(conn: sqlite3.Connection, consent_id: str) -> None:
    """Inside the write unit that read the row and found it usable
    (:func:`node.exchange._consent.refusal_of`): count one use."""
    conn.execute("UPDATE consents SET uses = uses + 1 WHERE consent_id = ?", (consent_id,))


def release_use(conn: sqlite3.Connection, consent_id: str) -> None:
    """Inside the same write unit: give back a use counted by :func:`count_use`
    when the request is refused after it (the refusal still commits its log entry)."""
    conn.execute("UPDATE consents SET uses = uses - 1 WHERE consent_id = ?", (consent_id,))


def add_status_entry(
    conn: sqlite3.Connection,
    attestation_id: str,
    *,
    subject_key: bytes,
    consent_id: str,
    issued_at: int,
    expires_at: int,
) -> int:
    """Inside a write unit: allocate the next status-list index for an attestation
    (:func:`node.store._status_list.allocate_status_entry`, docs/adr/0702)."""
    return allocate_status_entry(
        conn, attestation_id, subject_key=subject_key, consent_id=consent_id,
        issued_at=issued_at, expires_at=expires_at,
    )  # fmt: skip


def end_consent(conn: sqlite3.Connection, consent_id: str, *, now: int, reason: str) -> None:
    """Inside a write unit: withdraw the consent at ``now`` with ``reason`` and revoke the
    attestations issued under it -- what a citizen's withdrawal does."""
    row = conn.execute(
        "UPDATE consents SET withdrawn_at = ?, withdrawn_reason = ? "
        "WHERE consent_id = ? AND withdrawn_at IS NULL RETURNING subject_key",
        (now, reason, consent_id),
    ).fetchall()
    if row:
        conn.execute(
            "UPDATE status_entries SET status = ? WHERE subject_key = ? "
            "AND consent_id = ? AND status = ?",
            (STATUS_REVOKED, row[0][0], consent_id, STATUS_VALID),
        )


def notify_subject(
    conn: sqlite3.Connection, subject_key: bytes, kind: str, message: str, at: str
) -> None:
    """Inside a write unit: a notification for the person alone (``ListNotifications``)."""
    conn.execute(
        "INSERT INTO notifications (subject_key, kind, message, created_at) VALUES (?, ?, ?, ?)",
        (subject_key, kind, message, at),
    )


def is_opted_out(conn: sqlite3.Connection, subject_key: bytes) -> bool:
    """Inside a unit: whether the person asked not to be scored (N3)."""
    return conn.execute(_OPTED_OUT, (subject_key,)).fetchone() is not None


def insert_consent(conn: sqlite3.Connection, row: ConsentRow) -> None:
    """Inside a write unit: store a granted consent."""
    conn.execute(
        f"INSERT INTO consents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.consent_id,
            row.subject_key,
            row.audience,
            row.purpose,
            row.scope,
            row.not_before,
            row.not_after,
            row.max_uses,
            row.uses,
            row.binding,
            row.grant_payload,
            row.grant_sha256,
            row.granted_at,
            row.withdrawn_at,
        ),
    )


def grant_history_in(
    conn: sqlite3.Connection, subject_key: bytes, *, since: int, now: int
) -> GrantHistory:
    """Inside the grant's own write unit: the subject's grants after ``since`` and its
    active consents at ``now`` (the writer lock and BEGIN IMMEDIATE serialise grants
    of every process, docs/adr/0324; on PostgreSQL the subject's row is locked first,
    so grants of one person from several processes are decided one after another)."""
    if _locking(conn):
        conn.execute(
            "SELECT 1 FROM subjects WHERE subject_key = ? FOR UPDATE", (subject_key,)
        ).fetchall()
    recent = conn.execute(_RECENT_GRANTS, (subject_key, since)).fetchall()
    active = conn.execute(_ACTIVE, (subject_key, now)).fetchone()
    return GrantHistory(tuple(int(r[0]) for r in recent), int(active[0]))


def withdraw_consent(conn: sqlite3.Connection, consent_id: str, now: int) -> int:
    """Inside a write unit: withdraw and revoke its attestations; returns the number
    revoked."""
    conn.execute(
        "UPDATE consents SET withdrawn_at = ? WHERE consent_id = ? AND withdrawn_at IS NULL",
        (now, consent_id),
    )
    owner = conn.execute(
        "SELECT subject_key FROM consents WHERE consent_id = ?", (consent_id,)
    ).fetchone()
    if owner is None:
        # No consent row (never the case for a citizen's withdrawal): revoke by the
        # consent id alone, a full scan, rather than silently revoking nothing.
        cur = conn.execute(
            "UPDATE status_entries SET status = ? WHERE consent_id = ? AND status = ?",
            (STATUS_REVOKED, consent_id, STATUS_VALID),
        )
        return int(cur.rowcount)
    # Through the subject's index (ADR 0316): an entry's subject is its consent's
    # subject, since add_status_entry is only called with the consent row's key.
    cur = conn.execute(
        "UPDATE status_entries SET status = ? WHERE subject_key = ? "
        "AND consent_id = ? AND status = ?",
        (STATUS_REVOKED, owner[0], consent_id, STATUS_VALID),
    )
    return int(cur.rowcount)


class ConsentsRepository:
    """Reads of consents on the reader connection; writes are the functions above,
    run inside a unit of work (``Database.write_unit``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def opted_out(self, subject_key: bytes) -> bool:
        """Whether the person asked not to be scored (N3), as last committed."""
        return await self._db.fetchone(_OPTED_OUT, (subject_key,)) is not None

    async def get(self, consent_id: str) -> ConsentRow | None:
        sql = f"SELECT {_COLUMNS} FROM consents WHERE consent_id = ?"
        row = await self._db.fetchone(sql, (consent_id,))
        return None if row is None else ConsentRow.of(row)

    async def of_subject(self, subject_key: bytes) -> list[ConsentRow]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM consents WHERE subject_key = ? ORDER BY granted_at, consent_id",
            (subject_key,),
        )
        return [ConsentRow.of(r) for r in rows]

    async def grant_history(self, subject_key: bytes, *, since: int, now: int) -> GrantHistory:
        """The subject's grants after ``since`` and its active consents at ``now``, as
        last committed (a cheap first check; :func:`grant_history_in` decides)."""
        recent = await self._db.fetchall(_RECENT_GRANTS, (subject_key, since))
        active = await self._db.fetchone(_ACTIVE, (subject_key, now))
        return GrantHistory(tuple(int(r[0]) for r in recent), int(active[0]))

    async def statuses(self) -> list[tuple[int, int]]:
        """(index, status) of every non-valid entry, and the highest index."""
        rows = await self._db.fetchall(
            "SELECT idx, status FROM status_entries WHERE status != 0 ORDER BY idx"
        )
        return [(int(a), int(b)) for a, b in rows]
