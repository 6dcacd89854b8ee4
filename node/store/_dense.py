"""The dense-index lock of a node on PostgreSQL (docs/adr/0702).

Replicas of one node write one database.  What must stay dense and in commit
order — transparency-log indexes, status-list indexes, the outbox's ``seq``, a
hub's trust-list versions — is allocated as ``max + 1`` inside the writing
transaction under ONE transaction-scoped advisory lock,
``pg_advisory_xact_lock(DENSE_INDEXES)``, held to COMMIT or ROLLBACK.

Invariants:

* every write transaction of the unit of work takes the lock first, right after
  ``BEGIN`` (:func:`lock_dense_indexes` from the PostgreSQL runner of
  :mod:`node.store._db`): writers of all replicas then wait in one place and in
  one order, so a transaction holding it never waits for a row another waiting
  transaction holds (no deadlock cycle through it), and a later allocating
  transaction sees the earlier one's rows (PostgreSQL makes a commit visible
  before it releases the transaction's locks); a rolled-back allocation leaves
  no gap;
* an allocating function calls :func:`lock_dense_indexes` itself too (a no-op
  when held: advisory locks are re-entrant), so a transaction outside the unit
  of work (a CLI job) allocates densely as well;
* the key is scoped to the session's database and schema
  (:func:`node.store._lease.scoped_key_sql`): two nodes in one database, a
  schema each, never queue on each other's lock;
* on SQLite nothing is taken: the writer lock already serialises writers.
"""

from __future__ import annotations

from typing import Final

from node.store._backend import dialect_of
from node.store._lease import scoped_key_sql

__all__ = ["DENSE_INDEXES", "lock_dense_indexes", "on_postgresql"]

DENSE_INDEXES: Final = "huxin/dense-indexes"  # the lock's name; its key is per schema
_LOCK_SQL: Final = f"SELECT pg_advisory_xact_lock({scoped_key_sql('?')})"


def on_postgresql(conn: object) -> bool:
    """A PostgreSQL adapter's connection (:func:`node.store._backend.dialect_of`)."""
    return dialect_of(conn) == "postgresql"


def lock_dense_indexes(conn: object) -> None:
    """Inside a write transaction on PostgreSQL: take the dense-index lock, held until
    COMMIT or ROLLBACK (see the module docstring); nothing on SQLite."""
    if on_postgresql(conn):
        conn.execute(_LOCK_SQL, (DENSE_INDEXES,))  # type: ignore[attr-defined]
