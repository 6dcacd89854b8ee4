"""Storage of the monthly batch run: ``snapshot_runs``, their chunks and ``snapshots``.

Every function takes the batch job's own autocommit ``sqlite3`` connection
(:func:`node.store.connect`); the caller holds the node's writer lock around each
write (ADR 0312).  :mod:`node.monthly._batch` decides what to run; this module only
reads and writes rows.

Invariants:

* one ``snapshot_runs`` row per ``(period, scheme id, scheme version)``;
* a chunk's ``snapshots`` rows and its ``snapshot_run_chunks`` row commit in ONE
  transaction (:func:`store_chunk`), so an interrupted run holds complete chunks
  only; a chunk already stored is never written twice;
* replacing a run deletes its snapshots and its run row in ONE transaction
  (:func:`delete_run`);
* the chunk readers scan one contiguous ``subject_key`` range each
  (``lo <= key < hi``; ``hi`` None: to the end of the key space), in key order.

On PostgreSQL (issue 18) the connection is the store's adapter: the chunk readers go
through a server-side cursor (:func:`node.store._pg_bulk.stream`) and a chunk's
snapshots are written with one binary ``COPY``; its chunk row is inserted FIRST
(``ON CONFLICT DO NOTHING``), so of two runs storing the same chunk the second waits
on the first's row, finds it and writes nothing, as ``BEGIN IMMEDIATE`` makes it
on SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from node.store._pg_bulk import copy_rows, pg_of, stream

__all__ = [
    "chunk_records",
    "chunk_residences",
    "chunk_subjects",
    "chunks_done",
    "count_run_subjects",
    "count_subjects",
    "create_run",
    "delete_run",
    "finish_run",
    "holds_anyone",
    "run_by_month",
    "run_scored",
    "run_totals",
    "store_chunk",
]


def _range(sql: str, lo: bytes, hi: bytes | None) -> tuple[str, tuple[bytes, ...]]:
    if hi is None:
        return sql.format(cond="subject_key >= ?"), (lo,)
    return sql.format(cond="subject_key >= ? AND subject_key < ?"), (lo, hi)


_SUBJECTS = (
    "SELECT subject_key, birth_date, full_civil_capacity FROM subjects WHERE {cond}"
    # who is in the month is decided by facts dated by its end, not by when the node
    # learned them: a resident filed after the month ended is scored for it (ADR 0515)
    " AND (deregistered_at IS NULL OR deregistered_at >= ?)"
    " AND (died_on IS NULL OR died_on > ?)"  # the dead leave the run (docs/adr/0508)
    " AND subject_key NOT IN (SELECT subject_key FROM opt_outs)"  # N3: node.rights._optout
    " ORDER BY subject_key"
)
# a residence counts on as_of unless it ended by then (move-out, permit expiry)
_RESIDENCES = (
    "SELECT subject_key, kind, since FROM residences WHERE {cond}"
    " AND (ended_on IS NULL OR ended_on > ?) ORDER BY subject_key"
)
_RECORDS = (
    "SELECT subject_key, record_id, category, act_id, source, recognised_on, valid_until,"
    " level, severity, legal_document, status, flags FROM records WHERE {cond}"
    " ORDER BY subject_key, record_id"
)
_RECORDS_THROUGH = _RECORDS.replace(" ORDER BY", " AND submitted_at <= ? ORDER BY")


def _read(conn: Any, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
    """The rows of ``sql``: a server-side cursor on PostgreSQL, a plain one on SQLite."""
    raw = pg_of(conn)
    if raw is None:
        return iter(conn.execute(sql, params))
    return stream(raw, sql.replace("?", "%s"), params)


def chunk_subjects(
    conn: sqlite3.Connection, lo: bytes, hi: bytes | None, day_after: str, as_of: str
) -> list[Any]:
    """(subject_key, birth_date, full_civil_capacity) of everyone in the range not
    deregistered before ``day_after``, not dead by ``as_of`` and not opted out."""
    sql, args = _range(_SUBJECTS, lo, hi)
    return list(_read(conn, sql, (*args, day_after, as_of)))


def chunk_residences(
    conn: sqlite3.Connection, lo: bytes, hi: bytes | None, as_of: str
) -> Iterator[Any]:
    """(subject_key, kind, since) of the residences in the range not ended by ``as_of``."""
    sql, args = _range(_RESIDENCES, lo, hi)
    return _read(conn, sql, (*args, as_of))


def chunk_records(
    conn: sqlite3.Connection, lo: bytes, hi: bytes | None, records_through: str | None
) -> list[Any]:
    """The records in the range (submitted up to ``records_through`` when given), in
    (subject_key, record_id) order, as the engine reads them."""
    sql, args = _range(_RECORDS if records_through is None else _RECORDS_THROUGH, lo, hi)
    params: tuple[bytes | str, ...] = args if records_through is None else (*args, records_through)
    return list(_read(conn, sql, params))


def count_run_subjects(conn: sqlite3.Connection, day_after: str, as_of: str) -> int:
    """How many people :func:`chunk_subjects` selects over the whole key space."""
    sql = _SUBJECTS.format(cond="1 = 1").replace(" ORDER BY subject_key", "")
    (n,) = conn.execute(f"SELECT count(*) FROM ({sql}) AS run", (day_after, as_of)).fetchone()
    return int(n)


def run_by_month(
    conn: sqlite3.Connection, period: str, scheme_id: str, scheme_version: str
) -> tuple[int, int, str | None, str | None] | None:
    """(run_id, chunks, finished_at, records_through) of the month's run, or None."""
    row = conn.execute(
        "SELECT run_id, chunks, finished_at, records_through FROM snapshot_runs"
        " WHERE period = ? AND scheme_id = ? AND scheme_version = ?",
        (period, scheme_id, scheme_version),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), row[2], row[3])


def delete_run(conn: sqlite3.Connection, run_id: int) -> None:
    """The run and its snapshots, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM snapshots WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM snapshot_runs WHERE run_id = ?", (run_id,))
    conn.execute("COMMIT")


def count_subjects(conn: sqlite3.Connection) -> int:
    """Every stored subject (the run's chunk count is sized on it)."""
    (subjects,) = conn.execute("SELECT count(*) FROM subjects").fetchone()
    return int(subjects)


def create_run(  # noqa: PLR0917 - one column each
    conn: sqlite3.Connection,
    period: str,
    scheme_id: str,
    scheme_version: str,
    as_of: str,
    chunks: int,
    started_at: str,
    records_through: str | None,
) -> int:
    """A new run row; its ``run_id``."""
    (run_id,) = conn.execute(
        "INSERT INTO snapshot_runs (period, scheme_id, scheme_version, as_of, chunks, started_at,"
        " records_through) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
        (period, scheme_id, scheme_version, as_of, chunks, started_at, records_through),
    ).fetchone()
    return int(run_id)


def run_scored(conn: sqlite3.Connection, run_id: int) -> int:
    """How many people the run's stored chunks scored."""
    (scored,) = conn.execute(
        "SELECT coalesce(sum(subjects), 0) FROM snapshot_run_chunks WHERE run_id = ?", (run_id,)
    ).fetchone()
    return int(scored)


def holds_anyone(conn: sqlite3.Connection) -> bool:
    """The node holds at least one subject."""
    return conn.execute("SELECT 1 FROM subjects LIMIT 1").fetchone() is not None


def run_totals(conn: sqlite3.Connection, run_id: int) -> tuple[int, int, dict[str, int]]:
    """(people scored, eligible, eligible people per grade) of the run."""
    subjects, eligible = conn.execute(
        "SELECT coalesce(sum(subjects), 0), coalesce(sum(eligible), 0)"
        " FROM snapshot_run_chunks WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    grades = dict(
        conn.execute(
            "SELECT grade, count(*) FROM snapshots WHERE run_id = ? AND eligible = 1"
            " GROUP BY grade",
            (run_id,),
        ).fetchall()
    )
    return int(subjects), int(eligible), grades


def chunks_done(conn: sqlite3.Connection, run_id: int) -> set[int]:
    """The numbers of the run's stored chunks."""
    return {
        int(c)
        for (c,) in conn.execute(
            "SELECT chunk FROM snapshot_run_chunks WHERE run_id = ?", (run_id,)
        )
    }


def finish_run(conn: sqlite3.Connection, run_id: int, at: str) -> None:
    conn.execute("UPDATE snapshot_runs SET finished_at = ? WHERE run_id = ?", (at, run_id))


def store_chunk(
    conn: sqlite3.Connection,
    run_id: int,
    chunk: int,
    rows: Iterable[tuple[int, bytes, int, int | None, str | None, str | None]],
    counts: tuple[int, int],
) -> bool:
    """The chunk's snapshot rows (in bulk) and its chunk row ``counts`` = (people,
    eligible) in ONE transaction; False (nothing written) when the chunk is stored
    already (another run of the same month, the node's own scheduler and
    ``huxin score publish``, wrote it meanwhile)."""
    raw = pg_of(conn)
    if raw is not None:
        return _store_chunk_pg(conn, raw, run_id, chunk, rows, counts)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(
            "SELECT 1 FROM snapshot_run_chunks WHERE run_id = ? AND chunk = ?",
            (run_id, chunk),
        ).fetchone():
            conn.execute("ROLLBACK")
            return False
        conn.executemany(
            "INSERT INTO snapshots"
            " (run_id, subject_key, eligible, score, grade, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute(
            "INSERT INTO snapshot_run_chunks (run_id, chunk, subjects, eligible)"
            " VALUES (?, ?, ?, ?)",
            (run_id, chunk, *counts),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


_SNAPSHOT_COLUMNS = ("run_id", "subject_key", "eligible", "score", "grade", "reason", "period")


def _store_chunk_pg(  # noqa: PLR0917 - store_chunk's arguments
    conn: Any,
    raw: Any,
    run_id: int,
    chunk: int,
    rows: Iterable[tuple[int, bytes, int, int | None, str | None, str | None]],
    counts: tuple[int, int],
) -> bool:
    """:func:`store_chunk` on PostgreSQL: the chunk row first (a second writer of the
    chunk waits on it, then finds it), then the snapshots in one binary COPY, each with
    its run's period (the partition key)."""
    conn.execute("BEGIN")
    try:
        (period,) = conn.execute(
            "SELECT period FROM snapshot_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        claimed = conn.execute(
            "INSERT INTO snapshot_run_chunks (run_id, chunk, subjects, eligible)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING chunk",
            (run_id, chunk, *counts),
        ).fetchone()
        if claimed is None:
            conn.execute("ROLLBACK")
            return False
        copy_rows(raw, "snapshots", _SNAPSHOT_COLUMNS, ((*r, period) for r in rows))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True
