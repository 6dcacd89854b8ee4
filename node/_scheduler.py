"""The node's rights scheduler: a background task that advances objection timers.

Invariants: time comes from the node's clock (tests pass a
:class:`~node._clock.ManualClock` and call :meth:`RightsScheduler.run_once`
to advance deterministically, without sleeping); one step runs at a time (a
lock), so a tick from the background task and one from a test never
interleave; an error in a step is logged and the loop keeps running (a
missed tick is caught up by the next, because every deadline is a date
compared with ``now``); :meth:`stop` cancels the loop and waits for it.
Each step also warns once when a model rollout (ADR 0507) has put another
scheme version in force than the one this process scores with.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ._objections import advance
from ._observe import log_event
from ._rights_rollout import load_rollout

if TYPE_CHECKING:
    from ._context import NodeContext

__all__ = ["RightsScheduler"]


class RightsScheduler:
    def __init__(self, ctx: NodeContext, interval: float) -> None:
        self._ctx = ctx
        self._interval = interval
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.version_warnings: set[str] = set()

    async def run_once(self) -> int:
        """One step at the clock's current time; returns the objections moved."""
        async with self._lock:
            moved = await advance(self._ctx)
            await self._check_model_version()
        if moved:
            log_event("objections advanced", moved=moved)
        return moved

    async def _check_model_version(self) -> None:
        """H11: warn (once per version) when a rollout put another version in force;
        the node scores with it from its next start (docs/adr/0507)."""
        ctx = self._ctx
        row = await ctx.db.fetchone(
            "SELECT state_json FROM rollouts WHERE scheme_id = ?", (ctx.scheme.id,)
        )
        if row is None:
            return
        due = load_rollout(row[0]).version_on(ctx.today())
        if due != ctx.scheme.version and due not in self.version_warnings:
            self.version_warnings.add(due)
            log_event(
                "model version in force differs; restart the node to score with it",
                30,
                serving=ctx.scheme.version,
                in_force=due,
            )

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
