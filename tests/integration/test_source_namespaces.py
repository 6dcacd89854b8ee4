"""Batch ids and record ids belong to the department that chose them.

REQ: H4 — a department's batch id is idempotent for that department only: another
department's batch with the same id neither blocks it (``BATCH_ID_REUSED``) nor is
"replayed" for it, and the answers tell one department nothing about another's
batches.  REQ: H16, N22 — repair and revocation name the caller's own record:
another department's record and no record get the same NOT_FOUND answer, and the
same record id from two departments is two records, changed one at a time.
REQ: H15, N21 — a citizen's objection names a record of their own (``source``
picks one when two departments used the id) and reaches that department only.
REQ: H2 — deregistration deletes the emptied batches of each department only.

Runs one real node (mutual TLS on loopback, its own SQLite file, a manual clock)
for the module; every refusal counts the rows it could have written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import pytest_asyncio

from node.core._clock import ManualClock
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import batch_rejection_of, field_of, reason_of
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

START = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)  # Tue 29 Sep 2026
ALICE, BOB, CAROL, DAVE, ERIN = (make_id_number(n) for n in (601, 602, 603, 604, 605))
TABLES = (
    "records",
    "subjects",
    "source_batches",
    "record_marks",
    "notifications",
    "log_entries",
    "objections",
    "current_grades",
)


def penalty(record_id: str, idn: str, source: str) -> scoring_pb2.CreditRecord:
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=idn,
        source=source,
        category="admin_penalty",
        act_id=f"act-{source}-{record_id}",
        recognised_on="2026-09-01",
        severity="serious",
    )


def honour(record_id: str, idn: str, source: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn, recognised_on="2026-06-01")
    rec.source, rec.act_id = source, f"act-{source}-{record_id}"
    return rec


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    clock: ManualClock
    court: node_pb2_grpc.SourceServiceStub
    bank: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def counts(self) -> dict[str, int]:
        return {t: int(self.query(f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}

    def statuses(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT submitted_by, record_id, status FROM records ORDER BY submitted_by, record_id"
        )

    def owner_status(self, owner: str, record_id: str) -> str:
        rows = self.query(
            "SELECT status FROM records WHERE submitted_by = ? AND record_id = ?",
            owner,
            record_id,
        )
        assert len(rows) == 1, rows
        return str(rows[0][0])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("namespaces"), now=START)
    clock = ManualClock(START)
    heihe = await bed.start_node(
        "heihe", "heihe", sources=("heihe-court", "heihe-bank"), clock=clock
    )

    def stub(identity: str) -> node_pb2_grpc.SourceServiceStub:
        return node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert(identity)))

    n = Node(bed, heihe, clock, stub("heihe-court"), stub("heihe-bank"), bed.citizen_stub(heihe))
    # the court's own records, and one id ("case-1") both departments use for Alice
    await n.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=[
                penalty("case-1", ALICE, "court"),
                penalty("court-only-1", BOB, "court"),
                penalty("case-2", CAROL, "court"),
            ],
            subjects=[resident(ALICE), resident(BOB), resident(CAROL)],
        )
    )
    await n.bank.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=[
                penalty("case-1", ALICE, "bank"),
                penalty("case-2", CAROL, "bank"),
                penalty("bank-only-1", BOB, "bank"),
            ],
        )
    )
    yield n
    await bed.close()


# ------------------------------------------------------------------ batches


async def test_two_departments_use_one_batch_id(node: Node) -> None:
    """REQ: H4 — the bank's batch "2026-11-23" is stored although the court
    used that id; each department's replay of its own batch is idempotent."""
    court = node_pb2.SubmitRecordsRequest(
        batch_id="2026-11-23", records=[honour("c-1123", DAVE, "court")], subjects=[resident(DAVE)]
    )
    bank = node_pb2.SubmitRecordsRequest(
        batch_id="2026-11-23", records=[honour("b-1123", DAVE, "bank")]
    )
    first = await node.court.SubmitRecords(court)
    second = await node.bank.SubmitRecords(bank)
    assert (first.accepted, first.replayed) == (1, False)
    assert (second.accepted, second.replayed) == (1, False)
    assert node.query(
        "SELECT submitted_by, records FROM source_batches WHERE batch_id = '2026-11-23' "
        "ORDER BY submitted_by"
    ) == [("heihe-bank", 1), ("heihe-court", 1)]
    before = node.counts()
    again = [await node.court.SubmitRecords(court), await node.bank.SubmitRecords(bank)]
    assert [(a.accepted, a.replayed) for a in again] == [(1, True), (1, True)]
    assert node.counts() == before
    changed = node_pb2.SubmitRecordsRequest(
        batch_id="2026-11-23", records=[honour("b-other", DAVE, "bank")]
    )
    err = await expect_refused(node.bank.SubmitRecords(changed))
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.ALREADY_EXISTS, "BATCH_ID_REUSED")
    assert node.counts() == before


# name, the batch the bank sends: what the bank learns must not depend on the court
FOREIGN_BATCH_IDS = [
    ("court-used-this-id", "seed-court-2"),
    ("nobody-used-this-id", "seed-nobody-2"),
]


@pytest.mark.parametrize(
    ("name", "batch_id"), FOREIGN_BATCH_IDS, ids=[c[0] for c in FOREIGN_BATCH_IDS]
)
async def test_another_departments_batch_id_tells_nothing(
    node: Node, name: str, batch_id: str
) -> None:
    """REQ: H4 — no membership oracle: the bank's answer for a batch id the court used is
    the answer for an unused one (accepted, not replayed); the court's batch is kept."""
    await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed-court-2",
            records=[honour("c-seed-2", ERIN, "court")],
            subjects=[resident(ERIN)],
        )
    )  # idempotent: every case sees the same court batch
    resp = await node.bank.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id=batch_id, records=[honour(f"b-{name}", ERIN, "bank")]
        )
    )
    assert (resp.batch_id, resp.accepted, resp.replayed) == (batch_id, 1, False)
    assert node.query(
        "SELECT records FROM source_batches WHERE submitted_by = 'heihe-court' "
        "AND batch_id = 'seed-court-2'"
    ) == [(1,)]


async def test_replaying_another_departments_batch_verbatim_is_refused(node: Node) -> None:
    """REQ: H4, H7 — the bank sending the court's batch byte for byte is not
    told "replayed"; it is refused as records under another department's name
    (``SOURCE_MISMATCH``), and nothing is written."""
    court_batch = node_pb2.SubmitRecordsRequest(
        batch_id="seed",
        records=[
            penalty("case-1", ALICE, "court"),
            penalty("court-only-1", BOB, "court"),
            penalty("case-2", CAROL, "court"),
        ],
        subjects=[resident(ALICE), resident(BOB), resident(CAROL)],
    )
    assert (await node.court.SubmitRecords(court_batch)).replayed  # it is the court's batch
    before = node.counts()
    err = await expect_refused(node.bank.SubmitRecords(court_batch))
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "BATCH_REJECTED")
    rejection = batch_rejection_of(err)
    assert rejection is not None
    assert {(r.field, r.code) for r in rejection.rejections} == {("source", "SOURCE_MISMATCH")}
    assert node.counts() == before


# ------------------------------------------------------------------ records


async def test_one_record_id_from_two_departments_is_two_records(node: Node) -> None:
    """REQ: H4, H12 — "case-1" from the court and from the bank are two records of Alice,
    both in her report; a department still cannot store one id twice (``RECORD_EXISTS``)."""
    rows = node.query(
        "SELECT submitted_by, source FROM records WHERE record_id = 'case-1' ORDER BY 1"
    )
    assert rows == [("heihe-bank", "bank"), ("heihe-court", "court")]
    report = await node.citizen.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=node.node.identity(ALICE)
    )
    assert sorted(
        (c.record_id, c.source) for c in report.result.contributions if c.record_id == "case-1"
    ) == [("case-1", "bank"), ("case-1", "court")]
    before = node.counts()
    err = await expect_refused(
        node.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="again-case-1", records=[penalty("case-1", ALICE, "court")]
            )
        )
    )
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "BATCH_REJECTED")
    rejection = batch_rejection_of(err)
    assert rejection is not None
    assert [(r.index, r.field, r.code) for r in rejection.rejections] == [
        (0, "record_id", "RECORD_EXISTS")
    ]
    assert node.counts() == before


# name, caller, record id
NOT_OWN_RECORDS = [
    ("another-departments-record", "bank", "court-only-1"),
    ("unknown-record", "bank", "nobody-has-this-1"),
    ("another-departments-record-court", "court", "bank-only-1"),
    ("unknown-record-court", "court", "nobody-has-this-2"),
]


@pytest.mark.parametrize(
    ("name", "caller", "record_id"), NOT_OWN_RECORDS, ids=[c[0] for c in NOT_OWN_RECORDS]
)
@pytest.mark.parametrize("status", ["revoked", "repaired"])
async def test_mark_record_answers_alike_for_foreign_and_unknown(
    node: Node, name: str, caller: str, record_id: str, status: str
) -> None:
    """REQ: H16, N22 — no existence oracle.  Another department's record
    and no record get one answer: NOT_FOUND ``RECORD_NOT_FOUND`` on ``record_id`` with
    the same message; nothing is marked, logged or told."""
    stub = node.court if caller == "court" else node.bank
    before, statuses = node.counts(), node.statuses()
    err = await expect_refused(
        stub.MarkRecord(
            node_pb2.MarkRecordRequest(
                record_id=record_id, status=status, repair_route="commitment"
            )
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (reason_of(err), field_of(err)) == ("RECORD_NOT_FOUND", "record_id")
    assert (
        err.details() == "RECORD_NOT_FOUND: record_id: no record with this id from this department"
    )
    assert (node.counts(), node.statuses()) == (before, statuses)


async def test_revoking_a_shared_id_changes_the_callers_record_only(node: Node) -> None:
    """REQ: H16, N22 — the court revokes its "case-2" and the bank repairs its own
    "case-2": each call changes that department's record, marks and nothing else."""
    resp = await node.court.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="case-2", status="revoked", note="issued in error")
    )
    assert resp.status == "revoked"
    assert node.owner_status("heihe-court", "case-2") == "revoked"
    assert node.owner_status("heihe-bank", "case-2") == "active"
    await node.bank.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="case-2", status="repaired", repair_route="commitment")
    )
    assert node.owner_status("heihe-bank", "case-2") == "repaired"
    assert node.query(
        "SELECT submitted_by, status FROM record_marks WHERE record_id = 'case-2' ORDER BY 1"
    ) == [("heihe-bank", "repaired"), ("heihe-court", "revoked")]


# ------------------------------------------------------------------ objections


# name, the citizen, record id, source named, status, reason, field
OBJECTION_REFUSALS = [
    ("shared-id-without-source", ALICE, "case-1", "", "INVALID_ARGUMENT", "RECORD_AMBIGUOUS",
     "source"),
    ("shared-id-unknown-source", ALICE, "case-1", "police", "NOT_FOUND", "RECORD_NOT_FOUND",
     "record_id"),
    ("another-persons-record", ALICE, "court-only-1", "", "NOT_FOUND", "RECORD_NOT_FOUND",
     "record_id"),
    ("another-persons-record-named", ALICE, "court-only-1", "court", "NOT_FOUND",
     "RECORD_NOT_FOUND", "record_id"),
    ("source-of-another-record", BOB, "court-only-1", "bank", "NOT_FOUND", "RECORD_NOT_FOUND",
     "record_id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "who", "record_id", "source", "status", "reason", "field"),
    OBJECTION_REFUSALS,
    ids=[c[0] for c in OBJECTION_REFUSALS],
)
async def test_objection_names_one_record_of_the_citizen(
    node: Node,
    name: str,
    who: str,
    record_id: str,
    source: str,
    status: str,
    reason: str,
    field: str,
) -> None:
    """REQ: H15, N21 — an objection names the citizen's own record; when two departments
    used the id, ``source`` must say which (``RECORD_AMBIGUOUS``); nothing is filed."""
    before = node.counts()
    err = await expect_refused(
        node.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id=record_id, source=source),
            metadata=node.node.identity(who),
        )
    )
    assert (err.code().name, reason_of(err), field_of(err)) == (status, reason, field)
    assert node.counts() == before


async def test_objection_on_a_shared_id_reaches_the_named_department_only(node: Node) -> None:
    """REQ: H15, H16, N21 — Alice objects to the bank's "case-1": the objection goes to the
    bank only; the bank's correction revokes its record and leaves the court's alone.
    The court's "case-1" can be objected to at the same time (another record)."""
    by_bank = await node.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="case-1", source="bank", reason="not mine"),
        metadata=node.node.identity(ALICE),
    )
    by_court = await node.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="case-1", source="heihe-court"),
        metadata=node.node.identity(ALICE),
    )
    assert (by_bank.source, by_court.source) == ("heihe-bank", "heihe-court")
    err = await expect_refused(
        node.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="case-1", source="bank"),
            metadata=node.node.identity(ALICE),
        )
    )
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.ALREADY_EXISTS, "OBJECTION_OPEN")
    node.clock.set(datetime(2026, 9, 30, 2, 0, tzinfo=UTC))
    await node.node.server.scheduler.run_once()  # forwards both
    bank_queue = await node.bank.ListObjections(node_pb2.ListObjectionsRequest())
    court_queue = await node.court.ListObjections(node_pb2.ListObjectionsRequest())
    assert [o.objection_id for o in bank_queue.objections] == [by_bank.objection_id]
    assert by_bank.objection_id not in [o.objection_id for o in court_queue.objections]
    await node.bank.AnswerObjection(
        node_pb2.AnswerObjectionRequest(objection_id=by_bank.objection_id, outcome="corrected")
    )
    assert node.owner_status("heihe-bank", "case-1") == "revoked"
    assert node.owner_status("heihe-court", "case-1") == "active"
    assert node.query(
        "SELECT submitted_by, marked_by FROM record_marks WHERE record_id = 'case-1'"
    ) == [("heihe-bank", "objection")]


# ------------------------------------------------------------------ deregistration


async def test_deregistration_deletes_each_departments_emptied_batch(node: Node) -> None:
    """REQ: H2 — the court's and the bank's batch "dr-shared" share an id: the court's
    holds only Dave's record and goes with it, the bank's holds Bob's and stays; the
    bank's batch of Dave's record alone goes too."""
    await node.bank.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="dr-shared", records=[honour("dr-b", BOB, "bank")])
    )
    await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="dr-shared", records=[honour("dr-c", DAVE, "court")])
    )
    await node.bank.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="dr-bank", records=[honour("dr-d", DAVE, "bank")])
    )
    await node.citizen.Deregister(
        node_pb2.DeregisterRequest(confirm=True), metadata=node.node.identity(DAVE)
    )
    batches = set(node.query("SELECT submitted_by, batch_id FROM source_batches"))
    assert ("heihe-court", "dr-shared") not in batches
    assert ("heihe-bank", "dr-shared") in batches
    assert ("heihe-bank", "dr-bank") not in batches
    assert node.query(
        "SELECT submitted_by, record_id FROM records WHERE record_id LIKE 'dr-%'"
    ) == [("heihe-bank", "dr-b")]
