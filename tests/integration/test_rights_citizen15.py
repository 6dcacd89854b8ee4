"""The citizen's remaining rights on real nodes (issue 15 §4, docs/adr/0509).

Objections to the score itself (N21, N23), credit-repair applications (N22)
and voluntariness (N3, N4), over mutual TLS with a manual clock across
National Day 2026 (same calendar as ``test_rights_objections``: 1-7 October
are holidays, Sat 10 October is a make-up WORKING day).  Every expected date
is counted by hand on that calendar; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from keys import Status
from node.demo._testbed import attestation_request, make_id_number
from node.pb.v1 import node_pb2
from tests.support.refusals import expect_refused
from tests.support.rights_region import Region, start_region

pytestmark = pytest.mark.asyncio(loop_scope="function")

ALICE, BOB = make_id_number(301), make_id_number(302)
TABLES = ("objections", "repair_applications", "opt_outs", "notifications")


@pytest_asyncio.fixture
async def heihe(tmp_path: Path) -> AsyncIterator[Region]:
    r = await start_region(tmp_path, "heihe", "heihe", [ALICE, BOB])
    yield r
    await r.bed.close()


@pytest_asyncio.fixture
async def hainan(tmp_path: Path) -> AsyncIterator[Region]:
    r = await start_region(tmp_path, "hainan", "hainan", [ALICE, BOB])
    yield r
    await r.bed.close()


async def _counts(r: Region) -> dict[str, int]:
    db = r.node.server.ctx.db
    return {t: int((await db.fetchone(f"SELECT count(*) FROM {t}"))[0]) for t in TABLES}


def _deadlines(info: node_pb2.ObjectionInfo) -> dict[str, str]:
    return {d.step: d.due for d in info.deadlines}


# ------------------------------------------------------------------ bad inputs

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
Call = Callable[[Region], Any]


def _score_obj(**kw: Any) -> Call:
    req = node_pb2.FileObjectionRequest(about_score=True, **kw)
    return lambda r: r.citizen.FileObjection(req, metadata=r.me(ALICE))


def _repair(**kw: Any) -> Call:
    req = node_pb2.RepairApplicationRequest(**kw)
    return lambda r: r.citizen.ApplyForRepair(req, metadata=r.me(ALICE))


BAD_INPUTS: list[tuple[str, Call, grpc.StatusCode, str, str]] = [
    # N21: an objection to the score names an ended month and no record
    ("score_no_period", _score_obj(), INVALID, "MISSING_FIELD", "period"),
    ("score_period_long", _score_obj(period="2026-08-01"), INVALID, "INVALID_FIELD", "period"),
    ("score_period_month13", _score_obj(period="2026-13"), INVALID, "INVALID_FIELD", "period"),
    ("score_period_current", _score_obj(period="2026-09"), INVALID, "INVALID_FIELD", "period"),
    ("score_period_future", _score_obj(period="2027-01"), INVALID, "INVALID_FIELD", "period"),
    ("score_with_record", _score_obj(period="2026-08", record_id="p-0"), INVALID,
     "INVALID_FIELD", "record_id"),
    ("score_with_handling", _score_obj(period="2026-08", about_handling=True), INVALID,
     "INVALID_FIELD", "about_handling"),
    ("score_reason_id", _score_obj(period="2026-08", reason=f"me {ALICE}"), INVALID,
     "ID_NUMBER_IN_FIELD", "reason"),
    ("score_reason_long", _score_obj(period="2026-08", reason="x" * 513), INVALID,
     "INVALID_FIELD", "reason"),
    ("record_objection_with_period", lambda r: r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0", period="2026-08"), metadata=r.me(ALICE)
    ), INVALID, "INVALID_FIELD", "period"),
    # N22: a repair application names one of the person's own negative records and a route
    ("repair_no_record", _repair(route="commitment"), INVALID, "MISSING_FIELD", "record_id"),
    ("repair_no_route", _repair(record_id="p-0"), INVALID, "MISSING_FIELD", "route"),
    ("repair_bad_route", _repair(record_id="p-0", route="bribe"), INVALID, "INVALID_FIELD",
     "route"),
    ("repair_positive", _repair(record_id="h-0", route="commitment"), INVALID, "NOT_NEGATIVE",
     "record_id"),
    ("repair_unknown", _repair(record_id="nope", route="charity"), NOT_FOUND,
     "RECORD_NOT_FOUND", "record_id"),
    ("repair_someone_elses", _repair(record_id="p-1", route="charity"), NOT_FOUND,
     "RECORD_NOT_FOUND", "record_id"),
    ("repair_statement_id", _repair(record_id="p-0", route="charity", statement=ALICE),
     INVALID, "ID_NUMBER_IN_FIELD", "statement"),
    ("repair_statement_long", _repair(record_id="p-0", route="charity", statement="x" * 513),
     INVALID, "INVALID_FIELD", "statement"),
    ("repair_evidence_short", _repair(record_id="p-0", route="charity", evidence_sha256=b"12"),
     INVALID, "INVALID_FIELD", "evidence_sha256"),
    ("repair_source_long", _repair(record_id="p-0", route="charity", source="s" * 64),
     INVALID, "INVALID_FIELD", "source"),
    # N3: opting out must be confirmed
    ("opt_out_unconfirmed", lambda r: r.citizen.OptOut(
        node_pb2.OptOutRequest(), metadata=r.me(ALICE)
    ), INVALID, "NOT_CONFIRMED", "confirm"),
    # N22: a department's decision
    ("decide_no_id", lambda r: r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(grant=True)
    ), INVALID, "MISSING_FIELD", "application_id"),
    ("decide_unknown", lambda r: r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(application_id="nope", grant=True)
    ), NOT_FOUND, "REPAIR_APPLICATION_NOT_FOUND", "application_id"),
    ("decide_refusal_no_reason", lambda r: r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(application_id="nope")
    ), INVALID, "MISSING_FIELD", "reason"),
    ("decide_reason_id", lambda r: r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(application_id="nope", reason=ALICE)
    ), INVALID, "ID_NUMBER_IN_FIELD", "reason"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "call", "code", "reason", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
async def test_rights15_bad_inputs_refused_with_reason_and_field_nothing_written(
    heihe: Region, name: str, call: Call, code: grpc.StatusCode, reason: str, field: str
) -> None:
    """REQ: N3, N4, N21, N22, N23 — every caller-chosen field is bounded and ID-checked;
    a refusal names its exact code, huxin-reason and field, and writes nothing."""
    before = await _counts(heihe)
    await expect_refused(call(heihe), code, reason, field)
    assert await _counts(heihe) == before


# ------------------------------------------------------------------ N21: the score itself


async def test_score_objection_hainan_operator_resolves_within_handle_days_recomputes(
    hainan: Region,
) -> None:
    """REQ: N21, N23 — an objection to the published score itself goes to the operator
    (not a department) with Hainan's 3-working-day 'handle' deadline; the operator's
    queue shows it, a department never sees or answers it; corrected, the grade is
    recomputed at once, the attestation superseded and the citizen told."""
    r = hainan
    old = await r.attest(ALICE, "heihe")
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(
            about_score=True, period="2026-08", reason="the penalty was counted twice"
        ),
        metadata=r.me(ALICE),
    )
    # Tue 29 Sep + 3 working days: Wed 30 Sep, Thu 8 Oct, Fri 9 Oct
    assert (filed.about_score, filed.period, filed.record_id) == (True, "2026-08", "")
    assert (filed.state, filed.waiting_for, filed.source) == ("received", "handle", "hainan")
    assert _deadlines(filed) == {"handle": "2026-10-09"}
    assert any("operator answers by 2026-10-09" in n for n in await r.notes(ALICE))

    (queued,) = (
        await r.operator.ListScoreObjections(node_pb2.ListObjectionsRequest(open_only=True))
    ).objections
    assert queued.objection_id == filed.objection_id
    assert not (await r.source.ListObjections(node_pb2.ListObjectionsRequest())).objections
    await expect_refused(
        r.source.ListScoreObjections(node_pb2.ListObjectionsRequest()),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_OPERATOR",
        "",
    )
    await expect_refused(
        r.source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="upheld")
        ),
        NOT_FOUND,
        "OBJECTION_NOT_FOUND",
        "objection_id",
    )
    await expect_refused(  # one open objection per month's score
        r.citizen.FileObjection(
            node_pb2.FileObjectionRequest(about_score=True, period="2026-08"),
            metadata=r.me(ALICE),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "OBJECTION_OPEN",
        "period",
    )

    resolved = await r.operator.ResolveObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="corrected")
    )
    assert (resolved.state, resolved.outcome) == ("replied", "corrected")  # no reply step
    assert await r.status_of(old) is Status.SUPERSEDED
    assert any("found your 2026-08 score wrong" in n for n in await r.notes(ALICE))
    assert not (
        await r.operator.ListScoreObjections(node_pb2.ListObjectionsRequest(open_only=True))
    ).objections


async def test_score_objection_heihe_overdue_escalates_once_never_deemed_accepted(
    heihe: Region,
) -> None:
    """REQ: N21, H15 — Heihe names no operator step: the configured 3 working days apply
    (ADR 0509); past them the objection escalates once (logged), stays with the operator
    and is never deemed accepted; the operator's late answer 'upheld' closes it."""
    r = heihe
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(about_score=True, period="2026-08"), metadata=r.me(ALICE)
    )
    assert _deadlines(filed) == {"handle": "2026-10-09"}
    assert await r.tick("2026-10-09") == 0  # the due day itself is in time
    assert await r.tick("2026-10-10") == 1  # Sat 10 Oct is a make-up working day: escalated
    assert await r.tick("2026-10-12") == 0  # once
    (mine,) = (
        await r.citizen.ListMyObjections(node_pb2.ListObjectionsRequest(), metadata=r.me(ALICE))
    ).objections
    assert mine.state == "received"
    log = await r.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=r.me(ALICE))
    kinds = [node_pb2.LogEntry.FromString(e.entry).kind for e in log.entries]
    assert kinds.count("objection_escalated") == 1
    closed = await r.operator.ResolveObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="upheld")
    )
    assert (closed.outcome, closed.waiting_for) == ("upheld", "reply")
    assert await r.grade(ALICE) == "A"


# ------------------------------------------------------------------ N22: credit repair


async def test_repair_application_routed_to_department_granted_recomputes_at_once(
    heihe: Region,
) -> None:
    """REQ: N22, H16 — the application goes to the department that filed the record,
    with its decision due 5 working days later, and shows in the citizen's
    notifications; only that department lists and decides it; granted, the record is
    repaired, the grade recomputed at once and the attestation superseded."""
    r = heihe
    assert await r.grade(ALICE) == "A"
    old = await r.attest(ALICE, "hainan")
    applied = await r.citizen.ApplyForRepair(
        node_pb2.RepairApplicationRequest(
            record_id="p-0", route="rectification", statement="fine paid, licence restored",
            evidence_sha256=b"\x01" * 32,
        ),
        metadata=r.me(ALICE),
    )  # fmt: skip
    # Tue 29 Sep + 5 working days: 30 Sep, 8, 9, 10 (Sat, make-up), 12 Oct
    assert (applied.state, applied.source, applied.due) == ("pending", "heihe-court", "2026-10-12")
    assert any("sent to heihe-court; it decides by 2026-10-12" in n for n in await r.notes(ALICE))
    await expect_refused(
        r.citizen.ApplyForRepair(
            node_pb2.RepairApplicationRequest(record_id="p-0", route="commitment"),
            metadata=r.me(ALICE),
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "REPAIR_PENDING",
        "record_id",
    )
    assert not (
        await r.other_source.ListRepairApplications(node_pb2.ListRepairApplicationsRequest())
    ).applications
    await expect_refused(
        r.other_source.DecideRepairApplication(
            node_pb2.DecideRepairApplicationRequest(
                application_id=applied.application_id, grant=True
            )
        ),
        NOT_FOUND,
        "REPAIR_APPLICATION_NOT_FOUND",
        "application_id",
    )
    (queued,) = (
        await r.source.ListRepairApplications(
            node_pb2.ListRepairApplicationsRequest(pending_only=True)
        )
    ).applications
    assert (queued.application_id, queued.route) == (applied.application_id, "rectification")

    granted = await r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(application_id=applied.application_id, grant=True)
    )
    assert granted.state == "granted"
    assert (granted.grade.grade_before, granted.grade.grade_after) == ("A", "AA")
    assert await r.grade(ALICE) == "AA"
    assert await r.status_of(old) is Status.SUPERSEDED
    report = await r.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=r.me(ALICE))
    assert {c.record_id: c.status for c in report.result.contributions}["p-0"] == "repaired"
    notes = await r.notes(ALICE)
    assert any(f"{applied.application_id} for record p-0 granted" in n for n in notes)
    await expect_refused(
        r.source.DecideRepairApplication(
            node_pb2.DecideRepairApplicationRequest(
                application_id=applied.application_id, grant=True
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REPAIR_DECIDED",
        "application_id",
    )


async def test_repair_application_overdue_escalates_once_then_refusal_told(
    heihe: Region,
) -> None:
    """REQ: N22 — past its working-day deadline an undecided application is escalated
    once and the citizen told; a refusal's reason reaches the citizen and the record
    keeps counting."""
    r = heihe
    applied = await r.citizen.ApplyForRepair(
        node_pb2.RepairApplicationRequest(record_id="p-0", route="commitment"),
        metadata=r.me(ALICE),
    )
    assert applied.due == "2026-10-12"
    assert await r.tick("2026-10-12") == 0
    assert await r.tick("2026-10-13") == 1
    assert await r.tick("2026-10-14") == 0
    (mine,) = (
        await r.citizen.ListMyRepairApplications(
            node_pb2.ListRepairApplicationsRequest(), metadata=r.me(ALICE)
        )
    ).applications
    assert (mine.state, mine.overdue) == ("pending", True)
    assert any("did not decide by 2026-10-12" in n for n in await r.notes(ALICE))
    refused = await r.source.DecideRepairApplication(
        node_pb2.DecideRepairApplicationRequest(
            application_id=applied.application_id, reason="commitment not yet fulfilled"
        )
    )
    assert refused.state == "refused"
    assert any("commitment not yet fulfilled" in n for n in await r.notes(ALICE))
    assert await r.grade(ALICE) == "A"


# ------------------------------------------------------------------ N3, N4: voluntariness


async def test_opt_out_ends_consents_refuses_attestation_keeps_records_and_opt_in(
    heihe: Region,
) -> None:
    """REQ: N3, N4 — opting out (not deregistering) ends every active consent, revokes
    issued attestations, refuses the relying party with SUBJECT_OPTED_OUT (and nothing
    more), refuses new consents, makes GetMyScore say 'opted out'; the records are kept
    and opting back in scores the person again at once."""
    r = heihe
    token = await r.citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience="hainan",
            purpose="heihe/credit-loans",
            scope=node_pb2.CONSENT_SCOPE_GRADE,
            max_uses=5,
        ),
        metadata=r.me(ALICE),
    )
    first = await r.peer.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans"))

    out = await r.citizen.OptOut(node_pb2.OptOutRequest(confirm=True), metadata=r.me(ALICE))
    assert (out.consents_ended, out.attestations_revoked) == (1, 1)
    again = await r.citizen.OptOut(node_pb2.OptOutRequest(confirm=True), metadata=r.me(ALICE))
    assert (again.consents_ended, again.opted_out_at) == (0, out.opted_out_at)  # idempotent

    mine = await r.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=r.me(ALICE))
    assert mine.opted_out and not mine.HasField("result")
    await expect_refused(
        r.peer.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUBJECT_OPTED_OUT",
        "",
    )
    assert await r.status_of(first.signed_attestation) is Status.REVOKED
    consents = await r.citizen.ListConsents(node_pb2.ListConsentsRequest(), metadata=r.me(ALICE))
    assert [c.state for c in consents.consents] == [node_pb2.CONSENT_STATE_WITHDRAWN]
    await expect_refused(
        r.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=r.me(ALICE),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUBJECT_OPTED_OUT",
        "subject",
    )
    assert await r.grade(BOB) == "A"  # others are untouched

    back = await r.citizen.OptIn(node_pb2.OptInRequest(), metadata=r.me(ALICE))
    assert back.was_opted_out
    report = await r.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=r.me(ALICE))
    assert not report.opted_out
    assert report.result.grade == "A"
    assert {c.record_id for c in report.result.contributions} == {"h-0", "h-0-0", "h-0-1", "p-0"}
    assert await r.status_of(await r.attest(ALICE, "hainan")) is Status.VALID
    assert not (await r.citizen.OptIn(node_pb2.OptInRequest(), metadata=r.me(ALICE))).was_opted_out
