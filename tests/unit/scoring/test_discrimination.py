"""Discrimination of grades against a later outcome, and the rollout's thresholds (H11, N12)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from scoring import (
    Evaluation,
    Rollout,
    RolloutError,
    ScoringError,
    discrimination,
    load_scheme,
)

HEIHE = load_scheme("heihe")


@pytest.mark.parametrize(
    ("counts", "auc", "ks"),
    [
        pytest.param({("A", False): 90, ("D", True): 10}, 1.0, 1.0, id="perfect"),
        pytest.param(
            {("A", False): 80, ("A", True): 8, ("B", False): 20, ("B", True): 2},
            0.5,
            0.0,
            id="no-better-than-chance",
        ),
        pytest.param({("D", False): 5, ("SSS", True): 5}, 0.0, 1.0, id="inverted"),
        pytest.param(
            {("A", False): 3, ("B", False): 1, ("B", True): 1, ("C", True): 1},
            7.5 / 8,
            0.75,
            id="worked-example-with-a-tie",
        ),
    ],
)
def test_auc_and_ks(counts: dict[tuple[str, bool], int], auc: float, ks: float) -> None:
    """REQ: H11, N12 — discrimination (区分度) of the grade against an outcome observed later."""
    d = discrimination(HEIHE, counts)
    assert d.auc == pytest.approx(auc)
    assert d.ks == pytest.approx(ks)
    assert d.people == sum(counts.values())
    assert d.adverse == sum(n for (_g, bad), n in counts.items() if bad)


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        pytest.param({("Z", False): 1, ("A", True): 1}, "UNKNOWN_GRADE", id="unknown-grade"),
        pytest.param({("A", False): -1, ("B", True): 1}, "INVALID_FIELD", id="negative-count"),
        pytest.param({("A", False): 10}, "OUTCOMES_MISSING", id="nobody-with-the-outcome"),
        pytest.param({("B", True): 10}, "OUTCOMES_MISSING", id="nobody-without-the-outcome"),
    ],
)
def test_discrimination_refuses_bad_counts(counts: dict[tuple[str, bool], int], code: str) -> None:
    """REQ: H11 — bad inputs get a named error."""
    with pytest.raises(ScoringError) as info:
        discrimination(HEIHE, counts)
    assert (info.value.code, info.value.field) == (code, "counts")


CANDIDATE = replace(HEIHE, version="2026.1")
EVAL = Evaluation("2026.1", psi=0.04, people=10_000, moved_up=300, moved_down=120)


def _on_trial(rollout: Rollout, evaluation: Evaluation) -> Rollout:
    return rollout.evaluate(CANDIDATE, evaluation).start_trial(date(2026, 9, 1))


@pytest.mark.parametrize(
    ("thresholds", "evaluation", "field"),
    [
        pytest.param({"min_auc": 0.7}, EVAL, "evaluation.auc", id="auc-required-but-missing"),
        pytest.param(
            {"min_auc": 0.7}, replace(EVAL, auc=0.65, ks=0.3), "evaluation.auc", id="auc-too-low"
        ),
        pytest.param(
            {"min_auc": 0.7, "min_ks": 0.3},
            replace(EVAL, auc=0.8, ks=0.2),
            "evaluation.ks",
            id="ks-too-low",
        ),
    ],
)
def test_rollout_refuses_a_candidate_below_thresholds(
    thresholds: dict[str, float], evaluation: Evaluation, field: str
) -> None:
    """REQ: H11 — 通过有效性、区分度等检验后方可试行: activation needs the configured AUC/KS."""
    r = _on_trial(replace(Rollout.start(HEIHE), **thresholds), evaluation)
    with pytest.raises(RolloutError) as info:
        r.activate(date(2026, 10, 8), effective=date(2026, 11, 1))
    assert info.value.field == field


def test_rollout_activates_a_candidate_meeting_thresholds_and_keeps_them() -> None:
    """REQ: H11 — a candidate that discriminates well enough is scheduled; thresholds persist."""
    start = replace(Rollout.start(HEIHE), min_auc=0.7, min_ks=0.3)
    r = _on_trial(start, replace(EVAL, auc=0.78, ks=0.41))
    r = r.activate(date(2026, 10, 8), effective=date(2026, 11, 1))
    settled = r.settle(date(2026, 11, 2))
    assert (settled.current_version, settled.min_auc, settled.min_ks) == ("2026.1", 0.7, 0.3)


def test_no_thresholds_no_requirement() -> None:
    """Without configured thresholds an evaluation without outcome labels still activates."""
    r = _on_trial(Rollout.start(HEIHE), EVAL)
    assert r.activate(date(2026, 10, 8), effective=date(2026, 11, 1)).effective


@pytest.mark.parametrize("field", ["min_auc", "min_ks"])
def test_threshold_outside_zero_one_refused(field: str) -> None:
    with pytest.raises(RolloutError) as info:
        replace(Rollout.start(HEIHE), **{field: 1.5})
    assert info.value.field == field
