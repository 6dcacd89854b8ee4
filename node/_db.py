"""The node's database handle: one writer and one reader aiosqlite connection.

Invariants:

* all writes go through :meth:`Database.write`, which serialises writers with
  an asyncio lock, runs ``BEGIN IMMEDIATE`` … ``COMMIT`` and rolls back on any
  exception: multi-row work is one transaction and a caller acknowledges only
  after the context manager has returned (i.e. after COMMIT);
* reads use a separate connection, so they never see another coroutine's
  uncommitted writes (WAL gives them the last committed snapshot);
* the schema is migrated by :mod:`node._storage` when the writer opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from node._storage import connect_async

__all__ = ["Database", "Tx"]


class Tx:
    """An open write transaction: its connection and hooks run right after COMMIT.

    Hooks run synchronously while the writer lock is still held, so in-memory
    state that mirrors committed rows (e.g. the Merkle tree of the log) is
    updated in commit order and never for a rolled-back transaction.
    """

    __slots__ = ("_hooks", "conn")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._hooks: list[Callable[[], None]] = []

    def after_commit(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(sql, params)
        count = cur.rowcount
        await cur.close()
        return int(count)

    async def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, rows)


class Database:
    """Writer + reader connections to one node SQLite file."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        writer = await connect_async(path)
        reader = await aiosqlite.connect(Path(path), isolation_level=None)
        await reader.execute("PRAGMA foreign_keys = ON")
        await reader.execute("PRAGMA busy_timeout = 10000")
        return cls(writer, reader)

    async def close(self) -> None:
        async with self._lock:
            await self._writer.close()
        await self._reader.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction; committed when the block exits normally."""
        async with self._lock:
            conn = self._writer
            await conn.execute("BEGIN IMMEDIATE")
            tx = Tx(conn)
            try:
                yield tx
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            commit = asyncio.ensure_future(conn.execute("COMMIT"))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                await commit  # the COMMIT runs to its end; mirror it, then stop
                for hook in tx._hooks:
                    hook()
                raise
            for hook in tx._hooks:
                hook()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._reader.execute(sql, params) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())
