"""Migration runner and the ``sqlite3`` connection factory.

Invariants: migrations are the files ``migrations/NNNN_name.sql`` shipped in
this package, numbered 1, 2, … without gaps; ``PRAGMA user_version`` holds the
number of the last one applied; each migration and its version bump commit
in one transaction, so a failed migration leaves the previous version intact.
Opening a database whose version is above :data:`SCHEMA_VERSION` fails with
``SCHEMA_TOO_NEW`` rather than guessing.  A database file these factories
create is the owner's alone (0600) whatever the process umask, and SQLite
gives its ``-wal`` and ``-shm`` files the database file's mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from node.core._config_storage import StorageConfig
from node.core._errors import HuxinError, UnavailableError

__all__ = [
    "SCHEMA_VERSION",
    "CommitInDoubt",
    "Migration",
    "StorageError",
    "StorageUnavailable",
    "connect",
    "migrate",
    "migrations",
]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
BUSY_TIMEOUT_MS = 10_000


class StorageError(HuxinError):
    """A database that cannot be opened or migrated; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StorageUnavailable(UnavailableError):
    """The database cannot be reached now (server down, connection lost): the unit
    failed and nothing of it was committed; retrying later may succeed
    (UNAVAILABLE at the RPC edge, reason ``STORAGE_UNAVAILABLE``)."""

    def __init__(self, message: str) -> None:
        super().__init__("STORAGE_UNAVAILABLE", message)


class CommitInDoubt(UnavailableError):
    """The connection dropped while COMMIT was on its way: the server may have
    committed the unit or not, and this process cannot tell (UNAVAILABLE at the RPC
    edge, reason ``COMMIT_IN_DOUBT``).  Unlike :class:`StorageUnavailable` it never
    promises that nothing was written: a caller repeats the request only if the
    request is idempotent, or reads the state first (docs/adr/0700)."""

    def __init__(self, message: str) -> None:
        super().__init__("COMMIT_IN_DOUBT", message)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations(dialect: str = "sqlite") -> tuple[Migration, ...]:
    """The shipped migrations of ``dialect`` in order (``migrations/`` for SQLite,
    ``migrations/postgresql/`` for PostgreSQL); raises if numbering has a gap."""
    folder = resources.files("node.store").joinpath("migrations")
    if dialect == "postgresql":
        folder = folder.joinpath("postgresql")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise StorageError("MIGRATION_GAP", f"migration {expected:04d} is missing")
    return tuple(found)


SCHEMA_VERSION = len(migrations())


def _pending(current: int) -> tuple[Migration, ...]:
    if current > SCHEMA_VERSION:
        raise StorageError(
            "SCHEMA_TOO_NEW",
            f"database schema version {current} is newer than this code ({SCHEMA_VERSION})",
        )
    return tuple(m for m in migrations() if m.version > current)


def _script(mig: Migration) -> str:
    return f"BEGIN IMMEDIATE;\n{mig.sql}\nPRAGMA user_version = {mig.version};\nCOMMIT;\n"


_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations to an open connection; return the schema version."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        from node.store._pg_migrate import migrate_pg  # psycopg only when PostgreSQL is used

        return migrate_pg(conn)
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    for mig in _pending(int(current)):
        try:
            conn.executescript(_script(mig))
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise StorageError(
                "MIGRATION_FAILED", f"migration {mig.version:04d}_{mig.name} failed: {exc}"
            ) from exc
    return SCHEMA_VERSION


def _create_owner_only(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists: it will hold subjects'
    records and consents, and library callers (tests, tools) need not set a umask
    as ``huxin`` does.  If it cannot be created (no such directory, no permission)
    SQLite's own open fails next and reports it as before."""
    if str(path) == ":memory:":
        return
    with contextlib.suppress(OSError):  # FileExistsError: an existing file keeps its mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def connect(
    path: StorageConfig | str | Path,
    *,
    readonly: bool = False,
    create: bool = True,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open (and migrate, unless ``readonly``) a node database.

    ``path`` is a storage target (:mod:`node.store._backend`): ``[storage]``, a
    ``sqlite:///`` or ``postgresql://`` URL, or a SQLite file path.  On PostgreSQL
    the connection is a :class:`node.store._pg.PgConnection` (typed as the
    ``sqlite3`` subset it implements, :data:`node.store.Connection`); ``readonly``
    checks the schema version instead of migrating, ``create`` and
    ``check_same_thread`` do not apply (the database exists; one thread uses a
    connection at a time).

    The connection is in autocommit mode (``isolation_level=None``): callers
    group multi-row work with explicit ``BEGIN`` … ``COMMIT``.  ``create=False``
    refuses a missing file (``DB_NOT_FOUND``) instead of creating it.
    ``check_same_thread=False`` only for the server's writer, which its own
    thread and the event loop use in turn (:mod:`node.store._db`).
    """
    from node.store._backend import resolve  # imports this module

    backend = resolve(path)
    if backend.is_pg:
        from node.store._pg_migrate import connect_pg

        return connect_pg(backend, readonly=readonly)
    assert backend.path is not None
    target = backend.path
    if (readonly or not create) and not target.exists():
        raise StorageError("DB_NOT_FOUND", f"database {str(target)!r} does not exist")
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{target.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=check_same_thread,
            )
        else:
            _create_owner_only(target)
            conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=check_same_thread
            )
        for pragma in _PRAGMAS[1:] if readonly else _PRAGMAS:
            conn.execute(pragma)
        if readonly:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:
                conn.close()
                raise StorageError(
                    "SCHEMA_MISMATCH",
                    f"database schema version {version}, this code needs {SCHEMA_VERSION}",
                )
        else:
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StorageError("DB_UNREADABLE", f"cannot open {str(target)!r}: {exc}") from exc
    return conn
