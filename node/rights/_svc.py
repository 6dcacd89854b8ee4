"""SourceService RPCs for the citizen's remaining rights (N21, N22).

A mixin of :class:`node.rpc._source.SourceServicer` (which supplies ``_ctx``
and ``_source()``, the caller's department identity checked against
``sources.allowed``), kept here so that the rights code lives in one room.

Invariants: a department lists and decides only the repair applications
addressed to it (another's is NOT_FOUND, never "forbidden"); only the operator
— caller identity = the node's own region, as for ``ResolveObjection`` (the
node has no separate operator role; ``huxin review`` acts as the region too) —
lists objections to the score itself; every caller-chosen field is bounded
and ID-checked (:mod:`node.core._bounds`) before anything is read or written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grpc import aio

from node.core._bounds import NOTE_MAX, REF_MAX, check_length, check_text
from node.core._errors import PermissionDeniedError
from node.pb.v1 import node_pb2
from node.rights import _objections as objections
from node.rights import _repair as repair
from node.rpc._guard import require_caller

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["RightsSourceRpcs"]


class RightsSourceRpcs:
    _ctx: NodeContext

    def _source(self) -> str:  # supplied by SourceServicer
        raise NotImplementedError

    async def ListRepairApplications(
        self,
        request: node_pb2.ListRepairApplicationsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> node_pb2.ListRepairApplicationsResponse:
        return await repair.list_for_department(self._ctx, self._source(), request.pending_only)

    async def DecideRepairApplication(
        self,
        request: node_pb2.DecideRepairApplicationRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> node_pb2.RepairApplicationInfo:
        who = self._source()
        check_length("application_id", request.application_id, REF_MAX, required=True)
        check_text("reason", request.reason, NOTE_MAX)
        return await repair.decide(
            self._ctx, who, request.application_id, request.grant, request.reason
        )

    async def ListScoreObjections(
        self, request: node_pb2.ListObjectionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListObjectionsResponse:
        if require_caller() != self._ctx.config.region:
            raise PermissionDeniedError(
                "NOT_OPERATOR", "only the node's operator handles objections to the score"
            )
        return await objections.list_for_operator(self._ctx, request.open_only)
