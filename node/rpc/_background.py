"""Background work behind one lease (docs/adr/0702).

A node's background work — the monthly run (H3), objection and repair
deadlines with the rollout switch (rights scheduler), peer sync, the push to
the hub (which also signs the log checkpoints the hub witnesses), and on a hub
the trust-list schedule — runs in the process that holds the node's lease
(:mod:`node.store._lease`).  :class:`BackgroundGate` takes the lease, starts the
work, and stops it the moment the lease is lost; a process without the lease
polls for it every ``poll_seconds`` and starts the work when it gets it.

Invariants:

* the work runs only while this process holds the lease: it is started after
  the lease is taken and stopped (awaited to its end: a monthly run finishes its
  current chunk) as soon as :meth:`~node.store._lease.Lease.watch` reports the
  loss, before the lease is tried again;
* :meth:`BackgroundGate.start` makes its first attempt before it returns, so on
  SQLite (a lease always held) and for the first replica the work has started
  when the node reports itself ready, exactly as without a gate;
* :meth:`BackgroundGate.stop` stops the work, then gives the lease up, then
  returns; an error of the work's own start or stop is logged and never ends the
  gate (the next loss or acquisition tries again);
* the server may free the lock before the holder notices (a terminated or timed
  out session); work whose write must never follow a successor's runs
  :meth:`BackgroundGate.fence`'s check inside that write transaction
  (:class:`node.store._lease.LeaseFence`), which rolls the write back instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from node.core._observe import log_event
from node.store._lease import Lease, LeaseFence

__all__ = ["POLL_SECONDS", "BackgroundGate"]

POLL_SECONDS: Final = 1.0  # a replica without the lease tries to take it this often


class BackgroundGate:
    """Start ``begin`` while holding ``lease``; ``end`` when it is lost or at stop."""

    def __init__(
        self,
        lease: Lease,
        begin: Callable[[], Awaitable[None]],
        end: Callable[[], Awaitable[None]],
        *,
        poll_seconds: float = POLL_SECONDS,
        region: str = "",
    ) -> None:
        self._lease, self._begin, self._end = lease, begin, end
        self._poll, self._region = poll_seconds, region
        self._task: asyncio.Task[None] | None = None
        self.running = False  # the work is started (this process holds the lease)
        self.taken = 0  # times this process took the lease
        self.lost = 0  # times it lost it while serving

    def fence(self) -> LeaseFence:
        """The check a fenced write unit of the work runs on its connection (raises
        :class:`node.store._lease.LeaseLost` once this holding is over)."""
        return self._lease.fence()

    async def start(self) -> None:
        """Try the lease once (starting the work if held), then keep watching/polling."""
        await self._attempt()
        self._task = asyncio.ensure_future(self._run())

    async def _attempt(self) -> None:
        if await self._lease.try_acquire():
            self.taken += 1
            log_event("background lease taken", region=self._region, taken=self.taken)
            self.running = True  # first: a stop while the work starts still ends it
            try:
                await self._begin()
            except Exception as exc:  # the work's own error: logged; held until lost
                log_event("background work did not start", 40, exc=type(exc).__name__)

    async def _stop_work(self) -> None:
        self.running = False
        try:
            await self._end()
        except Exception as exc:  # logged; the work's tasks are gone either way
            log_event("background work did not stop cleanly", 40, exc=type(exc).__name__)

    async def _run(self) -> None:
        while True:
            if self.running:
                try:
                    await self._lease.watch()  # returns once the lease is lost
                except Exception as exc:  # a watch that cannot watch: the lease is lost
                    log_event("background lease watch failed", 40, exc=type(exc).__name__)
                    await self._lease.release()
                self.lost += 1
                log_event("background lease lost: work stopped", 30, region=self._region)
                await self._stop_work()
            await asyncio.sleep(self._poll)
            await self._attempt()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.running:
            await self._stop_work()
        await self._lease.release()
