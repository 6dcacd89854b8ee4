"""Every file Huxin writes is the owner's alone, test fixtures included (issue 14 item 19).

``huxin`` sets ``umask 077`` in its ``main``; library callers (the tests, tools,
benchmarks) do not, so the database factories and the test fixtures set modes
themselves.  Each case runs under ``umask 000``, where anything created without
an explicit mode would be readable (and writable) by every local user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.store import connect
from node.store._db import Database

from ._population_fixtures import Populations, copy_of


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _sync_connect(d: Path) -> None:
    conn = connect(d / "n.db")
    conn.execute("INSERT INTO node_meta VALUES ('k', 'v')")  # a WAL and its index exist
    conn.close()


def _database_open(d: Path) -> None:
    async def run() -> None:
        db = await Database.open(d / "n.db")
        try:
            await db.write_unit(lambda c: c.execute("INSERT INTO node_meta VALUES ('k', 'v')"))
        finally:
            await db.close()

    asyncio.run(run())


def _population(d: Path) -> None:
    populations = Populations(d)
    db = populations.db("heihe", 40, 3)
    conn = connect(db, readonly=True)  # as the tests read it: -wal and -shm appear
    conn.execute("SELECT count(*) FROM subjects").fetchone()
    conn.close()


def _population_copy(d: Path) -> None:
    source = d / "source"
    source.mkdir(mode=0o700)
    Populations(source).db("heihe", 40, 3)
    copy_of(source / "heihe-40-3.db", d / "copy")


CASES: dict[str, Callable[[Path], None]] = {
    "storage-connect": _sync_connect,
    "database-open": _database_open,
    "population-fixture": _population,
    "population-copy": _population_copy,
}


@pytest.mark.parametrize("make", list(CASES.values()), ids=list(CASES))
def test_files_are_owner_only_whatever_the_umask(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """Issue 14 item 19, REQ privacy: files 0600, directories 0700, under umask 000."""
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    with _umask(0):
        make(work)
    found = sorted(work.rglob("*"))
    assert any(p.is_file() for p in found)
    modes = {str(p.relative_to(work)): stat.S_IMODE(p.stat().st_mode) for p in found}
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (work / name).is_dir() else 0o600)
    }
    assert wrong == {}, modes


def test_the_population_fixture_lives_in_the_sessions_temp_dir(
    populations: Populations, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 14 item 19: the shared populations are generated under this session's
    pytest basetemp (removed by the fixture at the end), not in the system temp dir."""
    db = populations.db()
    assert db.is_relative_to(tmp_path_factory.getbasetemp())
    assert stat.S_IMODE(populations.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
