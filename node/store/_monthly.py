"""Storage of published monthly grades, their corrections and the node's monthly runs.

Every function takes an open ``sqlite3`` connection (inside a unit of work of
:class:`node.store._db.Database`, or the scheduler's own connection) and only reads or
appends; nothing here decides anything.

Invariants (migration 0013):

* a published month is a FINISHED ``snapshot_runs`` row; the node serves the
  newest finished run of the scheme version in force (:func:`published_run`);
* a person's published entry is the newest ``published_corrections`` row of
  (person, run), else the run's ``snapshots`` row (:func:`published_entry`): two
  index seeks, never a scan; corrections are appended, never updated;
* the registry view "as of" a month's end is the monthly run's own: residences
  not ended by that day, nobody dead by then, nobody deregistered; records are
  those submitted up to the publication's ``records_through`` instant.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date

from node.store._records import StoredRecord, records_of_rows
from scoring import Residence, Subject

__all__ = [
    "MonthKey",
    "MonthlyRunRow",
    "PublishedEntry",
    "PublishedRun",
    "append_correction",
    "mark_failed",
    "mark_finished",
    "mark_started",
    "month_steps_ended",
    "monthly_run",
    "monthly_runs",
    "newest_published",
    "notify",
    "opted_out_at",
    "published_entry",
    "published_run",
    "records_cutoff",
    "records_through",
    "run_progress",
    "subject_as_of",
    "unfinished_runs",
]


@dataclass(frozen=True, slots=True)
class PublishedRun:
    run_id: int
    period: str
    scheme_id: str
    scheme_version: str
    as_of: date
    records_through: str | None  # None: the run read every stored record


@dataclass(frozen=True, slots=True)
class PublishedEntry:
    eligible: bool
    score: int | None
    grade: str | None
    reason: str | None
    report: bytes | None  # a correction's stored report; None for the run's own row
    cause: str  # "" for the run's own row


def published_run(
    conn: sqlite3.Connection, scheme_id: str, version: str, today: date
) -> PublishedRun | None:
    """The newest finished run of ``scheme_id@version`` of a month over by ``today`` (the
    month the node publishes; a run of the month under way, which only a direct library
    call can make, is never served)."""
    row = conn.execute(
        "SELECT run_id, period, as_of, records_through FROM snapshot_runs"
        " WHERE scheme_id = ? AND scheme_version = ? AND finished_at IS NOT NULL AND as_of < ?"
        " ORDER BY period DESC, run_id DESC LIMIT 1",
        (scheme_id, version, today.isoformat()),
    ).fetchone()
    if row is None:
        return None
    return PublishedRun(
        int(row[0]), str(row[1]), scheme_id, version, date.fromisoformat(row[2]), row[3]
    )


def newest_published(
    conn: sqlite3.Connection, scheme_id: str, today: date
) -> tuple[str, str, str] | None:
    """(period, scheme version, finished at) of the newest finished run of ``scheme_id``
    of a month over by ``today``."""
    row = conn.execute(
        "SELECT period, scheme_version, finished_at FROM snapshot_runs WHERE scheme_id = ?"
        " AND finished_at IS NOT NULL AND as_of < ? ORDER BY period DESC, run_id DESC LIMIT 1",
        (scheme_id, today.isoformat()),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def unfinished_runs(conn: sqlite3.Connection, scheme_id: str, version: str) -> list[PublishedRun]:
    """Runs of ``scheme_id@version`` still being computed (or interrupted)."""
    rows = conn.execute(
        "SELECT run_id, period, as_of, records_through FROM snapshot_runs"
        " WHERE scheme_id = ? AND scheme_version = ? AND finished_at IS NULL",
        (scheme_id, version),
    ).fetchall()
    return [
        PublishedRun(int(r[0]), str(r[1]), scheme_id, version, date.fromisoformat(r[2]), r[3])
        for r in rows
    ]


def published_entry(conn: sqlite3.Connection, run_id: int, key: bytes) -> PublishedEntry | None:
    """The person's published entry of run ``run_id``: its newest correction, else the
    run's row; None when the run did not score the person and nothing was published since."""
    row = conn.execute(
        "SELECT eligible, score, grade, reason, report, cause FROM published_corrections"
        " WHERE subject_key = ? AND run_id = ? ORDER BY id DESC LIMIT 1",
        (key, run_id),
    ).fetchone()
    if row is not None:
        return PublishedEntry(bool(row[0]), row[1], row[2], row[3], bytes(row[4]), str(row[5]))
    row = conn.execute(
        "SELECT eligible, score, grade, reason FROM snapshots WHERE run_id = ? AND subject_key = ?",
        (run_id, key),
    ).fetchone()
    if row is None:
        return None
    return PublishedEntry(bool(row[0]), row[1], row[2], row[3], None, "")


def records_cutoff(conn: sqlite3.Connection, run: PublishedRun, key: bytes, at: str) -> str:
    """Up to when the records of the person's published entry of ``run`` were read: the
    run's ``records_through`` when the run scored the person (``at`` when it has none),
    else when the person's first entry was published (late), else ``at``."""
    scored = conn.execute(
        "SELECT 1 FROM snapshots WHERE run_id = ? AND subject_key = ?", (run.run_id, key)
    ).fetchone()
    if scored is not None:
        return run.records_through or at
    first = conn.execute(
        "SELECT corrected_at FROM published_corrections WHERE subject_key = ? AND run_id = ?"
        " ORDER BY id LIMIT 1",
        (key, run.run_id),
    ).fetchone()
    return at if first is None else str(first[0])


def append_correction(
    conn: sqlite3.Connection,
    run_id: int,
    key: bytes,
    *,
    eligible: bool,
    score: int | None,
    grade: str | None,
    reason: str | None,
    report: bytes,
    cause: str,
    at: str,
) -> None:
    conn.execute(
        "INSERT INTO published_corrections (run_id, subject_key, eligible, score, grade, reason,"
        " report, cause, corrected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, key, int(eligible), score, grade, reason, report, cause, at),
    )


def notify(conn: sqlite3.Connection, key: bytes, message: str, at: str) -> None:
    conn.execute(
        "INSERT INTO notifications (subject_key, kind, message, created_at) VALUES (?, ?, ?, ?)",
        (key, "grade", message, at),
    )


def opted_out_at(conn: sqlite3.Connection, key: bytes) -> str | None:
    """When the person opted out of scoring (N3), or None: a self-query of an opted-out
    person computes nothing."""
    row = conn.execute("SELECT opted_out_at FROM opt_outs WHERE subject_key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def subject_as_of(conn: sqlite3.Connection, key: bytes, as_of: date) -> Subject | None:
    """The engine's view of the person on ``as_of`` as the monthly run reads it (the
    registration date aside: a person the node learned of later is judged on the facts
    dated up to that day); None when unknown, deregistered or dead by then."""
    row = conn.execute(
        "SELECT birth_date, full_civil_capacity FROM subjects WHERE subject_key = ?"
        " AND deregistered_at IS NULL AND (died_on IS NULL OR died_on > ?)",
        (key, as_of.isoformat()),
    ).fetchone()
    if row is None:
        return None
    residences = conn.execute(
        "SELECT kind, since FROM residences WHERE subject_key = ?"
        " AND (ended_on IS NULL OR ended_on > ?) ORDER BY since, kind",
        (key, as_of.isoformat()),
    ).fetchall()
    return Subject(
        date.fromisoformat(row[0]),
        tuple(Residence(kind, date.fromisoformat(since)) for kind, since in residences),
        full_civil_capacity=bool(row[1]),
    )


_RECORDS = (
    "SELECT record_id, source, category, act_id, recognised_on, valid_until, level, "
    "severity, legal_document, status, flags, provenance FROM records WHERE subject_key = ?"
)


def records_through(
    conn: sqlite3.Connection, key: bytes, through: str | None
) -> list[StoredRecord]:
    """The person's records submitted up to ``through`` (every record when None)."""
    if through is None:
        rows = conn.execute(_RECORDS, (key,)).fetchall()
    else:
        rows = conn.execute(_RECORDS + " AND submitted_at <= ?", (key, through)).fetchall()
    return records_of_rows(rows)


# -- the scheduler's runs ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthKey:
    """One monthly run of the scheduler: a month under one scheme version."""

    period: str
    scheme_id: str
    scheme_version: str


@dataclass(frozen=True, slots=True)
class MonthlyRunRow:
    period: str
    scheme_id: str
    scheme_version: str
    state: str  # running | finished | failed
    attempts: int
    people: int
    started_at: str
    finished_at: str | None
    failed_at: str | None
    error: str


_RUN_COLUMNS = (
    "period, scheme_id, scheme_version, state, attempts, people, started_at, finished_at,"
    " failed_at, error"
)


_WHERE_MONTH = " WHERE period = ? AND scheme_id = ? AND scheme_version = ?"


def _month(m: MonthKey) -> tuple[str, str, str]:
    return m.period, m.scheme_id, m.scheme_version


def monthly_run(conn: sqlite3.Connection, month: MonthKey) -> MonthlyRunRow | None:
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM monthly_runs{_WHERE_MONTH}", _month(month)
    ).fetchone()
    return None if row is None else MonthlyRunRow(*row)


def monthly_runs(conn: sqlite3.Connection, limit: int) -> list[MonthlyRunRow]:
    """The newest ``limit`` runs, newest first."""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM monthly_runs ORDER BY started_at DESC, period DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [MonthlyRunRow(*r) for r in rows]


def mark_started(conn: sqlite3.Connection, month: MonthKey, *, people: int, at: str) -> None:
    """A new run, or another attempt of one that failed or was interrupted."""
    conn.execute(
        "INSERT INTO monthly_runs (period, scheme_id, scheme_version, state, people, started_at)"
        " VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (period, scheme_id, scheme_version)"
        " DO UPDATE SET state = 'running', attempts = monthly_runs.attempts + 1, people = excluded.people,"
        " started_at = excluded.started_at, failed_at = NULL, error = ''",
        (*_month(month), people, at),
    )


def mark_finished(conn: sqlite3.Connection, month: MonthKey, at: str) -> None:
    conn.execute(
        f"UPDATE monthly_runs SET state = 'finished', finished_at = ?, error = ''{_WHERE_MONTH}",
        (at, *_month(month)),
    )


def mark_failed(conn: sqlite3.Connection, month: MonthKey, *, error: str, at: str) -> None:
    conn.execute(
        f"UPDATE monthly_runs SET state = 'failed', failed_at = ?, error = ?{_WHERE_MONTH}",
        (at, error[:64], *_month(month)),
    )


def run_progress(conn: sqlite3.Connection, month: MonthKey) -> tuple[int, int, int]:
    """(chunks done, chunks, people scored so far) of the snapshot run of ``month``."""
    row = conn.execute(
        "SELECT r.chunks, count(c.chunk), coalesce(sum(c.subjects), 0) FROM snapshot_runs AS r"
        " LEFT JOIN snapshot_run_chunks AS c USING (run_id)"
        " WHERE r.period = ? AND r.scheme_id = ? AND r.scheme_version = ?"
        " GROUP BY r.run_id, r.chunks",
        _month(month),
    ).fetchone()
    if row is None:
        return 0, 0, 0
    return int(row[1]), int(row[0]), int(row[2])


def month_steps_ended(conn: sqlite3.Connection) -> int:
    """How many monthly runs ended (finished or failed), on a test bed's database."""
    row = conn.execute("SELECT count(*) FROM monthly_runs WHERE state != 'running'").fetchone()
    return int(row[0])
