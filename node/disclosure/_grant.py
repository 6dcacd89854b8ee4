"""Granting a consent for an incentive scenario (H5, H12, H14, N4, N14, N15).

:func:`grant_consent` is ``CitizenService.GrantConsent``'s domain function.
Checks, in order, each refusal writing nothing (no row, no log leaf):

1. audience form, purpose form (:func:`node.core._freetext.check_purpose`) and the
   purpose a catalogue scenario (``UNKNOWN_SCENARIO``), the audience a trusted
   requester (``AUDIENCE_NOT_TRUSTED``);
2. the disclosure: THRESHOLD when unspecified, at most what the scenario
   allows (``DISCLOSURE_NOT_ALLOWED``); validity and uses within bounds;
3. the person: served (population registry), known, not opted out, of full
   civil capacity; the node's signing key usable;
4. the person MEETS the scenario: their grade (mapped into the scenario's
   scheme when it is not the node's own) is the scenario's tier or better, else
   ``FAILED_PRECONDITION SCENARIO_NOT_MET`` -- told to the citizen only, and
   since nothing is stored or logged the relying party can never learn that
   someone falls short;
   a derived score's scenario (N18) is met by the person's derived tier, computed
   from the published month's explained result by the version in force
   (:mod:`node.derived`, docs/adr/0006);
5. the grant limits (rate and active consents, docs/adr/0324), read again
   inside the grant's own write transaction.

With ``preview_only`` the call stops after step 5's first reading and returns
only :func:`node.disclosure.preview` -- nothing is stored, signed or logged;
a real grant returns the same preview next to the token.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import date
from typing import TYPE_CHECKING

from keys import MappedGrade, sign, subject_binding
from node.core._config import MAX_USES_CAP, ConsentConfig
from node.core._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    NotFoundError,
    ResourceExhaustedError,
    own_data,
)
from node.core._freetext import check_purpose
from node.derived._attest import derived_grade, is_derived
from node.derived._in_force import derived_scenario
from node.disclosure._disclose import preview
from node.disclosure._recognise import mapped_for_request
from node.disclosure._scenarios import (
    Scenario,
    check_allowed,
    requested_disclosure,
    scenario_for,
    scope_of,
)
from node.exchange._throttle import RETRY_AFTER_KEY
from node.monthly._selfquery import published_entry_of
from node.pb.v1 import node_pb2
from node.population import require_served
from node.store import Connection
from node.store._consents import (
    ConsentRow,
    GrantHistory,
    grant_history_in,
    insert_consent,
    is_opted_out,
)
from node.store._translog import LogWrite
from scoring import Disclosure, Subject, years_between

if TYPE_CHECKING:
    from node.rpc._context import NodeContext
    from node.rpc._identity import AuthenticatedCitizen

__all__ = [
    "ADULT_AGE",
    "CONSENT_TYPE",
    "grant_consent",
    "has_capacity",
    "refuse_grant_over_limits",
]

CONSENT_TYPE = "application/vnd.huxin.consent.v1+proto"
ADULT_AGE = 18  # full civil capacity by age (PRC Civil Code art. 17)
DAY = 86_400
HOUR, MINUTE = 3_600, 60
_AUDIENCE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def has_capacity(subject: Subject, today: date) -> bool:
    """May this person consent today: an adult with full civil capacity."""
    return subject.full_civil_capacity and years_between(subject.birth_date, today) >= ADULT_AGE


def refuse_grant_over_limits(history: GrantHistory, limits: ConsentConfig, now: int) -> None:
    """RESOURCE_EXHAUSTED if one more grant at ``now`` would exceed the rate (checked
    first: withdrawing does not help there) or the bound on active consents.
    ``history.recent`` holds the grants of the last hour, oldest first."""
    waits = []
    for window, most in ((HOUR, limits.grants_per_hour), (MINUTE, limits.grant_burst)):
        inside = [t for t in history.recent if t > now - window]
        if len(inside) >= most:  # the window frees when its (len - most)-th oldest leaves
            waits.append(inside[len(inside) - most] + window - now)
    if waits:
        seconds = max(1, *waits)
        raise ResourceExhaustedError(
            "CONSENT_RATE_EXCEEDED",
            f"at most {limits.grants_per_hour} consents per hour and {limits.grant_burst} "
            f"per minute; retry after {seconds} s",
            details=((RETRY_AFTER_KEY, str(seconds)),),
        )
    if history.active >= limits.max_active_consents:
        raise ResourceExhaustedError(
            "TOO_MANY_ACTIVE_CONSENTS",
            f"at most {limits.max_active_consents} active consents; withdraw one first",
        )


async def _meets(
    ctx: NodeContext, key: bytes, scenario: Scenario, disclosure: Disclosure
) -> MappedGrade | None:
    """Refuse unless the person's published grade (H3, what an attestation would carry)
    meets ``scenario``; the mapping used, if any.

    Another scheme's scenario is met by the mapped grade: through the incentive-tier
    view for a threshold consent (below the home incentive tier nothing is
    recognised, so nothing is met), through the full table for a grade disclosure."""
    result = await published_entry_of(ctx, key)
    if not result.eligible or result.grade is None:
        raise FailedPreconditionError(
            "SUBJECT_NOT_ELIGIBLE", "you have no grade in this scheme", field="subject"
        )
    grade, mapping = result.grade, None
    if is_derived(scenario):
        grade = await _derived_tier(ctx, key, scenario.ref)
    elif scenario.scheme_id != ctx.scheme.id:
        try:  # the request path's own decision, so a grant is never one no request can use
            mapping = mapped_for_request(
                ctx.mapper, ctx.scheme, scenario, disclosure=disclosure, grade=grade,
                target=scenario.scheme_id, today=ctx.today(),
            )  # fmt: skip
        except FailedPreconditionError as exc:
            if exc.code in ("SCHEME_VERSION_MISMATCH", "MAPPING_NOT_APPROVED"):
                raise  # what every request would answer (C3, H13)
            raise FailedPreconditionError(
                "MAPPING_UNAVAILABLE",
                f"this node has no approved mapping into {scenario.scheme_id}",
                field="purpose",
            ) from None
        except NodeError:
            raise FailedPreconditionError(
                "MAPPING_UNAVAILABLE",
                f"this node has no approved mapping into {scenario.scheme_id}",
                field="purpose",
            ) from None
        grade = "" if mapping is None else mapping.grade  # not recognised: meets nothing
    if not scenario.meets(grade):
        # the citizen's own answer: nothing is stored or logged, the audience learns nothing
        raise FailedPreconditionError(
            "SCENARIO_NOT_MET",
            f"your grade does not meet {scenario.ref} (tier ≥ {scenario.min_tier} in "
            f"{scenario.scheme}); nothing was granted and no one was told",
            field="purpose",
        )
    return mapping


async def _derived_tier(ctx: NodeContext, key: bytes, purpose: str) -> str:
    """The person's tier in the derived score of ``purpose`` (version in force), read only."""
    home, today, at = ctx.scheme, ctx.today(), ctx.now_iso()

    def read(conn: Connection) -> str:
        _, derived = derived_scenario(conn, purpose, home)
        found = derived_grade(conn, key, home, derived, today=today, at=at, publish=False)
        return found.result.grade or ""

    return await ctx.db.read_unit(read)


async def grant_consent(
    ctx: NodeContext, citizen: AuthenticatedCitizen, request: node_pb2.GrantConsentRequest
) -> node_pb2.ConsentToken:
    """Grant (or, with ``preview_only``, preview) a consent.

    Steps (the module docstring says what each refuses):

    1. the audience and the purpose, a trusted requester and a catalogue scenario;
    2. the disclosure and the consent's validity and uses;
    3. the person, and the node's signing key;
    4. the person meets the scenario;
    5. the grant limits, read once here and decided inside the grant's unit;
    6. the preview, returned alone for ``preview_only``;
    7. the grant signed, then stored with its log entry in one unit of work.
    """
    # 1
    scenario = _scenario(ctx, request)
    now = ctx.now_s()
    _check_audience(ctx, request.audience, now)
    # 2
    disclosure = requested_disclosure(request.scope)
    if is_derived(scenario):  # the version in force defines it (docs/adr/0006)
        scenario, _ = await ctx.db.read_unit(
            lambda conn: derived_scenario(conn, request.purpose, ctx.scheme)
        )
    check_allowed(scenario, disclosure)
    days, uses = _validity(ctx.config.consent, request)
    # 3
    key = citizen.subject_key
    await _check_person(ctx, key, now)
    # 4
    mapping = await _meets(ctx, key, scenario, disclosure)
    # 5: a cheap refusal first, without the writer lock
    history = await ctx.consents.grant_history(key, since=now - HOUR, now=now)
    refuse_grant_over_limits(history, ctx.config.consent, now)
    # 6
    shown = preview(
        scenario,
        disclosure,
        audience=request.audience,
        not_after=now + days * DAY,
        max_uses=uses,
        mapping=mapping,
    )
    if request.preview_only:
        return node_pb2.ConsentToken(preview=shown)
    # 7
    grant = node_pb2.ConsentGrant(
        consent_id=os.urandom(16).hex(),
        issuer_region=ctx.config.region,
        audience=request.audience,
        purpose=request.purpose,
        scope=scope_of(disclosure),  # type: ignore[arg-type]
        not_before=now,
        not_after=now + days * DAY,
        max_uses=uses,
        granted_at=now,
    )
    payload = grant.SerializeToString(deterministic=True)
    with own_data("the node's signing key"):
        envelope = sign(CONSENT_TYPE, payload, ctx.secrets.signing)
    salt = os.urandom(32)
    await _store(ctx, _row_of(grant, payload, key, subject_binding(salt, citizen.id_number)))
    return node_pb2.ConsentToken(
        token=envelope.to_proto(), consent_id=grant.consent_id, binding_salt=salt, preview=shown
    )


def _scenario(ctx: NodeContext, request: node_pb2.GrantConsentRequest) -> Scenario:
    """Step 1: the audience's and the purpose's form; the purpose's scenario."""
    if not _AUDIENCE.match(request.audience):
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be a region or organisation id", field="audience"
        )
    check_purpose(request.purpose)  # signed, stored and logged
    return scenario_for(request.purpose, ctx.scheme)


def _check_audience(ctx: NodeContext, audience: str, now: int) -> None:
    """Step 1: a requester this region serves, never the region itself."""
    if audience == ctx.config.region or not ctx.trust.allows(audience, now):
        raise InvalidArgumentError(
            "AUDIENCE_NOT_TRUSTED",
            "not a requester this region serves (trust list, H17); it could never use it",
            field="audience",
        )


def _validity(limits: ConsentConfig, request: node_pb2.GrantConsentRequest) -> tuple[int, int]:
    """Step 2: the consent's days and uses, the configured defaults when unset."""
    cap = limits.max_validity_days
    days = request.valid_days or cap
    if days > cap:
        raise InvalidArgumentError(
            "VALIDITY_TOO_LONG", f"consent validity is capped at {cap} days", field="valid_days"
        )
    uses = request.max_uses or limits.default_max_uses
    if uses > MAX_USES_CAP:
        raise InvalidArgumentError(
            "INVALID_FIELD", f"at most {MAX_USES_CAP} uses", field="max_uses"
        )
    return days, uses


async def _check_person(ctx: NodeContext, key: bytes, now: int) -> None:
    """Step 3: served, known, not opted out, of full capacity; the node's key usable."""
    subject = await ctx.records.subject(key)
    # dead, moved away, not eligible: no consent (docs/adr/0508)
    await require_served(ctx, key, self_query=False)
    if subject is None:
        raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
    if await ctx.consents.opted_out(key):
        raise FailedPreconditionError(
            "SUBJECT_OPTED_OUT", "you asked not to be scored; opt in first", field="subject"
        )
    if not has_capacity(subject, ctx.today()):
        # Consent needs legal capacity when given, not only when used.
        raise FailedPreconditionError(
            "SUBJECT_NOT_ELIGIBLE",
            f"a consent needs full civil capacity (age {ADULT_AGE} or more)",
            field="subject",
        )
    if ctx.secrets.signing_problem_at(now) is not None:
        raise FailedPreconditionError(  # a token no one could ever use
            "NODE_KEY_EXPIRED",
            "this node's signing key is not valid now; the operator must rotate it",
        )


def _row_of(grant: node_pb2.ConsentGrant, payload: bytes, key: bytes, binding: bytes) -> ConsentRow:
    """Step 7: the stored row of a signed grant (the subject key and binding, never
    an ID number)."""
    return ConsentRow(
        consent_id=grant.consent_id,
        subject_key=key,
        audience=grant.audience,
        purpose=grant.purpose,
        scope=grant.scope,
        not_before=grant.not_before,
        not_after=grant.not_after,
        max_uses=grant.max_uses,
        uses=0,
        binding=binding,
        grant_payload=payload,
        grant_sha256=hashlib.sha256(payload).digest(),
        granted_at=grant.granted_at,
        withdrawn_at=None,
    )


async def _store(ctx: NodeContext, row: ConsentRow) -> None:
    """Step 7: one unit of work -- the limits decided again, the opt-out read again,
    the row and its ``consent_granted`` entry written; the log's tree mirrors the
    entry after COMMIT.  A refusal writes nothing; a call cancelled (its deadline
    passed) while it waited for the writer grants nothing."""
    log, limits, key, now = ctx.log, ctx.config.consent, row.subject_key, row.granted_at

    def store(conn: Connection) -> tuple[int, list[bytes]]:
        history = grant_history_in(conn, key, since=now - HOUR, now=now)
        refuse_grant_over_limits(history, limits, now)  # rolls back: nothing written
        if is_opted_out(conn, key):
            raise FailedPreconditionError(  # opted out meanwhile (N3): nothing written
                "SUBJECT_OPTED_OUT", "you asked not to be scored; opt in first", field="subject"
            )
        insert_consent(conn, row)
        return log.append_sync(
            conn,
            [
                LogWrite(
                    "consent_granted",
                    now,
                    key,
                    consent_id=row.consent_id,
                    requester=row.audience,
                    purpose=row.purpose,
                )
            ],
        )

    await ctx.db.write_unit(store, lambda r: log.mirror(*r), drop_if_cancelled=True)
