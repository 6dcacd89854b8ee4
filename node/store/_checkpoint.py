"""WAL checkpoints off the event loop (docs/adr/0317).

The node's writer connection runs with ``wal_autocheckpoint = 0`` while a
group of quick units commits on the event loop (ADR 0315): no such COMMIT
copies the WAL back into the database file (with an fsync) on the loop.
Transactions on the writer thread (batches, cold paths) keep SQLite's own
checkpoint in their COMMIT.  For the loop's commits this checkpointer, on its
own connection and thread:

* after every ``every`` loop commits of this process runs a PASSIVE checkpoint,
  which never waits for and never blocks readers or writers;
* when the WAL still holds ``restart_frames`` frames or more afterwards (under
  steady writes a PASSIVE checkpoint can copy frames but never find a moment
  to start the WAL over), takes the cross-process writer lock through its own
  file description (so this process's own writers queue behind it like any
  other process's) and runs a RESTART checkpoint, which finishes the copy and
  lets the next writer reuse the WAL from its start.  The RESTART waits at most
  ``RESTART_WAIT_MS`` for readers of old snapshots; if they are still reading it
  gives up (SQLite reports it busy) and the next run tries again.

Invariants: at most one checkpoint of this process runs at a time; a failed
checkpoint is logged and retried after the next ``every`` commits (the data is
safe in the WAL either way); the writer lock is always released.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from node.core._observe import log_event
from node.store._locks import WriterLock
from node.store._threads import ConnectionThread

__all__ = ["Checkpointer"]

CHECKPOINT_EVERY = 64  # commits between PASSIVE checkpoints
RESTART_FRAMES = 4096  # WAL frames (16 MiB of 4 KiB pages) that force a RESTART
# How long a RESTART (holding the writer lock, so every writer waits) may wait for
# readers still in old snapshots (a long report, a batch job's reader) before it
# gives up until the next run: writers must not stall behind a slow reader.
RESTART_WAIT_MS = 250


def _restart(conn: sqlite3.Connection, lock: WriterLock) -> tuple[int, int, int]:
    """On the checkpointer's thread: RESTART while no writer of ours can write."""
    with lock:
        row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _passive(conn: sqlite3.Connection) -> tuple[int, int, int]:
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _open(path: str | Path) -> sqlite3.Connection:
    """On the checkpointer's thread: its own connection, waiting at most
    ``RESTART_WAIT_MS`` for readers of old snapshots."""
    conn = sqlite3.connect(Path(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS:d}")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_limits(every: int, restart_frames: int) -> None:
    if every < 1 or restart_frames < 1:
        raise ValueError("checkpoint every and restart_frames must be positive")


class Checkpointer:
    """Checkpoints one database's WAL on a connection and thread of its own."""

    def __init__(
        self,
        thread: ConnectionThread,
        lock: WriterLock,
        *,
        every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        _check_limits(every, restart_frames)
        self._thread, self._lock = thread, lock
        self._every, self._restart_frames = every, restart_frames
        self._commits = 0
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # checkpoints run (PASSIVE, with or without a RESTART after it)
        self.restarts = 0

    @classmethod
    async def open(
        cls,
        path: str | Path,
        lock: WriterLock,
        *,
        every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
    ) -> Checkpointer:
        _check_limits(every, restart_frames)  # before a connection (and its thread) exists
        thread = ConnectionThread("huxin-db-checkpoint")
        try:
            await thread.open(lambda: _open(path))
        except BaseException:
            await thread.close()
            raise
        return cls(thread, lock, every=every, restart_frames=restart_frames)

    def committed(self) -> None:
        """On the event loop, after a COMMIT run on the loop."""
        self._commits += 1
        if self._commits >= self._every and self._task is None:
            self._commits = 0
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # logged; the WAL keeps the data, the next run retries
            log_event("wal checkpoint failed", 30, exc=type(exc).__name__)
        finally:
            self._task = None

    async def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint, and a RESTART if the WAL is still long;
        returns SQLite's (busy, WAL frames, frames checkpointed)."""
        busy, frames, done = await self._thread.call(_passive)
        self.runs += 1
        if frames >= self._restart_frames:
            busy, frames, done = await self._thread.call(_restart, self._lock)
            self.restarts += 1
        return busy, frames, done

    async def settled(self) -> None:
        """Return once no checkpoint of this process is in flight (at once when idle).

        A checkpoint started by :meth:`committed` runs to its end on its thread;
        waiting here never starts one and never cancels one.
        """
        while (task := self._task) is not None and not task.done():
            await asyncio.wait({task})  # never raises: _run logs its own failures

    async def close(self) -> None:
        """Wait for a checkpoint in flight (it runs to its end on its thread), close."""
        await self.settled()
        try:
            await self._thread.close()
        finally:
            self._lock.close()
