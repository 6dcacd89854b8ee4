"""What each port of a node accepts: connections, handshakes, idle time, streams.

Every accepted connection costs the process a file descriptor, and when they run
out both ports stop answering: one client holding idle TCP connections must not
take a node off the air (docs/adr/0321).  Per process (the primary and each
peer-port worker):

* :func:`raise_descriptor_limit` raises the soft ``RLIMIT_NOFILE`` to the hard
  limit before the ports open;
* :data:`RESERVED_DESCRIPTORS` stay free for the database, logs, metrics and
  outgoing channels; the rest is the connection budget, split between the ports
  by :func:`connection_limits`.  The peer port has its own share, so a flood of
  the unauthenticated citizen port never takes the descriptors authenticated
  peers need; limits set in ``[listen]`` must fit in the budget, or the node
  refuses to start (:class:`ConnectionBudgetError`);
* :func:`port_options` hands the limits to gRPC core, which enforces them per
  listening port: a connection over ``grpc.max_allowed_incoming_connections`` is
  closed as soon as it is accepted; one that has not finished TLS and sent its
  HTTP/2 SETTINGS within ``handshake_timeout_seconds`` is closed
  (``grpc.server_handshake_timeout_ms``), and so is one without calls for
  ``idle_timeout_seconds`` (``grpc.max_connection_idle_ms``, GOAWAY); every
  connection is told its MAX_CONCURRENT_STREAMS (``grpc.max_concurrent_streams``).

What a single call may do (identity on its headers, the request deadline, calls
per peer) is the guard's (:mod:`node.rpc._guard`).
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

from node.core._config import ListenConfig

__all__ = [
    "RESERVED_DESCRIPTORS",
    "ConnectionBudgetError",
    "ConnectionLimits",
    "connection_limits",
    "port_options",
    "raise_descriptor_limit",
]

RESERVED_DESCRIPTORS = 256  # database + WAL + shm, logs, metrics, outgoing channels, workers
PEER_SHARE = 4  # without a configured limit the peer port gets a quarter of the budget...
DEFAULT_MAX_PEER = 4_096  # ...up to this many connections
DEFAULT_MAX_CITIZEN = 16_384  # the citizen port the rest, up to this many
_UNLIMITED = 1 << 20  # what we ask for when the hard limit is RLIM_INFINITY (Linux nr_open)


class ConnectionBudgetError(Exception):
    """Configured connection limits that do not fit in this process's descriptors."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connections each port accepts at once, within ``descriptors`` (the soft limit)."""

    peer: int
    citizen: int
    descriptors: int


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        # e.g. nr_open below the hard limit: keep the soft limit we have
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _UNLIMITED if soft == resource.RLIM_INFINITY else int(soft)


def connection_limits(listen: ListenConfig, descriptors: int) -> ConnectionLimits:
    """Each port's connection limit: as configured, or its share of the budget."""
    budget = descriptors - RESERVED_DESCRIPTORS
    peer = listen.peer_max_connections or min(DEFAULT_MAX_PEER, max(1, budget // PEER_SHARE))
    citizen = listen.citizen_max_connections or min(DEFAULT_MAX_CITIZEN, max(1, budget - peer))
    if peer + citizen > budget:
        field = (
            "listen.citizen_max_connections"
            if listen.citizen_max_connections
            else "listen.peer_max_connections"
        )
        raise ConnectionBudgetError(
            field,
            f"{peer} peer + {citizen} citizen connections exceed the {max(budget, 0)} file "
            f"descriptors left of {descriptors} after {RESERVED_DESCRIPTORS} reserved; lower "
            "the [listen] connection limits or raise the hard RLIMIT_NOFILE",
        )
    return ConnectionLimits(peer=peer, citizen=citizen, descriptors=descriptors)


def port_options(listen: ListenConfig, *, connections: int, streams: int) -> list[tuple[str, int]]:
    """gRPC server options enforcing one port's connection and stream limits."""
    return [
        ("grpc.max_allowed_incoming_connections", connections),
        ("grpc.server_handshake_timeout_ms", round(listen.handshake_timeout_seconds * 1000)),
        ("grpc.max_connection_idle_ms", listen.idle_timeout_seconds * 1000),
        ("grpc.max_concurrent_streams", streams),
    ]
