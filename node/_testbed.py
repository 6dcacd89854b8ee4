"""A small in-process federation on loopback, for integration tests and benchmarks.

Real pieces only: a federation CA, node directories written by
:func:`node._init.init_region`, real mutual TLS on port 0, real SQLite files.
Nothing here is used by ``huxin serve``.

Invariant: test ID numbers are generated valid GB 11643 numbers and are only
ever passed to the node over its own TLS channels (source and citizen ports).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grpc import aio

from keys import CertificateAuthority, NodeCertificate, decode_private_key, subject_binding
from scoring import check_character

from ._client import citizen_channel, identity_metadata, peer_channel
from ._clock import Clock, ManualClock
from ._config import load_config
from ._identity import DevIdentityProvider
from ._init import init_region, load_or_create_ca
from ._server import NodeServer
from .pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2

__all__ = [
    "RunningNode",
    "Testbed",
    "attestation_request",
    "honour_record",
    "make_id_number",
    "resident",
]


def make_id_number(n: int, area: str = "231100", born: str = "19850312") -> str:
    """A valid GB 11643 ID number (area code, birth date, sequence ``n``)."""
    first17 = f"{area}{born}{n % 1000:03d}"
    return first17 + check_character(first17)


@dataclass
class RunningNode:
    region: str
    directory: Path
    server: NodeServer
    idp: DevIdentityProvider
    clock: Clock

    @property
    def peer_target(self) -> str:
        assert self.server.ports is not None
        return f"127.0.0.1:{self.server.ports.peer}"

    @property
    def citizen_target(self) -> str:
        assert self.server.ports is not None
        return f"127.0.0.1:{self.server.ports.citizen}"

    def identity(self, id_number: str) -> tuple[tuple[str, bytes], ...]:
        now = int(self.clock.now().timestamp())
        return identity_metadata(self.idp.assertion(id_number, self.region, now))


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class
    root: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    ca: CertificateAuthority | None = None
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    _channels: list[aio.Channel] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ca = load_or_create_ca(self.root / "ca", self.now)

    def cert(self, identity: str) -> NodeCertificate:
        assert self.ca is not None
        return self.ca.issue(identity, self.now)

    async def start_node(
        self,
        region: str,
        scheme: str,
        *,
        peers: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
        clock: Clock | None = None,
    ) -> RunningNode:
        assert self.ca is not None
        directory = self.root / region
        if not (directory / "node.toml").exists():
            init_region(directory, region, scheme, self.ca, self.now, peers=peers, sources=sources)
        config = load_config(directory / "node.toml")
        clock = clock or ManualClock(self.now)
        server = await NodeServer.create(config, clock=clock)
        await server.start()
        idp = DevIdentityProvider(decode_private_key((directory / "keys/dev-idp.key").read_bytes()))
        node = RunningNode(region, directory, server, idp, clock)
        self.nodes[region] = node
        return node

    async def stop_node(self, region: str, grace: float = 1.0) -> None:
        node = self.nodes.pop(region)
        await node.server.stop(grace)

    def peer_channel(self, node: RunningNode, cert: NodeCertificate | None) -> aio.Channel:
        assert self.ca is not None
        ch = peer_channel(
            node.peer_target,
            self.ca.cert_pem,
            cert.cert_pem if cert else None,
            cert.key_pem if cert else None,
        )
        self._channels.append(ch)
        return ch

    def citizen_stub(self, node: RunningNode) -> node_pb2_grpc.CitizenServiceStub:
        assert self.ca is not None
        ch = citizen_channel(node.citizen_target, self.ca.cert_pem)
        self._channels.append(ch)
        return node_pb2_grpc.CitizenServiceStub(ch)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close(None)
        self._channels.clear()
        for region in list(self.nodes):
            await self.stop_node(region)


def honour_record(
    record_id: str, id_number: str, recognised_on: str = "2025-06-01"
) -> scoring_pb2.CreditRecord:
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=id_number,
        source="court",
        category="honour",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        level="city",
    )


def resident(id_number: str, since: str = "2000-01-01") -> node_pb2.SubjectInfo:
    return node_pb2.SubjectInfo(
        subject_id=id_number, residence=[node_pb2.ResidenceBasis(kind="hukou", since=since)]
    )


def attestation_request(
    token: node_pb2.ConsentToken,
    id_number: str,
    purpose: str,
    *,
    target_scheme: str = "",
    nonce: bytes | None = None,
) -> node_pb2.AttestationRequest:
    return node_pb2.AttestationRequest(
        consent_token=token.token,
        subject_binding=subject_binding(token.binding_salt, id_number),
        nonce=nonce if nonce is not None else os.urandom(16),
        target_scheme=target_scheme,
        purpose=purpose,
    )
