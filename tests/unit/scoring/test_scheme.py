"""Scheme files: shipped schemes, every tier edge, and malformed files (H8, H9, H14, H15, N1, N21)."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from importlib import resources
from typing import Any

import pytest

from scoring import SchemeError, list_schemes, load_scheme, parse_scheme, parse_scheme_toml

SHIPPED = ("fuzhou", "hainan", "heihe", "wendeng")


def _raw(scheme_id: str) -> dict[str, Any]:
    text = resources.files("scoring.schemes").joinpath(f"{scheme_id}.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_shipped_schemes_listed() -> None:
    assert list_schemes() == SHIPPED


@pytest.mark.parametrize("scheme_id", SHIPPED)
def test_every_tier_edge(scheme_id: str) -> None:
    """REQ: H9 — each tier's lowest and highest score grade into that tier, and one below falls out."""
    scheme = load_scheme(scheme_id)
    for tier in scheme.tiers:
        assert scheme.grade_for(tier.min_score) == tier.id
        assert scheme.grade_for(tier.max_score) == tier.id
        if tier.min_score > scheme.score_min:
            assert scheme.grade_for(tier.min_score - 1) != tier.id


def test_heihe_published_tiers() -> None:
    """REQ: H8, H9, H14, H15 — base 600 is grade A; nine tiers; incentives from A; deadlines 3/7/3."""
    s = load_scheme("heihe")
    expected = {
        "SSS": 950,
        "SS": 900,
        "S": 850,
        "AAA": 800,
        "AA": 750,
        "A": 600,
        "B": 500,
        "C": 400,
    }
    assert {t.id: t.min_score for t in s.tiers if t.id != "D"} == expected
    assert s.grade_for(949) == "SS" and s.grade_for(399) == "D"
    assert s.base_score == 600 and s.base_grade == "A"
    assert s.is_incentive_grade("A") and not s.is_incentive_grade("B")
    assert s.objection_deadlines == (("forward", 3), ("source", 7), ("reply", 3))


def test_hainan_is_marked_illustrative_and_publishes_n1_n21() -> None:
    """REQ: N1, N21 — published eligibility and deadlines; the score table is illustrative."""
    s = load_scheme("hainan")
    assert {"score_min", "score_max", "base_score", "tiers"} <= set(s.illustrative)
    assert s.objection_deadlines == (("handle", 3), ("forward", 2), ("source", 5))
    assert {(r.kind, r.min_years) for r in s.eligibility.residence} == {
        ("hukou", 0),
        ("residence_permit", 1),
        ("social_insurance", 1),
        ("income_tax", 1),
    }
    assert s.categories["admin_penalty"].excluded_flags == {
        "simple_procedure",
        "minor_corrected_promptly",
    }


def test_published_fuzhou_and_wendeng() -> None:
    f = load_scheme("fuzhou")
    assert [(t.label, t.min_score) for t in f.tiers] == [
        ("极好", 850),
        ("优秀", 750),
        ("良好", 650),
        ("一般", 550),
        ("较差", 350),
        ("极差", 0),
    ]
    assert f.base_grade == "jiaocha"
    w = load_scheme("wendeng")
    assert [(t.id, t.min_score) for t in w.tiers][:5] == [
        ("AAA", 1050),
        ("AA", 1030),
        ("A", 960),
        ("B", 850),
        ("C", 600),
    ]
    assert w.grade_for(599) == "D" and w.base_grade == "A"


def _mutate(path: str, value: Any, scheme_id: str = "heihe") -> dict[str, Any]:
    data = copy.deepcopy(_raw(scheme_id))
    target: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is _DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


_DELETE = object()

BAD_SCHEMES = [
    pytest.param("id", _DELETE, "id", "is required", id="missing-id"),
    pytest.param("base_score", 2000, "base_score", "outside", id="base-out-of-range"),
    pytest.param("score_min", 5000, "score_min", "below score_max", id="inverted-range"),
    pytest.param("tiers.1.max", 960, "tiers[1].max", "overlaps", id="overlapping-tiers"),
    pytest.param("tiers.1.max", 940, "tiers[1].max", "gap", id="gap-between-tiers"),
    pytest.param("tiers.0.max", 999, "tiers[0].max", "score_max", id="tiers-short-of-ceiling"),
    pytest.param("tiers.8.min", 10, "tiers[8].min", "score_min", id="tiers-short-of-floor"),
    pytest.param("tiers.2.min", 950, "tiers[2].min", "above max", id="tier-min-above-max"),
    pytest.param(
        "incentive_tier", "Z", "incentive_tier", "not one of the tiers", id="unknown-incentive"
    ),
    pytest.param(
        "categories.honour.polarity",
        "neutral",
        "categories.honour.polarity",
        "positive",
        id="bad-polarity",
    ),
    pytest.param(
        "categories.honour.points", -5, "categories.honour.points", ">= 0", id="negative-points"
    ),
    pytest.param(
        "categories.honour.points", True, "categories.honour.points", "boolean", id="bool-points"
    ),
    pytest.param(
        "categories.religion",
        {"name": "x", "polarity": "negative", "points": 1, "validity_years": 1},
        "categories.religion",
        "forbidden",
        id="forbidden-category",
    ),
    pytest.param(
        "categories.admin_penalty.level_multipliers",
        {"x": 2},
        "categories.admin_penalty.level_multipliers",
        "only positive",
        id="levels-on-negative",
    ),
    pytest.param(
        "dishonesty_categories",
        ["nope"],
        "dishonesty_categories[0]",
        "unknown category",
        id="unknown-referenced-category",
    ),
    pytest.param(
        "objection_deadlines.forward",
        0,
        "objection_deadlines.forward",
        "positive",
        id="zero-deadline",
    ),
    pytest.param(
        "eligibility.residence", [], "eligibility.residence", "at least one", id="no-residence-rule"
    ),
    pytest.param("effective", "2025-01-01", "effective", "a date", id="effective-not-a-date"),
    # issue 14 item 7: flags come from one catalogue, scoring.RECORD_FLAGS
    pytest.param(
        "categories.honour.excluded_flags",
        ["vip"],
        "categories.honour.excluded_flags",
        "not in the record flag catalogue",
        id="excluded-flag-not-in-catalogue",
    ),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), BAD_SCHEMES)
def test_malformed_schemes_name_the_field(path: str, value: Any, field: str, fragment: str) -> None:
    with pytest.raises(SchemeError) as info:
        parse_scheme(_mutate(path, value))
    assert info.value.field == field
    assert fragment in info.value.message


def test_caps_grade_must_be_a_tier() -> None:
    data = _mutate("categories.direct_b.caps_grade", "Q", "wendeng")
    with pytest.raises(SchemeError) as info:
        parse_scheme(data)
    assert info.value.field == "categories.direct_b.caps_grade"


def test_invalid_toml_and_unknown_scheme() -> None:
    with pytest.raises(SchemeError) as info:
        parse_scheme_toml("id = ")
    assert info.value.field == "toml"
    with pytest.raises(SchemeError) as info2:
        load_scheme("atlantis")
    assert info2.value.code == "UNKNOWN_SCHEME"


_CAP = {"points": 10, "period_months": 12}

BAD_CAPS_VALIDITY_AND_EXPIRY = [
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"points": -1, "period_months": 12},
        "categories.utility_paid.cap.points",
        "> 0",
        id="category-cap-negative",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"points": 0, "period_months": 12},
        "categories.utility_paid.cap.points",
        "> 0",
        id="category-cap-zero",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"points": True, "period_months": 12},
        "categories.utility_paid.cap.points",
        "an integer",
        id="category-cap-boolean",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"period_months": 12},
        "categories.utility_paid.cap.points",
        "is required",
        id="category-cap-without-points",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"points": 6, "period_months": 5},
        "categories.utility_paid.cap.period_months",
        "must be one of 1, 2, 3, 4, 6, 12",
        id="category-cap-period-not-dividing-a-year",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        {"points": 6, "period_months": 12, "per": "year"},
        "categories.utility_paid.cap.per",
        "is not a cap field",
        id="category-cap-unknown-field",
    ),
    pytest.param(
        "heihe",
        "categories.utility_paid.cap",
        6,
        "categories.utility_paid.cap",
        "must be a table",
        id="category-cap-not-a-table",
    ),
    pytest.param(
        "heihe",
        "categories.loan_default.cap",
        _CAP,
        "categories.loan_default.cap",
        "positive points only",
        id="category-cap-on-a-negative-category",
    ),
    pytest.param(
        "heihe",
        "families.other_credit_info.categories",
        ["tax_paid", "water_bill"],
        "families.other_credit_info.categories[1]",
        "unknown category 'water_bill'",
        id="family-unknown-category",
    ),
    pytest.param(
        "heihe",
        "families.other_credit_info.categories",
        ["tax_paid", "loan_default"],
        "families.other_credit_info.categories[1]",
        "positive points only",
        id="family-negative-category",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.categories",
        ["licence_compliance", "tax_paid"],
        "families.government_trust.categories[1]",
        "already in family 'other_credit_info'",
        id="category-in-two-families",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.categories",
        [],
        "families.government_trust.categories",
        "at least one category",
        id="family-without-categories",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.cap",
        _DELETE,
        "families.government_trust.cap",
        "must be a table",
        id="family-without-cap",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.cap",
        {"points": -5, "period_months": 12},
        "families.government_trust.cap.points",
        "> 0",
        id="family-cap-negative",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.name",
        _DELETE,
        "families.government_trust.name",
        "is required",
        id="family-without-name",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.cap",
        {"points": 10, "period_months": 6},
        "families.government_trust.categories[0]",
        "must divide the family's (6 months)",
        id="family-period-shorter-than-a-member-cap",
    ),
    pytest.param(
        "heihe",
        "families.government_trust.caps",
        _CAP,
        "families.government_trust.caps",
        "is not a family field",
        id="family-unknown-field",
    ),
    pytest.param("heihe", "families", [], "families", "must be a table", id="families-not-a-table"),
    pytest.param(
        "heihe",
        "validity_cap.years",
        0,
        "validity_cap.years",
        "> 0",
        id="validity-cap-zero",
    ),
    pytest.param(
        "heihe",
        "validity_cap.years",
        -3,
        "validity_cap.years",
        "> 0",
        id="validity-cap-negative",
    ),
    pytest.param(
        "heihe",
        "validity_cap.years",
        _DELETE,
        "validity_cap.years",
        "is required",
        id="validity-cap-without-years",
    ),
    pytest.param(
        "heihe",
        "validity_cap.exempt",
        {"medal": ["national"]},
        "validity_cap.exempt.medal",
        "unknown category 'medal'",
        id="validity-cap-exempts-unknown-category",
    ),
    pytest.param(
        "heihe",
        "validity_cap.exempt",
        {"honour": ["galactic"]},
        "validity_cap.exempt.honour[0]",
        "'galactic' is not a level",
        id="validity-cap-exempts-unknown-level",
    ),
    pytest.param(
        "heihe",
        "validity_cap.exempt",
        {"honour": ["national"]},
        "categories.honour.extended_validity_years.international",
        "longer than the scheme's validity cap",
        id="validity-cap-below-a-non-exempt-extended-validity",
    ),
    pytest.param(
        "heihe",
        "validity_cap.years",
        2,
        "categories.honour.validity_years",
        "longer than the scheme's validity cap of 24 months",
        id="validity-cap-below-a-category-default",
    ),
    pytest.param(
        "heihe",
        "validity_cap.max",
        5,
        "validity_cap.max",
        "is not a validity_cap field",
        id="validity-cap-unknown-field",
    ),
    pytest.param(
        "hainan",
        "valid_until",
        date(2024, 12, 31),
        "valid_until",
        "before the effective date 2025-01-01",
        id="expiry-before-effective",
    ),
    pytest.param(
        "hainan", "valid_until", "2027-12-31", "valid_until", "must be a date", id="expiry-a-string"
    ),
]


@pytest.mark.parametrize(
    ("scheme_id", "path", "value", "field", "fragment"), BAD_CAPS_VALIDITY_AND_EXPIRY
)
def test_caps_validity_and_expiry_errors_name_the_field(
    scheme_id: str, path: str, value: Any, field: str, fragment: str
) -> None:
    """REQ: H7, N11, N12 — every new scheme field is validated with a named error (ADR 0003)."""
    with pytest.raises(SchemeError) as info:
        parse_scheme(_mutate(path, value, scheme_id))
    assert (info.value.code, info.value.field) == ("INVALID_SCHEME", field)
    assert fragment in info.value.message


@pytest.mark.parametrize("scheme_id", SHIPPED)
def test_shipped_caps_cover_positive_categories_only(scheme_id: str) -> None:
    """REQ: H6, N6 — every shipped cap is on a positive category; honours are never capped."""
    s = load_scheme(scheme_id)
    for cid in s.capped_categories:
        assert s.categories[cid].polarity == "positive", cid
        assert cid not in {"honour", "award"}, cid
