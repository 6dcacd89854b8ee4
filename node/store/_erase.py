"""Erasing a person from the node's database (H2): the SQL of deregistration.

Invariant: :func:`erase_subject_sync` runs inside the caller's transaction and
reaches every table with a ``subject_key`` column (found through
the engine's catalogue, so tables added by later migrations are covered); rows that
must outlive the person (status entries, snapshot leaves) lose the link
instead of being deleted.  Used by deregistration (:mod:`node.rights._dereg`)
and by a restore that carries a later deregistration into an older backup.
"""

from __future__ import annotations

import sqlite3

from node.store._consents import STATUS_REVOKED

__all__ = ["erase_subject_sync", "subject_tables"]

#: Tables whose rows outlive the person: the statement that unlinks them and the
#: parameters before the key.  The unlinked status-entry key is a zero-length blob
#: passed as a parameter (no blob literal is spelled the same on both engines).
_UNLINK: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "status_entries": ("UPDATE status_entries SET subject_key = ? WHERE subject_key = ?", (b"",)),
    "snapshot_leaves": (
        "UPDATE snapshot_leaves SET subject_key = NULL, payload = NULL WHERE subject_key = ?",
        (),
    ),
}
_LAST = ("subjects",)
# Base tables only (the monthly_snapshots view has a subject_key column too).
_SQLITE_TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
)
# Tables and partitioned tables, not their partitions: a DELETE or UPDATE through the
# parent reaches every partition, and a partition of snapshot_leaves must be unlinked
# like its parent, never deleted.
_PG_SUBJECT_TABLES = (
    "SELECT c.relname FROM pg_catalog.pg_class AS c "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
    "AND a.attname = 'subject_key' AND NOT a.attisdropped "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = c.oid) "
    "ORDER BY c.relname"
)


def subject_tables(conn: sqlite3.Connection) -> list[str]:
    """Every table with a ``subject_key`` column (children first, ``subjects`` last).

    Read from the engine's catalogue (``sqlite_master`` and ``PRAGMA table_info`` on
    SQLite, ``pg_catalog`` on PostgreSQL), so tables added by later
    migrations are covered on both."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        out = [str(r[0]) for r in conn.execute(_PG_SUBJECT_TABLES).fetchall()]
    else:
        names = [str(r[0]) for r in conn.execute(_SQLITE_TABLES)]
        out = [
            n
            for n in names
            if any(col[1] == "subject_key" for col in conn.execute(f'PRAGMA table_info("{n}")'))
        ]
    return sorted(out, key=lambda n: (n in _LAST, n))


def erase_subject_sync(conn: sqlite3.Connection, key: bytes, stone: bytes, at_iso: str) -> int:
    """Inside the caller's transaction: revoke, delete and unlink everything keyed by
    ``key`` (log rows excepted: the caller unlinks them after its tombstone entry),
    delete emptied batches, and store the tombstone; returns attestations revoked.
    Also used by a restore to carry a later deregistration into an older backup."""
    revoked = conn.execute(
        "UPDATE status_entries SET status = ? WHERE subject_key = ? AND status != ?",
        (STATUS_REVOKED, key, STATUS_REVOKED),
    ).rowcount
    batches = [
        (str(r[0]), str(r[1])) * 2
        for r in conn.execute(
            "SELECT DISTINCT submitted_by, batch_id FROM records WHERE subject_key = ?", (key,)
        )
    ]
    conn.execute(  # ids are per department (H7, N4)
        "DELETE FROM record_marks WHERE (submitted_by, record_id) IN "
        "(SELECT submitted_by, record_id FROM records WHERE subject_key = ?)",
        (key,),
    )
    for table in subject_tables(conn):
        if table == "log_entries":
            continue  # unlinked by the caller after its tombstone entry is appended
        sql, lead = _UNLINK.get(table, (f'DELETE FROM "{table}" WHERE subject_key = ?', ()))
        conn.execute(sql, (*lead, key))
    conn.executemany(  # batches now empty (records_by_batch makes this cheap)
        "DELETE FROM source_batches WHERE submitted_by = ? AND batch_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM records WHERE submitted_by = ? AND batch_id = ?)",
        batches,
    )
    conn.execute(
        "INSERT INTO deregistrations (tombstone, deregistered_at) VALUES (?, ?) "
        "ON CONFLICT (tombstone) DO UPDATE SET deregistered_at = excluded.deregistered_at",
        (stone, at_iso),
    )
    return int(revoked)
