"""The citizen's JSON API and the integrator's attestation request, declared once.

Each operation is one :class:`ApiRoute`: method, path, the gRPC method it
mirrors (its OpenAPI ``operationId``), who may call it, the request dataclass
(:mod:`node.http._codec`) and the protobuf answer.  The app factory serves the
declarations and :mod:`node.http._openapi` documents the very same list, so a
route cannot be served without being documented or documented with another
shape.  Every ``call`` is the domain function the gRPC servicer calls
(:mod:`node.rpc._citizen`, :mod:`node.rpc._peer`, :mod:`node.federation._route`).

Bounds: each string and integer a caller chooses is bounded in its dataclass
with the constant the domain checks (:mod:`node.core._bounds`,
``node.core._freetext.PURPOSE_MAX``, ``node.exchange._request_form``); the body
as a whole by ``[listen] http_max_body_bytes``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message

from keys.pb.v1 import attestation_pb2
from node.catalogue import Publisher, citizen_view
from node.core._bounds import ID_MAX, INT64_MAX, NAME_MAX, NOTE_MAX, RECORD_TEXT_MAX, REF_MAX
from node.core._config import MAX_USES_CAP
from node.core._errors import InvalidArgumentError, PermissionDeniedError
from node.core._freetext import PURPOSE_MAX
from node.disclosure import grant_consent
from node.exchange._issue import Exchange, issue
from node.exchange._request_form import (
    NONCE_MAX,
    NONCE_MIN,
    TARGET_SCHEME_MAX,
    check_attestation_request,
)
from node.federation._route import consent_issuer
from node.http._codec import blob, choice, flag, number, text
from node.http._context import HttpContext
from node.monthly._selfquery import self_query
from node.pb.v1 import node_pb2
from node.rights import _dereg as dereg
from node.rights import _objections as objections
from node.rights import _optout as optout
from node.rights import _own as own
from node.rights import _repair as repair
from node.rights import _supplements as supplements
from node.rights._own import PERIOD_MAX
from node.rpc._context import NodeContext
from node.rpc._identity import AuthenticatedCitizen
from node.store._translog import PAGE_MAX

__all__ = ["API_ROUTES", "CITIZEN", "CLIENT", "PUBLIC", "ApiRoute", "collaborators"]

CITIZEN, CLIENT, PUBLIC = "citizen", "client", "public"
UINT32_MAX = 2**32 - 1
SHA256_BYTES = 32
#: an encoded consent token (DSSE envelope): payload, type and a few signatures
TOKEN_MAX = 8192

SCOPES = {
    "grade": node_pb2.CONSENT_SCOPE_GRADE,
    "grade_and_score": node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE,
    "threshold": node_pb2.CONSENT_SCOPE_THRESHOLD,
}


# ---------------------------------------------------------------- request bodies


@dataclass(frozen=True, slots=True)
class NoBody:
    """An operation that takes nothing."""


@dataclass(frozen=True, slots=True)
class GrantConsentBody:
    audience: str = text(NAME_MAX, doc="the requester (region) that may use the consent")
    purpose: str = text(PURPOSE_MAX, doc="a catalogue scenario: '<scheme id>/<scenario id>'")
    scope: str = choice(SCOPES, doc="what is disclosed; empty: the scenario's default")
    valid_days: int = number(UINT32_MAX, doc="0: the node's maximum")
    max_uses: int = number(MAX_USES_CAP, doc="0: the node's default")
    preview_only: bool = flag(doc="only show what the requester would see")


@dataclass(frozen=True, slots=True)
class WithdrawConsentBody:
    consent_id: str = text(REF_MAX)


@dataclass(frozen=True, slots=True)
class QueryLogParams:
    start_index: int = number(INT64_MAX)
    page_size: int = number(PAGE_MAX, doc="0: the default page")


@dataclass(frozen=True, slots=True)
class FileObjectionBody:
    record_id: str = text(RECORD_TEXT_MAX)
    reason: str = text(NOTE_MAX)
    about_handling: bool = flag()
    source: str = text(NAME_MAX)
    about_score: bool = flag()
    period: str = text(PERIOD_MAX, doc="YYYY-MM, for an objection to the score")


@dataclass(frozen=True, slots=True)
class OpenOnlyParams:
    open_only: bool = flag()


@dataclass(frozen=True, slots=True)
class PendingOnlyParams:
    pending_only: bool = flag()


@dataclass(frozen=True, slots=True)
class NotificationsParams:
    after_id: int = number(INT64_MAX)


@dataclass(frozen=True, slots=True)
class ConfirmBody:
    confirm: bool = flag(doc="must be true: the operation ends something at once")


@dataclass(frozen=True, slots=True)
class UploadSupplementBody:
    category: str = text(NAME_MAX)
    level: str = text(NAME_MAX)
    act_id: str = text(ID_MAX)
    recognised_on: str = text(10, doc="YYYY-MM-DD")
    verifier: str = text(NAME_MAX)
    proof_sha256: bytes = blob(SHA256_BYTES)
    description: str = text(NOTE_MAX)
    authorise_verification: bool = flag()


@dataclass(frozen=True, slots=True)
class RepairBody:
    record_id: str = text(RECORD_TEXT_MAX)
    source: str = text(NAME_MAX)
    route: str = text(NAME_MAX)
    statement: str = text(NOTE_MAX)
    evidence_sha256: bytes = blob(SHA256_BYTES)


#: the decoder's cap on the attestation request's fields: a safety bound on what is
#: held, OUTER to the domain's (four times it), so the domain's check answers a field
#: out of its form with the reason gRPC gives (NONCE_INVALID, not INVALID_FIELD)
OUTER = 4


@dataclass(frozen=True, slots=True)
class AttestationBody:
    """The form (a nonce of 16-64 bytes, a 32-byte binding, a purpose of 1-128
    characters, a target scheme of at most 64) is
    :func:`node.exchange._request_form.check_attestation_request`'s, as on gRPC."""

    consent_token: bytes = blob(TOKEN_MAX, doc="the consent token: a serialised envelope")
    subject_binding: bytes = blob(
        OUTER * SHA256_BYTES, doc=f"HMAC-SHA256, {SHA256_BYTES} bytes (checked by the domain)"
    )
    nonce: bytes = blob(
        OUTER * NONCE_MAX, doc=f"{NONCE_MIN}-{NONCE_MAX} bytes (checked by the domain)"
    )
    target_scheme: str = text(
        OUTER * TARGET_SCHEME_MAX,
        doc=f"at most {TARGET_SCHEME_MAX} printable characters (checked by the domain)",
    )
    purpose: str = text(
        OUTER * PURPOSE_MAX, doc=f"1-{PURPOSE_MAX} printable characters (checked by the domain)"
    )


# ---------------------------------------------------------------- the routes

Call = Callable[[HttpContext, Any, Any], Awaitable[Message]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    method: str
    path: str
    operation: str  # the gRPC method mirrored; the OpenAPI operationId
    summary: str
    auth: str  # CITIZEN | CLIENT | PUBLIC
    request: type
    response: type[Message]
    call: Call  # (context, the caller: citizen or identity, the decoded request)

    @property
    def in_query(self) -> bool:
        return self.method == "GET"


def _key(who: AuthenticatedCitizen) -> bytes:
    return who.subject_key


async def _score(hc: HttpContext, who: AuthenticatedCitizen, _r: NoBody) -> Message:
    return await self_query(hc.node, _key(who))


async def _grant(hc: HttpContext, who: AuthenticatedCitizen, r: GrantConsentBody) -> Message:
    request = node_pb2.GrantConsentRequest(
        audience=r.audience,
        purpose=r.purpose,
        scope=SCOPES.get(r.scope, node_pb2.CONSENT_SCOPE_UNSPECIFIED),
        valid_days=r.valid_days,
        max_uses=r.max_uses,
        preview_only=r.preview_only,
    )
    return await grant_consent(hc.node, who, request)


async def _incentives(hc: HttpContext, who: AuthenticatedCitizen, _r: NoBody) -> Message:
    return await own.incentives_of(hc.node, _key(who), hc.extras["publisher"])


async def _consents(hc: HttpContext, who: AuthenticatedCitizen, _r: NoBody) -> Message:
    return await own.consents_of(hc.node, _key(who))


async def _withdraw(hc: HttpContext, who: AuthenticatedCitizen, r: WithdrawConsentBody) -> Message:
    return await own.withdraw(hc.node, _key(who), r.consent_id)


async def _query_log(hc: HttpContext, who: AuthenticatedCitizen, r: QueryLogParams) -> Message:
    return await own.query_log(hc.node, _key(who), r.start_index, r.page_size)


async def _object(hc: HttpContext, who: AuthenticatedCitizen, r: FileObjectionBody) -> Message:
    request = node_pb2.FileObjectionRequest(
        record_id=r.record_id,
        reason=r.reason,
        about_handling=r.about_handling,
        source=r.source,
        about_score=r.about_score,
        period=r.period,
    )
    return await own.file_objection(hc.node, _key(who), request)


async def _objections(hc: HttpContext, who: AuthenticatedCitizen, r: OpenOnlyParams) -> Message:
    return await objections.list_for_subject(hc.node, _key(who), r.open_only)


async def _notifications(
    hc: HttpContext, who: AuthenticatedCitizen, r: NotificationsParams
) -> Message:
    return await own.notifications_of(hc.node, _key(who), r.after_id)


async def _deregister(hc: HttpContext, who: AuthenticatedCitizen, r: ConfirmBody) -> Message:
    answer = await own.deregister(hc.node, _key(who), r.confirm)
    hc.auth.close_subject(_key(who))  # no session keeps the ID number (issue 19)
    return answer


async def _register(hc: HttpContext, who: AuthenticatedCitizen, _r: NoBody) -> Message:
    return await dereg.register(hc.node, _key(who))


async def _upload(hc: HttpContext, who: AuthenticatedCitizen, r: UploadSupplementBody) -> Message:
    request = node_pb2.UploadSupplementRequest(
        category=r.category,
        level=r.level,
        act_id=r.act_id,
        recognised_on=r.recognised_on,
        verifier=r.verifier,
        proof_sha256=r.proof_sha256,
        description=r.description,
        authorise_verification=r.authorise_verification,
    )
    return await supplements.upload(hc.node, _key(who), request)


async def _supplements(hc: HttpContext, who: AuthenticatedCitizen, r: PendingOnlyParams) -> Message:
    return await supplements.list_for_subject(hc.node, _key(who), r.pending_only)


async def _repair(hc: HttpContext, who: AuthenticatedCitizen, r: RepairBody) -> Message:
    request = node_pb2.RepairApplicationRequest(
        record_id=r.record_id,
        source=r.source,
        route=r.route,
        statement=r.statement,
        evidence_sha256=r.evidence_sha256,
    )
    return await own.apply_for_repair(hc.node, _key(who), request)


async def _repairs(hc: HttpContext, who: AuthenticatedCitizen, r: PendingOnlyParams) -> Message:
    return await repair.list_for_subject(hc.node, _key(who), r.pending_only)


async def _opt_out(hc: HttpContext, who: AuthenticatedCitizen, r: ConfirmBody) -> Message:
    # the session stays: an opted-out citizen still reads their page and may opt in
    return await own.opt_out(hc.node, _key(who), r.confirm)


async def _opt_in(hc: HttpContext, who: AuthenticatedCitizen, _r: NoBody) -> Message:
    return await optout.opt_in(hc.node, _key(who))


async def _catalogue(hc: HttpContext, _who: None, _r: NoBody) -> Message:
    ctx = hc.node
    publisher: Publisher = hc.extras["publisher"]
    return citizen_view(*publisher.signed(ctx.scheme, ctx.secrets, ctx.now_s()))


async def _attestation(hc: HttpContext, who: str, r: AttestationBody) -> Message:
    """As :meth:`node.federation._route.RoutingPeerServicer.RequestAttestation` behind
    the gRPC guard: the token decoded (the guard's MALFORMED_REQUEST), the third-party
    query rate (N23), the form, then this region's own consents issued, another's
    routed; so one bad request gets one reason on both channels."""
    ctx = hc.node
    token = attestation_pb2.Envelope()
    try:
        token.ParseFromString(r.consent_token)
    except DecodeError:
        raise InvalidArgumentError(
            "MALFORMED_REQUEST", "not a serialised consent token", field="consent_token"
        ) from None
    request = node_pb2.AttestationRequest(
        consent_token=token,
        subject_binding=r.subject_binding,
        nonce=r.nonce,
        target_scheme=r.target_scheme,
        purpose=r.purpose,
    )
    throttle = hc.extras.get("throttle")
    if throttle is not None and throttle.applies_to("RequestAttestation"):
        throttle.check(who)  # the third-party query rate (N23), as the gRPC guard applies it
    check_attestation_request(request)
    # an HTTP caller sends no deadline: the node's own, as long as it waits for a body
    seconds = ctx.config.listen.request_timeout_seconds
    home = consent_issuer(request.consent_token)
    if not home or home == ctx.config.region:
        exchange: Exchange = hc.extras["exchange"]
        deadline = time.monotonic() + seconds
        signed = await issue(
            ctx, exchange, request, caller=who, at=ctx.clock.now(), deadline=deadline
        )
        return node_pb2.AttestationResponse(signed_attestation=signed)
    router = hc.extras.get("router")
    if router is None:
        raise PermissionDeniedError("PEER_NOT_TRUSTED", "this node routes no requests")
    if not ctx.trust.allows(who, ctx.now_s()):
        raise PermissionDeniedError(
            "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
        )
    response: node_pb2.AttestationResponse = await router.forward(
        home, request, who, timeout=seconds
    )
    return response


_ME = "/api/v1/me"
R = ApiRoute
P = node_pb2

#: every route of the API (the citizen listener serves CITIZEN and PUBLIC ones, the
#: mutual-TLS listener CLIENT ones)
API_ROUTES: tuple[ApiRoute, ...] = (
    R("GET", f"{_ME}/score", "GetMyScore", "My score, grade and explained report (H12)",
      CITIZEN, NoBody, P.MyScoreResponse, _score),
    R("GET", f"{_ME}/incentives", "GetMyIncentives",
      "The incentives my grade qualifies for, here and through recognition (N20)",
      CITIZEN, NoBody, P.MyIncentivesResponse, _incentives),
    R("GET", f"{_ME}/consents", "ListConsents", "My consents",
      CITIZEN, NoBody, P.ListConsentsResponse, _consents),
    R("POST", f"{_ME}/consents", "GrantConsent", "Grant a consent for a scenario, or show what it would disclose",
      CITIZEN, GrantConsentBody, P.ConsentToken, _grant),
    R("POST", f"{_ME}/consents/withdraw", "WithdrawConsent", "Withdraw one of my consents",
      CITIZEN, WithdrawConsentBody, P.ConsentInfo, _withdraw),
    R("GET", f"{_ME}/query-log", "QueryLog", "Who queried me, with inclusion proofs (H16, N23)",
      CITIZEN, QueryLogParams, P.QueryLogResponse, _query_log),
    R("POST", f"{_ME}/objections", "FileObjection", "Object to a record or my score (H15, N21)",
      CITIZEN, FileObjectionBody, P.ObjectionInfo, _object),
    R("GET", f"{_ME}/objections", "ListMyObjections", "My objections and their deadlines",
      CITIZEN, OpenOnlyParams, P.ListObjectionsResponse, _objections),
    R("POST", f"{_ME}/repair-applications", "ApplyForRepair", "Apply to repair a record (N22)",
      CITIZEN, RepairBody, P.RepairApplicationInfo, _repair),
    R("GET", f"{_ME}/repair-applications", "ListMyRepairApplications", "My repair applications",
      CITIZEN, PendingOnlyParams, P.ListRepairApplicationsResponse, _repairs),
    R("POST", f"{_ME}/supplements", "UploadSupplement", "Add supplementary information (N5, N9)",
      CITIZEN, UploadSupplementBody, P.SupplementInfo, _upload),
    R("GET", f"{_ME}/supplements", "ListMySupplements", "My supplementary information",
      CITIZEN, PendingOnlyParams, P.ListSupplementsResponse, _supplements),
    R("GET", f"{_ME}/notifications", "ListNotifications", "My notifications",
      CITIZEN, NotificationsParams, P.ListNotificationsResponse, _notifications),
    R("POST", f"{_ME}/opt-out", "OptOut", "Stop being scored (N3, N4)",
      CITIZEN, ConfirmBody, P.OptOutResponse, _opt_out),
    R("POST", f"{_ME}/opt-in", "OptIn", "Be scored again",
      CITIZEN, NoBody, P.OptInResponse, _opt_in),
    R("POST", f"{_ME}/deregister", "Deregister", "Delete everything held about me (H2)",
      CITIZEN, ConfirmBody, P.DeregisterResponse, _deregister),
    R("POST", f"{_ME}/register", "Register", "Register again after deregistering",
      CITIZEN, NoBody, P.RegisterResponse, _register),
    R("GET", "/api/v1/catalogue", "GetIncentiveCatalogue", "The published incentive catalogue",
      PUBLIC, NoBody, P.IncentiveCatalogue, _catalogue),
    R("POST", "/api/v1/attestations", "RequestAttestation",
      "An integrator's consented attestation request (mutual TLS)",
      CLIENT, AttestationBody, P.AttestationResponse, _attestation),
)  # fmt: skip


def collaborators(node: NodeContext, throttle: Any, router: Any) -> dict[str, Any]:
    """What the calls above share for the node's life (``HttpContext.extras``): the
    node server's throttle and router, the exchange's token cache, the catalogue."""
    return {
        "throttle": throttle,
        "router": router,
        "exchange": Exchange.of(node),
        "publisher": Publisher(node.config, node.scheme),
    }
