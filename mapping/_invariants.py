"""The seven invariants every mapping table must pass before it is signed or used.

* ``total`` — every source grade has exactly one entry: a target grade, or —
  only in an incentive-tier table, and there exactly for the grades below the
  source's incentive tier — *not recognised* (``None``); nothing else.
* ``monotone`` — a better source grade never maps to a worse target grade
  (*not recognised* ranks below every grade).
* ``conservative`` — no grade maps above its *reference bound*: what the
  source tier's worst score (anchored; also used for agreements) or worst
  percentile (equipercentile, from the histograms embedded in the table)
  supports, adjusted by the fair rules of :mod:`mapping._fair`.
* ``incentive_safe`` — a grade below the source's incentive tier maps below the
  target's incentive tier (or is not recognised).
* ``clean_record_parity`` — the source's clean-record grade (the tier of its
  base score) maps to the target's clean-record grade or higher, or is not
  recognised; never below (ADR 0202).
* ``no_round_trip_inflation`` — ``R(T(x)) <= x`` where ``R`` is the reverse
  reference bound (the most generous reverse any valid table could be) and,
  if given, an actual reverse table; *not recognised* ends the trip.
* ``pivot_not_above_direct`` — for every pivot ``P`` with tables ``A→P`` and
  ``P→B`` in the set, ``T_PB(T_AP(x)) <= T_AB(x)``.

Checks report every violation with the grades involved; :func:`require_valid`
raises :class:`InvariantError` (code ``INVARIANT_<NAME>``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from scoring import Scheme

from ._anchored import anchored_bound
from ._equipercentile import check_histogram, equipercentile_bound, histograms_of
from ._errors import InvariantError, TableError, Violation
from ._fair import PARITY, rank_of
from ._table import MappingTable, Method

__all__ = [
    "INVARIANTS",
    "check_set",
    "check_table",
    "reference_bound",
    "require_valid",
    "reverse_bound",
]

INVARIANTS = (
    "total",
    "monotone",
    "conservative",
    "incentive_safe",
    PARITY,
    "no_round_trip_inflation",
    "pivot_not_above_direct",
)


def _bind(table: MappingTable, source: Scheme, target: Scheme) -> None:
    for side, ref, scheme in (("source", table.source, source), ("target", table.target, target)):
        if ref.scheme != scheme.id:
            raise TableError(
                f"content.{side}.scheme",
                f"table is for {ref.scheme!r}, not {scheme.id!r}",
                code="SCHEME_MISMATCH",
            )
        if ref.version != scheme.version:
            raise TableError(
                f"content.{side}.version",
                f"table was made for {ref.key}, the scheme in use is {scheme.key}",
                code="SCHEME_VERSION_MISMATCH",
            )


def _bounds(
    table: MappingTable, source: Scheme, target: Scheme
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    if table.method is Method.EQUIPERCENTILE:
        hs, ht, min_pop = histograms_of(table)
        check_histogram(hs, source, min_population=min_pop, field="source_histogram")
        check_histogram(ht, target, min_population=min_pop, field="target_histogram")
        return (
            equipercentile_bound(source, target, hs, ht),
            equipercentile_bound(target, source, ht, hs),
        )
    return anchored_bound(source, target), anchored_bound(target, source)


def reference_bound(table: MappingTable, source: Scheme, target: Scheme) -> dict[str, str | None]:
    """The per-grade ceiling the ``conservative`` invariant checks against (``None``: no grade)."""
    return _bounds(table, source, target)[0]


def reverse_bound(table: MappingTable, source: Scheme, target: Scheme) -> dict[str, str | None]:
    """The most generous reverse (target → source) map the same evidence allows."""
    return _bounds(table, source, target)[1]


def _total(table: MappingTable, source: Scheme, target: Scheme) -> list[Violation]:
    out: list[Violation] = []
    keys = [g for g, _ in table.grades]
    missing = [g for g in source.grades if g not in keys]
    if missing:
        out.append(Violation("total", tuple(missing), "source grades with no target grade"))
    extra = [g for g in dict.fromkeys(keys) if g not in source.grades]
    if extra:
        out.append(Violation("total", tuple(extra), f"not grades of {source.key}"))
    dup = [g for g in dict.fromkeys(keys) if keys.count(g) > 1]
    if dup:
        out.append(Violation("total", tuple(dup), "mapped more than once"))
    unknown = [f"{x}->{y}" for x, y in table.grades if y is not None and y not in target.grades]
    if unknown:
        out.append(Violation("total", tuple(unknown), f"target is not a grade of {target.key}"))
    known = [(x, y) for x, y in table.grades if x in source.grades]
    if not table.incentive_tier:
        unrecognised = [x for x, y in known if y is None]
        if unrecognised:
            out.append(
                Violation(
                    "total",
                    tuple(unrecognised),
                    "not recognised, but the table recognises every grade (it is not an "
                    "incentive-tier table)",
                )
            )
        return out
    below = [x for x, y in known if y is not None and not source.is_incentive_grade(x)]
    if below:
        out.append(
            Violation(
                "total",
                tuple(below),
                f"an incentive-tier table does not recognise grades below {source.key}'s "
                f"incentive tier {source.incentive_tier}",
            )
        )
    dropped = [x for x, y in known if y is None and source.is_incentive_grade(x)]
    if dropped:
        out.append(
            Violation(
                "total",
                tuple(dropped),
                f"incentive-eligible in {source.key}, so an incentive-tier table must map them",
            )
        )
    return out


def check_table(
    table: MappingTable,
    source: Scheme,
    target: Scheme,
    *,
    reverse: MappingTable | None = None,
    tables: Iterable[MappingTable] = (),
) -> tuple[Violation, ...]:
    """Every invariant violation of ``table`` (empty when it passes).

    ``reverse`` is an actual target → source table to check round trips
    against (besides the reverse bound); ``tables`` are the other tables of
    the set, searched for pivot routes.  Raises ``TableError`` when the table
    is for other schemes or scheme versions.
    """
    _bind(table, source, target)
    total = _total(table, source, target)
    if total:
        return tuple(total)
    t = table.grade_map
    out: list[Violation] = []
    order = source.grades  # best first
    for better, worse in itertools.pairwise(order):
        if rank_of(target, t[better]) < rank_of(target, t[worse]):
            out.append(
                Violation(
                    "monotone",
                    (better, worse),
                    f"{better}->{_shown(t[better])} is below {worse}->{_shown(t[worse])}",
                )
            )
    bound, back = _bounds(table, source, target)
    for x in order:
        if rank_of(target, t[x]) > rank_of(target, bound[x]):
            out.append(
                Violation(
                    "conservative",
                    (x, _shown(t[x])),
                    f"{x} supports at most {_shown(bound[x])} ({table.method.value} reference)",
                )
            )
    for x in order:
        y = t[x]
        if y is not None and not source.is_incentive_grade(x) and target.is_incentive_grade(y):
            out.append(
                Violation(
                    "incentive_safe",
                    (x, y),
                    f"{x} is below {source.key}'s incentive tier {source.incentive_tier} but "
                    f"{y} is incentive-eligible in {target.key}",
                )
            )
    clean, mapped = source.base_grade, t[source.base_grade]
    if mapped is not None and target.rank(mapped) < target.rank(target.base_grade):
        out.append(
            Violation(
                PARITY,
                (clean, mapped, target.base_grade),
                f"{source.key}'s clean-record grade {clean} maps to {mapped}, below "
                f"{target.key}'s clean-record grade {target.base_grade}",
            )
        )
    reverses: list[tuple[str, Mapping[str, str | None]]] = [("reverse bound", back)]
    if reverse is not None:
        _bind(reverse, target, source)
        rev_total = _total(reverse, target, source)
        if rev_total:
            raise TableError("reverse", f"reverse table {reverse.id!r} is not total")
        reverses.append((f"table {reverse.id}", reverse.grade_map))
    for name, r in reverses:
        for x in order:
            y = t[x]
            back_x = None if y is None else r[y]
            if y is None or back_x is None:
                continue  # not recognised: the trip ends, nothing comes back
            if source.rank(back_x) > source.rank(x):
                out.append(
                    Violation(
                        "no_round_trip_inflation",
                        (x, y, back_x),
                        f"{x}->{y}->{back_x} via {name} ends above the start",
                    )
                )
    out.extend(_pivots(table, target, tables))
    return tuple(out)


def _shown(grade: str | None) -> str:
    return "not recognised" if grade is None else grade


def _pivots(table: MappingTable, target: Scheme, tables: Iterable[MappingTable]) -> list[Violation]:
    pool = [x for x in tables if x.content_hash != table.content_hash]
    first_legs = [
        x
        for x in pool
        if x.source == table.source and x.target.scheme not in (table.source.scheme, target.id)
    ]
    out: list[Violation] = []
    t = table.grade_map
    for leg1 in first_legs:
        for leg2 in pool:
            if leg2.source != leg1.target or leg2.target != table.target:
                continue
            for x, direct in table.grades:
                mid = leg1.grade_map.get(x)
                via = leg2.grade_map.get(mid) if mid is not None else None
                if via is None or via not in target.grades:
                    continue  # not recognised on the way: the route gives nothing
                if target.rank(via) > rank_of(target, direct):
                    out.append(
                        Violation(
                            "pivot_not_above_direct",
                            (x, leg1.target.scheme, via, _shown(direct)),
                            f"{x}->{mid}->{via} via {leg1.target.key} is above the direct "
                            f"{x}->{_shown(t[x])}",
                        )
                    )
    return out


def require_valid(
    table: MappingTable,
    source: Scheme,
    target: Scheme,
    *,
    reverse: MappingTable | None = None,
    tables: Iterable[MappingTable] = (),
) -> None:
    """Raise :class:`InvariantError` unless ``table`` passes every invariant."""
    violations = check_table(table, source, target, reverse=reverse, tables=tables)
    if violations:
        raise InvariantError(violations)


def check_set(
    tables: Iterable[MappingTable], schemes: Mapping[str, Scheme]
) -> tuple[Violation, ...]:
    """Check every table of a set against all invariants, using the set for pivots
    and each table's reverse (when present in the set) for round trips."""
    pool = list(tables)
    out: list[Violation] = []
    for table in pool:
        for side in (table.source, table.target):
            if side.scheme not in schemes:
                raise TableError("scheme", f"unknown scheme {side.scheme!r}", code="UNKNOWN_SCHEME")
        source, target = schemes[table.source.scheme], schemes[table.target.scheme]
        reverse = next(
            (
                r
                for r in pool
                if r.source == table.target
                and r.target == table.source
                and r.method == table.method
            ),
            None,
        )
        out.extend(check_table(table, source, target, reverse=reverse, tables=pool))
    return tuple(out)
