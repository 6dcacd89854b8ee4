"""WAL checkpoints off the event loop (docs/adr/0317): the WAL stays bounded under
steady writes, a RESTART never runs beside a writer, bad limits are refused."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from node._checkpoint import Checkpointer
from node._db import Database, WriterLock

BLOB = os.urandom(3000)  # about one WAL frame per unit


async def _write(db: Database, n: int, tag: str, quick: bool = True) -> None:
    def unit(i: int):  # type: ignore[no-untyped-def]
        return lambda c: c.execute("INSERT INTO node_meta VALUES (?, ?)", (f"{tag}{i}", BLOB))

    for start in range(0, n, 16):  # steady writes: groups back to back
        await asyncio.gather(
            *(db.write_unit(unit(i), quick=quick) for i in range(start, min(n, start + 16)))
        )


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    db = await Database.open(path, checkpoint_every=4, restart_frames=64)
    await _write(db, 1500, "k")  # ~3,000 frames, ~12 MB through the WAL
    await asyncio.sleep(0.2)  # a checkpoint still in flight finishes
    wal = os.path.getsize(f"{path}-wal")
    assert db._checkpointer.runs >= 2 and db._checkpointer.restarts >= 1
    assert wal < 6_000_000, wal  # started over again and again, not grown to ~12 MB
    assert (await db.fetchone("SELECT count(*) FROM node_meta WHERE key LIKE 'k%'")) == (1500,)
    await db.close()


async def test_without_checkpoints_the_same_writes_grow_the_wal(tmp_path: Path) -> None:
    """The control for the test above: the writer itself never checkpoints."""
    path = tmp_path / "n.db"
    db = await Database.open(path, checkpoint_every=10**9, restart_frames=10**9)
    await _write(db, 1500, "k")
    assert db._checkpointer.runs == 0
    assert os.path.getsize(f"{path}-wal") > 9_000_000
    await db.close()


async def test_writer_thread_commits_still_checkpoint_themselves(tmp_path: Path) -> None:
    """Units that are not quick (batches) commit on the writer thread with SQLite's
    own auto-checkpoint (every 1,000 frames), even with the checkpointer idle."""
    path = tmp_path / "n.db"
    db = await Database.open(path, checkpoint_every=10**9, restart_frames=10**9)
    await _write(db, 1500, "k", quick=False)
    assert db._checkpointer.runs == 0
    assert os.path.getsize(f"{path}-wal") < 6_000_000  # ~4 MB: started over, not 12 MB
    await db.close()


async def test_a_restart_waits_for_the_writer_lock(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    db = await Database.open(path, checkpoint_every=10**9, restart_frames=1)
    await _write(db, 20, "k")
    other = WriterLock(path)  # a writer of another process, mid-transaction
    other.acquire()
    run = asyncio.ensure_future(db._checkpointer.checkpoint())
    await asyncio.sleep(0.3)
    assert not run.done()  # PASSIVE done, RESTART waiting for the lock
    other.release()
    busy, frames, done = await asyncio.wait_for(run, 10)
    assert (busy, frames, done) == (0, 0, 0) or done == frames  # all copied back
    assert db._checkpointer.restarts == 1
    other.close()
    await db.close()


@pytest.mark.parametrize(
    ("every", "restart_frames"), [(0, 10), (10, 0), (-1, 10)], ids=["every-0", "frames-0", "neg"]
)
async def test_limits_must_be_positive(tmp_path: Path, every: int, restart_frames: int) -> None:
    lock = WriterLock(tmp_path / "x.db")
    try:
        with pytest.raises(ValueError, match="positive"):
            await Checkpointer.open(
                tmp_path / "x.db", lock, every=every, restart_frames=restart_frames
            )
    finally:
        lock.close()


async def test_a_restart_gives_up_on_a_slow_reader_and_frees_the_writers(
    tmp_path: Path,
) -> None:
    """A reader still in an old snapshot (a long report) does not stall every writer:
    the RESTART waits RESTART_WAIT_MS, reports busy and releases the writer lock."""
    import sqlite3
    import time

    path = tmp_path / "n.db"
    db = await Database.open(path, checkpoint_every=10**9, restart_frames=1)
    await _write(db, 10, "a")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM node_meta").fetchone()  # holds its snapshot
    await _write(db, 10, "b")
    started = time.monotonic()
    busy, frames, done = await asyncio.wait_for(db._checkpointer.checkpoint(), 10)
    assert time.monotonic() - started < 3
    assert busy == 1 and done < frames  # gave up; the frames are still in the WAL
    probe = WriterLock(path)
    assert probe.try_acquire()  # the writers are free again
    probe.release()
    probe.close()
    reader.execute("COMMIT")
    reader.close()
    await _write(db, 10, "c")  # writing goes on
    assert (await db.fetchone("SELECT count(*) FROM node_meta")) == (30,)
    await db.close()


async def test_a_database_that_fails_to_open_leaves_nothing_open(tmp_path: Path) -> None:
    """Bad checkpoint limits fail the open after the writer was connected: the writer
    connection and the lock files are closed again (no thread, no descriptor left)."""
    import threading

    before_threads = threading.active_count()
    before_fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError, match="positive"):
        await Database.open(tmp_path / "n.db", checkpoint_every=0)
    await asyncio.sleep(0.1)  # the writer's thread ends after its close
    assert threading.active_count() <= before_threads
    assert len(os.listdir("/proc/self/fd")) <= before_fds
