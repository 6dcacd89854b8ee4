"""SourceService: records in, consents, repair, objection answers, upload verification.

Invariants: only callers whose certificate identity is in ``sources.allowed``
may call (PERMISSION_DENIED ``SOURCE_NOT_ALLOWED``), except
``ResolveObjection``, which only the operator (certificate identity = the
node's own region) may call; a batch is validated by
``scoring.validate_batch`` first and stored whole or not at all (a refused
batch lists its bad records, bounded, in ``huxin-batch-rejection-bin``); the answer is
sent only after COMMIT; repair or revocation is done by the department that
submitted the record and, in ONE unit with the mark, recomputes the grade at
once, marks the subject's issued attestations superseded, tells the citizen
and logs it (H16, N22); a department sees and answers only the objections
and uploads addressed to it (docs/adr/0500, 0504).

Identity (H7, N4): a department speaks only for itself.  Every
record's ``source`` must be one of the caller's names — its certificate
identity, or that identity without the node's region prefix (``heihe.court``
or ``heihe-court`` → ``court``) unless the short name is itself another
allowed source — else the batch is refused with the per-record reason
``SOURCE_MISMATCH`` (field ``source``).  A collection consent is recorded only
for the caller itself as collector (PERMISSION_DENIED ``COLLECTOR_MISMATCH``,
field ``collector``), and the H7 gate for market records only counts consents
the submitting department recorded (:mod:`node.store._records`).

Free text and bounds (docs/adr/0323, docs/bounds.md): every caller-chosen
string the node stores, signs, logs or echoes — batch id, EVERY text field of a
record but its ``subject_id``, its flags, residence kinds, collection
``collector``/``stated_use``, repair, objection and verification notes — passes
the one ID-number check :func:`node.core._freetext.contains_id_number`
(INVALID_ARGUMENT ``ID_NUMBER_IN_FIELD``; for a record, a per-record reason, so
the whole batch is refused and nothing is written).  A record with an ID number
in any field is reported with those reasons only: ``scoring``'s reason for it
may quote a field's value, and a rejection never echoes an ID.  Every string and
repeated field is bounded (:mod:`node.core._bounds`): an over-long string or an
integer out of range is ``INVALID_FIELD``, too many items ``TOO_MANY_ITEMS``, a
flag outside the catalogue ``UNKNOWN_FLAG``, each naming the field; nothing is
cut silently.  ``MarkRecord.record_id`` is only a lookup key for a stored record
and is bounded but not refused (records stored before this rule must stay
revocable); the transparency log never holds a source-chosen string: a
repair/revocation leaf carries ``sha256(record_id)[:16 hex]`` and the route,
which the citizen can match to the record id in their own report.

Responsible-individual deductions (H10, docs/adr/0513): ``scoring`` refuses a
record whose structured ``legal_document`` is missing or malformed (each reason
names the part, ``legal_document.number`` …, with the record's index), and the
batch's write unit refuses one whose organisation is not on the
severe-dishonesty list on the record's recognition day
(``ORGANISATION_NOT_LISTED``); sources file that list with
``SubmitOrganisationListings`` (:mod:`node.organisations`).

Ids per department: batch ids and record ids are the caller's own
namespace.  Another department's batch with the same id neither blocks nor
"replays" this one, and ``MarkRecord`` answers NOT_FOUND ``RECORD_NOT_FOUND``
alike for another department's record and for no record (no existence oracle).

Refusal size: the rejection trailer is bounded
(:func:`node.store._records.batch_rejection`): the first problems, their total,
``truncated`` and a count per (field, code), so any batch up to the size limit
is refused with INVALID_ARGUMENT ``BATCH_REJECTED`` and a readable list.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from grpc import aio

from node.core._bounds import (
    ID_MAX,
    NAME_MAX,
    NOTE_MAX,
    RECORD_TEXT_MAX,
    REF_MAX,
    RESIDENCE_KIND_MAX,
    RESIDENCES_MAX,
    check_count,
    check_length,
    check_text,
)
from node.core._errors import FailedPreconditionError, InvalidArgumentError, PermissionDeniedError
from node.core._freetext import contains_id_number
from node.organisations import listed_problems, submit_listings
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.population import person_scope_problem, scope_problems, submit_residence_facts
from node.rights import _objections as objections
from node.rights import _supplements as supplements
from node.rights._events import RightsTx, grade_change_proto, run_rights_unit
from node.rights._repair import REPAIR_ROUTES, record_digest
from node.rights._svc import RightsSourceRpcs  # repair applications, score objections (N21, N22)
from node.rpc._context import NodeContext
from node.rpc._guard import require_caller
from node.store._records import SubjectFacts, batch_rejection
from scoring import RecordError, Residence, normalise_id_number, validate_batch

__all__ = ["SourceServicer", "record_to_raw", "source_names"]

_TEXT_FIELDS = (
    "record_id",
    "subject_id",
    "source",
    "category",
    "polarity",
    "act_id",
    "recognised_on",
    "valid_until",
    "level",
    "severity",
    "legal_document_text",
    "status",
    "provenance",
)
#: A record's caller-chosen text fields checked for ID numbers: all but the one
#: meant to hold it.
_FREE_TEXT = tuple(f for f in _TEXT_FIELDS if f != "subject_id")
#: The parts of a record's structured legal-document reference (H10).
_LEGAL_PARTS = ("kind", "number", "issuing_body", "issued_on", "organisation_code")
Problem = tuple[int, str, str, str, str]  # index, record_id, field, code, message


def source_names(who: str, region: str, allowed: tuple[str, ...] = ()) -> frozenset[str]:
    """The ``source`` names a caller's records may carry (H7, N4).

    Its certificate identity, plus that identity without the node's region
    prefix (``heihe.court``/``heihe-court`` → ``court``) unless the short name
    is itself another allowed source (it would speak for that department).
    """
    names = {who}
    for sep in (".", "-"):
        prefix = region + sep
        short = who[len(prefix) :]
        if who.startswith(prefix) and short and short not in allowed:
            names.add(short)
    return frozenset(names)


def _shown_id(record_id: object) -> str:
    """A record id as a rejection may echo it: never one holding an ID number, never
    one over :data:`RECORD_TEXT_MAX` (refused as too long, and not scanned)."""
    text = str(record_id)
    return "" if len(text) > RECORD_TEXT_MAX or contains_id_number(text) else text


def _id_problems(rec: scoring_pb2.CreditRecord, i: int) -> list[Problem]:
    """A record's fields (and flags) holding a citizen ID number (privacy, H6).

    Length first: a field or flag over :data:`RECORD_TEXT_MAX` is
    not scanned — ``validate_batch`` refuses it as too long (``INVALID_FIELD``;
    a flag that long is in no catalogue), so nothing is lost, and a field as
    large as the message never costs the event loop more than the bound."""
    rid = _shown_id(rec.record_id)
    texts = [(f, getattr(rec, f)) for f in _FREE_TEXT] + [("flags", f) for f in rec.flags]
    texts += [(f"legal_document.{p}", getattr(rec.legal_document, p)) for p in _LEGAL_PARTS]
    return [
        (i, rid, field, "ID_NUMBER_IN_FIELD", "must not contain a citizen ID number")
        for field, text in texts
        if len(text) <= RECORD_TEXT_MAX and contains_id_number(text)
    ]


def _source_problems(rec: scoring_pb2.CreditRecord, i: int, names: frozenset[str]) -> list[Problem]:
    """A ``source`` that is not the caller (H7, N4)."""
    rid = _shown_id(rec.record_id)
    out: list[Problem] = []
    if rec.source and rec.source not in names:
        out.append(
            (
                i,
                rid,
                "source",
                "SOURCE_MISMATCH",
                "a department files records under its own name only "
                f"(one of {sorted(names)}) (H7, N4)",
            )
        )
    return out


def record_to_raw(rec: scoring_pb2.CreditRecord) -> dict[str, Any]:
    """A wire record as the untrusted mapping ``scoring.validate_record`` expects."""
    raw: dict[str, Any] = {f: getattr(rec, f) for f in _TEXT_FIELDS if getattr(rec, f)}
    if rec.flags:
        raw["flags"] = list(rec.flags)
    if rec.HasField("legal_document"):
        doc = rec.legal_document
        raw["legal_document"] = {p: getattr(doc, p) for p in _LEGAL_PARTS if getattr(doc, p)}
    return raw


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be a date YYYY-MM-DD", field=field
        ) from None


def _facts(info: node_pb2.SubjectInfo, i: int) -> SubjectFacts:
    try:
        idn = normalise_id_number(info.subject_id, field=f"subjects[{i}].subject_id")
    except RecordError as exc:
        raise InvalidArgumentError(exc.code, exc.message, field=exc.field) from None
    for r in info.residence:
        check_text(f"subjects[{i}].residence.kind", r.kind, RESIDENCE_KIND_MAX, required=True)
    return SubjectFacts(
        idn,
        tuple(
            Residence(r.kind, _date(r.since, f"subjects[{i}].residence.since"))
            for r in info.residence
        ),
        not info.lacks_full_civil_capacity,
    )


class SourceServicer(RightsSourceRpcs, node_pb2_grpc.SourceServiceServicer):
    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx

    def _source(self) -> str:
        who = require_caller()
        if who not in self._ctx.config.sources:
            raise PermissionDeniedError(
                "SOURCE_NOT_ALLOWED", "this certificate may not submit records"
            )
        return who

    async def SubmitRecords(
        self, request: node_pb2.SubmitRecordsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.SubmitRecordsResponse:
        ctx = self._ctx
        who = self._source()
        check_text("batch_id", request.batch_id, ID_MAX, required=True)
        most = ctx.config.limits.max_batch_records
        if not request.records:
            raise InvalidArgumentError("MISSING_FIELD", "a batch needs records", field="records")
        if len(request.records) > most:
            raise InvalidArgumentError(
                "BATCH_TOO_LARGE", f"at most {most} records per batch", field="records"
            )
        check_count("subjects", request.subjects, most)
        for i, subject in enumerate(request.subjects):
            check_count(f"subjects[{i}].residence", subject.residence, RESIDENCES_MAX)
        raws = [record_to_raw(r) for r in request.records]
        records, errors = validate_batch(raws, ctx.scheme, ctx.today())
        names = source_names(who, ctx.config.region, ctx.config.sources)
        leaks = [_id_problems(r, i) for i, r in enumerate(request.records)]
        problems: list[Problem] = [p for found in leaks for p in found]
        for e in errors:
            at = e.index or 0
            if not leaks[at]:  # scoring's message may quote a value: never one with an ID
                shown = _shown_id(raws[at].get("record_id", ""))
                problems.append((at, shown, e.field, e.code, e.message))
        problems += [
            p for i, r in enumerate(request.records) for p in _source_problems(r, i, names)
        ]
        if problems:
            problems.sort(key=lambda p: p[0])  # stable: scoring's reason first per record
            raise batch_rejection(request.batch_id, problems)
        if ctx.config.require_registry:  # records only about people in scope (H7, docs/adr/0508)
            out_of_scope = await scope_problems(ctx, records, ctx.scheme, ctx.today())
            if out_of_scope:
                raise batch_rejection(request.batch_id, out_of_scope)
        facts = [_facts(s, i) for i, s in enumerate(request.subjects)]
        sha = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
        result = await ctx.records.submit_batch(
            request.batch_id, who, records, facts, content_sha256=sha, now_iso=ctx.now_iso(),
            checks=(lambda conn: listed_problems(conn, records),),  # H10, in the batch's unit
        )  # fmt: skip
        return node_pb2.SubmitRecordsResponse(
            batch_id=result.batch_id,
            accepted=result.accepted,
            replayed=result.replayed,
            batch_sha256=result.sha256,
        )

    async def SubmitOrganisationListings(
        self,
        request: node_pb2.SubmitOrganisationListingsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> node_pb2.SubmitRecordsResponse:
        return await submit_listings(self._ctx, self._source(), request)

    async def SubmitResidenceFacts(
        self, request: node_pb2.SubmitResidenceFactsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.SubmitRecordsResponse:
        return await submit_residence_facts(self._ctx, require_caller(), request)

    async def RecordCollectionConsent(
        self, request: node_pb2.CollectionConsent, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.RecordCollectionConsentResponse:
        ctx = self._ctx
        who = self._source()
        try:
            idn = normalise_id_number(request.subject_id)
        except RecordError as exc:
            raise InvalidArgumentError(exc.code, exc.message, field=exc.field) from None
        check_text("collector", request.collector, NAME_MAX, required=True)
        check_text("stated_use", request.stated_use, NOTE_MAX, required=True)
        names = source_names(who, ctx.config.region, ctx.config.sources)
        if request.collector not in names:
            raise PermissionDeniedError(
                "COLLECTOR_MISMATCH",
                "a department records collection consents given to itself only "
                f"(one of {sorted(names)}) (H7, N4)",
                field="collector",
            )
        if not request.adverse_consequences_acknowledged:
            raise InvalidArgumentError(
                "CONSEQUENCES_NOT_ACKNOWLEDGED",
                "the person must acknowledge the adverse consequences in writing (N4)",
                field="adverse_consequences_acknowledged",
            )
        if len(request.document_sha256) != 32:
            raise InvalidArgumentError(
                "INVALID_FIELD", "must be a 32-byte SHA-256", field="document_sha256"
            )
        signed_on = _date(request.signed_on, "signed_on")
        if signed_on > ctx.today():
            raise InvalidArgumentError("INVALID_FIELD", "is in the future", field="signed_on")
        if ctx.config.require_registry:  # a consent would store the person (H7, ADR 0508)
            out_of_scope = await person_scope_problem(ctx, idn, ctx.scheme, ctx.today())
            if out_of_scope is not None:
                raise FailedPreconditionError(*out_of_scope, field="subject_id")
        ref = await ctx.records.record_collection_consent(
            idn,
            request.collector,
            stated_use=request.stated_use,
            document_sha256=bytes(request.document_sha256),
            signed_on=signed_on,
            recorded_by=who,
            now_iso=ctx.now_iso(),
        )
        return node_pb2.RecordCollectionConsentResponse(consent_ref=ref)

    async def MarkRecord(
        self, request: node_pb2.MarkRecordRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.MarkRecordResponse:
        ctx = self._ctx
        who = self._source()
        if request.status not in ("repaired", "revoked"):
            raise InvalidArgumentError(
                "INVALID_FIELD", "must be 'repaired' or 'revoked'", field="status"
            )
        if request.status == "repaired" and request.repair_route not in REPAIR_ROUTES:
            raise InvalidArgumentError(
                "INVALID_FIELD",
                f"repair_route must be one of {sorted(REPAIR_ROUTES)}",
                field="repair_route",
            )
        check_length("record_id", request.record_id, RECORD_TEXT_MAX, required=True)  # a lookup key
        check_text("note", request.note, NOTE_MAX)
        status, route, note = request.status, request.repair_route, request.note
        digest = record_digest(request.record_id)

        def fn(rtx: RightsTx) -> node_pb2.MarkRecordResponse:
            key, _category, polarity = rtx.record_of(who, request.record_id)
            if status == "repaired" and polarity != "negative":
                raise InvalidArgumentError(
                    "NOT_NEGATIVE",
                    "only a negative record can be repaired (N22)",
                    field="record_id",
                )
            rtx.set_record_status(who, request.record_id, status)
            rtx.mark(who, request.record_id, status, route=route, note=note, by=who)
            superseded = rtx.supersede(key)
            cause = f"credit repair ({route})" if status == "repaired" else "record revoked"
            grade = rtx.rescore(key, cause)
            rtx.notify(key, "record", f"record {request.record_id} {status} by {who}: {cause}")
            rtx.log(f"record_{status}", key, requester=who, reason=f"{digest} {route}")
            return node_pb2.MarkRecordResponse(
                record_id=request.record_id,
                status=status,
                attestations_superseded=superseded,
                grade=grade_change_proto(grade),
            )

        return await run_rights_unit(ctx, fn)

    # -- objections (H15, N21) -----------------------------------------------
    async def ListObjections(
        self, request: node_pb2.ListObjectionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListObjectionsResponse:
        return await objections.list_for_source(self._ctx, self._source(), request.open_only)

    async def AnswerObjection(
        self, request: node_pb2.AnswerObjectionRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ObjectionInfo:
        who = self._source()
        check_length("objection_id", request.objection_id, REF_MAX, required=True)
        check_text("note", request.note, NOTE_MAX)
        return await objections.answer_objection(
            self._ctx, who, request.objection_id, request.outcome, request.note, operator=False
        )

    async def ResolveObjection(
        self, request: node_pb2.AnswerObjectionRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ObjectionInfo:
        who = require_caller()
        if who != self._ctx.config.region:
            raise PermissionDeniedError(
                "NOT_OPERATOR", "only the node's operator resolves objections about its handling"
            )
        check_length("objection_id", request.objection_id, REF_MAX, required=True)
        check_text("note", request.note, NOTE_MAX)
        return await objections.answer_objection(
            self._ctx, who, request.objection_id, request.outcome, request.note, operator=True
        )

    # -- personal supplementary information (N5, N9) -------------------------
    async def ListSupplements(
        self, request: node_pb2.ListSupplementsRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.ListSupplementsResponse:
        return await supplements.list_for_verifier(self._ctx, self._source(), request.pending_only)

    async def VerifySupplement(
        self, request: node_pb2.VerifySupplementRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.SupplementInfo:
        who = self._source()
        check_length("supplement_id", request.supplement_id, REF_MAX, required=True)
        check_text("reason", request.reason, NOTE_MAX)
        return await supplements.decide(
            self._ctx, who, request.supplement_id, request.accept, request.reason
        )
