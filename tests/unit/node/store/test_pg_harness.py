"""How suites reach PostgreSQL (issue 18; docs/adr/0700, ADR 0605): the harness puts a
spawned node on a fresh database, and a lost database is UNAVAILABLE at the RPC edge."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from node.core._config import load_config
from node.demo._testbed import TEST_PG_ADMIN_ENV, TEST_STORAGE_ENV, place_storage
from node.rpc._status import map_error
from node.store import StorageUnavailable, connect
from node.store._pg_local import LocalPostgres

NODE_TOML = """[node]
region = "heihe"
scheme = "heihe"

[tls]
cert = "tls/node.pem"
key = "tls/node.key"
ca = "tls/ca.pem"

[keys]
root = "keys/root.key"
signing = "keys/signing.key"
key_set = "keys/keyset.bin"
storage_secret = "keys/storage.secret"
seal = "keys/seal.key"
"""


def test_place_storage_gives_a_node_a_fresh_postgresql_database(
    postgres_server: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--storage=postgresql``: each node file without ``[storage]`` gets a database
    of its own; a file that names a storage keeps it; SQLite runs change nothing."""
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(NODE_TOML)
    second.write_text(NODE_TOML)
    monkeypatch.delenv(TEST_STORAGE_ENV, raising=False)
    place_storage(first)
    assert first.read_text() == NODE_TOML
    monkeypatch.setenv(TEST_STORAGE_ENV, "postgresql")
    monkeypatch.setenv(TEST_PG_ADMIN_ENV, postgres_server.url())
    place_storage(first)
    place_storage(second)
    once = first.read_text()
    place_storage(first)
    assert first.read_text() == once
    a, b = load_config(first).storage, load_config(second).storage
    assert a.dialect == b.dialect == "postgresql"
    assert a.url != b.url
    conn = connect(a)
    conn.close()


def test_a_lost_database_is_unavailable_at_the_rpc_edge() -> None:
    """Issue 18: requests fail fast with UNAVAILABLE while PostgreSQL is down."""
    mapped = map_error(StorageUnavailable("the database connection was lost"))
    assert (mapped.status, mapped.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")


def test_missing_server_binaries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: without ``initdb``/``pg_ctl`` the fixture fails (never skips) with a
    message naming where it looked and what to install."""
    from node.store import _pg_local

    monkeypatch.setattr(_pg_local, "BINDIR_CANDIDATES", ("/nonexistent/pg/bin",))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(_pg_local.PostgresUnavailable) as caught:
        _pg_local.find_bindir()
    assert "/nonexistent/pg/bin" in str(caught.value)
    assert "apt-get install postgresql" in str(caught.value)


def test_a_server_does_not_outlive_a_killed_starter(tmp_path: Path) -> None:
    """A test session killed by a timeout leaves no PostgreSQL server running and no
    directory behind (8 sessions share CI's machine)."""
    import signal
    import subprocess
    import sys

    from tests._waiting import wait_until

    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from node.store._pg_local import LocalPostgres\n"
            "pg = LocalPostgres().start()\n"
            "print(pg.directory, flush=True)\n"
            "time.sleep(3600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    directory = Path(starter.stdout.readline().strip())
    assert (directory / "data" / "postmaster.pid").exists()
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    starter.stdout.close()
    wait_until(lambda: not directory.exists(), "the watcher to stop the server and clean up")
