"""The node's rights scheduler: a background task that advances objection timers
and puts an activated scheme version in force at its effective date.

Invariants: time comes from the node's clock (tests pass a
:class:`~node.core._clock.ManualClock` and call :meth:`RightsScheduler.run_once`
to advance deterministically, without sleeping); one step runs at a time (a
lock), so a tick from the background task and one from a test never
interleave; an error in a step is logged and the loop keeps running (a
missed tick is caught up by the next, because every deadline is a date
compared with ``now``); :meth:`stop` cancels the loop and waits for it.
Each step first follows the model rollout (ADR 0507): on the first step on
or after an activated version's effective date, the node switches to it in
one assignment (:func:`~node.model._rollout.follow_rollout`) — no restart —
and objection work in the same step already uses the new version.  A failed
rollout read is logged and leaves the version in force unchanged; it never
stops objection timers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from node.core._observe import log_event
from node.model._rollout import Switch, follow_rollout
from node.rights._objections import advance
from node.rights._repair import advance as repair_advance

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["RightsScheduler"]


class RightsScheduler:
    def __init__(self, ctx: NodeContext, interval: float) -> None:
        self._ctx = ctx
        self._interval = interval
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.switches: list[Switch] = []  # version switches made by this process

    async def run_once(self) -> int:
        """One step at the clock's current time; returns the objections moved."""
        async with self._lock:
            await self._follow_rollout()
            moved = await advance(self._ctx)
            moved += await repair_advance(self._ctx)  # N22: overdue repair decisions
        if moved:
            log_event("objections advanced", moved=moved)
        return moved

    async def _follow_rollout(self) -> None:
        """H11, N12: serve the version in force today (docs/adr/0507)."""
        ctx = self._ctx
        try:
            switch = await follow_rollout(ctx.db, ctx.in_force, ctx.today())
        except Exception as exc:  # keep serving the current version; retry next step
            log_event("model rollout check failed", 40, exc=type(exc).__name__)
            return
        if switch is not None:
            self.switches.append(switch)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep running; the next tick catches up
                log_event("scheduler step failed", 40, exc=type(exc).__name__)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
