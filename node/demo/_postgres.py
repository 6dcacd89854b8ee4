"""A throwaway local PostgreSQL server for ``huxin demo --storage postgresql`` and the benchmarks.

:class:`LocalPostgres` runs ``initdb`` in a folder of its own, starts the server
with ``pg_ctl`` listening on a unix socket only (no TCP port is opened, so two
demos on one machine never collide), creates the database and gives its URL.
:meth:`LocalPostgres.stop` stops the server (``pg_ctl stop -m fast``) and
removes the folder unless asked to keep it.

PostgreSQL refuses to run as root: when the demo runs as root the data
directory is handed to the unprivileged user ``postgres`` and every server
binary runs as that user through ``runuser``.  That user must be able to reach
the folder, so a folder under a root-only directory is replaced by one under
the system's temporary directory (reported by :attr:`LocalPostgres.root`).

Invariants: the server trusts only local socket connections of its own socket
directory (``-A trust`` on a socket nobody else is told about); it holds
nothing but demo or benchmark data; :meth:`stop` is idempotent and is called
by ``with`` on every exit path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

__all__ = ["LocalPostgres", "PostgresUnavailable", "find_bindir"]

#: the unprivileged account the server runs as when the caller is root
SERVER_USER = "postgres"
#: the role and database the demo and the benchmarks use
ROLE = "huxin"
DATABASE = "huxin"
#: a unix socket path is at most 107 bytes; the socket file name adds 20
_SOCKET_PATH_MAX = 80


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$HUXIN_PG_BINDIR``, the newest
    ``/usr/lib/postgresql/*/bin`` (Debian), or the one on ``PATH``."""
    env = os.environ.get("HUXIN_PG_BINDIR")
    candidates = [Path(env)] if env else []
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    candidates += [Path(p) for p in reversed(versions)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
        "`postgresql` package or set HUXIN_PG_BINDIR"
    )


class LocalPostgres:
    """One PostgreSQL server in ``folder`` (created), on a unix socket, for one run.

    ``settings`` are passed as ``-c name=value`` to the server (the benchmarks keep
    the defaults; the demo may relax durability, it throws the data away).
    """

    def __init__(
        self,
        folder: Path,
        *,
        settings: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        self.keep = keep
        self.database = DATABASE
        self.settings = dict(settings or {})
        self._made_own_root = False
        self.root = self._choose_root(Path(folder))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self._running = False

    # -- the folder -----------------------------------------------------------------
    def _choose_root(self, folder: Path) -> Path:
        folder = folder.resolve()
        if len(str(folder)) > _SOCKET_PATH_MAX or (
            self.as_root and not self._server_user_reaches(folder.parent)
        ):
            # The socket path would be too long, or the server's user cannot reach
            # the demo's folder: a folder of the server's own in the temp directory.
            self._made_own_root = True
            # mkdtemp below: mode 0700, a name of its own
            bases = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")]  # noqa: S108
            base = next(
                (b for b in bases if not self.as_root or self._server_user_reaches(b)), bases[1]
            )
            return Path(tempfile.mkdtemp(prefix="huxin-pg-", dir=base))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @staticmethod
    def _server_user_reaches(path: Path) -> bool:
        """Whether ``postgres`` can traverse every directory down to ``path``."""
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            return False
        for part in [path, *path.parents]:
            st = part.stat()
            if st.st_uid == entry.pw_uid:
                mode_ok = bool(st.st_mode & 0o100)
            elif st.st_gid == entry.pw_gid:
                mode_ok = bool(st.st_mode & 0o010)
            else:
                mode_ok = bool(st.st_mode & 0o001)
            if not mode_ok:
                return False
        return True

    def _as_server_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *argv] if self.as_root else argv

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(
            self._as_server_user(argv), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {' | '.join(detail)}")

    # -- life -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``postgresql://huxin@/huxin?host=<socket dir>``: libpq's form for a unix socket."""
        return f"postgresql://{ROLE}@/{DATABASE}?host={quote(str(self.sockets), safe='/')}"

    @property
    def conninfo(self) -> str:
        """The same server as a libpq keyword string (for tools taking ``-d``)."""
        return f"host={self.sockets} user={ROLE} dbname={DATABASE}"

    def start(self) -> Self:
        """initdb, start on the socket, create the database; raise :class:`PostgresUnavailable`."""
        for path in (self.data, self.sockets):
            path.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if self.as_root:
            entry = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.data, self.sockets, self.log):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data.chmod(0o700)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                ROLE,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",  # a throwaway cluster: its files need not survive a crash
            ]
        )
        options = ["-c listen_addresses=''", f"-k {self.sockets}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._running = True
        self._run([str(self.bindir / "createdb"), "-h", str(self.sockets), "-U", ROLE, DATABASE])
        return self

    def version(self) -> str:
        """The server's version number (e.g. ``15.18``)."""
        done = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the third word
        words = done.stdout.split()
        return words[2] if done.returncode == 0 and len(words) > 2 else "?"

    def create_database(self, name: str) -> str:
        """A new database ``name`` (letters, digits, underscores); its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        self._run([str(self.bindir / "createdb"), "-h", str(self.sockets), "-U", ROLE, name])
        return self.url.replace(f"/{DATABASE}?", f"/{name}?", 1)

    def server_pids(self) -> list[int]:
        """The postmaster's pid and its children's (backends and background workers)."""
        pidfile = self.data / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            kids = []
        return [postmaster, *kids]

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the folder unless ``keep``."""
        if self._running:
            self._running = False
            with contextlib.suppress(PostgresUnavailable):  # already gone: nothing to stop
                self._run(
                    [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                )
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
