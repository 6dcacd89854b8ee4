"""Peer-port worker processes of one region node (docs/adr/0312).

With ``[listen] peer_workers = N`` (N > 1) the primary ``huxin serve``
process binds the peer port with ``SO_REUSEPORT`` and then starts N - 1
worker processes (``huxin serve --worker I --peer-port P``) that bind the
same port; the kernel spreads incoming connections over the N processes.
Every process serves the whole peer port (PeerService, SourceService,
health, reflection) from the same SQLite file; only the primary serves the
citizen port and runs the background work (rights scheduler, peer sync,
push loop, metrics of the primary).

Invariants:

* all state a request depends on is in the database: writers of all
  processes serialise on the database's writer lock (:mod:`node.store._db`), the
  transparency log's in-memory tree catches up from committed rows before it
  serves a root (:mod:`node.store._translog`), and workers re-read the trust list
  and the scheme version in force every ``follow_seconds``
  (:class:`Follower`);
* a worker never outlives its primary: it asks the kernel for SIGTERM when
  the parent dies (Linux ``PR_SET_PDEATHSIG``) and also checks its parent
  on every follower tick;
* a worker refuses to start unless its configuration digest equals the
  primary's (``--expect``): a worker restarted after the config, keys or key
  set changed on disk must not serve differently from the primary;
* the supervisor restarts a worker that exits unexpectedly (after a
  back-off per worker, so one crash-looping worker delays no other), and on
  shutdown sends every worker SIGTERM — each finishes its
  in-flight calls within the grace period — before the primary closes its
  own database; a worker still alive after grace + 5 s is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from node.core._observe import log_event

__all__ = [
    "Follower",
    "PrimaryLock",
    "WorkerInfo",
    "WorkerSupervisor",
    "config_digest",
    "die_with_parent",
    "worker_metrics_address",
]

_PR_SET_PDEATHSIG = 1
START_TIMEOUT_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0


def die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when the parent process dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_metrics_address(address: str, index: int) -> str:
    """Worker ``index``'s metrics endpoint: the primary's port + index (any port if 0)."""
    if not address:
        return ""
    host, _, port = address.rpartition(":")
    base = int(port or 0)
    return f"{host}:{base + index if base else 0}"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    index: int
    pid: int
    metrics: int | None


class Follower:
    """A worker's periodic re-read of shared state (trust list, scheme in force)
    and its parent check; ``steps`` are awaited in order on every tick."""

    def __init__(
        self,
        steps: list[Callable[[], Awaitable[object]]],
        interval: float,
        parent: int,
        on_orphaned: Callable[[], None],
    ) -> None:
        self._steps = steps
        self._interval = interval
        self._parent = parent
        self._on_orphaned = on_orphaned
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        for step in self._steps:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving; the next tick retries
                log_event("worker follow step failed", 40, exc=type(exc).__name__)
        if self._parent and os.getppid() != self._parent:
            log_event("primary process gone: worker stopping", 30)
            self._on_orphaned()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Worker:
    __slots__ = ("failures", "index", "proc", "ready", "restart_at", "started")

    def __init__(self, index: int, ready: Path) -> None:
        self.index = index
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.started = 0.0
        self.restart_at: float | None = None  # when a dead worker is due to start again


class WorkerSupervisor:
    """Starts, watches, restarts and stops the peer-port workers of the primary."""

    def __init__(
        self,
        config: Path,
        count: int,
        peer_port: int,
        run_dir: Path,
        *,
        expect: str = "",
        on_change: Callable[[list[WorkerInfo]], None] | None = None,
    ) -> None:
        self._config = config
        self._peer_port = peer_port
        self._run_dir = run_dir
        self._expect = expect  # digest of the config the primary runs (workers must match)
        self._on_change = on_change  # e.g. rewrite the primary's ready file
        self._workers = [_Worker(i, run_dir / f"worker-{i}.ready") for i in range(1, max(1, count))]
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    def _command(self, w: _Worker) -> list[str]:
        return [
            sys.executable,
            "-m",
            "node",
            "serve",
            "--config",
            str(self._config),
            "--worker",
            str(w.index),
            "--peer-port",
            str(self._peer_port),
            "--parent",
            str(os.getpid()),
            *(("--expect", self._expect) if self._expect else ()),
            "--ready-file",
            str(w.ready),
        ]

    def _spawn(self, w: _Worker) -> None:
        w.ready.unlink(missing_ok=True)
        w.proc = subprocess.Popen(self._command(w), stdin=subprocess.DEVNULL)
        w.started = time.monotonic()

    async def _wait_ready(self, w: _Worker) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not w.ready.exists():
            assert w.proc is not None
            if w.proc.poll() is not None:
                raise RuntimeError(f"peer worker {w.index} exited with {w.proc.returncode}")
            if time.monotonic() > deadline:
                w.proc.kill()
                raise RuntimeError(f"peer worker {w.index} did not start")
            await asyncio.sleep(0.05)

    async def start(self) -> list[WorkerInfo]:
        """Start every worker and wait until each serves; raise if one cannot start."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        for w in self._workers:
            self._spawn(w)
        try:
            for w in self._workers:
                await self._wait_ready(w)
        except BaseException:
            await self.stop(0.0)
            raise
        self._watch = asyncio.ensure_future(self._watch_loop())
        return self.info()

    def info(self) -> list[WorkerInfo]:
        out = []
        for w in self._workers:
            metrics = None
            with contextlib.suppress(OSError, ValueError):
                metrics = json.loads(w.ready.read_text()).get("metrics")
            alive = w.proc is not None and w.proc.poll() is None
            out.append(WorkerInfo(w.index, w.proc.pid if w.proc and alive else 0, metrics))
        return out

    async def _watch_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            try:
                self._watch_once(time.monotonic())
            except Exception as exc:  # never stop watching (e.g. a failed fork)
                log_event("peer worker supervision failed", 40, exc=type(exc).__name__)

    def _watch_once(self, now: float) -> None:
        """Note dead workers (with a back-off each) and start those that are due."""
        changed = False
        for w in self._workers:
            if self._stopping:
                return
            if w.restart_at is None:
                if w.proc is None or w.proc.poll() is None:
                    continue
                ran = now - w.started
                w.failures = 0 if ran > 60 else w.failures + 1
                w.restart_at = now + min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(w.failures, 6))
                log_event(
                    "peer worker exited; restarting",
                    40,
                    worker=w.index,
                    code=w.proc.returncode,
                    in_seconds=round(w.restart_at - now, 1),
                )
            elif now >= w.restart_at:
                w.restart_at = None
                try:
                    self._spawn(w)
                except OSError as exc:
                    w.failures += 1
                    w.restart_at = now + MAX_BACKOFF_SECONDS
                    log_event("peer worker could not start", 40, worker=w.index, exc=str(exc))
                else:
                    changed = True
        if changed and self._on_change is not None:
            self._on_change(self.info())

    def signal_all(self, sig: int) -> int:
        """Send ``sig`` to every live worker (e.g. SIGHUP: reopen the log); how many."""
        sent = 0
        for w in self._workers:
            if w.proc is not None and w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(sig)
                    sent += 1
        return sent

    async def stop(self, grace: float) -> None:
        """SIGTERM every worker, wait ``grace`` + 5 s, then kill what is left."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        live = [w.proc for w in self._workers if w.proc is not None and w.proc.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5.0
        while any(p.poll() is None for p in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in live:
            if proc.poll() is None:
                log_event("peer worker did not stop in time: killed", 40, pid=proc.pid)
                proc.kill()
                proc.wait()
        for w in self._workers:
            w.ready.unlink(missing_ok=True)


def config_digest(config_path: Path, key_files: list[Path]) -> str:
    """SHA-256 over the config file and the key files a worker would load."""
    h = hashlib.sha256()
    for path in (config_path, *key_files):
        h.update(str(path).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


class PrimaryLock:
    """One primary per database: an exclusive, non-blocking ``flock`` on
    ``<database>.primary-lock`` held while the node runs (workers share the peer
    port by design, so the port cannot tell a second node apart)."""

    def __init__(self, database: Path) -> None:
        self._fd = os.open(f"{database}.primary-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(
                f"another 'huxin serve' is running on {database} (its primary-lock is held)"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
