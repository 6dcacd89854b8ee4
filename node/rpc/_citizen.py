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
from node.core._bounds import (
    NAME_MAX,
    NOTE_MAX,
    RECORD_TEXT_MAX,
    REF_MAX,
    check_int,
    check_length,
    check_text,
)
from node.core._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from node.disclosure import CONSENT_TYPE, grant_consent
from node.exchange._consent import state_of
from node.monthly import score_result_proto
from node.monthly._selfquery import self_query
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rights import _dereg as dereg
from node.rights import _objections as objections
from node.rights import _optout as optout
from node.rights import _repair as repair
from node.rights import _supplements as supplements
from node.rpc._context import NodeContext
from node.rpc._guard import require_citizen
from node.rpc._identity import AuthenticatedCitizen
from node.store import Connection
from node.store._consents import ConsentRow, get_consent, withdraw_consent
from node.store._notifications import notifications_after
from node.store._translog import PAGE_DEFAULT, LogWrite

__all__ = ["CONSENT_TYPE", "CitizenServicer", "score_result_proto"]

PERIOD_MAX = 7  # YYYY-MM


def consent_info(row: ConsentRow, now: int) -> node_pb2.ConsentInfo:
    grant = node_pb2.ConsentGrant()
    grant.ParseFromString(row.grant_payload)  # our own signed bytes, from our database
    return node_pb2.ConsentInfo(
        grant=grant, state=state_of(row, now), uses=row.uses, withdrawn_at=row.withdrawn_at or 0
    )


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
        citizen = self._citizen(context)
        now = self._ctx.now_s()
        rows = await self._ctx.consents.of_subject(citizen.subject_key)
        return node_pb2.ListConsentsResponse(consents=[consent_info(r, now) for r in rows])

    async def WithdrawConsent(
        self, request: node_pb2.WithdrawConsentRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ConsentInfo:
        ctx = self._ctx
        citizen = self._citizen(context)
        check_length("consent_id", request.consent_id, REF_MAX, required=True)
        now = ctx.now_s()
        log = ctx.log

        def withdraw(conn: Connection) -> tuple[ConsentRow, tuple[int, list[bytes]]]:
            row = get_consent(conn, request.consent_id)
            if row is None or row.subject_key != citizen.subject_key:
                raise NotFoundError("CONSENT_NOT_FOUND", "no such consent", field="consent_id")
            if row.withdrawn_at is not None:
                raise FailedPreconditionError(
                    "CONSENT_WITHDRAWN", "already withdrawn", field="consent_id"
                )
            withdraw_consent(conn, row.consent_id, now)
            logged = log.append_sync(
                conn,
                [
                    LogWrite(
                        "consent_withdrawn",
                        now,
                        citizen.subject_key,
                        consent_id=row.consent_id,
                        requester=row.audience,
                        purpose=row.purpose,
                    )
                ],
            )
            after = get_consent(conn, row.consent_id)
            assert after is not None
            return after, logged

        # one unit of work: the log's tree mirrors the entry after COMMIT; a call
        # cancelled (its deadline passed) while it waited for the writer changes nothing
        updated, _ = await ctx.db.write_unit(
            withdraw, lambda r: log.mirror(*r[1]), drop_if_cancelled=True
        )
        return consent_info(updated, now)

    async def QueryLog(
        self, request: node_pb2.QueryLogRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.QueryLogResponse:
        """One page of the caller's own entries (H16, N23): ``page_size`` 0 means
        ``PAGE_DEFAULT``, more than ``PAGE_MAX`` and a ``start_index`` past the log's
        end are INVALID_ARGUMENT; every proof of the page is against its checkpoint."""
        citizen = self._citizen(context)
        check_int("start_index", request.start_index)
        page = await self._ctx.log.page_for(
            citizen.subject_key,
            self._ctx.now_s(),
            start=request.start_index,
            limit=request.page_size or PAGE_DEFAULT,
        )
        return node_pb2.QueryLogResponse(
            entries=page.entries,
            checkpoint=page.checkpoint.to_proto(),
            next_start_index=page.next_start,
            more=page.more,
        )

    # -- rights (issue 7) ------------------------------------------------------
    async def FileObjection(
        self, request: node_pb2.FileObjectionRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ObjectionInfo:
        citizen = self._citizen(context)
        if request.about_score:  # N21: the published score itself; the operator handles it
            for name in ("record_id", "source"):
                if getattr(request, name):
                    raise InvalidArgumentError(
                        "INVALID_FIELD", "must be empty for an objection to the score", field=name
                    )
            if request.about_handling:
                raise InvalidArgumentError(
                    "INVALID_FIELD",
                    "an objection to the score is the operator's already",
                    field="about_handling",
                )
            check_length("period", request.period, PERIOD_MAX, required=True)
            check_text("reason", request.reason, NOTE_MAX)  # stored, told to the operator
            return await objections.file_score(
                self._ctx, citizen.subject_key, request.period, request.reason
            )
        if request.period:
            raise InvalidArgumentError(
                "INVALID_FIELD", "only an objection to the score names a period", field="period"
            )
        check_length("record_id", request.record_id, RECORD_TEXT_MAX, required=True)
        check_text("reason", request.reason, NOTE_MAX)  # stored, told to the department
        check_length("source", request.source, NAME_MAX)
        return await objections.file(
            self._ctx,
            citizen.subject_key,
            request.record_id,
            request.reason,
            request.about_handling,
            source=request.source,
        )

    async def ListMyObjections(
        self, request: node_pb2.ListObjectionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListObjectionsResponse:
        citizen = self._citizen(context)
        return await objections.list_for_subject(self._ctx, citizen.subject_key, request.open_only)

    async def ListNotifications(
        self, request: node_pb2.ListNotificationsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListNotificationsResponse:
        citizen = self._citizen(context)
        check_int("after_id", request.after_id)
        rows = await notifications_after(self._ctx.db, citizen.subject_key, request.after_id)
        return node_pb2.ListNotificationsResponse(
            notifications=[
                node_pb2.Notification(id=r[0], at=r[1], kind=r[2], message=r[3]) for r in rows
            ]
        )

    async def Deregister(
        self, request: node_pb2.DeregisterRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.DeregisterResponse:
        citizen = self._citizen(context)
        if not request.confirm:
            raise InvalidArgumentError(
                "NOT_CONFIRMED",
                "deregistration deletes everything held about you; set confirm",
                field="confirm",
            )
        return await dereg.deregister(self._ctx, citizen.subject_key)

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

    # -- credit repair (N22) and voluntariness (N3, N4) ---------------------------
    async def ApplyForRepair(
        self, request: node_pb2.RepairApplicationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.RepairApplicationInfo:
        citizen = self._citizen(context)
        check_length("record_id", request.record_id, RECORD_TEXT_MAX, required=True)
        check_length("source", request.source, NAME_MAX)
        check_length("route", request.route, NAME_MAX, required=True)
        check_text("statement", request.statement, NOTE_MAX)  # stored, told to the department
        return await repair.apply(self._ctx, citizen.subject_key, request)

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
        if not request.confirm:
            raise InvalidArgumentError(
                "NOT_CONFIRMED",
                "opting out ends your consents and stops your score; set confirm",
                field="confirm",
            )
        return await optout.opt_out(self._ctx, citizen.subject_key)

    async def OptIn(
        self, request: node_pb2.OptInRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.OptInResponse:
        citizen = self._citizen(context)
        return await optout.opt_in(self._ctx, citizen.subject_key)
