"""Port limits: ``[listen]`` bounds, the descriptor budget and its split between the
ports (issue 14 items 4 and 5; docs/adr/0321).

REQ: H17, N23 (security: a node stays available to its authenticated callers).
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

from node.core._config import PORT_LIMIT_BOUNDS, ConfigError, ListenConfig, parse_config
from node.rpc._port_limits import (
    RESERVED_DESCRIPTORS,
    ConnectionBudgetError,
    connection_limits,
    port_options,
    raise_descriptor_limit,
)

_BASE: dict[str, Any] = {
    "node": {"region": "heihe", "scheme": "heihe"},
    "tls": {"cert": "c", "key": "k", "ca": "a"},
    "keys": {"root": "r", "signing": "s", "key_set": "k", "storage_secret": "x", "seal": "y"},
}


def _listen(**values: Any) -> ListenConfig:
    return parse_config({**_BASE, "listen": values}, Path("/cfg")).listen


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("citizen_max_connections", 0, id="citizen-connections-zero"),
        pytest.param("peer_max_connections", 1_000_001, id="peer-connections-over-bound"),
        pytest.param("handshake_timeout_seconds", 0.1, id="handshake-too-short"),
        pytest.param("handshake_timeout_seconds", 61, id="handshake-too-long"),
        pytest.param("idle_timeout_seconds", 0, id="idle-zero"),
        pytest.param("citizen_max_streams", 1_001, id="citizen-streams-over-bound"),
        pytest.param("peer_max_streams", 0, id="peer-streams-zero"),
        pytest.param("request_timeout_seconds", 601, id="request-timeout-over-bound"),
        pytest.param("citizen_max_public_calls", 0, id="public-calls-zero"),
        pytest.param("citizen_max_public_calls", 100_001, id="public-calls-over-bound"),
        pytest.param("public_request_timeout_seconds", 0.1, id="public-timeout-too-short"),
        pytest.param("citizen_max_streams", "16", id="streams-not-a-number"),
        pytest.param("idle_timeout_seconds", 1.5, id="idle-not-an-integer"),
    ],
)
def test_port_limits_outside_their_bounds_are_refused(key: str, value: Any) -> None:
    """issue 14 items 4, 5: every port limit has a documented bound; outside it the
    config is refused naming the key."""
    with pytest.raises(ConfigError) as err:
        _listen(**{key: value})
    assert err.value.field == f"listen.{key}"


def test_port_limits_default_and_bounds_hold() -> None:
    """Defaults lie within the bounds; the bounds themselves are accepted."""
    d = ListenConfig()
    for key, (low, high) in PORT_LIMIT_BOUNDS.items():
        default = getattr(d, key)
        assert default is None or low <= default <= high
        kind = float if isinstance(default, float) else int
        assert getattr(_listen(**{key: kind(low)}), key) == low
        assert getattr(_listen(**{key: kind(high)}), key) == high


@pytest.mark.parametrize(
    ("configured", "descriptors", "peer", "citizen"),
    [
        pytest.param({}, 20_000, 4_096, 15_648, id="defaults-split-the-budget"),
        pytest.param({}, 1_024, 192, 576, id="small-limit-quarter-for-peers"),
        pytest.param({}, 1 << 20, 4_096, 16_384, id="large-limit-capped"),
        pytest.param({"citizen_max_connections": 50}, 20_000, 4_096, 50, id="citizen-configured"),
        pytest.param(
            {"peer_max_connections": 100, "citizen_max_connections": 668},
            1_024,
            100,
            668,
            id="both-configured-exactly-the-budget",
        ),
    ],
)
def test_the_descriptor_budget_is_split_between_the_ports(
    configured: dict[str, int], descriptors: int, peer: int, citizen: int
) -> None:
    """issue 14 item 4: the peer port has its own share, so the citizen port cannot
    take every descriptor; both together stay below the descriptor limit."""
    limits = connection_limits(ListenConfig(**configured), descriptors)
    assert (limits.peer, limits.citizen) == (peer, citizen)
    assert limits.peer + limits.citizen <= descriptors - RESERVED_DESCRIPTORS


@pytest.mark.parametrize(
    ("configured", "field"),
    [
        pytest.param(
            {"citizen_max_connections": 20_000},
            "listen.citizen_max_connections",
            id="citizen-over-budget",
        ),
        pytest.param(
            {"peer_max_connections": 19_800}, "listen.peer_max_connections", id="peer-over-budget"
        ),
    ],
)
def test_limits_that_do_not_fit_the_descriptors_refuse_to_start(
    configured: dict[str, int], field: str
) -> None:
    """issue 14 item 4: configured limits beyond the descriptor budget fail closed."""
    with pytest.raises(ConnectionBudgetError) as err:
        connection_limits(ListenConfig(**configured), 20_000)
    assert err.value.field == field
    assert "RLIMIT_NOFILE" in err.value.message


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    """issue 14 item 4: at start the soft RLIMIT_NOFILE becomes the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 512) if hard == resource.RLIM_INFINITY else min(soft, hard, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        got = raise_descriptor_limit()
        now_soft, now_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert now_hard == hard
        if hard != resource.RLIM_INFINITY:
            assert now_soft == hard == got
        else:
            assert got == now_soft >= lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, lowered), hard))


def test_port_options_carry_every_limit() -> None:
    listen = ListenConfig(handshake_timeout_seconds=2.5, idle_timeout_seconds=30)
    assert dict(port_options(listen, connections=50, streams=7)) == {
        "grpc.max_allowed_incoming_connections": 50,
        "grpc.server_handshake_timeout_ms": 2_500,
        "grpc.max_connection_idle_ms": 30_000,
        "grpc.max_concurrent_streams": 7,
    }
