"""The reads of the operator's console (issue 19): grades by month, the rights queues, sources.

Every function takes the caller's connection (inside ``Database.read_unit``) and only
reads.  The SQL is kept to what SQLite and PostgreSQL (and its compatible engines) both
run: no ``GLOB``, no ``WITHOUT ROWID`` tricks in queries, no SQLite date functions
(dates are ISO text compared as text), ``CASE`` for ordering, ``?`` placeholders as in
every repository of this package.

Invariants:

* nothing returned identifies a person: no subject key, no ID number; grades come as
  counts, queues as their ids, departments, states and dates;
* a published month's grade counts are the counts of what the node serves: the newest
  correction of (person, run) when there is one, else the run's own snapshot row
  (the rule of :func:`node.store._monthly.published_entry`), over FINISHED runs only;
* every list is bounded by the caller's ``limit`` (the console's own constants);
* queues put what is overdue on ``today`` first, then by due day, then filing order.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GradeCount",
    "PublishedMonth",
    "corrections_mark",
    "count_objections",
    "count_pending_repairs",
    "grade_counts",
    "objection_queue",
    "published_months",
    "repair_queue",
    "source_timeliness",
]


@dataclass(frozen=True, slots=True)
class PublishedMonth:
    """A finished monthly run (a published month)."""

    run_id: int
    period: str
    scheme_id: str
    scheme_version: str
    finished_at: str


@dataclass(frozen=True, slots=True)
class GradeCount:
    """How many people of one run hold ``grade`` (None: not eligible to be scored)."""

    run_id: int
    grade: str | None
    people: int


def published_months(conn: sqlite3.Connection, limit: int) -> list[PublishedMonth]:
    """The newest ``limit`` finished runs, newest period first (one per period and
    scheme version; a month scored with two versions during a rollout is two runs)."""
    rows = conn.execute(
        "SELECT run_id, period, scheme_id, scheme_version, finished_at FROM snapshot_runs "
        "WHERE finished_at IS NOT NULL ORDER BY period DESC, run_id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [PublishedMonth(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


# The grade each person of a run is published with: the newest correction's, else the
# snapshot's.  A correlated MAX(id) is one index seek per corrected person
# (published_corrections_by_subject) and runs the same on both engines.
_GRADES = (
    "SELECT s.run_id, "
    "CASE WHEN c.id IS NULL THEN s.grade ELSE c.grade END AS g, count(*) "
    "FROM snapshots s LEFT JOIN published_corrections c "
    "ON c.run_id = s.run_id AND c.subject_key = s.subject_key AND c.id = ("
    "SELECT MAX(c2.id) FROM published_corrections c2 "
    "WHERE c2.run_id = s.run_id AND c2.subject_key = s.subject_key) "
    "WHERE s.run_id = ? "
    "GROUP BY s.run_id, CASE WHEN c.id IS NULL THEN s.grade ELSE c.grade END"
)


def grade_counts(conn: sqlite3.Connection, run_id: int) -> list[GradeCount]:
    """The grade counts of one finished run, as published (corrections applied)."""
    return [
        GradeCount(int(r[0]), None if r[1] is None else str(r[1]), int(r[2]))
        for r in conn.execute(_GRADES, (run_id,)).fetchall()
    ]


def corrections_mark(conn: sqlite3.Connection, run_id: int) -> int:
    """The newest correction id of a run (0 when none): a run's counts change only when
    this does, so the console may keep them until it moves."""
    row = conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM published_corrections WHERE run_id = ?", (run_id,)
    ).fetchone()
    return int(row[0]) if row else 0


_OBJECTION_COLUMNS = (
    "objection_id, record_id, source, about_handling, about_score, period, state, "
    "waiting_for, due, deadlines_json, filed_at, reason"
)


def objection_queue(
    conn: sqlite3.Connection, open_states: tuple[str, ...], today: str, limit: int
) -> list[tuple[Any, ...]]:
    """Objections in ``open_states`` (:data:`_OBJECTION_COLUMNS`), those whose step is
    overdue on ``today`` first, then by due day, then in filing order."""
    marks = ", ".join("?" * len(open_states))
    return conn.execute(
        f"SELECT {_OBJECTION_COLUMNS} FROM objections WHERE state IN ({marks}) "
        "ORDER BY CASE WHEN due IS NOT NULL AND due < ? THEN 0 ELSE 1 END, "
        "CASE WHEN due IS NULL THEN 1 ELSE 0 END, due, filed_at LIMIT ?",
        (*open_states, today, limit),
    ).fetchall()


def count_objections(conn: sqlite3.Connection, open_states: tuple[str, ...]) -> int:
    """How many objections are in ``open_states`` (the queue's length before its bound)."""
    marks = ", ".join("?" * len(open_states))
    row = conn.execute(
        f"SELECT count(*) FROM objections WHERE state IN ({marks})", open_states
    ).fetchone()
    return int(row[0]) if row else 0


_REPAIR_COLUMNS = (
    "application_id, record_id, submitted_by, route, state, due, escalated, filed_at, decided_at"
)


def repair_queue(conn: sqlite3.Connection, today: str, limit: int) -> list[tuple[Any, ...]]:
    """Repair applications (:data:`_REPAIR_COLUMNS`): pending ones first, overdue on
    ``today`` before the others, then by due day; decided ones after, newest first."""
    return conn.execute(
        f"SELECT {_REPAIR_COLUMNS} FROM repair_applications "
        "ORDER BY CASE WHEN state = 'pending' THEN 0 ELSE 1 END, "
        "CASE WHEN state = 'pending' AND due < ? THEN 0 ELSE 1 END, "
        "CASE WHEN state = 'pending' THEN due ELSE '' END, "
        "decided_at DESC, filed_at LIMIT ?",
        (today, limit),
    ).fetchall()


def count_pending_repairs(conn: sqlite3.Connection) -> int:
    """How many repair applications wait for their department's decision."""
    row = conn.execute(
        "SELECT count(*) FROM repair_applications WHERE state = 'pending'"
    ).fetchone()
    return int(row[0]) if row else 0


def source_timeliness(conn: sqlite3.Connection, limit: int) -> list[tuple[Any, ...]]:
    """(department, records held, records shared late (N7), newest submission) per
    submitting department, the latest-sharing departments first."""
    return conn.execute(
        "SELECT submitted_by, count(*), "
        "SUM(CASE WHEN share_due IS NULL THEN 0 ELSE 1 END), MAX(submitted_at) "
        "FROM records GROUP BY submitted_by "
        "ORDER BY SUM(CASE WHEN share_due IS NULL THEN 0 ELSE 1 END) DESC, submitted_by "
        "LIMIT ?",
        (limit,),
    ).fetchall()
