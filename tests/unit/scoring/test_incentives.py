"""Incentive catalogues: incentives only, never punishment or gated basic services (H14, N14, N17)."""

from __future__ import annotations

from typing import Any

import pytest

from scoring import IncentiveEffect, SchemeError, load_scheme, parse_incentives

HEIHE_GRADES = load_scheme("heihe").grades


def test_shipped_catalogues_only_reward_incentive_grades() -> None:
    for scheme_id in ("heihe", "hainan"):
        scheme = load_scheme(scheme_id)
        assert scheme.incentives
        for entry in scheme.incentives:
            assert scheme.is_incentive_grade(entry.min_grade)
            if entry.basic_public_service:
                assert entry.effect is IncentiveEffect.FAST_LANE


def _entry(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "x", "title": "t", "effect": "discount", "min_grade": "A"}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        pytest.param(
            _entry(effect="deny_service"), "incentives[0].effect", "punishment", id="deny"
        ),
        pytest.param(
            _entry(effect="restrict_travel"), "incentives[0].effect", "punishment", id="restrict"
        ),
        pytest.param(
            _entry(effect="surcharge"), "incentives[0].effect", "punishment", id="surcharge"
        ),
        pytest.param(
            _entry(effect="teleport"), "incentives[0].effect", "must be one of", id="unknown-effect"
        ),
        pytest.param(
            _entry(min_grade="B"),
            "incentives[0].min_grade",
            "below the incentive threshold",
            id="below-threshold",
        ),
        pytest.param(
            _entry(min_grade="Z"), "incentives[0].min_grade", "not a grade", id="unknown-grade"
        ),
        pytest.param(
            _entry(basic_public_service=True, effect="discount"),
            "incentives[0].effect",
            "basic public service",
            id="gated-basic-service",
        ),
        pytest.param(_entry(title=""), "incentives[0].title", "required", id="no-title"),
        pytest.param(_entry(domain="police"), "incentives[0].domain", "must be", id="bad-domain"),
    ],
)
def test_refused_entries(entry: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SchemeError) as info:
        parse_incentives([entry], HEIHE_GRADES, "A")
    assert info.value.field == field
    assert fragment in info.value.message


def test_duplicate_ids_refused() -> None:
    with pytest.raises(SchemeError) as info:
        parse_incentives([_entry(), _entry()], HEIHE_GRADES, "A")
    assert info.value.field == "incentives[1].id"
