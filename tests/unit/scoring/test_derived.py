"""Derived scenario scores (issue 16: N18, N19): loading, validation errors, explanation."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from datetime import date
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import (
    WEIGHT_MAX,
    Contribution,
    ContributionStatus,
    CreditRecord,
    DerivedScore,
    Polarity,
    Residence,
    Scheme,
    SchemeError,
    ScoreResult,
    Subject,
    derive,
    list_derived,
    load_derived,
    load_scheme,
    parse_derived,
    parse_scenario_ref,
    score,
)

AS_OF = date(2026, 6, 30)
HAINAN = load_scheme("hainan")


def shipped() -> dict[str, Any]:
    text = resources.files("scoring.derived").joinpath("hainan-credit-card.toml").read_text()
    return tomllib.loads(text)


def test_shipped_credit_card_loads() -> None:
    """REQ: N18, N19 — the shipped Hainan credit-card score loads, bound to hainan@2025.1,
    weighting repayment and tax above the rest, with threshold and grade scenarios."""
    assert list_derived() == ("hainan-credit-card",)
    d = load_derived("hainan-credit-card")
    assert (d.key, d.base_key) == ("hainan-credit-card@2026.1", "hainan@2025.1")
    assert set(d.weights) == set(HAINAN.categories)
    assert (d.weights["loan_repaid"].value, d.weights["loan_repaid"].source) == (3, "category")
    assert (d.weights["loan_default"].value, d.weights["tax_refusal"].value) == (
        3,
        Fraction(5, 2),
    )
    assert d.weights["volunteering"].source == "family social_contribution"
    assert d.weights["criminal_conviction"].source == "default"
    assert d.grades == ("A", "B", "C", "D")
    assert d.grade_for(d.base_score) == "C"
    assert {"tiers", "weights", "base_score"} <= set(d.illustrative)
    refs = [(i.ref(d.id), i.min_grade, i.disclosure.value) for i in d.incentives]
    assert refs == [
        ("hainan-credit-card/integrity-credit-card", "B", "threshold"),
        ("hainan-credit-card/card-annual-fee", "A", "grade"),
    ]
    assert all(parse_scenario_ref(r) is not None for r, _, _ in refs)


def _set(path: str, value: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for p in parents:
            node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
        node[int(last) if last.isdigit() else last] = value

    return edit


def _del(key: str) -> Any:
    return lambda data: data.pop(key)


BAD = [
    pytest.param(_set("weights.categories.water_bill", 1.0), "weights.categories.water_bill",
                 "is not a category of hainan@2025.1", "INVALID_SCHEME", id="unknown-category"),
    pytest.param(_set("weights.families.sports", 1.0), "weights.families.sports",
                 "is not a family of hainan@2025.1", "INVALID_SCHEME", id="unknown-family"),
    pytest.param(_set("weights.categories.loan_repaid", 5.5), "weights.categories.loan_repaid",
                 "5.5 is outside [0, 5]", "INVALID_SCHEME", id="weight-above-max"),
    pytest.param(_set("weights.categories.loan_repaid", -1), "weights.categories.loan_repaid",
                 "-1 is outside [0, 5]", "INVALID_SCHEME", id="weight-negative"),
    pytest.param(_set("weights.categories.loan_repaid", 1.125), "weights.categories.loan_repaid",
                 "must have at most two decimals", "INVALID_SCHEME", id="weight-three-decimals"),
    pytest.param(_set("weights.categories.loan_repaid", True), "weights.categories.loan_repaid",
                 "must be a number", "INVALID_SCHEME", id="weight-boolean"),
    pytest.param(_set("weights.categories.loan_repaid", "3"), "weights.categories.loan_repaid",
                 "must be a number", "INVALID_SCHEME", id="weight-string"),
    pytest.param(_set("default_weight", 6), "default_weight", "6 is outside [0, 5]",
                 "INVALID_SCHEME", id="default-weight-above-max"),
    pytest.param(_set("weights.bonus", {}), "weights.bonus", "is not categories or families",
                 "INVALID_SCHEME", id="weights-unknown-table"),
    pytest.param(_set("weights.categories", {f"c{i}": 1 for i in range(65)}), "weights",
                 "must list at most 64 weights", "INVALID_SCHEME", id="too-many-weights"),
    pytest.param(_set("tiers.1.max", 750), "tiers[1].max",
                 "tier 'B' (max 750) overlaps tier 'A' (min 700); tiers must be contiguous, "
                 "best first", "INVALID_SCHEME", id="tiers-overlap"),
    pytest.param(_set("tiers.1.max", 650), "tiers[1].max",
                 "tier 'B' (max 650) leaves a gap below tier 'A' (min 700); tiers must be "
                 "contiguous, best first", "INVALID_SCHEME", id="tiers-gap"),
    pytest.param(_set("tiers.0.max", 900), "tiers[0].max", "best tier must end at score_max 1000",
                 "INVALID_SCHEME", id="tiers-short-of-max"),
    pytest.param(_set("tiers.3.min", 10), "tiers[3].min", "worst tier must start at score_min 0",
                 "INVALID_SCHEME", id="tiers-short-of-min"),
    pytest.param(_set("base", "atlantis@2025.1"), "base", "unknown base scheme 'atlantis'",
                 "UNKNOWN_SCHEME", id="base-unknown"),
    pytest.param(_set("base", "hainan@2024.1"), "base",
                 "declares hainan@2024.1 but the base scheme is hainan@2025.1",
                 "SCHEME_VERSION_MISMATCH", id="base-version-mismatch"),
    pytest.param(_set("base", "hainan"), "base", "must be '<scheme id>@<version>'",
                 "INVALID_SCHEME", id="base-without-version"),
    pytest.param(_del("base"), "base", "is required", "INVALID_SCHEME", id="base-missing"),
    pytest.param(_set("id", "Credit Card"), "id",
                 "must be 1-63 lower-case letters, digits and '-'", "INVALID_SCHEME", id="bad-id"),
    pytest.param(_set("name", "卡" * 65), "name", "must be 1-64 characters", "INVALID_SCHEME",
                 id="name-too-long"),
    pytest.param(_set("base_score", 1001), "base_score", "1001 is outside [0, 1000]",
                 "INVALID_SCHEME", id="base-score-outside"),
    pytest.param(_set("incentive_tier", "S"), "incentive_tier", "'S' is not one of the tiers",
                 "INVALID_SCHEME", id="incentive-tier-unknown"),
    pytest.param(_set("weighting", 1), "weighting", "is not a field of a derived score",
                 "INVALID_SCHEME", id="unknown-field"),
    pytest.param(_set("incentives.0.title", "拒绝发卡"), "incentives[0].title",
                 "'拒绝' reads as a punishment or restriction; the score is for incentives "
                 "only (H14, N14)", "INVALID_SCHEME", id="scenario-punitive-zh"),
    pytest.param(_set("incentives.0.title_en", "Card limit raised"), "incentives[0].title_en",
                 "'limit' reads as a punishment or restriction; the score is for incentives "
                 "only (H14, N14)", "INVALID_SCHEME", id="scenario-punitive-en"),
    pytest.param(_set("incentives.0.min_grade", "C"), "incentives[0].min_grade",
                 "C is below the incentive tier B (H14)", "INVALID_SCHEME",
                 id="scenario-below-incentive-tier"),
    pytest.param(_set("incentives.0.basic_public_service", True), "incentives[0].effect",
                 "a basic public service may only be made faster for high grades (fast_lane), "
                 "never conditioned on a grade (H14, N14)", "INVALID_SCHEME",
                 id="scenario-basic-service"),
    pytest.param(_set("incentives.1.disclosure", "everything"), "incentives[1].disclosure",
                 "must be one of threshold, grade, grade_and_score", "INVALID_SCHEME",
                 id="scenario-disclosure-unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "path", "message", "code"), BAD)
def test_derived_score_load_errors(edit: Any, path: str, message: str, code: str) -> None:
    """REQ: N18, N19, H14 — a derived score is validated on load: each fault is refused with
    the exact path, message and code (catalogue rules reused from the scheme catalogue)."""
    data = copy.deepcopy(shipped())
    edit(data)
    with pytest.raises(SchemeError) as err:
        parse_derived(data)
    assert (err.value.field, err.value.message, err.value.code) == (path, message, code)


def test_explicit_base_scheme_must_match_version() -> None:
    """REQ: N18 — a derived score bound to hainan@2025.1 refuses another version given."""
    other = dataclasses.replace(HAINAN, version="2026.1")
    with pytest.raises(SchemeError) as err:
        parse_derived(shipped(), other)
    assert err.value.code == "SCHEME_VERSION_MISMATCH"
    assert err.value.message == "declares hainan@2025.1 but the base scheme is hainan@2026.1"


def _record(rid: str, category: str, on: date, **kw: Any) -> CreditRecord:
    cat = HAINAN.categories[category]
    return CreditRecord(rid, "x", "dept", category, cat.polarity, f"act-{rid}", on, **kw)


RESIDENT = Subject(date(1990, 5, 17), (Residence("hukou", date(1990, 5, 17)),))


def test_every_derived_point_is_explained() -> None:
    """REQ: N18, N13 — each counted base record appears with its weight, the weight's reason
    and its weighted points; base + Σ points is the derived score; uncounted records and the
    weights' sources are named."""
    d = load_derived("hainan-credit-card")
    records = [
        _record("r1", "loan_repaid", date(2025, 3, 1)),
        _record("r2", "volunteering", date(2025, 4, 1)),
        _record("r3", "tax_refusal", date(2025, 5, 1)),
        _record("r4", "honour", date(2025, 6, 1), level="county"),
        _record("r5", "loan_default", date(2019, 1, 1)),  # expired: not counted
    ]
    base = score(RESIDENT, records, HAINAN, AS_OF)
    result = derive(d, base)
    assert result.eligible and result.derived_key == "hainan-credit-card@2026.1"
    by_id = {c.record_id: c for c in result.contributions}
    assert set(by_id) == {"r1", "r2", "r3", "r4"}
    assert (by_id["r1"].base_points, by_id["r1"].points) == (10, 30)
    assert (by_id["r2"].base_points, by_id["r2"].points) == (10, 5)
    assert (by_id["r3"].base_points, by_id["r3"].points) == (-60, -150)
    assert (by_id["r4"].base_points, by_id["r4"].points) == (20, 20)
    assert by_id["r3"].reason == "tax_refusal (拒不缴纳税费): -60 × 2.5 (category weight) = -150"
    assert by_id["r2"].reason == (
        "volunteering (志愿服务): +10 × 0.5 (family social_contribution weight) = +5"
    )
    assert by_id["r4"].reason == "honour (荣誉表彰): +20 × 1 (default weight) = +20"
    assert result.unclamped == d.base_score + sum(c.points for c in result.contributions)
    assert (result.score, result.grade) == (405, "C")


def test_derive_refuses_other_scheme_and_unexplained_results() -> None:
    """REQ: N18 — a result scored under another scheme or version is refused
    (SCHEME_VERSION_MISMATCH); one scored without explanation cannot be weighted
    (EXPLANATION_REQUIRED); a person the base does not score gets no derived score."""
    d = load_derived("hainan-credit-card")
    heihe = score(RESIDENT, [], load_scheme("heihe"), AS_OF)
    with pytest.raises(SchemeError) as err:
        derive(d, heihe)
    assert err.value.code == "SCHEME_VERSION_MISMATCH"
    assert err.value.message == (
        "scored under heihe@2025.1, but hainan-credit-card@2026.1 is derived from hainan@2025.1"
    )
    quiet = score(RESIDENT, [_record("r1", "loan_repaid", date(2025, 3, 1))], HAINAN, AS_OF,
                  explain=False)  # fmt: skip
    with pytest.raises(SchemeError) as err:
        derive(d, quiet)
    assert err.value.code == "EXPLANATION_REQUIRED"
    minor = Subject(date(2015, 1, 1), (Residence("hukou", date(2015, 1, 1)),))
    none = derive(d, score(minor, [], HAINAN, AS_OF))
    assert (none.eligible, none.score, none.grade, none.contributions) == (False, None, None, ())
    assert none.ineligible_reason == "under 18 on 2026-06-30"


_CATS = sorted(HAINAN.categories)
_WEIGHTS = st.integers(0, int(WEIGHT_MAX * 100)).map(lambda n: n / 100)


@st.composite
def derived_and_result(draw: st.DrawFn) -> tuple[DerivedScore, ScoreResult]:
    data = copy.deepcopy(shipped())
    data["default_weight"] = draw(_WEIGHTS)
    data["weights"] = {
        "categories": draw(st.dictionaries(st.sampled_from(_CATS), _WEIGHTS, max_size=8)),
        "families": draw(st.dictionaries(st.just("social_contribution"), _WEIGHTS)),
    }
    derived = parse_derived(data)
    contributions = []
    for i in range(draw(st.integers(0, 30))):
        cid = draw(st.sampled_from(_CATS))
        cat = HAINAN.categories[cid]
        sign = 1 if cat.polarity is Polarity.POSITIVE else -1
        points = sign * draw(st.integers(0, 400))
        status = draw(st.sampled_from(ContributionStatus))
        contributions.append(
            Contribution(
                f"r{i}",
                cid,
                cat.name,
                "d",
                f"a{i}",
                cat.polarity,
                points,
                points if status is ContributionStatus.COUNTED else 0,
                status,
                "",
                AS_OF,
                AS_OF,
            )
        )
    added = sum(c.points for c in contributions if c.points > 0)
    deducted = -sum(c.points for c in contributions if c.points < 0)
    result = ScoreResult("hainan", "2025.1", AS_OF, True, 500, "B", added=added,
                         deducted=deducted, contributions=tuple(contributions))  # fmt: skip
    return derived, result


@settings(max_examples=200, deadline=None)
@given(derived_and_result())
def test_derived_score_bounded_and_tier_consistent(case: tuple[DerivedScore, ScoreResult]) -> None:
    """REQ: N18 (Hypothesis) — for arbitrary weights and base contributions the derived score
    lies in its range, its tier is the one whose range holds it, the explanation sums to the
    unclamped score, and weighting never flips a contribution's sign."""
    derived, base = case
    result = derive(derived, base)
    assert result.score is not None and result.grade is not None
    assert derived.score_min <= result.score <= derived.score_max
    tier = next(t for t in derived.tiers if t.id == result.grade)
    assert tier.min_score <= result.score <= tier.max_score
    assert result.unclamped == derived.base_score + sum(c.points for c in result.contributions)
    assert result.score == min(max(result.unclamped, derived.score_min), derived.score_max)
    counted = [c for c in base.contributions if c.status is ContributionStatus.COUNTED and c.points]
    assert [c.record_id for c in result.contributions] == [c.record_id for c in counted]
    for c in result.contributions:
        assert c.points == int(c.base_points * c.weight.value)
        assert c.points * c.base_points >= 0
        assert c.weight == derived.weights[c.category]


def test_scheme_fixture_is_hainan(hainan: Scheme) -> None:
    """REQ: N18 — the derived score's base is the shipped Hainan scheme, same version."""
    assert load_derived("hainan-credit-card").base_key == hainan.key
