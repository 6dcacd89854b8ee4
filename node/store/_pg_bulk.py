"""The bulk paths of PostgreSQL: binary COPY in, server-side cursors out (issue 18, ADR 0701).

The repositories that move many rows at once (the monthly run's chunks, the hub's
pushed batches, a synthetic population) call these on PostgreSQL and keep
``executemany`` and plain ``SELECT`` on SQLite; :func:`pg_of` tells which.

* :func:`copy_rows` writes rows with ``COPY … FROM STDIN (FORMAT BINARY)``, the
  fastest path psycopg has (ADR 0701: as fast as asyncpg's
  ``copy_records_to_table``, 4–10x ``executemany``); the binary format needs each
  value in its column's exact type, so the types are read from the catalog once per
  table and columns;
* :func:`stream` runs a ``SELECT`` through a named (server-side) cursor, fetching
  :data:`ITERSIZE` rows per round trip, so a chunk of a million-person run never
  sits whole in the server's or the client's memory between fetches.

Invariants: both run inside the caller's transaction when it holds one (a COPY is
part of the unit that commits it; a cursor reads that transaction's snapshot);
outside one, :func:`stream` opens and closes its own read transaction (a named
cursor lives in a transaction); neither commits anything of the caller's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["ITERSIZE", "copy_rows", "pg_of", "stream"]

ITERSIZE = 20_000  # rows per fetch of a server-side cursor: ~1 MB of a chunk's records
_types: dict[tuple[str, tuple[str, ...]], list[str]] = {}
_cursor_numbers = itertools.count(1)  # a cursor left open by an abandoned reader never clashes


def pg_of(conn: Any) -> psycopg.Connection[Any] | None:
    """The psycopg connection under the store's PostgreSQL adapter, or None on SQLite."""
    if getattr(conn, "dialect", "sqlite") != "postgresql":
        return None
    raw = conn.raw
    assert isinstance(raw, psycopg.Connection)
    return raw


def _column_types(raw: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> list[str]:
    key = (table, tuple(columns))
    found = _types.get(key)
    if found is None:
        rows = dict(
            raw.execute(
                "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (table,),
            ).fetchall()
        )
        missing = [c for c in columns if c not in rows]
        if missing:
            raise ValueError(f"table {table} has no columns {', '.join(missing)}")
        found = _types[key] = [rows[c] for c in columns]
    return found


def copy_rows(
    raw: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY ``rows`` (values in ``columns`` order) into ``table`` in binary; the count.
    ``bool`` values go in as 0/1 where the column is an integer (the schema keeps
    SQLite's integer flags)."""
    types = _column_types(raw, table, columns)
    ints = [i for i, t in enumerate(types) if t in ("bigint", "integer", "smallint")]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    n = 0
    with raw.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            if ints and any(isinstance(row[i], bool) for i in ints):
                row = [
                    int(v) if i in ints and isinstance(v, bool) else v for i, v in enumerate(row)
                ]
            copy.write_row(row)
            n += 1
    return n


def stream(
    raw: psycopg.Connection[Any],
    query: str,
    params: Sequence[Any] = (),
    *,
    name: str = "huxin_bulk",
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` (``%s`` placeholders) through a server-side cursor,
    :data:`ITERSIZE` per round trip, inside the caller's transaction or a read
    transaction of its own."""
    with raw.transaction(), raw.cursor(name=f"huxin_bulk_{next(_cursor_numbers)}") as cur:
        cur.itersize = ITERSIZE
        cur.execute(query, params)
        yield from cur
