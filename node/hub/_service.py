"""HubService: the gRPC face of :class:`node.hub._ingest.Hub` (served on the hub's peer port).

Invariants: the caller is the region id of its verified client certificate;
the guard (:mod:`node.rpc._guard`) does for ``Push`` (client streaming) what it does
for every call — identity, the per-peer limit of concurrent calls (a stream
counts while it is open), a deadline and a size limit per item, error mapping,
metrics and one log line — and ``Push`` bounds the number of items per stream.
Every event is stored (committed) before the next one is read; the response
(cursor and receipts) is sent at the end of the stream; after a broken stream
the region asks ``GetCursor``/``GetReceipts``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from node.core._bounds import RECEIPTS_MAX, check_int
from node.core._errors import (
    NodeError,
    ResourceExhaustedError,
)
from node.hub._ingest import Hub
from node.pb.v1 import attestation_pb2, hub_pb2, hub_pb2_grpc, node_pb2
from node.rpc._context import NodeContext
from node.rpc._guard import require_caller

__all__ = ["HubServicer", "Router"]

Router = Callable[
    [NodeContext, hub_pb2.RouteAttestationRequest, str], Awaitable[node_pb2.AttestationResponse]
]


class UnimplementedError(NodeError):
    status = grpc.StatusCode.UNIMPLEMENTED


class HubServicer(hub_pb2_grpc.HubServiceServicer):
    def __init__(self, ctx: NodeContext, hub: Hub, router: Router | None = None) -> None:
        self._ctx = ctx
        self._hub = hub
        self.router = router

    async def Push(
        self,
        request_iterator: AsyncIterator[hub_pb2.PushItem],
        context: aio.ServicerContext[Any, Any],
    ) -> hub_pb2.PushResponse:
        region = require_caller()
        await self._hub.admit(region)
        limit = self._ctx.config.hub.max_items_per_push
        out = hub_pb2.PushResponse()
        events = 0
        # Pipelined: event k+1 is verified while event k commits; receipts stay in order.
        pending: asyncio.Future[bytes] | None = None
        try:
            async for item in request_iterator:
                now = self._ctx.now_s()
                if item.kind == "log_checkpoint":
                    if pending is not None:
                        out.receipts.add().ParseFromString(await pending)
                        pending = None
                    out.witnessed.ParseFromString(
                        await self._hub.witness(region, item.log_checkpoint, now)
                    )
                    continue
                events += 1
                if events > limit:
                    raise ResourceExhaustedError(
                        "PUSH_TOO_LONG", f"at most {limit} events per push stream",
                        field="events",
                    )  # fmt: skip
                prepared = await self._hub.prepare(region, item, now)
                if pending is not None:
                    out.receipts.add().ParseFromString(await pending)
                    pending = None
                pending = asyncio.ensure_future(self._hub.commit(prepared))
            if pending is not None:
                out.receipts.add().ParseFromString(await pending)
                pending = None
        finally:
            if pending is not None:  # an error came first: let the commit finish
                with contextlib.suppress(Exception):
                    await pending
        out.cursor = (await self._hub.cursor(region)).cursor
        return out

    async def GetCursor(
        self, request: hub_pb2.GetCursorRequest, context: aio.ServicerContext[Any, Any]
    ) -> hub_pb2.GetCursorResponse:
        region = require_caller()
        await self._hub.admit(region)
        return await self._hub.cursor(region)

    async def GetReceipts(
        self, request: hub_pb2.GetReceiptsRequest, context: aio.ServicerContext[Any, Any]
    ) -> hub_pb2.GetReceiptsResponse:
        region = require_caller()
        check_int("from_seq", request.from_seq)  # SQLite INTEGER (docs/bounds.md)
        check_int("limit", request.limit, 0, RECEIPTS_MAX)
        await self._hub.admit(region)
        out = hub_pb2.GetReceiptsResponse()
        for blob in await self._hub.receipts(region, request.from_seq, request.limit):
            out.receipts.add().ParseFromString(blob)
        return out

    async def GetTrustList(
        self, request: hub_pb2.GetTrustListRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        require_caller()  # public: any certificate of the CA may read it (ADR 0415)
        return attestation_pb2.Envelope.FromString(await self._hub.trust_list(self._ctx.now_s()))

    async def GetHubKeySet(
        self, request: hub_pb2.GetHubKeySetRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        require_caller()  # public: any certificate of the CA may read it (ADR 0415)
        return self._ctx.secrets.key_set_envelope.to_proto()

    async def RouteAttestation(
        self, request: hub_pb2.RouteAttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        who = require_caller()
        if self.router is None:
            raise UnimplementedError("ROUTING_UNAVAILABLE", "this hub does not route requests")
        return await self.router(self._ctx, request, who)
