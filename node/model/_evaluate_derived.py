"""Evaluation of a derived scenario score on a stored population (H11, N18, N19).

Scores everyone in the database under the derived score's base scheme on one
date (explained, since the derived score re-weights the base contributions),
derives each eligible person's derived score, and reports the derived tier
distribution beside the base grade distribution, and the discrimination
(AUC, KS; :func:`scoring.discrimination`) of each against the outcome labels
of a synthetic population (``population_outcomes``, ADR 0510).  A database
without labels (a real node's) gives None, never a guess.

Invariants: the derived and the base figures are computed on the same people
(eligible under the base scheme on ``as_of``; labelled, for AUC/KS); the base
scheme is the exact version the derived score names, else
``SCHEME_VERSION_MISMATCH``.  Reads through the batch job's repository
functions (:func:`node.monthly._batch.read_chunk`, :func:`node.synthetic._population.read_outcomes`),
one process: a derived score is evaluated before it is offered, not monthly.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from node.monthly._batch import CHUNK_SUBJECTS, BatchError, chunk_bounds, read_chunk
from node.store import connect
from node.store._backend import Target
from node.store._snapshot_runs import count_subjects
from node.synthetic._population import PopulationSpec, generate, read_outcomes
from scoring import (
    DerivedScore,
    Discrimination,
    Scheme,
    SchemeError,
    ScoringError,
    derive,
    discrimination,
    score,
)

__all__ = ["DerivedEvaluation", "evaluate_derived", "evaluate_derived_synthetic"]


@dataclass(frozen=True)
class DerivedEvaluation:
    derived: DerivedScore
    base: Scheme
    as_of: date
    subjects: int  # everyone read; ``scored`` of them eligible under the base
    scored: int
    distribution: dict[str, int]  # derived tier → people, best first
    base_distribution: dict[str, int]  # base grade → the same people
    labelled: dict[tuple[str, bool], int]  # (derived tier, adverse) → people
    base_labelled: dict[tuple[str, bool], int]
    has_labels: bool

    def discrimination(self) -> Discrimination | None:
        """AUC/KS of the derived tiers, or None without labels (or one-sided ones)."""
        return self._measure(self.derived, self.labelled)

    def base_discrimination(self) -> Discrimination | None:
        return self._measure(self.base, self.base_labelled)

    def _measure(
        self, graded: DerivedScore | Scheme, counts: dict[tuple[str, bool], int]
    ) -> Discrimination | None:
        if not self.has_labels:
            return None
        try:
            return discrimination(graded, counts)
        except ScoringError:
            return None


def evaluate_derived(
    db: Target,
    derived: DerivedScore,
    base: Scheme,
    as_of: date,
    *,
    chunk_subjects: int = CHUNK_SUBJECTS,
    progress: Callable[[int, int], None] | None = None,
) -> DerivedEvaluation:
    """Evaluate ``derived`` (built on ``base``) on the population in ``db`` (a storage
    target: ``config.storage``, a URL or a SQLite path) on ``as_of``."""
    if base.key != derived.base_key:
        raise SchemeError(
            "base",
            f"{derived.key} is derived from {derived.base_key}, not {base.key}",
            code="SCHEME_VERSION_MISMATCH",
        )
    conn = connect(db, readonly=True)  # a missing SQLite file: DB_NOT_FOUND
    dist: Counter[str] = Counter()
    base_dist: Counter[str] = Counter()
    labelled: Counter[tuple[str, bool]] = Counter()
    base_labelled: Counter[tuple[str, bool]] = Counter()
    has_labels = False
    subjects = scored = 0
    try:
        total = count_subjects(conn)
        chunks = chunk_bounds(max(1, math.ceil(total / chunk_subjects)))
        for i, chunk in enumerate(chunks, start=1):
            labels = read_outcomes(conn, chunk.lo, chunk.hi)
            has_labels = has_labels or labels is not None
            for key, subject, records in read_chunk(conn, chunk, as_of):
                subjects += 1
                try:
                    result = score(subject, records, base, as_of)
                except KeyError as exc:
                    raise BatchError(
                        "UNKNOWN_CATEGORY",
                        f"a stored record has category {exc.args[0]!r}, not in scheme {base.key}",
                    ) from None
                d = derive(derived, result)
                if d.grade is None or result.grade is None:
                    continue
                scored += 1
                dist[d.grade] += 1
                base_dist[result.grade] += 1
                if labels is not None and key in labels:
                    labelled[(d.grade, labels[key])] += 1
                    base_labelled[(result.grade, labels[key])] += 1
            if progress is not None:
                progress(i, len(chunks))
    finally:
        conn.close()
    return DerivedEvaluation(
        derived,
        base,
        as_of,
        subjects,
        scored,
        {g: dist.get(g, 0) for g in derived.grades},
        {g: base_dist.get(g, 0) for g in base.grades},
        dict(labelled),
        dict(base_labelled),
        has_labels,
    )


def evaluate_derived_synthetic(
    derived: DerivedScore, base: Scheme, people: int, as_of: date, *, seed: int = 1
) -> DerivedEvaluation:
    """Evaluate on a seeded synthetic population of the base scheme's place, generated
    afresh in a temporary directory (N12: the measures come from synthetic labels)."""
    with tempfile.TemporaryDirectory(prefix="huxin-derived-") as tmp:
        db = Path(tmp) / "synthetic.db"
        generate(PopulationSpec(base.id, people, seed, as_of), db, scheme=base)
        return evaluate_derived(db, derived, base, as_of)
