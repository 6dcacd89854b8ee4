"""Database units of work: group commit with per-unit savepoints, hooks after COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from node._db import Database


async def test_concurrent_units_commit_together_and_failures_roll_back_alone(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "n.db")
    order: list[str] = []

    def ok(key: str):  # type: ignore[no-untyped-def]
        def unit(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO node_meta VALUES (?, 'v')", (key,))
            return key

        return unit

    def bad(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO node_meta VALUES ('bad', 'v')")
        raise ValueError("refused")

    tasks = [asyncio.ensure_future(db.write_unit(ok(f"k{i}"), order.append)) for i in range(20)]
    failing = asyncio.ensure_future(db.write_unit(bad))
    results = await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="refused"):
        await failing
    assert results == [f"k{i}" for i in range(20)]
    assert order == results  # hooks ran in commit order
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert {r[0] for r in rows} == {f"k{i}" for i in range(20)}
    await db.close()


async def test_read_unit_sees_only_committed_state(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db")
    await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('a', '1')"))
    seen = await db.read_unit(lambda c: c.execute("SELECT value FROM node_meta").fetchall())
    assert seen == [("1",)]
    await db.close()


async def test_cancelled_caller_still_gets_its_unit_committed(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db")
    task = asyncio.ensure_future(
        db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('c', '1')"))
    )
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if await db.fetchone("SELECT value FROM node_meta WHERE key = 'c'"):
            break
        await asyncio.sleep(0.01)
    assert await db.fetchone("SELECT value FROM node_meta WHERE key = 'c'") == ("1",)
    await db.close()


async def test_units_queued_during_a_transaction_run_after_it_not_inside(
    tmp_path: Path,
) -> None:
    """A unit never joins a multi-step transaction: the transaction's rollback
    cannot take a unit's committed row with it."""
    db = await Database.open(tmp_path / "n.db")
    started = asyncio.Event()
    release = asyncio.Event()

    async def cold() -> None:
        async with db.write() as tx:
            await tx.run("INSERT INTO node_meta VALUES ('cold', '1')")
            started.set()
            await release.wait()
            raise RuntimeError("cold path fails")

    cold_task = asyncio.ensure_future(cold())
    await started.wait()
    unit = asyncio.ensure_future(
        db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('unit', '1')"))
    )
    await asyncio.sleep(0.05)
    assert not unit.done()  # waits for the transaction to end
    release.set()
    with pytest.raises(RuntimeError, match="cold path fails"):
        await cold_task
    await unit
    rows = await db.fetchall("SELECT key FROM node_meta")
    assert [r[0] for r in rows] == ["unit"]
    await db.close()


async def test_a_failing_after_hook_fails_only_its_own_caller(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db")

    def insert(key: str):  # type: ignore[no-untyped-def]
        return lambda c: c.execute("INSERT INTO node_meta VALUES (?, '1')", (key,))

    def broken_hook(_value: object) -> None:
        raise LookupError("mirror failed")

    a = asyncio.ensure_future(db.write_unit(insert("a")))
    b = asyncio.ensure_future(db.write_unit(insert("b"), broken_hook))
    c = asyncio.ensure_future(db.write_unit(insert("c")))
    await a
    with pytest.raises(LookupError, match="mirror failed"):
        await b
    await c
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["a", "b", "c"]  # b committed: only its hook failed
    await db.close()


async def test_a_group_that_cannot_commit_fails_every_caller(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db")
    await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('x', '1')"))

    def sabotage(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")  # ends the group's transaction early: its COMMIT fails

    with pytest.raises(sqlite3.OperationalError):
        await db.write_unit(sabotage)
    # the writer is usable again afterwards
    await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('y', '1')"))
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["x", "y"]
    await db.close()
