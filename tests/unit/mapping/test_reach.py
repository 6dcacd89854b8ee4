"""Incentive reach: the share of the source's incentive-eligible residents a table keeps
eligible, measured on a reference population, and the floor that refuses stingy tables.

REQ: C3, H13, H14, N14, N20 (issue 16 §"Fair mappings": "a table reports, on a reference
population, what share of the source's incentive-eligible residents stay incentive-eligible
in the target ... a table below a configured floor is refused with the figure in the error").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping import (
    DEFAULT_MIN_REACH,
    MappingTable,
    Method,
    ReachError,
    ReferencePopulation,
    agreement_table,
    anchored_table,
    canonical,
    incentive_reach,
    parse_floor,
    published_table,
    reference_population,
    require_reach,
    sign_table,
)
from mapping._reference_data import REFERENCE_POPULATIONS
from scoring import Scheme

from .conftest import SHIPPED, region_key, regular_schemes

PAIRS = [(a, b) for a in SHIPPED for b in SHIPPED if a != b]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: The Heihe rows published before the fair rules (grades only; docs/mapping.md "before").
HEIHE_BEFORE = {
    "hainan": ("AAA", "AAA", "AA", "AA", "A", "B", "C", "D", "D"),
    "fuzhou": ("jihao", "jihao", "youxiu", "youxiu", "lianghao", "jiaocha", "jiaocha", "jicha", "jicha"),
    "wendeng": ("AAA", "AAA", "AAA", "AAA", "AAA", "A", "C", "C", "D"),
}  # fmt: skip


def _shares(scheme: Scheme) -> dict[str, int]:
    (entry,) = [e for e in REFERENCE_POPULATIONS if e["scheme"] == scheme.id]
    return dict(entry["shares_ppm"])


def _expected(table: MappingTable, source: Scheme, target: Scheme) -> Fraction:
    """Reach by the definition, written out independently of mapping._reach."""
    shares = _shares(source)
    eligible = [g for g in source.grades if source.is_incentive_grade(g)]
    kept = [
        g
        for g in eligible
        if table.grade_map[g] is not None and target.is_incentive_grade(table.grade_map[g])  # type: ignore[arg-type]
    ]
    return Fraction(sum(shares[g] for g in kept), sum(shares[g] for g in eligible))


@pytest.mark.parametrize(("src", "tgt"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_reach_of_every_shipped_table(schemes: dict[str, Scheme], src: str, tgt: str) -> None:
    """REQ: H14, N20 — every published table keeps every incentive-eligible resident of its
    source eligible in the target (incentive thresholds are aligned: reach 100.00%), well above
    the default floor."""
    source, target = schemes[src], schemes[tgt]
    table = published_table(src, tgt)
    reach = incentive_reach(table, source, target)
    assert reach.reach == _expected(table, source, target) == 1
    assert reach.lost == ()
    assert reach.percent() == "100.00%"
    assert reach.reach >= DEFAULT_MIN_REACH
    assert reach.eligible == Fraction(
        sum(w for g, w in _shares(source).items() if source.is_incentive_grade(g)),
        sum(_shares(source).values()),
    )


@pytest.mark.parametrize("tgt", sorted(HEIHE_BEFORE))
def test_reach_of_the_heihe_tables_before_the_fair_rules(
    schemes: dict[str, Scheme], tgt: str
) -> None:
    """REQ: H14, N20 — the tables published before sent Heihe A (86% of residents, rewarded at
    home) to a grade the target does not reward: on the ADR 0510 shares they kept
    27,500 of 887,500 ppm eligible, 3.09%, and are refused by the default floor."""
    heihe, target = schemes["heihe"], schemes[tgt]
    before = replace(
        published_table("heihe", tgt),
        grades=tuple(zip(heihe.grades, HEIHE_BEFORE[tgt], strict=True)),
    )
    reach = incentive_reach(before, heihe, target)
    assert reach.reach == _expected(before, heihe, target) == Fraction(27_500, 887_500)
    assert reach.percent() == "3.09%"
    assert reach.lost == ("A",)
    with pytest.raises(ReachError) as err:
        require_reach(before, heihe, target)
    assert err.value.code == "INCENTIVE_REACH_TOO_LOW"


def test_floor_refuses_a_stingy_agreement_with_the_figure(schemes: dict[str, Scheme]) -> None:
    """REQ: H13, H14 — an agreement that passes every invariant but maps Heihe A to Hainan B is
    refused below the floor, naming the figure, the floor and the grade lost; it signs when no
    floor is asked for, and the error carries the figure for an approval record."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    grades = dict(zip(heihe.grades, HEIHE_BEFORE["hainan"], strict=True))
    table = agreement_table(heihe, hainan, grades, effective_from=date(2026, 1, 1))
    with pytest.raises(ReachError) as err:
        require_reach(table, heihe, hainan, floor="1/2")
    assert err.value.code == "INCENTIVE_REACH_TOO_LOW"
    assert "3.09%" in err.value.message and "50.00%" in err.value.message
    assert "lost: A" in err.value.message
    assert err.value.reach is not None and err.value.reach.reach == Fraction(11, 355)
    with pytest.raises(ReachError):
        sign_table(table, heihe, hainan, region_key("heihe"), min_reach="0.5")
    assert len(sign_table(table, heihe, hainan, region_key("heihe")).signatures) == 1
    assert require_reach(table, heihe, hainan, floor="0.03").reach == Fraction(11, 355)


def test_reach_record_is_canonical_integers(schemes: dict[str, Scheme]) -> None:
    """REQ: H13 — what an approval record carries: the table and reference hashes and the
    figures in parts per million (rounded down), encodable canonically (no floats)."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = published_table("heihe", "hainan")
    record = incentive_reach(table, heihe, hainan).to_json()
    assert record["table"] == table.content_hash
    assert record["reference"] == reference_population(heihe).content_hash
    assert record["reach_ppm"] == 1_000_000
    assert record["eligible_ppm"] == 887_500 * 1_000_000 // 1_000_500
    assert canonical(record)
    stingy = replace(table, grades=tuple(zip(heihe.grades, HEIHE_BEFORE["hainan"], strict=True)))
    assert incentive_reach(stingy, heihe, hainan).to_json()["reach_ppm"] == 30_985


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.5", Fraction(1, 2)), ("1/3", Fraction(1, 3)), (0, Fraction(0)), (1, Fraction(1))],
    ids=["decimal", "fraction", "zero", "one"],
)
def test_floor_accepts_exact_values_in_range(value: object, expected: Fraction) -> None:
    assert parse_floor(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["1.5", "-0.1", "abc", "", 0.5, True, None, "1/0"],
    ids=["above-one", "negative", "text", "empty", "float", "bool", "none", "div-zero"],
)
def test_bad_floor_is_refused(value: object) -> None:
    """Every configured floor has a bound: an exact number in [0, 1]."""
    with pytest.raises(ReachError) as err:
        parse_floor(value)  # type: ignore[arg-type]
    assert err.value.code == "BAD_FLOOR"


def _heihe_ref(**weights: int) -> ReferencePopulation:
    heihe = dict.fromkeys(("SSS", "SS", "S", "AAA", "AA", "A", "B", "C", "D"), 1)
    return ReferencePopulation("heihe", "2025.1", tuple({**heihe, **weights}.items()))


BAD_REFERENCES = [
    ("other-version", replace(_heihe_ref(), version="2026.1")),
    ("other-scheme", replace(_heihe_ref(), scheme="hainan")),
    ("missing-grade", ReferencePopulation("heihe", "2025.1", _heihe_ref().weights[:-1])),
    ("negative", _heihe_ref(A=-1)),
    ("too-large", _heihe_ref(A=10**12 + 1)),
    ("all-zero", _heihe_ref(**dict.fromkeys(("SSS", "SS", "S", "AAA", "AA", "A", "B", "C", "D"), 0))),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ref"), BAD_REFERENCES, ids=[b[0] for b in BAD_REFERENCES])
def test_bad_reference_population_is_refused(
    schemes: dict[str, Scheme], name: str, ref: ReferencePopulation
) -> None:
    with pytest.raises(ReachError) as err:
        incentive_reach(
            published_table("heihe", "hainan"), schemes["heihe"], schemes["hainan"], ref
        )
    assert err.value.code == "REFERENCE_MISMATCH", name


def test_no_reference_shipped_for_a_new_scheme_version(schemes: dict[str, Scheme]) -> None:
    """A new scheme version's grades may mean something else: its reach needs its own data."""
    newer = replace(schemes["heihe"], version="2026.1")
    with pytest.raises(ReachError) as err:
        reference_population(newer)
    assert err.value.code == "REFERENCE_MISMATCH"


# -- properties ---------------------------------------------------------------


@st.composite
def _pair_with_reference(draw: st.DrawFn) -> tuple[Scheme, Scheme, ReferencePopulation]:
    a = draw(regular_schemes("a"))
    b = draw(regular_schemes("b"))
    weights = tuple((g, draw(st.integers(0, 10_000))) for g in a.grades)
    if not any(w for _, w in weights):
        weights = ((weights[0][0], 1), *weights[1:])
    return a, b, ReferencePopulation("a", "1", weights, "random")


@SETTINGS
@given(_pair_with_reference(), st.data())
def test_reach_is_a_share_and_monotone_in_the_table(case: tuple, data: st.DataObject) -> None:  # type: ignore[type-arg]
    """REQ: N20 — reach lies in [0, 1] for any table and population; the anchored table keeps
    everyone (incentive thresholds are aligned: reach 1); and lowering any entry of a table —
    an agreement stricter than the anchored one — never raises its reach."""
    a, b, ref = case
    anchored = anchored_table(a, b)
    full = incentive_reach(anchored, a, b, ref)
    assert full.reach == 1 and full.lost == ()
    lowered = dict(anchored.grades)
    for x in a.grades:
        y = lowered[x]
        if y is not None and data.draw(st.booleans()):
            lowered[x] = data.draw(st.sampled_from(b.grades[b.grades.index(y) :]))
    stricter = replace(anchored, method=Method.AGREEMENT, grades=tuple(lowered.items()))
    reach = incentive_reach(stricter, a, b, ref)
    assert 0 <= reach.reach <= full.reach <= 1
    assert 0 <= reach.reach_ppm <= 1_000_000
    assert set(reach.lost) == {
        x
        for x in a.grades
        if a.is_incentive_grade(x) and (lowered[x] is None or not b.is_incentive_grade(lowered[x]))  # type: ignore[arg-type]
    }
