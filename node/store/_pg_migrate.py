"""Opening and migrating a PostgreSQL node database (issue 18, docs/adr/0700).

Invariants (those of :mod:`node.store._migrate`, on PostgreSQL):

* the migrations are ``migrations/postgresql/NNNN_name.sql``, one for each SQLite
  migration of the same number and name (a unit test keeps the two schemas equal:
  same tables, same columns);
* the table ``schema_version`` holds one row, the number of the last migration
  applied; each migration and its version bump commit in one transaction, so a
  failed migration leaves the previous version intact;
* replicas starting together migrate once: each migration transaction first takes
  the transaction-scoped advisory lock :data:`MIGRATE_LOCK` and re-reads the
  version under it;
* a database whose version is above ``SCHEMA_VERSION`` is refused with
  ``SCHEMA_TOO_NEW``; a read-only open of a database at another version with
  ``SCHEMA_MISMATCH``.
"""

from __future__ import annotations

import sqlite3
from typing import cast

from node.store._backend import Backend
from node.store._migrate import SCHEMA_VERSION, StorageError, migrations
from node.store._pg import PgConnection

__all__ = ["MIGRATE_LOCK", "connect_pg", "migrate_pg", "schema_version"]

#: advisory lock keys of the store (pg_advisory_*): one namespace, fixed numbers
MIGRATE_LOCK = 0x48_58_00_01  # "HX" 0001: migrations

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


def schema_version(conn: PgConnection) -> int:
    """The version recorded in the database (0 for an empty one)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(found[0] or 0)


def _apply(conn: PgConnection, target_version: int, sql: str) -> bool:
    """One migration in one transaction under the lock; False if another process
    applied it meanwhile."""
    conn.execute("BEGIN")
    try:
        # a replica waits for another's whole migration, and a migration's DDL for
        # the table locks it needs: no lock_timeout here (a vanished holder is cut
        # by idle_in_transaction_session_timeout, docs/adr/0700)
        conn.execute("SET LOCAL lock_timeout = 0")
        conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK:d})")
        conn.execute(_VERSION_TABLE)
        current = schema_version(conn)
        if current >= target_version:
            conn.execute("ROLLBACK")
            return False
        conn.executescript(sql)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target_version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def migrate_pg(conn: sqlite3.Connection | PgConnection) -> int:
    """Apply pending PostgreSQL migrations; return the schema version."""
    pg = cast(PgConnection, conn)
    current = schema_version(pg)
    if current > SCHEMA_VERSION:
        raise StorageError(
            "SCHEMA_TOO_NEW",
            f"database schema version {current} is newer than this code ({SCHEMA_VERSION})",
        )
    for mig in migrations("postgresql"):
        if mig.version <= current:
            continue
        try:
            _apply(pg, mig.version, mig.sql)
        except sqlite3.Error as exc:
            raise StorageError(
                "MIGRATION_FAILED", f"migration {mig.version:04d}_{mig.name} failed: {exc}"
            ) from exc
    # another process may have gone further meanwhile
    final = schema_version(pg)
    if final > SCHEMA_VERSION:
        raise StorageError(
            "SCHEMA_TOO_NEW",
            f"database schema version {final} is newer than this code ({SCHEMA_VERSION})",
        )
    return SCHEMA_VERSION


def connect_pg(backend: Backend, *, readonly: bool = False) -> sqlite3.Connection:
    """A migrated (or, ``readonly``, version-checked) PostgreSQL connection, typed as
    the ``sqlite3`` subset it implements."""
    # read-only as SQLite's mode=ro, in libpq options: a reconnect keeps it
    conn = PgConnection(backend.url, password=backend.password, readonly=readonly)
    try:
        if readonly:
            version = schema_version(conn)
            if version != SCHEMA_VERSION:
                raise StorageError(
                    "SCHEMA_MISMATCH",
                    f"database schema version {version}, this code needs {SCHEMA_VERSION}",
                )
        else:
            migrate_pg(conn)
    except BaseException:
        conn.close()
        raise
    return cast(sqlite3.Connection, conn)
