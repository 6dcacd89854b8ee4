"""Database units of work: group commit with per-unit savepoints, hooks after COMMIT,
on the writer and reader threads the store owns (docs/adr/0601)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from node.store._db import Database
from node.store._locks import WriterLock
from tests._waiting import WAIT_S, until


@pytest.fixture(params=[True, False], ids=["on-loop", "on-thread"])
def on_loop(request: pytest.FixtureRequest) -> bool:
    """Every behaviour holds for quick units (run on the event loop) and others (run on
    the writer thread)."""
    return bool(request.param)


async def test_concurrent_units_commit_together_and_failures_roll_back_alone(
    tmp_path: Path, on_loop: bool
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

    tasks = [
        asyncio.ensure_future(db.write_unit(ok(f"k{i}"), order.append, quick=on_loop))
        for i in range(20)
    ]
    failing = asyncio.ensure_future(db.write_unit(bad, quick=on_loop))
    results = await asyncio.gather(*tasks)
    with pytest.raises(ValueError, match="refused"):
        await failing
    assert results == [f"k{i}" for i in range(20)]
    assert order == results  # hooks ran in commit order
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert {r[0] for r in rows} == {f"k{i}" for i in range(20)}
    await db.close()


async def test_read_unit_sees_only_committed_state(tmp_path: Path, on_loop: bool) -> None:
    db = await Database.open(tmp_path / "n.db")
    await db.write_unit(
        lambda c: c.execute("INSERT INTO node_meta VALUES ('a', '1')"), quick=on_loop
    )
    seen = await db.read_unit(lambda c: c.execute("SELECT value FROM node_meta").fetchall())
    assert seen == [("1",)]
    await db.close()


async def test_cancelled_caller_still_gets_its_unit_committed(
    tmp_path: Path, on_loop: bool
) -> None:
    db = await Database.open(tmp_path / "n.db")
    task = asyncio.ensure_future(
        db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('c', '1')"), quick=on_loop)
    )
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + WAIT_S  # the unit commits whenever its thread runs
    while not await db.fetchone("SELECT value FROM node_meta WHERE key = 'c'"):
        assert time.monotonic() < deadline, "the cancelled caller's unit never committed"
        await asyncio.sleep(0.01)
    assert await db.fetchone("SELECT value FROM node_meta WHERE key = 'c'") == ("1",)
    await db.close()


async def test_a_failing_after_hook_fails_only_its_own_caller(
    tmp_path: Path, on_loop: bool
) -> None:
    db = await Database.open(tmp_path / "n.db")

    def insert(key: str):  # type: ignore[no-untyped-def]
        return lambda c: c.execute("INSERT INTO node_meta VALUES (?, '1')", (key,))

    def broken_hook(_value: object) -> None:
        raise LookupError("mirror failed")

    a = asyncio.ensure_future(db.write_unit(insert("a"), quick=on_loop))
    b = asyncio.ensure_future(db.write_unit(insert("b"), broken_hook, quick=on_loop))
    c = asyncio.ensure_future(db.write_unit(insert("c"), quick=on_loop))
    await a
    with pytest.raises(LookupError, match="mirror failed"):
        await b
    await c
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["a", "b", "c"]  # b committed: only its hook failed
    await db.close()


async def test_a_group_that_cannot_commit_fails_every_caller(tmp_path: Path, on_loop: bool) -> None:
    db = await Database.open(tmp_path / "n.db")
    await db.write_unit(
        lambda c: c.execute("INSERT INTO node_meta VALUES ('x', '1')"), quick=on_loop
    )

    def sabotage(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")  # ends the group's transaction early: its COMMIT fails

    with pytest.raises(sqlite3.OperationalError):
        await db.write_unit(sabotage, quick=on_loop)
    # the writer is usable again afterwards
    await db.write_unit(
        lambda c: c.execute("INSERT INTO node_meta VALUES ('y', '1')"), quick=on_loop
    )
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["x", "y"]
    await db.close()


async def test_groups_run_on_the_loop_unless_someone_else_writes(tmp_path: Path) -> None:
    """ADR 0315: a free writer lock means the group runs on the event loop thread;
    another holder (as another process) sends it to the writer thread, which waits."""
    import threading

    db = await Database.open(tmp_path / "n.db")
    where = lambda c: threading.get_ident()  # noqa: E731
    assert await db.write_unit(where, quick=True) == threading.get_ident()
    other = WriterLock(tmp_path / "n.db")
    other.acquire()
    pending = asyncio.ensure_future(db.write_unit(where, quick=True))
    await asyncio.sleep(0.2)
    assert not pending.done()
    other.release()
    assert await asyncio.wait_for(pending, 10) != threading.get_ident()
    assert await db.write_unit(where, quick=True) == threading.get_ident()  # back on the loop
    other.close()
    await db.close()


async def test_a_foreign_sqlite_writer_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """A connection that does not take the writer lock (e.g. an old batch job) holds
    SQLite's write lock: the unit waits on the writer thread, the loop keeps running,
    and the unit commits once the other transaction ends.

    The foreign transaction ends only when the test ends it, or after WAIT_S by a
    watchdog; a loop stuck in SQLite's busy handler (with a busy wait far longer than
    WAIT_S) would tick again only after the watchdog, which the test then sees."""
    db = await Database.open(tmp_path / "n.db", busy_ms=int(10 * WAIT_S * 1000))
    foreign = sqlite3.connect(tmp_path / "n.db", isolation_level=None, check_same_thread=False)
    foreign.execute("BEGIN IMMEDIATE")
    foreign.execute("INSERT INTO node_meta VALUES ('foreign', '1')")
    rescued = threading.Event()

    def watchdog() -> None:
        rescued.set()
        foreign.execute("COMMIT")

    timer = threading.Timer(WAIT_S, watchdog)
    timer.start()
    try:
        unit = asyncio.ensure_future(
            db.write_unit(
                lambda c: c.execute("INSERT INTO node_meta VALUES ('unit', '1')"), quick=True
            )
        )
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not rescued.is_set()  # the loop ran while the foreign transaction was open
        assert not unit.done()
    finally:
        timer.cancel()
        timer.join()
    if not rescued.is_set():
        foreign.execute("COMMIT")
    await asyncio.wait_for(unit, WAIT_S)
    rows = await db.fetchall("SELECT key FROM node_meta ORDER BY key")
    assert [r[0] for r in rows] == ["foreign", "unit"]
    foreign.close()
    await db.close()


async def test_a_foreign_writer_past_the_busy_wait_fails_the_unit(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db", busy_ms=50)
    foreign = sqlite3.connect(tmp_path / "n.db", isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await db.write_unit(
            lambda c: c.execute("INSERT INTO node_meta VALUES ('u', '1')"), quick=True
        )
    foreign.execute("ROLLBACK")
    await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('v', '1')"), quick=True)
    assert await db.fetchall("SELECT key FROM node_meta") == [("v",)]
    foreign.close()
    await db.close()


async def test_close_lets_queued_units_commit_first(tmp_path: Path, on_loop: bool) -> None:
    db = await Database.open(tmp_path / "n.db")
    units = [
        asyncio.ensure_future(
            db.write_unit(
                lambda c, i=i: c.execute("INSERT INTO node_meta VALUES (?, '1')", (f"k{i}",)),
                quick=on_loop,
            )
        )
        for i in range(5)
    ]
    await asyncio.sleep(0)  # queued, not yet run
    await db.close()
    await asyncio.gather(*units)  # every one committed, none left hanging
    conn = sqlite3.connect(tmp_path / "n.db")
    try:
        assert conn.execute("SELECT count(*) FROM node_meta").fetchone() == (5,)
    finally:
        conn.close()


async def test_after_close_units_are_refused_at_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "n.db")
    await db.close()
    for quick in (True, False):
        with pytest.raises(RuntimeError, match=r"^the database is closed$"):
            await asyncio.wait_for(db.write_unit(lambda c: None, quick=quick), 5)


async def test_a_failing_group_on_the_loop_fails_its_units_and_the_next_runs(
    tmp_path: Path,
) -> None:
    """A group of several quick units whose COMMIT fails: every caller gets the error,
    nothing of the group is kept, and the writer serves the next unit."""
    db = await Database.open(tmp_path / "n.db")

    def ok(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO node_meta VALUES ('a', '1')")

    def breaks_commit(conn: sqlite3.Connection) -> None:
        # a foreign-key violation checked only at COMMIT: the whole group's COMMIT fails
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'home', '2020-01-01')",
            (b"\x09" * 32,),
        )

    units = [asyncio.ensure_future(db.write_unit(f, quick=True)) for f in (ok, breaks_commit, ok)]
    results = await asyncio.gather(*units, return_exceptions=True)
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert await db.fetchall("SELECT key FROM node_meta") == []
    await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('b', '1')"), quick=True)
    assert await db.fetchall("SELECT key FROM node_meta") == [("b",)]
    await db.close()


async def test_a_failing_unit_in_a_group_rolls_back_alone(tmp_path: Path, on_loop: bool) -> None:
    """Three units in one group: the middle one fails after writing a row; its row is
    rolled back with it (its SAVEPOINT), the other two commit, and each caller gets
    its own outcome."""
    db = await Database.open(tmp_path / "n.db")

    def ok(key: str):  # type: ignore[no-untyped-def]
        return lambda c: c.execute("INSERT INTO node_meta VALUES (?, '1')", (key,)).rowcount

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO node_meta VALUES ('bad', '1')")
        raise KeyError("refused")

    units = [
        asyncio.ensure_future(db.write_unit(f, quick=on_loop)) for f in (ok("a"), fails, ok("b"))
    ]
    results = await asyncio.gather(*units, return_exceptions=True)
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], KeyError)
    assert await db.fetchall("SELECT key FROM node_meta ORDER BY key") == [("a",), ("b",)]
    await db.close()


async def test_hooks_run_in_commit_order_on_the_loop(tmp_path: Path, on_loop: bool) -> None:
    """Hooks run on the event loop thread, after COMMIT (the reader sees the row), in
    the order the units committed, whichever thread ran the group."""
    db = await Database.open(tmp_path / "n.db")
    seen: list[tuple[str, int, bool]] = []
    loop_thread = threading.get_ident()
    probe = sqlite3.connect(tmp_path / "n.db", isolation_level=None)

    def hook(key: str) -> None:
        row = probe.execute("SELECT 1 FROM node_meta WHERE key = ?", (key,)).fetchone()
        seen.append((key, threading.get_ident(), row is not None))

    units = [
        asyncio.ensure_future(
            db.write_unit(
                lambda c, k=f"k{i:02d}": (
                    c.execute("INSERT INTO node_meta VALUES (?, '1')", (k,)) and k
                ),
                hook,
                quick=on_loop,
            )
        )
        for i in range(30)
    ]
    await asyncio.gather(*units)
    probe.close()
    assert [k for k, _, _ in seen] == [f"k{i:02d}" for i in range(30)]
    assert all(t == loop_thread and committed for _, t, committed in seen)
    await db.close()


async def test_close_commits_queued_units_then_refuses_with_the_exact_error(
    tmp_path: Path, on_loop: bool
) -> None:
    """Units queued before close() commit; a unit offered after it is refused at once
    with ``RuntimeError("the database is closed")`` and nothing of it is written."""
    db = await Database.open(tmp_path / "n.db")
    queued = [
        asyncio.ensure_future(
            db.write_unit(
                lambda c, i=i: c.execute("INSERT INTO node_meta VALUES (?, '1')", (f"q{i}",)),
                quick=on_loop,
            )
        )
        for i in range(3)
    ]
    await asyncio.sleep(0)
    await db.close()
    await asyncio.gather(*queued)
    with pytest.raises(RuntimeError) as refused:
        await db.write_unit(
            lambda c: c.execute("INSERT INTO node_meta VALUES ('late', '1')"), quick=on_loop
        )
    assert str(refused.value) == "the database is closed"
    conn = sqlite3.connect(tmp_path / "n.db")
    try:
        assert conn.execute("SELECT key FROM node_meta ORDER BY key").fetchall() == [
            ("q0",),
            ("q1",),
            ("q2",),
        ]
    finally:
        conn.close()


async def test_the_store_owns_its_threads_and_ends_them_on_close(tmp_path: Path) -> None:
    """Writer batches and reads run on the store's own named threads (no other
    library's connection thread), and close() ends them."""
    db = await Database.open(tmp_path / "n.db")
    name = lambda c: threading.current_thread().name  # noqa: E731
    assert (await db.write_unit(name)).startswith("huxin-db-writer")
    assert (await db.read_unit(name)).startswith("huxin-db-reader")
    await db.close()
    await until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("huxin-db-")],
        "the store's threads to end",
    )


async def test_a_unit_dropped_when_cancelled_writes_nothing(tmp_path: Path) -> None:
    """``drop_if_cancelled``: a caller cancelled while its unit waits for the writer
    (another process holds it) gets nothing written; the units queued beside it
    without the flag still commit."""
    db = await Database.open(tmp_path / "n.db")
    other = WriterLock(tmp_path / "n.db")
    other.acquire()
    try:
        dropped = asyncio.ensure_future(
            db.write_unit(
                lambda c: c.execute("INSERT INTO node_meta VALUES ('dropped', '1')"),
                drop_if_cancelled=True,
            )
        )
        kept = asyncio.ensure_future(
            db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('kept', '1')"))
        )
        await asyncio.sleep(0.05)
        dropped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropped
    finally:
        other.release()
        other.close()
    await asyncio.wait_for(kept, WAIT_S)
    assert await db.fetchall("SELECT key FROM node_meta") == [("kept",)]
    await db.close()
