"""PeerService: consented attestation requests, key set, status list, schemes, mappings.

Invariants of :meth:`PeerServicer.RequestAttestation`:

* the request's form is checked first
  (:func:`node.exchange._request_form.check_attestation_request`), exactly as every
  routing hop checks it before it forwards anything; every reason this
  method can give is in :data:`REQUEST_REASONS`;
* the requester is the region id in its verified client certificate and must
  be in the node's domestic trust list (``ctx.trust``, H17; docs/adr/0410);
* the consent token is verified before it is parsed, against EVERY signing
  key of the node's own key set (certified by the region root), so rotation
  keeps outstanding tokens valid; the key that verified must have been valid
  and not revoked at the grant's ``granted_at`` (else ``CONSENT_KEY_REVOKED``
  / ``CONSENT_KEY_NOT_VALID``); the key map and the verified-token cache are
  rebuilt when the key set's version changes; the database row is
  authoritative for uses and withdrawal;
* the consent must be active (not withdrawn, expired or exhausted), its
  audience must equal the certificate identity, its purpose the requested
  purpose, and the presented subject binding must equal the consent's;
* the purpose is a catalogue scenario (:mod:`node.disclosure`); the
  attestation discloses what the consent's scope says and never more than the
  scenario allows: a threshold attestation carries neither grade nor score,
  the score is included only under ``GRADE_AND_SCORE`` (H12), the
  contributions never are;
* a derived score's scenario (N18, N19) is decided and attested by the
  derived score's version in force, computed now from the published month's
  explained result (:mod:`node.derived`, docs/adr/0006): the attestation
  names the derived score as its scheme and the base as its model version;
* a consent whose subject's published grade falls below the scenario's
  tier is ended where the grade is published or corrected, as a withdrawal
  (:func:`node.disclosure.end_unmet_consents`); a request that still finds one
  is refused with :func:`withdrawn_error` and ends nothing itself, so the
  requester sees exactly a withdrawn consent's effects and cannot learn that
  the person falls short (H14, N14);
* the use is counted, a status-list index allocated and the log entry
  appended in ONE transaction; the use is counted by one conditional UPDATE
  whose WHERE clause is every consent check (audience, purpose, binding, not
  withdrawn, not expired, not yet valid, uses left), so the database row
  decides; when it matches nothing the row is re-read only to name the
  refusal's reason in the order of ADR 0301; a refusal after the use was
  counted (subject unknown or not eligible, no usable mapping table, a table at
  another version of the scenario's scheme) gives the use back in the same
  transaction; the attestation is built and checked in that transaction (a
  failure rolls all of it back) and only signed and returned after COMMIT;
* the mapped grade is :func:`node.disclosure.mapped_for_request`'s: a grade the
  table into another scheme's scenario does not recognise meets no scenario
  (the withdrawal below), never a mapping error naming it;
* grade and score are the person's PUBLISHED ones of the last finished month
  under the scheme in force, as corrected by rights events since
  (:func:`node.monthly.published_grade`, H3, H16; docs/adr/0514), read in that
  transaction, and the attestation's ``period`` is that month;
* every refusal that concerns a real consent of ours (a token that verifies
  and whose row exists, whoever the caller) is registered for its citizen
  before the error is returned, bounded by :mod:`node.exchange._refusals` (ADR 0319):
  the first one per (consent, requester, reason) is a log leaf, repeats at most
  one leaf per hour with the count of those between, none a day after the
  consent ended; the caller gets the same status and reason every time and the
  refusals metric counts every one; a refusal that names no consent of ours
  (unlisted caller without a genuine token, token that does not verify,
  consent row gone) appends nothing: it is counted in the refusals metric and
  logged as a structured line (at most one per caller and second), so no
  caller can grow the append-only log without a citizen's consent behind it;
* the write unit's first statement compares ``time.monotonic()`` with the
  call's absolute deadline (taken from ``time_remaining()`` when the handler
  starts): a request whose deadline passed while it waited for the writer is
  refused ``DEADLINE_EXCEEDED`` and nothing is used, logged or allocated.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from grpc import aio

from keys import (
    Attestation,
    KeySet,
    VerificationError,
    issue_attestation,
    verified_signer,
)
from node.catalogue import Publisher
from node.core._errors import (
    DeadlineError,
    FailedPreconditionError,
    NodeError,
    PermissionDeniedError,
    own_data,
)
from node.core._observe import log_event
from node.derived import derived_fields, derived_grade, derived_terms, is_derived
from node.disclosure import (
    disclosed,
    mapped_for_request,
    meets_published,
    request_terms,
    table_for_request,
)
from node.exchange._mapping import table_blob
from node.exchange._refusals import log_refusal
from node.exchange._request_form import FORM_REASONS, check_attestation_request
from node.monthly import published_grade
from node.pb.v1 import attestation_pb2, node_pb2, node_pb2_grpc, scoring_pb2
from node.rights import refuse_if_opted_out
from node.rpc._citizen import CONSENT_TYPE
from node.rpc._context import NodeContext
from node.rpc._guard import require_caller
from node.store._consents import (
    ConsentRow,
    add_status_entry,
    get_consent,
    release_use,
    state_of,
    use_active_consent,
)
from node.store._status_list import STATUS_LIST_ID, render_status_list
from node.store._translog import LogWrite
from scoring import list_schemes, load_scheme

__all__ = ["REQUEST_REASONS", "PeerServicer", "withdrawn_error"]

TOKEN_CACHE = 4096
#: Every reason RequestAttestation gives when it serves (not routes) a request: its form
#: (node.exchange._request_form), the caller, the consent token and its row, the subject, the
#: mapping and the writer's deadline.  A router relays exactly these by name
#: (node.federation._route.KNOWN_REASONS); a unit test checks every raise site against the set.
REQUEST_REASONS = FORM_REASONS | frozenset(
    {
        "NO_CLIENT_CERTIFICATE",
        "PEER_NOT_TRUSTED",
        "CONSENT_INVALID",
        "CONSENT_KEY_NOT_VALID",
        "CONSENT_KEY_REVOKED",
        "CONSENT_WRONG_AUDIENCE",
        "CONSENT_WRONG_PURPOSE",
        "CONSENT_WITHDRAWN",
        "CONSENT_EXPIRED",
        "CONSENT_EXHAUSTED",
        "CONSENT_NOT_YET_VALID",
        "SUBJECT_BINDING_MISMATCH",
        "SUBJECT_UNKNOWN",
        "SUBJECT_NOT_ELIGIBLE",
        "SCORE_NOT_PUBLISHED",
        "MAPPING_UNAVAILABLE",
        "MAPPING_NOT_APPROVED",
        "SCHEME_VERSION_MISMATCH",
        "DEADLINE_EXCEEDED",
        "DISCLOSURE_NOT_ALLOWED",
        "DERIVED_SCORE_UNAVAILABLE",
    }
)
UNLOGGED_CALLERS = 1024  # callers remembered for the unlogged-refusal line's rate limit
NO_DEADLINE = float("inf")
LATE = "the deadline passed while the request waited for the writer"
_STATE_ERRORS: dict[int, tuple[str, str]] = {
    node_pb2.CONSENT_STATE_WITHDRAWN: ("CONSENT_WITHDRAWN", "the consent was withdrawn"),
    node_pb2.CONSENT_STATE_EXPIRED: ("CONSENT_EXPIRED", "the consent has expired"),
    node_pb2.CONSENT_STATE_EXHAUSTED: ("CONSENT_EXHAUSTED", "the consent has no uses left"),
}


def _state_error(state: int) -> FailedPreconditionError:
    code, text = _STATE_ERRORS[state]
    return FailedPreconditionError(code, text, field="consent_token")


def withdrawn_error() -> FailedPreconditionError:
    """The refusal of a withdrawn consent: also what a requester gets when the subject no
    longer meets the scenario, so the two cannot be told apart (H14)."""
    return _state_error(node_pb2.CONSENT_STATE_WITHDRAWN)


@dataclass(frozen=True, slots=True)
class _Outcome:
    attestation: bytes | None  # the checked payload, signed after COMMIT
    refused: NodeError | None
    first: int
    leaves: list[bytes]
    ours: bool  # a refusal naming a consent row of ours (registered, maybe bounded)


_NO_LEAVES: list[bytes] = []


def _ended_at(row: ConsentRow) -> int:
    """When the consent stopped being usable (withdrawal, else its end of validity)."""
    if row.withdrawn_at is None:
        return row.not_after
    return min(row.withdrawn_at, row.not_after)


class PeerServicer(node_pb2_grpc.PeerServiceServicer):
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        # Verified consent tokens by their exact bytes (payload and signatures): the
        # same bytes verify the same way, so a repeat skips the Ed25519 check.
        self._verified: dict[bytes, node_pb2.ConsentGrant] = {}
        # The own key set as a key id -> public key map, rebuilt per key-set version.
        self._key_set: KeySet | None = None
        self._key_map: dict[str, bytes] = {}
        self._issued: dict[str, Any] = {}  # metric children by audience
        self._unlogged_at: dict[str, int] = {}  # caller -> second of its last unlogged line
        self._catalogue = Publisher(ctx.config, ctx.scheme)  # N17: its guide checked at start

    def _peer(self, now: int | None = None) -> str:
        who = require_caller()
        if not self._ctx.trust.allows(who, self._ctx.now_s() if now is None else now):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        return who

    async def _refuse(
        self,
        exc: NodeError,
        peer: str,
        purpose: str,
        row: ConsentRow | None,
        deadline: float = NO_DEADLINE,
    ) -> NodeError:
        """Register a refusal and return the error to raise: for the consent's
        citizen (bounded, :mod:`node.exchange._refusals`; committed first) when it concerns
        a real consent of ours, otherwise only as a metric and a rate-limited
        structured line (the log stays bounded by citizens' consents, not by
        callers' requests)."""
        if row is None:
            self._unlogged(exc, peer, purpose)
            return exc
        log = self._ctx.log
        write = LogWrite(
            "request_refused",
            self._ctx.now_s(),
            row.subject_key,
            consent_id=row.consent_id,
            requester=peer,
            purpose=purpose,
            reason=exc.code,
        )

        def unit(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
            if time.monotonic() >= deadline:
                raise DeadlineError("DEADLINE_EXCEEDED", LATE)
            current = get_consent(conn, write.consent_id)
            if current is None:  # deleted meanwhile (deregistration): nothing to register
                return -1, _NO_LEAVES
            return log_refusal(conn, log, write, ended_at=_ended_at(current))

        await self._ctx.db.write_unit(unit, lambda r: log.mirror(*r), quick=True)
        self._ctx.metrics.refusals.labels(exc.code).inc()
        return exc

    def _unlogged(self, exc: NodeError, peer: str, purpose: str) -> None:
        """A refusal naming no consent of ours: metric always, one line per caller and second."""
        self._ctx.metrics.refusals.labels(exc.code).inc()
        second = int(time.monotonic())
        if self._unlogged_at.get(peer) == second:
            return
        if len(self._unlogged_at) >= UNLOGGED_CALLERS:
            self._unlogged_at.clear()
        self._unlogged_at[peer] = second
        log_event(
            "attestation request refused (no consent of ours; not in the transparency log)",
            requester=peer[:64],
            purpose=purpose[:64],
            reason=exc.code,
        )

    def _own_keys(self) -> KeySet:
        """The node's key set; on a new version the key map and token cache are rebuilt."""
        ks = self._ctx.secrets.key_set
        if ks is not self._key_set:
            self._key_map = {k.key_id: k.public_key for k in ks.keys}
            self._verified.clear()
            self._key_set = ks
        return ks

    def _grant(self, request: node_pb2.AttestationRequest) -> node_pb2.ConsentGrant:
        key_set = self._own_keys()
        token = request.consent_token
        cache_key = b"".join(
            [token.payload, token.payload_type.encode()]
            + [s.key_id.encode() + s.sig for s in token.signatures]
        )
        cached = self._verified.get(cache_key)
        if cached is not None:
            return cached
        grant = self._verify_grant(request, key_set)
        if len(self._verified) >= TOKEN_CACHE:
            self._verified.clear()
        self._verified[cache_key] = grant
        return grant

    def _verify_grant(
        self, request: node_pb2.AttestationRequest, key_set: KeySet
    ) -> node_pb2.ConsentGrant:
        try:
            payload, kid = verified_signer(request.consent_token, self._key_map, CONSENT_TYPE)
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
        info = key_set.find(kid)
        problem = "KEY_NOT_VALID" if info is None else info.problem_at(grant.granted_at)
        if problem is not None:
            # A revoked key signs nothing valid from its revocation time on (DESIGN).
            raise PermissionDeniedError(
                f"CONSENT_{problem}",
                "the consent token's signing key was not valid at the grant time",
                field="consent_token",
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
            raise _state_error(state)
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
        check_attestation_request(request)  # the form first, as every hop checks it
        return await self.serve_attestation(request, context)

    async def serve_attestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        """Serve a request whose form :func:`check_attestation_request` accepted."""
        ctx = self._ctx
        remaining = context.time_remaining()  # None: the caller set no deadline
        deadline = NO_DEADLINE if remaining is None else time.monotonic() + remaining
        purpose = request.purpose
        instant = ctx.clock.now()  # one reading for the trust check, the use and the period
        now = int(instant.timestamp())
        try:
            peer = self._peer(now)
        except PermissionDeniedError as exc:
            # Not in the trust list: nothing is served, but a refusal naming a
            # genuine consent of ours is logged for its citizen to see.
            who = require_caller()
            try:
                known = await ctx.consents.get(self._grant(request).consent_id)
            except NodeError:
                known = None
            raise await self._refuse(exc, who, purpose, known, deadline) from None
        try:
            grant = self._grant(request)
        except NodeError as exc:
            raise await self._refuse(exc, peer, purpose, None) from None
        consent_id = grant.consent_id
        attestation_id = os.urandom(16).hex()
        log = ctx.log
        scheme, mapper = ctx.scheme, ctx.mapper
        ttl = ctx.config.limits.attestation_ttl_seconds
        binding = bytes(request.subject_binding)
        token_sha256 = hashlib.sha256(request.consent_token.payload).digest()
        requested_target = request.target_scheme

        def unit(conn: sqlite3.Connection) -> _Outcome:
            """One transaction: checks, score, use + status index + log entry (or the
            refusal's bounded log entry).  A quick unit: group-committed, on the event
            loop when the writer lock is free (ADR 0315), else on the writer thread.
            First of all: a call whose deadline passed while it waited changes nothing."""
            if time.monotonic() >= deadline:
                raise DeadlineError("DEADLINE_EXCEEDED", LATE)
            used = use_active_consent(
                conn, consent_id, audience=peer, purpose=purpose, binding=binding, now=now
            )
            subject_key: bytes | None = used[0] if used is not None else None
            ended = used[2] if used is not None else 0  # the consent's not_after
            try:
                if used is None:
                    # Refused by the conditional UPDATE: name the exact reason, in order.
                    row = get_consent(conn, consent_id)
                    if row is None:
                        raise PermissionDeniedError(
                            "CONSENT_INVALID", "unknown consent", field="consent_token"
                        )
                    subject_key, ended = row.subject_key, _ended_at(row)
                    refuse_if_opted_out(conn, subject_key)  # N3: consents ended by opting out
                    self._check(row, request, peer, now)
                    # every check passed on re-read, yet the UPDATE matched nothing: fail closed
                    raise FailedPreconditionError(
                        "CONSENT_EXHAUSTED", "the consent has no uses left", field="consent_token"
                    )
                subject_key, scope, not_after, row_binding, grant_sha256 = used
                if grant_sha256 != token_sha256:
                    # a token that verifies but is not the grant we stored (e.g. made
                    # with a stolen, later revoked key and backdated): fail closed
                    release_use(conn, consent_id)
                    raise PermissionDeniedError(
                        "CONSENT_INVALID",
                        "the consent token is not the grant on record",
                        field="consent_token",
                    )
                try:  # the consent's scenario and disclosure, as the scheme in force says
                    scenario, disclosure, target = request_terms(
                        purpose, scheme, scope, requested_target
                    )
                    derived = (  # a derived score's scenario: the version in force (ADR 0006)
                        derived_terms(conn, purpose, scheme, scope, requested_target)
                        if is_derived(scenario)
                        else None
                    )
                except NodeError:
                    release_use(conn, consent_id)
                    raise

                if derived is not None:
                    scenario, disclosure, score_of = derived
                    try:  # computed now from the published month's explained result (H3)
                        found = derived_grade(
                            conn, subject_key, scheme, score_of, today=instant.date(),
                            at=instant.isoformat(timespec="seconds"), publish=True,
                        )  # fmt: skip
                    except NodeError:
                        release_use(conn, consent_id)
                        raise
                    met = scenario.meets(found.result.grade or "")
                    fields = derived_fields(scenario, disclosure, scheme, found)
                else:
                    try:
                        # C3, H13: the table first (versions, approval), the same for everyone
                        table_for_request(mapper, scenario, target, instant.date())
                        # H3: the last finished month's published grade, as corrected (H16)
                        grade, value, _, period = published_grade(
                            conn, subject_key, scheme=scheme, mapper=mapper, target="", at=instant
                        )
                        # a grade the scenario's table does not recognise comes back None, so
                        # the scenario is unmet below: never a mapping error naming the grade
                        mapped = mapped_for_request(
                            mapper, scheme, scenario, disclosure=disclosure, grade=grade,
                            target=target, today=instant.date(),
                        )  # fmt: skip
                    except NodeError:
                        release_use(conn, consent_id)  # refused after counting: give it back
                        raise
                    met = meets_published(scenario, disclosure, scheme, grade, mapped)
                    fields = {
                        "scheme_id": scheme.id,
                        "scheme_version": scheme.version,
                        "model_version": scheme.key,
                        "period": period,
                        **disclosed(scenario, disclosure, grade=grade, score=value, mapped=mapped),
                    }

                if not met:
                    # publication ends such a consent (node.disclosure._unmet); one found
                    # here is refused as withdrawn with nothing ended or revoked in this
                    # unit, so the requester sees exactly a withdrawn consent's effects
                    release_use(conn, consent_id)
                    raise withdrawn_error()
                expires = min(now + ttl, not_after)
                index = add_status_entry(
                    conn,
                    attestation_id,
                    subject_key=subject_key,
                    consent_id=consent_id,
                    issued_at=now,
                    expires_at=expires,
                )
            except NodeError as exc:
                if subject_key is None:  # no consent row of ours: nothing to log for a citizen
                    return _Outcome(None, exc, 0, _NO_LEAVES, False)
                entry = LogWrite(
                    "request_refused",
                    now,
                    subject_key,
                    consent_id=consent_id,
                    requester=peer,
                    purpose=purpose,
                    reason=exc.code,
                )
                first, leaves = log_refusal(conn, log, entry, ended_at=ended)
                return _Outcome(None, exc, first, leaves, True)
            # built and serialised (Attestation.check) before the use is logged: a
            # failure raises out of the unit, which rolls back the use and status index
            att = Attestation(
                attestation_id=attestation_id,
                issuer_region=ctx.config.region,
                issued_at=now,
                expires_at=expires,
                subject_binding=row_binding,
                consent_id=consent_id,
                consent_sha256=grant_sha256,
                audience=peer,
                purpose=purpose,
                nonce=bytes(request.nonce),
                status_list_id=STATUS_LIST_ID,
                status_index=index,
                **fields,
            )
            with own_data("the attestation built from our stored consent"):
                payload = att.to_bytes()
            entry = LogWrite(
                "attestation_issued",
                now,
                subject_key,
                consent_id=consent_id,
                requester=peer,
                purpose=purpose,
                attestation_id=attestation_id,
            )
            first, leaves = log.append_sync(conn, [entry])
            return _Outcome(payload, None, first, leaves, False)

        outcome = await ctx.db.write_unit(unit, lambda o: log.mirror(o.first, o.leaves), quick=True)
        if outcome.refused is not None:
            if not outcome.ours:
                self._unlogged(outcome.refused, peer, purpose)
            else:
                ctx.metrics.refusals.labels(outcome.refused.code).inc()
            raise outcome.refused
        assert outcome.attestation is not None
        # Signed after COMMIT: the use, status index and log entry are durable first;
        # the payload was built and checked inside the unit, only the signature is left.
        blob = issue_attestation(outcome.attestation, ctx.secrets.signing)
        issued = self._issued.get(peer)
        if issued is None:
            issued = self._issued[peer] = ctx.metrics.attestations.labels(peer)
        issued.inc()
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
