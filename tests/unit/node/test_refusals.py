"""Bounded refusal logging (node/exchange/_refusals.py, docs/adr/0319).

REQ: H16 N23 — every refusal on a real consent is registered for its citizen,
but the leaves of one (consent, requester, reason) are bounded by time and the
consent's life, never by how often a caller retries; the mark is read and
written inside the write unit, so two writers of one database agree.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from keys import KeyPair
from node.exchange._refusals import INTERVAL, QUIET_AFTER_END, log_refusal
from node.pb.v1 import node_pb2
from node.store._db import Database
from node.store._translog import LogWrite, TransparencyLog

SUBJECT = b"\x07" * 32
NOW = 1_800_000_000
END = NOW + 30 * 86_400  # the consent's not_after


async def _db(path: Path) -> Database:
    db = await Database.open(path)

    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )
        tx.execute(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before, "
            "not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at, "
            "withdrawn_at) VALUES ('c1', ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, 2, 0, ?, x'00', ?, ?, "
            "NULL)",
            (SUBJECT, NOW - 10, END, b"\x01" * 32, b"\x02" * 32, NOW - 10),
        )

    await db.write_unit(_unit)
    return db


def _write(at: int, reason: str = "CONSENT_WITHDRAWN", requester: str = "hainan") -> LogWrite:
    return LogWrite(
        "request_refused",
        at,
        SUBJECT,
        "c1",
        requester=requester,
        purpose="heihe/credit-loans",
        reason=reason,
    )


async def _refuse(db: Database, log: TransparencyLog, w: LogWrite, ended_at: int) -> int:
    """One refusal in its own unit; the number of leaves it appended."""

    def unit(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
        return log_refusal(conn, log, w, ended_at=ended_at)

    _first, leaves = await db.write_unit(unit, lambda r: log.mirror(*r), quick=True)
    return len(leaves)


async def _counts(db: Database) -> list[int]:
    rows = await db.fetchall("SELECT leaf FROM log_entries ORDER BY idx")
    return [node_pb2.LogEntry.FromString(bytes(r[0])).count for r in rows]


@pytest.mark.parametrize(
    ("times", "ended_at", "leaves", "counts"),
    [
        ([NOW], END, [1], [0]),
        ([NOW, NOW + 1, NOW + INTERVAL - 1], END, [1, 0, 0], [0]),
        ([NOW, NOW + 5, NOW + INTERVAL], END, [1, 0, 1], [0, 2]),
        ([NOW, NOW + INTERVAL, NOW + 2 * INTERVAL], END, [1, 1, 1], [0, 0, 0]),
        # a day after the consent ended: repeats are counted, not logged
        ([NOW, NOW + 2 * INTERVAL], NOW + INTERVAL - QUIET_AFTER_END, [1, 0], [0]),
        # ...but the first refusal of a key always is
        ([NOW], NOW - 10 * QUIET_AFTER_END, [1], [0]),
        # clock set back: nothing extra is logged
        ([NOW, NOW - 10 * INTERVAL], END, [1, 0], [0]),
    ],
    ids=[
        "first",
        "within-the-hour",
        "after-an-hour-with-count",
        "hourly",
        "quiet-a-day-after-end",
        "first-after-end",
        "clock-backwards",
    ],
)
async def test_rule(
    tmp_path: Path, times: list[int], ended_at: int, leaves: list[int], counts: list[int]
) -> None:
    db = await _db(tmp_path / "n.db")
    log = TransparencyLog(db, "heihe", KeyPair.generate())
    await log.load()
    try:
        got = [await _refuse(db, log, _write(t), ended_at) for t in times]
        assert got == leaves
        assert await _counts(db) == counts
        (unlogged,) = await db.fetchone("SELECT unlogged FROM refusal_marks")
        assert unlogged == len(times) - sum(leaves) - sum(max(c - 1, 0) for c in counts)
        assert log.size == sum(leaves)
    finally:
        await db.close()


async def test_keys_are_consent_requester_and_reason(tmp_path: Path) -> None:
    db = await _db(tmp_path / "n.db")
    log = TransparencyLog(db, "heihe", KeyPair.generate())
    await log.load()
    try:
        writes = [
            _write(NOW),
            _write(NOW, reason="CONSENT_WRONG_PURPOSE"),
            _write(NOW, requester="fuzhou"),
            _write(NOW + 1),
            _write(NOW + 1, reason="CONSENT_WRONG_PURPOSE"),
        ]
        assert [await _refuse(db, log, w, END) for w in writes] == [1, 1, 1, 0, 0]
        assert (await db.fetchone("SELECT count(*) FROM refusal_marks"))[0] == 3
    finally:
        await db.close()


async def test_two_writers_of_one_database_log_one_leaf(tmp_path: Path) -> None:
    """Two handles on one file (separate writer connections and writer-lock
    descriptors, as two processes have): 200 concurrent refusals of one key give
    exactly one leaf and 199 counted, with dense log indexes."""
    path = tmp_path / "n.db"
    a = await _db(path)
    b = await Database.open(path)
    logs = [TransparencyLog(d, "heihe", KeyPair.generate()) for d in (a, b)]
    for log in logs:
        await log.load()
    try:
        got = await asyncio.gather(
            *(_refuse((a, b)[i % 2], logs[i % 2], _write(NOW + i % 7), END) for i in range(200))
        )
        assert sum(got) == 1
        assert await a.fetchall("SELECT idx FROM log_entries") == [(0,)]
        assert await a.fetchone("SELECT unlogged FROM refusal_marks") == (199,)
    finally:
        await b.close()
        await a.close()


async def test_marks_go_with_their_consent(tmp_path: Path) -> None:
    """Deleting a consent (deregistration deletes a subject's consents) deletes its marks."""
    db = await _db(tmp_path / "n.db")
    log = TransparencyLog(db, "heihe", KeyPair.generate())
    await log.load()
    try:
        await _refuse(db, log, _write(NOW), END)

        def _unit(tx: sqlite3.Connection) -> None:
            tx.execute("DELETE FROM consents WHERE consent_id = 'c1'")

        await db.write_unit(_unit)
        assert await db.fetchone("SELECT count(*) FROM refusal_marks") == (0,)
    finally:
        await db.close()
