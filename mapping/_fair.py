"""Fair mappings: the clean-record and incentive rules every method applies (pure).

Two grades of a scheme ``S`` carry meaning in every region (ADR 0202):

* the **clean-record grade** ``c_S`` = ``S.base_grade``, the tier holding the
  base score — what a person with no negative record holds (H8: Heihe A);
* the **incentive tier** ``i_S`` = ``S.incentive_tier``; a grade at or above it
  is *incentive-eligible* (H14, N14).

A method supplies, for each source tier ``x``, the target grade its *worst*
member supports, ``w(x)`` (anchored: the score map; equipercentile: the
percentile).  :func:`fair_grade` turns that into the **reference bound**:

1. *parity floor* — ``x`` at or above ``c_A`` gets at least ``c_B``: a clean
   record is never recognised below the target's clean record;
2. *clean cap* — ``x == c_A`` below ``A``'s incentive tier gets at most
   ``c_B``: a clean record its home region does not reward is recognised as
   clean, no more;
3. *below clean* — ``x`` below ``c_A`` gets at most the grade just below
   ``c_B`` (``None`` when ``c_B`` is the target's worst grade): a grade every
   member of which has a live negative record never lands in the target's
   clean-record grade, which would come back as a clean record (round trip)
   or be lifted by the next hop's parity floor (pivot).

:func:`table_grades` then makes the table from the bound: every grade below
``A``'s incentive tier is capped at the best grade below ``B``'s (incentive
safety).  When that cap pushes a clean record below ``c_B`` — ``A`` does not
reward its clean record but ``B`` does (Hainan → Heihe) — no table that
carries a grade for every source grade can be fair, and the table must be an
**incentive-tier** table: every grade below ``A``'s incentive tier is *not
recognised* (``None``), the others keep their bound (ADR 0203).

Invariant: every value here is monotone in the source grade and in the
worst-member grade, with ``None`` below every grade, so the methods' tables
stay monotone.
"""

from __future__ import annotations

from collections.abc import Mapping

from scoring import Scheme

from ._errors import InvariantError, Violation

__all__ = [
    "PARITY",
    "best_non_incentive",
    "fair_grade",
    "grade_below",
    "incentive_cap",
    "plain_problems",
    "rank_of",
    "table_grades",
]

#: The invariant's name: a clean record maps to the target's clean-record grade or higher.
PARITY = "clean_record_parity"


def rank_of(scheme: Scheme, grade: str | None) -> int:
    """``scheme.rank(grade)``, and -1 for *not recognised* (below every grade)."""
    return -1 if grade is None else scheme.rank(grade)


def grade_below(scheme: Scheme, grade: str) -> str | None:
    """The next worse grade of ``scheme``, or ``None`` for its worst grade."""
    i = scheme.grades.index(grade)
    return scheme.grades[i + 1] if i + 1 < len(scheme.grades) else None


def best_non_incentive(scheme: Scheme) -> str | None:
    """The best grade below the incentive tier, or ``None`` when every grade is eligible."""
    return grade_below(scheme, scheme.incentive_tier)


def fair_grade(
    source: Scheme, target: Scheme, x: str, worst: str
) -> tuple[str | None, tuple[str, ...]]:
    """Steps 1-3 applied to ``worst`` (the grade ``x``'s evidence supports).

    Returns the bound and the steps that changed it (``"clean_record_parity"``
    raised it; ``"clean_record"`` or ``"below_clean"`` capped it).
    """
    c_a, c_b = source.rank(source.base_grade), target.rank(target.base_grade)
    rx, y = source.rank(x), worst
    steps: list[str] = []
    if rx >= c_a and target.rank(y) < c_b:
        y = target.base_grade
        steps.append(PARITY)
    if rx == c_a and not source.is_incentive_grade(x) and target.rank(y) > c_b:
        y = target.base_grade
        steps.append("clean_record")
    if rx < c_a and target.rank(y) >= c_b:
        below = grade_below(target, target.base_grade)
        steps.append("below_clean")
        if below is None:
            return None, tuple(steps)
        y = below
    return y, tuple(steps)


def incentive_cap(source: Scheme, target: Scheme, x: str, y: str | None) -> tuple[str | None, bool]:
    """``y`` capped below ``B``'s incentive tier when ``x`` is below ``A``'s.

    Returns ``(grade, capped)``; the grade is ``None`` when ``y`` is ``None``
    or every grade of ``B`` is incentive-eligible (no safe image exists).
    """
    if y is None or source.is_incentive_grade(x) or not target.is_incentive_grade(y):
        return y, False
    return best_non_incentive(target), True


def plain_problems(
    source: Scheme, target: Scheme, bound: Mapping[str, str | None]
) -> tuple[dict[str, str | None], list[Violation]]:
    """The table recognising every grade, and why it cannot be fair (empty when it can)."""
    out: dict[str, str | None] = {}
    problems: list[Violation] = []
    for x in source.grades:
        y = bound[x]
        if y is None:
            problems.append(
                Violation(
                    "conservative",
                    (x, target.base_grade),
                    f"{x} is below {source.key}'s clean-record grade {source.base_grade} and "
                    f"{target.key} has no grade below its clean-record grade "
                    f"{target.base_grade}",
                )
            )
            out[x] = None
            continue
        capped, _ = incentive_cap(source, target, x, y)
        if capped is None:
            problems.append(
                Violation(
                    "incentive_safe",
                    (x, target.incentive_tier),
                    f"every grade of {target.key} is incentive-eligible, so {x} (below "
                    f"{source.key}'s incentive tier {source.incentive_tier}) has no safe target",
                )
            )
        elif x == source.base_grade and target.rank(capped) < target.rank(target.base_grade):
            # Grades between the clean record and the incentive tier meet the same conflict;
            # the clean-record grade is the one the invariant names.
            problems.append(
                Violation(
                    PARITY,
                    (x, capped, target.base_grade),
                    f"{x} holds {source.key}'s clean record but is below its incentive tier "
                    f"{source.incentive_tier}; {target.key}'s clean-record grade "
                    f"{target.base_grade} is incentive-eligible, so incentive safety keeps "
                    f"{x} at {capped}, below it: only an incentive-tier table can be fair",
                )
            )
        out[x] = capped
    return out, problems


def table_grades(
    source: Scheme,
    target: Scheme,
    bound: Mapping[str, str | None],
    *,
    incentive_tier: bool | None,
) -> tuple[dict[str, str | None], bool]:
    """The fair table's grades (best first) and whether it is an incentive-tier table.

    ``incentive_tier``: ``False`` recognises every grade (refused with the
    violations when that cannot be fair); ``True`` makes an incentive-tier
    table; ``None`` picks the table recognising every grade when it can be
    fair, else the incentive-tier table.  Refused (``InvariantError``) when no
    table of the chosen kind can be fair.
    """
    plain, problems = plain_problems(source, target, bound)
    if incentive_tier is None:
        incentive_tier = bool(problems)
    if not incentive_tier:
        if problems:
            raise InvariantError(problems)
        return plain, False
    out: dict[str, str | None] = {}
    stuck: list[Violation] = []
    for x in source.grades:
        if not source.is_incentive_grade(x):
            out[x] = None
        elif bound[x] is None:
            stuck.append(
                Violation(
                    "conservative",
                    (x,),
                    f"{x} is incentive-eligible in {source.key} but supports no grade of "
                    f"{target.key}",
                )
            )
        else:
            out[x] = bound[x]
    if stuck:
        raise InvariantError(stuck)
    return out, True
