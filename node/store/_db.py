"""The node's database handle: one writer and one reader aiosqlite connection.

Invariants:

* every write is a transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), rolled back
  on any exception; a caller acknowledges only after its write has returned,
  i.e. after COMMIT;
* all writes of this process go through the one writer connection, in the
  order they were queued: a multi-step transaction (:meth:`write`) holds an
  asyncio lock from BEGIN until its COMMIT/ROLLBACK has run on the writer
  thread, however often its caller is cancelled, and a group of units runs
  only while that lock is free, so a group never runs inside another
  transaction; in-memory state that mirrors committed rows (the log's Merkle
  tree) is updated by hooks that run on the event loop after COMMIT, in commit
  order, and never for a rolled-back transaction;
* reads use a separate connection, so they never see uncommitted writes;
* every write transaction of every process serving one database (the
  primary and its peer-port workers, docs/adr/0312) first takes an exclusive
  ``flock`` on ``<database>.writer-lock`` and releases it after
  COMMIT/ROLLBACK: writers queue on the kernel lock instead of polling
  SQLite's busy handler (which sleeps 1–100 ms between tries), and the log
  entry indexes taken inside a transaction stay dense across processes;
* hot paths run a *unit of work*: a synchronous function run in one piece,
  never a chain of per-row awaits.  Concurrent ``write_unit`` calls are group
  committed: one *runner* at a time takes every unit waiting (up to
  ``MAX_GROUP``) and runs them in ONE transaction, each inside its own
  SAVEPOINT (a failing unit is rolled back alone and gets its exception; the
  others commit together; a group of one needs no SAVEPOINT); then the
  ``after`` hooks run on the event loop in commit order and the callers wake;
* a group of *quick* units (``write_unit(..., quick=True)``: a few statements
  on a few rows, e.g. one attestation request) runs *on the event loop
  thread* when the writer lock is free (``flock`` with ``LOCK_NB``, then
  ``BEGIN IMMEDIATE`` with no SQLite busy wait): ~0.2 ms units cost less there
  than two thread hops (docs/adr/0315).  Other units (record batches, hub
  ingests), and quick ones when another process holds the lock or another
  SQLite connection holds the database's write lock, run on the writer
  connection's aiosqlite thread, which waits for the lock (and SQLite's busy
  handler) without blocking the event loop; the queue stays FIFO;
* the writer connection is used by one thread at a time: its aiosqlite
  thread runs jobs only while a multi-step transaction holds ``_lock`` or the
  runner flag is set for a thread runner, and the loop runs a group only when
  neither is the case (ADRs 0303, 0310, 0312, 0315);
* a runner that fails for any reason fails its group's callers and clears the
  runner flag (no later unit waits behind it); after :meth:`close` starts,
  new units are refused at once and queued ones commit first.

aiosqlite owns the connections and their threads (DESIGN.md); running a
function on that thread uses ``aiosqlite.Connection._execute`` (and, for the
thread runner, which needs no reply future, the connection's queue ``_tx``);
the writer is opened with ``check_same_thread=False`` so the loop may run
groups on it.  Both are wrapped only here and covered by tests
(tests/unit/node/test_db.py, test_db_processes.py).
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

from node.store import BUSY_TIMEOUT_MS, connect_async
from node.store._checkpoint import CHECKPOINT_EVERY, RESTART_FRAMES, Checkpointer

__all__ = [
    "Database",
    "JobLock",
    "Tx",
]

T = TypeVar("T")
MAX_GROUP = 64  # units per transaction: bounds how long one group holds the event loop
MAX_THREAD_GROUP = 256  # units per transaction on the writer thread
CLOSE_DRAIN_S = 10.0  # how long close() lets queued units commit
THREAD_AUTOCHECKPOINT = 1000  # SQLite's default, for COMMITs on the writer thread


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
    __slots__ = ("after", "fn", "future", "quick")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        after: Callable[[Any], None] | None,
        future: asyncio.Future[Any],
        quick: bool,
    ) -> None:
        self.fn, self.after, self.future, self.quick = fn, after, future, quick


class WriterLock:
    """The cross-process writer lock of one database file (``<db>.writer-lock``);
    ``with lock:`` holds it for a block (waiting for it first)."""

    __slots__ = ("_fd",)

    def __init__(self, database: str | Path) -> None:
        self._fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now (never waits)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (idempotent: a second call never closes a reused fd)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class JobLock:
    """Held SHARED by an offline job on a node's database (``huxin score run`` /
    ``publish``) for its whole run (``<db>.job-lock``); ``huxin backup restore`` takes
    it exclusively and refuses while any job holds it, so a job's later writes can
    never land in a file restore moved aside."""

    __slots__ = ("_fd",)

    def __init__(self, database: str | Path) -> None:
        self._fd = os.open(f"{database}.job-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def hold(self) -> JobLock:
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits only while a restore runs
        return self

    def close(self) -> None:
        """Release (closing the only fd releases the lock); idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> JobLock:
        return self.hold()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _begin_waiting(
    conn: sqlite3.Connection, busy_ms: int, checkpoint_in_commit: bool = True
) -> None:
    """BEGIN IMMEDIATE on the writer thread, waiting up to ``busy_ms`` for another
    SQLite connection's write lock (the loop's BEGIN never waits: busy_timeout 0).
    A batch on the writer thread checkpoints the WAL in its COMMIT as SQLite does
    by default; quick groups (on the loop or here) never do (ADR 0317)."""
    conn.execute(f"PRAGMA busy_timeout = {busy_ms:d}")
    if checkpoint_in_commit:
        conn.execute(f"PRAGMA wal_autocheckpoint = {THREAD_AUTOCHECKPOINT:d}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        _loop_mode(conn)
        raise
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _loop_mode(conn: sqlite3.Connection) -> None:
    """After a writer-thread transaction: no checkpoint in a COMMIT run on the loop."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")


def _begin(conn: sqlite3.Connection, lock: WriterLock, busy_ms: int) -> None:
    lock.acquire()
    try:
        _begin_waiting(conn, busy_ms)
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
        try:
            _loop_mode(conn)
        finally:
            lock.release()


def _rollback(conn: sqlite3.Connection, lock: WriterLock) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        try:
            _loop_mode(conn)
        finally:
            lock.release()


def _run_group(
    conn: sqlite3.Connection,
    units: list[_Pending],
    lock: WriterLock,
    busy_ms: int,
    checkpoint_in_commit: bool,
) -> list[tuple[bool, Any]]:
    """The thread runner: waits for the writer lock, then runs the group."""
    with lock:
        _begin_waiting(conn, busy_ms, checkpoint_in_commit)
        try:
            return _run_begun(conn, units)
        finally:
            _loop_mode(conn)


def _run_begun(conn: sqlite3.Connection, units: list[_Pending]) -> list[tuple[bool, Any]]:
    """Inside ``BEGIN IMMEDIATE``: all units, one SAVEPOINT each (a group of one
    needs none: its failure rolls back the whole transaction), then COMMIT."""
    out: list[tuple[bool, Any]] = []
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


async def _settle(job: asyncio.Future[Any]) -> Any:
    """Await a writer-thread job to its very end, however often the caller is
    cancelled meanwhile; then raise the job's own error, else the cancellation,
    else return its result (so nobody acts before a COMMIT/ROLLBACK has run)."""
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
        except BaseException:  # noqa: S110 - the job's own failure, raised below
            pass
    if job.cancelled():
        raise asyncio.CancelledError
    exc = job.exception()
    if exc is not None:
        raise exc
    if cancelled:
        raise asyncio.CancelledError
    return job.result()


class Database:
    """Writer + reader connections to one node SQLite file."""

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        lock: WriterLock,
        checkpointer: Checkpointer,
        *,
        busy_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._writer_lock = lock
        self._checkpointer = checkpointer  # WAL checkpoints off the loop (ADR 0317)
        self._busy_ms = busy_ms  # SQLite busy wait of the thread paths
        self._closed = False
        self._lock = asyncio.Lock()  # held by a multi-step write() transaction
        self._waiting: collections.deque[_Pending] = collections.deque()  # units, FIFO
        self._runner_queued = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        busy_ms: int = BUSY_TIMEOUT_MS,
        checkpoint_every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
    ) -> Database:
        """Open (and migrate) the database.  ``busy_ms``: how long a write on the
        writer thread waits for a SQLite connection that is not one of ours
        (e.g. a batch job) to release the write lock; ``checkpoint_every`` and
        ``restart_frames``: see :mod:`node.store._checkpoint`."""
        async with contextlib.AsyncExitStack() as opened:  # closes all if one step fails
            writer = await connect_async(path, check_same_thread=False)
            opened.push_async_callback(writer.close)
            await writer.execute("PRAGMA busy_timeout = 0")  # the loop never waits in SQLite
            await writer.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer does it
            own_lock = WriterLock(path)
            opened.callback(own_lock.close)
            checkpointer = await Checkpointer.open(
                path, own_lock, every=checkpoint_every, restart_frames=restart_frames
            )
            opened.push_async_callback(checkpointer.close)
            reader = await aiosqlite.connect(Path(path), isolation_level=None)
            opened.push_async_callback(reader.close)
            await reader.execute("PRAGMA foreign_keys = ON")
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            db = cls(writer, reader, WriterLock(path), checkpointer, busy_ms=busy_ms)
            opened.pop_all()  # opened: the database owns them now
        return db

    async def close(self) -> None:
        """Let queued units commit (up to ``CLOSE_DRAIN_S``), fail any left, close."""
        self._closed = True  # new units are refused from now on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_DRAIN_S
        while (self._waiting or self._runner_queued) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        while self._waiting:
            unit = self._waiting.popleft()
            if not unit.future.done():
                unit.future.set_exception(RuntimeError("the database was closed"))
        async with self._lock:
            await self._writer.close()
        await self._reader.close()
        await self._checkpointer.close()
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
            begin = asyncio.ensure_future(conn._execute(_begin, raw, lock, self._busy_ms))  # type: ignore[no-untyped-call]
            try:
                await _settle(begin)
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
                # _finish raises the COMMIT's own error if it failed: this one
                # ran to its end, so mirror it, then stop
                for hook in tx._hooks:
                    hook()
                raise
            for hook in tx._hooks:
                hook()

    async def _finish(self, fn: Callable[[sqlite3.Connection, WriterLock], None]) -> None:
        """Run COMMIT or ROLLBACK (then release the lock) to its end, even if cancelled
        (any number of times): ``_lock`` is held until the job has run."""
        conn = self._writer
        done = asyncio.ensure_future(conn._execute(fn, conn._conn, self._writer_lock))  # type: ignore[no-untyped-call]
        await _settle(done)

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
        *,
        quick: bool = False,
    ) -> T:
        """Run ``fn(conn)`` inside a committed transaction (group-committed with others).

        ``after(result)`` runs after COMMIT, in commit order, before this returns.
        The unit runs to COMMIT or ROLLBACK even if the caller is cancelled.
        ``quick=True`` says the unit is short and bounded (a few statements on a
        few rows, no scans or batches): it may run on the event loop thread.
        Every other unit runs on the writer thread, so a record batch or a hub
        ingest never holds the loop.
        """
        if self._closed:
            raise RuntimeError("the database is closed")
        pending = _Pending(fn, after, asyncio.get_running_loop().create_future(), quick)
        self._waiting.append(pending)
        self._queue_runner()
        # Cancelling the caller cancels only its wait: the unit is already queued
        # and runs to COMMIT or ROLLBACK; _deliver skips a future nobody awaits.
        result: T = await pending.future
        return result

    def _queue_runner(self) -> None:
        """Schedule one group runner, unless one is scheduled or a multi-step
        transaction holds the writer (it schedules one when it ends).  The loop
        runner is called soon, after the callbacks already ready: units that
        arrive in the same loop iteration join one group."""
        if self._runner_queued or not self._waiting or self._lock.locked():
            return
        self._runner_queued = True
        if self._waiting[0].quick:
            asyncio.get_running_loop().call_soon(self._run_on_loop)
        else:
            self._run_on_thread()

    def _take_group(self, quick_only: bool) -> list[_Pending]:
        """Units from the head of the queue, FIFO: on the loop only quick ones."""
        waiting = self._waiting
        group: list[_Pending] = []
        most = MAX_GROUP if quick_only else MAX_THREAD_GROUP
        while waiting and len(group) < most and (waiting[0].quick or not quick_only):
            group.append(waiting.popleft())
        return group

    def _run_on_loop(self) -> None:
        """The group on the event loop thread if nobody else is writing, else on
        the writer thread.  Never waits: no blocking flock, no SQLite busy wait.
        Whatever goes wrong, the queued group gets the error and the runner flag
        is cleared: no later unit can hang behind a runner that never ran."""
        try:
            self._try_on_loop()
        except Exception as exc:  # e.g. flock failed, database unreadable or closed
            self._deliver(self._take_group(quick_only=False), None, exc)

    def _try_on_loop(self) -> None:
        if self._lock.locked() or not self._waiting:
            self._runner_queued = False  # the transaction's end schedules a runner
            return
        lock, conn = self._writer_lock, self._writer._conn
        if not self._waiting[0].quick or conn.in_transaction:
            # a batch at the head, or (never expected) a thread job still open:
            # queue behind it on the writer thread, never touch the lock here
            self._run_on_thread()
            return
        if not lock.try_acquire():  # another process is writing
            self._run_on_thread()
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # a connection not ours (batch job) writes
            lock.release()
            self._run_on_thread()
            return
        except BaseException:
            lock.release()
            raise
        group = self._take_group(quick_only=True)
        try:
            results = _run_begun(conn, group)
        except BaseException as exc:  # the whole group failed (e.g. disk full)
            lock.release()
            self._deliver(group, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        lock.release()
        self._deliver(group, results, None)

    def _run_on_thread(self) -> None:
        """Queue the runner on the writer thread (the runner flag stays set)."""
        loop = asyncio.get_running_loop()
        conn, lock, busy_ms = self._writer._conn, self._writer_lock, self._busy_ms

        def runner() -> None:  # on the writer thread
            group = self._take_group(quick_only=False)
            # a group of quick units that waited for another process leaves the
            # checkpoint to the checkpointer, as on the loop (ADR 0317)
            batch = not all(u.quick for u in group)
            try:
                results = _run_group(conn, group, lock, busy_ms, batch)
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
            if all(unit.quick for unit in group):
                self._checkpointer.committed()  # batches checkpointed in their COMMIT
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
