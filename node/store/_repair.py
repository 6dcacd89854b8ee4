"""The SQL of credit-repair applications (N22): the ``repair_applications`` table.

Functions taking a connection run inside the caller's rights unit and never
commit; :func:`list_applications` reads through the
:class:`~node.store._db.Database` reader.  The rules (routes, deadlines, who
decides) stay in :mod:`node.rights._repair`.

Invariants: rows are returned as :data:`COLUMNS` (eleven columns), with the
subject key appended at index 11 by :func:`by_id_with_key`; at most one pending
application per record (the caller checks :func:`pending_on_record` in the same
unit); an application is escalated at most once; lists are in filing order.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.store._db import Database

__all__ = [
    "COLUMNS",
    "by_id",
    "by_id_with_key",
    "insert_application",
    "list_applications",
    "mark_escalated",
    "overdue",
    "overdue_sync",
    "pending_on_record",
    "records_with_id",
    "set_decision",
]

COLUMNS = (
    "application_id, record_id, submitted_by, route, statement, state, due, escalated, "
    "reason, filed_at, decided_at"
)
_OVERDUE = (
    "SELECT application_id, subject_key, submitted_by, due FROM repair_applications "
    "WHERE state = 'pending' AND escalated = 0 AND due < ? ORDER BY filed_at"
)
#: who an application list is for -> its WHERE clause
_LIST_BY = {"subject": "subject_key = ?", "department": "submitted_by = ?"}


def records_with_id(conn: sqlite3.Connection, key: bytes, record_id: str) -> list[tuple[Any, ...]]:
    """(submitted_by, source, status, polarity) of the person's records with this id."""
    return conn.execute(
        "SELECT submitted_by, source, status, polarity FROM records "
        "WHERE subject_key = ? AND record_id = ?",
        (key, record_id),
    ).fetchall()


def pending_on_record(conn: sqlite3.Connection, owner: str, record_id: str) -> bool:
    """Whether an application for the record ``owner`` filed as ``record_id`` is pending."""
    return (
        conn.execute(
            "SELECT 1 FROM repair_applications WHERE submitted_by = ? AND record_id = ? "
            "AND state = 'pending'",
            (owner, record_id),
        ).fetchone()
        is not None
    )


def insert_application(
    conn: sqlite3.Connection,
    application_id: str,
    key: bytes,
    owner: str,
    record_id: str,
    *,
    route: str,
    statement: str,
    evidence_sha256: bytes | None,
    due: str,
    at_iso: str,
) -> None:
    """Store a new pending application."""
    conn.execute(
        "INSERT INTO repair_applications (application_id, subject_key, submitted_by, "
        "record_id, route, statement, evidence_sha256, due, filed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (application_id, key, owner, record_id, route, statement, evidence_sha256, due, at_iso),
    )


def by_id(conn: sqlite3.Connection, application_id: str) -> Any:
    """The application's row (:data:`COLUMNS`), or None."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM repair_applications WHERE application_id = ?",
        (application_id,),
    ).fetchone()


def by_id_with_key(conn: sqlite3.Connection, application_id: str) -> Any:
    """The application's row with its subject key last (index 11), or None."""
    return conn.execute(
        f"SELECT {COLUMNS}, subject_key FROM repair_applications WHERE application_id = ?",
        (application_id,),
    ).fetchone()


def set_decision(
    conn: sqlite3.Connection, application_id: str, state: str, reason: str, at_iso: str
) -> None:
    """Store the department's decision (``granted`` or ``refused``)."""
    conn.execute(
        "UPDATE repair_applications SET state = ?, reason = ?, decided_at = ? "
        "WHERE application_id = ?",
        (state, reason, at_iso, application_id),
    )


async def overdue(db: Database, day_iso: str) -> list[Any]:
    """(id, subject key, department, due) of pending applications not escalated and due
    before ``day_iso``, in filing order (read outside any unit)."""
    return await db.fetchall(_OVERDUE, (day_iso,))


def overdue_sync(conn: sqlite3.Connection, day_iso: str) -> list[Any]:
    """:func:`overdue` inside the caller's unit."""
    return conn.execute(_OVERDUE, (day_iso,)).fetchall()


def mark_escalated(conn: sqlite3.Connection, application_id: str) -> None:
    """The application was escalated (once)."""
    conn.execute(
        "UPDATE repair_applications SET escalated = 1 WHERE application_id = ?", (application_id,)
    )


async def list_applications(db: Database, by: str, param: object, pending_only: bool) -> list[Any]:
    """Applications of a subject (``by="subject"``) or to a department
    (``by="department"``), pending ones only if asked, in filing order."""
    where = _LIST_BY[by]
    if pending_only:
        where += " AND state = 'pending'"
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM repair_applications WHERE {where} ORDER BY filed_at", (param,)
    )
