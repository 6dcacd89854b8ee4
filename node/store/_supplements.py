"""The SQL of personal supplementary information (N5, N9): the ``supplements`` table.

Functions taking a connection run inside the caller's rights unit and never
commit; the list functions read through the :class:`~node.store._db.Database`
reader.  The rules (limits, who verifies, what counts) stay in
:mod:`node.rights._supplements`.

Invariants: rows are returned as :data:`COLUMNS` (twelve columns), with the
subject key appended at index 12 by :func:`by_id_with_key`; an upload is stored
``pending`` and leaves that state once (``verified`` with the record it became,
or ``rejected`` with a reason); a verified upload's record is a positive,
``personal_verified`` record filed by the verifier under ``supp-<id>``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.store._db import Database

__all__ = [
    "COLUMNS",
    "by_id",
    "by_id_with_key",
    "count_pending",
    "insert_record",
    "insert_upload",
    "list_for_subject",
    "list_for_verifier",
    "nth_latest_upload_at",
    "set_rejected",
    "set_verified",
]

COLUMNS = (
    "supplement_id, category, level, act_id, recognised_on, verifier, proof_sha256, "
    "description, state, reason, record_id, submitted_at"
)


def nth_latest_upload_at(conn: sqlite3.Connection, key: bytes, n: int) -> str | None:
    """When the person's ``n``-th most recent upload was made (ISO time), or None."""
    # one index: supplements_by_subject
    row = conn.execute(
        "SELECT submitted_at FROM supplements WHERE subject_key = ? "
        "ORDER BY submitted_at DESC LIMIT 1 OFFSET ?",
        (key, n - 1),
    ).fetchone()
    return None if row is None else row[0]


def count_pending(conn: sqlite3.Connection, key: bytes) -> int:
    """How many of the person's uploads await a decision."""
    return int(
        conn.execute(
            "SELECT count(*) FROM supplements WHERE subject_key = ? AND state = 'pending'", (key,)
        ).fetchone()[0]
    )


def insert_upload(
    conn: sqlite3.Connection,
    supplement_id: str,
    key: bytes,
    *,
    category: str,
    level: str | None,
    act_id: str,
    recognised_on: str,
    verifier: str,
    proof_sha256: bytes,
    description: str,
    at_iso: str,
) -> None:
    """Store a new pending upload."""
    conn.execute(
        f"INSERT INTO supplements ({COLUMNS}, subject_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', '', NULL, ?, ?)",
        (
            supplement_id,
            category,
            level,
            act_id,
            recognised_on,
            verifier,
            proof_sha256,
            description,
            at_iso,
            key,
        ),
    )


def by_id(conn: sqlite3.Connection, supplement_id: str) -> Any:
    """The upload's row (:data:`COLUMNS`), or None."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM supplements WHERE supplement_id = ?", (supplement_id,)
    ).fetchone()


def by_id_with_key(conn: sqlite3.Connection, supplement_id: str) -> Any:
    """The upload's row with its subject key last (index 12), or None."""
    return conn.execute(
        f"SELECT {COLUMNS}, subject_key FROM supplements WHERE supplement_id = ?",
        (supplement_id,),
    ).fetchone()


def insert_record(
    conn: sqlite3.Connection,
    key: bytes,
    record_id: str,
    verifier: str,
    *,
    category: str,
    act_id: str,
    recognised_on: str,
    level: str | None,
    at_iso: str,
) -> None:
    """File the verified upload as a positive ``personal_verified`` record."""
    conn.execute(
        "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id, "
        "recognised_on, valid_until, level, severity, legal_document, status, provenance, "
        "flags, batch_id, submitted_at, submitted_by) VALUES (?, ?, ?, ?, 'positive', ?, "
        "?, NULL, ?, NULL, NULL, 'active', 'personal_verified', '', ?, ?, ?)",
        (
            key,
            record_id,
            verifier,
            category,
            act_id,
            recognised_on,
            level,
            record_id,
            at_iso,
            verifier,
        ),
    )


def set_verified(conn: sqlite3.Connection, supplement_id: str, record_id: str, at_iso: str) -> None:
    """The upload was verified and became ``record_id``."""
    conn.execute(
        "UPDATE supplements SET state = 'verified', record_id = ?, decided_at = ? "
        "WHERE supplement_id = ?",
        (record_id, at_iso, supplement_id),
    )


def set_rejected(conn: sqlite3.Connection, supplement_id: str, reason: str, at_iso: str) -> None:
    """The upload was not verified, for ``reason``."""
    conn.execute(
        "UPDATE supplements SET state = 'rejected', reason = ?, decided_at = ? "
        "WHERE supplement_id = ?",
        (reason, at_iso, supplement_id),
    )


async def list_for_verifier(db: Database, verifier: str, pending_only: bool) -> list[Any]:
    """Uploads sent to ``verifier``, in upload order."""
    where = "verifier = ?" + (" AND state = 'pending'" if pending_only else "")
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM supplements WHERE {where} ORDER BY submitted_at", (verifier,)
    )


async def list_for_subject(db: Database, key: bytes, pending_only: bool) -> list[Any]:
    """The person's uploads, in upload order."""
    where = "subject_key = ?" + (" AND state = 'pending'" if pending_only else "")
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM supplements WHERE {where} ORDER BY submitted_at", (key,)
    )
