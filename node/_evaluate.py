"""Model evaluation before rollout (H11): current scheme against a candidate.

Scores the whole stored population under both schemes on one date (streamed
by chunks, both cores) and reports each grade distribution, the population
stability index (PSI) of the candidate against the current one, and how many
people move by how many tiers.

Invariants: only people eligible under both schemes are compared in the
distributions and moves (eligibility differences are counted separately);
tier moves are differences of rank (0 = worst grade), positive = up; PSI is
computed only when both schemes have the same grade ids (otherwise None),
with empty bins floored at ``PSI_FLOOR`` so the index stays finite.
"""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from scoring import Scheme, score

from ._batch import CHUNK_SUBJECTS, BatchError, Chunk, chunk_bounds, read_chunk
from ._storage import StorageError, connect

__all__ = ["PSI_FLOOR", "Evaluation", "evaluate", "psi"]

PSI_FLOOR = 1e-4

Pair = tuple[str | None, str | None]  # (current grade, candidate grade); None = not eligible


@dataclass(frozen=True)
class Evaluation:
    current: Scheme
    candidate: Scheme
    as_of: date
    subjects: int
    pairs: dict[Pair, int]

    def distribution(self, which: str) -> dict[str, int]:
        """Grade counts (best first) among people eligible under both schemes."""
        scheme = self.current if which == "current" else self.candidate
        index = 0 if which == "current" else 1
        counts = dict.fromkeys(scheme.grades, 0)
        for pair, n in self.pairs.items():
            if pair[0] is not None and pair[1] is not None:
                grade = pair[index]
                assert grade is not None
                counts[grade] += n
        return counts

    @property
    def compared(self) -> int:
        return sum(n for (a, b), n in self.pairs.items() if a is not None and b is not None)

    @property
    def eligibility_changes(self) -> tuple[int, int]:
        """(eligible only under current, eligible only under candidate)."""
        only_current = sum(n for (a, b), n in self.pairs.items() if a is not None and b is None)
        only_candidate = sum(n for (a, b), n in self.pairs.items() if a is None and b is not None)
        return only_current, only_candidate

    def moves(self) -> dict[int, int]:
        """Number of people by tier move (candidate rank − current rank), sorted."""
        out: Counter[int] = Counter()
        for (a, b), n in self.pairs.items():
            if a is not None and b is not None:
                out[self.candidate.rank(b) - self.current.rank(a)] += n
        return dict(sorted(out.items()))

    def psi(self) -> float | None:
        if self.current.grades != self.candidate.grades:
            return None
        return psi(self.distribution("current"), self.distribution("candidate"))


def psi(expected: dict[str, int], actual: dict[str, int]) -> float:
    """Population stability index: Σ (a − e) · ln(a / e) over shares of each bin."""
    bins = list(expected)
    e_total = sum(expected.values()) or 1
    a_total = sum(actual.values()) or 1
    total = 0.0
    for b in bins:
        e = max(expected.get(b, 0) / e_total, PSI_FLOOR)
        a = max(actual.get(b, 0) / a_total, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _pairs(
    conn: sqlite3.Connection, current: Scheme, candidate: Scheme, as_of: date, chunk: Chunk
) -> tuple[int, Counter[Pair]]:
    pairs: Counter[Pair] = Counter()
    n = 0
    scheme = current
    try:
        for _key, subject, records in read_chunk(conn, chunk, as_of):
            n += 1
            scheme = current
            a = score(subject, records, current, as_of, explain=False).grade
            scheme = candidate
            b = score(subject, records, candidate, as_of, explain=False).grade
            pairs[(a, b)] += 1
    except KeyError as exc:
        raise BatchError(
            "UNKNOWN_CATEGORY",
            f"a stored record has category {exc.args[0]!r}, not in scheme {scheme.key}",
        ) from None
    return n, pairs


_worker: tuple[sqlite3.Connection, Scheme, Scheme, date] | None = None


def _worker_init(db: str, current: Scheme, candidate: Scheme, as_of: date) -> None:
    global _worker  # noqa: PLW0603 - one read-only connection per worker process
    _worker = (connect(db, readonly=True), current, candidate, as_of)


def _worker_chunk(chunk: Chunk) -> tuple[int, Counter[Pair]]:
    assert _worker is not None
    conn, current, candidate, as_of = _worker
    return _pairs(conn, current, candidate, as_of, chunk)


def evaluate(
    db: str | Path,
    current: Scheme,
    candidate: Scheme,
    as_of: date,
    *,
    workers: int = 2,
    chunk_subjects: int = CHUNK_SUBJECTS,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    path = Path(db)
    if not path.exists():
        raise StorageError("DB_NOT_FOUND", f"database {str(path)!r} does not exist")
    reader = connect(path, readonly=True)
    try:
        (subjects,) = reader.execute("SELECT count(*) FROM subjects").fetchone()
        chunks = chunk_bounds(max(1, math.ceil(subjects / chunk_subjects)))
        pool = None
        if workers > 1 and len(chunks) > 1:
            ctx = multiprocessing.get_context("spawn")
            pool = ctx.Pool(
                workers, initializer=_worker_init, initargs=(str(path), current, candidate, as_of)
            )
            results: Iterator[tuple[int, Counter[Pair]]] = pool.imap_unordered(
                _worker_chunk, chunks
            )
        else:
            results = (_pairs(reader, current, candidate, as_of, c) for c in chunks)
        total: Counter[Pair] = Counter()
        scored = 0
        try:
            for i, (n, pairs) in enumerate(results, start=1):
                scored += n
                total.update(pairs)
                if progress is not None:
                    progress(i, len(chunks))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        reader.close()
    return Evaluation(current, candidate, as_of, scored, dict(total))
