"""PostgreSQL driver comparison: asyncpg on the event loop vs psycopg 3 on a thread (ADR 0701).

Measured in one run against a throwaway local PostgreSQL (:class:`node.demo._postgres.
LocalPostgres`, unix socket, default durability: ``fsync`` and ``synchronous_commit``
on), same tables, same rows, three ways of driving them:

* **asyncpg**: ``asyncpg`` connections awaited on the event loop (prepared statements
  cached by the driver);
* **psycopg (thread)**: ``psycopg`` 3 synchronous connections, each transaction run on a
  worker thread of the connection's own (``loop.run_in_executor``), the shape ADR 0601
  prescribes for every repository (``fn(conn, ...)`` inside a unit of work);
* **psycopg (pipeline)**: the same, in pipeline mode: the read and the conditional
  update go in one round trip, the two inserts and ``COMMIT`` in a second;
* **psycopg (asyncio)**: psycopg's ``AsyncConnection`` on the event loop, for
  reference only (it tells the driver's own cost from the thread hop's).

(a) **The attestation request's write transaction** (the shape of
:func:`node.exchange._issue.issue` on the database): read the consent row, update its
use count on the condition that a use is left, insert a status-list entry and a
transparency-log entry (both indexes allocated by the database), commit.  The consents
table holds 100,000 rows; every transaction takes a fresh one (no row is hot).  8
concurrent clients.  Reported per transaction: the server's CPU (user + system time of
every PostgreSQL process, read from ``/proc/<pid>/stat``), the client's CPU (this
process, all threads), the wall time, transactions per second.

(b) **Bulk insert** of 100,000 snapshot-shaped rows (a 32-byte pseudonym, a period, a
score, a grade, a 96-byte signed blob) in one transaction: ``COPY`` (asyncpg
``copy_records_to_table``, psycopg ``cursor.copy`` with ``write_row``) vs
``executemany`` (asyncpg's, psycopg's which pipelines).

``--quick`` shrinks both (2,000 transactions, 20,000 rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg

from node.demo._postgres import LocalPostgres

__all__ = ["Figures", "run"]

CONSENTS = 100_000
CLIENTS = 8
_TICK = os.sysconf("SC_CLK_TCK")

SCHEMA = """
CREATE TABLE consents (
    consent_id    TEXT PRIMARY KEY,
    subject_key   BYTEA NOT NULL,
    audience      TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    not_after     BIGINT NOT NULL,
    max_uses      INTEGER NOT NULL CHECK (max_uses > 0),
    uses          INTEGER NOT NULL DEFAULT 0,
    binding       BYTEA NOT NULL,
    grant_payload BYTEA NOT NULL,
    granted_at    BIGINT NOT NULL,
    withdrawn_at  BIGINT
);
CREATE TABLE status_entries (
    idx            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    attestation_id TEXT NOT NULL,
    subject_key    BYTEA NOT NULL,
    consent_id     TEXT NOT NULL,
    status         SMALLINT NOT NULL DEFAULT 0,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX status_entries_by_subject ON status_entries (subject_key);
CREATE INDEX status_entries_by_consent ON status_entries (consent_id);
CREATE TABLE log_entries (
    idx         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_key BYTEA,
    kind        TEXT NOT NULL,
    leaf        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX log_entries_by_subject ON log_entries (subject_key);
CREATE TABLE snapshots (
    pseudonym BYTEA NOT NULL,
    period    TEXT NOT NULL,
    score     INTEGER NOT NULL,
    grade     TEXT NOT NULL,
    signed    BYTEA NOT NULL
);
"""

READ = (
    "SELECT subject_key, max_uses, uses, not_after, withdrawn_at"
    " FROM consents WHERE consent_id = $1"
)
USE = (
    "UPDATE consents SET uses = uses + 1"
    " WHERE consent_id = $1 AND uses < max_uses AND withdrawn_at IS NULL RETURNING uses"
)
STATUS = (
    "INSERT INTO status_entries (attestation_id, subject_key, consent_id, issued_at,"
    " expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING idx"
)
LOG = (
    "INSERT INTO log_entries (subject_key, kind, leaf, created_at)"
    " VALUES ($1, 'attestation', $2, $3) RETURNING idx"
)
SNAPSHOT_COLUMNS = ("pseudonym", "period", "score", "grade", "signed")
SNAPSHOT_INSERT = (
    "INSERT INTO snapshots (pseudonym, period, score, grade, signed) VALUES ($1, $2, $3, $4, $5)"
)


def _ps(sql: str) -> str:
    """asyncpg's ``$n`` placeholders in psycopg's ``%s`` form."""
    out = sql
    for n in range(9, 0, -1):
        out = out.replace(f"${n}", "%s")
    return out


@dataclass(frozen=True)
class Figures:
    """One variant's totals over ``n`` operations (CPU and wall in seconds)."""

    n: int
    wall: float
    client_cpu: float
    server_cpu: float

    def per_op_us(self, seconds: float) -> float:
        return seconds / self.n * 1e6


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(pg: LocalPostgres) -> dict[int, float]:
    """Per PostgreSQL process: user + system seconds (``/proc/<pid>/stat`` fields 14, 15)."""
    out: dict[int, float] = {}
    for pid in pg.server_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended between the listing and the read
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _server_delta(start: dict[int, float], end: dict[int, float]) -> float:
    # a process born during the window counts whole; one that died is lost (rare:
    # connections are opened before the window and autovacuum is off for the run)
    return sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())


async def _measure(pg: LocalPostgres, n: int, body: Callable[[], Awaitable[None]]) -> Figures:
    server0, client0, wall0 = _server_cpu(pg), _cpu_self(), time.perf_counter()
    await body()
    wall = time.perf_counter() - wall0
    return Figures(n, wall, _cpu_self() - client0, _server_delta(server0, _server_cpu(pg)))


# -- setup ----------------------------------------------------------------------------
def _setup(pg: LocalPostgres) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for table in ("consents", "status_entries", "log_entries", "snapshots"):
            # the window must see only the transactions it measures
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        with conn.cursor().copy(
            "COPY consents (consent_id, subject_key, audience, purpose, not_after, max_uses,"
            " binding, grant_payload, granted_at) FROM STDIN"
        ) as copy:
            for i in range(CONSENTS):
                copy.write_row(
                    (
                        f"c{i:07d}",
                        os.urandom(32),
                        "hainan.bank",
                        "loan",
                        4_000_000_000,
                        3,
                        os.urandom(32),
                        os.urandom(200),
                        1_700_000_000,
                    )
                )
        conn.execute("VACUUM ANALYZE consents")


def _consent_ids(start: int, n: int) -> list[str]:
    return [f"c{i:07d}" for i in range(start, start + n)]


# -- (a) the write transaction --------------------------------------------------------
async def _asyncpg_txn(pg: LocalPostgres, ids: list[str]) -> Figures:
    pool = [
        await asyncpg.connect(host=str(pg.sockets), user="huxin", database="huxin")
        for _ in range(CLIENTS)
    ]
    queue = list(reversed(ids))

    async def client(conn: asyncpg.Connection) -> None:
        while queue:
            cid = queue.pop()
            async with conn.transaction():
                row = await conn.fetchrow(READ, cid)
                if row is None or await conn.fetchval(USE, cid) is None:
                    raise RuntimeError(f"consent {cid} not usable")
                await conn.fetchval(STATUS, f"a-{cid}", row[0], cid, 1_700_000_000, 1_700_086_400)
                await conn.fetchval(LOG, row[0], os.urandom(32), 1_700_000_000)

    async def body() -> None:
        await asyncio.gather(*(client(c) for c in pool))

    try:
        return await _measure(pg, len(ids), body)
    finally:
        for c in pool:
            await c.close()


def _psycopg_one(conn: psycopg.Connection[Any], cid: str) -> None:
    with conn.transaction():
        row = conn.execute(_ps(READ), (cid,)).fetchone()
        if row is None or conn.execute(_ps(USE), (cid,)).fetchone() is None:
            raise RuntimeError(f"consent {cid} not usable")
        conn.execute(_ps(STATUS), (f"a-{cid}", row[0], cid, 1_700_000_000, 1_700_086_400))
        conn.execute(_ps(LOG), (row[0], os.urandom(32), 1_700_000_000)).fetchone()


def _psycopg_pipelined(conn: psycopg.Connection[Any], cid: str) -> None:
    with conn.pipeline(), conn.transaction():
        read = conn.execute(_ps(READ), (cid,))
        use = conn.execute(_ps(USE), (cid,))
        row, used = read.fetchone(), use.fetchone()  # first round trip: read + update
        if row is None or used is None:
            raise RuntimeError(f"consent {cid} not usable")
        conn.execute(_ps(STATUS), (f"a-{cid}", row[0], cid, 1_700_000_000, 1_700_086_400))
        conn.execute(_ps(LOG), (row[0], os.urandom(32), 1_700_000_000))
        # the second round trip: both inserts and COMMIT leave the pipeline together


async def _psycopg_txn(
    pg: LocalPostgres, ids: list[str], one: Callable[[psycopg.Connection[Any], str], None]
) -> Figures:
    conns = [psycopg.connect(pg.url, prepare_threshold=0) for _ in range(CLIENTS)]
    # one thread per connection, as the unit of work gives each connection its own
    executors = [ThreadPoolExecutor(1) for _ in conns]
    queue = list(reversed(ids))
    loop = asyncio.get_running_loop()

    async def client(conn: psycopg.Connection[Any], ex: ThreadPoolExecutor) -> None:
        while queue:
            cid = queue.pop()
            await loop.run_in_executor(ex, one, conn, cid)

    async def body() -> None:
        await asyncio.gather(*(client(c, e) for c, e in zip(conns, executors, strict=True)))

    try:
        return await _measure(pg, len(ids), body)
    finally:
        for c, e in zip(conns, executors, strict=True):
            e.shutdown()
            c.close()


async def _psycopg_async_txn(pg: LocalPostgres, ids: list[str]) -> Figures:
    """psycopg's own asyncio connection: tells the driver's cost from the thread hop's."""
    conns = [
        await psycopg.AsyncConnection.connect(pg.url, prepare_threshold=0) for _ in range(CLIENTS)
    ]
    queue = list(reversed(ids))

    async def client(conn: psycopg.AsyncConnection[Any]) -> None:
        while queue:
            cid = queue.pop()
            async with conn.transaction():
                row = await (await conn.execute(_ps(READ), (cid,))).fetchone()
                used = await (await conn.execute(_ps(USE), (cid,))).fetchone()
                if row is None or used is None:
                    raise RuntimeError(f"consent {cid} not usable")
                await conn.execute(
                    _ps(STATUS), (f"a-{cid}", row[0], cid, 1_700_000_000, 1_700_086_400)
                )
                await conn.execute(_ps(LOG), (row[0], os.urandom(32), 1_700_000_000))

    async def body() -> None:
        await asyncio.gather(*(client(c) for c in conns))

    try:
        return await _measure(pg, len(ids), body)
    finally:
        for c in conns:
            await c.close()


# -- (b) bulk insert ------------------------------------------------------------------
def _snapshot_rows(n: int) -> list[tuple[bytes, str, int, str, bytes]]:
    return [(os.urandom(32), "2026-11", 1000 + i % 100, "A", os.urandom(96)) for i in range(n)]


async def _asyncpg_bulk(pg: LocalPostgres, rows: list[Any], copy: bool) -> Figures:
    conn = await asyncpg.connect(host=str(pg.sockets), user="huxin", database="huxin")

    async def body() -> None:
        async with conn.transaction():
            if copy:
                await conn.copy_records_to_table(
                    "snapshots", records=rows, columns=SNAPSHOT_COLUMNS
                )
            else:
                await conn.executemany(SNAPSHOT_INSERT, rows)

    try:
        return await _measure(pg, len(rows), body)
    finally:
        await conn.execute("TRUNCATE snapshots")
        await conn.close()


async def _psycopg_bulk(
    pg: LocalPostgres, rows: list[Any], copy: bool, binary: bool = False
) -> Figures:
    conn = psycopg.connect(pg.url)
    ex = ThreadPoolExecutor(1)

    def work() -> None:
        with conn.transaction():
            cur = conn.cursor()
            if copy:
                fmt = " (FORMAT BINARY)" if binary else ""
                columns = ", ".join(SNAPSHOT_COLUMNS)
                with cur.copy(f"COPY snapshots ({columns}) FROM STDIN{fmt}") as cp:
                    if binary:
                        cp.set_types(["bytea", "text", "int4", "text", "bytea"])
                    for row in rows:
                        cp.write_row(row)
            else:
                cur.executemany(_ps(SNAPSHOT_INSERT), rows)

    async def body() -> None:
        await asyncio.get_running_loop().run_in_executor(ex, work)

    try:
        return await _measure(pg, len(rows), body)
    finally:
        conn.execute("TRUNCATE snapshots")
        conn.commit()
        conn.close()
        ex.shutdown()


# -- the run --------------------------------------------------------------------------
async def _all(pg: LocalPostgres, txns: int, bulk: int) -> dict[str, Figures]:
    out: dict[str, Figures] = {}
    ids = iter(range(0, CONSENTS, txns))
    # a warm-up of each variant on its own rows, then the measured window
    variants: list[tuple[str, Callable[[list[str]], Awaitable[Figures]]]] = [
        ("asyncpg", lambda i: _asyncpg_txn(pg, i)),
        ("psycopg (thread)", lambda i: _psycopg_txn(pg, i, _psycopg_one)),
        ("psycopg (pipeline)", lambda i: _psycopg_txn(pg, i, _psycopg_pipelined)),
        ("psycopg (asyncio, for reference)", lambda i: _psycopg_async_txn(pg, i)),
    ]
    for name, fn in variants:
        start = next(ids)
        await fn(_consent_ids(start, 200))
        out[f"txn {name}"] = await fn(_consent_ids(start + 200, txns - 200))
    rows = _snapshot_rows(bulk)
    bulk_variants: list[tuple[str, Callable[[], Awaitable[Figures]]]] = [
        ("asyncpg copy_records_to_table", lambda: _asyncpg_bulk(pg, rows, True)),
        ("asyncpg executemany", lambda: _asyncpg_bulk(pg, rows, False)),
        ("psycopg COPY (write_row)", lambda: _psycopg_bulk(pg, rows, True)),
        ("psycopg COPY binary (write_row)", lambda: _psycopg_bulk(pg, rows, True, True)),
        ("psycopg executemany (pipelined)", lambda: _psycopg_bulk(pg, rows, False)),
    ]
    for name, bulk_fn in bulk_variants:
        out[f"bulk {name}"] = await bulk_fn()
    return out


def measure(quick: bool) -> dict[str, Figures]:
    """Start a server, run both comparisons, stop it; the figures by variant."""
    txns, bulk = (2_000, 20_000) if quick else (10_000, 100_000)
    with (
        tempfile.TemporaryDirectory(prefix="huxin-bench-pgdrv-") as tmp,
        LocalPostgres(Path(tmp) / "pg") as pg,
    ):
        _setup(pg)
        return asyncio.run(_all(pg, txns, bulk))


def run(args: argparse.Namespace) -> str:
    figures = measure(args.quick)
    base = figures["txn psycopg (thread)"]
    lines = [
        "## PostgreSQL drivers (ADR 0701)",
        "",
        f"(a) The attestation request's write transaction (read consent, conditional use"
        f" count update, status entry, log entry, commit), {CLIENTS} concurrent clients,"
        f" fresh rows of a {CONSENTS:,}-row consents table, {base.n:,} transactions each;"
        " throwaway local PostgreSQL on a unix socket, default durability.",
        "",
        "| driver | server CPU / txn | client CPU / txn | wall / txn | txn/s |"
        " server CPU vs psycopg (thread) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, f in figures.items():
        if not key.startswith("txn "):
            continue
        lines.append(
            f"| {key[4:]} | {f.per_op_us(f.server_cpu):.0f} µs | {f.per_op_us(f.client_cpu):.0f}"
            f" µs | {f.per_op_us(f.wall):.0f} µs | {f.n / f.wall:,.0f} |"
            f" {f.server_cpu / base.server_cpu * base.n / f.n:.2f}x |"
        )
    bulk = next(f for k, f in figures.items() if k.startswith("bulk "))
    lines += [
        "",
        f"(b) Bulk insert of {bulk.n:,} snapshot-shaped rows in one transaction.",
        "",
        "| path | wall | rows/s | client CPU | server CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, f in figures.items():
        if key.startswith("bulk "):
            lines.append(
                f"| {key[5:]} | {f.wall:.2f} s | {f.n / f.wall:,.0f} | {f.client_cpu:.2f} s"
                f" | {f.server_cpu:.2f} s |"
            )
    lines += ["", f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.pg_drivers")
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args()))
