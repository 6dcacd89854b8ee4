"""Model rollout: evaluate → trial → active with an effective date (H11, N12)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from scoring import Evaluation, Rollout, RolloutError, Stage, load_scheme

HEIHE = load_scheme("heihe")
CANDIDATE = replace(HEIHE, version="2026.1")
OK_EVAL = Evaluation("2026.1", psi=0.04, people=10_000, moved_up=300, moved_down=120)


def test_full_rollout_names_the_right_version_each_day() -> None:
    """REQ: H11 — evaluated, then trial (shadow only), then active from the effective date."""
    r = Rollout.start(HEIHE).evaluate(CANDIDATE, OK_EVAL)
    assert r.stage is Stage.EVALUATED
    r = r.start_trial(date(2026, 9, 1))
    assert r.version_on(date(2026, 9, 15)) == "2025.1"
    assert r.shadow_version(date(2026, 9, 15)) == "2026.1"
    r = r.activate(date(2026, 10, 8), effective=date(2026, 11, 1))
    assert r.version_on(date(2026, 10, 31)) == "2025.1"
    assert r.version_on(date(2026, 11, 1)) == "2026.1"
    settled = r.settle(date(2026, 11, 2))
    assert (settled.current_version, settled.stage) == ("2026.1", Stage.CURRENT_ONLY)
    assert settled.current_since == date(2026, 11, 1)


def test_yearly_revision_due() -> None:
    """REQ: N12 — the indicator system is revised yearly."""
    r = Rollout.start(HEIHE)  # effective 2025-01-01
    assert not r.revision_due(date(2025, 12, 31))
    assert r.revision_due(date(2026, 1, 1))


@pytest.mark.parametrize(
    ("step", "field"),
    [
        pytest.param(
            lambda: Rollout.start(HEIHE).start_trial(date(2026, 9, 1)),
            "stage",
            id="trial-before-evaluation",
        ),
        pytest.param(
            lambda: Rollout.start(HEIHE).evaluate(
                HEIHE, replace(OK_EVAL, candidate_version="2025.1")
            ),
            "candidate.version",
            id="same-version",
        ),
        pytest.param(
            lambda: Rollout.start(HEIHE).evaluate(replace(CANDIDATE, id="hainan"), OK_EVAL),
            "candidate.id",
            id="other-scheme",
        ),
        pytest.param(
            lambda: Rollout.start(HEIHE).evaluate(
                CANDIDATE, replace(OK_EVAL, candidate_version="x")
            ),
            "evaluation.candidate_version",
            id="evaluation-mismatch",
        ),
        pytest.param(
            lambda: (
                Rollout.start(HEIHE)
                .evaluate(CANDIDATE, replace(OK_EVAL, psi=0.4))
                .start_trial(date(2026, 9, 1))
            ),
            "evaluation.psi",
            id="psi-too-high",
        ),
        pytest.param(
            lambda: (
                Rollout.start(HEIHE)
                .evaluate(CANDIDATE, OK_EVAL)
                .start_trial(date(2026, 9, 1))
                .activate(date(2026, 9, 20), date(2026, 10, 1))
            ),
            "trial_started",
            id="trial-too-short",
        ),
        pytest.param(
            lambda: (
                Rollout.start(HEIHE)
                .evaluate(CANDIDATE, OK_EVAL)
                .start_trial(date(2026, 9, 1))
                .activate(date(2026, 10, 8), date(2026, 10, 1))
            ),
            "effective",
            id="effective-in-past",
        ),
        pytest.param(
            lambda: Rollout.start(HEIHE).activate(date(2026, 10, 8), date(2026, 11, 1)),
            "stage",
            id="activate-without-trial",
        ),
    ],
)
def test_refusals(step: object, field: str) -> None:
    with pytest.raises(RolloutError) as info:
        step()  # type: ignore[operator]
    assert info.value.field == field


def test_high_psi_needs_explicit_acceptance() -> None:
    r = Rollout.start(HEIHE).evaluate(CANDIDATE, replace(OK_EVAL, psi=0.4))
    trial = r.start_trial(date(2026, 9, 1), accept_shift=True)
    assert trial.shift_accepted
    assert trial.stage is Stage.TRIAL
