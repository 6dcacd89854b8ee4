"""``huxin derived list|show|evaluate`` and the derived-score evaluation (issue 16: N18, N19, H11)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from node.cli._main import main
from node.model._evaluate_derived import evaluate_derived
from scoring import SchemeError, load_derived, load_scheme

from ._population_fixtures import AS_OF, Populations, copy_of

DERIVED = "hainan-credit-card"


def test_derived_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ: N18, N19 — list names the shipped derived score and its base; show prints its
    base, illustrative note, tiers, each category's weight with its source, and scenarios."""
    assert main(["derived", "list"]) == 0
    assert capsys.readouterr().out == (
        "hainan-credit-card@2026.1\t自贸港诚信积分信用卡衍生分\tbase hainan@2025.1\n"
    )
    assert main(["derived", "show", DERIVED]) == 0
    text = capsys.readouterr().out
    assert "base scheme: hainan@2025.1" in text
    assert "illustrative: the tiers, weights, base_score are ours, not published" in text
    assert "  B    优选  560-699" in text
    assert "  tax_refusal                      × 2.5   (category)  拒不缴纳税费" in text
    assert "(family social_contribution)  志愿服务" in text
    assert (
        "hainan-credit-card/integrity-credit-card: 自贸港诚信积分信用卡（申请绿色通道） — from B, "
        "discloses threshold"
    ) in text
    assert main(["derived", "show", DERIVED, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["base"] == "hainan@2025.1" and shown["incentive_tier"] == "B"
    assert shown["weights"]["loan_default"] == {"weight": "3", "from": "category"}
    assert [s["disclosure"] for s in shown["scenarios"]] == ["threshold", "grade"]


def test_derived_evaluate_discriminates_on_synthetic_population(
    populations: Populations, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11, N19 — evaluated on a synthetic Hainan population, the credit-card score's
    tiers cover everyone scored and discriminate the synthetic outcome better than chance
    (AUC > 0.5, KS > 0, computed), on the same people as the base scheme's figures."""
    db = populations.db("hainan", 1500, 11)
    assert main(["derived", "evaluate", DERIVED, "--population", str(db), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert (ev["derived"], ev["base"], ev["as_of"]) == (
        "hainan-credit-card@2026.1",
        "hainan@2025.1",
        AS_OF.isoformat(),
    )
    assert list(ev["distribution"]) == ["A", "B", "C", "D"]
    assert sum(ev["distribution"].values()) == ev["scored"] == sum(ev["base_distribution"].values())
    assert 0 < ev["scored"] <= ev["subjects"]
    derived, base = ev["derived_measures"], ev["base_measures"]
    assert derived["labelled"] == base["labelled"] == ev["scored"]
    assert derived["adverse"] == base["adverse"] > 0
    assert derived["auc"] > 0.5 and derived["ks"] > 0
    assert main(["derived", "evaluate", DERIVED, "--population", str(db)]) == 0
    text = capsys.readouterr().out
    assert f"derived AUC {derived['auc']:.3f}  KS {derived['ks']:.3f}" in text
    assert "derived tiers:" in text and "illustrative:" in text


def test_derived_evaluate_without_labels_gives_no_figures(
    populations: Populations, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11, N12 — a population without outcome labels (a real node's) yields the tier
    distribution and no AUC/KS, never a guess."""
    db = copy_of(populations.db("hainan", 1500, 11), tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE population_outcomes")
    conn.commit()
    conn.close()
    assert main(["derived", "evaluate", DERIVED, "--population", str(db), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["outcome_labels"] is False
    assert ev["derived_measures"] is None and ev["base_measures"] is None
    assert sum(ev["distribution"].values()) == ev["scored"] > 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["derived", "show", "nope"],
                     "error: UNKNOWN_DERIVED_SCORE: derived: unknown derived score 'nope'\n",
                     id="show-unknown-id"),
        pytest.param(["derived", "evaluate", "nope", "--synthetic", "10"],
                     "error: UNKNOWN_DERIVED_SCORE: derived: unknown derived score 'nope'\n",
                     id="evaluate-unknown-id"),
        pytest.param(["derived", "evaluate", DERIVED, "--synthetic", "0"],
                     "error: INVALID_ARGUMENT: --synthetic must be 1-200000 people\n",
                     id="synthetic-zero"),
        pytest.param(["derived", "evaluate", DERIVED, "--synthetic", "200001"],
                     "error: INVALID_ARGUMENT: --synthetic must be 1-200000 people\n",
                     id="synthetic-above-bound"),
    ],
)  # fmt: skip
def test_derived_cli_bad_input(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N18 — bad input exits 2 with the stable code and message, nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", expected)


def test_derived_evaluate_missing_database_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N18 — a missing population database is refused (DB_NOT_FOUND) and not created."""
    db = tmp_path / "absent.db"
    assert main(["derived", "evaluate", DERIVED, "--population", str(db)]) == 2
    assert capsys.readouterr().err == f"error: DB_NOT_FOUND: database {str(db)!r} does not exist\n"
    assert not db.exists()


def test_evaluate_derived_refuses_another_base_version(populations: Populations) -> None:
    """REQ: N18, H11 — a derived score is evaluated only on the base version it names."""
    derived = load_derived(DERIVED)
    other = dataclasses.replace(load_scheme("hainan"), version="2026.1")
    with pytest.raises(SchemeError) as err:
        evaluate_derived(populations.db("hainan", 1500, 11), derived, other, AS_OF)
    assert err.value.code == "SCHEME_VERSION_MISMATCH"
    assert err.value.message == (
        "hainan-credit-card@2026.1 is derived from hainan@2025.1, not hainan@2026.1"
    )
