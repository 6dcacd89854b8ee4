"""PeerService: consented attestation requests, key set, status list, schemes, mappings.

Invariants of :meth:`PeerServicer.RequestAttestation`:

* the requester is the region id in its verified client certificate and must
  be in the node's domestic trust list (``ctx.trust``, H17; docs/adr/0410);
* the consent token is verified (our own signing key) before it is parsed;
  its database row is authoritative for uses and withdrawal;
* the consent must be active (not withdrawn, expired or exhausted), its
  audience must equal the certificate identity, its purpose the requested
  purpose, and the presented subject binding must equal the consent's;
* the score is included only under ``GRADE_AND_SCORE`` (H12) and the
  contributions never are;
* the use is counted, a status-list index allocated and the log entry
  appended in ONE transaction, re-checking the use count inside it; the
  signed attestation is returned only after COMMIT;
* every refusal that reaches a consent (and every refusal of a listed peer)
  is appended to the transparency log before the error is returned.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from grpc import aio

from keys import Attestation, VerificationError, issue_attestation, verify_envelope
from scoring import list_schemes, load_scheme, score

from ._context import NodeContext
from ._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    PermissionDeniedError,
)
from ._guard import require_caller
from ._mapping import table_blob
from ._repo_consents import ConsentRow, get_consent, state_of, use_consent
from ._repo_records import load_records, load_subject
from ._status import STATUS_LIST_ID, render_status_list
from ._svc_citizen import CONSENT_TYPE
from ._translog import LogWrite
from .pb.v1 import attestation_pb2, node_pb2, node_pb2_grpc, scoring_pb2

__all__ = ["PeerServicer"]

NONCE_MIN, NONCE_MAX = 16, 64
TOKEN_CACHE = 4096
_STATE_ERRORS: dict[int, tuple[str, str]] = {
    node_pb2.CONSENT_STATE_WITHDRAWN: ("CONSENT_WITHDRAWN", "the consent was withdrawn"),
    node_pb2.CONSENT_STATE_EXPIRED: ("CONSENT_EXPIRED", "the consent has expired"),
    node_pb2.CONSENT_STATE_EXHAUSTED: ("CONSENT_EXHAUSTED", "the consent has no uses left"),
}


@dataclass(frozen=True, slots=True)
class _Outcome:
    attestation: Attestation | None
    refused: NodeError | None
    first: int
    leaves: list[bytes]


class PeerServicer(node_pb2_grpc.PeerServiceServicer):
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        # Verified consent tokens by their exact bytes (payload and signatures): the
        # same bytes verify the same way, so a repeat skips the Ed25519 check.
        self._verified: dict[bytes, node_pb2.ConsentGrant] = {}

    def _peer(self) -> str:
        who = require_caller()
        if not self._ctx.trust.allows(who, self._ctx.now_s()):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        return who

    async def _refuse(
        self, exc: NodeError, peer: str, purpose: str, row: ConsentRow | None, consent_id: str = ""
    ) -> NodeError:
        """Log a refusal (committed) and return the error to raise."""
        await self._ctx.log.record(
            [
                LogWrite(
                    "request_refused",
                    self._ctx.now_s(),
                    row.subject_key if row else None,
                    consent_id=row.consent_id if row else consent_id,
                    requester=peer,
                    purpose=purpose,
                    reason=exc.code,
                )
            ]
        )
        self._ctx.metrics.refusals.labels(exc.code).inc()
        return exc

    def _grant(self, request: node_pb2.AttestationRequest) -> node_pb2.ConsentGrant:
        token = request.consent_token
        cache_key = b"".join(
            [token.payload, token.payload_type.encode()]
            + [s.key_id.encode() + s.sig for s in token.signatures]
        )
        cached = self._verified.get(cache_key)
        if cached is not None:
            return cached
        grant = self._verify_grant(request)
        if len(self._verified) >= TOKEN_CACHE:
            self._verified.clear()
        self._verified[cache_key] = grant
        return grant

    def _verify_grant(self, request: node_pb2.AttestationRequest) -> node_pb2.ConsentGrant:
        try:
            payload = verify_envelope(request.consent_token, self._ctx.own_keys, CONSENT_TYPE)
        except VerificationError as exc:
            raise PermissionDeniedError(
                "CONSENT_INVALID",
                f"consent token does not verify ({exc.code})",
                field="consent_token",
            ) from None
        grant = node_pb2.ConsentGrant()
        try:
            grant.ParseFromString(payload)
        except DecodeError:
            raise PermissionDeniedError(
                "CONSENT_INVALID", "malformed consent grant", field="consent_token"
            ) from None
        if grant.issuer_region != self._ctx.config.region:
            raise PermissionDeniedError(
                "CONSENT_INVALID", "consent issued by another region", field="consent_token"
            )
        return grant

    def _check(
        self, row: ConsentRow, request: node_pb2.AttestationRequest, peer: str, now: int
    ) -> None:
        if row.audience != peer:
            raise PermissionDeniedError(
                "CONSENT_WRONG_AUDIENCE", "the consent names another audience", field="audience"
            )
        if row.purpose != request.purpose:
            raise PermissionDeniedError(
                "CONSENT_WRONG_PURPOSE", "the consent names another purpose", field="purpose"
            )
        state = state_of(row, now)
        if state in _STATE_ERRORS:
            code, text = _STATE_ERRORS[state]
            raise FailedPreconditionError(code, text, field="consent_token")
        if now < row.not_before:
            raise FailedPreconditionError(
                "CONSENT_NOT_YET_VALID", "the consent is not yet valid", field="consent_token"
            )
        if request.subject_binding != row.binding:
            raise PermissionDeniedError(
                "SUBJECT_BINDING_MISMATCH",
                "the subject binding does not match the consent",
                field="subject_binding",
            )

    async def RequestAttestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        ctx = self._ctx
        purpose = request.purpose
        try:
            peer = self._peer()
        except PermissionDeniedError as exc:
            # Not in the trust list: nothing is served, but a refusal naming a
            # genuine consent of ours is logged for its citizen to see.
            who = require_caller()
            try:
                known = await ctx.consents.get(self._grant(request).consent_id)
            except NodeError:
                known = None
            raise await self._refuse(exc, who, purpose, known) from None
        if not NONCE_MIN <= len(request.nonce) <= NONCE_MAX:
            raise InvalidArgumentError(
                "NONCE_INVALID", f"nonce must be {NONCE_MIN}-{NONCE_MAX} bytes", field="nonce"
            )
        try:
            grant = self._grant(request)
        except NodeError as exc:
            raise await self._refuse(exc, peer, purpose, None) from None
        consent_id = grant.consent_id
        now = ctx.now_s()
        today = ctx.today()
        attestation_id = os.urandom(16).hex()
        log = ctx.log
        scheme, mapper = ctx.scheme, ctx.mapper
        ttl = ctx.config.limits.attestation_ttl_seconds

        def unit(conn: sqlite3.Connection) -> _Outcome:
            """One transaction: checks, score, use + status index + log entry (or the
            refusal's log entry).  Runs on the writer thread; group-committed."""
            row = get_consent(conn, consent_id)
            try:
                if row is None:
                    raise PermissionDeniedError(
                        "CONSENT_INVALID", "unknown consent", field="consent_token"
                    )
                self._check(row, request, peer, now)
                subject = load_subject(conn, row.subject_key)
                if subject is None:
                    raise FailedPreconditionError("SUBJECT_UNKNOWN", "no records for the person")
                result = score(
                    subject, load_records(conn, row.subject_key), scheme, today, explain=False
                )
                if not result.eligible or result.grade is None:
                    raise FailedPreconditionError(
                        "SUBJECT_NOT_ELIGIBLE", "the person has no grade in this scheme"
                    )
                mapped = (
                    mapper.map(result.grade, request.target_scheme, today)
                    if request.target_scheme
                    else None
                )
                expires = min(now + ttl, row.not_after)
                index = use_consent(conn, row, attestation_id, now, expires)
                if index < 0:  # cannot happen after _check under the writer lock; fail closed
                    raise FailedPreconditionError(
                        "CONSENT_EXHAUSTED", "the consent has no uses left", field="consent_token"
                    )
            except NodeError as exc:
                entry = LogWrite(
                    "request_refused",
                    now,
                    row.subject_key if row else None,
                    consent_id=consent_id,
                    requester=peer,
                    purpose=purpose,
                    reason=exc.code,
                )
                first, leaves = log.append_sync(conn, [entry])
                return _Outcome(None, exc, first, leaves)
            entry = LogWrite(
                "attestation_issued",
                now,
                row.subject_key,
                consent_id=consent_id,
                requester=peer,
                purpose=purpose,
                attestation_id=attestation_id,
            )
            first, leaves = log.append_sync(conn, [entry])
            att = Attestation(
                attestation_id=attestation_id,
                issuer_region=ctx.config.region,
                scheme_id=scheme.id,
                scheme_version=scheme.version,
                grade=result.grade,
                period=today.strftime("%Y-%m"),
                model_version=scheme.key,
                issued_at=now,
                expires_at=expires,
                subject_binding=row.binding,
                consent_id=consent_id,
                consent_sha256=row.grant_sha256,
                audience=peer,
                purpose=purpose,
                nonce=bytes(request.nonce),
                status_list_id=STATUS_LIST_ID,
                status_index=index,
                score=(
                    result.score if row.scope == node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE else None
                ),
                mapped=mapped,
            )
            return _Outcome(att, None, first, leaves)

        outcome = await ctx.db.write_unit(unit, lambda o: log.mirror(o.first, o.leaves))
        if outcome.refused is not None:
            ctx.metrics.refusals.labels(outcome.refused.code).inc()
            raise outcome.refused
        assert outcome.attestation is not None
        # Signed after COMMIT: the use, status index and log entry are durable first.
        blob = issue_attestation(outcome.attestation, ctx.secrets.signing)
        ctx.metrics.attestations.labels(peer).inc()
        return node_pb2.AttestationResponse(signed_attestation=blob)

    async def GetKeySet(
        self, request: node_pb2.GetKeySetRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        self._peer()
        return self._ctx.secrets.key_set_envelope.to_proto()

    async def GetStatusList(
        self, request: node_pb2.GetStatusListRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        self._peer()
        return (await render_status_list(self._ctx)).to_proto()

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
        return node_pb2.ListMappingsResponse(
            tables=[table_blob(t) for t in self._ctx.mapper.tables()]
        )

    async def GetLogCheckpoint(
        self, request: node_pb2.GetCheckpointRequest, context: aio.ServicerContext[Any, Any]
    ) -> attestation_pb2.Envelope:
        self._peer()
        return self._ctx.log.checkpoint(self._ctx.now_s())[1].to_proto()
