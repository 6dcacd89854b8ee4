"""Peer-port worker helpers (docs/adr/0312): metrics addresses and the follower loop."""

from __future__ import annotations

import os

import pytest

from node.rpc._workers import Follower, worker_metrics_address
from tests._waiting import until


@pytest.mark.parametrize(
    ("address", "index", "expected"),
    [
        pytest.param("", 1, "", id="metrics-off"),
        pytest.param("127.0.0.1:9100", 1, "127.0.0.1:9101", id="fixed-port-plus-index"),
        pytest.param("127.0.0.1:9100", 3, "127.0.0.1:9103", id="third-worker"),
        pytest.param("127.0.0.1:0", 2, "127.0.0.1:0", id="any-port"),
        pytest.param("[::1]:9100", 1, "[::1]:9101", id="ipv6"),
    ],
)
def test_worker_metrics_address(address: str, index: int, expected: str) -> None:
    assert worker_metrics_address(address, index) == expected


async def test_follower_runs_every_step_even_after_one_fails() -> None:
    calls: list[str] = []

    async def broken() -> None:
        calls.append("broken")
        raise RuntimeError("database busy")

    async def fine() -> None:
        calls.append("fine")

    orphaned: list[bool] = []
    follower = Follower([broken, fine], 0.01, os.getppid(), lambda: orphaned.append(True))
    await follower.tick()
    assert calls == ["broken", "fine"] and not orphaned
    follower.start()
    await until(lambda: calls.count("fine") >= 3, "three follower ticks")
    await follower.stop()
    assert calls.count("broken") >= 3  # a failing step never stopped the ones after it


async def test_follower_notices_its_primary_is_gone() -> None:
    orphaned: list[bool] = []
    not_my_parent = os.getppid() + 1_000_000
    follower = Follower([], 1.0, not_my_parent, lambda: orphaned.append(True))
    await follower.tick()
    assert orphaned == [True]
