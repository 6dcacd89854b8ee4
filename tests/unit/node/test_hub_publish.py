"""The node's monthly run (issue 5): ``huxin score run --config`` = ``score publish`` —
scored with the scheme version IN FORCE (H11, N12), signed as Merkle batches (H3),
queued for the hub; ``--db`` mode only recomputes."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest

from keys import KeyPair
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.demo._testbed import make_id_number
from node.model._rollout import write_rollout
from scoring import Evaluation, Rollout, load_scheme, parse_scheme_toml

SHIPPED = load_scheme("heihe")


def _candidate_text(version: str) -> str:
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    return text.replace(f'version = "{SHIPPED.version}"', f'version = "{version}"', 1)


def _region(tmp_path: Path) -> Path:
    from tests.support.hub_world import populate_sealed  # real node keys, sealed IDs

    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    init_region(tmp_path / "heihe", "heihe", "heihe", ca, now)
    (tmp_path / "heihe/keys/province.key").write_text(KeyPair.generate().seed.hex())
    with (tmp_path / "heihe/node.toml").open("a") as fh:
        fh.write('\n[hub]\nprovince_key = "keys/province.key"\nhub_id = "heilongjiang"\n'
                 "batch_leaves = 4\n")  # fmt: skip
    populate_sealed(tmp_path / "heihe", [make_id_number(i) for i in range(10)])
    return tmp_path / "heihe"


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _activate_candidate(db: Path, version: str) -> None:
    """A rollout whose candidate took effect before today (stored like the rights CLI)."""
    text = _candidate_text(version)
    cand = parse_scheme_toml(text)
    r = Rollout.start(SHIPPED).evaluate(cand, Evaluation(version, 0.01, 10, 2, 1))
    r = r.start_trial(date(2026, 1, 1)).activate(date(2026, 3, 1), date(2026, 4, 1))
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        write_rollout(conn, r, text, None, "2026-03-01T00:00:00+00:00")
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.parametrize("rollout", [False, True], ids=["shipped-version", "rolled-out-version"])
def test_score_run_config_signs_with_the_version_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rollout: bool
) -> None:
    """REQ: H3, H11, N12 — `huxin score run --config` runs the month with the version in
    force on the node, signs it as Merkle batches and queues them (like score publish);
    the run, the batches and every attestation name that version."""
    region = _region(tmp_path)
    db = region / "node.db"
    version = "2099.1" if rollout else SHIPPED.version
    if rollout:
        _activate_candidate(db, version)
    cfg = str(region / "node.toml")
    assert main(["score", "run", "--config", cfg, "--period", "2026-10", "--json",
                 "--workers", "1"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["scheme"] == f"heihe@{version}" and out["batches"] >= 3
    assert _rows(db, "SELECT DISTINCT scheme_version FROM snapshot_runs") == [(version,)]
    assert _rows(db, "SELECT DISTINCT scheme_version FROM snapshot_batches") == [(version,)]
    events = _rows(db, "SELECT count(*) FROM outbox WHERE kind = 'snapshot_batch'")[0][0]
    assert events == out["batches"]
    from keys.pb.v1 import attestation_pb2

    payloads = _rows(db, "SELECT payload FROM snapshot_leaves WHERE payload IS NOT NULL")
    versions = {attestation_pb2.Attestation.FromString(p[0]).scheme_version for p in payloads}  # type: ignore[arg-type]
    assert versions == {version}
    # publish again: idempotent, nothing new queued
    assert main(["score", "publish", "--config", cfg, "--period", "2026-10", "--json",
                 "--workers", "1"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["batches_signed"] == 0


def test_score_run_db_mode_recomputes_without_signing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--db` mode is plain recomputation: snapshots stored, nothing signed or queued;
    `--db` without `--scheme` and `--db` with `--config` are refused."""
    region = _region(tmp_path)
    db = region / "node.db"
    assert main(["score", "run", "--db", str(db), "--scheme", "heihe", "--period", "2026-10",
                 "--workers", "1", "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    assert _rows(db, "SELECT count(*) FROM snapshot_runs") == [(1,)]
    assert _rows(db, "SELECT count(*) FROM outbox") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM snapshot_batches") == [(0,)]
    assert main(["score", "run", "--db", str(db), "--period", "2026-10"]) == 2
    assert "SCHEME_REQUIRED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "run", "--db", str(db), "--config", str(region / "node.toml"),
              "--period", "2026-10"])  # fmt: skip
