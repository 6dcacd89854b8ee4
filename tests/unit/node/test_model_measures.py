"""Discrimination and validity of the model on the synthetic population (H11, N12).

The synthetic population carries outcome labels driven by the same latent
trait as its records (docs/adr/0510); its grade distribution is calibrated;
``huxin model evaluate`` reports AUC/KS and month-to-month PSI; the rollout
refuses a candidate failing the configured thresholds.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sqlite3
from collections import Counter
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cli._main import main
from node.core._config import ConfigError, load_config
from node.demo._testbed import make_id_number
from node.model._evaluate import evaluate, month_ends
from node.monthly._batch import chunk_bounds, read_chunk
from node.store import connect
from node.synthetic._population import (
    TARGET_SHARES,
    PopulationSpec,
    generate,
    outcome_probability,
    read_outcomes,
)
from scoring import discrimination, load_scheme, parse_scheme_toml, score

from ._population_fixtures import AS_OF, Populations

HEIHE = load_scheme("heihe")


@cache
def _calibration(tmp: str, scheme_id: str) -> tuple[Counter[str], Counter[tuple[str, bool]]]:
    """Grades (and grade × outcome) of the eligible people of 20,000 on seed 1."""
    spec = PopulationSpec(scheme_id, 20_000, 1, AS_OF)
    db = Path(tmp) / f"{scheme_id}.db"
    generate(spec, db)
    scheme = load_scheme(scheme_id)
    conn = connect(db, readonly=True)
    grades: Counter[str] = Counter()
    labelled: Counter[tuple[str, bool]] = Counter()
    try:
        (chunk,) = chunk_bounds(1)
        labels = read_outcomes(conn, chunk.lo, chunk.hi)
        assert labels is not None
        for key, subject, records in read_chunk(conn, chunk, AS_OF):
            grade = score(subject, records, scheme, AS_OF, explain=False).grade
            if grade is not None:
                grades[grade] += 1
                labelled[(grade, labels[key])] += 1
    finally:
        conn.close()
    return grades, labelled


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("calibration"))


@pytest.mark.parametrize("scheme_id", ["heihe", "hainan"])
def test_grade_distribution_on_a_fixed_seed_is_near_the_target(
    calibration_dir: str, scheme_id: str
) -> None:
    """REQ: H8 H9 H11 — on 20,000 people every tier is held by someone, the base grade
    (Heihe A) is the largest, and each group of tiers is near TARGET_SHARES."""
    grades, _ = _calibration(calibration_dir, scheme_id)
    scheme = load_scheme(scheme_id)
    total = sum(grades.values())
    assert total > 14_000  # adults, eligible
    assert all(grades[g] > 0 for g in scheme.grades), grades
    assert max(grades, key=grades.__getitem__) == scheme.base_grade
    target = TARGET_SHARES[scheme_id]
    base = scheme.rank(scheme.base_grade)
    above = [g for g in scheme.grades if scheme.rank(g) > base]
    below = [g for g in scheme.grades if scheme.rank(g) < base]
    share = {g: grades[g] / total for g in scheme.grades}
    assert abs(share[scheme.base_grade] - target[scheme.base_grade]) < 0.04
    for group in (above, below):
        got, want = sum(share[g] for g in group), sum(target[g] for g in group)
        assert want / 2 <= got <= want * 2, (group, got, want)
    # honours are rarer the higher the tier (the open top tier may collect the tail)
    nearest = sorted(above, key=scheme.rank)[:3]
    assert all(grades[a] > grades[b] for a, b in itertools.pairwise(nearest))


def test_outcome_labels_are_realistic_and_the_grade_discriminates_but_not_perfectly(
    calibration_dir: str,
) -> None:
    """REQ: H11 N12 — the outcome (a serious dishonesty event in the following 12 months)
    is rare, and the shipped Heihe grade separates it genuinely but imperfectly."""
    grades, labelled = _calibration(calibration_dir, "heihe")
    adverse = sum(n for (_g, bad), n in labelled.items() if bad)
    assert 0.03 < adverse / sum(grades.values()) < 0.08
    d = discrimination(HEIHE, labelled)
    assert 0.55 < d.auc < 0.8
    assert 0.1 < d.ks < 0.6
    # worse grades have the outcome more often
    rate = {g: labelled[(g, True)] / max(1, grades[g]) for g in ("A", "B", "D")}
    assert rate["A"] < rate["B"] < rate["D"]


@given(st.floats(-6, 6), st.floats(0.01, 3))
def test_outcome_probability_falls_as_the_trait_rises(z: float, step: float) -> None:
    """REQ: H11 — the latent trait orders the outcome: better conduct, fewer events."""
    assert 0.0 < outcome_probability(z + step) < outcome_probability(z) < 1.0


@given(
    st.lists(st.sampled_from(HEIHE.grades), min_size=1, max_size=9, unique=True),
    st.integers(1, 500),
    st.integers(1, 500),
)
def test_auc_and_ks_of_a_perfectly_separating_assignment_are_one(
    grades: list[str], good: int, bad: int
) -> None:
    """REQ: H11 — everyone with the outcome holds a worse grade than everyone without."""
    ranked = sorted(grades, key=HEIHE.rank)
    if len(ranked) < 2:
        ranked = ["D", "A"]
    worst, best = ranked[0], ranked[-1]
    d = discrimination(HEIHE, {(worst, True): bad, (best, False): good})
    assert (d.auc, d.ks) == (1.0, 1.0)


def test_month_ends_are_the_previous_month_ends_then_as_of() -> None:
    assert month_ends(date(2026, 11, 30), 3) == (
        date(2026, 9, 30),
        date(2026, 10, 31),
        date(2026, 11, 30),
    )
    assert month_ends(date(2026, 3, 15), 2) == (date(2026, 2, 28), date(2026, 3, 15))


def test_evaluate_reports_discrimination_and_monthly_stability(populations: Populations) -> None:
    """REQ: H11 N12 — AUC/KS against the labels and PSI between consecutive months,
    for both current and candidate."""
    ev = evaluate(populations.db(), HEIHE, HEIHE, AS_OF, workers=1)
    assert ev.has_labels and len(ev.months) == 6 and ev.months[-1] == AS_OF
    for which in ("current", "candidate"):
        d = ev.discrimination(which)
        assert d is not None and 0.5 < d.auc <= 1.0
        series = ev.monthly_psi(which)
        assert len(series) == 5
        worst = ev.max_monthly_psi(which)
        assert worst is not None and 0.0 <= worst < 0.1  # one population, a month apart
    assert ev.discrimination("current") == ev.discrimination("candidate")
    # the as_of month's distribution is the evaluation's own
    assert ev.monthly[-1][0] == ev.distribution("current") or ev.compared < ev.subjects


def test_a_database_without_outcome_labels_gives_no_auc(
    tmp_path: Path, populations: Populations
) -> None:
    """REQ: H11 — a real node's database has no labels: no measure, never a guess."""
    db = tmp_path / "copy.db"
    shutil.copyfile(populations.db(), db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE population_outcomes")
    conn.commit()
    conn.close()
    ev = evaluate(db, HEIHE, HEIHE, AS_OF, workers=1, months=0)
    assert not ev.has_labels and ev.discrimination("current") is None
    assert ev.months == () and ev.max_monthly_psi("current") is None


def test_model_evaluate_cli_prints_auc_ks_and_monthly_psi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], populations: Populations
) -> None:
    """REQ: H11 N12 — `huxin model evaluate` prints the measures beside the distribution."""
    cand = tmp_path / "cand.toml"
    cand.write_text(_heihe_text("2026.1"), encoding="utf-8")
    argv = ["model", "evaluate", "--current", "heihe", "--candidate", str(cand),
            "--db", str(populations.db()), "--workers", "1"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["measures"]
    assert m["outcome_labels"] is True and len(m["months"]) == 6
    assert m["current"]["auc"] == m["candidate"]["auc"] > 0.5
    assert len(m["candidate"]["monthly_psi"]) == 5
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "discrimination and stability (H11, N12)" in text
    assert re.search(r"candidate AUC 0\.\d{3}, KS 0\.\d{3}", text)
    assert "month-to-month PSI" in text


# ------------------------------------------------------------------ rollout thresholds


def _heihe_text(version: str) -> str:
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    return text.replace('version = "2025.1"', f'version = "{version}"', 1)


def _blind_text(version: str) -> str:
    """A deliberately bad candidate: every point value 1 and the base raised inside A,
    so it gives everyone A whatever their conduct (AUC 0.5)."""
    text = re.sub(r"points = \d+", "points = 1", _heihe_text(version))
    return text.replace("base_score = 600", "base_score = 650", 1)


def _node(tmp_path: Path, capsys: pytest.CaptureFixture[str], rights: str) -> Path:
    from tests.support.hub_world import populate_sealed  # real node keys, sealed IDs

    out = tmp_path / "heihe"
    assert main(["init", "region", "--region", "heihe", "--scheme", "heihe",
                 "--out", str(out), "--peers", "hainan"]) == 0  # fmt: skip
    capsys.readouterr()
    populate_sealed(out, [make_id_number(i) for i in range(6)])
    config = out / "node.toml"
    config.write_text(config.read_text("utf-8") + f"\n[rights]\n{rights}\n", encoding="utf-8")
    return config


def _step(config: Path, *argv: str) -> int:
    return main(["model", "rollout", *argv, "--config", str(config), "--json"])


@pytest.mark.parametrize(
    ("text", "activated", "reason"),
    [
        pytest.param(
            _blind_text("2026.9"),
            False,
            "error: ROLLOUT_THRESHOLD: candidate refused (H11): "
            "evaluation.auc: AUC 0.500 is below the minimum 0.55",
            id="blind-candidate-refused",
        ),
        pytest.param(_heihe_text("2026.1"), True, "", id="good-candidate-activates"),
    ],
)
def test_rollout_refuses_a_candidate_failing_the_thresholds(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    activated: bool,
    reason: str,
) -> None:
    """REQ: H11 N12 — evaluated on the synthetic population, a candidate below
    [rights] rollout_min_auc is refused with the measure, its value and the threshold;
    a good one is scheduled."""
    config = _node(tmp_path, capsys, "rollout_population = 2000")
    cand = tmp_path / "cand.toml"
    cand.write_text(text, encoding="utf-8")
    assert _step(config, "evaluate", "--candidate", str(cand), "--today", "2026-09-29") == 0
    ev = json.loads(capsys.readouterr().out)
    measures = ev["shadow_report"]["measures"]
    assert measures["people"] == 2000 and measures["current"]["auc"] > 0.55
    assert _step(config, "trial", "--today", "2026-09-29", "--accept-shift") == 0
    capsys.readouterr()
    rc = _step(config, "activate", "--today", "2026-10-30", "--effective", "2026-11-01")
    captured = capsys.readouterr()
    if activated:
        assert rc == 0 and json.loads(captured.out)["stage"] == "scheduled"
    else:
        assert rc == 2
        assert captured.err.strip().splitlines()[-1] == reason
        conn = sqlite3.connect(tmp_path / "heihe" / "node.db")
        (state,) = conn.execute("SELECT state_json FROM rollouts").fetchone()
        conn.close()
        assert json.loads(state)["stage"] == "trial"  # nothing written


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("rollout_min_auc = 1.5", "rights.rollout_min_auc"),
        ("rollout_min_ks = -0.1", "rights.rollout_min_ks"),
        ("rollout_max_monthly_psi = 11.0", "rights.rollout_max_monthly_psi"),
        ("rollout_population = 10", "rights.rollout_population"),
        ('rollout_min_auc = "high"', "rights.rollout_min_auc"),
    ],
)
def test_rollout_thresholds_out_of_bounds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, field: str
) -> None:
    """REQ: H11 — thresholds are bounded; a bad one names its key."""
    config = _node(tmp_path, capsys, line)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.field == field


def test_rollout_threshold_defaults_are_the_documented_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11 — on by default: AUC ≥ 0.55, KS ≥ 0.10, month-to-month PSI ≤ 0.10."""
    rights = load_config(_node(tmp_path, capsys, "")).rights
    assert (rights.rollout_min_auc, rights.rollout_min_ks, rights.rollout_max_monthly_psi) == (
        0.55,
        0.10,
        0.10,
    )
    assert parse_scheme_toml(_blind_text("2026.9")).base_score == 650
