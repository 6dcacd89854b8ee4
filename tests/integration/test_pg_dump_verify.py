"""``huxin backup`` on PostgreSQL: the database's own tools, and verify of a pg_dump (issue 18).

A real PostgreSQL server (tests/support/postgres.py) holding a node database
migrated by the node itself; real ``pg_dump`` archives of it in every format;
``huxin backup verify`` run as the operator runs it.  Requirements: C1, N15
(backups), issue 18 "Backups".
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from node.cli._init import init_region, load_or_create_ca
from node.store import SCHEMA_VERSION, connect
from node.store._pg_dump import DumpError, pg_tool, verify_dump
from tests.support.processes import huxin


def _dump(url: str, out: Path, fmt: str, *extra: str) -> Path:
    parts = urlsplit(url)
    args = [pg_tool("pg_dump"), "-F", fmt, "-f", str(out), *extra]
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or ""])[0]
    port = query.get("port", [str(parts.port or "")])[0]
    if host:
        args += ["-h", host]
    if port:
        args += ["-p", port]
    args += ["-U", parts.username or "postgres", parts.path.lstrip("/")]
    subprocess.run(args, check=True, capture_output=True)
    return out


@pytest.fixture
def node_db(pg_url: str) -> str:
    """A node database as the node migrates it, with a row in a period table."""
    connect(pg_url).close()
    return pg_url


@pytest.mark.parametrize("fmt", ["p", "c", "d", "t"], ids=["plain", "custom", "directory", "tar"])
def test_a_dump_of_a_node_database_verifies(node_db: str, tmp_path: Path, fmt: str) -> None:
    """Issue 18: every pg_dump format of a node's database passes verify: complete,
    every table and column of Huxin's schema, data sections, this build's schema."""
    check = verify_dump(_dump(node_db, tmp_path / f"dump.{fmt}", fmt))
    assert check.schema_version == SCHEMA_VERSION
    assert check.format == {"p": "plain", "c": "custom", "d": "directory", "t": "tar"}[fmt]


def _cut_plain(url: str, tmp: Path) -> Path:
    dump = _dump(url, tmp / "full.sql", "p")
    text = dump.read_text(encoding="utf-8")
    (tmp / "cut.sql").write_text(text[: len(text) // 2], encoding="utf-8")
    return tmp / "cut.sql"


def _cut_custom(url: str, tmp: Path) -> Path:
    data = _dump(url, tmp / "full.dump", "c").read_bytes()
    (tmp / "cut.dump").write_bytes(data[: len(data) - 300])
    return tmp / "cut.dump"


def _schema_only(url: str, tmp: Path) -> Path:
    return _dump(url, tmp / "schema.sql", "p", "--schema-only")


def _newer(url: str, tmp: Path) -> Path:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    return _dump(url, tmp / "newer.dump", "c")


def _table_dropped(url: str, tmp: Path) -> Path:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE supplements CASCADE")
    return _dump(url, tmp / "less.sql", "p")


def _not_a_dump(_url: str, tmp: Path) -> Path:
    (tmp / "notes.txt").write_text("CREATE TABLE x (a int);\n", encoding="utf-8")
    return tmp / "notes.txt"


BAD_DUMPS = [
    pytest.param(_cut_plain, "BACKUP_CORRUPT", "cut short", id="plain-cut-short"),
    pytest.param(_cut_custom, "BACKUP_CORRUPT", "read through", id="custom-cut-short"),
    pytest.param(_schema_only, "BACKUP_CORRUPT", "no data for", id="schema-only"),
    pytest.param(_newer, "BACKUP_SCHEMA_TOO_NEW", "newer than this build", id="newer-schema"),
    pytest.param(_table_dropped, "BACKUP_SCHEMA_MISMATCH", "supplements", id="table-missing"),
    pytest.param(_not_a_dump, "BACKUP_CORRUPT", "pg_dump archive", id="not-a-dump"),
]


@pytest.mark.parametrize(("make", "code", "says"), BAD_DUMPS)
def test_a_dump_that_fails_a_check_is_refused_by_name(
    node_db: str, tmp_path: Path, make: object, code: str, says: str
) -> None:
    """Issue 18: verify fails closed with a stable reason naming what is wrong."""
    assert callable(make)
    dump = make(node_db, tmp_path)
    with pytest.raises(DumpError) as caught:
        verify_dump(dump)
    assert caught.value.code == code
    assert says in str(caught.value)


def test_the_cli_verifies_a_dump_and_refuses_a_bad_one(node_db: str, tmp_path: Path) -> None:
    """Issue 18: ``huxin backup verify DUMP`` exits 0 on a good pg_dump and 1 on a
    cut one, naming the reason."""
    good = _dump(node_db, tmp_path / "good.dump", "c")
    done = huxin("backup", "verify", str(good))
    assert done.returncode == 0, done.stderr
    assert "pg_dump (custom)" in done.stdout
    bad = _cut_custom(node_db, tmp_path)
    done = huxin("backup", "verify", str(bad))
    assert done.returncode == 1
    assert "BACKUP_CORRUPT" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(("create", "--out", "{out}"), id="create"),
        pytest.param(("restore", "--from", "{out}"), id="restore"),
    ],
)
def test_create_and_restore_on_postgresql_name_the_database_tools(
    node_db: str, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """Issue 18: on a PostgreSQL node ``huxin backup create|restore`` say to use the
    database's own tools and what else to keep (keys, certificates, config), exit 2
    and write nothing."""
    now = datetime.now(UTC)
    init_region(tmp_path / "heihe", "heihe", "heihe", load_or_create_ca(tmp_path / "ca", now), now)
    config = tmp_path / "heihe" / "node.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + f'\n[storage]\nurl = "{node_db}"\n', encoding="utf-8"
    )
    out = tmp_path / "backup.db"
    args = [a.format(out=out) for a in argv]
    done = huxin("backup", args[0], "--config", str(config), *args[1:])
    assert done.returncode == 2, done.stderr
    for said in ("pg_dump", "pg_basebackup", "huxin backup verify", "keys/", "node.toml"):
        assert said in done.stderr
    assert not out.exists()
