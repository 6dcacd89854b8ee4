"""Replicas of one region on one PostgreSQL, as real ``huxin serve`` processes (issue 18
"Replicas", docs/adr/0702).

:class:`Replicas` writes one config file per replica next to the node's own
``node.toml`` (same keys, certificates and settings; its own log file, its own
``[node] database`` name, which on PostgreSQL names only the replica's local
journals; loopback ports chosen by the kernel) with ``[storage] url`` naming the
one shared database, starts the replicas with :func:`node.demo._testbed.spawn_serve`,
and reads the shared database to say which replica holds the background lease.

Waiting is bounded polling on a condition (:mod:`tests._waiting`), never a sleep
assumed long enough.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from node.demo._testbed import spawn_serve, wait_for_ready
from node.store._lease import APPLICATION, BACKGROUND, scoped_key_sql
from tests._waiting import WAIT_S, wait_until

__all__ = ["Replica", "Replicas"]


@dataclass
class Replica:
    """One ``huxin serve`` process of the set."""

    index: int
    config: Path
    proc: subprocess.Popen[bytes]
    ports: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.ports['peer']}"

    @property
    def citizen(self) -> str:
        return f"127.0.0.1:{self.ports['citizen']}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT_S) -> int:
        """Signal the process and reap it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def log(self) -> list[dict[str, Any]]:
        """The replica's complete JSON log lines so far."""
        path = self.config.with_suffix(".log")
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def _with_storage(text: str, index: int, url: str, extra: str) -> str:
    """``node.toml`` as replica ``index``'s config on the database at ``url``."""
    text = re.sub(r'(?m)^database = ".*"$', f'database = "replica-{index}.db"', text, count=1)
    text = re.sub(r'(?m)^log_file = ".*"$', f'log_file = "replica-{index}.log"', text, count=1)
    # one [storage] table: the shared database (a harness default is replaced)
    text = re.sub(r"(?ms)^\[storage\]\n.*?(?=^\[|\Z)", "", text)
    return f'{text}\n[storage]\nurl = "{url}"\n{extra}'


class Replicas:
    """``count`` replicas of the node in ``node_dir`` on the database at ``url``."""

    def __init__(self, node_dir: Path, url: str, count: int, *, extra_toml: str = "") -> None:
        self.node_dir, self.url = node_dir, url
        base = (node_dir / "node.toml").read_text()
        self.configs = []
        for i in range(count):
            path = node_dir / f"replica-{i}.toml"
            path.write_text(_with_storage(base, i, url, extra_toml))
            self.configs.append(path)
        self.replicas: list[Replica | None] = [None] * count

    # -- processes ----------------------------------------------------------------
    def start(self, index: int, *, timeout: float = 90.0) -> Replica:
        """Start replica ``index`` and wait until it serves (its ready file)."""
        config = self.configs[index]
        ready = config.with_suffix(".ready.json")
        proc = spawn_serve(config, ready, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        replica = Replica(index, config, proc)

        def died() -> str:
            return proc.stderr.read().decode(errors="replace") if proc.stderr else "died"

        try:
            replica.ports = wait_for_ready(
                proc, ready, timeout=timeout, what=f"replica {index}", output=died
            )
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        self.replicas[index] = replica
        return replica

    def start_all(self) -> list[Replica]:
        return [self.start(i) for i in range(len(self.configs))]

    @property
    def running(self) -> list[Replica]:
        return [r for r in self.replicas if r is not None and r.alive()]

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        for r in self.replicas:
            if r is not None and r.alive():
                try:
                    r.stop(sig)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.proc.wait()

    # -- the shared database ------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read of the shared database (a connection of the test's own)."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())

    def holder_pid(self) -> int | None:
        """The process id of the replica holding the background lease (None: nobody)."""
        try:
            rows = self.query(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                f"AND ((l.classid::bigint << 32) | l.objid::bigint) = {scoped_key_sql('%s')}",
                (BACKGROUND,),
            )
        except psycopg.OperationalError:  # the database is restarting
            return None
        for (name,) in rows:
            if str(name).startswith(APPLICATION):
                return int(str(name)[len(APPLICATION) :])
        return None

    def holder(self) -> Replica | None:
        pid = self.holder_pid()
        return next((r for r in self.running if r.pid == pid), None)

    def wait_holder(self, *, other_than: int | None = None, timeout: float = WAIT_S) -> Replica:
        """Wait until a running replica (not process ``other_than``) holds the lease."""
        found: list[Replica] = []

        def held() -> bool:
            r = self.holder()
            if r is not None and r.pid != other_than:
                found[:] = [r]
                return True
            return False

        wait_until(held, "a replica to hold the background lease", timeout)
        return found[0]

    def wait_month(self, timeout: float = WAIT_S) -> None:
        """Wait until the lease holder's first monthly step has ended (H3, ADR 0514)
        and assert it FINISHED: grades are refused ``SCORE_NOT_PUBLISHED`` until a
        month is published, and a failed step is a defect, never papered over."""

        steps = {"monthly run finished", "monthly run failed", "monthly scheduler step failed"}

        def ended() -> bool:
            return any(d.get("msg") in steps for r in self.running for d in r.log())

        wait_until(ended, "the first monthly step", timeout)
        failed = [
            d
            for r in self.running
            for d in r.log()
            if d.get("msg") in steps - {"monthly run finished"}
        ]
        assert not failed, f"the monthly step failed: {failed}"
        assert self.query("SELECT 1 FROM monthly_runs WHERE state = 'finished'"), (
            "the monthly step ended without a finished month"
        )
