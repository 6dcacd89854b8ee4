"""The monthly run refuses an expired scheme at once, before reading anyone.

REQ: N12 (issue 15 §3) — a scheme carries its own expiry (Hainan's measures are valid
for three years) and refuses to score past it: ``run_month`` checks the scheme's
``valid_until`` against the period's last day first and refuses the whole run with
``SCHEME_EXPIRED`` naming the scheme and the date, writing nothing, instead of failing
subject by subject. H3 — the last valid month still runs.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

import grpc
import pytest

from node.monthly._batch import BatchError, run_month
from scoring import Scheme, parse_scheme_toml

from ._population_fixtures import Populations, copy_of


def _heihe_until(last_day: str) -> Scheme:
    """Heihe's scheme with an expiry (the shipped one has none)."""
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    marker = "effective = 2025-01-01"
    assert marker in text
    return parse_scheme_toml(text.replace(marker, f"{marker}\nvalid_until = {last_day}", 1))


EXPIRING = _heihe_until("2026-09-30")


def _runs(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM snapshot_runs").fetchone()[0])


def test_expired_scheme_refuses_the_run_before_opening_the_database(tmp_path: Path) -> None:
    """REQ: N12 — SCHEME_EXPIRED names the scheme and its last day; nothing was opened (a
    missing database is not even noticed) and nothing was created."""
    missing = tmp_path / "never.db"
    with pytest.raises(BatchError) as info:
        run_month(missing, EXPIRING, "2026-10", workers=1)
    assert info.value.code == "SCHEME_EXPIRED"
    assert info.value.status is grpc.StatusCode.FAILED_PRECONDITION
    assert "heihe@2025.1" in str(info.value) and "2026-09-30" in str(info.value)
    assert not missing.exists()


def test_expired_scheme_writes_no_run(tmp_path: Path, populations: Populations) -> None:
    """REQ: N12, H3 — a period after the expiry writes no run row and no snapshot; the last
    valid month runs and scores everyone."""
    db = copy_of(populations.db(), tmp_path)
    with pytest.raises(BatchError) as info:
        run_month(db, EXPIRING, "2026-10", workers=1)
    assert info.value.code == "SCHEME_EXPIRED"
    assert _runs(db) == 0
    last = run_month(db, EXPIRING, "2026-09", workers=1)
    assert last.subjects > 0 and last.chunks_computed == last.chunks
    assert _runs(db) == 1
