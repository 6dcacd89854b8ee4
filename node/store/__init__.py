"""Node storage: one SQLite database per node (numbered migrations, WAL), or one
PostgreSQL database shared by the node's replicas (docs/adr/0700).

Invariants:

* the schema is created and upgraded only by :mod:`node.store._migrate`,
  which applies ``migrations/NNNN_*.sql`` in order, each in one transaction
  together with ``PRAGMA user_version = NNNN``; a database newer than the
  code is refused;
* every connection runs in WAL mode with foreign keys on;
* a subject is stored under its pseudonymous ``subject_key``; the citizen ID
  number is stored only sealed, never in plain text, and never logged.

Where the state lives is a *target*: ``[storage]`` (``config.storage``), a
``sqlite:///`` or ``postgresql://`` URL, or a SQLite path (``_backend``).  Rooms
type connections as :data:`Connection` and catch :data:`IntegrityError` and
friends (``_conn``: the ``sqlite3`` classes, which the PostgreSQL adapter ``_pg``
raises subclasses of); a lost PostgreSQL connection is :class:`StorageUnavailable`;
``savepoint(conn)`` wraps a statement whose failure a unit handles, and
``dialect(conn)`` tells the backends apart.

Batch jobs open and migrate a database with :func:`connect`; the
server with ``node.store._db.Database.open``, the unit of work on threads of
its own (docs/adr/0601).  Cross-process exclusion is expressed as
:func:`offline_job`, :func:`writer_turn` and :func:`exclusive_writer`, never as
a lock file seen by callers.

Modules: ``_migrate`` (opening and migrating; PostgreSQL: ``_pg_migrate``
and ``migrations/postgresql/``), ``_backend`` (targets and passwords), ``_conn`` (the
connection and error types rooms use), ``_pg`` (the PostgreSQL adapter), ``_pg_local``
(a throwaway local PostgreSQL server for tests and the demo), ``_db`` (the server's writer and
reader connections, units of work, group commit), ``_threads`` (a connection on
a thread of its own), ``_locks`` (the cross-process locks), ``_checkpoint`` (WAL checkpoints
off the event loop), ``_records`` and ``_consents`` (the repositories of subjects
and records, consents and attestation status), ``_translog`` (the transparency
log), ``_outbox`` (the outbox pushed to the hub), ``_status_list`` (the signed
status list rendered from stored states), ``_erase`` (deregistration's SQL),
``_backup`` (online backup, verification, restore).  The rooms' repositories,
each a set of functions run inside the caller's unit of work: ``_rights`` (record
status and marks, attestation status, tombstones), ``_optout``, ``_objections``,
``_repair``, ``_supplements``, ``_notifications``, ``_population``,
``_organisations``, ``_batches`` (a batch's ``source_batches`` row),
``_refusals`` (refusal marks), ``_unmet`` (active consents a grade may end),
``_audit`` and ``_catalogue`` (read-only reads of the operator's CLI),
``_monthly`` (published
monthly grades, corrections, the scheduler's runs), ``_snapshot_runs`` (the
monthly batch run: runs, chunks, snapshots), ``_snapshot_batches`` (signed
Merkle batches of a run and their leaves), ``_hub`` (the hub's registry, trust
lists, cursors, witnessed checkpoints, events, pushed batches and status lists),
``_trust_lists`` (trust lists accepted and refused), ``_peers`` (peer material and
sync attempts), ``_push`` (push state and hub receipts), ``_rollouts`` (the
``rollouts`` rows: a scheme's rollout state, H11, and a derived score's version in
force), ``_mapping_tables`` (installed mapping tables, their approvals and
generation), ``_status_report`` (the reads of ``huxin status``), ``_synthetic`` (a
synthetic population's bulk writes, staging files and outcome labels), and
``_immediate`` (:func:`immediate`, one ``BEGIN IMMEDIATE`` transaction on a batch
job's connection).  No module outside this package holds SQL
(``tools/check_imports.py``).

May import: ``node.core`` and the pure packages, never ``grpc`` (its errors carry
reasons; tools/check_imports.py); every other room reaches storage through it.
"""

from node.store._conn import (
    Connection,
    DatabaseError,
    Error,
    IntegrityError,
    OperationalError,
    dialect,
    savepoint,
)
from node.store._immediate import immediate
from node.store._locks import WriterTurn, exclusive_writer, offline_job, writer_turn
from node.store._migrate import (
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    CommitInDoubt,
    StorageError,
    StorageUnavailable,
    connect,
    migrate,
    migrations,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "CommitInDoubt",
    "Connection",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "OperationalError",
    "StorageError",
    "StorageUnavailable",
    "WriterTurn",
    "connect",
    "dialect",
    "exclusive_writer",
    "immediate",
    "migrate",
    "migrations",
    "offline_job",
    "savepoint",
    "writer_turn",
]
