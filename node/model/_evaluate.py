"""Model evaluation before rollout (H11): current scheme against a candidate.

Scores the whole stored population under both schemes on one date (streamed
by chunks, both cores) and reports each grade distribution, the population
stability index (PSI) of the candidate against the current one, and how many
people move by how many tiers.

Beside those it reports the discrimination and validity measures H11 and
N12 ask for, for both schemes:

* **AUC and KS** of the grade against an outcome observed later (the
  synthetic population's ``population_outcomes`` labels: a serious
  dishonesty event in the 12 months after its reference date;
  :func:`scoring.discrimination`).  A database without labels (a real
  node's) gives None, never a guess.
* **Stability over months**: the PSI between consecutive month-end grade
  distributions over the ``months`` months ending at ``as_of`` (each month's
  registered, eligible people); the largest of them is the scheme's
  ``monthly_psi``.

Invariants: only people eligible under both schemes are compared in the
distributions and moves (eligibility differences are counted separately);
tier moves are differences of rank (0 = worst grade), positive = up; PSI is
computed only when both schemes have the same grade ids (otherwise None),
with empty bins floored at ``PSI_FLOOR`` so the index stays finite; AUC/KS
use the same people as the distributions (eligible under both on ``as_of``,
labelled).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from node.monthly._batch import CHUNK_SUBJECTS, BatchError, Chunk, chunk_bounds, read_chunk
from node.store import Connection, StorageError, connect
from node.store._snapshot_runs import count_subjects
from node.synthetic._population import REGIONS, PopulationSpec, generate, read_outcomes
from scoring import Discrimination, Scheme, ScoringError, add_months, discrimination, score

__all__ = ["MONTHS", "PSI_FLOOR", "Evaluation", "evaluate", "month_ends", "on_synthetic", "psi"]

PSI_FLOOR = 1e-4
MONTHS = 6  # month-end distributions compared for stability (H11: validity over time)

Pair = tuple[str | None, str | None]  # (current grade, candidate grade); None = not eligible
Labelled = tuple[str, str, bool]  # (current grade, candidate grade, adverse outcome)
Monthly = tuple[Counter[str], Counter[str]]  # grade counts of one month: current, candidate


def month_ends(as_of: date, months: int) -> tuple[date, ...]:
    """The last days of the ``months - 1`` months before ``as_of``'s, then ``as_of``."""
    first = as_of.replace(day=1)
    ends = [add_months(first, 1 - k) - timedelta(days=1) for k in range(months - 1, 0, -1)]
    return (*ends, as_of)


@dataclass(frozen=True)
class _Part:
    """One chunk's share of an evaluation."""

    subjects: int
    pairs: Counter[Pair]
    labelled: Counter[Labelled]
    has_labels: bool
    monthly: tuple[Monthly, ...]


@dataclass(frozen=True)
class Evaluation:
    current: Scheme
    candidate: Scheme
    as_of: date
    subjects: int
    pairs: dict[Pair, int]
    labelled: dict[Labelled, int] = field(default_factory=dict)
    has_labels: bool = False
    months: tuple[date, ...] = ()
    monthly: tuple[tuple[dict[str, int], dict[str, int]], ...] = ()  # per month: cur, cand

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

    def discrimination(self, which: str) -> Discrimination | None:
        """AUC/KS of ``which`` scheme's grades against the outcome labels, or None
        without labels (or without people both with and without the outcome)."""
        if not self.has_labels:
            return None
        scheme = self.current if which == "current" else self.candidate
        counts: Counter[tuple[str, bool]] = Counter()
        for (a, b, adverse), n in self.labelled.items():
            counts[(a if which == "current" else b, adverse)] += n
        try:
            return discrimination(scheme, counts)
        except ScoringError:
            return None

    def monthly_psi(self, which: str) -> tuple[float, ...]:
        """PSI of each month-end distribution against the previous month's."""
        index = 0 if which == "current" else 1
        dists = [m[index] for m in self.monthly]
        return tuple(psi(a, b) for a, b in itertools.pairwise(dists))

    def max_monthly_psi(self, which: str) -> float | None:
        values = self.monthly_psi(which)
        return max(values) if values else None


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


def _month(
    conn: Connection, current: Scheme, candidate: Scheme, day: date, chunk: Chunk
) -> Monthly:
    """Grade counts of the people registered and eligible on ``day``, under each scheme."""
    cur: Counter[str] = Counter()
    cand: Counter[str] = Counter()
    for _key, subject, records in read_chunk(conn, chunk, day):
        a = score(subject, records, current, day, explain=False).grade
        b = score(subject, records, candidate, day, explain=False).grade
        if a is not None:
            cur[a] += 1
        if b is not None:
            cand[b] += 1
    return cur, cand


def _pairs(  # noqa: PLR0917 - one chunk of one evaluation
    conn: Connection,
    current: Scheme,
    candidate: Scheme,
    as_of: date,
    months: tuple[date, ...],
    chunk: Chunk,
) -> _Part:
    pairs: Counter[Pair] = Counter()
    labelled: Counter[Labelled] = Counter()
    monthly: list[Monthly] = []
    labels = read_outcomes(conn, chunk.lo, chunk.hi)
    n = 0
    scheme = current
    try:
        for key, subject, records in read_chunk(conn, chunk, as_of):
            n += 1
            scheme = current
            a = score(subject, records, current, as_of, explain=False).grade
            scheme = candidate
            b = score(subject, records, candidate, as_of, explain=False).grade
            pairs[(a, b)] += 1
            if labels is not None and a is not None and b is not None and key in labels:
                labelled[(a, b, labels[key])] += 1
        for day in months[:-1]:
            monthly.append(_month(conn, current, candidate, day, chunk))
    except KeyError as exc:
        raise BatchError(
            "UNKNOWN_CATEGORY",
            f"a stored record has category {exc.args[0]!r}, not in scheme {scheme.key}",
        ) from None
    if months:  # the last month is as_of itself: reuse its grades
        cur: Counter[str] = Counter()
        cand: Counter[str] = Counter()
        for (a, b), k in pairs.items():
            if a is not None:
                cur[a] += k
            if b is not None:
                cand[b] += k
        monthly.append((cur, cand))
    return _Part(n, pairs, labelled, labels is not None, tuple(monthly))


_worker: tuple[Connection, Scheme, Scheme, date, tuple[date, ...]] | None = None


def _worker_init(
    db: str, current: Scheme, candidate: Scheme, as_of: date, months: tuple[date, ...]
) -> None:
    global _worker  # noqa: PLW0603 - one read-only connection per worker process
    _worker = (connect(db, readonly=True), current, candidate, as_of, months)


def _worker_chunk(chunk: Chunk) -> _Part:
    assert _worker is not None
    conn, current, candidate, as_of, months = _worker
    return _pairs(conn, current, candidate, as_of, months, chunk)


def evaluate(
    db: str | Path,
    current: Scheme,
    candidate: Scheme,
    as_of: date,
    *,
    workers: int = 2,
    chunk_subjects: int = CHUNK_SUBJECTS,
    months: int = MONTHS,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate ``candidate`` against ``current`` on ``as_of``; ``months`` ≥ 2 adds
    month-end distributions for stability (0 or 1: none)."""
    ends = month_ends(as_of, months) if months >= 2 else ()
    path = Path(db)
    if not path.exists():
        raise StorageError("DB_NOT_FOUND", f"database {str(path)!r} does not exist")
    reader = connect(path, readonly=True)
    try:
        subjects = count_subjects(reader)
        chunks = chunk_bounds(max(1, math.ceil(subjects / chunk_subjects)))
        pool = None
        if workers > 1 and len(chunks) > 1:
            ctx = multiprocessing.get_context("spawn")
            pool = ctx.Pool(
                workers,
                initializer=_worker_init,
                initargs=(str(path), current, candidate, as_of, ends),
            )
            results: Iterator[_Part] = pool.imap_unordered(_worker_chunk, chunks)
        else:
            results = (_pairs(reader, current, candidate, as_of, ends, c) for c in chunks)
        total: Counter[Pair] = Counter()
        labelled: Counter[Labelled] = Counter()
        has_labels = False
        monthly: list[Monthly] = [(Counter(), Counter()) for _ in ends]
        scored = 0
        try:
            for i, part in enumerate(results, start=1):
                scored += part.subjects
                total.update(part.pairs)
                labelled.update(part.labelled)
                has_labels = has_labels or part.has_labels
                for (cur, cand), (p_cur, p_cand) in zip(monthly, part.monthly, strict=True):
                    cur.update(p_cur)
                    cand.update(p_cand)
                if progress is not None:
                    progress(i, len(chunks))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        reader.close()
    return Evaluation(
        current,
        candidate,
        as_of,
        scored,
        dict(total),
        dict(labelled),
        has_labels,
        ends,
        tuple(
            (
                {g: cur.get(g, 0) for g in current.grades},
                {g: cand.get(g, 0) for g in candidate.grades},
            )
            for cur, cand in monthly
        ),
    )


def on_synthetic(
    current: Scheme, candidate: Scheme, people: int, as_of: date, *, seed: int = 1
) -> Evaluation | None:
    """Evaluate on a seeded synthetic population of ``current``'s place, generated
    afresh in a temporary directory (a real node has no outcome labels, N12: the
    measures are computed on the synthetic population); None for a scheme without
    a population profile."""
    if current.id not in REGIONS:
        return None
    with tempfile.TemporaryDirectory(prefix="huxin-eval-") as tmp:
        db = Path(tmp) / "synthetic.db"
        generate(PopulationSpec(current.id, people, seed, as_of), db, scheme=current)
        return evaluate(db, current, candidate, as_of, workers=1)
