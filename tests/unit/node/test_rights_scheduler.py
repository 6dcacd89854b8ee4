"""The rights scheduler's loop: runs steps on its interval, survives a failing step, stops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import node.rights._scheduler as sched
from tests._waiting import until


async def test_loop_keeps_running_after_a_failing_step_and_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REQ: H15 — a failed tick is logged and the next one catches up; stop() ends the task."""
    calls: list[int] = []

    async def advance(ctx: Any, now: Any = None) -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        return 0

    async def no_rollout(self: sched.RightsScheduler) -> None:
        return None

    monkeypatch.setattr(sched, "advance", advance)
    monkeypatch.setattr(sched.RightsScheduler, "_follow_rollout", no_rollout)
    s = sched.RightsScheduler(object(), interval=0.01)  # type: ignore[arg-type]
    s.start()
    s.start()  # idempotent: one task
    await until(lambda: len(calls) >= 3, "three ticks")
    await s.stop()
    assert len(calls) >= 3
    n = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == n  # stopped
    await s.stop()  # stopping twice is harmless
