"""Monthly partitions on PostgreSQL: made ahead, rows out of DEFAULT, retention (issue 18).

A real PostgreSQL server (tests/support/postgres.py), a fresh database per test;
tables partitioned the way the migrations declare the period tables (RANGE on one
column, a DEFAULT partition), with the key types the maintenance supports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from node.store import connect
from node.store._db import Database
from node.store._partitions import (
    MONTHS_AHEAD,
    PartitionKeeper,
    maintain,
    month_bounds,
    period_tables,
)

TODAY = date(2026, 12, 8)
DEC_2026 = 1_796_083_200  # 2026-12-01T00:00:00Z


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE events (seq BIGINT GENERATED ALWAYS AS IDENTITY,"
            " created_at BIGINT NOT NULL, payload BYTEA NOT NULL, PRIMARY KEY (seq, created_at))"
            " PARTITION BY RANGE (created_at)"
        )
        c.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
        c.execute(
            "CREATE TABLE snaps (period TEXT NOT NULL, subject_key BYTEA NOT NULL, score INTEGER,"
            " PRIMARY KEY (period, subject_key)) PARTITION BY RANGE (period)"
        )
        c.execute("CREATE TABLE snaps_default PARTITION OF snaps DEFAULT")
        c.execute("CREATE INDEX snaps_by_subject ON snaps (subject_key)")
        yield c


def _where(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, Any]]:
    return sorted(conn.execute(f"SELECT tableoid::regclass::text, * FROM {table}").fetchall())


def test_this_month_and_the_next_are_made_ahead_once(conn: psycopg.Connection[Any]) -> None:
    """Issue 18 (monthly partitions): this month and MONTHS_AHEAD more per period
    table, named <table>_pYYYYMM; a second run creates nothing."""
    done = maintain(conn, TODAY, retention_months=0)
    months = ["202612", "202701", "202702", "202703"][: MONTHS_AHEAD + 1]
    assert sorted(done.created) == sorted(
        [f"events_p{m}" for m in months] + [f"snaps_p{m}" for m in months]
    )
    assert maintain(conn, TODAY, retention_months=0).created == []
    tables = {t.name: t for t in period_tables(conn)}
    assert tables["snaps"].key == "period" and tables["snaps"].default == "snaps_default"
    assert tables["events"].key_type == "bigint"


def test_rows_the_default_partition_caught_move_with_nothing_lost(
    conn: psycopg.Connection[Any],
) -> None:
    """Issue 18: a node down over a month boundary wrote that month into DEFAULT;
    the month's partition takes those rows in the same transaction, the others stay."""
    conn.execute(
        "INSERT INTO events (created_at, payload) VALUES (%s, 'dec'), (%s, 'old')",
        (DEC_2026 + 5, 1_600_000_000),
    )
    conn.execute("INSERT INTO snaps VALUES ('2026-12', 'a', 1), ('2025-01', 'b', 2)")
    done = maintain(conn, TODAY, retention_months=0)
    assert done.moved_rows == 2
    assert [r[0] for r in _where(conn, "events")] == ["events_default", "events_p202612"]
    assert [(r[0], r[1]) for r in _where(conn, "snaps")] == [
        ("snaps_default", "2025-01"),
        ("snaps_p202612", "2026-12"),
    ]
    # new rows of the month go to their partition; the identity keeps counting
    conn.execute("INSERT INTO events (created_at, payload) VALUES (%s, 'new')", (DEC_2026 + 9,))
    assert conn.execute("SELECT max(seq) FROM events").fetchone() == (3,)


def test_retention_drops_old_months_and_keeps_the_rest(conn: psycopg.Connection[Any]) -> None:
    """Issue 18 (retention configurable): with retention_months = 2 in March 2027,
    the partitions before January 2027 are dropped and DEFAULT's older rows deleted;
    an operator's own partition and retention 0 keep everything."""
    maintain(conn, TODAY, retention_months=0)
    conn.execute(
        "CREATE TABLE snaps_archive PARTITION OF snaps FOR VALUES FROM ('2020-01') TO ('2020-02')"
    )
    conn.execute(
        "INSERT INTO snaps VALUES ('2026-12', 'a', 1), ('2027-01', 'b', 2), ('2024-05', 'c', 3)"
    )
    assert maintain(conn, date(2027, 3, 2), retention_months=0).dropped == []
    done = maintain(conn, date(2027, 3, 2), retention_months=2)
    assert sorted(done.dropped) == ["events_p202612", "snaps_p202612"]
    assert done.deleted_rows == 1  # 2024-05, held by the DEFAULT partition
    assert [r[1] for r in _where(conn, "snaps")] == ["2027-01"]
    names = {p for t in period_tables(conn) for p in t.partitions}
    assert "snaps_archive" in names
    assert {"snaps_p202701", "snaps_p202706"} <= names


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [
        pytest.param("text", ("2026-12", "2027-01"), id="text-period"),
        pytest.param("bigint", (DEC_2026, 1_798_761_600), id="unix-seconds"),
        pytest.param("date", (date(2026, 12, 1), date(2027, 1, 1)), id="date"),
    ],
)
def test_bounds_fit_the_key_type(key_type: str, expected: tuple[Any, Any]) -> None:
    """Issue 18: a month's bounds in the partition key's own type."""
    assert month_bounds(key_type, date(2026, 12, 1)) == expected


def _negative_retention(conn: psycopg.Connection[Any]) -> object:
    return maintain(conn, TODAY, retention_months=-1)


def _bytea_key(_conn: psycopg.Connection[Any]) -> object:
    return month_bounds("bytea", TODAY)


BAD = [
    pytest.param(_negative_retention, "retention_months must be >= 0", id="negative-retention"),
    pytest.param(_bytea_key, "cannot bound a partition key of type 'bytea'", id="bytea-key"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused_with_a_clear_error(
    conn: psycopg.Connection[Any], call: Any, message: str
) -> None:
    """Issue 18: a negative retention or an unsupported key type is a clear error;
    a table keyed on a type it cannot bound is skipped by maintain, not broken."""
    with pytest.raises(ValueError, match=message):
        call(conn)
    conn.execute("CREATE TABLE blobs (k BYTEA NOT NULL) PARTITION BY RANGE (k)")
    assert "blobs" in maintain(conn, TODAY, retention_months=0).skipped


def test_the_node_schema_period_tables_get_their_months(pg_url: str) -> None:
    """Issue 18: on a node database as the node migrates it, snapshots, hub batches and
    hub leaf keys are the period tables; maintain gives each this month and the next."""
    connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        assert {t.name for t in period_tables(c)} >= {"snapshots", "hub_batches", "hub_leaf_keys"}
        created = maintain(c, TODAY, retention_months=0).created
    for table in ("snapshots", "hub_batches", "hub_leaf_keys"):
        assert f"{table}_p202612" in created
        assert f"{table}_p202703" in created


async def test_the_keeper_runs_on_postgresql_and_replicas_queue(
    pg_url: str, tmp_path: Path
) -> None:
    """Issue 18 (run by the background work; replicas): two keepers of two processes'
    databases at once both succeed (the advisory lock queues them) and the months exist
    once; on SQLite the keeper does nothing."""
    first, second = await Database.open(pg_url), await Database.open(pg_url)
    try:
        a = PartitionKeeper(first, 0, lambda: TODAY)
        b = PartitionKeeper(second, 0, lambda: TODAY)
        done = await asyncio.gather(a.run_once(), b.run_once())
        assert all(d is not None for d in done)
        made = sorted(n for d in done if d is not None for n in d.created)
        assert made.count("snapshots_p202612") == 1
    finally:
        await first.close()
        await second.close()
    lite = await Database.open(tmp_path / "node.db")
    try:
        keeper = PartitionKeeper(lite, 0, lambda: TODAY)
        keeper.start()
        assert not keeper.running  # nothing to keep on SQLite
        await keeper.stop()
    finally:
        await lite.close()


JAN_2027 = DEC_2026 + 31 * 86_400


def test_retention_keeps_unpushed_outbox_events_and_the_highest_seq(pg_url: str) -> None:
    """Issue 18 defect 11 (H13): an outbox partition past retention is dropped only when
    every hub's cursor covers it and it does not hold max(seq): nothing unpushed is lost
    and seq allocation (max + 1) never restarts below a hub's cursor."""
    connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as c:
        maintain(c, TODAY, retention_months=0)
        for seq, at in ((1, DEC_2026 + 10), (2, DEC_2026 + 20), (3, JAN_2027 + 10)):
            c.execute(
                "INSERT INTO outbox (seq, kind, event_id, payload, created_at)"
                " VALUES (%s, 'status_list', %s, '\\x00', %s)",
                (seq, f"e{seq}", at),
            )
        later = date(2027, 4, 2)  # keeps March on: December and January are past retention
        no_hub = maintain(c, later, retention_months=1)  # no push target yet: all unpushed
        assert {"outbox_p202612", "outbox_p202701"} <= set(no_hub.held)
        c.execute("INSERT INTO push_state (hub, cursor) VALUES ('a', 3), ('b', 1)")
        behind = maintain(c, later, retention_months=1)
        assert {"outbox_p202612", "outbox_p202701"} <= set(behind.held)
        assert not [n for n in behind.dropped if n.startswith("outbox_")]
        c.execute("UPDATE push_state SET cursor = 3")
        caught_up = maintain(c, later, retention_months=1)
        assert "outbox_p202612" in caught_up.dropped  # pushed to every hub, max elsewhere
        assert "outbox_p202701" in caught_up.held  # holds max(seq)
        assert c.execute("SELECT max(seq) FROM outbox").fetchone() == (3,)
