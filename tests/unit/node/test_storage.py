"""Node storage: numbered migrations, user_version, WAL, foreign keys, both entry points."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.store import (
    SCHEMA_VERSION,
    StorageError,
    connect,
    migrations,
)

TABLES = {
    "node_meta",
    "subjects",
    "residences",
    "records",
    "snapshot_runs",
    "snapshot_run_chunks",
    "snapshots",
}


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_are_numbered_without_gaps() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert SCHEMA_VERSION == len(found) >= 1
    assert found[0].name == "core"


def test_fresh_database_is_migrated_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    conn = connect(tmp_path / "n.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert _tables(conn) >= TABLES
    conn.close()


def test_reopening_applies_nothing_and_keeps_data(tmp_path: Path) -> None:
    conn = connect(tmp_path / "n.db")
    conn.execute("INSERT INTO node_meta VALUES ('k', 'v')")
    conn.close()
    conn = connect(tmp_path / "n.db")
    assert conn.execute("SELECT value FROM node_meta WHERE key = 'k'").fetchone() == ("v",)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "n.db")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StorageError) as err:
        connect(tmp_path / "n.db")
    assert err.value.code == "SCHEMA_TOO_NEW"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        pytest.param({"readonly": True}, "DB_NOT_FOUND", id="readonly-missing"),
        pytest.param({"create": False}, "DB_NOT_FOUND", id="no-create-missing"),
    ],
)
def test_missing_database_is_not_created(
    tmp_path: Path, kwargs: dict[str, bool], code: str
) -> None:
    with pytest.raises(StorageError) as err:
        connect(tmp_path / "absent.db", **kwargs)
    assert err.value.code == code
    assert not (tmp_path / "absent.db").exists()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError) as err:
        connect(bad)
    assert err.value.code == "DB_UNREADABLE"


def test_readonly_connection_refuses_writes(tmp_path: Path) -> None:
    connect(tmp_path / "n.db").close()
    ro = connect(tmp_path / "n.db", readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("INSERT INTO node_meta VALUES ('k', 'v')")
    ro.close()


def test_records_need_a_registered_subject(tmp_path: Path) -> None:
    conn = connect(tmp_path / "n.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id,"
            " recognised_on, batch_id, submitted_at) VALUES (?, 'r1', 's', 'good_deed',"
            " 'positive', 'a1', '2026-01-01', 'b1', '2026-01-01T00:00:00Z')",
            (b"\x01" * 32,),
        )
    conn.close()


def test_subject_key_must_be_an_hmac_sized_blob(tmp_path: Path) -> None:
    conn = connect(tmp_path / "n.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
            " VALUES (?, '1990-01-01', x'00', '2026-01-01T00:00:00Z')",
            (b"short",),
        )
    conn.close()


async def test_async_entry_point_migrates(tmp_path: Path) -> None:
    """The server's entry point (``Database.open``) migrates on its writer thread."""
    from node.store._db import Database

    db = await Database.open(tmp_path / "a.db")
    try:
        assert await db.fetchone("PRAGMA user_version") == (SCHEMA_VERSION,)
        assert await db.fetchone("PRAGMA journal_mode") == ("wal",)
    finally:
        await db.close()
    sync = connect(tmp_path / "a.db")
    assert _tables(sync) >= TABLES
    sync.close()


def test_0007_keeps_every_status_entry_and_drops_the_random_indexes(tmp_path: Path) -> None:
    """ADR 0316: a version-6 database keeps its status entries (same idx, same rows)
    and loses only the attestation-id and consent indexes."""
    from node.store._migrate import _script, migrations

    raw = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    for mig in migrations()[:6]:
        raw.executescript(_script(mig))
    rows = [
        (i * 3, f"att{i}", b"\x05" * 32, f"c{i % 2}", i % 4, 100 + i, 200 + i) for i in range(5)
    ]
    raw.executemany("INSERT INTO status_entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    raw.close()
    conn = connect(tmp_path / "old.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT * FROM status_entries ORDER BY idx").fetchall() == rows
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(status_entries)")}
    assert indexes == {"status_entries_by_subject"}
    with pytest.raises(sqlite3.IntegrityError):  # the status CHECK survived the rebuild
        conn.execute("UPDATE status_entries SET status = 9 WHERE idx = 0")
    conn.close()
