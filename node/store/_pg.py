"""The PostgreSQL connection adapter: repository functions written for ``sqlite3`` run
unchanged on it (issue 18, docs/adr/0700).

:class:`PgConnection` wraps one synchronous psycopg 3 connection (autocommit mode:
transactions are the explicit ``BEGIN`` … ``COMMIT`` the unit of work issues, as on
SQLite) and offers the subset of ``sqlite3.Connection`` the repositories use:
``execute(sql, params)`` returning a cursor (``fetchone``/``fetchall``/
``rowcount``/iteration), ``executemany``, ``executescript``, ``in_transaction``,
``commit``/``rollback``/``close``, and ``dialect = "postgresql"`` for the rare
statement that must differ (:func:`node.store.dialect`).

Invariants:

* ``?`` placeholders become ``%s`` and a literal ``%`` becomes ``%%``, once per SQL
  string (:func:`translate`, cached); a ``?`` inside a quoted literal, a quoted
  identifier or a comment is left alone; ``BEGIN IMMEDIATE``/``EXCLUSIVE``/
  ``DEFERRED`` become ``BEGIN`` (PostgreSQL's row locks do what SQLite's database
  lock did for one statement);
* a ``bool`` parameter is sent as ``0``/``1``, as ``sqlite3`` stores it (the schema
  keeps SQLite's integer flags); rows are tuples, ``BYTEA`` comes back as ``bytes``;
* errors are the store's: a psycopg error is re-raised as the subclass of the
  matching ``sqlite3`` DB-API class (``IntegrityError``, ``OperationalError``, …),
  so ``except node.store.IntegrityError`` catches both backends alike; the psycopg
  error is its ``__cause__`` and its SQLSTATE is ``sqlstate``;
* COMMIT of a transaction a failed statement aborted (the unit caught the error
  without :func:`node.store.savepoint`) rolls back and raises
  ``OperationalError``, never reports success (PostgreSQL itself would answer
  with a silent ROLLBACK);
* a lost connection (server down, backend terminated, network cut) is
  :class:`node.store.StorageUnavailable` (UNAVAILABLE at the RPC edge); a
  transaction it interrupted is over (the server rolled it back), the ``ROLLBACK``
  the unit of work then sends is a no-op, and the next statement outside a
  transaction reconnects.  A statement inside an interrupted transaction never
  reconnects: it raises, so a unit is never half written in autocommit;
* ``BEGIN`` on a connection that died while idle is sent once more on a new
  connection (nothing was done yet); a connection lost after ``BEGIN`` fails the
  transaction as above;
* a reader adapter (``reader=True``) repeats a statement outside a transaction once
  on a new connection when its connection turns out lost (reads are safe to
  repeat; a write outside a transaction never is);
* every (re)connection runs with the session settings of :class:`SessionLimits`,
  passed in libpq ``options`` so a transparent reconnect keeps them and a database
  or role default cannot change them: ``default_transaction_isolation`` is READ
  COMMITTED (and ``BEGIN`` says so too): the dense ``max + 1`` allocation under the
  advisory lock (:mod:`node.store._dense`) sees the previous holder's commit only
  in READ COMMITTED; ``idle_in_transaction_session_timeout`` cuts a session whose
  client vanished holding a lock; ``lock_timeout`` bounds a wait for a lock (its
  error, SQLSTATE 55P03, is :class:`node.store.StorageUnavailable`); the server's
  TCP keepalives and ``tcp_user_timeout`` find a peer gone without a FIN in
  seconds, not hours; a ``readonly`` adapter adds ``default_transaction_read_only``;
* a connection lost while COMMIT was on its way is :class:`node.store.CommitInDoubt`
  (``COMMIT_IN_DOUBT``): the server may or may not have committed;
* one adapter is used by one thread at a time (the unit of work's threads own it).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from node.store._migrate import CommitInDoubt, StorageUnavailable

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SESSION_LIMITS",
    "PgConnection",
    "SessionLimits",
    "map_error",
    "translate",
]

CONNECT_TIMEOUT_S = 5  # a server that is down fails a request fast (UNAVAILABLE)
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
_BEGIN_RC = "BEGIN ISOLATION LEVEL READ COMMITTED"


@dataclass(frozen=True)
class SessionLimits:
    """Server-side session settings of every connection (milliseconds / seconds).

    ``idle_in_transaction_ms`` is well above the longest pause of a unit between two
    statements (units run no network calls inside a transaction, ADR 0601), so only
    a session whose client is gone is cut; ``lock_wait_ms`` is above it, so a writer
    waiting behind a vanished holder outlives the holder's session and proceeds;
    ``tcp_*`` are the server's keepalive probes of the client (TCP sessions only)."""

    idle_in_transaction_ms: int = 60_000
    lock_wait_ms: int = 90_000
    tcp_keepalives_idle_s: int = 30
    tcp_keepalives_interval_s: int = 10
    tcp_keepalives_count: int = 3
    tcp_user_timeout_ms: int = 60_000

    def options(self, *, readonly: bool) -> str:
        """The libpq ``options`` string (``-c name=value`` for each setting)."""
        settings = [
            ("default_transaction_isolation", r"read\ committed"),
            ("idle_in_transaction_session_timeout", str(self.idle_in_transaction_ms)),
            ("lock_timeout", str(self.lock_wait_ms)),
            ("tcp_keepalives_idle", str(self.tcp_keepalives_idle_s)),
            ("tcp_keepalives_interval", str(self.tcp_keepalives_interval_s)),
            ("tcp_keepalives_count", str(self.tcp_keepalives_count)),
            ("tcp_user_timeout", str(self.tcp_user_timeout_ms)),
        ]
        if readonly:
            settings.append(("default_transaction_read_only", "on"))
        return " ".join(f"-c {name}={value}" for name, value in settings)


#: the limits new adapters use (a test may put small values here)
SESSION_LIMITS = SessionLimits()
_BEGIN = re.compile(
    r"^\s*BEGIN(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED))?(\s+TRANSACTION)?\s*;?\s*$", re.I
)
_COMMIT = re.compile(r"^\s*(COMMIT|END)(\s+TRANSACTION)?\s*;?\s*$", re.I)
_ROLLBACK = re.compile(r"^\s*ROLLBACK(\s+TRANSACTION)?\s*;?\s*$", re.I)

#: psycopg's DB-API classes -> the store's (sqlite3's), most specific first
_ERROR_CLASSES: tuple[tuple[type[psycopg.Error], type[sqlite3.Error]], ...] = (
    (psycopg.IntegrityError, sqlite3.IntegrityError),
    (psycopg.DataError, sqlite3.DataError),
    (psycopg.NotSupportedError, sqlite3.NotSupportedError),
    (psycopg.ProgrammingError, sqlite3.ProgrammingError),
    (psycopg.OperationalError, sqlite3.OperationalError),
    (psycopg.InternalError, sqlite3.InternalError),
    (psycopg.InterfaceError, sqlite3.InterfaceError),
    (psycopg.DatabaseError, sqlite3.DatabaseError),
    (psycopg.Error, sqlite3.Error),
)


def _pg_class(base: type[sqlite3.Error]) -> type[sqlite3.Error]:
    """``Pg<Name>``: a subclass of the sqlite3 class carrying the SQLSTATE."""

    def init(self: Any, message: str, sqlstate: str | None = None) -> None:
        base.__init__(self, message)
        self.sqlstate = sqlstate
        self.sqlite_errorname = sqlstate  # the attribute sqlite3 errors have

    return type(f"Pg{base.__name__}", (base,), {"__init__": init, "__module__": __name__})


_MAPPED: dict[type[sqlite3.Error], type[sqlite3.Error]] = {
    base: _pg_class(base) for _, base in _ERROR_CLASSES
}


def map_error(exc: psycopg.Error) -> sqlite3.Error:
    """The store's error for a psycopg error (not a lost connection: see the adapter)."""
    for pg_class, base in _ERROR_CLASSES:
        if isinstance(exc, pg_class):
            mapped = _MAPPED[base](str(exc).strip(), exc.sqlstate)
            return mapped
    raise AssertionError("unreachable: psycopg.Error is the last row")  # pragma: no cover


@lru_cache(maxsize=8192)
def translate(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s``; a literal ``%`` doubled.

    Quoted literals (``'…'``, with ``''`` inside), quoted identifiers (``"…"``),
    ``--`` and ``/* */`` comments are copied as they are (their ``%`` doubled,
    since psycopg reads ``%`` everywhere)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "?":
            out.append("%s")
        elif c == "%":
            out.append("%%")
        elif c in ("'", '"'):
            end = sql.find(c, i + 1)
            end = n - 1 if end < 0 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n - 1 if end < 0 else end
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n - 1 if end < 0 else end + 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end
        else:
            out.append(c)
        i += 1
    text = "".join(out)
    return "BEGIN" if _BEGIN.match(text) else text


def _params(params: Sequence[Any] | Iterable[Any]) -> tuple[Any, ...]:
    # sqlite3 stores True/False as 1/0; the schema keeps those integer columns
    return tuple(int(p) if p.__class__ is bool else p for p in params)


class _NoRows:
    """The cursor of a statement that did nothing (a ROLLBACK after a lost connection)."""

    rowcount = -1
    description = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class PgConnection:
    """One psycopg connection behind the ``sqlite3.Connection`` subset (see module doc)."""

    dialect = "postgresql"

    def __init__(
        self,
        conninfo: str,
        *,
        password: str | None = None,
        reader: bool = False,
        readonly: bool = False,
        limits: SessionLimits | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._password = password
        self._readonly = readonly
        self._limits = SESSION_LIMITS if limits is None else limits
        # a reader's statement outside a transaction is tried once more on a new
        # connection when the old one turns out lost (a read is safe to repeat)
        self._reader = reader
        self._conn: psycopg.Connection[Any] | None = None
        self._tx = False  # inside our BEGIN … COMMIT/ROLLBACK
        self._lost_tx = False  # the connection dropped inside that transaction
        self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        extra: dict[str, Any] = {"application_name": "huxin"}
        if self._password is not None:
            extra["password"] = self._password
        limits = self._limits
        own = limits.options(readonly=self._readonly)
        try:
            given = str(conninfo_to_dict(self._conninfo).get("options") or "")
        except psycopg.ProgrammingError:
            given = ""  # an unparsable URL fails in connect() below, with libpq's words
        # ours come last: a later -c of the same name wins
        extra["options"] = f"{given} {own}".strip()
        # the client's keepalives too: a server gone without a FIN fails a statement
        extra.update(
            keepalives=1,
            keepalives_idle=limits.tcp_keepalives_idle_s,
            keepalives_interval=limits.tcp_keepalives_interval_s,
            keepalives_count=limits.tcp_keepalives_count,
            tcp_user_timeout=limits.tcp_user_timeout_ms,
        )
        try:
            conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **extra
            )
        except psycopg.OperationalError as exc:
            # libpq's text names host and reason, never the password
            raise StorageUnavailable(f"cannot reach the database: {exc}".strip()) from exc
        self._conn = conn
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        """The connection for a statement outside a lost transaction; reconnects."""
        conn = self._conn
        if self._lost_tx:
            raise StorageUnavailable("the connection to the database was lost in a transaction")
        if conn is None or conn.closed or conn.broken:
            if self._tx:  # lost between statements of a transaction
                self._lost_tx = True
                raise StorageUnavailable("the connection to the database was lost in a transaction")
            self._drop()
            conn = self._connect()
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # a broken connection may fail to close: it is gone either way
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _failed(self, exc: psycopg.Error) -> BaseException:
        """The error to raise for ``exc``; marks a transaction lost with its connection."""
        conn = self._conn
        if conn is None or conn.broken or conn.closed:
            if self._tx:
                self._lost_tx = True
            return StorageUnavailable(f"the database connection was lost: {exc}".strip())
        if getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            # a holder kept the lock past lock_timeout (a vanished replica is cut by
            # idle_in_transaction_session_timeout first): retrying later may succeed
            return StorageUnavailable(f"a database lock was not granted in time: {exc}".strip())
        return map_error(exc)

    # -- the sqlite3.Connection subset ---------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._tx

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement; ``?`` placeholders; returns a cursor with the rows fetched."""
        text = translate(sql)
        if text == "BEGIN":
            return self._begin()
        if _COMMIT.match(text):
            return self._end("COMMIT")
        if _ROLLBACK.match(text):
            return self._end("ROLLBACK")
        conn = self._live()
        values = _params(params)
        try:
            return conn.execute(text, values)
        except psycopg.Error as exc:
            err = self._failed(exc)
            if not (self._reader and not self._tx and isinstance(err, StorageUnavailable)):
                raise err from exc
        try:  # the reader's one retry, on a new connection
            return self._live().execute(text, values)
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Any:
        """One statement for each parameter row (psycopg pipelines them)."""
        conn = self._live()
        cur = conn.cursor()
        try:
            cur.executemany(translate(sql), [_params(p) for p in seq])
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        return cur

    def executescript(self, script: str) -> None:
        """Several statements without parameters, in one round trip (migrations)."""
        conn = self._live()
        try:
            conn.execute(script.encode())  # bytes: no placeholder parsing, simple protocol
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _begin(self) -> Any:
        if self._tx:
            raise map_error(
                psycopg.ProgrammingError("cannot start a transaction within a transaction")
            )
        conn = self._live()
        try:
            cur = conn.execute(_BEGIN_RC)
        except psycopg.Error as exc:
            err = self._failed(exc)
            if not isinstance(err, StorageUnavailable):
                raise err from exc
            # the connection died while idle (server restarted, session timed out):
            # nothing was done yet, so BEGIN once more on a new connection
            try:
                cur = self._live().execute(_BEGIN_RC)
            except psycopg.Error as again:
                raise self._failed(again) from again
        self._tx = True
        return cur

    def _end(self, verb: str) -> Any:
        """COMMIT or ROLLBACK; a ROLLBACK of a lost transaction only forgets it."""
        lost = self._lost_tx or self._conn is None or self._conn.broken or self._conn.closed
        if lost:
            self._tx = self._lost_tx = False
            self._drop()
            if verb == "ROLLBACK":
                return _NoRows()
            raise StorageUnavailable("the connection to the database was lost before COMMIT")
        assert self._conn is not None
        if verb == "COMMIT" and self._conn.info.transaction_status == pq.TransactionStatus.INERROR:
            # PostgreSQL answers COMMIT of an aborted transaction with a silent
            # ROLLBACK: a unit that swallowed a failed statement must not be told
            # it committed
            self._end("ROLLBACK")
            raise _MAPPED[sqlite3.OperationalError](
                "a statement of this transaction failed (caught without a savepoint): "
                "the transaction was rolled back",
                "25P02",
            )
        try:
            cur = self._conn.execute(verb)
        except psycopg.Error as exc:
            err = self._failed(exc)
            self._tx = self._lost_tx = False
            if verb == "COMMIT" and isinstance(err, StorageUnavailable):
                # COMMIT may have reached the server and been applied before the
                # connection dropped: "nothing was committed" would be a guess
                raise CommitInDoubt(
                    "the connection to the database was lost during COMMIT: "
                    "the outcome of the transaction is unknown"
                ) from exc
            raise err from exc
        self._tx = False
        return cur

    def commit(self) -> None:
        if self._tx:
            self._end("COMMIT")

    def rollback(self) -> None:
        if self._tx:
            self._end("ROLLBACK")

    def close(self) -> None:
        self._tx = self._lost_tx = False
        self._drop()

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The live psycopg connection (COPY and server-side cursors, ``node.store`` only)."""
        return self._live()

    @property
    def transaction_status(self) -> pq.TransactionStatus | None:
        conn = self._conn
        return None if conn is None else conn.info.transaction_status
