"""Monthly partitions of the period tables on PostgreSQL: made ahead, dropped past retention.

The migrations declare the tables that grow by period (snapshots, hub batches and
leaves, the outbox) ``PARTITION BY RANGE`` on one column with a ``DEFAULT``
partition (docs/adr/0700).  :func:`maintain` is the background step (one replica
at a time runs it, like every background job): for every such table of the
current schema it

* creates the partitions of this month and the next :data:`MONTHS_AHEAD` months,
  named ``<table>_pYYYYMM``, so that rows of a new month land in their own
  partition and never in the ``DEFAULT`` one;
* with ``retention_months`` > 0, drops the partitions named ``<table>_pYYYYMM``
  whose month ends before the first month kept (this month minus
  ``retention_months``), and deletes the ``DEFAULT`` partition's rows older than
  that: the retention the operator configured (``[storage] retention_months``;
  0 keeps everything, the default).

The partition key is read from the catalog, so the bounds fit its type: a text
period (``'YYYY-MM'``, also right for ISO dates held as text), an integer of
Unix seconds (a column named ``*_at``, as the project names its times), or a
``date``/``timestamp``/``timestamptz``.

Invariants:

* a month's partition is created in ONE transaction that also moves the rows of
  that month the ``DEFAULT`` partition caught meanwhile (a node down over a month
  boundary), so no row is lost and ``ATTACH`` never fails on them;
* an outbox partition is never dropped while it holds an event above the lowest hub
  cursor (``push_state``) or the outbox's highest seq (reported in
  :attr:`Maintenance.held`): retention loses no unpushed event and seq allocation
  (max + 1) never restarts below a hub's cursor;
* only partitions named by this module are ever dropped; a table whose key is not
  one column of a known type is left alone and reported;
* plain PostgreSQL 11+ DDL only (no extension such as pg_partman), so the
  compatible engines of ADR 0700 run it too;
* :class:`PartitionKeeper` is the background task: at start and every
  :data:`KEEP_EVERY_S`, one write unit that first takes the transaction-scoped
  advisory lock :data:`PARTITIONS_LOCK`, so replicas that run it at once queue
  and the later ones find the work done; a failure is logged and retried at the
  next turn (rows meanwhile land in DEFAULT and move at the next success).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql

from node.core._observe import log_event
from node.store._pg_bulk import pg_of

__all__ = [
    "KEEP_EVERY_S",
    "MONTHS_AHEAD",
    "PARTITIONS_LOCK",
    "Maintenance",
    "PartitionKeeper",
    "PeriodTable",
    "maintain",
    "month_bounds",
    "period_tables",
]

MONTHS_AHEAD = 3  # partitions that exist ahead of the clock: a quarter of slack
KEEP_EVERY_S = 3600.0  # an hour: a month boundary is never more than that late
PARTITIONS_LOCK = 0x48_58_00_10  # "HX" 0010: advisory lock key of the partition upkeep
_NAME = re.compile(r"^(?P<parent>.+)_p(?P<year>\d{4})(?P<month>\d{2})$")
_TEXT_TYPES = ("text", "character varying", "character")
_INT_TYPES = ("integer", "bigint", "smallint")
_TIME_TYPES = ("date", "timestamp without time zone", "timestamp with time zone")


@dataclass(frozen=True)
class PeriodTable:
    """A table partitioned by range on one column ``key`` of SQL type ``key_type``;
    ``default`` its DEFAULT partition (None when it has none)."""

    name: str
    key: str
    key_type: str
    default: str | None
    partitions: tuple[str, ...]


@dataclass
class Maintenance:
    """What one :func:`maintain` did (for the structured log)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_rows: int = 0
    deleted_rows: int = 0
    skipped: list[str] = field(default_factory=list)
    # outbox partitions past retention kept: unpushed events, or the highest seq
    held: list[str] = field(default_factory=list)


def _month(d: date, shift: int) -> date:
    index = d.year * 12 + (d.month - 1) + shift
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(key_type: str, first: date) -> tuple[Any, Any]:
    """The ``FROM`` (inclusive) and ``TO`` (exclusive) values of ``first``'s month
    for a key of SQL type ``key_type``; ValueError for a type it cannot bound."""
    nxt = _month(first, 1)
    if key_type in _TEXT_TYPES:
        return first.strftime("%Y-%m"), nxt.strftime("%Y-%m")
    if key_type in _INT_TYPES:
        return (
            int(datetime(first.year, first.month, 1, tzinfo=UTC).timestamp()),
            int(datetime(nxt.year, nxt.month, 1, tzinfo=UTC).timestamp()),
        )
    if key_type in _TIME_TYPES:
        return first, nxt
    raise ValueError(f"cannot bound a partition key of type {key_type!r}")


def period_tables(conn: Any) -> list[PeriodTable]:
    """Every table of the current schema partitioned by RANGE on one column."""
    rows = conn.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), p.partnatts"
        " FROM pg_partitioned_table p"
        " JOIN pg_class c ON c.oid = p.partrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]"
        " WHERE p.partstrat = 'r' ORDER BY c.relname"
    ).fetchall()
    out = []
    for name, key, key_type, natts in rows:
        children = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            (name,),
        ).fetchall()
        default = next((child for child, bound in children if bound == "DEFAULT"), None)
        out.append(
            PeriodTable(
                name=name,
                key=key if natts == 1 else "",
                key_type=key_type if natts == 1 else "",
                default=default,
                partitions=tuple(child for child, bound in children if bound != "DEFAULT"),
            )
        )
    return out


def _create_month(conn: Any, table: PeriodTable, first: date) -> tuple[str, int]:
    """``table``'s partition of ``first``'s month with the rows DEFAULT holds of it,
    in one transaction; (partition name, rows moved)."""
    name = f"{table.name}_p{first:%Y%m}"
    lo, hi = month_bounds(table.key_type, first)
    parent, part, key = (sql.Identifier(x) for x in (table.name, name, table.key))
    moved = 0
    with conn.transaction():
        if table.default is None:
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    part, parent, sql.Literal(lo), sql.Literal(hi)
                )
            )
            return name, 0
        # ATTACH would refuse while DEFAULT holds rows of the month: move them first
        default = sql.Identifier(table.default)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                part, parent
            )
        )
        cur = conn.execute(
            sql.SQL(
                "WITH gone AS (DELETE FROM {} WHERE {} >= %s AND {} < %s RETURNING *)"
                " INSERT INTO {} SELECT * FROM gone"
            ).format(default, key, key, part),
            (lo, hi),
        )
        moved = cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                parent, part, sql.Literal(lo), sql.Literal(hi)
            )
        )
    return name, moved


OUTBOX = "outbox"


def _outbox_needs(conn: Any, name: str) -> bool:
    """The outbox partition ``name`` holds an event some hub has not acknowledged (a
    seq above the lowest ``push_state.cursor``; no push target yet: every event), or
    the outbox's highest seq, which seq allocation counts on (max(seq) + 1 must never
    fall to or below a hub's cursor, else new events are never sent)."""
    (floor,) = conn.execute("SELECT COALESCE(min(cursor), 0) FROM push_state").fetchone()
    (needed,) = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE seq > %s OR seq = (SELECT max(seq) FROM {}))"
        ).format(sql.Identifier(name), sql.Identifier(OUTBOX)),
        (floor,),
    ).fetchone()
    return bool(needed)


def _expire(conn: Any, table: PeriodTable, keep_from: date, done: Maintenance) -> None:
    for name in table.partitions:
        m = _NAME.match(name)
        if m is None or m["parent"] != table.name:
            continue  # not one of ours: an operator's own partition is theirs to drop
        if date(int(m["year"]), int(m["month"]), 1) < keep_from:
            if table.name == OUTBOX and _outbox_needs(conn, name):
                done.held.append(name)  # retention never loses an unpushed event
                continue
            with conn.transaction():
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(table.name), sql.Identifier(name)
                    )
                )
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            done.dropped.append(name)
    if table.default is not None:
        lo, _hi = month_bounds(table.key_type, keep_from)
        try:
            with conn.transaction():
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                        sql.Identifier(table.default), sql.Identifier(table.key)
                    ),
                    (lo,),
                )
        except psycopg.Error:
            # an append-only table (the outbox's trigger refuses row deletes): its old
            # rows go with their month's partition, never row by row
            done.skipped.append(table.default)
            return
        done.deleted_rows += max(cur.rowcount or 0, 0)


def maintain(conn: Any, today: date, retention_months: int) -> Maintenance:
    """Create this month's and the next :data:`MONTHS_AHEAD` months' partitions of every
    period table, and with ``retention_months`` > 0 drop what is older than the
    retention.  ``conn`` is a psycopg connection (autocommit or not: each step is its
    own transaction block)."""
    if retention_months < 0:
        raise ValueError("retention_months must be >= 0")
    done = Maintenance()
    this_month = date(today.year, today.month, 1)
    for table in period_tables(conn):
        if not table.key:
            done.skipped.append(table.name)
            continue
        try:
            month_bounds(table.key_type, this_month)
        except ValueError:
            done.skipped.append(table.name)
            continue
        if table.key_type in _INT_TYPES and not table.key.endswith("_at"):
            # an integer key is taken for Unix seconds only where the project names it so
            # (created_at, received_at): a run or batch number is not a time
            done.skipped.append(table.name)
            continue
        existing = set(table.partitions)
        for shift in range(MONTHS_AHEAD + 1):
            first = _month(this_month, shift)
            if f"{table.name}_p{first:%Y%m}" in existing:
                continue
            name, moved = _create_month(conn, table, first)
            done.created.append(name)
            done.moved_rows += moved
        if retention_months > 0:
            table = next(t for t in period_tables(conn) if t.name == table.name)
            _expire(conn, table, _month(this_month, -retention_months), done)
    return done


class PartitionKeeper:
    """The background upkeep of a node on PostgreSQL: :func:`maintain` at start and
    every ``every_s`` seconds, in one write unit of ``db`` under :data:`PARTITIONS_LOCK`.
    ``today`` is the node's clock; on SQLite :meth:`start` does nothing."""

    def __init__(
        self,
        db: Any,
        retention_months: int,
        today: Callable[[], date],
        every_s: float = KEEP_EVERY_S,
    ) -> None:
        self.db, self.retention_months, self.today, self.every_s = (
            db,
            retention_months,
            today,
            every_s,
        )
        self._task: asyncio.Task[None] | None = None

    def _unit(self, conn: Any) -> Maintenance:
        raw = pg_of(conn)
        assert raw is not None
        conn.execute(f"SELECT pg_advisory_xact_lock({PARTITIONS_LOCK:d})")
        return maintain(raw, self.today(), self.retention_months)

    async def run_once(self) -> Maintenance | None:
        """One upkeep; None (logged) when it failed."""
        try:
            done: Maintenance = await self.db.write_unit(self._unit)
        except Exception as exc:  # the next turn tries again; rows wait in DEFAULT
            log_event("partition upkeep failed", logging.WARNING, error=str(exc)[:300])
            return None
        if done.created or done.dropped or done.moved_rows or done.deleted_rows:
            log_event(
                "partitions kept",
                created=done.created,
                dropped=done.dropped,
                held=done.held,
                moved_rows=done.moved_rows,
                deleted_rows=done.deleted_rows,
            )
        return done

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.every_s)

    @property
    def running(self) -> bool:
        """Whether the upkeep task runs (only ever on PostgreSQL)."""
        return self._task is not None

    def start(self) -> None:
        if getattr(self.db, "dialect", "sqlite") == "postgresql" and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
