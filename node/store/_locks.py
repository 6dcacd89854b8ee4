"""The locks of one node database, across processes (``flock`` on files beside it).

Invariants:

* :class:`WriterLock` (``<database>.writer-lock``, exclusive) is held by every
  write transaction of every process serving or writing the database, from
  before ``BEGIN IMMEDIATE`` until after COMMIT/ROLLBACK (docs/adr/0312):
  writers queue on the kernel lock, never in SQLite's busy handler, and the
  dense indexes taken inside a transaction (log entries, status entries) stay
  dense across processes;
* :class:`JobLock` (``<database>.job-lock``) is held SHARED by an offline job
  for its whole run and EXCLUSIVELY by a restore, so a job's writes never land
  in a file that restore moved aside;
* each instance opens its own file description, so two instances in one
  process exclude each other as two processes would; closing the only
  descriptor releases the lock, and ``close`` is idempotent.

Rooms outside :mod:`node.store` never see these files: they use
:func:`offline_job`, :func:`writer_turn` and :func:`exclusive_writer`, which take a
storage target (``[storage]``, a URL or a SQLite path).  On PostgreSQL
(docs/adr/0700) there are no lock files:

* :func:`offline_job` is a no-op: nothing of Huxin moves a PostgreSQL database
  aside (``huxin backup restore`` is SQLite's; PostgreSQL is restored with its
  own tools while the node is stopped);
* :func:`writer_turn` hands out a turn that does nothing: PostgreSQL's row locks
  order concurrent writers of every process, and no writer waits in a busy loop;
* :func:`exclusive_writer` holds the session advisory lock named
  :data:`EXCLUSIVE_LOCK` (``pg_advisory_lock``, its key scoped to the session's
  database and schema, :func:`node.store._lease.scoped_key_sql`) for the block, on a connection of its own: it excludes
  the other holders of that lock only (two ``exclusive_writer`` blocks, e.g. two
  maintenance jobs), not the node's ordinary writers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

from node.core._config_storage import StorageConfig
from node.store._backend import resolve
from node.store._lease import scoped_key_sql

__all__ = [
    "EXCLUSIVE_LOCK",
    "JobLock",
    "WriterLock",
    "WriterTurn",
    "exclusive_writer",
    "offline_job",
    "writer_turn",
]


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


# What callers outside the store hold: ``with turn:`` around one write transaction.
WriterTurn: TypeAlias = contextlib.AbstractContextManager[Any]
Target: TypeAlias = StorageConfig | str | Path

EXCLUSIVE_LOCK = "huxin/exclusive-writer"  # its key is per database and schema


class _FreeTurn:
    """PostgreSQL's writer turn: row locks order the writers, nothing to take."""

    def acquire(self) -> None:
        pass

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> _FreeTurn:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@contextlib.contextmanager
def offline_job(database: Target) -> Iterator[None]:
    """For the whole block, an offline job runs on ``database`` (``huxin score run``,
    ``publish``, the monthly scheduler): a restore waits, or refuses, meanwhile
    (SQLite; a no-op on PostgreSQL, see the module doc)."""
    backend = resolve(database)
    if backend.is_pg:
        yield
        return
    assert backend.path is not None
    with JobLock(backend.path):
        yield


@contextlib.contextmanager
def writer_turn(database: Target) -> Iterator[WriterLock | _FreeTurn]:
    """A handle on ``database``'s cross-process writer turn, released at the end of
    the block: ``with turn:`` (or ``acquire``/``release``) takes it around one write
    transaction, waiting for every other writer of every process (SQLite; a turn
    that does nothing on PostgreSQL, see the module doc)."""
    backend = resolve(database)
    if backend.is_pg:
        yield _FreeTurn()
        return
    assert backend.path is not None
    lock = WriterLock(backend.path)
    try:
        yield lock
    finally:
        lock.close()


@contextlib.contextmanager
def exclusive_writer(database: Target) -> Iterator[None]:
    """Hold ``database``'s writer turn for the whole block: no other writer of any
    process commits meanwhile (SQLite); on PostgreSQL the advisory lock
    :data:`EXCLUSIVE_LOCK` (see the module doc)."""
    backend = resolve(database)
    if backend.is_pg:
        from node.store._pg import PgConnection  # psycopg only when PostgreSQL is used

        conn = PgConnection(backend.url, password=backend.password)
        try:
            row = conn.execute(f"SELECT {scoped_key_sql('?')}", (EXCLUSIVE_LOCK,)).fetchone()
            key = int(row[0])
            conn.execute("SELECT pg_advisory_lock(?)", (key,))
            try:
                yield
            finally:
                # released now, not when the server notices the closed session
                conn.execute("SELECT pg_advisory_unlock(?)", (key,))
        finally:
            conn.close()  # a lost session has released its locks anyway
        return
    with writer_turn(database) as turn, turn:
        yield
