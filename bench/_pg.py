"""The PostgreSQL server the benchmarks measure against, and the figures read from it.

One throwaway local server per benchmark module (:class:`node.demo._postgres.
LocalPostgres`, unix socket), with the settings a small production server would
have rather than a test server's: 512 MB of shared buffers, default durability
(``fsync`` and ``synchronous_commit`` on: every commit is flushed, stricter than
the node's SQLite, which runs WAL with ``synchronous = NORMAL``).

Invariants: every database a benchmark uses is fresh (:func:`fresh_database`);
the server's CPU is the user + system time of all its processes from
``/proc/<pid>/stat`` (:func:`server_cpu`), read the same way as a node's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from node.demo._postgres import LocalPostgres

__all__ = ["SETTINGS", "fresh_database", "pg_server", "server_cpu", "storage_toml"]

SETTINGS = {
    "shared_buffers": "512MB",
    "max_connections": "200",
    "max_wal_size": "4GB",  # a million-row COPY does not force checkpoints mid-run
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
}
_TICK = os.sysconf("SC_CLK_TCK")
_names = itertools.count(1)


@contextlib.contextmanager
def pg_server() -> Iterator[LocalPostgres]:
    """A started server for one benchmark module; stopped and removed after it."""
    with (
        tempfile.TemporaryDirectory(prefix="huxin-bench-pg-") as tmp,
        LocalPostgres(Path(tmp) / "pg", settings=SETTINGS) as pg,
    ):
        yield pg


def fresh_database(pg: LocalPostgres, prefix: str) -> str:
    """A new empty database on ``pg``; its URL."""
    name = f"{prefix}_{next(_names)}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return pg.url.replace(f"/{pg.database}?", f"/{name}?", 1)


def storage_toml(url: str) -> str:
    """The ``[storage]`` section that puts a node on ``url``."""
    return f'\n[storage]\nurl = "{url}"\n'


def server_cpu(pg: LocalPostgres) -> float:
    """User + system CPU seconds of the server so far: the postmaster's own and that of
    its ended children (``cutime``/``cstime``: it reaps every backend), plus the live
    children's, so short connections (a CLI's) count too."""
    total = 0.0
    for n, pid in enumerate(pg.server_pids()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that ended between the listing and the read
        total += int(fields[11]) + int(fields[12])
        if n == 0:  # the postmaster: add its reaped children
            total += int(fields[13]) + int(fields[14])
    return total / _TICK
