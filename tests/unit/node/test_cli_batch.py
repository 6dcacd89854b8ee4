"""CLI: ``population generate``, ``score run``, ``model evaluate``, ``demo`` — exit codes, stderr."""

from __future__ import annotations

import json
import re
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from node.cli._main import main
from node.synthetic._population import read_spec

from ._population_fixtures import Populations, copy_of

ID_RE = re.compile(r"[1-9]\d{16}[\dX]")


def _heihe_text() -> str:
    return resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")


@pytest.fixture
def db(tmp_path: Path, populations: Populations) -> Path:
    return copy_of(populations.db(), tmp_path)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["score", "run", "--scheme", "atlantis", "--period", "2026-10"],
                     "UNKNOWN_SCHEME", id="run-unknown-scheme"),
        pytest.param(["score", "run", "--scheme", "heihe", "--period", "2026-13"],
                     "INVALID_PERIOD", id="run-bad-month"),
        pytest.param(["score", "run", "--scheme", "heihe", "--period", "November"],
                     "INVALID_PERIOD", id="run-bad-period"),
        pytest.param(["score", "run", "--scheme", "heihe", "--period", "2026-10", "--db",
                      "MISSING"], "DB_NOT_FOUND", id="run-missing-db"),
        pytest.param(["model", "evaluate", "--current", "heihe", "--candidate", "MISSING"],
                     "CANDIDATE_NOT_FOUND", id="evaluate-missing-candidate"),
        pytest.param(["model", "evaluate", "--current", "atlantis", "--candidate", "GOOD"],
                     "UNKNOWN_SCHEME", id="evaluate-unknown-current"),
        pytest.param(["model", "evaluate", "--current", "heihe", "--candidate", "BAD"],
                     "INVALID_SCHEME", id="evaluate-malformed-candidate"),
        pytest.param(["model", "evaluate", "--current", "heihe", "--candidate", "GOOD",
                      "--period", "2026-00"], "INVALID_PERIOD", id="evaluate-bad-period"),
        pytest.param(["model", "evaluate", "--current", "heihe", "--candidate", "GOOD", "--db",
                      "MISSING"], "DB_NOT_FOUND", id="evaluate-missing-db"),
        pytest.param(["population", "generate", "--people", "5", "--scheme", "atlantis"],
                     "UNKNOWN_SCHEME", id="generate-unknown-scheme"),
        pytest.param(["population", "generate", "--people", "0"], "INVALID_PEOPLE",
                     id="generate-zero-people"),
        pytest.param(["population", "generate", "--people", "5", "--out", "DB"], "DB_EXISTS",
                     id="generate-existing-file"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_coded_error(
    argv: list[str], code: str, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(_heihe_text(), encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(_heihe_text().replace("base_score = 600", "base_score = 6000"), "utf-8")
    subs = {"MISSING": str(tmp_path / "missing"), "GOOD": str(good), "BAD": str(bad),
            "DB": str(db)}  # fmt: skip
    args = [subs.get(a, a) for a in argv]
    if "--db" not in args and argv[0] in {"score", "model"}:
        args += ["--db", str(db)]
    if "--out" not in args and argv[0] == "population":
        args += ["--out", str(tmp_path / "new.db")]
    before = db.read_bytes()
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {code}: "), err
    assert out == ""
    assert db.read_bytes() == before
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / "new.db").exists()


def test_generate_then_run_then_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.db"
    assert main(["population", "generate", "--people", "300", "--out", str(out), "--scheme",
                 "hainan", "--seed", "4", "--workers", "1", "--json"]) == 0  # fmt: skip
    generated = json.loads(capsys.readouterr().out)
    assert generated["people"] == 300 and generated["scheme"] == "hainan"
    argv = ["score", "run", "--db", str(out), "--scheme", "hainan", "--period", "2026-10",
            "--workers", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out)
    assert first["subjects"] > 0 and not first["already_complete"]
    assert sum(first["grades"].values()) == first["eligible"]
    assert "score hainan@" in captured.err  # the progress bar is on stderr
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["already_complete"] is True
    assert main(argv[:-1]) == 0
    text = capsys.readouterr().out
    assert "already complete" in text and "AAA" in text
    candidate = tmp_path / "candidate.toml"
    hainan = resources.files("scoring.schemes").joinpath("hainan.toml").read_text("utf-8")
    candidate.write_text(hainan.replace("base_score = 500", "base_score = 560"), "utf-8")
    ev_argv = ["model", "evaluate", "--current", "hainan", "--candidate", str(candidate),
               "--db", str(out), "--workers", "1"]  # fmt: skip
    assert main([*ev_argv, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["psi"] > 0
    assert set(ev["distribution"]["current"]) == {"AAA", "AA", "A", "B", "C", "D"}
    assert sum(ev["tier_moves"].values()) == ev["compared"]
    assert main(ev_argv) == 0
    text = capsys.readouterr().out
    assert "population stability index" in text and "tier moves" in text
    conn = sqlite3.connect(out)
    spec = read_spec(conn)
    conn.close()
    assert spec is not None
    ids = set(spec.id_numbers())
    assert not (set(ID_RE.findall(text)) & ids)
