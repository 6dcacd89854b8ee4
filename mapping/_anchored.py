"""The anchored method: place every scheme on one reference scale, map through it.

Definition (docs/mapping.md, "Anchored"; ADR 0200):

1. Each scheme ``S`` gets a strictly increasing, piecewise-linear map
   ``φ_S : [score_min, score_max] → [0, 1000]`` (the *reference scale*) through
   its anchors: floor → 0 and ceiling → 1000 always; the clean-record base
   score → 600 if it lies strictly inside the range; the incentive threshold
   (the lowest score of the incentive tier) → 700 if it lies strictly inside
   the range and strictly above the base (or the base is not an anchor).  When
   base and threshold coincide or are in the "wrong" order, the base wins and
   incentive safety is enforced by the cap in step 4.
2. Score map ``f_AB = φ_B⁻¹ ∘ φ_A`` (exact rationals), so ``f_BA = f_AB⁻¹`` and
   ``f_BC ∘ f_AB = f_AC`` for every triple.
3. Conservative bound of a source tier ``x``: the target grade of
   ``⌊f_AB(min x)⌋`` — the grade its *worst* score supports — further capped
   at the target's clean-record grade when ``x`` is at or below the source's
   clean-record grade.
4. Anchored table = bound, then every grade below the source's incentive tier
   is capped at the best target grade below the target's incentive tier.

Why the invariants hold for every valid pair of schemes (proved in
docs/mapping.md): monotone because ``f``, ``⌊·⌋``, grade lookup and both caps
are monotone; conservative and incentive-safe by construction; no round-trip
inflation because ``⌊f_BA(min y)⌋ ≤ f_BA(f_AB(min x)) = min x`` whenever
``min y ≤ f_AB(min x)``, and caps only lower; pivot composition never above
the direct table because ``f`` composes exactly and the caps are preserved
through a pivot.  The only refusal: a source with grades below its incentive
tier and a target whose worst tier is already incentive-eligible (no safe
table exists; ``INVARIANT_INCENTIVE_SAFE``).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from scoring import Scheme

from ._errors import InvariantError, TableError, Violation
from ._table import MappingTable, Method, SchemeRef

__all__ = [
    "REFERENCE",
    "ReferenceScale",
    "ScoreMapping",
    "anchored_bound",
    "anchored_table",
    "anchors",
    "apply_incentive_cap",
    "cap_clean_record",
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
    base_inside = lo < base < hi
    if base_inside:
        points.append((base, ref.base))
    if lo < thr < hi and (not base_inside or thr > base):
        points.append((thr, ref.incentive))
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


def cap_clean_record(source: Scheme, target: Scheme, grade_x: str, grade_y: str) -> str:
    """``grade_y`` capped at the target's clean-record grade if ``grade_x`` is at/below the source's."""
    if source.rank(grade_x) <= source.rank(source.base_grade) and target.rank(
        grade_y
    ) > target.rank(target.base_grade):
        return target.base_grade
    return grade_y


def best_non_incentive(target: Scheme) -> str | None:
    rank = target.rank(target.incentive_tier)
    if rank == 0:
        return None
    return target.grades[len(target.grades) - rank]


def apply_incentive_cap(source: Scheme, target: Scheme, grades: dict[str, str]) -> dict[str, str]:
    """Cap every non-incentive source grade below the target's incentive tier.

    Raises ``INVARIANT_INCENTIVE_SAFE`` naming the grades when the target has
    no grade below its incentive tier to cap to.
    """
    cap = best_non_incentive(target)
    out: dict[str, str] = {}
    stuck: list[str] = []
    for x, y in grades.items():
        if not source.is_incentive_grade(x) and target.is_incentive_grade(y):
            if cap is None:
                stuck.append(x)
                continue
            y = cap
        out[x] = y
    if stuck:
        raise InvariantError(
            [
                Violation(
                    "incentive_safe",
                    (*stuck, target.incentive_tier),
                    f"every grade of {target.key} is incentive-eligible, so grades below "
                    f"{source.key}'s incentive tier have no safe target",
                )
            ]
        )
    return out


def anchored_bound(
    source: Scheme, target: Scheme, ref: ReferenceScale = REFERENCE
) -> dict[str, str]:
    """The highest target grade each source tier's whole interval supports (step 3)."""
    out: dict[str, str] = {}
    for tier in source.tiers:
        y = target.grade_for(math.floor(score_map(source, target, tier.min_score, ref)))
        out[tier.id] = cap_clean_record(source, target, tier.id, y)
    return out


def anchored_table(
    source: Scheme,
    target: Scheme,
    *,
    version: str = "1",
    effective_from: date | None = None,
    expires: date | None = None,
    ref: ReferenceScale = REFERENCE,
) -> MappingTable:
    """The anchored table from ``source`` to ``target``, checked against the invariants."""
    from ._invariants import require_valid  # circular: invariants use anchored_bound

    grades = apply_incentive_cap(source, target, anchored_bound(source, target, ref))
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
    )
    require_valid(table, source, target)
    return table


@dataclass(frozen=True)
class ScoreMapping:
    """A disclosed score mapped to the target scheme.

    ``target_score`` is ``⌊f_AB(score)⌋``; ``target_grade`` is its grade after
    the clean-record and incentive caps (named in ``capped_by``);
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


def _score_grade(
    source: Scheme, target: Scheme, score: int, ref: ReferenceScale
) -> tuple[int, str, tuple[str, ...]]:
    ts = math.floor(score_map(source, target, score, ref))
    grade = target.grade_for(ts)
    capped: list[str] = []
    if score <= source.base_score and target.rank(grade) > target.rank(target.base_grade):
        grade = target.base_grade
        capped.append("clean_record")
    if not source.is_incentive_grade(source.grade_for(score)) and target.is_incentive_grade(grade):
        cap = best_non_incentive(target)
        if cap is None:
            raise InvariantError(
                [
                    Violation(
                        "incentive_safe",
                        (source.grade_for(score), target.incentive_tier),
                        f"every grade of {target.key} is incentive-eligible",
                    )
                ]
            )
        grade = cap
        capped.append("incentive")
    return ts, grade, tuple(capped)


def map_score(
    source: Scheme, target: Scheme, score: int, ref: ReferenceScale = REFERENCE
) -> ScoreMapping:
    """Map a disclosed score (not just its grade) to the target scheme."""
    if isinstance(score, bool) or not isinstance(score, int):
        raise TableError("score", "must be an integer", code="SCORE_OUT_OF_RANGE")
    if not source.score_min <= score <= source.score_max:
        raise TableError(
            "score",
            f"{score} is outside {source.key}'s range [{source.score_min}, {source.score_max}]",
            code="SCORE_OUT_OF_RANGE",
        )
    ts, grade, capped = _score_grade(source, target, score, ref)
    rank = target.rank(grade)

    def rank_at(s: int) -> int:
        return target.rank(_score_grade(source, target, s, ref)[1])

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
    )
