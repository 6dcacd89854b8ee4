"""Monthly recomputation: score a whole population into stored snapshots.

Invariants:

* One run per ``(period, scheme id, scheme version)``; everyone the node holds
  when the run reads them (not deregistered or dead by the period's last day,
  ``as_of``) is scored on ``as_of`` with :func:`scoring.score`
  (``explain=False``): the rules live in the engine only.
* Subjects are split into ``chunks`` contiguous ``subject_key`` ranges (keys
  are HMACs, so ranges of the key space hold about equal numbers of people).
  Each chunk is read with three range scans (subjects, residences, records),
  scored, and written with its ``snapshot_run_chunks`` row in ONE
  transaction: an interrupted run holds complete chunks only, and running it
  again resumes with the missing chunks.  A finished run is not recomputed
  (idempotent) unless ``force`` is given, which replaces it, or it scored nobody
  and the node holds people now (a fresh node's first month, run by its own
  scheduler before the population authority filed anyone: docs/adr/0514).
* Memory is bounded by a few chunks: nothing reads the whole population.
* ``records_through`` (an ISO instant of the node's clock, stored on the run) makes
  the run reproducible: it scores only records submitted up to and including it,
  so a record filed while the run goes is left to the next month (H3) and the
  published score can be explained again later from the same records
  (:mod:`node.monthly`, docs/adr/0514).  A resumed run keeps the stored instant.
* Workers (processes) only read; the calling process is the only writer.
* A scheme that has expired by ``as_of`` runs nothing (``SCHEME_EXPIRED``):
  the check precedes any read, so no run row or snapshot is written.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from node.core._errors import CodedNodeError
from node.store import Connection, StorageError, WriterTurn, connect, offline_job, writer_turn
from node.store import _snapshot_runs as runs
from node.store._backend import Target, resolve
from scoring import Residence, Scheme, Subject, score

__all__ = [
    "BatchError",
    "Chunk",
    "RecordRow",
    "RunSummary",
    "chunk_bounds",
    "count_run_subjects",
    "ended_period_as_of",
    "load_subject",
    "period_as_of",
    "read_chunk",
    "run_month",
]

CHUNK_SUBJECTS = 5_000
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_NO_FLAGS: frozenset[str] = frozenset()


class BatchError(CodedNodeError):
    """A batch job that cannot run; ``code`` is stable, the message names the input."""


def period_as_of(period: str) -> date:
    """The last day of ``YYYY-MM``; raises ``INVALID_PERIOD``."""
    match = _PERIOD.match(period) if isinstance(period, str) else None
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1900:
        raise BatchError("INVALID_PERIOD", f"period {period!r} is not YYYY-MM")
    year, month = int(match[1]), int(match[2])
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def ended_period_as_of(period: str, today: date) -> date:
    """The last day of ``YYYY-MM`` if that month is over on ``today`` (the caller's UTC
    date); ``INVALID_PERIOD`` otherwise (a run "as of" a day that has
    not come would be stored, signed and pushed as the month's result, H3)."""
    last = period_as_of(period)
    if last >= today:
        raise BatchError(
            "INVALID_PERIOD",
            f"period {period!r} has not ended yet (it ends on {last.isoformat()};"
            f" today is {today.isoformat()} UTC)",
        )
    return last


class RecordRow(NamedTuple):
    """A stored record as the engine reads it (``scoring.RecordLike``)."""

    record_id: str
    category: str
    act_id: str
    source: str
    recognised_on: date
    valid_until: date | None
    level: str | None
    severity: str | None
    legal_document: str | None
    status: str
    flags: frozenset[str]


class Chunk(NamedTuple):
    number: int
    lo: bytes
    hi: bytes | None  # None: to the end of the key space


def chunk_bounds(chunks: int) -> list[Chunk]:
    """``chunks`` contiguous ranges covering the whole 32-byte key space."""
    span = 1 << 64
    bounds = [(i * span // chunks).to_bytes(8, "big") for i in range(chunks)]
    return [Chunk(i, bounds[i], bounds[i + 1] if i + 1 < chunks else None) for i in range(chunks)]


def read_chunk(
    conn: Connection, chunk: Chunk, as_of: date, records_through: str | None = None
) -> Iterator[tuple[bytes, Subject, list[RecordRow]]]:
    """Everyone the node holds in ``chunk`` (not deregistered or dead by ``as_of``, not
    opted out), with residences and records (those submitted up to ``records_through``
    when given), in key order; the engine decides who is eligible on ``as_of``."""
    day_after = (as_of + timedelta(days=1)).isoformat()
    people = runs.chunk_subjects(conn, chunk.lo, chunk.hi, day_after, as_of.isoformat())
    if not people:
        return
    residences: dict[bytes, list[Residence]] = {}
    parse = date.fromisoformat
    for key, kind, since in runs.chunk_residences(conn, chunk.lo, chunk.hi, as_of.isoformat()):
        residences.setdefault(key, []).append(Residence(kind, parse(since)))
    records: dict[bytes, list[RecordRow]] = {}
    dates: dict[str | None, date | None] = {None: None}
    flag_sets: dict[str, frozenset[str]] = {"": _NO_FLAGS}
    for (
        key,
        rid,
        cat,
        act,
        src,
        rec_on,
        until,
        level,
        sev,
        legal,
        status,
        flags,
    ) in runs.chunk_records(conn, chunk.lo, chunk.hi, records_through):
        recognised = dates.get(rec_on)
        if recognised is None:
            recognised = dates[rec_on] = parse(rec_on)
        valid_until = dates.get(until)
        if valid_until is None and until is not None:
            valid_until = dates[until] = parse(until)
        fs = flag_sets.get(flags)
        if fs is None:
            fs = flag_sets[flags] = frozenset(flags.split(","))
        row = RecordRow(rid, cat, act, src, recognised, valid_until, level, sev, legal, status, fs)
        bucket = records.get(key)
        if bucket is None:
            records[key] = [row]
        else:
            bucket.append(row)
    births: dict[str, date] = {}
    for key, born_text, capacity in people:
        born = births.get(born_text)
        if born is None:
            born = births[born_text] = parse(born_text)
        subject = Subject(born, tuple(residences.get(key, ())), full_civil_capacity=bool(capacity))
        yield key, subject, records.get(key, [])


def count_run_subjects(conn: Connection, as_of: date) -> int:
    """How many people a run as of ``as_of`` scores (the run's own selection)."""
    day_after = (as_of + timedelta(days=1)).isoformat()
    return runs.count_run_subjects(conn, day_after, as_of.isoformat())


def load_subject(
    conn: Connection, subject_key: bytes, as_of: date
) -> tuple[Subject, list[RecordRow]] | None:
    """One registered subject and its records, or None."""
    for _key, subject, records in read_chunk(
        conn, Chunk(-1, subject_key, subject_key + b"\0"), as_of
    ):
        return subject, records
    return None


# -- scoring a chunk (runs in workers) -------------------------------------------

SnapshotRow = tuple[int, bytes, int, int | None, str | None, str | None]


@dataclass(frozen=True)
class ChunkResult:
    chunk: int
    rows: list[SnapshotRow]
    eligible: int
    grades: Counter[str]


def score_chunk(  # noqa: PLR0917 - the worker's fixed arguments, then the chunk
    conn: Connection,
    scheme: Scheme,
    as_of: date,
    run_id: int,
    chunk: Chunk,
    records_through: str | None = None,
) -> ChunkResult:
    rows: list[SnapshotRow] = []
    grades: Counter[str] = Counter()
    eligible = 0
    try:
        for key, subject, records in read_chunk(conn, chunk, as_of, records_through):
            result = score(subject, records, scheme, as_of, explain=False)
            if result.eligible:
                eligible += 1
                grades[result.grade or ""] += 1
                rows.append((run_id, key, 1, result.score, result.grade, None))
            else:
                rows.append((run_id, key, 0, None, None, result.ineligible_reason))
    except KeyError as exc:
        raise BatchError(
            "UNKNOWN_CATEGORY",
            f"a stored record has category {exc.args[0]!r}, not in scheme {scheme.key}",
        ) from None
    return ChunkResult(chunk.number, rows, eligible, grades)


_worker: tuple[Connection, Scheme, date, int, str | None] | None = None


def _worker_init(
    db: Target, scheme: Scheme, as_of: date, run_id: int, records_through: str | None
) -> None:
    global _worker  # noqa: PLW0603 - one read-only connection per worker process
    _worker = (connect(db, readonly=True), scheme, as_of, run_id, records_through)


def _worker_chunk(chunk: Chunk) -> ChunkResult:
    assert _worker is not None
    conn, scheme, as_of, run_id, through = _worker
    return score_chunk(conn, scheme, as_of, run_id, chunk, through)


# -- the run ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    period: str
    scheme_key: str
    as_of: date
    chunks: int
    chunks_computed: int  # in this invocation (0 when the run was already complete)
    subjects: int
    eligible: int
    seconds: float
    already_complete: bool
    grades: dict[str, int] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open_run(
    conn: Connection,
    scheme: Scheme,
    period: str,
    as_of: date,
    chunk_subjects: int,
    *,
    force: bool,
    records_through: str | None,
) -> tuple[int, int, bool, str | None]:
    """(run_id, chunks, complete, records_through) of the run, creating it if needed."""
    row = runs.run_by_month(conn, period, scheme.id, scheme.version)
    if row is not None and row[2] is not None and _scored_nobody_then(conn, row[0]):
        force = True  # published before anyone was filed: a fresh node's first month
    if row is not None and force:
        runs.delete_run(conn, row[0])
        row = None
    if row is not None:  # resumed: the stored instant, so every chunk reads the same records
        return row[0], row[1], row[2] is not None, row[3]
    chunks = max(1, math.ceil(runs.count_subjects(conn) / chunk_subjects))
    run_id = runs.create_run(conn, period, scheme.id, scheme.version, as_of.isoformat(), chunks,
                             _now(), records_through)  # fmt: skip
    return run_id, chunks, False, records_through


def _scored_nobody_then(conn: Connection, run_id: int) -> bool:
    """The finished run scored nobody, and the node holds people now."""
    return runs.run_scored(conn, run_id) == 0 and runs.holds_anyone(conn)


def run_month(
    db: Target,
    scheme: Scheme,
    period: str,
    *,
    workers: int = 2,
    chunk_subjects: int = CHUNK_SUBJECTS,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    records_through: str | None = None,
) -> RunSummary:
    """Score everyone in ``db`` for ``period`` under ``scheme``; store snapshots.

    ``workers`` ≤ 1 scores in this process (chunks in key order); more uses
    that many reader processes.  ``records_through``: see the module docstring
    (None: every stored record).  Raises :class:`BatchError` or
    :class:`~node.store.StorageError` (``DB_NOT_FOUND`` …); a scheme past its
    ``valid_until`` on the period's last day refuses the whole run before the
    database is opened (``SCHEME_EXPIRED``, N12), not subject by subject.
    """
    started = time.perf_counter()
    as_of = period_as_of(period)
    if scheme.expired_on(as_of):
        raise BatchError(
            "SCHEME_EXPIRED",
            f"scheme {scheme.key} expired after {scheme.valid_until}; it cannot score"
            f" {period} (as of {as_of}); nothing was run (N12)",
        )
    if chunk_subjects < 1:
        raise BatchError("INVALID_CHUNK", "chunk size must be at least 1")
    # ``[storage]`` itself, a postgresql:// URL (issue 18) or a SQLite file, which must
    # exist.  The target travels whole to the workers: ``[storage] password_file`` is
    # read where each connection is opened, never turned into a URL or an argument.
    path: Target = db
    backend = resolve(db)
    if not backend.is_pg:
        assert backend.path is not None
        if not backend.path.exists():
            raise StorageError("DB_NOT_FOUND", f"database {str(backend.path)!r} does not exist")
    held = contextlib.ExitStack()
    held.enter_context(offline_job(path))  # for the whole run: restore refuses meanwhile
    try:
        conn = connect(path, create=False)
    except BaseException:
        held.close()
        raise
    # every write takes the node's writer turn, as a running node's writers do (ADR
    # 0312): the node's writers wait in flock, not in SQLite's sleeping busy handler
    lock = held.enter_context(writer_turn(path))
    try:
        with lock:
            run_id, n_chunks, complete, through = _open_run(
                conn, scheme, period, as_of, chunk_subjects, force=force,
                records_through=records_through,
            )  # fmt: skip
        done = runs.chunks_done(conn, run_id)
        todo = [c for c in chunk_bounds(n_chunks) if c.number not in done]
        computed = 0
        if not complete:
            computed = _compute(conn, path, scheme, as_of, run_id, todo, workers, progress,
                                len(done), n_chunks, lock, through)  # fmt: skip
            with lock:
                runs.finish_run(conn, run_id, _now())
        subjects, eligible, grades = runs.run_totals(conn, run_id)
    finally:
        conn.close()
        held.close()
    return RunSummary(
        run_id,
        period,
        scheme.key,
        as_of,
        n_chunks,
        computed,
        subjects,
        eligible,
        time.perf_counter() - started,
        complete,
        grades,
    )


def _compute(  # noqa: PLR0917 - private helper of run_month
    conn: Connection,
    path: Target,
    scheme: Scheme,
    as_of: date,
    run_id: int,
    todo: list[Chunk],
    workers: int,
    progress: Callable[[int, int], None] | None,
    already: int,
    total: int,
    lock: WriterTurn,
    through: str | None,
) -> int:
    pool = None
    if workers > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(
            workers, initializer=_worker_init, initargs=(path, scheme, as_of, run_id, through)
        )
        results: Iterator[ChunkResult] = pool.imap_unordered(_worker_chunk, todo)
    else:
        reader = connect(path, readonly=True)
        results = (score_chunk(reader, scheme, as_of, run_id, c, through) for c in todo)
    computed = 0
    try:
        for res in results:
            with lock:
                # False: another run of the same month (the node's own scheduler and
                # `huxin score publish`) wrote this chunk meanwhile
                stored = runs.store_chunk(
                    conn, run_id, res.chunk, res.rows, (len(res.rows), res.eligible)
                )
            if not stored:
                continue
            computed += 1
            if progress is not None:
                progress(already + computed, total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        else:
            reader.close()
    return computed
