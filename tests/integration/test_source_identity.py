"""A department speaks only for itself, and free text never carries an ID number in.

REQ: H7, N4 — a record's ``source`` is bound to the caller's
certificate identity (``SOURCE_MISMATCH``), a department records collection
consents given to itself only (``COLLECTOR_MISMATCH``), and a market record
counts only a consent its submitter recorded (``COLLECTION_CONSENT_MISSING``).
REQ: N8 — a market provider answers for its records, so they must carry its
own name.  Privacy — every caller-chosen string SourceService
stores or logs is refused with ``ID_NUMBER_IN_FIELD`` when it holds a valid ID
number, the refusal never echoes it, and the transparency log holds a digest,
never a source's record id.

Runs one real node (mutual TLS on loopback, its own SQLite file) for the
module; every refusal counts the rows it could have written before and after.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import batch_rejection_of, field_of, reason_of
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, BOB, CAROL, DAVE, ERIN = (make_id_number(n) for n in (401, 402, 403, 404, 405))
LEAK = make_id_number(777)  # typed into free text; must never reach the database
TABLES = (
    "records",
    "subjects",
    "residences",
    "source_batches",
    "collection_consents",
    "record_marks",
    "notifications",
    "log_entries",
    "objections",
)


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    court: node_pb2_grpc.SourceServiceStub
    bank: node_pb2_grpc.SourceServiceStub
    power: node_pb2_grpc.SourceServiceStub
    operator: node_pb2_grpc.SourceServiceStub

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        return {t: int(self.query(f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}

    def db_bytes(self) -> bytes:
        db = self.node.server.ctx.config.database
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))

    def stub(self, name: str) -> node_pb2_grpc.SourceServiceStub:
        return {"court": self.court, "bank": self.bank, "power": self.power}[name]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("identity"))
    heihe = await bed.start_node(
        "heihe", "heihe", sources=("heihe-court", "heihe-bank", "heihe-power")
    )

    def stub(identity: str) -> node_pb2_grpc.SourceServiceStub:
        return node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert(identity)))

    n = Node(
        bed, heihe, stub("heihe-court"), stub("heihe-bank"), stub("heihe-power"), stub("heihe")
    )
    await n.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=[honour_record(f"seed-{i}", p) for i, p in enumerate((ALICE, BOB))],
            subjects=[resident(ALICE), resident(BOB)],
        )
    )
    yield n
    await bed.close()


def _rejections_of(err: aio.AioRpcError) -> list[node_pb2.RecordRejection]:
    rejection = batch_rejection_of(err)
    assert rejection is not None
    return list(rejection.rejections)


def _market(
    record_id: str, idn: str, source: str, category: str = "loan_default"
) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.category, rec.level, rec.provenance, rec.source = category, "", "market", source
    return rec


def _consent(idn: str, collector: str, **kw: Any) -> node_pb2.CollectionConsent:
    fields: dict[str, Any] = {
        "subject_id": idn,
        "collector": collector,
        "stated_use": "credit score",
        "adverse_consequences_acknowledged": True,
        "document_sha256": hashlib.sha256(collector.encode() + idn.encode()).digest(),
        "signed_on": "2026-01-05",
    } | kw
    return node_pb2.CollectionConsent(**fields)


# ------------------------------------------------------------------ H1: record source


# name, caller, the source the caller writes on its record
FOREIGN_SOURCES = [
    ("bank-as-court-short", "bank", "court"),
    ("bank-as-court-full", "bank", "heihe-court"),
    ("court-as-police", "court", "police"),
    ("court-dotted-form-not-its-identity", "court", "heihe.court"),
    ("court-as-power-for-market", "court", "heihe-power"),
    ("court-as-the-operator", "court", "heihe"),
]


@pytest.mark.parametrize(
    ("name", "caller", "source"), FOREIGN_SOURCES, ids=[c[0] for c in FOREIGN_SOURCES]
)
async def test_record_source_must_be_the_caller(
    node: Node, name: str, caller: str, source: str
) -> None:
    """REQ: H7, N4, N8 — a record filed under another department's name rejects the
    whole batch (``SOURCE_MISMATCH`` on field ``source``) and writes nothing."""
    good = honour_record(f"ok-{name}", CAROL)
    good.source = caller
    bad = honour_record(f"bad-{name}", CAROL)
    bad.source = source
    before = node.counts()
    err = await expect_refused(
        node.stub(caller).SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id=f"src-{name}", records=[good, bad], subjects=[resident(CAROL)]
            )
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err) == "BATCH_REJECTED"
    assert [(r.index, r.field, r.code) for r in _rejections_of(err)] == [
        (1, "source", "SOURCE_MISMATCH")
    ]
    assert node.counts() == before


@pytest.mark.parametrize("source", ["court", "heihe-court"], ids=["short", "full"])
async def test_own_name_short_or_full_is_accepted(node: Node, source: str) -> None:
    """REQ: H7, N4 — the certificate identity, or it without the region prefix."""
    rec = honour_record(f"own-{source}", ALICE)
    rec.source = source
    resp = await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id=f"own-{source}", records=[rec])
    )
    assert resp.accepted == 1
    rows = node.query("SELECT source FROM records WHERE record_id = ?", f"own-{source}")
    assert rows == [(source,)]


# ------------------------------------------------------------------ H1: collection consents


# name, the collector the court (heihe-court) names
FOREIGN_COLLECTORS = [
    ("another-department", "heihe-power"),
    ("another-department-short", "power"),
    ("dotted-form", "heihe.power"),
    ("the-bank", "heihe-bank"),
    ("unknown-department", "heihe-police"),
]


@pytest.mark.parametrize(
    ("name", "collector"), FOREIGN_COLLECTORS, ids=[c[0] for c in FOREIGN_COLLECTORS]
)
async def test_collection_consent_only_for_itself(node: Node, name: str, collector: str) -> None:
    """REQ: H7, N4 — a department records written consents given to itself only:
    PERMISSION_DENIED ``COLLECTOR_MISMATCH`` on field ``collector``; no consent, and
    no subject row for a person the node did not know, is written."""
    before = node.counts()
    err = await expect_refused(node.court.RecordCollectionConsent(_consent(DAVE, collector)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (reason_of(err), field_of(err)) == ("COLLECTOR_MISMATCH", "collector")
    assert node.counts() == before


async def test_market_record_cannot_use_another_departments_consent(node: Node) -> None:
    """REQ: H7, N4, N8 — Bob consented to collection by the power company
    only.  The bank's own market record is refused (``COLLECTION_CONSENT_MISSING``), the
    same record under the power company's name is refused (``SOURCE_MISMATCH``), and
    nothing is written; the power company's own record is accepted."""
    await node.power.RecordCollectionConsent(_consent(BOB, "heihe-power"))
    own_court_consent = await node.court.RecordCollectionConsent(_consent(BOB, "court"))
    assert own_court_consent.consent_ref
    cases = [
        ("bank-own-name", "heihe-bank", "COLLECTION_CONSENT_MISSING", "provenance"),
        ("bank-short-name", "bank", "COLLECTION_CONSENT_MISSING", "provenance"),
        ("bank-as-power", "heihe-power", "SOURCE_MISMATCH", "source"),
        ("bank-as-power-short", "power", "SOURCE_MISMATCH", "source"),
        ("bank-as-court", "court", "SOURCE_MISMATCH", "source"),
    ]
    for name, source, code, field in cases:
        before = node.counts()
        err = await expect_refused(
            node.bank.SubmitRecords(
                node_pb2.SubmitRecordsRequest(
                    batch_id=f"m-{name}", records=[_market(f"m-{name}", BOB, source)]
                )
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert [(r.index, r.field, r.code) for r in _rejections_of(err)] == [(0, field, code)], name
        assert node.counts() == before, name
    resp = await node.power.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="m-power-own", records=[_market("m-power-own", BOB, "heihe-power")]
        )
    )
    assert resp.accepted == 1


# ------------------------------------------------------------------ H3: free text


def _batch(**record: Any) -> Callable[[Node], Awaitable[Any]]:
    """A batch whose second record has ``record`` fields set (flags: a list)."""

    def call(n: Node) -> Awaitable[Any]:
        bad = honour_record("ft-bad", CAROL)
        for name, value in record.items():
            if name == "flags":
                bad.flags.extend(value)
            else:
                setattr(bad, name, value)
        return n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="ft-batch",
                records=[honour_record("ft-good", CAROL), bad],
                subjects=[resident(CAROL)],
            )
        )

    return call


# name, the call, the field named, per-record (True: BATCH_REJECTED with a rejection)
FREE_TEXT_FIELDS: list[tuple[str, Callable[[Node], Awaitable[Any]], str, bool]] = [
    ("record-id", _batch(record_id=f"{LEAK}-2025-001"), "record_id", True),
    ("act-id", _batch(act_id=f"act-{LEAK}"), "act_id", True),
    (
        "legal-document-text",
        _batch(legal_document_text=f"judgment re {LEAK}"),
        "legal_document_text",
        True,
    ),
    ("flags", _batch(flags=["ok", f"id:{LEAK.lower()}"]), "flags", True),
    (
        "batch-id",
        lambda n: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id=f"batch-{LEAK}", records=[honour_record("ft-b", CAROL)]
            )
        ),
        "batch_id",
        False,
    ),
    (
        "residence-kind",
        lambda n: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="ft-residence",
                records=[honour_record("ft-r", CAROL)],
                subjects=[
                    node_pb2.SubjectInfo(
                        subject_id=CAROL,
                        residence=[
                            node_pb2.ResidenceBasis(kind=f"hukou {LEAK}", since="2000-01-01")
                        ],
                    )
                ],
            )
        ),
        "subjects[0].residence.kind",
        False,
    ),
    (
        "consent-stated-use",
        lambda n: n.court.RecordCollectionConsent(
            _consent(ERIN, "heihe-court", stated_use=f"score of {LEAK}")
        ),
        "stated_use",
        False,
    ),
    (
        "consent-collector",
        lambda n: n.court.RecordCollectionConsent(_consent(ERIN, f"court-{LEAK}")),
        "collector",
        False,
    ),
    (
        "mark-note",
        lambda n: n.court.MarkRecord(
            node_pb2.MarkRecordRequest(record_id="seed-0", status="revoked", note=f"per {LEAK}")
        ),
        "note",
        False,
    ),
    (
        "objection-answer-note",
        lambda n: n.court.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o-1", outcome="upheld", note=LEAK)
        ),
        "note",
        False,
    ),
    (
        "objection-resolution-note",
        lambda n: n.operator.ResolveObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o-1", outcome="upheld", note=LEAK)
        ),
        "note",
        False,
    ),
    (
        "supplement-reason",
        lambda n: n.court.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id="s-1", accept=False, reason=LEAK)
        ),
        "reason",
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "field", "per_record"),
    FREE_TEXT_FIELDS,
    ids=[c[0] for c in FREE_TEXT_FIELDS],
)
async def test_id_number_in_free_text_is_refused(
    node: Node,
    name: str,
    call: Callable[[Node], Awaitable[Any]],
    field: str,
    per_record: bool,
) -> None:
    """REQ: H7 privacy, N4 — INVALID_ARGUMENT ``ID_NUMBER_IN_FIELD`` naming
    the field (in a batch: a per-record reason, the whole batch refused); the refusal
    never echoes the number, and nothing is written anywhere."""
    before = node.counts()
    err = await expect_refused(call(node))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailer = b"".join(
        v if isinstance(v, bytes) else v.encode() for _, v in err.trailing_metadata() or ()
    )
    assert LEAK.encode() not in trailer and LEAK not in (err.details() or "")
    if per_record:
        assert reason_of(err) == "BATCH_REJECTED"
        rejections = _rejections_of(err)
        assert [(r.index, r.field, r.code) for r in rejections] == [
            (1, field, "ID_NUMBER_IN_FIELD")
        ]
    else:
        assert (reason_of(err), field_of(err)) == ("ID_NUMBER_IN_FIELD", field)
    assert node.counts() == before
    assert LEAK.encode() not in node.db_bytes()


async def test_revocation_logs_a_digest_of_the_record_id(node: Node) -> None:
    """REQ: H16 privacy — the append-only log never holds a source-chosen
    string: a revocation leaf carries sha256(record_id)[:16], not the record id."""
    rid = "court-ref-2026-000123"
    await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="rv-1", records=[honour_record(rid, ALICE)])
    )
    await node.court.MarkRecord(
        node_pb2.MarkRecordRequest(record_id=rid, status="revoked", note="issued in error")
    )
    leaves = [bytes(r[0]) for r in node.query("SELECT leaf FROM log_entries")]
    digest = hashlib.sha256(rid.encode()).hexdigest()[:16].encode()
    assert any(digest in leaf for leaf in leaves)
    assert not any(rid.encode() in leaf for leaf in leaves)
    assert node.query("SELECT status FROM records WHERE record_id = ?", rid) == [("revoked",)]


# ------------------------------------------------------------------ H3: deregistration


async def test_deregistration_deletes_emptied_batches_only(node: Node) -> None:
    """REQ: H2 privacy — a batch left without records by a deregistration
    is deleted with the person's data; one still holding another person's record stays
    (it owns that record and keeps replays idempotent).  Replaying the deleted batch is
    new work, refused while the tombstone stands."""
    solo = node_pb2.SubmitRecordsRequest(
        batch_id="dr-solo", records=[honour_record("dr-1", DAVE)], subjects=[resident(DAVE)]
    )
    mixed = node_pb2.SubmitRecordsRequest(
        batch_id="dr-mixed",
        records=[honour_record("dr-2", DAVE), honour_record("dr-3", ERIN)],
        subjects=[resident(DAVE), resident(ERIN)],
    )
    await node.court.SubmitRecords(solo)
    await node.court.SubmitRecords(mixed)
    citizen = node.bed.citizen_stub(node.node)
    resp = await citizen.Deregister(
        node_pb2.DeregisterRequest(confirm=True), metadata=node.node.identity(DAVE)
    )
    assert resp.records_deleted == 2
    batches = {r[0] for r in node.query("SELECT batch_id FROM source_batches")}
    assert "dr-solo" not in batches and "dr-mixed" in batches
    again = await node.court.SubmitRecords(mixed)
    assert again.replayed and again.accepted == 2
    err = await expect_refused(node.court.SubmitRecords(solo))
    assert [r.code for r in _rejections_of(err)] == ["SUBJECT_DEREGISTERED"]
    assert "dr-solo" not in {r[0] for r in node.query("SELECT batch_id FROM source_batches")}
