"""Model evaluation (H11): distributions, PSI, tier moves."""

from __future__ import annotations

import math
from datetime import date
from importlib import resources

import pytest

from node.model._evaluate import PSI_FLOOR, evaluate, psi
from node.monthly._batch import BatchError
from scoring import Scheme, load_scheme, parse_scheme_toml

from ._population_fixtures import Populations

AS_OF = date(2026, 11, 30)
HEIHE = load_scheme("heihe")


def _heihe_variant(*replacements: tuple[str, str]) -> Scheme:
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    return parse_scheme_toml(text)


def test_psi_known_values() -> None:
    assert psi({"a": 50, "b": 50}, {"a": 50, "b": 50}) == 0.0
    expected = (0.6 - 0.5) * math.log(0.6 / 0.5) + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert psi({"a": 50, "b": 50}, {"a": 60, "b": 40}) == pytest.approx(expected)
    # an empty bin is floored, so the index stays finite
    floored = psi({"a": 100, "b": 0}, {"a": 50, "b": 50})
    assert math.isfinite(floored)
    assert floored == pytest.approx(
        (0.5 - 1) * math.log(0.5) + (0.5 - PSI_FLOOR) * math.log(0.5 / PSI_FLOOR)
    )


def test_same_model_moves_nobody(populations: Populations) -> None:
    """REQ: H11 — evaluating the current model against itself shows no shift."""
    ev = evaluate(populations.db(), HEIHE, HEIHE, AS_OF, workers=1)
    assert ev.psi() == 0.0
    assert ev.moves() == {0: ev.compared}
    assert ev.distribution("current") == ev.distribution("candidate")
    assert ev.eligibility_changes == (0, 0)
    assert ev.compared > 0


def test_a_higher_base_moves_people_up(populations: Populations) -> None:
    """REQ: H11 — shift against the current model: PSI and tiers moved."""
    candidate = _heihe_variant(
        ('version = "2025.1"', 'version = "2026.1-candidate"'),
        ("base_score = 600", "base_score = 660"),
    )
    ev = evaluate(populations.db(), HEIHE, candidate, AS_OF, workers=2, chunk_subjects=400)
    moves = ev.moves()
    assert sum(moves.values()) == ev.compared
    assert all(m >= 0 for m in moves)  # +60 for everyone never moves anybody down
    assert any(m > 0 for m in moves)
    value = ev.psi()
    assert value is not None and value > 0
    assert sum(ev.distribution("current").values()) == sum(ev.distribution("candidate").values())


def test_stricter_age_changes_eligibility_only(populations: Populations) -> None:
    candidate = _heihe_variant(("min_age = 18", "min_age = 20"))
    ev = evaluate(populations.db(), HEIHE, candidate, AS_OF, workers=1)
    only_current, only_candidate = ev.eligibility_changes
    assert only_current > 0 and only_candidate == 0
    assert ev.moves() == {0: ev.compared}


def test_different_grades_have_no_psi(populations: Populations) -> None:
    candidate = _heihe_variant(('id = "SSS"', 'id = "S3"'))
    ev = evaluate(populations.db(), HEIHE, candidate, AS_OF, workers=1)
    assert ev.psi() is None
    assert sum(ev.moves().values()) == ev.compared


def test_candidate_missing_a_stored_category_fails_with_a_named_error(
    populations: Populations,
) -> None:
    with pytest.raises(BatchError) as err:
        evaluate(populations.db(), HEIHE, load_scheme("wendeng"), AS_OF, workers=1)
    assert err.value.code == "UNKNOWN_CATEGORY"
