"""The hub's peer port at the edge (issue 14 items 6 and 15; docs/adr/0322).

A real hub and a real region registered with it, mutual TLS on loopback: ``Push``
streams count against the per-peer limit of concurrent calls like unary calls do,
and HubService is listed by gRPC health and reflection.

REQ: H17 (security of the federation's hub), C4 (the provincial platform's services
are observable like every node's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from node.pb.v1 import hub_pb2, hub_pb2_grpc
from node.rpc._client import reason_of
from tests.integration._edge import hub_and_region, region_channel

LIMIT = 2


async def test_push_streams_count_against_the_per_peer_limit(tmp_path: Path) -> None:
    """issue 14 item 6: with ``per_peer_concurrency = { heihe = 2 }`` two open ``Push``
    streams from heihe use up its limit: a third Push, and a unary call too, is refused
    RESOURCE_EXHAUSTED ``TOO_MANY_CONCURRENT_CALLS``; once the streams end they complete
    normally and the region may call again."""
    bed, hub, _region = await hub_and_region(
        tmp_path,
        {"request_timeout_seconds": 300.0},
        {"per_peer_concurrency": f"{{ heihe = {LIMIT} }}"},
    )
    try:
        stub = hub_pb2_grpc.HubServiceStub(region_channel(bed, hub, tmp_path / "heihe"))
        release = asyncio.Event()

        async def nothing_until_released() -> AsyncIterator[hub_pb2.PushItem]:
            await release.wait()
            return
            yield  # an async generator that sends no item

        held = [stub.Push(nothing_until_released()) for _ in range(LIMIT)]
        async with asyncio.timeout(120):
            while hub.server.inflight() < LIMIT:
                await asyncio.sleep(0.01)

        with pytest.raises(aio.AioRpcError) as extra:
            await stub.Push(nothing_until_released(), timeout=60)
        assert (extra.value.code(), reason_of(extra.value)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_CONCURRENT_CALLS",
        )
        with pytest.raises(aio.AioRpcError) as unary:
            await stub.GetCursor(hub_pb2.GetCursorRequest(), timeout=60)
        assert reason_of(unary.value) == "TOO_MANY_CONCURRENT_CALLS"

        release.set()
        done = await asyncio.wait_for(asyncio.gather(*held), timeout=120)
        assert [r.cursor for r in done] == [0] * LIMIT
        assert (await stub.GetCursor(hub_pb2.GetCursorRequest(), timeout=60)).cursor == 0
    finally:
        await bed.close()


@pytest.mark.parametrize(
    ("node", "service", "status"),
    [
        pytest.param("hub", "huxin.v1.HubService", "SERVING", id="hub-HubService"),
        pytest.param("hub", "huxin.v1.PeerService", "SERVING", id="hub-PeerService"),
        pytest.param("region", "huxin.v1.SourceService", "SERVING", id="region-SourceService"),
        pytest.param("region", "huxin.v1.HubService", "NOT_FOUND", id="region-has-no-HubService"),
    ],
)
async def test_health_lists_what_the_peer_port_serves(
    tmp_path: Path, node: str, service: str, status: str
) -> None:
    """issue 14 item 15: gRPC health on the peer port answers SERVING for every service
    the port serves — HubService on a hub — and NOT_FOUND for one it does not."""
    bed, hub, region = await hub_and_region(tmp_path, {})
    try:
        target = hub if node == "hub" else region
        health = health_pb2_grpc.HealthStub(bed.peer_channel(target, bed.cert("court")))
        request = health_pb2.HealthCheckRequest(service=service)
        if status == "NOT_FOUND":
            with pytest.raises(aio.AioRpcError) as err:
                await health.Check(request, timeout=60)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        else:
            answer = await health.Check(request, timeout=60)
            assert health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status) == status
    finally:
        await bed.close()


async def test_reflection_lists_hub_service_on_a_hub(tmp_path: Path) -> None:
    """issue 14 item 15: reflection on the hub's peer port lists HubService."""
    bed, hub, _region = await hub_and_region(tmp_path, {})
    try:
        stub = reflection_pb2_grpc.ServerReflectionStub(bed.peer_channel(hub, bed.cert("court")))
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=60
        )
        names = [s.name async for answer in call for s in answer.list_services_response.service]
        assert "huxin.v1.HubService" in names
        assert {"huxin.v1.PeerService", "huxin.v1.SourceService"} <= set(names)
    finally:
        await bed.close()
