"""The PostgreSQL schema cannot drift from SQLite's (issue 18; docs/adr/0700).

After all migrations, both databases hold the same tables and views with the same
columns in the same order; the PostgreSQL migrations are one file per SQLite
migration, of the same number and name.  The only differences allowed are listed
here: PostgreSQL's own ``schema_version`` table (SQLite keeps the version in
``PRAGMA user_version``) and the columns a partitioned table adds for its
partition key (:data:`PARTITION_COLUMNS`).
"""

from __future__ import annotations

from pathlib import Path

from node.store import connect
from node.store._migrate import migrations

#: PostgreSQL-only tables (the version the SQLite file keeps in its header; the hub's
#: leaf pseudonyms, which SQLite scans in the batches' blobs)
PG_ONLY_TABLES = frozenset({"schema_version", "hub_leaf_keys"})
#: table -> columns PostgreSQL adds for declarative partitioning (docs/adr/0700)
PARTITION_COLUMNS: dict[str, tuple[str, ...]] = {
    "snapshots": ("period",),
    "snapshot_leaves": ("period",),
}


def _sqlite_schema(path: Path) -> dict[str, list[str]]:
    conn = connect(path)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                " AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')] for n in names}
    finally:
        conn.close()


def _pg_schema(url: str) -> dict[str, list[str]]:
    conn = connect(url)
    try:
        rows = conn.execute(
            "SELECT c.relname, a.attname FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " JOIN pg_attribute AS a ON a.attrelid = c.oid"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v')"
            " AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY c.relname, a.attnum"
        ).fetchall()
    finally:
        conn.close()
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        schema.setdefault(table, []).append(column)
    return schema


def test_migrations_match_one_for_one() -> None:
    """Issue 18: a PostgreSQL migration for each SQLite one, same number and name."""
    assert [(m.version, m.name) for m in migrations("postgresql")] == [
        (m.version, m.name) for m in migrations()
    ]


def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    """Issue 18: same tables, same columns, same order (partition keys excepted)."""
    lite = _sqlite_schema(tmp_path / "node.db")
    pg = _pg_schema(pg_url)
    assert set(pg) - PG_ONLY_TABLES == set(lite)
    for table, columns in lite.items():
        extra = PARTITION_COLUMNS.get(table, ())
        assert [c for c in pg[table] if c not in extra] == columns, table


#: the tables that grow by period, partitioned by month on PostgreSQL (issue 18)
PARTITIONED = {
    "snapshots": "period",
    "snapshot_batches": "period",
    "snapshot_leaves": "period",
    "hub_batches": "period",
    "hub_leaf_keys": "period",  # PostgreSQL only: the hub's leaf pseudonyms, by index
    "outbox": "created_at",
}


def test_tables_that_grow_by_period_are_partitioned_by_month(pg_url: str) -> None:
    """Issue 18: declarative RANGE partitioning, each table with a DEFAULT partition
    (rows of a month without its own partition are never refused)."""
    conn = connect(pg_url)
    try:
        rows = conn.execute(
            "SELECT c.relname, p.partstrat, a.attname, d.relname"
            " FROM pg_partitioned_table AS p JOIN pg_class AS c ON c.oid = p.partrelid"
            " JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]"
            " JOIN pg_class AS d ON d.oid = p.partdefid"
        ).fetchall()
    finally:
        conn.close()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {
        table: ("r", column, f"{table}_default") for table, column in PARTITIONED.items()
    }
