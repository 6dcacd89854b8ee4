"""The SQL of objections (H15, N21): the ``objections`` table.

Functions taking a connection run inside the caller's rights unit and never
commit; the list functions read through the :class:`~node.store._db.Database`
reader.  The workflow (which state follows which, who may answer) is the pure
state machine in ``scoring`` and the rules of :mod:`node.rights._objections`.

Invariants:

* rows are returned as :data:`COLUMNS` (ten columns), with the subject key
  appended at index :data:`KEY` by the functions used inside a unit;
* an objection's state, step, due day, serialised state and deadlines are
  written together (:func:`save_state`), so the row never mixes two steps;
* queues list objections in filing order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from node.store._db import Database

__all__ = [
    "COLUMNS",
    "KEY",
    "by_id",
    "due_for_step",
    "insert_record_objection",
    "insert_score_objection",
    "list_for_operator",
    "list_for_source",
    "list_for_subject",
    "open_on_record",
    "open_on_score",
    "records_with_id",
    "release_step",
    "rollback_step",
    "save_state",
    "start_step",
]

COLUMNS = (
    "objection_id, record_id, source, about_handling, reason, state_json, deadlines_json, "
    "filed_at, about_score, period"
)
KEY = 10  # index of subject_key in rows from _select (after COLUMNS)


def _select(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {COLUMNS}, subject_key FROM objections WHERE {where}", params
    ).fetchall()


def by_id(conn: sqlite3.Connection, objection_id: str) -> list[tuple[Any, ...]]:
    """The objection's row (with its subject key) as a list of zero or one rows."""
    return _select(conn, "objection_id = ?", (objection_id,))


def due_for_step(conn: sqlite3.Connection, day_iso: str) -> list[tuple[Any, ...]]:
    """Rows with work for the scheduler, in filing order: to forward, to reply, or
    past their step's deadline (``due`` before ``day_iso``)."""
    where = (
        "(state = 'received' AND waiting_for = 'forward') OR state = 'answered' "
        "OR (state IN ('received', 'forwarded') AND due IS NOT NULL AND due < ?) ORDER BY filed_at"
    )
    return _select(conn, where, (day_iso,))


def save_state(
    conn: sqlite3.Connection,
    objection_id: str,
    *,
    state: str,
    waiting_for: str,
    due: str | None,
    state_json: str,
    deadlines_json: str,
    at_iso: str,
) -> None:
    """Write the objection's new state, step and deadlines together."""
    conn.execute(
        "UPDATE objections SET state = ?, waiting_for = ?, due = ?, state_json = ?, "
        "deadlines_json = ?, updated_at = ? WHERE objection_id = ?",
        (state, waiting_for, due, state_json, deadlines_json, at_iso, objection_id),
    )


def records_with_id(conn: sqlite3.Connection, key: bytes, record_id: str) -> list[tuple[Any, ...]]:
    """(subject_key, submitted_by, status, source) of the person's records with this id
    (one per department that used it)."""
    return conn.execute(
        "SELECT subject_key, submitted_by, status, source FROM records "
        "WHERE subject_key = ? AND record_id = ?",
        (key, record_id),
    ).fetchall()


def open_on_record(
    conn: sqlite3.Connection, record_id: str, source: str, open_states: Sequence[str]
) -> bool:
    """Whether an objection in one of ``open_states`` stands against the record."""
    open_marks = ",".join("?" * len(open_states))
    return (
        conn.execute(
            f"SELECT 1 FROM objections WHERE record_id = ? AND source = ? "
            f"AND state IN ({open_marks})",
            (record_id, source, *open_states),
        ).fetchone()
        is not None
    )


def insert_record_objection(
    conn: sqlite3.Connection,
    objection_id: str,
    key: bytes,
    record_id: str,
    source: str,
    *,
    about_handling: bool,
    reason: str,
    state: str,
    waiting_for: str,
    due: str | None,
    state_json: str,
    deadlines_json: str,
    at_iso: str,
) -> None:
    """Store a new objection against a record (``reason`` bounded by the caller)."""
    conn.execute(
        "INSERT INTO objections (objection_id, subject_key, record_id, source, about_handling, "
        "reason, state, waiting_for, due, state_json, deadlines_json, filed_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            objection_id,
            key,
            record_id,
            source,
            int(about_handling),
            reason,
            state,
            waiting_for,
            due,
            state_json,
            deadlines_json,
            at_iso,
            at_iso,
        ),
    )


def open_on_score(conn: sqlite3.Connection, key: bytes, period: str) -> bool:
    """Whether an objection to the person's score of ``period`` is not yet replied."""
    return (
        conn.execute(
            "SELECT 1 FROM objections WHERE subject_key = ? AND about_score = 1 AND period = ? "
            "AND state != 'replied'",
            (key, period),
        ).fetchone()
        is not None
    )


def insert_score_objection(
    conn: sqlite3.Connection,
    objection_id: str,
    key: bytes,
    source: str,
    *,
    reason: str,
    state: str,
    waiting_for: str,
    due: str,
    state_json: str,
    deadlines_json: str,
    at_iso: str,
    period: str,
) -> None:
    """Store a new objection to the published score of ``period`` (no record)."""
    conn.execute(
        "INSERT INTO objections (objection_id, subject_key, record_id, source, about_handling, "
        "reason, state, waiting_for, due, state_json, deadlines_json, filed_at, updated_at, "
        "about_score, period) VALUES (?, ?, '', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
        (
            objection_id,
            key,
            source,
            reason,
            state,
            waiting_for,
            due,
            state_json,
            deadlines_json,
            at_iso,
            at_iso,
            period,
        ),
    )


# One objection the scheduler cannot move must not stop the others: each step runs
# in its own savepoint inside the scheduler's unit.
def start_step(conn: sqlite3.Connection) -> None:
    """Open the savepoint of one scheduler step."""
    conn.execute("SAVEPOINT objection")


def rollback_step(conn: sqlite3.Connection) -> None:
    """Undo everything the failed step wrote (the savepoint stays open)."""
    conn.execute("ROLLBACK TO objection")


def release_step(conn: sqlite3.Connection) -> None:
    """Close the step's savepoint, keeping what it wrote."""
    conn.execute("RELEASE objection")


async def list_for_source(db: Database, source: str, open_only: bool) -> list[Any]:
    """The department's queue: objections about its records (not about handling or score)."""
    where = "source = ? AND about_handling = 0 AND about_score = 0"
    if open_only:
        where += " AND state IN ('forwarded', 'deemed_accepted')"
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM objections WHERE {where} ORDER BY filed_at", (source,)
    )


async def list_for_subject(db: Database, key: bytes, open_only: bool) -> list[Any]:
    """The person's own objections (open ones: not yet replied)."""
    where = "subject_key = ?"
    if open_only:
        where += " AND state != 'replied'"
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM objections WHERE {where} ORDER BY filed_at", (key,)
    )


async def list_for_operator(db: Database, open_only: bool) -> list[Any]:
    """The operator's queue of objections to the score itself (N21)."""
    where = "about_score = 1"
    if open_only:
        where += " AND state = 'received'"
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM objections WHERE {where} ORDER BY filed_at", ()
    )
