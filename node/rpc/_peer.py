"""PeerService: consented attestation requests, key set, status list, schemes, mappings.

Invariants of :meth:`PeerServicer.RequestAttestation`, a thin servicer:

* the request's form is checked first
  (:func:`node.exchange._request_form.check_attestation_request`), exactly as every
  routing hop checks it before it forwards anything;
* the caller is the region id in its verified client certificate
  (:func:`node.rpc._guard.require_caller`) and the call's deadline is taken from
  ``time_remaining()`` when the handler starts, as an absolute ``time.monotonic()``
  value: the first statement of the request's unit of work compares it, so a
  request whose deadline passed while it waited for the writer is refused
  ``DEADLINE_EXCEEDED`` and nothing is used, logged or allocated;
* everything else -- trust list, token, consent rules, grade, the ONE quick unit
  of work, refusal registration, signing after COMMIT -- is
  :func:`node.exchange.issue` (its docstring lists the steps); every reason it
  can give is in :data:`REQUEST_REASONS`.
"""

from __future__ import annotations

import time
from typing import Any

from grpc import aio

from keys.pb.v1 import attestation_pb2
from node.catalogue import Publisher
from node.core._errors import PermissionDeniedError, own_data
from node.exchange._issue import NO_DEADLINE, REQUEST_REASONS, Exchange, issue, withdrawn_error
from node.exchange._mapping import table_blob
from node.exchange._request_form import check_attestation_request
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._context import NodeContext
from node.rpc._guard import require_caller
from node.store._status_list import render_status_list
from scoring import list_schemes, load_scheme

__all__ = ["REQUEST_REASONS", "PeerServicer", "withdrawn_error"]


class PeerServicer(node_pb2_grpc.PeerServiceServicer):
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._exchange = Exchange.of(ctx)  # verified tokens, refusal lines, metric children
        self._catalogue = Publisher(ctx.config, ctx.scheme)  # N17: its guide checked at start

    def _peer(self) -> str:
        who = require_caller()
        if not self._ctx.trust.allows(who, self._ctx.now_s()):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        return who

    async def RequestAttestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        check_attestation_request(request)  # the form first, as every hop checks it
        return await self.serve_attestation(request, context)

    async def serve_attestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        """Serve a request whose form :func:`check_attestation_request` accepted."""
        remaining = context.time_remaining()  # None: the caller set no deadline
        deadline = NO_DEADLINE if remaining is None else time.monotonic() + remaining
        at = self._ctx.clock.now()  # one reading for the trust check, the use and the period
        blob = await issue(
            self._ctx, self._exchange, request, caller=require_caller(), at=at, deadline=deadline
        )
        return node_pb2.AttestationResponse(signed_attestation=blob)

    async def GetKeySet(
        self, request: node_pb2.GetKeySetRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        # public trust material: any certificate of the CA may read it (ADR 0415)
        return self._ctx.secrets.key_set_envelope.to_proto()

    async def GetStatusList(
        self, request: node_pb2.GetStatusListRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        # public trust material: any certificate of the CA may read it (ADR 0415)
        with own_data("the status list"):
            return (
                await render_status_list(
                    self._ctx.db,
                    self._ctx.config.region,
                    self._ctx.secrets.signing,
                    self._ctx.clock.now(),
                )
            ).to_proto()

    async def ListSchemes(
        self, request: node_pb2.ListSchemesRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListSchemesResponse:
        self._peer()
        out = []
        for sid in list_schemes():
            s = load_scheme(sid)
            out.append(scoring_pb2.Scheme(id=s.id, version=s.version, region=s.region, name=s.name))
        return node_pb2.ListSchemesResponse(schemes=out)

    async def ListMappings(
        self, request: node_pb2.ListMappingsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListMappingsResponse:
        self._peer()
        # the tables this node uses, approved ones first, each with its approval (H13)
        served = self._ctx.mapper.served(self._ctx.today())
        return node_pb2.ListMappingsResponse(tables=[table_blob(t, a) for t, a in served])

    async def GetLogCheckpoint(
        self, request: node_pb2.GetCheckpointRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        self._peer()
        _size, env = await self._ctx.log.current_checkpoint(self._ctx.now_s())
        with own_data("the log checkpoint"):
            return env.to_proto()

    async def GetSignedCatalogue(
        self,
        request: node_pb2.GetIncentiveCatalogueRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> attestation_pb2.Envelope:
        require_caller()  # public trust material: any certificate of the CA (ADR 0415, 0511)
        ctx = self._ctx
        _catalogue, signed = self._catalogue.signed(ctx.scheme, ctx.secrets, ctx.now_s())
        return signed.to_proto()
