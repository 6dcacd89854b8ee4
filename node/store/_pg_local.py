"""A throwaway local PostgreSQL server: ``initdb`` + ``pg_ctl`` in a directory of its own.

Used by the test suite (``tests/support/postgres.py``, one server per test
session and pytest-xdist worker) and by ``huxin demo --storage postgresql``
(issue 18).  Never used for a production database: its operators run their own
server (docs/adr/0700).

Invariants:

* the server runs from the PostgreSQL 15 binaries found in :data:`BINDIR_CANDIDATES`
  or on ``PATH``; if they are missing, :class:`LocalPostgres` raises
  :class:`PostgresUnavailable` naming what it looked for (callers fail, they do
  not skip: CI installs the binaries);
* PostgreSQL refuses to run as root: when this process is root the server runs
  as the unprivileged user ``postgres`` (``runuser``), and its directory (mode
  0700) is handed to that user; otherwise it runs as the current user;
* it listens on a unix socket in its own directory and on 127.0.0.1 at a free
  port; local (socket) connections are trusted for the superuser ``postgres``,
  TCP connections need a password (SCRAM), so password handling is testable;
* :meth:`LocalPostgres.stop` stops the server (``-m fast``) and removes the
  directory; it is idempotent;
* a server never outlives the process that started it: a watcher (a small shell
  loop in a session of its own) stops the server and removes its directory once
  that process is gone, e.g. a test session killed by a timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "BINDIR_CANDIDATES",
    "LocalPostgres",
    "PostgresUnavailable",
    "create_database",
    "find_bindir",
]

BINDIR_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
SERVER_USER = "postgres"  # the unprivileged account the server runs as under root
_START_TIMEOUT_S = 60  # pg_ctl -w: a busy CI machine may take a while to start a server
# Small and quick: tests create many small databases; fsync stays on (acknowledged
# data must survive an immediate shutdown the way it does in production).
_SETTINGS = (
    "shared_buffers=16MB",
    "max_connections=200",
    "max_wal_size=256MB",
    "checkpoint_timeout=30min",
    "log_min_messages=warning",
    "log_min_error_statement=panic",
)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (or the server did not start)."""


def find_bindir() -> Path:
    """The directory of ``initdb``/``pg_ctl``/``postgres``, or :class:`PostgresUnavailable`."""
    for candidate in BINDIR_CANDIDATES:
        if (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: looked in "
        f"{', '.join(BINDIR_CANDIDATES)} and on PATH (Debian: apt-get install postgresql)"
    )


def create_database(admin_url: str, prefix: str = "huxin") -> str:
    """Create a fresh, empty database on the server ``admin_url`` reaches (as a role
    allowed to create databases) and return the same URL naming the new database.

    The name is ``<prefix>_<pid>_<random>``: unique across processes and runs."""
    import psycopg  # the server's own driver; imported here so finding binaries needs none

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise ValueError("a database prefix is 1-31 of [a-z0-9_], starting with a letter")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """One local server.  ``with LocalPostgres() as pg:`` starts and stops it."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.bindir = find_bindir()
        self._as_root = os.geteuid() == 0
        # not under the caller's TMPDIR: under root that is often a 0700 directory
        # the server's own user cannot enter
        base = Path(root) if root is not None else Path("/tmp")  # noqa: S108 - mkdtemp: 0700, own name
        self.directory = Path(tempfile.mkdtemp(prefix="huxin-pg-", dir=base))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log = self.directory / "server.log"
        self.port = _free_port()
        self.started = False
        self._watcher: subprocess.Popen[bytes] | None = None

    # -- running commands as the server's user -------------------------------------
    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TMPDIR": "/tmp"}  # noqa: S108
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            tail = self._log_tail()
            raise PostgresUnavailable(
                f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}{tail}"
            )
        return done

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\nserver log:\n" + self.log.read_text("utf-8", "replace")[-2000:]
        return ""

    def start(self) -> LocalPostgres:
        """initdb, then start the server and wait until it accepts connections; if
        either fails, nothing is left running and the directory is removed."""
        try:
            self._init_and_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _init_and_start(self) -> None:
        self.socket_dir.mkdir()
        if self._as_root:
            shutil.chown(self.directory, SERVER_USER, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER, SERVER_USER)
        os.chmod(self.directory, 0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        self._start()
        self._watch()

    def _watch(self) -> None:
        """Start the watcher that cleans up after a starter that died (module doc)."""
        pg_ctl = self.bindir / "pg_ctl"
        stop = f"{pg_ctl} stop -m immediate -D {self.data}"
        if self._as_root:
            stop = f"runuser -u {SERVER_USER} -- {stop}"
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 2; done; "
            f"{stop} >/dev/null 2>&1; rm -rf {self.directory}"
        )
        self._watcher = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the test's process group spares it
        )

    def _start(self) -> None:
        options = " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                *(f"-c {s}" for s in _SETTINGS),
            ]
        )
        self.started = True  # from here on, stop() tries to stop it
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
        )

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate``: as if the server crashed; ``fast``) and start again."""
        self.stop_server(mode)
        self._start()

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (start it again with :meth:`restart`)."""
        if self.started:
            self.started = False
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data), check=False)

    def start_server(self) -> None:
        """Start a server stopped by :meth:`stop_server`."""
        if not self.started:
            self._start()

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        try:
            self.stop_server("fast")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.kill()
                watcher.wait()

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and databases -------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A ``postgresql://`` URL reaching ``dbname`` over the unix socket."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{user}@/{dbname}?host={host}&port={self.port}"

    def tcp_url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A URL over TCP on 127.0.0.1 (password required: SCRAM)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser in the ``postgres`` database (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.encode())  # bytes: no placeholder parsing

    def create_database(self, prefix: str = "huxin") -> str:
        """A fresh, empty database; returns its URL (unix socket, user ``postgres``)."""
        return create_database(self.url(), prefix)

    def terminate(self, dbname: str) -> None:
        """End every backend connected to ``dbname`` (as if each lost its server)."""
        self.admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
        )
