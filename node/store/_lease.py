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
  get no such guarantee: the server's own TCP keepalives and
  ``tcp_user_timeout`` are set on the lease session (server-side settings; the
  client's libpq keepalives only tell the holder, never free the server's
  session), so a peer that vanished is dropped within about 10 s;
* every ping checks that the session is still the backend that took the lock
  (``pg_backend_pid()`` recorded at acquisition) and that this backend still
  holds it in ``pg_locks``: a new backend (a restart the socket did not report,
  a transaction-mode pooler handing out another server session) is a lost lease;
  an acquisition on a backend that already holds the lock (a pooler sharing one
  server session between two clients, where ``pg_try_advisory_lock`` is
  re-entrant) is refused;
* the server frees the lock the moment the session ends, which may be before the
  holder notices; background work that must never overlap a successor runs
  :meth:`LeaseFence.check` inside its write transaction: it raises
  :class:`LeaseLost` (rolling the transaction back) unless the recorded backend
  still holds the lock at that moment;
* :meth:`AdvisoryLease.watch` never raises for a database problem: it returns
  when the lease is lost, and :attr:`held` is then false;
* the lock key is derived from the lease's name AND the session's database and
  schema (:func:`scoped_key_sql`): advisory locks are per database, and two
  nodes in one database with a schema each (``search_path``) must not share a
  lease, a dense-index lock or a maintenance lock.
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
    "LeaseFence",
    "LeaseLost",
    "ProcessLease",
    "lease_for",
    "lock_key",
    "scoped_key_sql",
]

BACKGROUND: Final = "huxin/background"  # the lease of a node's background work
CHECK_SECONDS: Final = 1.0  # the holder's pause between pings of its session
CHECK_TIMEOUT: Final = 5.0  # a ping unanswered this long: the lease counts as lost
IDLE_SECONDS: Final = 10  # the server ends a holder's session silent this long
CONNECT_TIMEOUT: Final = 5  # seconds (libpq's connect_timeout; whole seconds)
APPLICATION: Final = "huxin-lease-"  # + the holder's process id: pg_stat_activity shows it


def lock_key(name: str, database: str = "", schema: str = "") -> int:
    """The signed 64-bit advisory lock key of a lock name in one database and schema
    (stable across versions): the first 8 bytes of SHA-256 of
    ``"<database>/<schema>/<name>"``, exactly what :func:`scoped_key_sql` computes
    in the session."""
    digest = hashlib.sha256(f"{database}/{schema}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def scoped_key_sql(placeholder: str) -> str:
    """A SQL expression of the advisory key of the lock named by ``placeholder`` (the
    driver's parameter marker, ``%s`` or ``?``) in the session's database and schema.

    ``current_schema()`` is NULL when no schema of the search_path exists; the
    ``coalesce`` keeps the key defined (a NULL key would lock nothing)."""
    scope = f"current_database() || '/' || coalesce(current_schema(), '') || '/' || {placeholder}"
    return f"('x' || left(encode(sha256(convert_to({scope}, 'UTF8')), 'hex'), 16))::bit(64)::bigint"


# Held by backend ``pid``: a bigint advisory key is (classid, objid) = (high, low) halves.
_HELD_SQL: Final = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = {key}"
    " AND pid = {pid})"
)


class LeaseLost(RuntimeError):
    """The lease's backend does not hold the lock: the fenced write must not happen."""


class LeaseFence:
    """What a write unit of background work checks inside its transaction.

    ``key``/``pid`` are None for SQLite's process lease (always held: the check
    passes).  Invariant: :meth:`check` raises unless, at the moment of the
    statement, backend ``pid`` holds advisory lock ``key``; run inside the
    writing transaction, a successor taking the lock after it cannot see that
    transaction's writes reversed, and an old holder's later writes fail."""

    __slots__ = ("key", "name", "pid")

    def __init__(self, name: str, key: int | None = None, pid: int | None = None) -> None:
        self.name, self.key, self.pid = name, key, pid

    def check(self, conn: Any) -> None:
        """On the unit of work's connection (``?`` markers); raises :class:`LeaseLost`."""
        if self.key is None:
            return
        if self.pid is None:
            raise LeaseLost(f"lease {self.name} is not held")
        row = conn.execute(
            "SELECT " + _HELD_SQL.format(key="?", pid="?"), (self.key, self.pid)
        ).fetchone()
        if not (row and row[0]):
            raise LeaseLost(f"lease {self.name} was lost (backend {self.pid})")


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

    def fence(self) -> LeaseFence:
        """The check a fenced write unit runs while this lease is (believed) held."""
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

    def fence(self) -> LeaseFence:
        return LeaseFence("process")  # one process owns the file: nothing to check


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
        # the key in the session's database and schema, known once connected
        self.key: int | None = None
        self.pid: int | None = None  # the backend that took the lock (None: not held)
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
        # The server's side: libpq's keepalives above only tell this process; these make
        # the server drop a session whose client vanished (~10 s), freeing the lock.
        for setting, value in (
            ("idle_session_timeout", self._idle * 1000),
            ("tcp_keepalives_idle", 5),
            ("tcp_keepalives_interval", 2),
            ("tcp_keepalives_count", 3),
            ("tcp_user_timeout", 10_000),
        ):
            try:
                await conn.execute(f"SET {setting} = {value:d}")
            except psycopg.errors.UndefinedObject:  # an engine without it: logged
                log_event(
                    "lease: server setting not supported", 30, lease=self.name, setting=setting
                )
        return conn

    async def _take(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Compute the scoped key, refuse a backend already holding it, try the lock,
        and record the backend that took it (module docstring)."""
        cur = await conn.execute(
            f"SELECT k, pg_backend_pid(), {_HELD_SQL.format(key='k', pid='pg_backend_pid()')}"
            f" FROM (SELECT {scoped_key_sql('%s')} AS k) AS scoped",
            (self.name,),
        )
        row = await cur.fetchone()
        assert row is not None
        key, pid, shared = int(row[0]), int(row[1]), bool(row[2])
        self.key = key
        if shared:  # this server session holds it for someone else: a pooler shares it
            log_event("lease: the server session is shared (a pooler?)", 40, lease=self.name)
            return False
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (key,))
        got = await cur.fetchone()
        if not (got and got[0]):
            return False
        if int(got[1]) != pid:  # a transaction-mode pooler switched server sessions
            log_event("lease: the server session changed (a pooler?)", 40, lease=self.name)
            with contextlib.suppress(psycopg.Error):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return False
        self.pid = pid
        return True

    async def _still_held(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """One ping: the same backend, still holding the lock."""
        cur = await conn.execute(
            f"SELECT pg_backend_pid(), {_HELD_SQL.format(key='%s', pid='%s')}",
            (self.key, self.pid),
        )
        row = await cur.fetchone()
        return bool(row and int(row[0]) == self.pid and row[1])

    async def try_acquire(self) -> bool:
        """One ``pg_try_advisory_lock``; False (logged) when the database is unreachable."""
        if self._held:
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT + 1)
            held = await asyncio.wait_for(self._take(self._conn), self._timeout)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self._drop()
            log_event("lease: database unreachable", 30, lease=self.name, exc=type(exc).__name__)
            return False
        self._held = held
        return self._held

    async def watch(self) -> None:
        """Wait on the session's socket ``check_seconds`` at a time, then ping it; return
        (the connection closed, :attr:`held` false) when it broke or did not answer."""
        conn = self._conn
        while self._held and conn is not None:
            try:
                async for _ in conn.notifies(timeout=self._check):
                    pass  # nothing LISTENs; a closed socket ends the wait with an error
                same = await asyncio.wait_for(self._still_held(conn), self._timeout)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log_event("lease lost", 30, lease=self.name, exc=type(exc).__name__)
                await self._drop()
                return
            if not same:
                log_event("lease lost: another backend or lock gone", 30, lease=self.name)
                await self._drop()
                return

    async def release(self) -> None:
        """Close the session: the server frees a session-level lock with it (an unlock
        first would need the connection idle, which a cancelled :meth:`watch` may not
        have left it)."""
        await self._drop()

    def fence(self) -> LeaseFence:
        """The check for fenced writes: the key and backend recorded at acquisition
        (a fence taken while not held fails every check)."""
        return LeaseFence(self.name, self.key if self.key is not None else 0, self.pid)

    async def _drop(self) -> None:
        self._held = False
        self.pid = None
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
