"""Anchored tables for the shipped schemes: the issue's examples, anchors, score-level mapping.

REQ: C3, H8, H13, H14, N20.
"""

from __future__ import annotations

import pytest

from mapping import (
    REFERENCE,
    TableError,
    anchored_table,
    anchors,
    check_set,
    map_score,
    published_table,
    score_map,
)
from scoring import Scheme

from .conftest import SHIPPED

PAIRS = [(a, b) for a in SHIPPED for b in SHIPPED if a != b]


@pytest.mark.parametrize(("src", "tgt"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_heihe_clean_grade_never_above_target_clean_grade(
    schemes: dict[str, Scheme], src: str, tgt: str
) -> None:
    """REQ: H8, C3 — Heihe A (base 600, 600-749) never maps above the target's clean-record grade;
    the same holds for every scheme's clean-record grade and everything below it."""
    source, target = schemes[src], schemes[tgt]
    table = anchored_table(source, target)
    for grade in source.grades:
        if source.rank(grade) <= source.rank(source.base_grade):
            assert target.rank(table.map(grade)) <= target.rank(target.base_grade), grade


@pytest.mark.parametrize("tgt", [s for s in SHIPPED if s != "heihe"])
def test_heihe_a_maps_exactly_to_clean_record_grade(schemes: dict[str, Scheme], tgt: str) -> None:
    """REQ: H8 — Heihe's clean record (600, bottom of A) lands exactly on the target's
    clean-record grade: Fuzhou jiaocha, Hainan B, Wendeng A."""
    table = anchored_table(schemes["heihe"], schemes[tgt])
    assert table.map("A") == schemes[tgt].base_grade


@pytest.mark.parametrize("tgt", [s for s in SHIPPED if s != "heihe"])
@pytest.mark.parametrize("grade", ["B", "C", "D"])
def test_heihe_below_a_never_incentive_eligible(
    schemes: dict[str, Scheme], tgt: str, grade: str
) -> None:
    """REQ: H14, C3 — Heihe B/C/D (below the incentive tier A) never map to an incentive grade."""
    table = anchored_table(schemes["heihe"], schemes[tgt])
    assert not schemes[tgt].is_incentive_grade(table.map(grade))


@pytest.mark.parametrize("pivot", ["fuzhou", "wendeng", "hainan"])
def test_heihe_round_trips_never_inflate(schemes: dict[str, Scheme], pivot: str) -> None:
    """REQ: C3 — Heihe→Fuzhou→Heihe and Heihe→Wendeng→Heihe (and Hainan) never end above the start."""
    heihe = schemes["heihe"]
    there = published_table("heihe", pivot)
    back = published_table(pivot, "heihe")
    for grade in heihe.grades:
        assert heihe.rank(back.map(there.map(grade))) <= heihe.rank(grade), grade


def test_published_heihe_fuzhou_and_wendeng_rows(schemes: dict[str, Scheme]) -> None:
    """The published rows the docs explain (docs/mapping.md, "Published tables")."""
    assert published_table("heihe", "fuzhou").grade_map == {
        "SSS": "jihao",
        "SS": "jihao",
        "S": "youxiu",
        "AAA": "youxiu",
        "AA": "lianghao",
        "A": "jiaocha",
        "B": "jiaocha",
        "C": "jicha",
        "D": "jicha",
    }
    assert published_table("wendeng", "heihe").grade_map == {
        "AAA": "A",
        "AA": "A",
        "A": "B",
        "B": "B",
        "C": "D",
        "D": "D",
    }


def test_published_set_passes_every_invariant_including_pivots(
    schemes: dict[str, Scheme],
) -> None:
    """REQ: C3 — all 12 published tables, checked as a set (round trips and every pivot)."""
    tables = [published_table(a, b) for a, b in PAIRS]
    assert check_set(tables, schemes) == ()


@pytest.mark.parametrize(
    ("scheme_id", "expected"),
    [
        ("heihe", ((0, 0), (600, 600), (1000, 1000))),  # base == incentive threshold: base wins
        ("fuzhou", ((0, 0), (500, 600), (650, 700), (1000, 1000))),
        ("hainan", ((0, 0), (500, 600), (650, 700), (1000, 1000))),
        ("wendeng", ((0, 0), (1000, 600), (1030, 700), (1200, 1000))),
    ],
)
def test_anchor_choice(schemes: dict[str, Scheme], scheme_id: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert anchors(schemes[scheme_id]) == expected
    assert (REFERENCE.floor, REFERENCE.base, REFERENCE.incentive, REFERENCE.ceiling) == (
        0,
        600,
        700,
        1000,
    )


def test_anchors_align_base_and_threshold(schemes: dict[str, Scheme]) -> None:
    fz, wd = schemes["fuzhou"], schemes["wendeng"]
    assert score_map(fz, wd, 500) == 1000  # clean record ↔ clean record
    assert score_map(fz, wd, 650) == 1030  # incentive threshold ↔ incentive threshold
    assert score_map(fz, wd, 0) == 0 and score_map(fz, wd, 1000) == 1200


def test_score_level_mapping_reports_grade_and_intervals(schemes: dict[str, Scheme]) -> None:
    """REQ: C3 — a disclosed score maps to a target grade with the interval it comes from."""
    m = map_score(schemes["heihe"], schemes["hainan"], 830)
    assert (m.source_grade, m.target_score, m.target_grade) == ("AAA", 801, "AA")
    assert m.target_interval == (750, 849)
    assert m.source_interval == (786, 871)
    assert m.capped_by == ()


def test_wendeng_clean_score_is_not_incentive_in_heihe(schemes: dict[str, Scheme]) -> None:
    """REQ: H14 — Wendeng's clean 1000 (A, below its incentive tier AA) reaches Heihe 600 but is
    capped to B: Heihe's A is incentive-eligible."""
    m = map_score(schemes["wendeng"], schemes["heihe"], 1000)
    assert (m.target_score, m.target_grade, m.capped_by) == (600, "B", ("incentive",))
    assert m.source_interval == (834, 1029)


def test_score_level_caps_are_named(schemes: dict[str, Scheme]) -> None:
    """Hainan's clean 500 (B, not incentive) maps to 600 in Heihe = A, capped below incentives."""
    m = map_score(schemes["hainan"], schemes["heihe"], 500)
    assert m.target_score == 600
    assert m.target_grade == "B"
    assert "incentive" in m.capped_by


@pytest.mark.parametrize("score", [-1, 1001, 10_000], ids=["below", "above", "far"])
def test_score_out_of_range_is_refused(schemes: dict[str, Scheme], score: int) -> None:
    with pytest.raises(TableError) as err:
        map_score(schemes["heihe"], schemes["fuzhou"], score)
    assert err.value.code == "SCORE_OUT_OF_RANGE"
