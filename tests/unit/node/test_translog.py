"""Transparency log: entries in the caller's transaction, tree mirrors committed rows only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keys import CHECKPOINT_TYPE, KeyPair, verify_envelope, verify_inclusion
from node.pb.v1 import attestation_pb2, node_pb2
from node.store._db import Database
from node.store._translog import LogWrite, TransparencyLog, subject_ref

SUBJECT = b"\x07" * 32


async def _log(tmp_path: Path) -> tuple[Database, TransparencyLog, KeyPair]:
    db = await Database.open(tmp_path / "n.db")
    key = KeyPair.generate()
    log = TransparencyLog(db, "heihe", key)
    await log.load()
    return db, log, key


async def _subject(db: Database) -> None:
    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )

    await db.write_unit(_unit)


async def _append(db: Database, log: TransparencyLog, writes: list[LogWrite]) -> list[int]:
    """Entries in a unit of work of their own, mirrored into the tree after COMMIT."""
    first, leaves = await db.write_unit(
        lambda c: log.append_sync(c, writes), lambda r: log.mirror(*r)
    )
    return [first + i for i in range(len(leaves))]


async def test_append_prove_and_reload(tmp_path: Path) -> None:
    db, log, key = await _log(tmp_path)
    await _subject(db)
    idx = await _append(
        db,
        log,
        [
            LogWrite("consent_granted", 1, SUBJECT, consent_id="c1"),
            LogWrite("request_refused", 2, None, reason="PEER_NOT_TRUSTED"),
            LogWrite("attestation_issued", 3, SUBJECT, consent_id="c1"),
        ],
    )
    assert idx == [0, 1, 2]
    assert log.size == 3
    entries, env = await log.entries_for(SUBJECT, now=10)
    cp = attestation_pb2.Checkpoint.FromString(
        verify_envelope(env, {key.key_id: key.public_key}, CHECKPOINT_TYPE)
    )
    assert (cp.origin, cp.tree_size, cp.kind) == ("heihe/log", 3, "log")
    assert [e.proof.leaf_index for e in entries] == [0, 2]
    for e in entries:
        assert verify_inclusion(e.entry, e.proof.leaf_index, 3, list(e.proof.hashes), cp.root_hash)
        assert node_pb2.LogEntry.FromString(e.entry).subject_ref == subject_ref(SUBJECT)
    root = log.root()
    await db.close()
    db2 = await Database.open(tmp_path / "n.db")
    log2 = TransparencyLog(db2, "heihe", key)
    await log2.load()
    assert (log2.size, log2.root()) == (3, root)
    await db2.close()


async def test_rolled_back_entries_never_reach_the_tree(tmp_path: Path) -> None:
    db, log, _key = await _log(tmp_path)

    def failing(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
        log.append_sync(conn, [LogWrite("consent_granted", 1)])
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.write_unit(failing, lambda r: log.mirror(*r))
    assert log.size == 0
    assert await db.fetchone("SELECT count(*) FROM log_entries") == (0,)
    assert await _append(db, log, [LogWrite("consent_granted", 1)]) == [0]
    assert log.size == 1
    await db.close()


async def test_checkpoint_is_cached_per_size(tmp_path: Path) -> None:
    db, log, _key = await _log(tmp_path)
    a = log.checkpoint(5)
    assert log.checkpoint(6) is a
    await _append(db, log, [LogWrite("consent_granted", 1)])
    assert log.checkpoint(7)[0] == 1
    await db.close()


async def test_two_writers_on_one_file_keep_one_dense_log(tmp_path: Path) -> None:
    """docs/adr/0312: another process's entries fill the gap before any root is served."""
    db_a, log_a, key = await _log(tmp_path)
    db_b = await Database.open(tmp_path / "n.db")  # a second process's handle, same file
    log_b = TransparencyLog(db_b, "heihe", key)
    await log_b.load()
    await log_a.record([LogWrite("consent_granted", 1, consent_id="a0")])
    await log_b.record([LogWrite("consent_granted", 2, consent_id="b1")])  # idx 1: gap for b
    await log_a.record([LogWrite("consent_granted", 3, consent_id="a2")])  # idx 2: gap for a
    assert (log_a.size, log_b.size) == (1, 0)  # mirrors past a gap wait for sync
    size_a, env_a = await log_a.current_checkpoint(10)
    size_b, env_b = await log_b.current_checkpoint(10)
    assert size_a == size_b == 3
    keys = {key.key_id: key.public_key}
    roots = {
        attestation_pb2.Checkpoint.FromString(verify_envelope(e, keys, CHECKPOINT_TYPE)).root_hash
        for e in (env_a, env_b)
    }
    assert len(roots) == 1
    # a late mirror of leaves sync already added is a no-op, not an error
    log_a.mirror(0, [LogWrite("consent_granted", 1, consent_id="a0").entry()])
    assert log_a.size == 3 and log_a.root() == log_b.root()
    await db_a.close()
    await db_b.close()


async def test_sync_refuses_a_log_with_a_hole(tmp_path: Path) -> None:
    db, log, _key = await _log(tmp_path)
    await log.record([LogWrite("consent_granted", 1)])
    await db.write_unit(
        lambda c: c.execute(
            "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at) "
            "VALUES (5, NULL, 'consent_granted', x'00', 1)"
        )
    )
    with pytest.raises(RuntimeError, match="gap"):
        await log.sync()
    await db.close()
