"""Server plumbing on a real node: per-peer concurrency limit, graceful shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc import aio

from node.cli._init import init_region
from node.demo._testbed import Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from tests._waiting import until

PEOPLE = [make_id_number(n, area="231181", born="19750505") for n in range(200)]


def _batch(tag: str, n: int = 2000) -> node_pb2.SubmitRecordsRequest:
    return node_pb2.SubmitRecordsRequest(
        batch_id=tag,
        records=[honour_record(f"{tag}-{i}", PEOPLE[i % len(PEOPLE)]) for i in range(n)],
        subjects=[resident(p) for p in PEOPLE],
    )


async def _bed(tmp_path: Path, limit: int) -> tuple[Testbed, node_pb2_grpc.SourceServiceStub]:
    bed = Testbed(tmp_path)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, bed.now, sources=("court",))
    toml = tmp_path / "heihe" / "node.toml"
    toml.write_text(
        toml.read_text().replace(
            "attestation_ttl_seconds = 600",
            f"attestation_ttl_seconds = 600\nper_peer_concurrency = {{ court = {limit} }}",
        )
    )
    node = await bed.start_node("heihe", "heihe")
    stub = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("court")))
    return bed, stub


async def test_calls_beyond_the_per_peer_limit_are_refused(tmp_path: Path) -> None:
    bed, stub = await _bed(tmp_path, limit=1)
    try:
        results = await asyncio.gather(
            *(stub.SubmitRecords(_batch(f"c{i}", 500)) for i in range(6)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, aio.AioRpcError)]
        accepted = [r for r in results if isinstance(r, node_pb2.SubmitRecordsResponse)]
        assert accepted
        assert refused
        for r in refused:
            assert r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason_of(r) == "TOO_MANY_CONCURRENT_CALLS"
    finally:
        await bed.close()


async def test_graceful_shutdown_finishes_in_flight_calls(tmp_path: Path) -> None:
    bed, stub = await _bed(tmp_path, limit=8)
    node = bed.nodes["heihe"]
    try:
        call = asyncio.ensure_future(stub.SubmitRecords(_batch("inflight")))
        await until(lambda: node.server.inflight() > 0, "the call to arrive")
        assert node.server.inflight() == 1
        await bed.stop_node("heihe", grace=10)
        resp = await call
        assert resp.accepted == 2000
        with pytest.raises(aio.AioRpcError) as info:
            await stub.SubmitRecords(_batch("late", 1), timeout=2)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        await bed.close()
    assert node.server.ports is not None


async def test_per_peer_message_limits_above_and_below_the_default(tmp_path: Path) -> None:
    """A per-peer message limit above the default takes effect (gRPC core's own limit is raised
    with it, so it does not stop the call first), and one below it is refused by the guard with its reason."""
    bed = Testbed(tmp_path)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, bed.now, sources=("court", "tax"))
    toml = tmp_path / "heihe" / "node.toml"
    toml.write_text(
        toml.read_text().replace(
            "max_message_bytes = 4194304",
            "max_message_bytes = 100000\nper_peer_message_bytes = { court = 1000000 }",
        )
    )
    node = await bed.start_node("heihe", "heihe")
    try:
        big = _batch("big", 1500)
        assert 100_000 < big.ByteSize() < 1_000_000
        court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("court")))
        tax = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("tax")))
        assert (await court.SubmitRecords(big)).accepted == 1500
        with pytest.raises(aio.AioRpcError) as info:
            await tax.SubmitRecords(_batch("big-tax", 1500))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(info.value) == "MESSAGE_TOO_LARGE"
    finally:
        await bed.close()
