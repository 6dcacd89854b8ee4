"""The installed ``huxin`` command end to end: generate, run a month twice, evaluate, demo.

Runs the real console script in subprocesses (spawned worker processes included).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from node.synthetic._population import PopulationSpec
from tests.support.processes import huxin

ID_RE = re.compile(r"[1-9]\d{16}[\dX]")


def test_generate_run_evaluate(tmp_path: Path) -> None:
    """REQ: H11 — a month is computed once, then a candidate model is evaluated."""
    db = tmp_path / "heihe.db"
    gen = huxin(
        "population", "generate", "--people", "3000", "--out", str(db), "--seed", "9", script=True
    )
    assert gen.returncode == 0, gen.stderr
    assert "generated 3,000 people" in gen.stdout
    run = huxin("score", "run", "--db", str(db), "--scheme", "heihe", "--period", "2026-10",
                 "--workers", "2", "--chunk", "500", "--json", script=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout)
    assert first["chunks"] == 6 and first["chunks_computed"] == 6
    assert "score heihe@2025.1 2026-10" in run.stderr
    again = huxin("score", "run", "--db", str(db), "--scheme", "heihe", "--period", "2026-10",
                   "--json", script=True)  # fmt: skip
    assert again.returncode == 0
    second = json.loads(again.stdout)
    assert second["already_complete"] and second["grades"] == first["grades"]
    candidate = tmp_path / "candidate.toml"
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    changed = text.replace("points = 20\nvalidity_years = 2", "points = 60\nvalidity_years = 2")
    assert changed != text
    candidate.write_text(changed, "utf-8")
    ev = huxin("model", "evaluate", "--current", "heihe", "--candidate", str(candidate),
                "--db", str(db), script=True)  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert "population stability index" in ev.stdout
    ids = set(PopulationSpec("heihe", 3000, 9).id_numbers())
    for out in (gen.stdout, gen.stderr, run.stdout, run.stderr, ev.stdout, ev.stderr):
        assert not (set(ID_RE.findall(out)) & ids)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(("score", "run", "--db", "nope.db", "--scheme", "heihe", "--period", "2026-10"),
                     "DB_NOT_FOUND", id="missing-db"),
        pytest.param(("score", "run", "--db", "nope.db", "--scheme", "mars", "--period", "2026-10"),
                     "UNKNOWN_SCHEME", id="unknown-scheme"),
        pytest.param(("score", "run", "--db", "nope.db", "--scheme", "heihe", "--period", "2026-1"),
                     "INVALID_PERIOD", id="bad-period"),
    ],
)  # fmt: skip
def test_errors_exit_2_on_stderr(tmp_path: Path, args: tuple[str, ...], code: str) -> None:
    proc = huxin(*(str(tmp_path / a) if a.endswith(".db") else a for a in args), script=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {code}: ")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
