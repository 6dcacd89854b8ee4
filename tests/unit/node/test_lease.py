"""The background lease and its gate on a real PostgreSQL (issue 18 "Replicas",
docs/adr/0702): one holder at a time, a takeover when the holder's session ends
or its process dies, the loss noticed at once, work stopped before anything else.

No timing assertions: every wait is a bounded poll on a condition (tests/_waiting.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest

from node.rpc._background import BackgroundGate
from node.store._dense import DENSE_INDEXES
from node.store._lease import (
    BACKGROUND,
    AdvisoryLease,
    LeaseLost,
    ProcessLease,
    lock_key,
    scoped_key_sql,
)
from node.store._pg import PgConnection
from tests._waiting import WAIT_S, until


def _lease(url: str, name: str = BACKGROUND) -> AdvisoryLease:
    """A lease that pings its session five times a second (quick to notice in tests) and
    lets a ping take as long as a busy machine needs (never a false loss here)."""
    return AdvisoryLease(url, name, check_seconds=0.2, check_timeout=WAIT_S, idle_seconds=120)


async def _take(lease: AdvisoryLease) -> None:
    """Poll until ``lease`` is taken (a busy machine may miss one attempt's bound)."""
    deadline = time.monotonic() + WAIT_S
    while not await lease.try_acquire():
        assert time.monotonic() < deadline, "the free lease was never taken"
        await asyncio.sleep(0.1)


async def _holder_pid(url: str, key: int | None) -> int | None:
    """The backend pid holding advisory lock ``key`` in this database (None: free)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s",
            (key,),
        )
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def _terminate(url: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_the_lock_key_is_stable_and_per_name() -> None:
    """ADR 0702: the key is derived from the name (a release never changes it)."""
    assert lock_key(BACKGROUND) == lock_key("huxin/background")
    assert lock_key(BACKGROUND) != lock_key("huxin/dense-indexes")
    assert -(2**63) <= lock_key(BACKGROUND) < 2**63
    assert lock_key(BACKGROUND, "db", "a") != lock_key(BACKGROUND, "db", "b")


_SERVER_KEEPALIVES = (
    "idle_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
)


def _in_schema(url: str, schema: str) -> str:
    """``url`` with a search_path of its own: one node's schema in a shared database."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


async def test_keys_are_per_database_and_schema_and_the_lease_sets_server_keepalives(
    pg_url: str,
) -> None:
    """Issue 18 "Replicas", ADR 0702: the key the session computes is lock_key of
    (database, schema, name); the lease session carries the server-side keepalives
    that free a vanished holder's lock (client keepalives never do)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT current_database(), current_schema(), {scoped_key_sql('%s')}",
            (BACKGROUND,),
        ).fetchone()
    assert row is not None
    database, schema, key = row
    assert key == lock_key(BACKGROUND, database, schema or "")
    lease = _lease(pg_url)
    try:
        await _take(lease)
        assert lease.key == key
        assert lease._conn is not None
        # set by the session (SHOW reads 0 on this test's Unix socket: TCP only)
        cur = await lease._conn.execute(
            "SELECT name FROM pg_settings WHERE source = 'session' AND name = ANY(%s)",
            (list(_SERVER_KEEPALIVES),),
        )
        assert {name for (name,) in await cur.fetchall()} == set(_SERVER_KEEPALIVES)
    finally:
        await lease.release()


async def test_two_nodes_in_one_database_a_schema_each_hold_a_lease_each(pg_url: str) -> None:
    """Issue 18 "Replicas", ADR 0702: two nodes sharing a database (a schema each by
    search_path) never share the background lease nor queue on one dense-index lock."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for schema in ("node_a", "node_b"):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    a = _lease(_in_schema(pg_url, "node_a"))
    a2 = _lease(_in_schema(pg_url, "node_a"))
    b = _lease(_in_schema(pg_url, "node_b"))
    try:
        await _take(a)
        await _take(b)
        assert a.held and b.held and a.key != b.key
        assert not await a2.try_acquire()  # a replica of node A still waits for A's lease
    finally:
        for lease in (a, a2, b):
            await lease.release()
    lock = f"SELECT pg_advisory_xact_lock({scoped_key_sql('%s')})"
    with (
        psycopg.connect(_in_schema(pg_url, "node_a")) as one,
        psycopg.connect(_in_schema(pg_url, "node_b")) as two,
    ):
        one.execute(lock, (DENSE_INDEXES,))
        two.execute("SET lock_timeout = '30s'")
        two.execute(lock, (DENSE_INDEXES,))  # node B's writer does not wait for node A's
        one.rollback()
        two.rollback()


async def test_a_fenced_write_fails_once_the_lock_is_gone(pg_url: str) -> None:
    """Issue 18 "Replicas", ADR 0702 (fencing): background work checks the lease
    inside its write transaction; once the server freed the lock (here the session is
    terminated; likewise a timeout or a restart) the check raises LeaseLost even
    though the old holder has not noticed yet, and a fence of a lease never held fails."""
    lease = _lease(pg_url)
    writer = PgConnection(pg_url)
    try:
        with pytest.raises(LeaseLost, match="not held"):
            lease.fence().check(writer)
        await _take(lease)
        fence = lease.fence()
        fence.check(writer)  # held by the recorded backend: passes
        assert fence.pid is not None
        await _terminate(pg_url, fence.pid)
        deadline = time.monotonic() + WAIT_S
        while await _holder_pid(pg_url, fence.key) is not None:
            assert time.monotonic() < deadline, "the terminated session kept the lock"
            await asyncio.sleep(0.1)
        with pytest.raises(LeaseLost, match="was lost"):
            fence.check(writer)
    finally:
        writer.close()
        await lease.release()


async def test_a_lock_dropped_under_a_live_session_is_a_lost_lease(pg_url: str) -> None:
    """ADR 0702: a pooler resetting the server session (PgBouncer's DISCARD ALL ends
    advisory locks) leaves the socket open; the ping checks pg_locks and reports it."""
    lease = _lease(pg_url)
    try:
        await _take(lease)
        assert lease._conn is not None
        watching = asyncio.ensure_future(lease.watch())
        await lease._conn.execute("SELECT pg_advisory_unlock_all()")
        await asyncio.wait_for(watching, 60)
        assert not lease.held and lease.pid is None
    finally:
        await lease.release()


async def test_a_server_session_already_holding_the_lock_is_refused(pg_url: str) -> None:
    """ADR 0702: behind a transaction-mode pooler two clients may get one server session,
    where pg_try_advisory_lock is re-entrant; the second acquisition sees the session
    already holds the lock and refuses (simulated: the second lease gets the first's
    connection)."""
    first, second = _lease(pg_url), _lease(pg_url)
    try:
        await _take(first)
        second._conn = first._conn
        assert not await second.try_acquire()
        assert not second.held and first.held
    finally:
        second._conn = None
        await first.release()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"check_seconds": 0}, "positive", id="check_seconds_zero"),
        pytest.param({"check_timeout": -1}, "positive", id="check_timeout_negative"),
        pytest.param(
            {"check_seconds": 5, "check_timeout": 5, "idle_seconds": 10},
            "idle_seconds must exceed",
            id="idle_not_longer_than_a_holders_silence",
        ),
    ],
)
def test_bad_lease_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    """ADR 0702: the server must never end a live holder's session between two pings."""
    with pytest.raises(ValueError, match=message):
        AdvisoryLease("postgresql:///nowhere", **settings)


async def test_one_holder_at_a_time_and_a_release_hands_it_over(pg_url: str) -> None:
    """Issue 18 "Replicas": two replicas, one lease; the second gets it once it is free."""
    first, second = _lease(pg_url), _lease(pg_url)
    try:
        await _take(first)
        assert first.held
        assert not await second.try_acquire() and not second.held
        assert await first.try_acquire()  # holding: asking again changes nothing
        await first.release()
        assert not first.held
        await _take(second)
        assert not await first.try_acquire()
    finally:
        await first.release()
        await second.release()


async def test_other_names_are_other_leases(pg_url: str) -> None:
    """Two names, two locks: a lease is never taken by a lock of another name."""
    a, b = _lease(pg_url, "huxin/a"), _lease(pg_url, "huxin/b")
    try:
        await _take(a)
        await _take(b)
        assert a.held and b.held
    finally:
        await a.release()
        await b.release()


async def test_a_terminated_session_is_noticed_at_once_and_the_lock_is_free(
    pg_url: str,
) -> None:
    """ADR 0702: the holder waits on its session's socket; a session the server ends
    (here pg_terminate_backend; likewise a database restart) ends watch() with the
    lease lost, and another replica can take it."""
    holder, other = _lease(pg_url), _lease(pg_url)
    try:
        await _take(holder)
        pid = await _holder_pid(pg_url, holder.key)
        assert pid is not None
        watching = asyncio.ensure_future(holder.watch())
        await asyncio.sleep(0)
        assert not watching.done()
        await _terminate(pg_url, pid)
        await asyncio.wait_for(watching, 60)  # returns (never raises) once lost
        assert not holder.held
        await _take(other)
    finally:
        await holder.release()
        await other.release()


_CHILD = """
import asyncio, sys
from node.store._lease import AdvisoryLease
async def main():
    lease = AdvisoryLease(sys.argv[1], check_seconds=0.2, check_timeout=60, idle_seconds=120)
    while not await lease.try_acquire():
        await asyncio.sleep(0.1)
    print("held", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_a_killed_holder_frees_the_lease_for_a_polling_replica(pg_url: str) -> None:
    """Issue 18: SIGKILL the holder's process; the server ends its session, so the
    next poll of another replica takes the lease (no expiry to wait for)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, pg_url], stdout=subprocess.PIPE, text=True
    )
    other = _lease(pg_url)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        assert not await other.try_acquire()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        await _take(other)  # the killed holder's session ended: its lock is free
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
        await other.release()


async def test_an_unreachable_database_is_no_lease_and_no_error() -> None:
    """A replica started while the database is down keeps polling (False, logged)."""
    lease = _lease("postgresql:///huxin?host=/nonexistent-socket-dir")
    assert not await lease.try_acquire()
    assert not lease.held
    await lease.watch()  # not held: returns at once
    await lease.release()


async def test_sqlite_s_process_lease_is_always_held_until_released() -> None:
    """ADR 0702: on SQLite the one serving process holds the lease."""
    lease = ProcessLease()
    assert await lease.try_acquire() and lease.held
    watching = asyncio.ensure_future(lease.watch())
    await asyncio.sleep(0.01)
    assert not watching.done()
    await lease.release()
    await asyncio.wait_for(watching, 60)
    assert not lease.held


class _Work:
    """Background work that records its starts and stops."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def begin(self) -> None:
        self.events.append("begin")

    async def end(self) -> None:
        self.events.append("end")

    @property
    def running(self) -> bool:
        return bool(self.events) and self.events[-1] == "begin"


async def test_the_gate_runs_work_on_one_replica_and_hands_it_over(pg_url: str) -> None:
    """Issue 18: background work runs on exactly one replica; the other takes over when
    the holder stops (and stops its own work first)."""
    w1, w2 = _Work(), _Work()
    g1 = BackgroundGate(_lease(pg_url), w1.begin, w1.end, poll_seconds=0.1)
    g2 = BackgroundGate(_lease(pg_url), w2.begin, w2.end, poll_seconds=0.1)
    try:
        await g1.start()  # the first attempt is made before start returns
        await until(lambda: g1.running, "the first replica to take the lease")
        assert w1.events == ["begin"]
        await g2.start()
        assert not g2.running and w2.events == []
        await g1.stop()
        assert w1.events == ["begin", "end"] and not g1.running
        await until(lambda: g2.running, "the second replica to take the lease")
        assert w2.events == ["begin"]
    finally:
        await g1.stop()
        await g2.stop()
    assert w2.events == ["begin", "end"]


async def test_the_gate_stops_work_when_the_session_is_lost_and_takes_it_again(
    pg_url: str,
) -> None:
    """ADR 0702: a lost lease stops the work at once; when the lock is free again the
    replica takes it and starts the work again (one start per holding)."""
    work = _Work()
    lease = _lease(pg_url)
    gate = BackgroundGate(lease, work.begin, work.end, poll_seconds=0.1)
    try:
        await gate.start()
        await until(lambda: gate.running, "the lease taken")
        pid = await _holder_pid(pg_url, lease.key)
        assert pid is not None
        await _terminate(pg_url, pid)
        await until(lambda: gate.lost == 1, "the loss to be noticed")
        await until(lambda: gate.taken == 2 and gate.running, "the lease taken again")
        assert work.events == ["begin", "end", "begin"]
    finally:
        await gate.stop()
    assert work.events[-1] == "end"


async def test_sqlite_gate_starts_work_before_start_returns() -> None:
    """On SQLite the gate is transparent: work starts in start(), ends in stop()."""
    work = _Work()
    gate = BackgroundGate(ProcessLease(), work.begin, work.end)
    await gate.start()
    assert gate.running and work.events == ["begin"]
    await gate.stop()
    assert work.events == ["begin", "end"] and not gate.running


async def test_a_failing_start_of_the_work_does_not_end_the_gate(pg_url: str) -> None:
    """An error of the work's own start is logged; the lease stays held and stop() ends
    whatever did start."""
    ended: list[bool] = []

    async def broken() -> None:
        raise RuntimeError("peer sync misconfigured")

    async def end() -> None:
        ended.append(True)

    gate = BackgroundGate(ProcessLease(), broken, end)
    await gate.start()
    assert gate.running
    await gate.stop()
    assert ended == [True]


class _BrokenWatch(ProcessLease):
    """A lease whose first watch fails with an error of its own (not a lost session)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def watch(self) -> None:
        if self.broken:
            self.broken = False
            raise RuntimeError("driver bug")
        await super().watch()


async def test_a_watch_that_fails_counts_as_a_lost_lease() -> None:
    """ADR 0702: work never runs unwatched: a watch that raises stops the work and gives
    the lease up; the next poll takes it again and starts the work once more."""
    work = _Work()
    gate = BackgroundGate(_BrokenWatch(), work.begin, work.end, poll_seconds=0.01)
    try:
        await gate.start()
        await until(lambda: gate.taken == 2 and gate.running, "the lease taken again")
        assert work.events == ["begin", "end", "begin"]
        assert gate.lost == 1
    finally:
        await gate.stop()
