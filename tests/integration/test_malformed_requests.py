"""Bytes that are not a valid request message, on every port (issue 14 item 12).

A real hub and region; each case sends raw bytes through a generic channel method
with an identity serializer: corrupt wire bytes, a truncated field, and invalid
UTF-8 in a string field (where the request has one).  Every case must be
INVALID_ARGUMENT with ``huxin-reason`` ``MALFORMED_REQUEST``, a message that
names no Python class, and nothing written on either node (docs/adr/0322).

REQ: H17, N23 (security: errors disclose nothing of the implementation).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from google.protobuf.message import Message
from grpc import aio
from grpc_health.v1 import health_pb2

from node.demo._testbed import RunningNode, Testbed, make_id_number
from node.pb.v1 import hub_pb2, node_pb2
from node.rpc._client import citizen_channel, reason_of
from tests.integration._edge import hub_and_region, region_channel

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERSON = make_id_number(11)
REGION_TABLES = ("records", "subjects", "consents", "log_entries", "objections", "supplements")
HUB_TABLES = ("hub_events", "hub_cursors", "hub_batches", "hub_status_lists")


@dataclass
class World:
    bed: Testbed
    hub: RunningNode
    region: RunningNode
    region_dir: Path

    def counts(self) -> dict[str, int]:
        out = {}
        for node, tables in ((self.region, REGION_TABLES), (self.hub, HUB_TABLES)):
            db = node.server.ctx.config.database
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                for t in tables:
                    out[f"{node.region}.{t}"] = conn.execute(
                        f"SELECT count(*) FROM {t}"
                    ).fetchone()[0]
        return out


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("malformed")
    bed, hub, region = await hub_and_region(root, {})
    yield World(bed, hub, region, root / "heihe")
    await bed.close()


def _string_field(message: type[Message]) -> int | None:
    for f in message.DESCRIPTOR.fields:
        if f.type == descriptor.FieldDescriptor.TYPE_STRING:
            return int(f.number)
    return None


def _invalid_utf8(field: int) -> bytes:
    return bytes([(field << 3) | 2, 2]) + b"\xc3\x28"  # 0xC3 0x28 is not UTF-8


PAYLOADS: dict[str, Callable[[type[Message]], bytes | None]] = {
    "corrupt": lambda _m: b"\xff\xff\xff\xff\xff\xff",
    "truncated": lambda _m: b"\x0a\x05ab",  # a 5-byte field with 2 bytes left
    "invalid_utf8": lambda m: None if (n := _string_field(m)) is None else _invalid_utf8(n),
}

# (port, method path, request type, caller)
METHODS: list[tuple[str, str, type[Message], str]] = [
    ("citizen", "/huxin.v1.CitizenService/GetIncentiveCatalogue",
     node_pb2.GetIncentiveCatalogueRequest, "anyone"),
    ("citizen", "/huxin.v1.CitizenService/GrantConsent", node_pb2.GrantConsentRequest, "citizen"),
    ("citizen", "/huxin.v1.CitizenService/FileObjection", node_pb2.FileObjectionRequest,
     "citizen"),
    ("citizen", "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, "anyone"),
    ("peer", "/huxin.v1.PeerService/RequestAttestation", node_pb2.AttestationRequest, "hainan"),
    ("peer", "/huxin.v1.PeerService/GetStatusList", node_pb2.GetStatusListRequest, "hainan"),
    ("peer", "/huxin.v1.SourceService/SubmitRecords", node_pb2.SubmitRecordsRequest, "court"),
    ("peer", "/huxin.v1.SourceService/MarkRecord", node_pb2.MarkRecordRequest, "court"),
    ("peer", "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, "court"),
    ("hub", "/huxin.v1.HubService/GetReceipts", hub_pb2.GetReceiptsRequest, "heihe"),
    ("hub", "/huxin.v1.HubService/RouteAttestation", hub_pb2.RouteAttestationRequest, "heihe"),
    ("hub", "/huxin.v1.HubService/Push", hub_pb2.PushItem, "heihe"),
]  # fmt: skip

CASES = [
    pytest.param(port, path, message, who, kind, id=f"{port}-{path.rsplit('/', 1)[1]}-{kind}")
    for port, path, message, who in METHODS
    for kind in PAYLOADS
    if PAYLOADS[kind](message) is not None
]


def _channel(w: World, port: str, who: str) -> aio.Channel:
    if port == "citizen":
        assert w.bed.ca is not None
        ch = citizen_channel(w.region.citizen_target, w.bed.ca.cert_pem)
        w.bed._channels.append(ch)
        return ch
    if port == "hub":
        return region_channel(w.bed, w.hub, w.region_dir)
    return w.bed.peer_channel(w.region, w.bed.cert(who))


def _raw(value: bytes) -> bytes:
    return value


@pytest.mark.parametrize(("port", "path", "message", "who", "kind"), CASES)
async def test_bytes_that_do_not_decode_are_malformed_request(
    world: World, port: str, path: str, message: type[Message], who: str, kind: str
) -> None:
    """issue 14 item 12: INVALID_ARGUMENT ``MALFORMED_REQUEST`` for corrupt, truncated
    and non-UTF-8 request bytes on every port and method (a client stream's item too),
    never UNKNOWN, never a Python class name, and nothing written."""
    payload = PAYLOADS[kind](message)
    assert payload is not None
    before = world.counts()
    channel = _channel(world, port, who)
    metadata: Any = world.region.identity(PERSON) if who == "citizen" else None
    if path.endswith("/Push"):  # a client stream: the malformed bytes are its first item
        push = channel.stream_unary(path, request_serializer=_raw, response_deserializer=_raw)
        answer = push(iter([payload]), timeout=60)
    else:
        call = channel.unary_unary(path, request_serializer=_raw, response_deserializer=_raw)
        answer = call(payload, metadata=metadata, timeout=60)
    with pytest.raises(aio.AioRpcError) as err:
        await answer
    assert (err.value.code(), reason_of(err.value)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED_REQUEST",
    )
    details = err.value.details() or ""
    for name in ("Error", "Exception", "class", "Decode"):
        assert name not in details
    assert world.counts() == before
