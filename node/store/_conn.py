"""The connection type and error types every room uses, on both backends (issue 18).

* :data:`Connection`: what a repository function receives, ``fn(conn, ...)``.  On
  SQLite it is a ``sqlite3.Connection``; on PostgreSQL a
  :class:`node.store._pg.PgConnection` implementing the subset repositories use
  (``execute``/``executemany``/``in_transaction``/``commit``/``rollback``/``close``).
  Its static type is ``sqlite3.Connection`` (that subset) until every repository is
  typed with it; code outside :mod:`node.store` names only this alias.
* :data:`Error`, :data:`DatabaseError`, :data:`IntegrityError`,
  :data:`OperationalError`: the DB-API classes of ``sqlite3``; the PostgreSQL adapter
  raises subclasses of them (``PgIntegrityError`` …), so one ``except`` serves both.
  A lost connection is :class:`node.store.StorageUnavailable` instead (not a
  ``sqlite3`` error: no repository catches it; the RPC edge answers UNAVAILABLE).
* :func:`dialect`: ``"sqlite"`` or ``"postgresql"``, for the rare statement that must
  differ.
* :func:`savepoint`: a statement that may fail (and whose failure the unit handles)
  inside a unit runs in it.  Invariant: on PostgreSQL a failed statement aborts the
  whole transaction unless a savepoint was set before it; SQLite rolls back the
  statement alone.  ``with savepoint(conn):`` makes both behave like SQLite.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from typing import TypeAlias

__all__ = [
    "Connection",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "OperationalError",
    "dialect",
    "savepoint",
]

Connection: TypeAlias = sqlite3.Connection
Error = sqlite3.Error
DatabaseError = sqlite3.DatabaseError
IntegrityError = sqlite3.IntegrityError
OperationalError = sqlite3.OperationalError

_names = itertools.count(1)


def dialect(conn: object) -> str:
    """``"postgresql"`` for the PostgreSQL adapter, ``"sqlite"`` otherwise."""
    return getattr(conn, "dialect", "sqlite")


@contextlib.contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """Run the block in a SAVEPOINT: an exception rolls back the block alone and
    propagates; the unit's transaction goes on (both backends).  Outside a
    transaction the block is a transaction of its own (``BEGIN`` … ``COMMIT``, or
    ``ROLLBACK`` and re-raise): PostgreSQL has no SAVEPOINT outside a transaction."""
    if not conn.in_transaction:
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return
    name = f"sp_{next(_names)}"
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")
