"""CitizenService: self query, consents, query log, objections, uploads, deregistration.

Invariants: every call is authenticated by a signed identity assertion
(``huxin-identity-bin``) that the guard verified on the call's headers, once
(:func:`node.rpc._guard.require_citizen`);
a citizen sees and withdraws only their own consents (another's consent id
is NOT_FOUND, never "forbidden", so ids cannot be probed); the self query is
free and unlimited and is the only place the explained report (contributions)
leaves the node (H12), for the last finished month as published (H3,
:mod:`node.monthly`); consent validity is capped by ``consent.max_validity_days``
(default 90) — a longer request is refused, not silently shortened; a grant
and a withdrawal commit together with their transparency-log entry; a citizen
grants at most ``[consent] grants_per_hour`` per rolling hour and
``grant_burst`` per rolling minute (RESOURCE_EXHAUSTED ``CONSENT_RATE_EXCEEDED``
with ``retry-after``) and holds at most ``max_active_consents`` active ones
(RESOURCE_EXHAUSTED ``TOO_MANY_ACTIVE_CONSENTS``), counted from the database
inside the grant's own write transaction, so a refusal writes nothing (no log
leaf) and two concurrent grants cannot both pass (docs/adr/0324); every
caller-chosen string and integer is bounded (:mod:`node.core._bounds`); objections,
uploads, notifications and deregistration act on the caller's own subject key
only (docs/adr/0500-0509); a person who opted out of being scored (N3,
:mod:`node.rights._optout`) gets no score from ``GetMyScore`` (it says so) and
no new consent (FAILED_PRECONDITION ``SUBJECT_OPTED_OUT``); the incentive catalogue
is public (no identity) and
offers incentives only — there is no deny or punishment call anywhere (H14); a
consent's purpose is a catalogue scenario and only a person who meets it can
grant it, the default disclosure being a threshold (:mod:`node.disclosure`).
"""

from __future__ import annotations

from typing import Any

from grpc import aio

from node.catalogue import Publisher, citizen_view
from node.disclosure import CONSENT_TYPE, grant_consent
from node.monthly import score_result_proto
from node.monthly._selfquery import self_query
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rights import _dereg as dereg
from node.rights import _objections as objections
from node.rights import _optout as optout
from node.rights import _own as own
from node.rights import _repair as repair
from node.rights import _supplements as supplements
from node.rpc._context import NodeContext
from node.rpc._guard import require_citizen
from node.rpc._identity import AuthenticatedCitizen

__all__ = ["CONSENT_TYPE", "CitizenServicer", "score_result_proto"]


class CitizenServicer(node_pb2_grpc.CitizenServiceServicer):
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._catalogue = Publisher(ctx.config, ctx.scheme)  # N17: its guide checked at start

    def _citizen(self, context: aio.ServicerContext[Any, Any]) -> AuthenticatedCitizen:
        return require_citizen()  # verified by the guard on the headers, once per call

    async def GetMyScore(
        self, request: node_pb2.MyScoreRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.MyScoreResponse:
        citizen = self._citizen(context)  # H3: the published month's score, explained (H12)
        return await self_query(self._ctx, citizen.subject_key)

    async def GrantConsent(
        self, request: node_pb2.GrantConsentRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ConsentToken:
        """A consent for a catalogue scenario, or its preview (node.disclosure, ADR 0512)."""
        return await grant_consent(self._ctx, self._citizen(context), request)

    async def ListConsents(
        self, request: node_pb2.ListConsentsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListConsentsResponse:
        return await own.consents_of(self._ctx, self._citizen(context).subject_key)

    async def WithdrawConsent(
        self, request: node_pb2.WithdrawConsentRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ConsentInfo:
        citizen = self._citizen(context)
        return await own.withdraw(self._ctx, citizen.subject_key, request.consent_id)

    async def QueryLog(
        self, request: node_pb2.QueryLogRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.QueryLogResponse:
        """One page of the caller's own entries (H16, N23; :func:`node.rights._own.query_log`)."""
        citizen = self._citizen(context)
        return await own.query_log(
            self._ctx, citizen.subject_key, request.start_index, request.page_size
        )

    # -- rights (issue 7) ------------------------------------------------------
    async def FileObjection(
        self, request: node_pb2.FileObjectionRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ObjectionInfo:
        return await own.file_objection(self._ctx, self._citizen(context).subject_key, request)

    async def ListMyObjections(
        self, request: node_pb2.ListObjectionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListObjectionsResponse:
        citizen = self._citizen(context)
        return await objections.list_for_subject(self._ctx, citizen.subject_key, request.open_only)

    async def ListNotifications(
        self, request: node_pb2.ListNotificationsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListNotificationsResponse:
        citizen = self._citizen(context)
        return await own.notifications_of(self._ctx, citizen.subject_key, request.after_id)

    async def Deregister(
        self, request: node_pb2.DeregisterRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.DeregisterResponse:
        citizen = self._citizen(context)
        return await own.deregister(self._ctx, citizen.subject_key, request.confirm)

    async def Register(
        self, request: node_pb2.RegisterRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.RegisterResponse:
        citizen = self._citizen(context)
        return await dereg.register(self._ctx, citizen.subject_key)

    async def UploadSupplement(
        self, request: node_pb2.UploadSupplementRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.SupplementInfo:
        citizen = self._citizen(context)
        return await supplements.upload(self._ctx, citizen.subject_key, request)

    async def ListMySupplements(
        self, request: node_pb2.ListSupplementsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListSupplementsResponse:
        citizen = self._citizen(context)
        return await supplements.list_for_subject(
            self._ctx, citizen.subject_key, request.pending_only
        )

    async def GetIncentiveCatalogue(
        self,
        request: node_pb2.GetIncentiveCatalogueRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> node_pb2.IncentiveCatalogue:
        ctx = self._ctx
        return citizen_view(*self._catalogue.signed(ctx.scheme, ctx.secrets, ctx.now_s()))

    async def GetMyIncentives(
        self, request: node_pb2.MyIncentivesRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.MyIncentivesResponse:
        """Issue 19: what my published grade qualifies for, here and through recognition."""
        citizen = self._citizen(context)
        return await own.incentives_of(self._ctx, citizen.subject_key, self._catalogue)

    # -- credit repair (N22) and voluntariness (N3, N4) ---------------------------
    async def ApplyForRepair(
        self, request: node_pb2.RepairApplicationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.RepairApplicationInfo:
        return await own.apply_for_repair(self._ctx, self._citizen(context).subject_key, request)

    async def ListMyRepairApplications(
        self,
        request: node_pb2.ListRepairApplicationsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> node_pb2.ListRepairApplicationsResponse:
        citizen = self._citizen(context)
        return await repair.list_for_subject(self._ctx, citizen.subject_key, request.pending_only)

    async def OptOut(
        self, request: node_pb2.OptOutRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.OptOutResponse:
        citizen = self._citizen(context)
        return await own.opt_out(self._ctx, citizen.subject_key, request.confirm)

    async def OptIn(
        self, request: node_pb2.OptInRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.OptInResponse:
        citizen = self._citizen(context)
        return await optout.opt_in(self._ctx, citizen.subject_key)
