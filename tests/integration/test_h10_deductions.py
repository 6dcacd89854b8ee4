"""Responsible-individual deductions at intake: a legal document and a listed organisation.

REQ: H10 (issue 15 §3) — where an organisation is a severely dishonest subject on a
list, the individual directly responsible, named in a legal document, is deducted:
the record carries a structured reference (kind from a closed list, number, issuing
body, date, the organisation's GB 32100 code) and the organisation must be on the
severe-dishonesty list (严重失信主体名单) on the record's date, a listing a source
files first with ``SubmitOrganisationListings``. H7 — a bad reference is refused at
intake with a named reason and field, and nothing of the batch is written; no ID
number in any part of the reference. N13 — the accepted deduction is explained.

One real node (mutual TLS on loopback, its own SQLite file) for the module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import reason_of
from scoring import uscc_check_character

pytestmark = pytest.mark.asyncio(loop_scope="module")

REJECTION_KEY = "huxin-batch-rejection-bin"
BOSS = make_id_number(731)  # the legal representative deducted
NEIGHBOUR = make_id_number(732)  # the good record next to the bad one


def _uscc(first17: str) -> str:
    return first17 + uscc_check_character(first17)


LISTED = _uscc("91231100MA1000001")  # listed 2026-01-10, still listed
REMOVED = _uscc("91231100MA1000002")  # listed 2026-01-10, removed 2026-04-01
NEVER = _uscc("91231100MA1000003")  # never listed
WRONG_CHECK = LISTED[:17] + ("1" if LISTED[17] != "1" else "2")


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    court: node_pb2_grpc.SourceServiceStub
    credit: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub

    def count(self, sql: str, *params: object) -> int:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row[0])


def listing(lid: str, code: str, event: str, on: str, **kw: str) -> node_pb2.OrganisationListing:
    fields = {"listing_id": lid, "organisation_code": code, "list": "severe_dishonesty",
              "event": event, "on": on, **kw}  # fmt: skip
    return node_pb2.OrganisationListing(**fields)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("h10"))
    heihe = await bed.start_node("heihe", "heihe", sources=("heihe-court", "heihe-credit"))
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    credit = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-credit")))
    n = Node(bed, heihe, court, credit, bed.citizen_stub(heihe))
    await credit.SubmitOrganisationListings(
        node_pb2.SubmitOrganisationListingsRequest(
            batch_id="listings-1",
            listings=[
                listing("l-1", LISTED, "listed", "2026-01-10"),
                listing("l-2", REMOVED, "listed", "2026-01-10"),
                listing("l-3", REMOVED, "removed", "2026-04-01"),
            ],
        )
    )
    yield n
    await bed.close()


def document(**changes: str) -> scoring_pb2.LegalDocument:
    fields = {
        "kind": "penalty_decision",
        "number": "黑市监罚〔2026〕12号",
        "issuing_body": "黑河市市场监督管理局",
        "issued_on": "2026-03-01",
        "organisation_code": LISTED,
    }
    fields.update(changes)
    return scoring_pb2.LegalDocument(**fields)


def deduction(
    record_id: str,
    doc: scoring_pb2.LegalDocument | None = None,
    *,
    recognised_on: str = "2026-05-01",
    text: str = "",
) -> scoring_pb2.CreditRecord:
    rec = scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=BOSS,
        source="court",
        category="responsible_individual",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        legal_document_text=text,
    )
    if doc is not None:
        rec.legal_document.CopyFrom(doc)
    return rec


# name, the bad deduction, the exact reason and the field it names
BAD = [
    ("missing", deduction("b-missing"), "LEGAL_DOCUMENT_REQUIRED", "legal_document"),
    ("free-text-x", deduction("b-text", text="x"), "LEGAL_DOCUMENT_UNSTRUCTURED",
     "legal_document_text"),
    ("kind-not-in-list", deduction("b-kind", document(kind="warning_letter")),
     "UNKNOWN_DOCUMENT_KIND", "legal_document.kind"),
    ("number-malformed", deduction("b-number", document(number="x")),
     "INVALID_DOCUMENT_NUMBER", "legal_document.number"),
    ("number-missing", deduction("b-no-number", document(number="")), "MISSING_FIELD",
     "legal_document.number"),
    ("date-in-future", deduction("b-future", document(issued_on="2999-01-01")),
     "FUTURE_DOCUMENT_DATE", "legal_document.issued_on"),
    ("organisation-not-listed", deduction("b-never", document(organisation_code=NEVER)),
     "ORGANISATION_NOT_LISTED", "legal_document.organisation_code"),
    ("organisation-removed-before-the-record", deduction("b-removed",
     document(organisation_code=REMOVED)), "ORGANISATION_NOT_LISTED",
     "legal_document.organisation_code"),
    ("record-before-the-listing", deduction("b-early", document(issued_on="2025-12-01"),
     recognised_on="2025-12-02"), "ORGANISATION_NOT_LISTED", "legal_document.organisation_code"),
    ("organisation-code-check-char-wrong", deduction("b-check",
     document(organisation_code=WRONG_CHECK)), "INVALID_ORGANISATION_CODE",
     "legal_document.organisation_code"),
    ("id-number-in-issuing-body", deduction("b-id-issuer",
     document(issuing_body=f"黑河市中级人民法院 {BOSS}")), "ID_NUMBER_IN_FIELD",
     "legal_document.issuing_body"),
    ("id-number-in-number", deduction("b-id-number",
     document(number=f"（2026）{BOSS}号")), "ID_NUMBER_IN_FIELD", "legal_document.number"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "bad", "code", "field"), BAD, ids=[c[0] for c in BAD])
async def test_bad_legal_document_reference_refuses_the_batch_and_writes_nothing(
    node: Node, name: str, bad: scoring_pb2.CreditRecord, code: str, field: str
) -> None:
    """REQ: H10, H7 (issue 15 §3) — the exact reason and the part of the reference
    (``records[1].legal_document.…``); neither record nor subject is written."""
    batch = f"h10-bad-{name}"
    request = node_pb2.SubmitRecordsRequest(
        batch_id=batch,
        records=[honour_record(f"good-{name}", NEIGHBOUR), bad],
        subjects=[resident(NEIGHBOUR), resident(BOSS)],
    )
    subjects = node.count("SELECT count(*) FROM subjects")
    records = node.count("SELECT count(*) FROM records")
    with pytest.raises(aio.AioRpcError) as info:
        await node.court.SubmitRecords(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "BATCH_REJECTED"
    rejection = node_pb2.BatchRejection.FromString(
        dict(info.value.trailing_metadata())[REJECTION_KEY]
    )
    assert [(r.index, r.field, r.code) for r in rejection.rejections] == [(1, field, code)]
    assert all(BOSS not in r.message and LISTED not in r.message for r in rejection.rejections)
    assert BOSS not in (info.value.details() or "")
    assert node.count("SELECT count(*) FROM records") == records
    assert node.count("SELECT count(*) FROM subjects") == subjects
    assert node.count("SELECT count(*) FROM source_batches WHERE batch_id = ?", batch) == 0


async def test_listed_deduction_is_accepted_stored_and_explained(node: Node) -> None:
    """REQ: H10, N13 (issue 15 §3) — a deduction whose organisation is listed on its date is
    stored with its reference; the citizen's report says it is for the responsible
    individual and names the document kind and number, not the organisation code."""
    doc = document(issued_on="2025-11-20")  # a decision older than the listing is fine
    resp = await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="h10-good", records=[deduction("ok-1", doc)], subjects=[resident(BOSS)]
        )
    )
    assert (resp.accepted, resp.replayed) == (1, False)
    assert node.count(
        "SELECT count(*) FROM records WHERE record_id = 'ok-1' AND legal_document = ? "
        "AND legal_issuer = ? AND legal_issued_on = '2025-11-20' AND organisation_code = ?",
        "penalty_decision 黑市监罚〔2026〕12号",
        "黑河市市场监督管理局",
        LISTED,
    ) == 1  # fmt: skip
    report = await node.citizen.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=node.node.identity(BOSS)
    )
    (c,) = [c for c in report.result.contributions if c.record_id == "ok-1"]
    assert (c.status, c.points) == ("counted", -100)
    assert "individual directly responsible" in c.reason
    assert "行政处罚决定书 黑市监罚〔2026〕12号" in c.reason
    assert LISTED not in c.reason


async def test_deduction_on_another_category_refuses_a_reference(node: Node) -> None:
    """REQ: H7, H10 — only a responsible-individual deduction collects a legal document."""
    rec = honour_record("na-1", NEIGHBOUR)
    rec.legal_document.CopyFrom(document())
    with pytest.raises(aio.AioRpcError) as info:
        await node.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(batch_id="h10-na", records=[rec])
        )
    rejection = node_pb2.BatchRejection.FromString(
        dict(info.value.trailing_metadata())[REJECTION_KEY]
    )
    assert [(r.field, r.code) for r in rejection.rejections] == [
        ("legal_document", "LEGAL_DOCUMENT_NOT_APPLICABLE")
    ]
    assert node.count("SELECT count(*) FROM records WHERE record_id = 'na-1'") == 0


# name, the bad listing event, the exact reason and field
BAD_LISTINGS = [
    ("code-check-char-wrong", listing("x-1", WRONG_CHECK, "listed", "2026-01-10"),
     "INVALID_ORGANISATION_CODE", "organisation_code"),
    ("code-missing", listing("x-2", "", "listed", "2026-01-10"), "MISSING_FIELD",
     "organisation_code"),
    ("code-is-an-id-number", listing("x-3", BOSS, "listed", "2026-01-10"),
     "ID_NUMBER_IN_FIELD", "organisation_code"),
    ("unknown-list", listing("x-4", NEVER, "listed", "2026-01-10", list="red_list"),
     "UNKNOWN_LIST", "list"),
    ("unknown-event", listing("x-5", NEVER, "suspended", "2026-01-10"), "UNKNOWN_EVENT",
     "event"),
    ("date-in-future", listing("x-6", NEVER, "listed", "2999-01-01"), "INVALID_FIELD", "on"),
    ("date-malformed", listing("x-7", NEVER, "listed", "2026-1-10"), "INVALID_FIELD", "on"),
    ("id-number-in-listing-id", listing(f"x-{BOSS}", NEVER, "listed", "2026-01-10"),
     "ID_NUMBER_IN_FIELD", "listing_id"),
    ("listing-id-already-used", listing("l-1", NEVER, "listed", "2026-01-10"),
     "LISTING_EXISTS", "listing_id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "bad", "code", "field"), BAD_LISTINGS, ids=[c[0] for c in BAD_LISTINGS]
)
async def test_bad_listing_refuses_the_batch_and_writes_nothing(
    node: Node, name: str, bad: node_pb2.OrganisationListing, code: str, field: str
) -> None:
    """REQ: H10, H7 (issue 15 §3) — a listing is validated like a record: exact reason and
    field (index 1), the good listing next to it is not stored either."""
    before = node.count("SELECT count(*) FROM organisation_listings")
    request = node_pb2.SubmitOrganisationListingsRequest(
        batch_id=f"listings-bad-{name}",
        listings=[listing(f"good-{name}", NEVER, "listed", "2026-02-01"), bad],
    )
    with pytest.raises(aio.AioRpcError) as info:
        await node.credit.SubmitOrganisationListings(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "BATCH_REJECTED"
    rejection = node_pb2.BatchRejection.FromString(
        dict(info.value.trailing_metadata())[REJECTION_KEY]
    )
    assert [(r.index, r.field, r.code) for r in rejection.rejections] == [(1, field, code)]
    assert all(BOSS not in r.message for r in rejection.rejections)
    assert node.count("SELECT count(*) FROM organisation_listings") == before


async def test_listing_batch_is_idempotent_and_refused_to_strangers(node: Node) -> None:
    """REQ: H10, H4 — the same batch again is a replay; a certificate that is not an allowed
    source may not list organisations (SOURCE_NOT_ALLOWED)."""
    request = node_pb2.SubmitOrganisationListingsRequest(
        batch_id="listings-1",
        listings=[
            listing("l-1", LISTED, "listed", "2026-01-10"),
            listing("l-2", REMOVED, "listed", "2026-01-10"),
            listing("l-3", REMOVED, "removed", "2026-04-01"),
        ],
    )
    again = await node.credit.SubmitOrganisationListings(request)
    assert (again.accepted, again.replayed) == (3, True)
    stranger = node_pb2_grpc.SourceServiceStub(
        node.bed.peer_channel(node.node, node.bed.cert("heihe-bank"))
    )
    before = node.count("SELECT count(*) FROM organisation_listings")
    with pytest.raises(aio.AioRpcError) as info:
        await stranger.SubmitOrganisationListings(
            node_pb2.SubmitOrganisationListingsRequest(
                batch_id="stranger", listings=[listing("s-1", NEVER, "listed", "2026-01-10")]
            )
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(info.value) == "SOURCE_NOT_ALLOWED"
    assert node.count("SELECT count(*) FROM organisation_listings") == before
