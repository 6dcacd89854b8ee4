"""The storage contract, run against both backends: SQLite and a real PostgreSQL
server (issue 18; docs/adr/0601, 0700).

Every test takes ``storage_url`` (tests/support/postgres.py), so it runs once on a
fresh SQLite file and once on a fresh PostgreSQL database: migration, units of work
(commit, rollback, group commit with a failing unit rolled back alone), reads of
committed state only, error mapping, refusal of a newer schema.  The PostgreSQL-only
faults (a backend terminated, the server stopped) are at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from sqlite3 import InternalError
from typing import Any

import pytest

from node.store import (
    SCHEMA_VERSION,
    Connection,
    IntegrityError,
    OperationalError,
    StorageError,
    StorageUnavailable,
    connect,
    dialect,
    savepoint,
)
from node.store._db import Database
from node.store._pg_local import LocalPostgres
from tests._waiting import WAIT_S


@pytest.fixture
async def db(storage_url: str) -> AsyncIterator[Database]:
    opened = await Database.open(storage_url)
    try:
        yield opened
    finally:
        await opened.close()


def _put(key: str, value: str = "v") -> Any:
    def unit(conn: Connection) -> str:
        conn.execute("INSERT INTO node_meta (key, value) VALUES (?, ?)", (key, value))
        return key

    return unit


async def _keys(db: Database) -> set[str]:
    return {row[0] for row in await db.fetchall("SELECT key FROM node_meta")}


async def test_open_migrates_to_the_schema_version(storage_url: str, db: Database) -> None:
    """Issue 18: numbered migrations for both backends, applied at start."""
    conn = connect(storage_url, readonly=True)  # readonly: checks the version, no migration
    try:
        assert dialect(conn) == db.dialect == storage_url.partition(":")[0]
    finally:
        conn.close()
    assert await _keys(db) == set()


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "batch"])
async def test_write_unit_commits_and_a_failing_unit_rolls_back(db: Database, quick: bool) -> None:
    """Issue 18 / ADR 0601: a unit commits whole or not at all."""
    assert await db.write_unit(_put("a"), quick=quick) == "a"

    def fails(conn: Connection) -> None:
        conn.execute("INSERT INTO node_meta (key, value) VALUES ('b', 'v')")
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await db.write_unit(fails, quick=quick)
    assert await _keys(db) == {"a"}


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "batch"])
async def test_group_commit_rolls_back_the_failing_unit_alone(db: Database, quick: bool) -> None:
    """ADR 0601: concurrent units share one transaction, one SAVEPOINT each."""
    committed: list[str] = []

    def fails(conn: Connection) -> None:
        conn.execute("INSERT INTO node_meta (key, value) VALUES ('bad', 'v')")
        raise ValueError("refused")

    oks = [
        asyncio.ensure_future(db.write_unit(_put(f"k{i}"), committed.append, quick=quick))
        for i in range(12)
    ]
    bad = asyncio.ensure_future(db.write_unit(fails, quick=quick))
    dup = asyncio.ensure_future(db.write_unit(_put("k0"), quick=quick))  # key taken above
    assert await asyncio.gather(*oks) == [f"k{i}" for i in range(12)]
    with pytest.raises(ValueError, match="refused"):
        await bad
    with pytest.raises(IntegrityError):
        await dup
    assert committed == [f"k{i}" for i in range(12)]  # after-hooks in commit order
    assert await _keys(db) == {f"k{i}" for i in range(12)}


async def test_read_unit_sees_only_committed_data(db: Database) -> None:
    """ADR 0601: readers never see a unit's writes before its COMMIT."""
    inside, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> None:
        conn.execute("INSERT INTO node_meta (key, value) VALUES ('pending', 'v')")
        inside.set()
        assert release.wait(WAIT_S)

    writing = asyncio.ensure_future(db.write_unit(slow))
    assert await asyncio.to_thread(inside.wait, WAIT_S)
    try:
        assert await db.read_unit(
            lambda c: c.execute("SELECT count(*) FROM node_meta").fetchone()
        ) == (0,)
    finally:
        release.set()
    await writing
    assert await _keys(db) == {"pending"}


async def test_integrity_errors_are_the_stores_on_both_backends(db: Database) -> None:
    """Issue 18: one ``except node.store.IntegrityError`` serves both backends."""
    await db.write_unit(_put("x"))
    with pytest.raises(IntegrityError) as caught:
        await db.write_unit(_put("x"))
    assert isinstance(caught.value, IntegrityError)
    assert await _keys(db) == {"x"}


async def test_savepoint_lets_a_unit_go_on_after_a_failed_statement(db: Database) -> None:
    """On PostgreSQL a failed statement aborts the transaction unless a savepoint
    was set: ``savepoint`` makes both backends behave alike (docs/adr/0700)."""

    def unit(conn: Connection) -> str:
        conn.execute("INSERT INTO node_meta (key, value) VALUES ('y', '1')")
        try:
            with savepoint(conn):
                conn.execute("INSERT INTO node_meta (key, value) VALUES ('y', '2')")
        except IntegrityError:
            conn.execute("UPDATE node_meta SET value = '3' WHERE key = 'y'")
        return "done"

    assert await db.write_unit(unit) == "done"
    assert await db.fetchone("SELECT value FROM node_meta WHERE key = ?", ("y",)) == ("3",)


async def test_rows_are_tuples_with_bytes_and_placeholders_survive_literals(db: Database) -> None:
    """The adapter's translation leaves ``?`` and ``%`` in literals alone."""
    row = await db.fetchone("SELECT '?', 'a%b', ?, ? || '%'", (b"\x00\x01", "x"))
    assert row is not None
    assert tuple(row) == ("?", "a%b", b"\x00\x01", "x%")
    assert isinstance(row, tuple)


def _set_version(url: str, version: int) -> None:
    conn = connect(url)
    try:
        if dialect(conn) == "postgresql":
            conn.execute("UPDATE schema_version SET version = ?", (version,))
        else:
            conn.execute(f"PRAGMA user_version = {version:d}")
    finally:
        conn.close()


async def test_a_newer_schema_is_refused(storage_url: str) -> None:
    """Issue 18: a database of a newer schema is refused, on both backends."""
    _set_version(storage_url, SCHEMA_VERSION + 1)
    with pytest.raises(StorageError) as caught:
        connect(storage_url)
    assert caught.value.code == "SCHEMA_TOO_NEW"
    with pytest.raises(StorageError) as opened:
        await Database.open(storage_url)
    assert opened.value.code == "SCHEMA_TOO_NEW"


async def test_after_hooks_run_only_for_committed_units(db: Database) -> None:
    """ADR 0601: ``after`` mirrors committed rows: never run for a rolled-back unit."""
    seen: list[str] = []

    def fails(conn: Connection) -> str:
        conn.execute("INSERT INTO node_meta (key, value) VALUES ('no', 'v')")
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await db.write_unit(fails, seen.append)
    await db.write_unit(_put("yes"), seen.append)
    assert seen == ["yes"]


async def test_close_lets_queued_units_commit_then_refuses_new_ones(storage_url: str) -> None:
    """ADR 0601: units queued before ``close`` commit; later ones are refused."""
    db = await Database.open(storage_url)
    queued = [asyncio.ensure_future(db.write_unit(_put(f"q{i}"))) for i in range(5)]
    await asyncio.sleep(0)  # queued, not yet run
    await db.close()
    assert await asyncio.gather(*queued) == [f"q{i}" for i in range(5)]
    with pytest.raises(RuntimeError, match="closed"):
        await db.write_unit(_put("late"))
    reopened = await Database.open(storage_url)
    try:
        assert await _keys(reopened) == {f"q{i}" for i in range(5)}
    finally:
        await reopened.close()


# -- PostgreSQL only: faults ------------------------------------------------------------


async def test_a_backend_lost_in_a_unit_fails_it_and_the_next_unit_reconnects(
    postgres_server: LocalPostgres, pg_url: str
) -> None:
    """Issue 18: a connection lost inside a unit is UNAVAILABLE (StorageUnavailable),
    nothing of that unit is committed, and the next unit reconnects; connections
    that die while idle are replaced without a failure."""
    db = await Database.open(pg_url)
    try:
        await db.write_unit(_put("before"))

        def dies(conn: Connection) -> None:
            conn.execute("INSERT INTO node_meta (key, value) VALUES ('lost', 'v')")
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        with pytest.raises(StorageUnavailable) as caught:
            await db.write_unit(dies)
        assert caught.value.code == "STORAGE_UNAVAILABLE"
        assert await db.write_unit(_put("after")) == "after"
        dbname = pg_url.rpartition("/")[2].partition("?")[0]
        postgres_server.terminate(dbname)  # every idle connection, writer and readers
        assert await db.write_unit(_put("idle-killed")) == "idle-killed"
        assert await _keys(db) == {"before", "after", "idle-killed"}
    finally:
        await db.close()


async def test_server_down_fails_fast_then_recovers() -> None:
    """Issue 18: while PostgreSQL is down units fail with StorageUnavailable; after
    it restarts (immediate shutdown, as a crash) they succeed, and what was
    acknowledged before is still there."""
    with LocalPostgres() as server:
        url = server.create_database("down")
        db = await Database.open(url)
        try:
            await db.write_unit(_put("acknowledged"))
            server.stop_server("immediate")
            with pytest.raises(StorageUnavailable):
                await db.write_unit(_put("refused"))
            server.start_server()
            assert await db.write_unit(_put("later")) == "later"
            assert await _keys(db) == {"acknowledged", "later"}
        finally:
            await db.close()


# -- PostgreSQL only: threads, pool, locks ----------------------------------------------


async def test_on_postgresql_no_unit_runs_on_the_event_loop_thread(pg_url: str) -> None:
    """ADR 0700: network round trips never block the loop, quick units included."""
    db = await Database.open(pg_url)
    try:
        loop_thread = threading.get_ident()
        seen = await asyncio.gather(
            db.write_unit(lambda c: threading.get_ident(), quick=True),
            db.write_unit(lambda c: threading.get_ident()),
            db.read_unit(lambda c: threading.get_ident()),
        )
        assert loop_thread not in seen
    finally:
        await db.close()


async def test_postgresql_readers_run_concurrently(pg_url: str) -> None:
    """ADR 0700: reads on a pool of threads, each with its connection (two reads
    wait for each other at a barrier: they can only pass it together)."""
    db = await Database.open(pg_url, readers=2)
    barrier = threading.Barrier(2, timeout=WAIT_S)

    def read(conn: Connection) -> int:
        barrier.wait()
        return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])

    try:
        pids = await asyncio.gather(db.read_unit(read), db.read_unit(read))
        assert len(set(pids)) == 2
    finally:
        await db.close()


def test_cross_process_locks_on_postgresql(pg_url: str) -> None:
    """ADR 0700: offline_job and writer_turn are no-ops on PostgreSQL;
    exclusive_writer holds its advisory lock for the block and releases it."""
    from node.store import exclusive_writer, offline_job, writer_turn
    from node.store._lease import scoped_key_sql
    from node.store._locks import EXCLUSIVE_LOCK

    probe = connect(pg_url)
    try:
        # the key is per database and schema (docs/adr/0702)
        (key,) = probe.execute(f"SELECT {scoped_key_sql('?')}", (EXCLUSIVE_LOCK,)).fetchone()
        with offline_job(pg_url), writer_turn(pg_url) as turn, turn:
            pass
        with exclusive_writer(pg_url):
            held = probe.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()
            assert held == (False,)
        assert probe.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone() == (True,)
    finally:
        probe.close()


@pytest.mark.parametrize("others", [0, 3], ids=["alone", "in-a-group"])
async def test_a_unit_that_swallows_a_failed_statement_is_not_acknowledged_on_postgresql(
    pg_url: str, others: int
) -> None:
    """ADR 0700: on PostgreSQL a failed statement aborts the transaction; a unit that
    catches the error without ``savepoint`` fails (never a silent ROLLBACK reported
    as a COMMIT), and the units grouped with it still commit."""
    db = await Database.open(pg_url)
    try:
        await db.write_unit(_put("taken"))

        def swallows(conn: Connection) -> str:
            with contextlib.suppress(IntegrityError):  # no savepoint: the mistake under test
                conn.execute("INSERT INTO node_meta (key, value) VALUES ('taken', 'v')")
            return "looks fine"

        fellows = [asyncio.ensure_future(db.write_unit(_put(f"f{i}"))) for i in range(others)]
        with pytest.raises(Exception) as caught:
            await db.write_unit(swallows)
        assert isinstance(caught.value, OperationalError | InternalError)
        await asyncio.gather(*fellows)
        assert await _keys(db) == {"taken"} | {f"f{i}" for i in range(others)}
    finally:
        await db.close()


def test_a_readonly_connection_refuses_writes(storage_url: str) -> None:
    """``connect(target, readonly=True)`` (``huxin status`` and the other read-only
    commands) cannot write, on either backend."""
    connect(storage_url).close()  # create and migrate
    conn = connect(storage_url, readonly=True)
    try:
        with pytest.raises((OperationalError, InternalError)):
            conn.execute("INSERT INTO node_meta (key, value) VALUES ('k', 'v')")
    finally:
        conn.close()


def test_savepoint_outside_a_transaction_is_a_transaction(storage_url: str) -> None:
    """``savepoint`` on a batch job's autocommit connection: the block commits whole
    or not at all, on both backends."""
    conn = connect(storage_url)
    try:

        def twice() -> None:
            with savepoint(conn):
                conn.execute("INSERT INTO node_meta (key, value) VALUES ('s', '1')")
                conn.execute("INSERT INTO node_meta (key, value) VALUES ('s', '2')")

        with pytest.raises(IntegrityError):
            twice()
        assert not conn.in_transaction
        with savepoint(conn):
            conn.execute("INSERT INTO node_meta (key, value) VALUES ('t', '1')")
        rows = conn.execute("SELECT key FROM node_meta ORDER BY key").fetchall()
        assert [tuple(r) for r in rows] == [("t",)]
    finally:
        conn.close()
