"""Node storage: one SQLite database per node, numbered migrations, WAL.

Invariants:

* the schema is created and upgraded only by :mod:`node._storage._migrate`,
  which applies ``migrations/NNNN_*.sql`` in order, each in one transaction
  together with ``PRAGMA user_version = NNNN``; a database newer than the
  code is refused;
* every connection runs in WAL mode with foreign keys on;
* a subject is stored under its pseudonymous ``subject_key``; the citizen ID
  number is stored only sealed, never in plain text, and never logged.

Both a synchronous (``sqlite3``, batch jobs) and an asynchronous
(``aiosqlite``, the server) entry point open and migrate a database.
"""

from ._migrate import (
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    StorageError,
    connect,
    connect_async,
    migrate,
    migrate_async,
    migrations,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "StorageError",
    "connect",
    "connect_async",
    "migrate",
    "migrate_async",
    "migrations",
]
