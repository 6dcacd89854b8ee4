"""The monthly run of a node made by ``huxin init region``, and periods not over yet.

REQ: H3 — scores are recomputed and published monthly: a standalone region
(no hub) must be able to sign its month; a month that has not ended is never
run, stored or signed (``--db ... --period 2099-01`` is refused, nothing stored).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import province_pseudonym, subject_key
from keys.pb.v1 import attestation_pb2
from node.cli._main import main
from node.core._config import load_config
from node.core._secrets import load_secrets
from node.demo._testbed import make_id_number
from node.monthly._snapshots import standalone_pseudonym_key


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _standalone(tmp_path: Path, capsys: pytest.CaptureFixture[str], people: int = 6) -> Path:
    from tests.support.hub_world import populate_sealed  # real node keys, sealed IDs

    out = tmp_path / "heihe"
    assert main(["init", "region", "--region", "heihe", "--scheme", "heihe",
                 "--out", str(out), "--peers", "hainan"]) == 0  # fmt: skip
    capsys.readouterr()
    populate_sealed(out, [make_id_number(i) for i in range(people)])
    return out


def test_a_node_from_init_region_signs_its_month_without_a_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H3 — init region, then `score run --config --period <a past month>` signs
    the month as Merkle batches addressed to the region itself (no hub, no province
    key: leaves under a pseudonym key derived from the storage secret)."""
    node = _standalone(tmp_path, capsys)
    config = load_config(node / "node.toml")
    assert config.hub.province_key is None and config.federation is None
    argv = ["score", "run", "--config", str(node / "node.toml"), "--period", "2026-10",
            "--workers", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["period"] == "2026-10" and out["batches"] >= 1 and out["leaves"] == 6
    db = node / "node.db"
    assert _rows(db, "SELECT count(*) FROM snapshot_batches") == [(out["batches"],)]
    # nothing queued for a hub: a hub joined later is never sent self-addressed batches
    assert _rows(db, "SELECT count(*) FROM outbox WHERE kind = 'snapshot_batch'") == [(0,)]
    payloads = _rows(db, "SELECT payload FROM snapshot_leaves WHERE payload IS NOT NULL")
    leaves = [attestation_pb2.Attestation.FromString(bytes(p[0])) for p in payloads]  # type: ignore[arg-type]
    assert {(a.issuer_region, a.audience, a.period) for a in leaves} == {
        ("heihe", "heihe", "2026-10")
    }
    # the leaf pseudonym: the derived key, neither the subject key nor the bare ID's hash
    secrets = load_secrets(config)
    key = standalone_pseudonym_key(secrets.storage_secret)
    assert key != secrets.storage_secret and len(key) == 32
    expected = {province_pseudonym(key, make_id_number(i)) for i in range(6)}
    assert {bytes(a.subject_binding) for a in leaves} == expected
    assert not expected & {subject_key(secrets.storage_secret, make_id_number(i)) for i in range(6)}
    # running again signs nothing new (the same key every run)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["batches_signed"] == 0


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        pytest.param('[hub]\nhub_id = "heilongjiang"\n', "PROVINCE_KEY_MISSING", id="hub-id"),
        pytest.param(
            '[hub]\nendpoint = "127.0.0.1:7500"\n', "PROVINCE_KEY_MISSING", id="hub-endpoint"
        ),
    ],
)
def test_a_node_with_a_hub_still_needs_the_province_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, code: str
) -> None:
    """REQ: H13 — pushes to a hub use the province's key: no silent fallback there."""
    node = _standalone(tmp_path, capsys, people=2)
    with (node / "node.toml").open("a") as fh:
        fh.write("\n" + extra)
    argv = ["score", "run", "--config", str(node / "node.toml"), "--period", "2026-10",
            "--workers", "1"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {code}: ")


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@pytest.mark.parametrize(
    ("form", "period"),
    [
        pytest.param("config", "this-month", id="run-config-this-month"),
        pytest.param("config", "2099-01", id="run-config-future"),
        pytest.param("db", "this-month", id="run-db-this-month"),
        pytest.param("db", "2099-01", id="run-db-future"),
        pytest.param("publish", "2099-01", id="publish-future"),
        pytest.param("db-bad-scheme", "2099-01", id="period-checked-before-the-scheme"),
        pytest.param("publish-no-config", "2099-01", id="period-checked-before-the-config"),
    ],
)
def test_a_month_not_over_yet_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str, period: str
) -> None:
    node = _standalone(tmp_path, capsys, people=2)
    db, cfg = node / "node.db", str(node / "node.toml")
    before = _rows(db, "SELECT count(*) FROM snapshot_runs"), db.stat().st_size
    p = _this_month() if period == "this-month" else period
    argv = {
        "config": ["score", "run", "--config", cfg],
        "db": ["score", "run", "--db", str(db), "--scheme", "heihe"],
        "publish": ["score", "publish", "--config", cfg],
        "db-bad-scheme": ["score", "run", "--db", str(tmp_path / "no.db"), "--scheme", "mars"],
        "publish-no-config": ["score", "publish", "--config", str(tmp_path / "none.toml")],
    }[form]
    assert main([*argv, "--period", p, "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: INVALID_PERIOD: --period: period {p!r} has not ended yet")
    assert (_rows(db, "SELECT count(*) FROM snapshot_runs"), db.stat().st_size) == before
    assert _rows(db, "SELECT count(*) FROM outbox") == [(0,)]
    assert not (tmp_path / "no.db").exists()
