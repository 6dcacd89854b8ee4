"""The attestation request: :func:`issue`, ``PeerService.RequestAttestation``'s domain.

:func:`issue` serves a request whose form
(:func:`node.exchange._request_form.check_attestation_request`) was accepted:

1. the caller (the region id of its verified client certificate) must be in the
   domestic trust list (H17, docs/adr/0410); a stranger presenting a genuine
   token of ours is refused and the refusal registered for the consent's citizen;
2. the consent token is verified, then parsed, once (:mod:`node.exchange._tokens`);
3. ONE quick unit of work (ADR 0315; group-committed, on the event loop when the
   writer lock is free) decides everything the database holds:

   a. a request whose deadline passed while it waited for the writer changes
      nothing (``DEADLINE_EXCEEDED``);
   b. the consent row is read and judged by the consent rules
      (:func:`node.exchange._consent.refusal_of`, order of ADR 0301; an opted-out
      person's consent names ``SUBJECT_OPTED_OUT`` first, N3); the token must be
      the grant on record; then one use is counted;
   c. the scenario and disclosure the consent's scope allows
      (:func:`node.disclosure.request_terms`), and the grade: a derived score's
      computed now by the version in force (:mod:`node.derived`, docs/adr/0006),
      else the PUBLISHED grade of the last finished month as corrected
      (:func:`node.monthly.published_grade`, H3, H16; docs/adr/0514), mapped by
      :func:`node.disclosure.mapped_for_request` (a grade the table does not
      recognise meets no scenario: never a mapping error naming it); a person
      who falls short is refused with :func:`withdrawn_error` and nothing is
      ended here (H14, N14; publication ends such consents);
   d. a status-list index is allocated, the attestation built and checked
      (:meth:`keys.Attestation.to_bytes`) and its log entry appended;

   a refusal after the use was counted gives the use back in the same unit; a
   refusal naming a consent row of ours appends its bounded leaf in the same
   unit (:func:`node.exchange._refusals.register_refusal`, ADR 0319);
4. after COMMIT: a refusal is counted (and, naming no consent of ours, logged as
   a rate-limited line, :class:`node.exchange._refusals.Refusals`) and raised;
   otherwise the checked payload is signed and returned.

The attestation discloses what the consent's scope says and never more than the
scenario allows: a threshold attestation carries neither grade nor score, the
score only under ``GRADE_AND_SCORE`` (H12), the contributions never.  Every
reason :func:`issue` can give is in :data:`REQUEST_REASONS`.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keys import Attestation, issue_attestation
from node.core._errors import (
    DeadlineError,
    NodeError,
    PermissionDeniedError,
    own_data,
)
from node.derived import derived_fields, derived_grade, derived_terms, is_derived
from node.disclosure import (
    disclosed,
    mapped_for_request,
    meets_published,
    request_terms,
    table_for_request,
)
from node.exchange._consent import refusal_of, withdrawn_error
from node.exchange._refusals import Refusals, register_refusal
from node.exchange._request_form import FORM_REASONS
from node.exchange._tokens import ConsentTokens
from node.monthly import published_grade
from node.pb.v1 import node_pb2
from node.rights import refuse_if_opted_out
from node.store import Connection
from node.store._consents import (
    ConsentRow,
    add_status_entry,
    count_use,
    get_consent,
    release_use,
)
from node.store._status_list import STATUS_LIST_ID
from node.store._translog import LogWrite

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["LATE", "NO_DEADLINE", "REQUEST_REASONS", "Exchange", "issue", "withdrawn_error"]

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
NO_DEADLINE = float("inf")
LATE = "the deadline passed while the request waited for the writer"
_NO_LEAVES: list[bytes] = []


@dataclass(slots=True)
class Exchange:
    """What outlives one request: verified tokens, refusal lines, metric children."""

    tokens: ConsentTokens
    refusals: Refusals
    issued: dict[str, Any] = field(default_factory=dict)  # metric children by audience

    @classmethod
    def of(cls, ctx: NodeContext) -> Exchange:
        return cls(ConsentTokens(ctx.secrets, ctx.config.region), Refusals(ctx.metrics))


@dataclass(frozen=True, slots=True)
class _Ask:
    """One request's facts, fixed before its unit of work runs."""

    consent_id: str
    peer: str
    purpose: str
    binding: bytes
    token_sha256: bytes
    target: str
    nonce: bytes
    instant: datetime  # one clock reading: trust check, use, period
    now: int
    deadline: float  # time.monotonic() value; NO_DEADLINE when the caller set none
    attestation_id: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    attestation: bytes | None  # the checked payload, signed after COMMIT
    refused: NodeError | None
    first: int
    leaves: list[bytes]
    ours: bool  # a refusal naming a consent row of ours (registered, maybe bounded)


async def issue(
    ctx: NodeContext,
    exchange: Exchange,
    request: node_pb2.AttestationRequest,
    *,
    caller: str,
    at: datetime,
    deadline: float = NO_DEADLINE,
) -> bytes:
    """The signed attestation for ``request`` from ``caller`` at ``at``; see the module
    docstring for the steps.  Raises the refusal's :class:`NodeError`."""
    now = int(at.timestamp())
    # 1. the caller
    if not ctx.trust.allows(caller, now):
        raise await _refuse_stranger(ctx, exchange, request, caller, deadline) from None
    # 2. the token, verified then parsed
    try:
        grant = exchange.tokens.grant(request.consent_token)
    except NodeError as exc:
        exchange.refusals.unlogged(exc, caller, request.purpose)
        raise exc from None
    # 3. one quick unit of work
    ask = _Ask(
        consent_id=grant.consent_id,
        peer=caller,
        purpose=request.purpose,
        binding=bytes(request.subject_binding),
        token_sha256=hashlib.sha256(request.consent_token.payload).digest(),
        target=request.target_scheme,
        nonce=bytes(request.nonce),
        instant=at,
        now=now,
        deadline=deadline,
        attestation_id=os.urandom(16).hex(),
    )
    log = ctx.log
    outcome = await ctx.db.write_unit(
        lambda conn: _decide(conn, ctx, ask), lambda o: log.mirror(o.first, o.leaves), quick=True
    )
    # 4. after COMMIT: the refusal, or the signature
    if outcome.refused is not None:
        if outcome.ours:
            exchange.refusals.counted(outcome.refused)
        else:
            exchange.refusals.unlogged(outcome.refused, caller, ask.purpose)
        raise outcome.refused
    assert outcome.attestation is not None
    # the use, status index and log entry are durable; only the signature is left
    blob = issue_attestation(outcome.attestation, ctx.secrets.signing)
    issued = exchange.issued.get(caller)
    if issued is None:
        issued = exchange.issued[caller] = ctx.metrics.attestations.labels(caller)
    issued.inc()
    return blob


async def _refuse_stranger(
    ctx: NodeContext,
    exchange: Exchange,
    request: node_pb2.AttestationRequest,
    caller: str,
    deadline: float,
) -> NodeError:
    """The refusal of a caller outside the trust list: registered for the citizen of a
    genuine consent of ours (committed first), else only counted and a line."""
    exc = PermissionDeniedError(
        "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
    )
    purpose = request.purpose
    try:
        known = await ctx.consents.get(exchange.tokens.grant(request.consent_token).consent_id)
    except NodeError:
        known = None
    if known is None:
        exchange.refusals.unlogged(exc, caller, purpose)
        return exc
    log, now, consent_id = ctx.log, ctx.now_s(), known.consent_id

    def unit(conn: Connection) -> tuple[int, list[bytes]]:
        if time.monotonic() >= deadline:
            raise DeadlineError("DEADLINE_EXCEEDED", LATE)
        current = get_consent(conn, consent_id)
        if current is None:  # deleted meanwhile (deregistration): nothing to register
            return -1, _NO_LEAVES
        return register_refusal(
            conn, log, current, requester=caller, purpose=purpose, reason=exc.code, now=now
        )

    await ctx.db.write_unit(unit, lambda r: log.mirror(*r), quick=True)
    exchange.refusals.counted(exc)
    return exc


def _decide(conn: Connection, ctx: NodeContext, ask: _Ask) -> _Outcome:
    """Step 3, inside the unit: the attestation's payload, or the refusal (module docstring)."""
    if time.monotonic() >= ask.deadline:  # a: late, so nothing is used, logged or allocated
        raise DeadlineError("DEADLINE_EXCEEDED", LATE)
    row = get_consent(conn, ask.consent_id)
    try:
        if row is None:
            raise PermissionDeniedError("CONSENT_INVALID", "unknown consent", field="consent_token")
        _use(conn, row, ask)  # b
        try:
            fields = _disclosed_fields(conn, ctx, row, ask)  # c
        except NodeError:
            release_use(conn, row.consent_id)  # refused after counting: give it back
            raise
        expires = min(ask.now + ctx.config.limits.attestation_ttl_seconds, row.not_after)
        index = add_status_entry(  # d
            conn,
            ask.attestation_id,
            subject_key=row.subject_key,
            consent_id=row.consent_id,
            issued_at=ask.now,
            expires_at=expires,
        )
    except NodeError as exc:
        if row is None:  # no consent row of ours: nothing to log for a citizen
            return _Outcome(None, exc, 0, _NO_LEAVES, False)
        first, leaves = register_refusal(
            conn, ctx.log, row, requester=ask.peer, purpose=ask.purpose, reason=exc.code,
            now=ask.now,
        )  # fmt: skip
        return _Outcome(None, exc, first, leaves, True)
    # built and serialised (Attestation.to_bytes checks it) before the use is logged:
    # a failure raises out of the unit, which rolls back the use and status index
    att = Attestation(
        attestation_id=ask.attestation_id,
        issuer_region=ctx.config.region,
        issued_at=ask.now,
        expires_at=expires,
        subject_binding=row.binding,
        consent_id=row.consent_id,
        consent_sha256=row.grant_sha256,
        audience=ask.peer,
        purpose=ask.purpose,
        nonce=ask.nonce,
        status_list_id=STATUS_LIST_ID,
        status_index=index,
        **fields,
    )
    with own_data("the attestation built from our stored consent"):
        payload = att.to_bytes()
    entry = LogWrite(
        "attestation_issued",
        ask.now,
        row.subject_key,
        consent_id=row.consent_id,
        requester=ask.peer,
        purpose=ask.purpose,
        attestation_id=ask.attestation_id,
    )
    first, leaves = ctx.log.append_sync(conn, [entry])
    return _Outcome(payload, None, first, leaves, False)


def _use(conn: Connection, row: ConsentRow, ask: _Ask) -> None:
    """Step 3b: the consent rules decide, then one use is counted."""
    refused = refusal_of(
        row, audience=ask.peer, purpose=ask.purpose, binding=ask.binding, now=ask.now
    )
    if refused is not None:
        refuse_if_opted_out(conn, row.subject_key)  # N3: consents ended by opting out
        raise refused
    if row.grant_sha256 != ask.token_sha256:
        # a token that verifies but is not the grant we stored (e.g. made with a
        # stolen, later revoked key and backdated): fail closed
        raise PermissionDeniedError(
            "CONSENT_INVALID", "the consent token is not the grant on record", field="consent_token"
        )
    count_use(conn, row.consent_id)


def _disclosed_fields(
    conn: Connection, ctx: NodeContext, row: ConsentRow, ask: _Ask
) -> dict[str, Any]:
    """Step 3c: the attestation's scheme, model and disclosure fields, if the person
    meets the consent's scenario; a person who falls short is refused as withdrawn."""
    scheme = ctx.scheme
    scenario, disclosure, target = request_terms(ask.purpose, scheme, row.scope, ask.target)
    if is_derived(scenario):  # the version in force decides and attests (ADR 0006)
        scenario, disclosure, score_of = derived_terms(
            conn, ask.purpose, scheme, row.scope, ask.target
        )
        found = derived_grade(  # computed now from the published month's explained result
            conn, row.subject_key, scheme, score_of, today=ask.instant.date(),
            at=ask.instant.isoformat(timespec="seconds"), publish=True,
        )  # fmt: skip
        met = scenario.meets(found.result.grade or "")
        fields = derived_fields(scenario, disclosure, scheme, found)
    else:
        mapper, today = ctx.mapper, ask.instant.date()
        # C3, H13: the table first (versions, approval), the same for everyone
        table_for_request(mapper, scenario, target, today, scheme)
        # H3: the last finished month's published grade, as corrected (H16)
        grade, value, _, period = published_grade(
            conn, row.subject_key, scheme=scheme, mapper=mapper, target="", at=ask.instant
        )
        # a grade the scenario's table does not recognise comes back None, so the
        # scenario is unmet below: never a mapping error naming the grade
        mapped = mapped_for_request(
            mapper, scheme, scenario, disclosure=disclosure, grade=grade, target=target,
            today=today,
        )  # fmt: skip
        met = meets_published(scenario, disclosure, scheme, grade, mapped)
        fields = {
            "scheme_id": scheme.id,
            "scheme_version": scheme.version,
            "model_version": scheme.key,
            "period": period,
            **disclosed(scenario, disclosure, grade=grade, score=value, mapped=mapped),
        }
    if not met:
        # publication ends such a consent (node.disclosure._unmet); one found here is
        # refused as withdrawn with nothing ended or revoked in this unit, so the
        # requester sees exactly a withdrawn consent's effects
        raise withdrawn_error()
    return fields
