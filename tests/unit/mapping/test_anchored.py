"""Anchored tables for the shipped schemes: the issues' examples, anchors, score-level mapping.

REQ: C3, H8, H13, H14, N14, N20 (issue 16 §"Fair mappings").
"""

from __future__ import annotations

import pytest

from mapping import (
    REFERENCE,
    InvariantError,
    NotRecognisedError,
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
def test_clean_record_is_recognised_at_parity_or_not_at_all(
    schemes: dict[str, Scheme], src: str, tgt: str
) -> None:
    """REQ: H8, C3, N20 — every shipped scheme's clean-record grade maps to the target's
    clean-record grade or higher (or is not recognised: nothing is carried); a clean record
    its home region does not reward is never recognised above the target's clean record."""
    source, target = schemes[src], schemes[tgt]
    table = anchored_table(source, target)
    assert table == published_table(src, tgt)
    mapped = table.recognise(source.base_grade)
    assert mapped is None or target.rank(mapped) >= target.rank(target.base_grade)
    for grade in source.grades:
        y = table.recognise(grade)
        if y is not None and source.rank(grade) < source.rank(source.base_grade):
            assert target.rank(y) < target.rank(target.base_grade), grade  # below clean stays so
        if y is not None and grade == source.base_grade and not source.is_incentive_grade(grade):
            assert y == target.base_grade


@pytest.mark.parametrize(
    ("tgt", "expected"), [("fuzhou", "lianghao"), ("hainan", "A"), ("wendeng", "AA")]
)
def test_heihe_a_is_recognised_at_the_target_incentive_tier(
    schemes: dict[str, Scheme], tgt: str, expected: str
) -> None:
    """REQ: H8, H14, N20 — Heihe's clean record (600, bottom of A) is Heihe's incentive line;
    it lands exactly on the target's incentive tier: Fuzhou lianghao, Hainan A, Wendeng AA."""
    table = published_table("heihe", tgt)
    assert table.map("A") == expected == schemes[tgt].incentive_tier


@pytest.mark.parametrize(
    ("src", "tgt", "grade", "worst_member", "after"),
    [
        ("hainan", "heihe", "B", "B", None),
        ("fuzhou", "heihe", "jiaocha", "C", None),
        ("wendeng", "hainan", "A", "C", "B"),
        ("wendeng", "heihe", "A", "B", None),
        ("fuzhou", "hainan", "jiaocha", "C", "B"),
        ("fuzhou", "wendeng", "jiaocha", "C", "A"),
    ],
    ids=str,
)
def test_clean_records_are_not_stigmatised(
    schemes: dict[str, Scheme], src: str, tgt: str, grade: str, worst_member: str, after: str | None
) -> None:
    """REQ: H8, H14, C3 — issue 16's examples: grading a tier by its worst member would put a
    clean record below the target's clean record (``worst_member``); the shipped table maps it
    to the target's clean record, or — where the target rewards its clean record and the
    source does not — does not recognise it at all."""
    assert grade == schemes[src].base_grade
    assert schemes[tgt].rank(worst_member) < schemes[tgt].rank(schemes[tgt].base_grade)
    assert published_table(src, tgt).recognise(grade) == after


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
    """REQ: C3 — Heihe→X→Heihe never ends above the start; the way back recognises only
    grades at or above X's incentive tier."""
    heihe = schemes["heihe"]
    there = published_table("heihe", pivot)
    back = published_table(pivot, "heihe")
    assert back.incentive_tier
    for grade in heihe.grades:
        returned = back.recognise(there.map(grade))
        if returned is None:
            assert not schemes[pivot].is_incentive_grade(there.map(grade))
        else:
            assert heihe.rank(returned) <= heihe.rank(grade), grade


def test_published_heihe_fuzhou_and_wendeng_rows(schemes: dict[str, Scheme]) -> None:
    """The published rows the docs explain (docs/mapping.md, "Published tables")."""
    assert published_table("heihe", "fuzhou").grade_map == {
        "SSS": "jihao",
        "SS": "jihao",
        "S": "jihao",
        "AAA": "youxiu",
        "AA": "youxiu",
        "A": "lianghao",
        "B": "jicha",
        "C": "jicha",
        "D": "jicha",
    }
    assert published_table("wendeng", "heihe").grade_map == {
        "AAA": "A",
        "AA": "A",
        "A": None,
        "B": None,
        "C": None,
        "D": None,
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
        (
            "heihe",
            ((0, 0), (600, 700), (1000, 1000)),
        ),  # base == incentive threshold: threshold wins
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
    """REQ: C3 — a disclosed score maps to a target grade with the interval it comes from:
    Heihe 830 is 872.5 on the reference scale, Hainan 851.25 (AAA, 850-1000); Heihe scores
    829-1000 map there."""
    m = map_score(schemes["heihe"], schemes["hainan"], 830)
    assert (m.source_grade, m.target_score, m.target_grade) == ("AAA", 851, "AAA")
    assert m.target_interval == (850, 1000)
    assert m.source_interval == (829, 1000)
    assert m.capped_by == m.raised_by == ()
    # the grade alone (Heihe AAA, 800-849) supports only Hainan AA: the score says more
    assert published_table("heihe", "hainan").map("AAA") == "AA"


@pytest.mark.parametrize(
    ("src", "score"), [("wendeng", 1000), ("hainan", 500), ("fuzhou", 649)], ids=str
)
def test_clean_score_not_rewarded_at_home_is_not_recognised_in_heihe(
    schemes: dict[str, Scheme], src: str, score: int
) -> None:
    """REQ: H14, C3 — Wendeng's clean 1000 (A, below its incentive tier AA), Hainan's clean 500
    and Fuzhou's 649 are not recognised in Heihe (its A is incentive-eligible, so no fair
    grade exists for them there); forcing a full table is refused by the parity invariant."""
    with pytest.raises(NotRecognisedError) as err:
        map_score(schemes[src], schemes["heihe"], score)
    assert err.value.code == "NOT_RECOGNISED"
    with pytest.raises(InvariantError) as refused:
        map_score(schemes[src], schemes["heihe"], score, incentive_tier=False)
    assert refused.value.code == "INVARIANT_CLEAN_RECORD_PARITY"


def test_score_level_names_the_parity_raise_and_the_caps(schemes: dict[str, Scheme]) -> None:
    """REQ: H8 — Fuzhou 350 (jiaocha, its clean-record grade) reaches Hainan 350 (C) but is
    raised to Hainan's clean record B; Heihe 599 (B, below clean) reaches Wendeng 1029 (A,
    Wendeng's clean grade) and is capped below it."""
    m = map_score(schemes["fuzhou"], schemes["hainan"], 350)
    assert (m.target_score, m.target_grade, m.raised_by) == (350, "B", ("clean_record_parity",))
    w = map_score(schemes["heihe"], schemes["wendeng"], 599)
    assert (w.target_grade, w.capped_by) == ("B", ("below_clean",))
    assert w.target_score == 1029


@pytest.mark.parametrize("score", [-1, 1001, 10_000], ids=["below", "above", "far"])
def test_score_out_of_range_is_refused(schemes: dict[str, Scheme], score: int) -> None:
    with pytest.raises(TableError) as err:
        map_score(schemes["heihe"], schemes["fuzhou"], score)
    assert err.value.code == "SCORE_OUT_OF_RANGE"
