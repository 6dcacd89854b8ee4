"""Transparency log: entries in the caller's transaction, tree mirrors committed rows only."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys import CHECKPOINT_TYPE, KeyPair, verify_envelope, verify_inclusion
from node._db import Database
from node._translog import LogWrite, TransparencyLog, subject_ref
from node.pb.v1 import attestation_pb2, node_pb2

SUBJECT = b"\x07" * 32


async def _log(tmp_path: Path) -> tuple[Database, TransparencyLog, KeyPair]:
    db = await Database.open(tmp_path / "n.db")
    key = KeyPair.generate()
    log = TransparencyLog(db, "heihe", key)
    await log.load()
    return db, log, key


async def _subject(db: Database) -> None:
    async with db.write() as tx:
        await tx.run(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )


async def test_append_prove_and_reload(tmp_path: Path) -> None:
    db, log, key = await _log(tmp_path)
    await _subject(db)
    async with db.write() as tx:
        idx = await log.append(
            tx,
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

    async def failing() -> None:
        async with db.write() as tx:
            await log.append(tx, [LogWrite("consent_granted", 1)])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing()
    assert log.size == 0
    assert await db.fetchone("SELECT count(*) FROM log_entries") == (0,)
    async with db.write() as tx:
        assert await log.append(tx, [LogWrite("consent_granted", 1)]) == [0]
    assert log.size == 1
    await db.close()


async def test_checkpoint_is_cached_per_size(tmp_path: Path) -> None:
    db, log, _key = await _log(tmp_path)
    a = log.checkpoint(5)
    assert log.checkpoint(6) is a
    async with db.write() as tx:
        await log.append(tx, [LogWrite("consent_granted", 1)])
    assert log.checkpoint(7)[0] == 1
    await db.close()
