"""What the ports of a real node accept (issue 14 items 4 and 5; docs/adr/0321, 0322).

Real node on loopback, real TLS, raw TCP sockets and a bare HTTP/2 client: a flood
of idle connections to the citizen port is bounded and closed while the peer port
keeps answering; every connection is told its stream limit; a call without a valid
identity assertion is refused on its headers, and one whose message never comes
is ended after the request timeout.  No timing assertions: only "eventually",
with generous bounds.

REQ: H17, N23 (security: a node stays available to its authenticated callers), N4
(every citizen call carries a verified real-name identity).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import h2.events
import h2.settings
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.demo._testbed import Testbed, make_id_number
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from tests.integration._edge import H2Client, edge_node

PERSON = make_id_number(7)


async def _eof(sock: socket.socket) -> None:
    """Wait until the server has closed ``sock`` (EOF or reset)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            if not await loop.sock_recv(sock, 4096):
                return
        except (ConnectionResetError, BrokenPipeError):
            return


async def test_a_flood_of_idle_connections_is_bounded_and_the_peer_port_keeps_answering(
    tmp_path: Path,
) -> None:
    """issue 14 item 4: 200 raw TCP connections that never start TLS, against a citizen
    port limit of 50: the peer port still answers an authenticated call and health, every
    flood connection is closed by the server (over the limit at once, the rest when the
    handshake timeout passes), and the citizen port answers again afterwards."""
    bed, node = await edge_node(
        tmp_path, {"citizen_max_connections": 50, "handshake_timeout_seconds": 2.0}
    )
    flood: list[socket.socket] = []
    try:
        assert node.server.ports is not None
        loop = asyncio.get_running_loop()
        for _ in range(200):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", node.server.ports.citizen))
            flood.append(sock)

        court = bed.peer_channel(node, bed.cert("court"))
        health = await health_pb2_grpc.HealthStub(court).Check(
            health_pb2.HealthCheckRequest(service="huxin.v1.SourceService"), timeout=60
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        listed = await node_pb2_grpc.SourceServiceStub(court).ListObjections(
            node_pb2.ListObjectionsRequest(), timeout=60
        )
        assert list(listed.objections) == []

        await asyncio.wait_for(asyncio.gather(*(_eof(s) for s in flood)), timeout=120)

        catalogue = await bed.citizen_stub(node).GetIncentiveCatalogue(
            node_pb2.GetIncentiveCatalogueRequest(), timeout=60
        )
        assert catalogue.scheme_id == "heihe"
    finally:
        for sock in flood:
            sock.close()
        await bed.close()


async def test_a_connection_without_calls_is_closed_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    """issue 14 item 4: a TLS connection that makes no call for ``idle_timeout_seconds``
    is closed by the server (GOAWAY); the client's channel falls back to IDLE."""
    bed, node = await edge_node(tmp_path, {"idle_timeout_seconds": 1})
    try:
        stub = bed.citizen_stub(node)
        await stub.GetIncentiveCatalogue(node_pb2.GetIncentiveCatalogueRequest(), timeout=60)
        channel = bed._channels[-1]
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        async with asyncio.timeout(120):
            while channel.get_state() == grpc.ChannelConnectivity.READY:
                await channel.wait_for_state_change(grpc.ChannelConnectivity.READY)
        assert channel.get_state() != grpc.ChannelConnectivity.READY
    finally:
        await bed.close()


@pytest.mark.parametrize(
    ("port", "setting", "value"),
    [
        pytest.param("citizen", "citizen_max_streams", 7, id="citizen-port"),
        pytest.param("peer", "peer_max_streams", 300, id="peer-port"),
    ],
)
async def test_every_connection_is_told_its_stream_limit(
    tmp_path: Path, port: str, setting: str, value: int
) -> None:
    """issue 14 item 5: the server's SETTINGS frame carries MAX_CONCURRENT_STREAMS."""
    bed, node = await edge_node(tmp_path, {setting: value})
    assert bed.ca is not None and node.server.ports is not None
    try:
        if port == "citizen":
            client = await H2Client.open(node.server.ports.citizen, bed.ca.cert_pem)
        else:  # the peer port wants a client certificate: present court's
            client = await _peer_h2(bed, node.server.ports.peer, tmp_path)
        try:
            event = await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
            assert isinstance(event, h2.events.RemoteSettingsChanged)
            limit = event.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS]
            assert limit.new_value == value
        finally:
            await client.close()
    finally:
        await bed.close()


async def _peer_h2(bed: Testbed, port: int, tmp_path: Path) -> H2Client:
    """A bare HTTP/2 client on the peer port, presenting court's certificate."""
    assert bed.ca is not None
    cert = bed.cert("court")
    (tmp_path / "court.pem").write_bytes(cert.cert_pem)
    (tmp_path / "court.key").write_bytes(cert.key_pem)
    return await H2Client.open(
        port, bed.ca.cert_pem, (tmp_path / "court.pem", tmp_path / "court.key")
    )


_GET_MY_SCORE = "/huxin.v1.CitizenService/GetMyScore"
_CATALOGUE = "/huxin.v1.CitizenService/GetIncentiveCatalogue"


@pytest.mark.parametrize(
    ("path", "identity", "status", "reason"),
    [
        pytest.param(_GET_MY_SCORE, "none", "16", "IDENTITY_MISSING", id="no-identity"),
        pytest.param(_GET_MY_SCORE, "garbage", "16", "IDENTITY_INVALID", id="garbage-identity"),
        pytest.param(
            _GET_MY_SCORE, "other-node", "16", "IDENTITY_WRONG_AUDIENCE", id="identity-for-other"
        ),
        pytest.param(_GET_MY_SCORE, "valid", "4", "REQUEST_TIMEOUT", id="valid-but-no-message"),
        pytest.param(_CATALOGUE, "none", "4", "REQUEST_TIMEOUT", id="public-method-no-message"),
    ],
)
async def test_a_headers_only_call_is_refused_or_timed_out(
    tmp_path: Path, path: str, identity: str, status: str, reason: str
) -> None:
    """issue 14 item 5: a call that sends only headers is refused with UNAUTHENTICATED
    (16) and its reason without waiting for a message when its identity assertion is
    missing or invalid; with a valid one (or on a public method) the server ends it
    with DEADLINE_EXCEEDED (4) ``REQUEST_TIMEOUT`` once ``request_timeout_seconds``
    passed without a request message."""
    bed, node = await edge_node(tmp_path, {"request_timeout_seconds": 1.0})
    assert bed.ca is not None and node.server.ports is not None
    now = int(node.clock.now().timestamp())
    metadata: dict[str, bytes | str] = {}
    if identity == "garbage":
        metadata["huxin-identity-bin"] = b"not an envelope"
    elif identity == "other-node":
        metadata["huxin-identity-bin"] = node.idp.assertion(PERSON, "hainan", now)
    elif identity == "valid":
        metadata["huxin-identity-bin"] = node.idp.assertion(PERSON, "heihe", now)
    client = await H2Client.open(node.server.ports.citizen, bed.ca.cert_pem)
    try:
        stream = client.headers_only(path, metadata)
        await client.flush()
        await client.until(
            lambda e: (
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream
            )
        )
        got = client.status_of(stream)
        assert (got.get("grpc-status"), got.get("huxin-reason")) == (status, reason)
        async with asyncio.timeout(60):  # the guard's count ends with the call
            while node.server.inflight():
                await asyncio.sleep(0.01)
    finally:
        await client.close()
        await bed.close()


async def test_public_calls_without_identity_are_capped_node_wide(tmp_path: Path) -> None:
    """calls to a public method carry no identity, so they are capped over
    the whole node, not per connection: with ``citizen_max_public_calls = 8`` and eight
    headers-only ``GetIncentiveCatalogue`` calls held over four connections, the ninth
    (on a fifth connection) is refused at once with RESOURCE_EXHAUSTED (8)
    ``TOO_MANY_PUBLIC_CALLS``; an authenticated citizen call still reaches its servicer
    meanwhile; once the held calls end (the public message deadline), a public call
    succeeds again."""
    bed, node = await edge_node(
        tmp_path,
        {
            "citizen_max_public_calls": 8,
            "request_timeout_seconds": 600.0,
            "public_request_timeout_seconds": 30.0,
        },
    )
    assert bed.ca is not None and node.server.ports is not None
    port = node.server.ports.citizen
    clients = [await H2Client.open(port, bed.ca.cert_pem) for _ in range(5)]
    guard = node.server._guards[-1]  # the citizen port's guard
    try:
        held = []
        for client in clients[:4]:
            held += [(client, client.headers_only(_CATALOGUE)) for _ in range(2)]
            await client.flush()
        async with asyncio.timeout(60):
            while guard.public_inflight() < 8:
                await asyncio.sleep(0.01)
        extra = clients[4]
        stream = extra.headers_only(_CATALOGUE)
        await extra.flush()
        await extra.until(
            lambda e: (
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream
            )
        )
        got = extra.status_of(stream)
        assert (got.get("grpc-status"), got.get("huxin-reason")) == ("8", "TOO_MANY_PUBLIC_CALLS")
        assert guard.public_inflight() == 8  # the held calls are still waiting

        stub = bed.citizen_stub(node)
        with pytest.raises(aio.AioRpcError) as known:  # past identity: the servicer answers
            await stub.GetMyScore(
                node_pb2.MyScoreRequest(), metadata=node.identity(PERSON), timeout=60
            )
        assert (known.value.code(), reason_of(known.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "SUBJECT_UNKNOWN",
        )
        with pytest.raises(aio.AioRpcError) as refused:  # a real client is refused too
            await stub.GetIncentiveCatalogue(node_pb2.GetIncentiveCatalogueRequest(), timeout=60)
        assert (refused.value.code(), reason_of(refused.value)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_PUBLIC_CALLS",
        )

        for client, held_stream in held:  # the held calls end: the count goes down
            client.conn.reset_stream(held_stream)
            await client.flush()
        async with asyncio.timeout(60):
            while guard.public_inflight():
                await asyncio.sleep(0.01)
        catalogue = await stub.GetIncentiveCatalogue(
            node_pb2.GetIncentiveCatalogueRequest(), timeout=60
        )
        assert catalogue.scheme_id == "heihe"
    finally:
        for client in clients:
            await client.close()
        await bed.close()


async def test_a_public_call_has_the_shorter_message_deadline(tmp_path: Path) -> None:
    """a headers-only public call is ended after
    ``public_request_timeout_seconds`` (1 s here), not ``request_timeout_seconds``
    (600 s here): DEADLINE_EXCEEDED (4) ``REQUEST_TIMEOUT``."""
    bed, node = await edge_node(
        tmp_path, {"request_timeout_seconds": 600.0, "public_request_timeout_seconds": 1.0}
    )
    assert bed.ca is not None and node.server.ports is not None
    client = await H2Client.open(node.server.ports.citizen, bed.ca.cert_pem)
    try:
        stream = client.headers_only(_CATALOGUE)
        await client.flush()
        await client.until(
            lambda e: (
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream
            ),
            timeout=120,  # far below 600 s: the public deadline ended it
        )
        got = client.status_of(stream)
        assert (got.get("grpc-status"), got.get("huxin-reason")) == ("4", "REQUEST_TIMEOUT")
    finally:
        await client.close()
        await bed.close()


async def test_a_valid_identity_still_reaches_the_servicer(tmp_path: Path) -> None:
    """issue 14 item 5: the guard verifies the assertion once and hands the citizen to
    the servicer: a call with a valid assertion gets past identity (the person has no
    records here: NOT_FOUND SUBJECT_UNKNOWN), one without is UNAUTHENTICATED."""
    bed, node = await edge_node(tmp_path, {})
    try:
        stub = bed.citizen_stub(node)
        with pytest.raises(aio.AioRpcError) as known:
            await stub.GetMyScore(node_pb2.MyScoreRequest(), metadata=node.identity(PERSON))
        assert (known.value.code(), reason_of(known.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "SUBJECT_UNKNOWN",
        )
        with pytest.raises(aio.AioRpcError) as anonymous:
            await stub.GetMyScore(node_pb2.MyScoreRequest())
        assert (anonymous.value.code(), reason_of(anonymous.value)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "IDENTITY_MISSING",
        )
    finally:
        await bed.close()
