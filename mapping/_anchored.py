"""The anchored method: place every scheme on one reference scale, map through it.

Definition (docs/mapping.md, "Anchored"; ADR 0200, anchors revised by ADR 0202):

1. Each scheme ``S`` gets a strictly increasing, piecewise-linear map
   ``φ_S : [score_min, score_max] → [0, 1000]`` (the *reference scale*) through
   its anchors: floor → 0 and ceiling → 1000 always; the incentive threshold
   (the lowest score of the incentive tier) → 700 if it lies strictly inside
   the range; the clean-record base score → 600 if it lies strictly inside the
   range and strictly below the threshold (or the threshold is not an anchor).
   When base and threshold coincide or the base lies above the threshold
   (Heihe: the clean record *is* the incentive line), the threshold wins: the
   line at which a region starts to reward is aligned with the other regions'
   lines, and clean-record parity is enforced by the fair rules of step 3.
2. Score map ``f_AB = φ_B⁻¹ ∘ φ_A`` (exact rationals), so ``f_BA = f_AB⁻¹`` and
   ``f_BC ∘ f_AB = f_AC`` for every triple.
3. Reference bound of a source tier ``x``: the target grade of
   ``⌊f_AB(min x)⌋`` — the grade its *worst* score supports — adjusted by the
   fair rules of :mod:`mapping._fair` (parity floor, clean cap, below-clean cap).
4. Anchored table = bound, with every grade below the source's incentive tier
   capped at the best target grade below the target's incentive tier; when
   that would put a clean record below the target's clean record, the table
   is an incentive-tier table instead (``_fair.table_grades``).

Why the invariants hold for every pair of *regular* schemes (the incentive
threshold strictly inside the range, the base not above the incentive tier;
proved in docs/mapping.md and property-tested): monotone because ``f``,
``⌊·⌋``, grade lookup and every fair step are monotone; conservative,
incentive-safe and clean-record parity by construction; no round-trip
inflation because the worst-member argument (``⌊f_BA(min y)⌋ ≤ min x``
whenever ``min y ≤ f_AB(min x)``) survives the caps, and the parity floor
lifts ``x`` to ``c_B`` only when ``c_B``'s worst member comes back at or below
``c_A``; pivot composition never above the direct table because ``f``
composes exactly and every fair step is carried through a pivot.  Schemes
that are not regular may have no fair table; the builder then refuses naming
the invariant.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from scoring import Scheme

from ._errors import NotRecognisedError, TableError
from ._fair import PARITY, fair_grade, incentive_cap, rank_of, table_grades
from ._table import MappingTable, Method, SchemeRef

__all__ = [
    "REFERENCE",
    "ReferenceScale",
    "ScoreMapping",
    "anchored_bound",
    "anchored_grades",
    "anchored_table",
    "anchors",
    "map_score",
    "score_map",
]


@dataclass(frozen=True)
class ReferenceScale:
    """Positions of the shared anchors on the notional provincial reference scale."""

    floor: int = 0
    base: int = 600
    incentive: int = 700
    ceiling: int = 1000

    def to_json(self) -> dict[str, int]:
        return {
            "floor": self.floor,
            "base": self.base,
            "incentive": self.incentive,
            "ceiling": self.ceiling,
        }


REFERENCE = ReferenceScale()


def incentive_threshold(scheme: Scheme) -> int:
    return scheme.tier(scheme.incentive_tier).min_score


def anchors(scheme: Scheme, ref: ReferenceScale = REFERENCE) -> tuple[tuple[int, int], ...]:
    """``(score, reference position)`` pairs, strictly increasing in both."""
    lo, hi = scheme.score_min, scheme.score_max
    base, thr = scheme.base_score, incentive_threshold(scheme)
    points = [(lo, ref.floor)]
    thr_inside = lo < thr < hi
    if thr_inside:
        points.append((thr, ref.incentive))
    if lo < base < hi and (not thr_inside or base < thr):
        points.append((base, ref.base))
    points.append((hi, ref.ceiling))
    points.sort()
    return tuple(points)


def _interpolate(points: tuple[tuple[int, int], ...], x: Fraction, *, inverse: bool) -> Fraction:
    xs = [p[1] if inverse else p[0] for p in points]
    ys = [p[0] if inverse else p[1] for p in points]
    if x <= xs[0]:
        return Fraction(ys[0])
    if x >= xs[-1]:
        return Fraction(ys[-1])
    i = bisect.bisect_right(xs, x) - 1
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 + (x - x0) * Fraction(y1 - y0, x1 - x0)


def score_map(
    source: Scheme, target: Scheme, score: int | Fraction, ref: ReferenceScale = REFERENCE
) -> Fraction:
    """``f_AB(score)`` exactly: source score → reference → target score."""
    position = _interpolate(anchors(source, ref), Fraction(score), inverse=False)
    return _interpolate(anchors(target, ref), position, inverse=True)


def anchored_bound(
    source: Scheme, target: Scheme, ref: ReferenceScale = REFERENCE
) -> dict[str, str | None]:
    """The highest target grade each source tier supports (step 3); ``None``: no grade."""
    out: dict[str, str | None] = {}
    for tier in source.tiers:
        worst = target.grade_for(math.floor(score_map(source, target, tier.min_score, ref)))
        out[tier.id] = fair_grade(source, target, tier.id, worst)[0]
    return out


def anchored_grades(
    source: Scheme,
    target: Scheme,
    ref: ReferenceScale = REFERENCE,
    *,
    incentive_tier: bool | None = None,
) -> tuple[dict[str, str | None], bool]:
    """Step 4: the anchored table's grades and whether it is an incentive-tier table."""
    return table_grades(
        source, target, anchored_bound(source, target, ref), incentive_tier=incentive_tier
    )


def anchored_table(
    source: Scheme,
    target: Scheme,
    *,
    version: str = "1",
    effective_from: date | None = None,
    expires: date | None = None,
    ref: ReferenceScale = REFERENCE,
    incentive_tier: bool | None = None,
) -> MappingTable:
    """The anchored table from ``source`` to ``target``, checked against the invariants.

    ``incentive_tier``: ``None`` (default) recognises every grade when that can
    be fair and otherwise makes the incentive-tier table; ``True`` / ``False``
    force one kind (refused naming the invariant when it cannot be fair).
    """
    from ._invariants import require_valid  # circular: invariants use anchored_bound

    grades, scoped = anchored_grades(source, target, ref, incentive_tier=incentive_tier)
    table = MappingTable(
        id=f"{source.id}-{target.id}-anchored",
        version=version,
        method=Method.ANCHORED,
        source=SchemeRef.of(source),
        target=SchemeRef.of(target),
        effective_from=effective_from or max(source.effective, target.effective),
        expires=expires,
        grades=tuple((g, grades[g]) for g in source.grades),
        parameters={
            "reference": ref.to_json(),
            "source_anchors": [list(p) for p in anchors(source, ref)],
            "target_anchors": [list(p) for p in anchors(target, ref)],
        },
        incentive_tier=scoped,
    )
    require_valid(table, source, target)
    return table


@dataclass(frozen=True)
class ScoreMapping:
    """A disclosed score mapped to the target scheme.

    ``target_score`` is ``⌊f_AB(score)⌋``; ``target_grade`` is its grade after
    the fair rules and the incentive cap of the anchored table (the same
    rules, applied to the score's own grade): ``raised_by`` names the parity
    floor when it lifted the grade, ``capped_by`` the caps that lowered it;
    ``target_interval`` is that grade's score band in the target, and
    ``source_interval`` the band of source scores that map to that grade.
    """

    source: str
    target: str
    score: int
    source_grade: str
    target_score: int
    target_grade: str
    target_interval: tuple[int, int]
    source_interval: tuple[int, int]
    capped_by: tuple[str, ...] = ()
    raised_by: tuple[str, ...] = ()


def _score_grade(
    source: Scheme, target: Scheme, score: int, ref: ReferenceScale, scoped: bool
) -> tuple[int, str | None, tuple[str, ...], tuple[str, ...]]:
    ts = math.floor(score_map(source, target, score, ref))
    x = source.grade_for(score)
    if scoped and not source.is_incentive_grade(x):
        return ts, None, (), ()
    grade, steps = fair_grade(source, target, x, target.grade_for(ts))
    raised = tuple(s for s in steps if s == PARITY)
    capped = [s for s in steps if s != PARITY]
    grade, did_cap = incentive_cap(source, target, x, grade)
    if did_cap:
        capped.append("incentive")
    return ts, grade, tuple(capped), raised


def map_score(
    source: Scheme,
    target: Scheme,
    score: int,
    ref: ReferenceScale = REFERENCE,
    *,
    incentive_tier: bool | None = None,
) -> ScoreMapping:
    """Map a disclosed score (not just its grade) to the target scheme.

    Follows the anchored table of the same kind (``incentive_tier`` as for
    :func:`anchored_table`): a score whose grade that table does not recognise
    is refused with ``NOT_RECOGNISED``, and a pair with no fair table of that
    kind is refused naming the invariant.
    """
    if isinstance(score, bool) or not isinstance(score, int):
        raise TableError("score", "must be an integer", code="SCORE_OUT_OF_RANGE")
    if not source.score_min <= score <= source.score_max:
        raise TableError(
            "score",
            f"{score} is outside {source.key}'s range [{source.score_min}, {source.score_max}]",
            code="SCORE_OUT_OF_RANGE",
        )
    _, scoped = anchored_grades(source, target, ref, incentive_tier=incentive_tier)
    ts, grade, capped, raised = _score_grade(source, target, score, ref, scoped)
    if grade is None:
        raise NotRecognisedError(
            "score",
            f"{source.key} score {score} (grade {source.grade_for(score)}) is below the "
            f"incentive tier {source.incentive_tier}: the {source.id}→{target.id} table does "
            f"not recognise it",
        )
    rank = target.rank(grade)

    def rank_at(s: int) -> int:
        return rank_of(target, _score_grade(source, target, s, ref, scoped)[1])

    # The score → grade map is monotone, so the preimage of ``grade`` is an interval.
    lo_s, hi_s = source.score_min, score
    while lo_s < hi_s:  # lowest s with rank_at(s) >= rank
        mid = (lo_s + hi_s) // 2
        if rank_at(mid) >= rank:
            hi_s = mid
        else:
            lo_s = mid + 1
    first = lo_s
    lo_s, hi_s = score, source.score_max
    while lo_s < hi_s:  # highest s with rank_at(s) <= rank
        mid = (lo_s + hi_s + 1) // 2
        if rank_at(mid) <= rank:
            lo_s = mid
        else:
            hi_s = mid - 1
    tier = target.tier(grade)
    return ScoreMapping(
        source=source.key,
        target=target.key,
        score=score,
        source_grade=source.grade_for(score),
        target_score=ts,
        target_grade=grade,
        target_interval=(tier.min_score, tier.max_score),
        source_interval=(first, lo_s),
        capped_by=capped,
        raised_by=raised,
    )
