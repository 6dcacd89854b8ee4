"""The writer lock across processes (docs/adr/0312): several OS processes group-commit
into one SQLite file; every acknowledged unit is committed exactly once, none is lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.store._db import Database
from node.store._locks import WriterLock

UNITS = 400


def _hammer(path: str, tag: str, start: Any) -> None:
    async def main() -> None:
        # no SQLite busy wait anywhere: only the writer lock keeps these processes apart
        db = await Database.open(path, busy_ms=0)
        start.wait(60)  # all processes write at the same time

        def unit(n: int):  # type: ignore[no-untyped-def]
            def run(conn: sqlite3.Connection) -> int:
                (value,) = conn.execute(
                    "SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM node_meta"
                ).fetchone()
                conn.execute("INSERT INTO node_meta VALUES (?, ?)", (f"{tag}{n}", value + 1))
                return int(value) + 1

            return run

        # half quick (loop, falling back to the thread while another process writes)
        await asyncio.gather(*(db.write_unit(unit(n), quick=n % 2 == 0) for n in range(UNITS)))

        def cold(conn: sqlite3.Connection) -> None:  # a unit alone on the writer thread
            row = conn.execute("SELECT max(CAST(value AS INTEGER)) FROM node_meta").fetchone()
            conn.execute("INSERT INTO node_meta VALUES (?, ?)", (f"{tag}-cold", row[0] + 1))

        await db.write_unit(cold)
        await db.close()

    asyncio.run(main())


def test_processes_serialise_on_the_writer_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "n.db")
    asyncio.run(_create(path))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_hammer, args=(path, tag, start)) for tag in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    try:
        values = sorted(int(v) for (v,) in conn.execute("SELECT value FROM node_meta"))
    finally:
        conn.close()
    # read-then-write inside each unit: with writers serialised the counter never repeats
    assert values == list(range(1, 3 * (UNITS + 1) + 1))


async def _create(path: str) -> None:
    db = await Database.open(path)
    await db.close()


def test_writer_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    import fcntl
    import os

    lock = WriterLock(tmp_path / "x.db")
    lock.acquire()
    other = os.open(tmp_path / "x.db.writer-lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.release()
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(other)
        lock.close()


async def test_units_and_transactions_wait_for_the_writer_lock(tmp_path: Path) -> None:
    """Quick units (the loop) and others (the writer thread) both queue behind
    another holder of the lock (as another process)."""
    db = await Database.open(tmp_path / "n.db")
    other = WriterLock(tmp_path / "n.db")  # its own open file description: like a process
    other.acquire()
    unit = asyncio.ensure_future(
        db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('u', '1')"), quick=True)
    )

    tx = asyncio.ensure_future(
        db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('t', '1')"))
    )
    await asyncio.sleep(0.3)
    assert not unit.done() and not tx.done()
    other.release()
    await asyncio.wait_for(asyncio.gather(unit, tx), 10)
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["t", "u"]
    other.close()
    await db.close()
