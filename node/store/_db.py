"""The node's unit of work: one writer and one reader SQLite connection, each on a
thread the project owns (docs/adr/0601); on PostgreSQL one writer and a pool of
reader connections, each on a thread the project owns (docs/adr/0700).

The API, the same on both backends (``Database.open(target)``: ``[storage]``, a
``sqlite:///``/``postgresql://`` URL or a SQLite path):

* ``await db.write_unit(fn, after=None, *, quick=False)`` runs the synchronous
  ``fn(conn)`` in one committed transaction and returns its result;
  ``after(result)`` runs on the event loop after COMMIT;
* ``await db.read_unit(fn)`` runs ``fn(conn)`` on the reader connection (the
  last committed state), in one hop;
* ``await db.fetchone(sql, params)`` / ``fetchall`` are one-statement reads;
* ``await db.close()``; cross-process exclusion is :mod:`node.store._locks`.

Invariants:

* every write is a transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), rolled back
  on any exception; a caller acknowledges only after its unit has returned,
  i.e. after COMMIT; a unit runs to COMMIT or ROLLBACK even if its caller is
  cancelled;
* all writes of this process go through the one writer connection, in the
  order they were queued (FIFO); in-memory state that mirrors committed rows
  (the log's Merkle tree) is updated by ``after`` hooks that run on the event
  loop after COMMIT, in commit order, and never for a rolled-back unit;
* reads use a separate connection on its own thread, so they never see
  uncommitted writes and never hold the writer;
* every write transaction of every process serving one database (the
  primary and its peer-port workers, docs/adr/0312) first takes the exclusive
  writer lock (:class:`node.store._locks.WriterLock`) and releases it after
  COMMIT/ROLLBACK: writers queue on the kernel lock instead of polling
  SQLite's busy handler (which sleeps 1–100 ms between tries), and the log
  entry indexes taken inside a transaction stay dense across processes;
* concurrent ``write_unit`` calls are group committed: one *runner* at a time
  takes every unit waiting (up to ``MAX_GROUP``) and runs them in ONE
  transaction, each inside its own SAVEPOINT (a failing unit is rolled back
  alone and gets its exception; the others commit together; a group of one
  needs no SAVEPOINT); then the ``after`` hooks run on the event loop in
  commit order and the callers wake;
* a group of *quick* units (``quick=True``: a few statements on a few rows,
  e.g. one attestation request) runs *on the event loop thread* when the
  writer lock is free (``flock`` with ``LOCK_NB``, then ``BEGIN IMMEDIATE``
  with no SQLite busy wait): ~0.2 ms units cost less there than two thread
  hops (docs/adr/0315).  Other units (record batches, hub ingests), and quick
  ones when another process holds the lock or another SQLite connection holds
  the database's write lock, run on the writer thread, which waits for the
  lock (and SQLite's busy handler) without blocking the event loop;
* the writer connection is used by one thread at a time: the writer thread
  runs a group only while the runner flag is set for it, and the loop runs a
  group only when the flag was set for the loop (ADRs 0303, 0310, 0312, 0315);
* a runner that fails for any reason fails its group's callers and clears the
  runner flag (no later unit waits behind it); after :meth:`Database.close`
  starts, new units are refused at once with ``RuntimeError("the database is
  closed")`` and queued ones commit first;
* WAL checkpoints of the loop's commits run off the loop (docs/adr/0317).

On PostgreSQL (docs/adr/0700) the same invariants hold with these differences:
every group runs on the writer thread (nothing touches the network on the event
loop thread, quick or not); ``BEGIN`` instead of ``BEGIN IMMEDIATE``, no writer
lock file (row locks order the writers of every replica) and no checkpointer;
reads run on a :class:`node.store._threads.ConnectionPool` of ``readers``
threads, concurrently; a lost connection fails the units of its group with
:class:`node.store.StorageUnavailable` and the next group reconnects.

The threads are :class:`node.store._threads.ConnectionThread`: a single-worker
executor each, results delivered to the loop with ``asyncio.wrap_future`` or
``loop.call_soon_threadsafe``; no other library owns a connection or a thread
(tests/unit/node/test_db.py, test_db_processes.py).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from node.core._config_storage import StorageConfig
from node.store._backend import Backend, resolve
from node.store._checkpoint import CHECKPOINT_EVERY, RESTART_FRAMES, Checkpointer
from node.store._dense import lock_dense_indexes
from node.store._locks import WriterLock
from node.store._migrate import BUSY_TIMEOUT_MS, connect
from node.store._threads import ConnectionPool, ConnectionThread

__all__ = ["Database"]

T = TypeVar("T")
MAX_GROUP = 64  # units per transaction: bounds how long one group holds the event loop
MAX_THREAD_GROUP = 256  # units per transaction on the writer thread
CLOSE_DRAIN_S = 10.0  # how long close() lets queued units commit
THREAD_AUTOCHECKPOINT = 1000  # SQLite's default, for COMMITs on the writer thread
PG_READERS = 4  # PostgreSQL reader threads: reads run concurrently (docs/adr/0700)


class _Pending:
    """A queued unit.  ``dropped`` is set on the loop when a caller that asked for it
    (``drop_if_cancelled``) is cancelled; a runner that has not started the unit yet
    skips it (a unit already running runs to its end, like a COMMIT in flight)."""

    __slots__ = ("after", "dropped", "fn", "future", "quick")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        after: Callable[[Any], None] | None,
        future: asyncio.Future[Any],
        quick: bool,
    ) -> None:
        self.fn, self.after, self.future, self.quick = fn, after, future, quick
        self.dropped = False


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


def _run_group_pg(conn: sqlite3.Connection, units: list[_Pending]) -> list[tuple[bool, Any]]:
    """The PostgreSQL runner (writer thread only): BEGIN, the dense-index lock, the
    units, COMMIT.  The lock first orders the writers of all replicas in one place,
    so no two of them wait for each other's rows (docs/adr/0702); no file lock, no
    checkpoint (ADR 0700)."""
    conn.execute("BEGIN")
    try:
        lock_dense_indexes(conn)
    except BaseException:  # e.g. the connection lost: end the transaction as _run_begun does
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return _run_begun(conn, units)


def _run_begun(conn: sqlite3.Connection, units: list[_Pending]) -> list[tuple[bool, Any]]:
    """Inside ``BEGIN IMMEDIATE``: all units, one SAVEPOINT each (a group of one
    needs none: its failure rolls back the whole transaction), then COMMIT."""
    out: list[tuple[bool, Any]] = []
    try:
        if len(units) == 1:
            if units[0].dropped:
                conn.execute("ROLLBACK")
                return [(False, asyncio.CancelledError())]
            try:
                result = units[0].fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK")
                return [(False, exc)]
            conn.execute("COMMIT")
            return [(True, result)]
        for unit in units:
            if unit.dropped:
                out.append((False, asyncio.CancelledError()))
                continue
            conn.execute("SAVEPOINT unit")
            try:
                result = unit.fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                out.append((False, exc))
            else:
                try:
                    conn.execute("RELEASE unit")
                except Exception as exc:  # PostgreSQL: the unit swallowed a failed statement
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    out.append((False, exc))
                else:
                    out.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


class _NoCheckpoints:
    """PostgreSQL checkpoints itself: the Checkpointer's place, doing nothing."""

    def committed(self) -> None:
        pass

    async def settled(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Database:
    """Writer + reader connections to one node database (SQLite file or PostgreSQL)."""

    def __init__(
        self,
        writer: ConnectionThread,
        reader: ConnectionThread | ConnectionPool,
        lock: WriterLock | None,
        checkpointer: Checkpointer | _NoCheckpoints,
        *,
        busy_ms: int = BUSY_TIMEOUT_MS,
        dialect: str = "sqlite",
    ) -> None:
        self._writer = writer  # SQLite: its connection is also used on the loop (quick groups)
        self._reader = reader
        self._writer_lock = lock  # SQLite only (None on PostgreSQL)
        self._checkpointer = checkpointer  # WAL checkpoints off the loop (ADR 0317)
        self.dialect = dialect  # "sqlite" or "postgresql"
        self._busy_ms = busy_ms  # SQLite busy wait of the thread paths
        self._closed = False
        self._waiting: collections.deque[_Pending] = collections.deque()  # units, FIFO
        self._runner_queued = False

    @classmethod
    async def open(
        cls,
        path: StorageConfig | str | Path,
        *,
        busy_ms: int = BUSY_TIMEOUT_MS,
        checkpoint_every: int = CHECKPOINT_EVERY,
        restart_frames: int = RESTART_FRAMES,
        readers: int | None = None,
    ) -> Database:
        """Open (and migrate, on the writer thread) the database.

        ``path`` is a storage target (``[storage]``, a ``sqlite:///`` or
        ``postgresql://`` URL, or a SQLite path).  SQLite: ``busy_ms`` is how long a
        write on the writer thread waits for a SQLite connection that is not one of
        ours (e.g. a batch job) to release the write lock; ``checkpoint_every`` and
        ``restart_frames``: see :mod:`node.store._checkpoint`.  PostgreSQL:
        ``readers`` reader threads, each with its own connection (default:
        ``[storage] readers`` when ``path`` is ``[storage]``, else :data:`PG_READERS`)."""
        backend = resolve(path)
        if backend.is_pg:
            if readers is None:
                readers = path.readers if isinstance(path, StorageConfig) else PG_READERS
            return await cls._open_pg(backend, readers)
        assert backend.path is not None
        path = backend.path
        async with contextlib.AsyncExitStack() as opened:  # closes all if one step fails
            writer = ConnectionThread("huxin-db-writer")
            opened.push_async_callback(writer.close)
            await writer.open(lambda: _open_writer(path))
            own_lock = WriterLock(path)
            opened.callback(own_lock.close)
            checkpointer = await Checkpointer.open(
                path, own_lock, every=checkpoint_every, restart_frames=restart_frames
            )
            opened.push_async_callback(checkpointer.close)
            reader = ConnectionThread("huxin-db-reader")
            opened.push_async_callback(reader.close)
            await reader.open(lambda: _open_reader(path))
            db = cls(writer, reader, WriterLock(path), checkpointer, busy_ms=busy_ms)
            opened.pop_all()  # opened: the database owns them now
        return db

    @classmethod
    async def _open_pg(cls, backend: Backend, readers: int) -> Database:
        """PostgreSQL: a writer thread (migrating at open) and a pool of readers."""
        from node.store._pg import PgConnection
        from node.store._pg_migrate import connect_pg

        async with contextlib.AsyncExitStack() as opened:
            writer = ConnectionThread("huxin-pg-writer")
            opened.push_async_callback(writer.close)
            await writer.open(lambda: connect_pg(backend))
            pool = ConnectionPool(
                "huxin-pg-reader",
                readers,
                lambda: PgConnection(backend.url, password=backend.password, reader=True),
            )
            opened.push_async_callback(pool.close)
            await pool.call(_fetchone, "SELECT 1", ())  # reachable now, not at the first read
            db = cls(writer, pool, None, _NoCheckpoints(), dialect="postgresql")
            opened.pop_all()
        return db

    async def close(self) -> None:
        """Let queued units commit (up to ``CLOSE_DRAIN_S``), fail any left, close.

        The writer connection closes on its thread after any group still queued
        there (a runner waiting for another process's lock finishes first)."""
        self._closed = True  # new units are refused from now on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_DRAIN_S
        while (self._waiting or self._runner_queued) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        while self._waiting:
            unit = self._waiting.popleft()
            if not unit.future.done():
                unit.future.set_exception(RuntimeError("the database was closed"))
        try:
            await self._writer.close()
            await self._reader.close()
            await self._checkpointer.close()
        finally:
            if self._writer_lock is not None:
                self._writer_lock.close()

    # -- units of work ----------------------------------------------------------
    async def read_unit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the reader's thread in one hop (last committed state)."""
        return await self._reader.call(fn)

    async def write_unit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        after: Callable[[T], None] | None = None,
        *,
        quick: bool = False,
        drop_if_cancelled: bool = False,
    ) -> T:
        """Run ``fn(conn)`` inside a committed transaction (group-committed with others).

        ``after(result)`` runs after COMMIT, in commit order, before this returns.
        The unit runs to COMMIT or ROLLBACK even if the caller is cancelled --
        unless ``drop_if_cancelled``: then a caller cancelled while its unit still
        waits (e.g. a gRPC deadline passed while another process held the writer)
        gets nothing written; a unit already running still runs to its end.
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
        # and runs to COMMIT or ROLLBACK (or, if asked, is skipped when its turn
        # comes); _deliver skips a future nobody awaits.
        try:
            result: T = await pending.future
        except asyncio.CancelledError:
            pending.dropped = drop_if_cancelled
            raise
        return result

    def _queue_runner(self) -> None:
        """Schedule one group runner, unless one is scheduled (its delivery
        schedules the next).  The loop runner is called soon, after the callbacks
        already ready: units that arrive in the same loop iteration join one group."""
        if self._runner_queued or not self._waiting:
            return
        self._runner_queued = True
        if self._waiting[0].quick and self._writer_lock is not None:  # never on PG's loop
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
        if not self._waiting:
            self._runner_queued = False
            return
        lock, conn = self._writer_lock, self._writer.conn
        if conn is None or lock is None:
            raise RuntimeError("the database is closed")
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
        lock, busy_ms = self._writer_lock, self._busy_ms

        def runner(conn: sqlite3.Connection) -> None:  # on the writer thread
            group = self._take_group(quick_only=False)
            # a group of quick units that waited for another process leaves the
            # checkpoint to the checkpointer, as on the loop (ADR 0317)
            batch = not all(u.quick for u in group)
            try:
                if lock is None:  # PostgreSQL
                    results = _run_group_pg(conn, group)
                else:
                    results = _run_group(conn, group, lock, busy_ms, batch)
            except BaseException as exc:  # the whole group failed (e.g. disk full)
                loop.call_soon_threadsafe(self._deliver, group, None, exc)
            else:
                loop.call_soon_threadsafe(self._deliver, group, results, None)

        # never awaited: the runner reports through call_soon_threadsafe, and a
        # job that failed to start (the connection closed) fails its group here
        job = self._writer.submit(runner)
        job.add_done_callback(lambda done: self._runner_lost(loop, done))

    def _runner_lost(
        self, loop: asyncio.AbstractEventLoop, job: concurrent.futures.Future[None]
    ) -> None:
        """On the writer thread: the runner raised before taking its group (no
        connection): hand the head of the queue its error on the loop."""
        exc = job.exception() if not job.cancelled() else RuntimeError("write cancelled")
        if exc is not None:
            loop.call_soon_threadsafe(self._fail_head, exc)

    def _fail_head(self, exc: BaseException) -> None:
        self._deliver(self._take_group(quick_only=False), None, exc)

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
        return await self._reader.call(_fetchone, sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._reader.call(_fetchall, sql, params)


def _fetchone(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _open_writer(path: str | Path) -> sqlite3.Connection:
    """On the writer thread: open and migrate; used on the loop too (quick groups)."""
    conn = connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 0")  # the loop never waits in SQLite
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer does it
    except BaseException:
        conn.close()
        raise
    return conn


def _open_reader(path: str | Path) -> sqlite3.Connection:
    """On the reader thread: autocommit, foreign keys on, SQLite's busy wait."""
    conn = sqlite3.connect(Path(path), isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    except BaseException:
        conn.close()
        raise
    return conn
