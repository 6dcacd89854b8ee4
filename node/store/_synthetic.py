"""The SQL of a synthetic population: its bulk writes, staging files and outcome labels.

:mod:`node.synthetic._population` decides who the people are and what they did; this
module writes them into a new node database and reads back what only a synthetic
database carries (``population_outcomes``, the spec in ``node_meta``).  Test beds
re-seal a generated population's ID numbers here too (node/demo/_testbed.py).

Invariants:

* a population is written by one writer, one transaction per chunk (``BEGIN`` …
  ``COMMIT``), rows bound with ``executemany`` or copied from a worker's staging file
  with ``INSERT … SELECT`` over a rowid range; a failure rolls the open chunk back;
* the database is new and not served while it is written, hence ``synchronous = OFF``
  and a large page cache, and a ``wal_checkpoint(TRUNCATE)`` at the end so the
  finished file stands alone;
* ``population_outcomes`` exists only in synthetic databases (a real node has no
  outcome labels): :func:`read_outcomes` answers None without it;
* a staging file has one untyped table per written table (``c0`` … ``cN``), written
  only by the worker process that owns it;
* on PostgreSQL (issue 18) the same chunks go in with binary ``COPY``
  (:func:`node.store._pg_bulk.copy_rows`, a staged chunk read back from its staging
  file), one transaction per chunk, and the session commits without waiting for the
  WAL flush (``synchronous_commit = off``: the database is new and not served; a
  crash loses the last chunks, never their consistency).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node.store._pg_bulk import copy_rows, pg_of

__all__ = [
    "STAGE_TABLES",
    "StagedChunk",
    "open_stage",
    "population_meta",
    "read_outcomes",
    "replace_sealed_ids",
    "sealed_ids",
    "stage_rows",
    "tune_for_bulk",
    "write_population",
]

#: The tables a chunk writes, in the order of a chunk's row lists, and their columns.
STAGE_TABLES = ("subjects", "residences", "records", "population_outcomes")
_STAGE_COLUMNS = (6, 3, 16, 2)

_INSERT_SUBJECTS = (
    "INSERT INTO subjects (subject_key, birth_date, full_civil_capacity, id_sealed,"
    " registered_at, deregistered_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_RESIDENCES = "INSERT INTO residences (subject_key, kind, since) VALUES (?, ?, ?)"
_INSERT_OUTCOMES = "INSERT INTO population_outcomes (subject_key, adverse) VALUES (?, ?)"
# Synthetic only: a real node has no outcome labels, so this table is not in the schema.
_CREATE_OUTCOMES = (
    "CREATE TABLE IF NOT EXISTS population_outcomes ("
    " subject_key BLOB PRIMARY KEY, adverse INTEGER NOT NULL CHECK (adverse IN (0, 1))"
    ") WITHOUT ROWID"
)
_CREATE_OUTCOMES_PG = (
    "CREATE TABLE IF NOT EXISTS population_outcomes ("
    " subject_key BYTEA PRIMARY KEY, adverse BIGINT NOT NULL CHECK (adverse IN (0, 1)))"
)
_INSERT_RECORDS = (
    "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id,"
    " recognised_on, valid_until, level, severity, legal_document, status,"
    " provenance, flags, batch_id, submitted_at, submitted_by)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?3)"  # filed by its source (M8)
)
_COLUMNS = {
    "subjects": "subject_key, birth_date, full_civil_capacity, id_sealed, registered_at,"
    " deregistered_at",
    "residences": "subject_key, kind, since",
    "population_outcomes": "subject_key, adverse",
    "records": "subject_key, record_id, source, category, polarity, act_id, recognised_on,"
    " valid_until, level, severity, legal_document, status, provenance, flags, batch_id,"
    " submitted_at",
}

#: A chunk's rows: subjects, residences, records, outcomes (node.synthetic's ChunkRows).
Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True)
class StagedChunk:
    """A chunk a worker wrote to its staging database: rowid ranges per table."""

    path: str
    ranges: tuple[tuple[int, int], ...]  # subjects, residences, records, outcomes
    counts: tuple[int, int, int, int]


# -- reads -----------------------------------------------------------------------------


def read_outcomes(
    conn: sqlite3.Connection, lo: bytes, hi: bytes | None
) -> dict[bytes, bool] | None:
    """Outcome labels of subjects with ``lo <= subject_key < hi`` (``hi`` None: to the end),
    or None when the database carries none (a real node's)."""
    if pg_of(conn) is not None:
        (present,) = conn.execute(
            "SELECT to_regclass('population_outcomes') IS NOT NULL"
        ).fetchone()
        if not present:
            return None
    try:
        if hi is None:
            rows = conn.execute(
                "SELECT subject_key, adverse FROM population_outcomes WHERE subject_key >= ?",
                (lo,),
            )
        else:
            rows = conn.execute(
                "SELECT subject_key, adverse FROM population_outcomes"
                " WHERE subject_key >= ? AND subject_key < ?",
                (lo, hi),
            )
        return {key: bool(adverse) for key, adverse in rows}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise


def population_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The ``population.*`` keys of ``node_meta`` (empty: not a synthetic database)."""
    return dict(conn.execute("SELECT key, value FROM node_meta WHERE key LIKE 'population.%'"))


# -- a worker's staging file -----------------------------------------------------------


def open_stage(path: str) -> sqlite3.Connection:
    """A new staging database at ``path`` with one untyped table per written table."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    for name, n in zip(STAGE_TABLES, _STAGE_COLUMNS, strict=True):
        cols = ", ".join(f"c{i}" for i in range(n))
        conn.execute(f"CREATE TABLE {name} ({cols})")
    return conn


def stage_rows(conn: sqlite3.Connection, tables: Rows) -> tuple[tuple[int, int], ...]:
    """Append a chunk's rows to the staging tables (one transaction); their rowid ranges."""
    ranges: list[tuple[int, int]] = []
    conn.execute("BEGIN")
    for name, n, batch in zip(STAGE_TABLES, _STAGE_COLUMNS, tables, strict=True):
        (last,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {name}").fetchone()
        marks = ", ".join("?" * n)
        conn.executemany(f"INSERT INTO {name} VALUES ({marks})", batch)
        ranges.append((last + 1, last + len(batch)))
    conn.execute("COMMIT")
    return tuple(ranges)


# -- the single writer -----------------------------------------------------------------


def tune_for_bulk(conn: sqlite3.Connection) -> None:
    """A new, unserved database: no fsync per commit, a 256 MiB page cache."""
    if pg_of(conn) is not None:
        conn.execute("SET synchronous_commit = off")
        return
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")


def _write_rows(conn: sqlite3.Connection, rows: Rows) -> tuple[int, int, int, int]:
    conn.executemany(_INSERT_SUBJECTS, rows[0])
    conn.executemany(_INSERT_RESIDENCES, rows[1])
    conn.executemany(_INSERT_RECORDS, rows[2])
    conn.executemany(_INSERT_OUTCOMES, rows[3])
    return len(rows[0]), len(rows[1]), len(rows[2]), len(rows[3])


def _copy_rows_pg(raw: Any, rows: Rows) -> tuple[int, int, int, int]:
    records = [*_COLUMNS["records"].split(", "), "submitted_by"]
    counts = []
    for name, batch in zip(STAGE_TABLES, rows, strict=True):
        if name == "records":  # a synthetic record is filed by its source (column 2)
            batch = [(*r, r[2]) for r in batch]
            counts.append(copy_rows(raw, name, records, batch))
        else:
            counts.append(copy_rows(raw, name, _COLUMNS[name].split(", "), batch))
    return counts[0], counts[1], counts[2], counts[3]


def _staged_rows(staged: StagedChunk) -> list[list[Any]]:
    """A staged chunk's rows read back from its worker's staging file."""
    stage = sqlite3.connect(f"file:{staged.path}?mode=ro", uri=True)
    try:
        return [
            stage.execute(
                f"SELECT * FROM {name} WHERE rowid BETWEEN ? AND ? ORDER BY rowid", rng
            ).fetchall()
            for name, rng in zip(STAGE_TABLES, staged.ranges, strict=True)
        ]
    finally:
        stage.close()


def _copy_staged(conn: sqlite3.Connection, staged: StagedChunk, aliases: dict[str, str]) -> None:
    alias = aliases.get(staged.path)
    if alias is None:
        alias = aliases[staged.path] = f"stage{len(aliases)}"
        conn.execute("ATTACH DATABASE ? AS " + alias, (staged.path,))
    for name, (lo, hi) in zip(STAGE_TABLES, staged.ranges, strict=True):
        if hi < lo:
            continue
        n = len(_COLUMNS[name].split(","))
        columns, sources = _COLUMNS[name], ", ".join(f"c{i}" for i in range(n))
        if name == "records":  # a synthetic record is filed by its source
            columns, sources = columns + ", submitted_by", sources + ", c2"
        conn.execute(
            f"INSERT INTO {name} ({columns}) SELECT {sources} FROM {alias}.{name}"
            " WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
            (lo, hi),
        )


def write_population(
    conn: sqlite3.Connection,
    meta: Iterable[tuple[str, str]],
    chunks: Iterable[Rows | StagedChunk],
    written: Callable[[tuple[int, int, int, int]], None],
) -> None:
    """Write a population: the outcome table and ``meta`` (one transaction), then each
    chunk in a transaction of its own (``written`` is told its counts after its
    commit), then detach the staging files and truncate the WAL.  A failure rolls the
    open transaction back and propagates."""
    aliases: dict[str, str] = {}
    raw = pg_of(conn)
    try:
        conn.execute("BEGIN")
        conn.execute(_CREATE_OUTCOMES if raw is None else _CREATE_OUTCOMES_PG)
        conn.executemany("INSERT INTO node_meta (key, value) VALUES (?, ?)", list(meta))
        conn.execute("COMMIT")
        for result in chunks:
            conn.execute("BEGIN")
            if raw is not None:
                rows = _staged_rows(result) if isinstance(result, StagedChunk) else result
                counts = _copy_rows_pg(raw, rows)
            elif isinstance(result, StagedChunk):
                _copy_staged(conn, result, aliases)
                counts = result.counts
            else:
                counts = _write_rows(conn, result)
            conn.execute("COMMIT")
            written(counts)
        for alias in aliases.values():
            conn.execute(f"DETACH DATABASE {alias}")
        if raw is None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# -- test beds -------------------------------------------------------------------------


def sealed_ids(conn: sqlite3.Connection) -> list[Any]:
    """(subject_key, id_sealed) of every subject."""
    return conn.execute("SELECT subject_key, id_sealed FROM subjects").fetchall()


def replace_sealed_ids(conn: sqlite3.Connection, rows: Iterable[tuple[bytes, bytes]]) -> None:
    """Set each (id_sealed, subject_key)'s sealed ID number, in one transaction."""
    conn.execute("BEGIN")
    conn.executemany("UPDATE subjects SET id_sealed = ? WHERE subject_key = ?", rows)
    conn.execute("COMMIT")
