"""The guard interceptor on a real in-process grpc.aio server (docs/adr/0313).

REQ: N-observability — every call, answered or refused, gives one access line
(method, peer, code, reason, ms) and its metrics, after the handler returned;
the wrapped handler of a method is built once and reused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from prometheus_client import generate_latest

from node.core._config import Limits
from node.core._errors import FailedPreconditionError
from node.core._observe import Metrics
from node.pb.v1 import node_pb2
from node.rpc._guard import GuardInterceptor, caller
from tests._waiting import until

SERVICE = "huxin.test.Guarded"
Req, Resp = node_pb2.GetKeySetRequest, node_pb2.GetStatusListRequest


class _Bed:
    def __init__(self) -> None:
        self.metrics = Metrics("heihe")
        self.guard = GuardInterceptor(Limits(), self.metrics, require_certificate=False)
        self.seen: list[str | None] = []
        self.stub: Any = None

    async def ok(self, request: Any, context: Any) -> Any:
        self.seen.append(caller())
        return Resp()

    async def refuse(self, request: Any, context: Any) -> Any:
        raise FailedPreconditionError("SUBJECT_UNKNOWN", "no records for the person")


@pytest.fixture
async def bed() -> AsyncIterator[_Bed]:
    b = _Bed()
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=Req.FromString, response_serializer=Resp.SerializeToString
        )
        for name, fn in (("Ok", b.ok), ("Refuse", b.refuse))
    }
    server = aio.server(interceptors=[b.guard])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    b.stub = {
        name: channel.unary_unary(
            f"/{SERVICE}/{name}",
            request_serializer=Req.SerializeToString,
            response_deserializer=Resp.FromString,
        )
        for name in handlers
    }
    try:
        yield b
    finally:
        await channel.close()
        await server.stop(None)


async def test_wrapped_handler_is_built_once_per_method(bed: _Bed) -> None:
    for _ in range(3):
        await bed.stub["Ok"](Req())
    assert list(bed.guard._wrapped) == [f"/{SERVICE}/Ok"]
    first = bed.guard._wrapped[f"/{SERVICE}/Ok"]
    await bed.stub["Ok"](Req())
    assert bed.guard._wrapped[f"/{SERVICE}/Ok"] is first
    assert bed.seen == [None] * 4  # no client certificate: no caller identity
    assert bed.guard.inflight() == 0


def _rpc_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.getMessage() == "rpc"]  # type: ignore[attr-defined]


async def test_every_call_is_counted_and_logged_refusals_too(
    bed: _Bed, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="huxin"):
        await bed.stub["Ok"](Req())
        with pytest.raises(aio.AioRpcError) as err:
            await bed.stub["Refuse"](Req())
        # the access lines follow the responses, whenever the server's loop gets there
        await until(lambda: len(_rpc_lines(caplog)) >= 2, "two access lines")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    rpc = _rpc_lines(caplog)
    assert [(f["method"], f["peer"], f["code"], f["reason"]) for f in rpc] == [
        ("Ok", "citizen", "OK", ""),
        ("Refuse", "citizen", "FAILED_PRECONDITION", "SUBJECT_UNKNOWN"),
    ]
    assert all(isinstance(f["ms"], float) and f["ms"] >= 0 for f in rpc)
    text = generate_latest(bed.metrics.registry).decode()
    assert 'huxin_requests_total{code="OK",method="Ok"} 1.0' in text
    assert 'huxin_requests_total{code="FAILED_PRECONDITION",method="Refuse"} 1.0' in text
    assert 'huxin_errors_total{reason="SUBJECT_UNKNOWN"} 1.0' in text


async def test_flush_writes_what_is_queued(bed: _Bed, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="huxin"):
        bed.guard._access.record("Ok", peer="hainan", via="", code="OK", reason="", seconds=0.0)
        bed.guard.flush()  # e.g. at shutdown, before the loop runs the scheduled flush
        assert [r.fields["peer"] for r in caplog.records if r.getMessage() == "rpc"] == [  # type: ignore[attr-defined]
            "hainan"
        ]
        await asyncio.sleep(0)  # the scheduled flush then finds nothing to write
    assert len([r for r in caplog.records if r.getMessage() == "rpc"]) == 1
