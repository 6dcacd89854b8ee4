"""Properties: every table made from random valid schemes and histograms passes
every invariant; deliberately broken tables are refused naming the invariant.

REQ: C3, H13, N20.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mapping import (
    INVARIANTS,
    InvariantError,
    Method,
    anchored_bound,
    anchored_table,
    check_table,
    compose,
    equipercentile_bound,
    equipercentile_table,
    map_score,
    require_valid,
    reverse_bound,
    score_map,
)
from scoring import Scheme

from .conftest import public_keys, random_histograms, random_schemes

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _has_no_safe_target(source: Scheme, target: Scheme) -> bool:
    """The one case with no incentive-safe table: target all incentive, source not."""
    return target.rank(target.incentive_tier) == 0 and source.rank(source.incentive_tier) > 0


def _names(violations: object) -> set[str]:
    return {v.invariant for v in violations}  # type: ignore[attr-defined]


@SETTINGS
@given(random_schemes("a"), random_schemes("b"))
def test_anchored_tables_pass_every_invariant(a: Scheme, b: Scheme) -> None:
    """REQ: C3 — any two valid schemes give an anchored table passing all invariants, both ways."""
    for source, target in ((a, b), (b, a)):
        if _has_no_safe_target(source, target):
            with pytest.raises(InvariantError) as err:
                anchored_table(source, target)
            assert err.value.invariant == "incentive_safe"
            assert err.value.code == "INVARIANT_INCENTIVE_SAFE"
            continue
        table = anchored_table(source, target)
        assert check_table(table, source, target) == ()
    if not _has_no_safe_target(a, b) and not _has_no_safe_target(b, a):
        ab, ba = anchored_table(a, b), anchored_table(b, a)
        assert check_table(ab, a, b, reverse=ba) == ()
        assert check_table(ba, b, a, reverse=ab) == ()
        for x in a.grades:  # explicit: A→B→A never ends above the start
            assert a.rank(ba.map(ab.map(x))) <= a.rank(x)


@SETTINGS
@given(
    random_schemes("a", incentive_above_worst=True),
    random_schemes("b", incentive_above_worst=True),
    random_schemes("c", incentive_above_worst=True),
)
def test_anchored_pivot_never_above_direct(a: Scheme, b: Scheme, c: Scheme) -> None:
    """REQ: C3 — composing A→B→C never gives more than the direct A→C, for any three schemes."""
    assume(not any(_has_no_safe_target(s, t) for s, t in ((a, b), (b, c), (a, c))))
    ab, bc, ac = anchored_table(a, b), anchored_table(b, c), anchored_table(a, c)
    assert check_table(ac, a, c, tables=[ab, bc]) == ()
    route = compose(ab, bc)
    for x in a.grades:
        assert c.rank(route.map(x)) <= c.rank(ac.map(x))


@SETTINGS
@given(random_schemes("a"), random_schemes("b"), st.data())
def test_score_map_is_an_exact_monotone_inverse(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    """f_BA ∘ f_AB is the identity and f is monotone: the basis of round-trip safety."""
    s1 = data.draw(st.integers(a.score_min, a.score_max))
    s2 = data.draw(st.integers(a.score_min, a.score_max))
    assert score_map(b, a, score_map(a, b, s1)) == s1
    if s1 <= s2:
        assert score_map(a, b, s1) <= score_map(a, b, s2)
    assume(not _has_no_safe_target(a, b))
    m1 = map_score(a, b, s1)
    assert m1.source_interval[0] <= s1 <= m1.source_interval[1]
    assert m1.target_interval == (
        b.tier(m1.target_grade).min_score,
        b.tier(m1.target_grade).max_score,
    )
    # score-level is never below the grade-level table (more information), and caps hold
    assert b.rank(m1.target_grade) >= b.rank(anchored_table(a, b).map(a.grade_for(s1)))
    if not a.is_incentive_grade(a.grade_for(s1)):
        assert not b.is_incentive_grade(m1.target_grade)


@st.composite
def _linked(draw: st.DrawFn) -> tuple[Scheme, Scheme, object, object]:
    a = draw(random_schemes("a"))
    b = draw(random_schemes("b"))
    ha = draw(random_histograms(a, min_total=10))
    hb = draw(random_histograms(b, min_total=10))
    return a, b, ha, hb


@SETTINGS
@given(_linked())
def test_equipercentile_tables_pass_every_invariant(case: tuple) -> None:  # type: ignore[type-arg]
    """REQ: C3 — random schemes and histograms (empty tiers included) give valid tables both ways."""
    from .conftest import region_key

    a, b, ha, hb = case
    ha, hb = ha.signed(region_key("a")), hb.signed(region_key("b"))
    keys = public_keys("a", "b")
    for source, target, hs, ht in ((a, b, ha, hb), (b, a, hb, ha)):
        if _has_no_safe_target(source, target):
            with pytest.raises(InvariantError) as err:
                equipercentile_table(source, target, hs, ht, keys=keys, min_population=10)
            assert err.value.invariant == "incentive_safe"
            continue
        table = equipercentile_table(source, target, hs, ht, keys=keys, min_population=10)
        assert check_table(table, source, target) == ()
        # the worst grade always maps to the worst grade
        assert table.map(source.grades[-1]) == target.grades[-1]
        back = equipercentile_bound(target, source, ht, hs)
        for x in source.grades:
            assert source.rank(back[table.map(x)]) <= source.rank(x)


# -- broken tables are refused with the right invariant named ----------------


def _valid_pair(a: Scheme, b: Scheme) -> None:
    assume(not _has_no_safe_target(a, b))


@SETTINGS
@given(random_schemes("a"), random_schemes("b"), st.data())
def test_missing_grade_is_refused_as_total(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    _valid_pair(a, b)
    table = anchored_table(a, b)
    drop = data.draw(st.sampled_from(a.grades))
    broken = replace(table, grades=tuple(p for p in table.grades if p[0] != drop))
    with pytest.raises(InvariantError) as err:
        require_valid(broken, a, b)
    assert err.value.invariant == "total"
    assert err.value.code == "INVARIANT_TOTAL"
    assert drop in err.value.grades


@SETTINGS
@given(random_schemes("a"), random_schemes("b"), st.data())
def test_inverted_order_is_refused_as_monotone(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    _valid_pair(a, b)
    table = anchored_table(a, b)
    t = table.grade_map
    # a worse grade mapped above the target worst; lower a better one below it
    candidates = [
        (better, worse)
        for i, better in enumerate(a.grades)
        for worse in a.grades[i + 1 :]
        if b.rank(t[worse]) > 0
    ]
    assume(candidates)
    better, _worse = data.draw(st.sampled_from(candidates))
    broken = replace(
        table, grades=tuple((x, b.grades[-1] if x == better else y) for x, y in table.grades)
    )
    names = _names(check_table(broken, a, b))
    assert names == {"monotone"}


@SETTINGS
@given(random_schemes("a"), random_schemes("b"), st.data())
def test_raised_grade_is_refused_as_conservative(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    _valid_pair(a, b)
    table = anchored_table(a, b)
    bound = anchored_bound(a, b)
    raisable = [x for x in a.grades if b.rank(bound[x]) < len(b.grades) - 1]
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
@given(random_schemes("a"), random_schemes("b"), st.data())
def test_non_incentive_to_incentive_is_refused(a: Scheme, b: Scheme, data: st.DataObject) -> None:
    _valid_pair(a, b)
    table = anchored_table(a, b)
    below = [x for x in a.grades if not a.is_incentive_grade(x)]
    assume(below)
    x = data.draw(st.sampled_from(below))
    broken = replace(
        table, grades=tuple((g, b.incentive_tier if g == x else y) for g, y in table.grades)
    )
    violations = check_table(broken, a, b)
    assert any(v.invariant == "incentive_safe" and v.grades[0] == x for v in violations)


@SETTINGS
@given(random_schemes("a"), random_schemes("b"))
def test_inflating_reverse_is_refused_as_round_trip(a: Scheme, b: Scheme) -> None:
    _valid_pair(a, b)
    table = anchored_table(a, b)
    inflating = [x for x in a.grades if a.rank(x) < len(a.grades) - 1]
    assume(inflating)
    reverse = replace(
        anchored_table(b, a) if not _has_no_safe_target(b, a) else table,
        method=Method.AGREEMENT,
        id="bad-reverse",
        source=table.target,
        target=table.source,
        grades=tuple((y, a.grades[0]) for y in b.grades),  # everything back to the top
    )
    names = _names(check_table(table, a, b, reverse=reverse))
    assert names == {"no_round_trip_inflation"}
    # and the reverse bound itself never inflates
    back = reverse_bound(table, a, b)
    assert all(a.rank(back[table.map(x)]) <= a.rank(x) for x in a.grades)


@SETTINGS
@given(
    random_schemes("a", incentive_above_worst=True),
    random_schemes("b", incentive_above_worst=True),
    random_schemes("c", incentive_above_worst=True),
)
def test_direct_below_a_pivot_is_refused(a: Scheme, b: Scheme, c: Scheme) -> None:
    assume(not any(_has_no_safe_target(s, t) for s, t in ((a, b), (b, c), (a, c))))
    ab, bc, ac = anchored_table(a, b), anchored_table(b, c), anchored_table(a, c)
    route = compose(ab, bc)
    assume(any(c.rank(route.map(x)) > 0 for x in a.grades))
    lowered = replace(ac, grades=tuple((x, c.grades[-1]) for x in a.grades))
    names = _names(check_table(lowered, a, c, tables=[ab, bc]))
    assert names == {"pivot_not_above_direct"}


def test_invariant_names_are_the_six() -> None:
    assert INVARIANTS == (
        "total",
        "monotone",
        "conservative",
        "incentive_safe",
        "no_round_trip_inflation",
        "pivot_not_above_direct",
    )


@st.composite
def _three_linked(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    out = []
    for sid in ("a", "b", "c"):
        scheme = draw(random_schemes(sid, incentive_above_worst=True))
        out.append((scheme, draw(random_histograms(scheme, min_total=10))))
    return tuple(out)


@SETTINGS
@given(_three_linked())
def test_equipercentile_pivot_never_above_direct(case: tuple) -> None:  # type: ignore[type-arg]
    """REQ: C3 — linking A→B→C by percentiles never beats linking A→C directly."""
    from .conftest import region_key

    (a, ha), (b, hb), (c, hc) = case
    assume(not any(_has_no_safe_target(s, t) for s, t in ((a, b), (b, c), (a, c))))
    ha, hb, hc = (h.signed(region_key(r)) for h, r in ((ha, "a"), (hb, "b"), (hc, "c")))
    keys = public_keys("a", "b", "c")

    def link(s, t, hs, ht):  # type: ignore[no-untyped-def]
        return equipercentile_table(s, t, hs, ht, keys=keys, min_population=10)

    ab, bc, ac = link(a, b, ha, hb), link(b, c, hb, hc), link(a, c, ha, hc)
    assert check_table(ac, a, c, tables=[ab, bc]) == ()


@SETTINGS
@given(
    random_schemes("a", incentive_above_worst=True),
    random_schemes("b", incentive_above_worst=True),
    random_schemes("c", incentive_above_worst=True),
)
def test_resolved_pivot_routes_pass_every_invariant(a: Scheme, b: Scheme, c: Scheme) -> None:
    """REQ: C3 — without a direct table, the most conservative route is itself a valid table."""
    from dataclasses import replace as _replace

    from mapping import most_conservative

    assume(not any(_has_no_safe_target(s, t) for s, t in ((a, b), (b, c), (a, c))))
    tables = [anchored_table(a, b), anchored_table(b, c)]
    rec = most_conservative(a, c, tables)
    as_table = _replace(
        anchored_table(a, c),
        method=Method.AGREEMENT,
        grades=tuple((x, rec.map(x)) for x in a.grades),
    )
    assert check_table(as_table, a, c, tables=tables) == ()
