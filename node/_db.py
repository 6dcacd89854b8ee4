"""The node's database handle: one writer and one reader aiosqlite connection.

Invariants:

* every write is a transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), rolled back
  on any exception; a caller acknowledges only after its write has returned,
  i.e. after COMMIT;
* all writes of this process run on the writer connection's one thread, in
  the order they were queued there: a multi-step transaction (:meth:`write`)
  holds an asyncio lock, and a group of units is queued only while that lock
  is free, so a group never runs inside another transaction; in-memory state
  that mirrors committed rows (the log's Merkle tree) is updated by hooks that
  run on the event loop after COMMIT, in commit order, and never for a
  rolled-back transaction;
* reads use a separate connection, so they never see uncommitted writes;
* every write transaction of every process serving one database (the
  primary and its peer-port workers, docs/adr/0312) first takes an exclusive
  ``flock`` on ``<database>.writer-lock`` on the writer thread and releases it
  after COMMIT/ROLLBACK: writers queue on the kernel lock instead of polling
  SQLite's busy handler (which sleeps 1–100 ms between tries), and the log
  entry indexes taken inside a transaction stay dense across processes;
* hot paths run a *unit of work*: a synchronous function executed on the
  connection's own thread in one hop (``read_unit`` / ``write_unit``), never a
  chain of per-row awaits.  Concurrent ``write_unit`` calls are group
  committed: one *runner* at a time is queued on the writer thread; there it
  takes every unit waiting (up to ``MAX_GROUP``) and runs them in ONE
  transaction, each inside its own SAVEPOINT (a failing unit is rolled back
  alone and gets its exception; the others commit together; a group of one
  needs no SAVEPOINT), then hands the results back to the event loop in one
  callback, which runs the ``after`` hooks and wakes the callers.  No task and
  no lock hop per group (ADRs 0303, 0310, 0312).

aiosqlite owns the connections and their threads (DESIGN.md); running a
function on that thread uses ``aiosqlite.Connection._execute`` (and, for the
runner, which needs no reply future, the connection's queue ``_tx``), wrapped
only here and covered by tests (tests/unit/node/test_db.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from node._storage import connect_async

__all__ = ["Database", "Tx"]

T = TypeVar("T")
MAX_GROUP = 256


class Tx:
    """An open write transaction: its connection and hooks run right after COMMIT."""

    __slots__ = ("_hooks", "conn")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._hooks: list[Callable[[], None]] = []

    def after_commit(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.conn.execute_fetchall(sql, params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(sql, params)
        return int(cur.rowcount)

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, rows)


class _Pending:
    __slots__ = ("after", "fn", "future")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        after: Callable[[Any], None] | None,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn, self.after, self.future = fn, after, future


class WriterLock:
    """The cross-process writer lock of one database file (``<db>.writer-lock``)."""

    __slots__ = ("_fd",)

    def __init__(self, database: str | Path) -> None:
        self._fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _begin(conn: sqlite3.Connection, lock: WriterLock) -> None:
    lock.acquire()
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        lock.release()
        raise


def _commit(conn: sqlite3.Connection, lock: WriterLock) -> None:
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # never release the lock with a transaction open
            conn.execute("ROLLBACK")
        raise
    finally:
        lock.release()


def _rollback(conn: sqlite3.Connection, lock: WriterLock) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        lock.release()


def _run_group(
    conn: sqlite3.Connection, units: list[_Pending], lock: WriterLock
) -> list[tuple[bool, Any]]:
    """Runs on the writer thread, holding the writer lock: all units in one
    transaction, one SAVEPOINT each (a group of one needs none: its failure
    rolls back the whole transaction)."""
    lock.acquire()
    try:
        return _run_group_locked(conn, units)
    finally:
        lock.release()


def _run_group_locked(conn: sqlite3.Connection, units: list[_Pending]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        if len(units) == 1:
            try:
                result = units[0].fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK")
                return [(False, exc)]
            conn.execute("COMMIT")
            return [(True, result)]
        for unit in units:
            conn.execute("SAVEPOINT unit")
            try:
                result = unit.fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                out.append((False, exc))
            else:
                conn.execute("RELEASE unit")
                out.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


class Database:
    """Writer + reader connections to one node SQLite file."""

    def __init__(
        self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, lock: WriterLock
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._writer_lock = lock
        self._lock = asyncio.Lock()  # held by a multi-step write() transaction
        self._waiting: collections.deque[_Pending] = collections.deque()  # units, FIFO
        self._runner_queued = False

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        writer = await connect_async(path)
        reader = await aiosqlite.connect(Path(path), isolation_level=None)
        await reader.execute("PRAGMA foreign_keys = ON")
        await reader.execute("PRAGMA busy_timeout = 10000")
        return cls(writer, reader, WriterLock(path))

    async def close(self) -> None:
        async with self._lock:
            await self._writer.close()
        await self._reader.close()
        self._writer_lock.close()

    # -- multi-step transactions (cold paths) ---------------------------------
    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction; committed when the block exits normally.

        BEGIN (after the writer lock), COMMIT and ROLLBACK (each followed by
        releasing the lock) run to their end even if the caller is cancelled."""
        try:
            async with self._write_locked() as tx:
                yield tx
        finally:
            self._queue_runner()  # units that waited for this transaction

    @asynccontextmanager
    async def _write_locked(self) -> AsyncIterator[Tx]:
        async with self._lock:
            conn, raw, lock = self._writer, self._writer._conn, self._writer_lock
            begin = asyncio.ensure_future(conn._execute(_begin, raw, lock))  # type: ignore[no-untyped-call]
            try:
                await asyncio.shield(begin)
            except BaseException:
                await self._finish(_rollback)  # queued after BEGIN on the writer thread
                raise
            tx = Tx(conn)
            try:
                yield tx
            except BaseException:
                # Roll back even if we are being cancelled (e.g. a deadline passed):
                # a transaction left open would block every later writer.
                await self._finish(_rollback)
                raise
            try:
                await self._finish(_commit)
            except asyncio.CancelledError:
                for hook in tx._hooks:  # the COMMIT ran to its end: mirror it, then stop
                    hook()
                raise
            for hook in tx._hooks:
                hook()

    async def _finish(self, fn: Callable[[sqlite3.Connection, WriterLock], None]) -> None:
        """Run COMMIT or ROLLBACK (then release the lock) to its end, even if cancelled."""
        conn = self._writer
        done = asyncio.ensure_future(conn._execute(fn, conn._conn, self._writer_lock))  # type: ignore[no-untyped-call]
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            await done
            raise

    # -- units of work (hot paths) --------------------------------------------
    async def read_unit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the reader's thread in one hop (last committed state)."""
        reader = self._reader
        result: T = await reader._execute(lambda: fn(reader._conn))  # type: ignore[no-untyped-call]
        return result

    async def write_unit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        after: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``fn(conn)`` inside a committed transaction (group-committed with others).

        ``after(result)`` runs after COMMIT, in commit order, before this returns.
        The unit runs to COMMIT or ROLLBACK even if the caller is cancelled.
        """
        pending = _Pending(fn, after, asyncio.get_running_loop().create_future())
        self._waiting.append(pending)
        self._queue_runner()
        # Cancelling the caller cancels only its wait: the unit is already queued
        # and runs to COMMIT or ROLLBACK; _deliver skips a future nobody awaits.
        result: T = await pending.future
        return result

    def _queue_runner(self) -> None:
        """Queue one group runner on the writer thread, unless one is queued or a
        multi-step transaction holds the writer (it queues one when it ends)."""
        if self._runner_queued or not self._waiting or self._lock.locked():
            return
        self._runner_queued = True
        loop = asyncio.get_running_loop()
        conn, lock, waiting = self._writer._conn, self._writer_lock, self._waiting

        def runner() -> None:  # on the writer thread
            group: list[_Pending] = []
            while waiting and len(group) < MAX_GROUP:
                group.append(waiting.popleft())
            try:
                results = _run_group(conn, group, lock)
            except BaseException as exc:  # the whole group failed (e.g. disk full)
                loop.call_soon_threadsafe(self._deliver, group, None, exc)
            else:
                loop.call_soon_threadsafe(self._deliver, group, results, None)

        self._writer._tx.put_nowait((None, runner))

    def _deliver(
        self,
        group: list[_Pending],
        results: list[tuple[bool, Any]] | None,
        failure: BaseException | None,
    ) -> None:
        """On the event loop: after-hooks in commit order, then wake the callers."""
        self._runner_queued = False
        try:
            if results is None:
                for unit in group:
                    if not unit.future.done():
                        unit.future.set_exception(failure or RuntimeError("write failed"))
                return
            outcomes: list[tuple[bool, Any]] = []
            for unit, (ok, value) in zip(group, results, strict=True):
                if ok and unit.after is not None:
                    try:
                        unit.after(value)
                    except Exception as exc:  # committed, but its mirror failed: say so
                        ok, value = False, exc
                outcomes.append((ok, value))
            for unit, (ok, value) in zip(group, outcomes, strict=True):
                if unit.future.done():
                    continue
                if ok:
                    unit.future.set_result(value)
                else:
                    unit.future.set_exception(value)
        finally:
            self._queue_runner()

    # -- simple reads -----------------------------------------------------------
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._reader.execute_fetchall(sql, params))
