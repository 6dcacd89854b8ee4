"""A SQLite connection on a thread of its own, awaited from the event loop.

The node's database handle (:mod:`node.store._db`) and its checkpointer
(:mod:`node.store._checkpoint`) each own such threads: the writer's, the
reader's and the checkpointer's.  One :class:`ConnectionThread` is a
single-worker :class:`concurrent.futures.ThreadPoolExecutor` plus the one
``sqlite3`` connection it opened.

Invariants:

* jobs run on the thread one at a time, in the order they were submitted
  (one worker, one FIFO queue), so a job queued after another sees its effects;
* every job receives the connection as its first argument; the connection is
  opened by a job on this thread and closed by the last job on it, so a
  connection opened with ``check_same_thread=True`` is never used elsewhere
  (the writer's is opened with ``check_same_thread=False``, because groups of
  quick units also run on the event loop thread, docs/adr/0315);
* :meth:`ConnectionThread.call` awaits its job with :func:`asyncio.wrap_future`:
  cancelling the caller drops a job that has not started and leaves one that
  has to run to its end on the thread (a read, so nothing is half done); jobs
  that must run whatever happens (the writer's group runner, closing) are
  queued with :meth:`ConnectionThread.submit` and never cancelled;
* :meth:`ConnectionThread.close` is idempotent and runs after every job
  already queued; afterwards the thread ends and new jobs are refused
  (``RuntimeError`` from the executor).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ConnectionPool", "ConnectionThread"]

T = TypeVar("T")


class ConnectionThread:
    """One thread and the ``sqlite3`` connection it owns."""

    __slots__ = ("_closed", "_pool", "conn")

    def __init__(self, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None
        self._closed = False

    async def open(self, opener: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
        """Open the connection on the thread (a migration may take a while: never on
        the loop) and keep it for every later job."""
        conn = await asyncio.wrap_future(self._pool.submit(opener))
        self.conn = conn
        return conn

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn(conn, *args)`` on the thread; returns its future at once."""
        return self._pool.submit(self._with_conn, fn, args)

    def _with_conn(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self.conn
        if conn is None:
            raise RuntimeError("the database is closed")
        return fn(conn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the thread and return its result."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _close_conn(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        """Close the connection after every queued job, on its own thread; end the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            # shielded: a cancelled caller must not drop the close of the connection
            await asyncio.shield(asyncio.wrap_future(self._pool.submit(self._close_conn)))
        finally:
            self._pool.shutdown(wait=False)


class ConnectionPool:
    """A few threads, each with a connection of its own, sharing one FIFO queue of jobs
    (PostgreSQL's readers, docs/adr/0700: reads run concurrently, as many as threads).

    Invariants: a job runs on whichever thread is free, with that thread's
    connection, opened by ``opener`` on the thread at its first job (a failed open
    fails that job and is tried again by the next); jobs are never run on the event
    loop; :meth:`close` waits for the jobs already queued, then closes every
    connection and ends the threads; afterwards new jobs are refused
    (``RuntimeError``)."""

    __slots__ = ("_closed", "_conns", "_guard", "_local", "_opener", "_pool")

    def __init__(self, name: str, size: int, opener: Callable[[], Any]) -> None:
        if size < 1:
            raise ValueError("a connection pool needs at least one thread")
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=size, thread_name_prefix=name
        )
        self._opener = opener
        self._local = threading.local()
        self._conns: list[Any] = []
        self._guard = threading.Lock()
        self._closed = False

    def _with_conn(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._opener()
            self._local.conn = conn
            with self._guard:
                self._conns.append(conn)
        return fn(conn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self._pool.submit(self._with_conn, fn, args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on a free thread of the pool and return its result."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _close_all(self) -> None:
        self._pool.shutdown(wait=True)  # every queued job first
        with self._guard:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    async def close(self) -> None:
        """Wait for the queued jobs, close every connection (off the loop); idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.shield(asyncio.to_thread(self._close_all))
