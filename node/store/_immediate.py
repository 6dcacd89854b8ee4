"""One ``BEGIN IMMEDIATE`` transaction on a batch job's connection (SQLite or PostgreSQL).

The CLI and the offline jobs open their database with :func:`node.store.connect`
(autocommit, ``isolation_level=None``) and write with this context manager rather than
spelling the transaction themselves, so that no module outside the store issues SQL.

Invariants: the transaction takes the write lock at its start (``IMMEDIATE``, so two
writers wait on ``busy_timeout`` instead of failing on a lock upgrade); it commits
when the block ends normally and rolls back when anything escapes it, the exception
then propagating unchanged.  On PostgreSQL (a connection whose ``dialect`` is
``"postgresql"``) the transaction is a plain ``BEGIN``: rows are locked as they are
written, and two writers of one row wait on each other's row lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["immediate"]


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` and re-raise."""
    pg = getattr(conn, "dialect", "sqlite") == "postgresql"
    conn.execute("BEGIN" if pg else "BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
