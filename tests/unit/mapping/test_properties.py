"""Properties: every table made from random valid schemes and histograms passes every
invariant (clean-record parity included); deliberately broken tables are refused naming the
invariant.

REQ: C3, H13, H14, N14, N20 (issue 16 §"Fair mappings").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mapping import (
    INVARIANTS,
    InvariantError,
    MappingTable,
    Method,
    NotRecognisedError,
    anchored_bound,
    anchored_table,
    check_set,
    check_table,
    compose,
    equipercentile_table,
    map_score,
    require_valid,
    reverse_bound,
    score_map,
)
from mapping._equipercentile import percentile_grades
from mapping._fair import PARITY, fair_grade, rank_of
from scoring import Scheme

from .conftest import (
    is_regular,
    plain_refusal,
    public_keys,
    random_histograms,
    random_schemes,
    regular_schemes,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: What the builders may refuse with for schemes that are not regular (no fair table exists).
IRREGULAR_REFUSALS = {
    "INVARIANT_CONSERVATIVE",
    "INVARIANT_INCENTIVE_SAFE",
    "INVARIANT_CLEAN_RECORD_PARITY",
    "INVARIANT_NO_ROUND_TRIP_INFLATION",
}


def _names(violations: object) -> set[str]:
    return {v.invariant for v in violations}  # type: ignore[attr-defined]


def _attempt(make: Callable[[], MappingTable]) -> tuple[MappingTable | None, InvariantError | None]:
    """The table ``make`` builds, or the refusal it raises."""
    try:
        return make(), None
    except InvariantError as err:
        return None, err


def _build(source: Scheme, target: Scheme) -> MappingTable | None:
    """The anchored table, or None when the pair has no fair table (irregular schemes only)."""
    table, err = _attempt(lambda: anchored_table(source, target))
    if err is not None:
        assert not (is_regular(source) and is_regular(target)), err
        assert err.code in IRREGULAR_REFUSALS
    return table


def _parity_holds(table: MappingTable, source: Scheme, target: Scheme) -> bool:
    mapped = table.recognise(source.base_grade)
    return mapped is None or target.rank(mapped) >= target.rank(target.base_grade)


@SETTINGS
@given(random_schemes("a"), random_schemes("b"))
def test_anchored_tables_pass_every_invariant(a: Scheme, b: Scheme) -> None:
    """REQ: C3, H8 — any two valid schemes give an anchored table passing all seven invariants
    (parity included), or — only for schemes that are not regular — a refusal naming one."""
    built = {}
    for source, target in ((a, b), (b, a)):
        table = _build(source, target)
        if table is not None:
            assert check_table(table, source, target) == ()
            assert _parity_holds(table, source, target)
            built[source.id] = table
    if len(built) == 2:
        ab, ba = built["a"], built["b"]
        assert check_table(ab, a, b, reverse=ba) == ()
        assert check_table(ba, b, a, reverse=ab) == ()
        for x in a.grades:  # explicit: A→B→A never ends above the start
            there = ab.recognise(x)
            back = None if there is None else ba.recognise(there)
            assert back is None or a.rank(back) <= a.rank(x)


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"))
def test_regular_pairs_always_have_a_fair_table(a: Scheme, b: Scheme) -> None:
    """REQ: C3, H8, H14 — for regular schemes the builder never refuses; the table recognises
    every grade exactly when that can be fair, else it is the incentive-tier table; and a
    forced full table is refused with the predicted code."""
    table = anchored_table(a, b)
    refusal = plain_refusal(a, b)
    assert table.incentive_tier == (refusal is not None)
    if refusal is None:
        assert anchored_table(a, b, incentive_tier=False) == table
    else:
        with pytest.raises(InvariantError) as err:
            anchored_table(a, b, incentive_tier=False)
        assert err.value.code == refusal
    scoped = anchored_table(a, b, incentive_tier=True)
    assert check_table(scoped, a, b) == ()


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), regular_schemes("c"))
def test_anchored_pivot_never_above_direct(a: Scheme, b: Scheme, c: Scheme) -> None:
    """REQ: C3 — composing A→B→C never gives more than the direct A→C, for any three regular
    schemes; the six tables pass every invariant as a set (round trips and pivots)."""
    schemes = {"a": a, "b": b, "c": c}
    tables = [anchored_table(s, t) for s in schemes.values() for t in schemes.values() if s != t]
    assert check_set(tables, schemes) == ()
    ab, bc, ac = (next(t for t in tables if (t.source.scheme, t.target.scheme) == p) for p in
                  (("a", "b"), ("b", "c"), ("a", "c")))  # fmt: skip
    route = compose(ab, bc)
    for x in a.grades:
        assert rank_of(c, route.recognise(x)) <= rank_of(c, ac.recognise(x))


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), st.data())
def test_score_map_is_an_exact_monotone_inverse(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    """f_BA ∘ f_AB is the identity and f is monotone: the basis of round-trip safety; a score
    maps at least as high as its grade, and only where its grade is recognised."""
    s1 = data.draw(st.integers(a.score_min, a.score_max))
    s2 = data.draw(st.integers(a.score_min, a.score_max))
    assert score_map(b, a, score_map(a, b, s1)) == s1
    if s1 <= s2:
        assert score_map(a, b, s1) <= score_map(a, b, s2)
    table = anchored_table(a, b)
    grade = a.grade_for(s1)
    if table.recognise(grade) is None:
        with pytest.raises(NotRecognisedError):
            map_score(a, b, s1)
        return
    m1 = map_score(a, b, s1)
    assert m1.source_interval[0] <= s1 <= m1.source_interval[1]
    assert m1.target_interval == (
        b.tier(m1.target_grade).min_score,
        b.tier(m1.target_grade).max_score,
    )
    # score-level is never below the grade-level table (more information), and caps hold
    assert b.rank(m1.target_grade) >= b.rank(table.map(grade))
    if not a.is_incentive_grade(grade):
        assert not b.is_incentive_grade(m1.target_grade)
    if a.rank(grade) >= a.rank(a.base_grade):
        assert b.rank(m1.target_grade) >= b.rank(b.base_grade)


@st.composite
def _linked(draw: st.DrawFn) -> tuple[Scheme, Scheme, object, object]:
    a = draw(regular_schemes("a"))
    b = draw(regular_schemes("b"))
    ha = draw(random_histograms(a, min_total=10))
    hb = draw(random_histograms(b, min_total=10))
    return a, b, ha, hb


def _raised(source: Scheme, target: Scheme, hs: object, ht: object, x: str) -> bool:
    """Whether the parity floor lifted ``x`` above what its percentile supports."""
    worst = percentile_grades(source, target, hs, ht)  # type: ignore[arg-type]
    return PARITY in fair_grade(source, target, x, worst[x])[1]


@SETTINGS
@given(_linked())
def test_equipercentile_tables_pass_every_invariant(case: tuple) -> None:  # type: ignore[type-arg]
    """REQ: C3, H8 — random regular schemes and histograms (empty tiers included) give tables
    passing every invariant, or are refused for round-trip inflation only where the parity floor
    lifted a clean record above its percentile (the populations are too unlike)."""
    from .conftest import region_key

    a, b, ha, hb = case
    ha, hb = ha.signed(region_key("a")), hb.signed(region_key("b"))
    keys = public_keys("a", "b")
    for source, target, hs, ht in ((a, b, ha, hb), (b, a, hb, ha)):
        table, err = _attempt(
            lambda s=source, t=target, x=hs, y=ht: equipercentile_table(
                s, t, x, y, keys=keys, min_population=10
            )
        )
        if err is not None:
            assert err.code == "INVARIANT_NO_ROUND_TRIP_INFLATION"
            assert any(_raised(source, target, hs, ht, v.grades[0]) for v in err.violations), (
                err.violations
            )
            continue
        assert table is not None
        assert check_table(table, source, target) == ()
        assert _parity_holds(table, source, target)
        # a worst grade below the clean record maps to the worst grade, or is not recognised
        if source.grades[-1] != source.base_grade:
            assert table.recognise(source.grades[-1]) in (target.grades[-1], None)


# -- broken tables are refused with the right invariant named ----------------


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), st.data())
def test_missing_grade_is_refused_as_total(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    table = anchored_table(a, b)
    drop = data.draw(st.sampled_from(a.grades))
    broken = replace(table, grades=tuple(p for p in table.grades if p[0] != drop))
    with pytest.raises(InvariantError) as err:
        require_valid(broken, a, b)
    assert err.value.invariant == "total"
    assert err.value.code == "INVARIANT_TOTAL"
    assert drop in err.value.grades


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), st.data())
def test_inverted_order_is_refused_as_monotone(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    table = anchored_table(a, b)
    t = table.grade_map
    # a worse grade mapped above the target worst; lower a better one below it
    candidates = [
        (better, worse)
        for i, better in enumerate(a.grades)
        for worse in a.grades[i + 1 :]
        if rank_of(b, t[worse]) > 0 and t[better] is not None
    ]
    assume(candidates)
    better, _worse = data.draw(st.sampled_from(candidates))
    broken = replace(
        table, grades=tuple((x, b.grades[-1] if x == better else y) for x, y in table.grades)
    )
    assert "monotone" in _names(check_table(broken, a, b))
    assert _names(check_table(broken, a, b)) <= {"monotone", PARITY}


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), st.data())
def test_raised_grade_is_refused_as_conservative(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    table = anchored_table(a, b)
    bound = anchored_bound(a, b)
    raisable = [
        x
        for x in a.grades
        if table.recognise(x) is not None and rank_of(b, bound[x]) < len(b.grades) - 1
    ]
    assume(raisable)
    x = data.draw(st.sampled_from(raisable))
    broken = replace(
        table, grades=tuple((g, b.grades[0] if g == x else y) for g, y in table.grades)
    )
    with pytest.raises(InvariantError) as err:
        require_valid(broken, a, b)
    assert "conservative" in {v.invariant for v in err.value.violations}
    assert any(v.grades[0] == x for v in err.value.violations if v.invariant == "conservative")


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), st.data())
def test_non_incentive_to_incentive_is_refused(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    table = anchored_table(a, b)
    assume(not table.incentive_tier)  # an incentive-tier table carries no such grade at all
    below = [x for x in a.grades if not a.is_incentive_grade(x)]
    assume(below)
    x = data.draw(st.sampled_from(below))
    broken = replace(
        table, grades=tuple((g, b.incentive_tier if g == x else y) for g, y in table.grades)
    )
    violations = check_table(broken, a, b)
    assert any(v.invariant == "incentive_safe" and v.grades[0] == x for v in violations)


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"))
def test_inflating_reverse_is_refused_as_round_trip(a: Scheme, b: Scheme) -> None:
    table = anchored_table(a, b)
    inflating = [
        x for x in a.grades if a.rank(x) < len(a.grades) - 1 and table.recognise(x) is not None
    ]
    assume(inflating)
    reverse = replace(
        anchored_table(b, a, incentive_tier=False) if plain_refusal(b, a) is None else table,
        method=Method.AGREEMENT,
        id="bad-reverse",
        source=table.target,
        target=table.source,
        grades=tuple((y, a.grades[0]) for y in b.grades),  # everything back to the top
        incentive_tier=False,
    )
    names = _names(check_table(table, a, b, reverse=reverse))
    assert names == {"no_round_trip_inflation"}
    # and the reverse bound itself never inflates
    back = reverse_bound(table, a, b)
    for x in a.grades:
        there = table.recognise(x)
        returned = None if there is None else back[there]
        assert returned is None or a.rank(returned) <= a.rank(x)


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), regular_schemes("c"))
def test_direct_below_a_pivot_is_refused(a: Scheme, b: Scheme, c: Scheme) -> None:
    ab, bc, ac = anchored_table(a, b), anchored_table(b, c), anchored_table(a, c)
    route = compose(ab, bc)
    assume(any(rank_of(c, route.recognise(x)) > 0 for x in a.grades))
    lowered = replace(
        ac, grades=tuple((x, None if y is None else c.grades[-1]) for x, y in ac.grades)
    )
    names = _names(check_table(lowered, a, c, tables=[ab, bc]))
    assert "pivot_not_above_direct" in names
    assert names <= {"pivot_not_above_direct", PARITY}


def test_invariant_names_are_the_seven() -> None:
    assert INVARIANTS == (
        "total",
        "monotone",
        "conservative",
        "incentive_safe",
        "clean_record_parity",
        "no_round_trip_inflation",
        "pivot_not_above_direct",
    )


@st.composite
def _three_linked(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    out = []
    for sid in ("a", "b", "c"):
        scheme = draw(regular_schemes(sid))
        out.append((scheme, draw(random_histograms(scheme, min_total=10))))
    return tuple(out)


@SETTINGS
@given(_three_linked())
def test_equipercentile_pivot_never_above_direct_unless_parity_lifted(case: tuple) -> None:  # type: ignore[type-arg]
    """REQ: C3 — linking A→B→C by percentiles never beats linking A→C directly, except where a
    leg's parity floor lifted a clean record above its percentile; the set check refuses those
    sets (``INVARIANT_PIVOT_NOT_ABOVE_DIRECT``), so they are never installed together."""
    from .conftest import region_key

    (a, ha), (b, hb), (c, hc) = case
    ha, hb, hc = (h.signed(region_key(r)) for h, r in ((ha, "a"), (hb, "b"), (hc, "c")))
    keys = public_keys("a", "b", "c")

    def link(s, t, hs, ht):  # type: ignore[no-untyped-def]
        return equipercentile_table(s, t, hs, ht, keys=keys, min_population=10)

    built = [
        _attempt(lambda p=p: link(*p)) for p in ((a, b, ha, hb), (b, c, hb, hc), (a, c, ha, hc))
    ]
    refused = [err for _, err in built if err is not None]
    assert all(err.code == "INVARIANT_NO_ROUND_TRIP_INFLATION" for err in refused)
    if refused:
        return
    ab, bc, ac = (table for table, _ in built)
    assert ab is not None and bc is not None and ac is not None
    for v in check_table(ac, a, c, tables=[ab, bc]):
        assert v.invariant == "pivot_not_above_direct"
        x = v.grades[0]
        mid = ab.map(x)
        assert _raised(a, b, ha, hb, x) or _raised(b, c, hb, hc, mid), v


@SETTINGS
@given(regular_schemes("a"), regular_schemes("b"), regular_schemes("c"))
def test_resolved_pivot_routes_pass_every_invariant(a: Scheme, b: Scheme, c: Scheme) -> None:
    """REQ: C3 — without a direct table, the most conservative route is itself a valid table
    (not recognised exactly below the source's incentive tier when any route says so)."""
    from mapping import most_conservative

    tables = [anchored_table(a, b), anchored_table(b, c)]
    rec = most_conservative(a, c, tables)
    grades = tuple((x, rec.recognise(x)) for x in a.grades)
    as_table = replace(
        anchored_table(a, c),
        method=Method.AGREEMENT,
        grades=grades,
        incentive_tier=any(y is None for _, y in grades),
    )
    assert check_table(as_table, a, c, tables=tables) == ()


@SETTINGS
@given(_linked())
def test_incentive_tier_tables_never_map_a_below_tier_grade(case: tuple) -> None:  # type: ignore[type-arg]
    """REQ: H14, N14, N20 — for any regular schemes, the incentive-tier tables of every method
    (anchored, agreement, equipercentile) and the most conservative recognition over them carry
    no grade at all below the source's incentive tier: recognition only unlocks incentives."""
    from mapping import NotRecognisedError, agreement_table, most_conservative

    from .conftest import region_key

    a, b, ha, hb = case
    anchored = anchored_table(a, b, incentive_tier=True)
    tables = [anchored]
    eligible = {x: anchored.map(x) for x in a.grades if a.is_incentive_grade(x)}
    tables.append(agreement_table(a, b, eligible, effective_from=a.effective, incentive_tier=True))
    equi, err = _attempt(
        lambda: equipercentile_table(
            a,
            b,
            ha.signed(region_key("a")),
            hb.signed(region_key("b")),
            keys=public_keys("a", "b"),
            min_population=10,
            incentive_tier=True,
        )
    )
    if equi is not None:
        tables.append(equi)
    else:
        assert err is not None and err.code == "INVARIANT_NO_ROUND_TRIP_INFLATION"
    rec = most_conservative(a, b, tables, prefer_direct=False)
    for table in tables:
        assert table.incentive_tier and check_table(table, a, b) == ()
    for x in a.grades:
        if a.is_incentive_grade(x):
            assert all(t.recognise(x) is not None for t in tables)
            continue
        for lookup in (*tables, rec):
            assert lookup.recognise(x) is None
            with pytest.raises(NotRecognisedError):
                lookup.map(x)
