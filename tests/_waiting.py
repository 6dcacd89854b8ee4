"""Waiting for conditions in tests, never for the scheduler.

A test on a busy machine (CI runs the suite with both cores taken) must not
assume that a thread, a process or a timer gets the CPU within some fraction
of a second.  These helpers poll a condition with a generous bound instead:
the bound only limits how long a broken build hangs, it is never a claim about
speed, and a passing run returns as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "WAIT_S",
    "live_handlers",
    "month_published",
    "until",
    "wait_until",
    "writer_lock_holders",
    "writer_lock_waiters",
]

WAIT_S = 60.0  # how long a condition may take on a busy machine before the test fails


async def until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``cond`` on the event loop (other tasks keep running) until it holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await asyncio.sleep(0.01)


def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``cond`` from synchronous code (another process does the work)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.05)


def month_published(database: str | Path) -> bool:
    """A serving node's monthly scheduler has finished a month (its first step after the
    start runs the last one due in the background, docs/adr/0514)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM monthly_runs WHERE state = 'finished'"
            ).fetchone()
    except sqlite3.OperationalError:  # not created or migrated yet
        return False
    return int(n) > 0


def _writer_lock_lines(database: str | Path) -> list[str]:
    ident = f":{os.stat(f'{database}.writer-lock').st_ino} "
    with open("/proc/locks", encoding="ascii") as f:
        return [line for line in f if ident in line]


def writer_lock_waiters(database: str | Path) -> int:
    """How many are blocked waiting for the writer lock of ``database`` (its
    ``.writer-lock`` flock); the kernel lists each waiter in ``/proc/locks``
    with ``->``.  Linux only, like the node."""
    return sum(1 for line in _writer_lock_lines(database) if "->" in line)


def writer_lock_holders(database: str | Path) -> set[int]:
    """The processes (pids) holding the writer lock of ``database`` now."""
    return {int(line.split()[4]) for line in _writer_lock_lines(database) if "->" not in line}


def live_handlers(method: str) -> int:
    """Server handlers of ``method`` on the running loop that have not ended yet
    (grpc.aio names a handler's task ``HandleExceptions[/package.Service/Method]``)."""
    suffix = f"/{method}]"
    return sum(1 for t in asyncio.all_tasks() if t.get_name().endswith(suffix) and not t.done())
