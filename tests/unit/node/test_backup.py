"""Backups of a node's database: consistent copies, fail-closed verification, safe restore.

Real SQLite files throughout; "a node is running" is its real primary or writer lock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.pb.v1 import node_pb2
from node.rpc._workers import PrimaryLock
from node.store import SCHEMA_VERSION, connect
from node.store._backup import (
    BackupError,
    create_backup,
    manifest_path,
    restore_backup,
    verify_backup,
)
from node.store._locks import WriterLock

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


_INSERT = (
    "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
    "VALUES (?, '1985-03-12', x'00', '2026-11-01')"
)


def _node_db(path: Path, subjects: int = 3) -> Path:
    """A migrated node database with ``subjects`` rows (checkpointed, closed)."""
    conn = connect(path)
    for i in range(subjects):
        conn.execute(_INSERT, (bytes([i]) * 32,))
    conn.close()
    return path


T = int(NOW.timestamp())


def _consent(path: Path, consent_id: str, *, subject: int = 0, not_after: int = T + 86_400,
             withdrawn: int | None = None, attestations: int = 1) -> None:  # fmt: skip
    """A consent of subject ``subject`` with ``attestations`` valid status entries."""
    conn = connect(path)
    key = bytes([subject]) * 32
    conn.execute(
        "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before, "
        "not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at, "
        "withdrawn_at) VALUES (?, ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, 9, ?, ?, x'00', ?, ?, ?)",
        (
            consent_id,
            key,
            T - 100,
            not_after,
            attestations,
            b"\x01" * 32,
            b"\x02" * 32,
            T - 100,
            withdrawn,
        ),
    )
    for i in range(attestations):
        conn.execute(
            "INSERT INTO status_entries (attestation_id, subject_key, consent_id, issued_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?)",
            (f"{consent_id}-{i}", key, consent_id, T - 50, T + 50),
        )
    conn.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _commit_and_crash(path: Path, key: bytes) -> None:
    """Another process commits one subject and dies without closing: the commit
    is only in the WAL (as after a SIGKILLed node)."""
    code = (
        "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('PRAGMA wal_autocheckpoint = 0'); "
        f"c.execute({_INSERT!r}, (bytes.fromhex(sys.argv[2]),)); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(path), key.hex()], check=True)
    assert Path(f"{path}-wal").stat().st_size > 0


def _subjects(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM subjects").fetchone()[0])
    finally:
        conn.close()


def _backup(tmp_path: Path, subjects: int = 3) -> Path:
    db = _node_db(tmp_path / "node.db", subjects)
    out = tmp_path / "b.db"
    create_backup(db, out, region="heihe", role="region", now=NOW)
    return out


def test_backup_round_trip_has_every_committed_row(tmp_path: Path) -> None:
    """A backup holds what was committed (WAL included) and verifies against its manifest."""
    db = _node_db(tmp_path / "node.db", subjects=4)
    _commit_and_crash(db, b"\xee" * 32)
    out = tmp_path / "b.db"
    create_backup(db, out, region="heihe", role="region", now=NOW)
    m = verify_backup(out)
    assert (m.region, m.role, m.schema_version) == ("heihe", "region", SCHEMA_VERSION)
    assert m.counts["subjects"] == 5 and m.counts["consents"] == 0
    assert m.taken_at == "2026-11-23T12:00:00Z"
    assert m.size == out.stat().st_size
    assert _subjects(out) == 5
    assert not Path(f"{out}-wal").exists()  # one self-contained file
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert json.loads(manifest_path(out).read_text())["sha256"] == m.sha256


def test_backup_leaves_out_an_open_transaction(tmp_path: Path) -> None:
    """The copy is a snapshot: rows of a transaction still open elsewhere are not in it."""
    db = _node_db(tmp_path / "node.db", subjects=2)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(_INSERT, (b"\xff" * 32,))
    try:
        m = create_backup(db, tmp_path / "b.db", region="heihe", role="region", now=NOW)
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert m.counts["subjects"] == 2
    assert _subjects(db) == 3


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing-source", "BACKUP_SOURCE_MISSING"),
        ("out-exists", "BACKUP_EXISTS"),
        ("manifest-exists", "BACKUP_EXISTS"),
        ("out-dir-missing", "BACKUP_OUT_DIR"),
        ("not-a-node-db", "BACKUP_CORRUPT"),
    ],
)
def test_create_refuses(tmp_path: Path, case: str, code: str) -> None:
    db = tmp_path / "node.db"
    out = tmp_path / "b.db"
    if case != "missing-source":
        _node_db(db)
    if case == "out-exists":
        out.write_bytes(b"keep me")
    if case == "manifest-exists":
        manifest_path(out).write_text("{}")
    if case == "out-dir-missing":
        out = tmp_path / "nope" / "b.db"
    if case == "not-a-node-db":
        db.unlink()
        sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupError) as err:
        create_backup(db, out, region="heihe", role="region", now=NOW)
    assert err.value.code == code
    if case == "missing-source":
        assert not db.exists()  # the source is never created
    if case == "out-exists":
        assert out.read_bytes() == b"keep me"
    if case in ("missing-source", "out-dir-missing", "not-a-node-db"):
        assert not out.exists() and not manifest_path(out).exists()
    assert not out.with_name("b.db.partial").exists()


def _rewrite_manifest(out: Path, **changes: object) -> None:
    doc = json.loads(manifest_path(out).read_text())
    doc.update(changes)
    manifest_path(out).write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("flipped-byte", "BACKUP_DIGEST_MISMATCH"),
        ("truncated", "BACKUP_DIGEST_MISMATCH"),
        ("manifest-missing", "BACKUP_MANIFEST_MISSING"),
        ("manifest-not-json", "BACKUP_MANIFEST_INVALID"),
        ("manifest-wrong-format", "BACKUP_MANIFEST_INVALID"),
        ("manifest-size-not-int", "BACKUP_MANIFEST_INVALID"),
        ("manifest-size-bool", "BACKUP_MANIFEST_INVALID"),
        ("manifest-counts-not-ints", "BACKUP_MANIFEST_INVALID"),
        ("manifest-other-schema", "BACKUP_MANIFEST_INVALID"),
        ("manifest-huge", "BACKUP_MANIFEST_INVALID"),
        ("schema-too-new", "BACKUP_SCHEMA_TOO_NEW"),
        ("backup-missing", "BACKUP_MISSING"),
    ],
)
def test_verify_fails_closed(tmp_path: Path, case: str, code: str) -> None:
    out = _backup(tmp_path)
    if case == "flipped-byte":
        data = bytearray(out.read_bytes())
        data[len(data) // 2] ^= 0x01
        out.write_bytes(bytes(data))
    elif case == "truncated":
        out.write_bytes(out.read_bytes()[:-4096])
    elif case == "manifest-missing":
        manifest_path(out).unlink()
    elif case == "manifest-not-json":
        manifest_path(out).write_text("{nope")
    elif case == "manifest-wrong-format":
        _rewrite_manifest(out, format="other/1")
    elif case == "manifest-size-not-int":
        _rewrite_manifest(out, size="12")
    elif case == "manifest-size-bool":
        _rewrite_manifest(out, size=True)
    elif case == "manifest-counts-not-ints":
        _rewrite_manifest(out, counts={"subjects": "3"})
    elif case == "manifest-other-schema":
        _rewrite_manifest(out, schema_version=SCHEMA_VERSION - 1)
    elif case == "manifest-huge":
        _rewrite_manifest(out, pad="x" * 70_000)
    elif case == "schema-too-new":
        conn = sqlite3.connect(out)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        import hashlib

        data = out.read_bytes()
        _rewrite_manifest(out, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    elif case == "backup-missing":
        out.unlink()
    with pytest.raises(BackupError) as err:
        verify_backup(out)
    assert err.value.code == code


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_flip_any_byte_and_verification_fails(tmp_path: Path, data: st.DataObject) -> None:
    """Property: any single changed bit anywhere in the file is caught."""
    out = tmp_path / "b.db"
    if not out.exists():
        create_backup(_node_db(tmp_path / "node.db"), out, region="heihe", role="region", now=NOW)
    original = out.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1))
    bit = data.draw(st.integers(0, 7))
    changed = bytearray(original)
    changed[pos] ^= 1 << bit
    out.write_bytes(bytes(changed))
    try:
        with pytest.raises(BackupError) as err:
            verify_backup(out)
        assert err.value.code == "BACKUP_DIGEST_MISMATCH"
    finally:
        out.write_bytes(original)
    assert verify_backup(out).sha256


def test_restore_replaces_and_keeps_the_old_database_aside(tmp_path: Path) -> None:
    """Restore puts the backup in place; the replaced database, WAL commits included, is kept."""
    out = _backup(tmp_path, subjects=2)
    db = _node_db(tmp_path / "live.db", subjects=2)
    _commit_and_crash(db, b"\xee" * 32)  # a commit after the backup, only in the WAL
    r = restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert r.moved_aside == tmp_path / "live.db.before-restore-20261123T120000Z"
    assert _subjects(db) == 2
    assert _subjects(r.moved_aside) == 3  # the old WAL's commit was folded in first
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    assert connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_restore_into_an_empty_place(tmp_path: Path) -> None:
    out = _backup(tmp_path, subjects=4)
    db = tmp_path / "fresh" / "node.db"
    db.parent.mkdir()
    r = restore_backup(db, out, region="heihe", role="region", now=NOW, status_gap=1000)
    assert r.moved_aside is None
    assert _subjects(db) == 4
    assert r.status_revoked == range(0, 1000)  # nothing to read the old high-water mark from


def test_restore_fails_closed_on_consents_and_status_indexes(tmp_path: Path) -> None:
    """REQ: H5 N15 — a withdrawal made after the backup must not come back to life, and
    an attestation issued after it must neither read as valid nor share its index with a
    new one: open consents are withdrawn (logged, reason BACKUP_RESTORED), their entries
    revoked, and the indexes the replaced database had handed out are filled REVOKED."""
    db = _node_db(tmp_path / "live.db", subjects=2)
    _consent(db, "open", attestations=2)
    _consent(db, "expired", subject=1, not_after=T - 1)
    _consent(db, "withdrawn", subject=1, withdrawn=T - 5)
    out = tmp_path / "b.db"
    create_backup(db, out, region="heihe", role="region", now=NOW)  # status idx 1..4
    _consent(db, "later", subject=1, attestations=3)  # after the backup: idx 5..7
    conn = connect(db)
    conn.execute("UPDATE consents SET withdrawn_at = ? WHERE consent_id = 'open'", (T - 1,))
    conn.close()
    r = restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert r.consents_withdrawn == 1
    assert r.status_revoked == range(5, 8)
    assert _rows(db, "SELECT consent_id, withdrawn_at FROM consents ORDER BY consent_id") == [
        ("expired", None), ("open", T), ("withdrawn", T - 5)]  # fmt: skip
    statuses = dict(_rows(db, "SELECT idx, status FROM status_entries"))  # type: ignore[arg-type]
    assert statuses == {1: 1, 2: 1, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1}
    (leaf,) = _rows(db, "SELECT leaf FROM log_entries WHERE kind = 'consent_withdrawn'")
    entry = node_pb2.LogEntry.FromString(leaf[0])  # type: ignore[arg-type]
    assert (entry.consent_id, entry.reason, entry.timestamp) == ("open", "BACKUP_RESTORED", T)
    (meta,) = _rows(db, "SELECT value FROM node_meta WHERE key = 'backup.restored'")
    assert json.loads(meta[0])["status_revoked"] == [5, 8]  # type: ignore[arg-type]
    conn = connect(db)  # a new attestation takes the next index after the gap
    conn.execute(
        "INSERT INTO status_entries (attestation_id, subject_key, consent_id, issued_at, "
        "expires_at) VALUES ('new', x'01', 'x', 0, 0)"
    )
    assert conn.execute("SELECT max(idx) FROM status_entries").fetchone()[0] == 8
    conn.close()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("primary-lock-held", "NODE_RUNNING"),
        ("writer-lock-held", "NODE_RUNNING"),
        ("other-region", "BACKUP_OTHER_NODE"),
        ("other-role", "BACKUP_OTHER_NODE"),
        ("corrupt-backup", "BACKUP_DIGEST_MISMATCH"),
        ("aside-exists", "BACKUP_EXISTS"),
        ("status-gap-negative", "BACKUP_STATUS_GAP"),
    ],
)
def test_restore_refuses_and_changes_nothing(tmp_path: Path, case: str, code: str) -> None:
    out = _backup(tmp_path, subjects=2)
    db = tmp_path / "live" / "node.db"
    db.parent.mkdir()
    _node_db(db, subjects=5)
    before = db.read_bytes()
    region, role = "heihe", "region"
    held: list[object] = []
    if case == "primary-lock-held":
        held.append(PrimaryLock(db))
    if case == "writer-lock-held":
        lock = WriterLock(db)
        lock.acquire()
        held.append(lock)
    if case == "other-region":
        region = "hainan"
    if case == "other-role":
        role = "hub"
    if case == "corrupt-backup":
        data = out.read_bytes()
        out.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    if case == "aside-exists":
        (db.parent / "node.db.before-restore-20261123T120000Z").write_bytes(b"older")
    gap = -1 if case == "status-gap-negative" else 10
    try:
        with pytest.raises(BackupError) as err:
            restore_backup(db, out, region=region, role=role, now=NOW, status_gap=gap)
    finally:
        for h in held:
            h.close()  # type: ignore[attr-defined]
    assert err.value.code == code
    assert db.read_bytes() == before
    assert _subjects(db) == 5
    assert not db.with_name("node.db.restoring").exists()


def test_restore_of_a_hub_adds_no_status_gap(tmp_path: Path) -> None:
    """A hub issues no attestations: nothing to revoke even when the old mark is unknown."""
    db = _node_db(tmp_path / "hub.db", subjects=0)
    out = tmp_path / "b.db"
    create_backup(db, out, region="heilongjiang", role="hub", now=NOW)
    db.unlink()
    r = restore_backup(db, out, region="heilongjiang", role="hub", now=NOW)
    assert (r.moved_aside, r.status_revoked) == (None, range(0, 0))
    assert _rows(db, "SELECT count(*) FROM status_entries") == [(0,)]


def test_restore_moves_a_crashed_nodes_wal_aside_even_without_its_main_file(
    tmp_path: Path,
) -> None:
    """With node.db gone but its -wal/-shm left by a crash, SQLite would replay
    the old WAL into the restored file; they are moved aside first."""
    out = _backup(tmp_path, subjects=2)
    db = _node_db(tmp_path / "live.db", subjects=7)
    _commit_and_crash(db, b"\xee" * 32)
    db.unlink()  # the main file is lost, its WAL is not
    r = restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert _subjects(db) == 2
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert r.moved_aside is not None
    assert Path(f"{r.moved_aside}-wal").stat().st_size > 0  # kept, not replayed
    assert not r.moved_aside.exists()  # there was no main file to keep


def test_restore_keeps_the_old_file_by_link_then_replaces_atomically(tmp_path: Path) -> None:
    """The old main file is linked aside and replaced in one rename, so no
    instant leaves the node without a database (a missing one would be created empty)."""
    out = _backup(tmp_path, subjects=2)
    db = _node_db(tmp_path / "live.db", subjects=5)
    inode = db.stat().st_ino
    r = restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert r.moved_aside is not None and r.moved_aside.stat().st_ino == inode
    assert db.stat().st_ino != inode and _subjects(db) == 2


def test_paths_with_uri_characters(tmp_path: Path) -> None:
    """'#' and '?' in a directory name are escaped in SQLite URIs."""
    folder = tmp_path / "a#b?c"
    folder.mkdir()
    db = _node_db(folder / "node.db", subjects=3)
    out = folder / "b.db"
    assert create_backup(db, out, region="heihe", role="region", now=NOW).counts["subjects"] == 3
    assert verify_backup(out).counts["subjects"] == 3
    _commit_and_crash(db, b"\xee" * 32)
    r = restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert r.moved_aside is not None and _subjects(r.moved_aside) == 4  # WAL folded in


def test_restore_refuses_while_an_offline_job_runs(tmp_path: Path) -> None:
    """`score run` holds the job lock for its whole run (it takes the writer
    lock only around each write), so restore cannot move the file between its chunks."""
    from node.store._locks import JobLock

    out = _backup(tmp_path, subjects=2)
    db = _node_db(tmp_path / "live.db", subjects=5)
    with JobLock(db), pytest.raises(BackupError) as err:
        restore_backup(db, out, region="heihe", role="region", now=NOW)
    assert err.value.code == "NODE_RUNNING" and "job-lock" in str(err.value)
    assert _subjects(db) == 5
    restore_backup(db, out, region="heihe", role="region", now=NOW)  # released: it runs
    assert _subjects(db) == 2
