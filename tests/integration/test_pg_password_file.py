"""``[storage] password_file`` reaches the monthly run and ``huxin score publish`` on
PostgreSQL (issue 18, defect 7; N13, docs/adr/0700): the server asks for a password
(SCRAM over TCP), the password is only in the file, the environment has none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import KeyPair
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import load_config
from node.demo._testbed import make_id_number
from node.monthly._batch import run_month
from node.store import StorageUnavailable, connect
from node.store._backend import PASSWORD_ENV
from node.store._pg_local import LocalPostgres
from scoring import load_scheme

HEIHE = load_scheme("heihe")
PASSWORD = "pw-only-in-the-file"
PEOPLE = 10


def _password_region(tmp_path: Path, server: LocalPostgres, name: str) -> Path:
    """A region whose [storage] is a TCP URL of a role that needs a password, given
    only in ``[storage] password_file``; ten sealed residents filed."""
    from tests.support.hub_world import populate_sealed

    role = f"pw_{name}"
    dbname = server.create_database("t").partition("@/")[2].partition("?")[0]
    server.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    server.admin(f"ALTER DATABASE {dbname} OWNER TO {role}")
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    region = tmp_path / "heihe"
    init_region(region, "heihe", "heihe", ca, now)
    (region / "keys/province.key").write_text(KeyPair.generate().seed.hex())
    (region / "keys/pg.password").write_text(PASSWORD + "\n")
    with (region / "node.toml").open("a") as fh:
        fh.write('\n[hub]\nprovince_key = "keys/province.key"\nhub_id = "heilongjiang"\n'
                 "batch_leaves = 4\n"
                 f'\n[storage]\nurl = "{server.tcp_url(dbname, role)}"\n'
                 'password_file = "keys/pg.password"\n')  # fmt: skip
    populate_sealed(region, [make_id_number(i) for i in range(PEOPLE)])
    return region


@pytest.fixture
def no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)


@pytest.mark.usefixtures("no_env_password")
def test_the_server_refuses_the_url_without_the_file(
    tmp_path: Path, postgres_server: LocalPostgres
) -> None:
    """The fixture really asks for a password: the bare URL fails to connect."""
    region = _password_region(tmp_path, postgres_server, "bare")
    url = load_config(region / "node.toml").storage.url
    with pytest.raises(StorageUnavailable, match="password"):
        connect(url, readonly=True).close()


@pytest.mark.usefixtures("no_env_password")
def test_monthly_run_with_workers_reads_the_password_file(
    tmp_path: Path, postgres_server: LocalPostgres
) -> None:
    """run_month given [storage] scores in two worker processes, each connecting with
    the file's password (the scheduler hands it [storage] the same way)."""
    region = _password_region(tmp_path, postgres_server, "run")
    storage = load_config(region / "node.toml").storage
    summary = run_month(storage, HEIHE, "2026-10", workers=2, chunk_subjects=3)
    assert summary.chunks == 4
    assert summary.chunks_computed == 4
    assert summary.subjects == PEOPLE


@pytest.mark.usefixtures("no_env_password")
def test_score_publish_reads_the_password_file(
    tmp_path: Path, postgres_server: LocalPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """``huxin score publish`` runs, signs and queues the month on PostgreSQL."""
    region = _password_region(tmp_path, postgres_server, "publish")
    cfg = str(region / "node.toml")
    assert main(["score", "publish", "--config", cfg, "--period", "2026-10", "--json",
                 "--workers", "2"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["subjects"] == PEOPLE
    assert out["batches_signed"] >= 1
