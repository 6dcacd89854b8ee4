"""Discrimination of a scheme's grades against an outcome observed later (H11, N12).

H11 asks that the model pass validity and discrimination checks (有效性、区分度)
before formal use.  Given, for each grade, how many people later had an
adverse outcome (for example a default in the following 12 months) and how
many did not, :func:`discrimination` computes:

* **AUC**: the probability that a random person without the outcome holds a
  better grade than a random person with it, ties counting one half.  0.5 is
  no better than chance; 1.0 separates perfectly.
* **KS**: the largest gap between the two groups' cumulative grade
  distributions, taken from the worst grade up.  0 is no separation.

Both are computed on grades (ordinal), not raw scores, because the grade is
what a relying party sees (H12).  Pure: counts in, numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ._errors import ScoringError

__all__ = ["Discrimination", "discrimination"]


class Graded(Protocol):
    """What is measured: a scheme or a derived score (its tiers, best first)."""

    @property
    def grades(self) -> tuple[str, ...]: ...
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Discrimination:
    """AUC and KS of a scheme's grades against a later outcome; both in [0, 1]."""

    auc: float
    ks: float
    people: int
    adverse: int


def discrimination(scheme: Graded, counts: Mapping[tuple[str, bool], int]) -> Discrimination:
    """AUC and KS from ``counts[(grade, adverse_outcome)]``.

    Raises :class:`ScoringError` naming the field: ``UNKNOWN_GRADE`` for a
    grade the scheme lacks, ``INVALID_FIELD`` for a negative count,
    ``OUTCOMES_MISSING`` unless both groups have someone in them.
    """
    known = set(scheme.grades)
    for (grade, _bad), n in counts.items():
        if grade not in known:
            raise ScoringError(
                "counts", f"{grade!r} is not a grade of {scheme.key}", code="UNKNOWN_GRADE"
            )
        if n < 0:
            raise ScoringError("counts", f"negative count for {grade!r}", code="INVALID_FIELD")
    worst_first = tuple(reversed(scheme.grades))
    bads = [counts.get((g, True), 0) for g in worst_first]
    goods = [counts.get((g, False), 0) for g in worst_first]
    total_bad, total_good = sum(bads), sum(goods)
    if total_bad == 0 or total_good == 0:
        raise ScoringError(
            "counts",
            "needs people both with and without the outcome",
            code="OUTCOMES_MISSING",
        )
    wins = 0.0  # pairs (good, bad) where the good person holds the better grade
    bad_below = 0
    cum_bad = cum_good = 0
    ks = 0.0
    for g_good, g_bad in zip(goods, bads, strict=True):
        wins += g_good * (bad_below + g_bad / 2)
        bad_below += g_bad
        cum_bad += g_bad
        cum_good += g_good
        ks = max(ks, abs(cum_bad / total_bad - cum_good / total_good))
    return Discrimination(
        auc=wins / (total_good * total_bad),
        ks=ks,
        people=total_good + total_bad,
        adverse=total_bad,
    )
