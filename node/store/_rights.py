"""The SQL of rights events: record status and marks, attestation status, tombstones.

Every function runs inside the caller's write unit (a rights unit,
:func:`node.rights._events.run_rights_unit`) on the writer connection; none
commits.  The rules (which record, which transition, what error) stay with the
caller; these functions only read and write rows.

Invariants:

* a record is addressed by (filing department, record id): record ids are per
  department;
* attestation status moves only along the transitions named here (VALID and
  SUSPENDED to SUPERSEDED, VALID to SUSPENDED and back, anything to REVOKED);
* notifications are written with :func:`node.store._consents.notify_subject`.
"""

from __future__ import annotations

import sqlite3

from node.store._consents import (
    STATUS_REVOKED,
    STATUS_SUPERSEDED,
    STATUS_SUSPENDED,
    STATUS_VALID,
)

__all__ = [
    "count_consents",
    "count_records",
    "delete_tombstone",
    "has_masked_record",
    "insert_mark",
    "record_of",
    "restore_suspended",
    "revoke_attestations",
    "set_record_status",
    "subject_exists",
    "supersede_attestations",
    "suspend_attestations",
    "unlink_log_entries",
]


def subject_exists(conn: sqlite3.Connection, key: bytes) -> bool:
    """Whether the node holds a subject row for ``key``."""
    return (
        conn.execute("SELECT 1 FROM subjects WHERE subject_key = ?", (key,)).fetchone() is not None
    )


def count_records(conn: sqlite3.Connection, key: bytes) -> int:
    """How many records (of every department and status) the person has."""
    (n,) = conn.execute("SELECT count(*) FROM records WHERE subject_key = ?", (key,)).fetchone()
    return int(n)


def count_consents(conn: sqlite3.Connection, key: bytes) -> int:
    """How many consents (active or ended) the person has given."""
    (n,) = conn.execute("SELECT count(*) FROM consents WHERE subject_key = ?", (key,)).fetchone()
    return int(n)


def record_of(
    conn: sqlite3.Connection, owner: str, record_id: str
) -> tuple[bytes, str, str] | None:
    """(subject key, category, polarity) of the record ``owner`` filed as ``record_id``."""
    row = conn.execute(
        "SELECT subject_key, category, polarity FROM records "
        "WHERE submitted_by = ? AND record_id = ?",
        (owner, record_id),
    ).fetchone()
    return None if row is None else (bytes(row[0]), str(row[1]), str(row[2]))


def set_record_status(
    conn: sqlite3.Connection, owner: str, record_id: str, status: str, only_from: str | None
) -> bool:
    """Set the record's status (only when it is ``only_from``, if given); True if one row moved."""
    sql = "UPDATE records SET status = ? WHERE submitted_by = ? AND record_id = ?"
    params: tuple[str, ...] = (status, owner, record_id)
    if only_from is not None:
        sql += " AND status = ?"
        params = (*params, only_from)
    return conn.execute(sql, params).rowcount == 1


def insert_mark(
    conn: sqlite3.Connection,
    owner: str,
    record_id: str,
    status: str,
    *,
    route: str,
    note: str,
    by: str,
    at_iso: str,
) -> None:
    """Record why and by whom a record's status was changed (``note`` bounded by the caller)."""
    conn.execute(
        "INSERT INTO record_marks (submitted_by, record_id, status, repair_route, note, "
        "marked_by, marked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (owner, record_id, status, route, note, by, at_iso),
    )


def supersede_attestations(conn: sqlite3.Connection, key: bytes) -> int:
    """VALID and SUSPENDED attestations of the person become SUPERSEDED; returns how many."""
    return int(
        conn.execute(
            "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status IN (?, ?)",
            (STATUS_SUPERSEDED, key, STATUS_VALID, STATUS_SUSPENDED),
        ).rowcount
    )


def suspend_attestations(conn: sqlite3.Connection, key: bytes) -> int:
    """VALID attestations of the person become SUSPENDED; returns how many."""
    return int(
        conn.execute(
            "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status = ?",
            (STATUS_SUSPENDED, key, STATUS_VALID),
        ).rowcount
    )


def has_masked_record(conn: sqlite3.Connection, key: bytes) -> bool:
    """Whether any record of the person is masked (pending an objection)."""
    return (
        conn.execute(
            "SELECT 1 FROM records WHERE subject_key = ? AND status = 'masked' LIMIT 1", (key,)
        ).fetchone()
        is not None
    )


def restore_suspended(conn: sqlite3.Connection, key: bytes) -> int:
    """SUSPENDED attestations of the person become VALID again; returns how many."""
    return int(
        conn.execute(
            "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status = ?",
            (STATUS_VALID, key, STATUS_SUSPENDED),
        ).rowcount
    )


def revoke_attestations(conn: sqlite3.Connection, key: bytes) -> int:
    """Every attestation of the person not yet REVOKED becomes REVOKED; returns how many."""
    return int(
        conn.execute(
            "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status != ?",
            (STATUS_REVOKED, key, STATUS_REVOKED),
        ).rowcount
    )


def unlink_log_entries(conn: sqlite3.Connection, key: bytes) -> None:
    """Log rows keep their leaf and lose the person's key (the log is append-only)."""
    conn.execute("UPDATE log_entries SET subject_key = NULL WHERE subject_key = ?", (key,))


def delete_tombstone(conn: sqlite3.Connection, stone: bytes) -> int:
    """Remove a deregistration tombstone; returns 1 if the person was deregistered."""
    return int(conn.execute("DELETE FROM deregistrations WHERE tombstone = ?", (stone,)).rowcount)
