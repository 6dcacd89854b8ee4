"""The background lease: which of a node's processes runs its background work
(docs/adr/0702).

Several ``huxin serve`` replicas may serve one region (or hub) from one
PostgreSQL database; the monthly run, objection deadlines, peer sync, the push
to the hub and the hub's trust-list schedule must run on exactly one of them at
a time.  The lease says which:

* :class:`AdvisoryLease` (PostgreSQL) is a *session-level* advisory lock,
  ``pg_try_advisory_lock(key)``, taken on a connection of its own.  The server
  releases it when that session ends, so a holder that dies (SIGKILL, a crash,
  a lost machine once its TCP session or ``idle_session_timeout`` ends) frees
  it without anyone's help, and a replica that polls :meth:`try_acquire` every
  second takes it over within seconds.
* :class:`ProcessLease` (SQLite) is always held: one ``huxin serve`` process
  owns a SQLite file (its primary lock; peer-port workers never run background
  work, docs/adr/0312).

Invariants:

* a holder learns of the loss at once when its session breaks (the connection
  waits on its socket between checks, and a closed socket ends the wait), and
  within ``check_seconds + check_timeout`` when the session hangs (a ping that
  does not answer in time counts as lost, and the connection is closed);
* the holder's own session is told to end itself after ``idle_seconds`` without
  a statement (``idle_session_timeout``, PostgreSQL 14 and later), longer than a
  holder's longest silence, so a holder that the server still believes alive but
  that cannot reach it frees the lock by itself; engines without the setting
  rely on TCP keepalives instead;
* :meth:`AdvisoryLease.watch` never raises for a database problem: it returns
  when the lease is lost, and :attr:`held` is then false;
* the lock key is derived from the lease's name; advisory locks are per database,
  so replicas of two nodes never share a lease unless they share a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from typing import Any, Final, Protocol

import psycopg

from node.core._config_storage import StorageConfig
from node.core._observe import log_event
from node.store._backend import resolve

__all__ = [
    "APPLICATION",
    "BACKGROUND",
    "AdvisoryLease",
    "Lease",
    "ProcessLease",
    "lease_for",
    "lock_key",
]

BACKGROUND: Final = "huxin/background"  # the lease of a node's background work
CHECK_SECONDS: Final = 1.0  # the holder's pause between pings of its session
CHECK_TIMEOUT: Final = 5.0  # a ping unanswered this long: the lease counts as lost
IDLE_SECONDS: Final = 10  # the server ends a holder's session silent this long
CONNECT_TIMEOUT: Final = 5  # seconds (libpq's connect_timeout; whole seconds)
APPLICATION: Final = "huxin-lease-"  # + the holder's process id: pg_stat_activity shows it


def lock_key(name: str) -> int:
    """The signed 64-bit advisory lock key of a lease name (stable across versions)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease(Protocol):
    """What :class:`node.rpc._background.BackgroundGate` needs of a lease."""

    @property
    def held(self) -> bool: ...

    async def try_acquire(self) -> bool:
        """Take the lease if it is free (never waits for it); True when held."""
        ...

    async def watch(self) -> None:
        """Return when the held lease is lost (at once if it is not held)."""
        ...

    async def release(self) -> None:
        """Give the lease up (a no-op when not held)."""
        ...


class ProcessLease:
    """SQLite: the serving process always holds its node's lease."""

    def __init__(self) -> None:
        self._released = asyncio.Event()
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        self._held = True
        self._released.clear()
        return True

    async def watch(self) -> None:
        if self._held:
            await self._released.wait()  # only release() ends a process's lease

    async def release(self) -> None:
        self._held = False
        self._released.set()


class AdvisoryLease:
    """PostgreSQL: a session-level advisory lock on a connection of its own.

    ``conninfo`` is a libpq connection string or URL without a password; the
    password, if any, was read by the caller (``[storage] password_file`` or the
    environment, :func:`node.store._backend.resolve`) and is handed to the driver only."""

    def __init__(
        self,
        conninfo: str,
        name: str = BACKGROUND,
        *,
        password: str | None = None,
        check_seconds: float = CHECK_SECONDS,
        check_timeout: float = CHECK_TIMEOUT,
        idle_seconds: int = IDLE_SECONDS,
    ) -> None:
        if check_seconds <= 0 or check_timeout <= 0:
            raise ValueError("lease check intervals must be positive")
        if idle_seconds <= check_seconds + check_timeout:
            # the server must never end a live holder's session between two pings
            raise ValueError("idle_seconds must exceed check_seconds + check_timeout")
        self._conninfo, self._password = conninfo, password
        self.name = name
        self.key = lock_key(name)
        self._check, self._timeout, self._idle = check_seconds, check_timeout, idle_seconds
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        extra: dict[str, Any] = {} if self._password is None else {"password": self._password}
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            # which process holds the lease, for the operator's pg_stat_activity
            application_name=f"{APPLICATION}{os.getpid()}",
            # the holder notices a server that went away without a word
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            **extra,
        )
        try:
            await conn.execute(f"SET idle_session_timeout = {self._idle * 1000:d}")
        except psycopg.errors.UndefinedObject:  # an engine without it: TCP keepalives only
            log_event("lease: idle_session_timeout not supported", 30, lease=self.name)
        return conn

    async def try_acquire(self) -> bool:
        """One ``pg_try_advisory_lock``; False (logged) when the database is unreachable."""
        if self._held:
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT + 1)
            cur = await asyncio.wait_for(
                self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)), self._timeout
            )
            row = await cur.fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._drop()
            log_event("lease: database unreachable", 30, lease=self.name, exc=type(exc).__name__)
            return False
        self._held = bool(row and row[0])
        return self._held

    async def watch(self) -> None:
        """Wait on the session's socket ``check_seconds`` at a time, then ping it; return
        (the connection closed, :attr:`held` false) when it broke or did not answer."""
        conn = self._conn
        while self._held and conn is not None:
            try:
                async for _ in conn.notifies(timeout=self._check):
                    pass  # nothing LISTENs; a closed socket ends the wait with an error
                await asyncio.wait_for(conn.execute("SELECT 1"), self._timeout)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log_event("lease lost", 30, lease=self.name, exc=type(exc).__name__)
                await self._drop()
                return

    async def release(self) -> None:
        """Close the session: the server frees a session-level lock with it (an unlock
        first would need the connection idle, which a cancelled :meth:`watch` may not
        have left it)."""
        await self._drop()

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


def lease_for(storage: StorageConfig) -> Lease:
    """The lease of a node stored at ``storage``: a session advisory lock on
    PostgreSQL (replicas share it), the process's own on SQLite."""
    backend = resolve(storage)
    if not backend.is_pg:
        return ProcessLease()
    return AdvisoryLease(backend.url, password=backend.password)
