"""Everything a caller chooses is bounded; a violation names the field and writes nothing.

REQ: H7 (minimal collection following a published catalogue), H17 (security) —
issue 14 item 7: flags beyond the catalogue, a flag holding ``,``, 30,000 residences
per person, a 3 MB ``stated_use`` and every other over-long string or over-full list
are refused with INVALID_ARGUMENT and a stable reason naming the field (in a record
batch: BATCH_REJECTED with the per-record reason), and nothing is stored.
A field far over its bound (4 MB) is refused as too long without being
scanned for ID numbers.  Residences are bounded per person as STORED,
across batches.
Issue 14 item 13: an integer a caller sends outside its range (``after_id = 2**63``,
``from_seq = 2**64 - 1``, …) is INVALID_ARGUMENT ``INVALID_FIELD`` naming the field,
never INTERNAL.  The bounds are listed in docs/bounds.md and node.proto.

One real region node (and, for ``HubService``, one real hub) on loopback with real TLS
and SQLite files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from node.core._clock import ManualClock
from node.core._config import load_config
from node.demo._federation import init_federation
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import hub_pb2, hub_pb2_grpc, node_pb2, node_pb2_grpc
from node.rpc._client import batch_rejection_of, field_of, peer_channel, reason_of
from node.rpc._server import NodeServer
from tests.support.bad_inputs import CITIZEN_BAD_INPUTS, BadInput, grpc_request
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = make_id_number(701)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
TABLES = (
    "records",
    "subjects",
    "residences",
    "source_batches",
    "collection_consents",
    "record_marks",
    "consents",
    "notifications",
    "log_entries",
    "objections",
    "supplements",
)
S = grpc.StatusCode


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    court: node_pb2_grpc.SourceServiceStub
    operator: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub

    def counts(self) -> dict[str, int]:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

    def me(self) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(ALICE)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("bounds"))
    heihe = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))

    def stub(identity: str) -> node_pb2_grpc.SourceServiceStub:
        return node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert(identity)))

    n = Node(bed, heihe, stub("heihe-court"), stub("heihe"), bed.citizen_stub(heihe))
    await n.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=[honour_record("seed-0", ALICE)], subjects=[resident(ALICE)]
        )
    )
    yield n
    await bed.close()


# ------------------------------------------------------------------ item 7: sizes


def _batch(*, flags: list[str] | None = None, **fields: str) -> node_pb2.SubmitRecordsRequest:
    """A batch whose second record has ``fields`` set and carries ``flags``."""
    bad = honour_record("b-bad", ALICE)
    for name, value in fields.items():
        setattr(bad, name, value)
    bad.flags.extend(flags or [])
    return node_pb2.SubmitRecordsRequest(
        batch_id="b-batch", records=[honour_record("b-good", ALICE), bad]
    )


def _residences(n: int, kind: str = "hukou") -> node_pb2.SubmitRecordsRequest:
    return node_pb2.SubmitRecordsRequest(
        batch_id="b-residences",
        records=[honour_record("b-r", ALICE)],
        subjects=[
            node_pb2.SubjectInfo(
                subject_id=ALICE,
                residence=[node_pb2.ResidenceBasis(kind=kind, since="2000-01-01")] * n,
            )
        ],
    )


def _consent(**fields: Any) -> node_pb2.CollectionConsent:
    msg = node_pb2.CollectionConsent(
        subject_id=ALICE,
        collector="heihe-court",
        stated_use="credit scoring",
        adverse_consequences_acknowledged=True,
        document_sha256=b"\x01" * 32,
        signed_on="2025-01-01",
    )
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _upload(**fields: Any) -> node_pb2.UploadSupplementRequest:
    msg = node_pb2.UploadSupplementRequest(
        category="honour",
        act_id="a-1",
        recognised_on="2025-01-01",
        verifier="heihe-court",
        proof_sha256=b"\x01" * 32,
        authorise_verification=True,
    )
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


Call = Callable[[Node], Awaitable[Any]]
FLAGS = ["simple_procedure", "minor_corrected_promptly"]
#: ~4 MB (under the 4 MiB message limit) of ID numbers: scanning it cost seconds
_HUGE = ("2024" + make_id_number(6)) * (3_900_000 // 22)

# name, call, field, reason; a per-record field is written "record:<field>" (the batch is
# BATCH_REJECTED and record 1 carries the reason)
SIZE_CASES: list[tuple[str, Call, str, str]] = [
    (
        "flags-100000",
        lambda n: n.court.SubmitRecords(_batch(flags=["simple_procedure"] * 100_000)),
        "record:flags",
        "TOO_MANY_ITEMS",
    ),
    (
        "flags-more-than-the-catalogue",
        lambda n: n.court.SubmitRecords(_batch(flags=[*FLAGS, FLAGS[0]])),
        "record:flags",
        "TOO_MANY_ITEMS",
    ),
    (
        "flag-with-comma",
        lambda n: n.court.SubmitRecords(_batch(flags=[",".join(FLAGS)])),
        "record:flags",
        "UNKNOWN_FLAG",
    ),
    (
        "flag-not-in-catalogue",
        lambda n: n.court.SubmitRecords(_batch(flags=["vip"])),
        "record:flags",
        "UNKNOWN_FLAG",
    ),
    (
        "record-text-257",
        lambda n: n.court.SubmitRecords(_batch(severity="d" * 257)),
        "record:severity",
        "INVALID_FIELD",
    ),
    # a field as large as the message is refused as too long, not scanned
    # for ID numbers first (it holds some: the length reason must win)
    (
        "record-act-id-4mb-of-id-numbers",
        lambda n: n.court.SubmitRecords(_batch(act_id=_HUGE)),
        "record:act_id",
        "INVALID_FIELD",
    ),
    (
        "record-id-4mb-of-id-numbers",
        lambda n: n.court.SubmitRecords(_batch(record_id=_HUGE)),
        "record:record_id",
        "INVALID_FIELD",
    ),
    (
        "flag-4mb-of-id-numbers",
        lambda n: n.court.SubmitRecords(_batch(flags=[_HUGE])),
        "record:flags",
        "UNKNOWN_FLAG",
    ),
    (
        "batch-id-129",
        lambda n: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(batch_id="b" * 129, records=[honour_record("x", ALICE)])
        ),
        "batch_id",
        "INVALID_FIELD",
    ),
    (
        "batch-id-empty",
        lambda n: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(records=[honour_record("x", ALICE)])
        ),
        "batch_id",
        "MISSING_FIELD",
    ),
    (
        "residences-30000",
        lambda n: n.court.SubmitRecords(_residences(30_000)),
        "subjects[0].residence",
        "TOO_MANY_ITEMS",
    ),
    (
        "residences-17",
        lambda n: n.court.SubmitRecords(_residences(17)),
        "subjects[0].residence",
        "TOO_MANY_ITEMS",
    ),
    (
        "residence-kind-65",
        lambda n: n.court.SubmitRecords(_residences(1, kind="k" * 65)),
        "subjects[0].residence.kind",
        "INVALID_FIELD",
    ),
    (
        "subjects-10001",
        lambda n: n.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="b-subjects",
                records=[honour_record("b-s", ALICE)],
                subjects=[node_pb2.SubjectInfo(subject_id=ALICE)] * 10_001,
            )
        ),
        "subjects",
        "TOO_MANY_ITEMS",
    ),
    (
        "stated-use-3mb",
        lambda n: n.court.RecordCollectionConsent(_consent(stated_use="u" * 3_000_000)),
        "stated_use",
        "INVALID_FIELD",
    ),
    (
        "stated-use-513",
        lambda n: n.court.RecordCollectionConsent(_consent(stated_use="u" * 513)),
        "stated_use",
        "INVALID_FIELD",
    ),
    (
        "stated-use-empty",
        lambda n: n.court.RecordCollectionConsent(_consent(stated_use="")),
        "stated_use",
        "MISSING_FIELD",
    ),
    (
        "collector-64",
        lambda n: n.court.RecordCollectionConsent(_consent(collector="c" * 64)),
        "collector",
        "INVALID_FIELD",
    ),
    (
        "mark-note-513",
        lambda n: n.court.MarkRecord(
            node_pb2.MarkRecordRequest(record_id="seed-0", status="revoked", note="n" * 513)
        ),
        "note",
        "INVALID_FIELD",
    ),
    (
        "mark-record-id-257",
        lambda n: n.court.MarkRecord(
            node_pb2.MarkRecordRequest(record_id="r" * 257, status="revoked")
        ),
        "record_id",
        "INVALID_FIELD",
    ),
    (
        "answer-note-513",
        lambda n: n.court.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o-1", outcome="upheld", note="n" * 513)
        ),
        "note",
        "INVALID_FIELD",
    ),
    (
        "answer-objection-id-65",
        lambda n: n.court.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o" * 65, outcome="upheld")
        ),
        "objection_id",
        "INVALID_FIELD",
    ),
    (
        "resolve-note-513",
        lambda n: n.operator.ResolveObjection(
            node_pb2.AnswerObjectionRequest(objection_id="o-1", outcome="upheld", note="n" * 513)
        ),
        "note",
        "INVALID_FIELD",
    ),
    (
        "verify-reason-513",
        lambda n: n.court.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id="s-1", reason="r" * 513)
        ),
        "reason",
        "INVALID_FIELD",
    ),
    (
        "verify-supplement-id-65",
        lambda n: n.court.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id="s" * 65, accept=True)
        ),
        "supplement_id",
        "INVALID_FIELD",
    ),
]


def _citizen_call(case: BadInput) -> Call:
    return lambda n: getattr(n.citizen, case.operation)(grpc_request(case), metadata=n.me())


# the citizen's bad inputs: the table the HTTP test sends as JSON (tests/support/bad_inputs.py)
SIZE_CASES += [(c.name, _citizen_call(c), c.field, c.reason) for c in CITIZEN_BAD_INPUTS]


@pytest.mark.parametrize(
    ("name", "call", "field", "reason"), SIZE_CASES, ids=[c[0] for c in SIZE_CASES]
)
async def test_an_oversized_or_unknown_input_is_refused_naming_the_field(
    node: Node, name: str, call: Call, field: str, reason: str
) -> None:
    """Issue 14 item 7 (H7, H17): INVALID_ARGUMENT with a stable reason naming the field;
    nothing stored."""
    before = node.counts()
    err = await expect_refused(call(node))
    assert err.code() == S.INVALID_ARGUMENT, err.details()
    if field.startswith("record:"):
        assert reason_of(err) == "BATCH_REJECTED"
        rejection = batch_rejection_of(err)
        assert rejection is not None
        assert [(r.index, r.field, r.code) for r in rejection.rejections] == [
            (1, field.removeprefix("record:"), reason)
        ]
    else:
        assert (reason_of(err), field_of(err)) == (reason, field)
    assert node.counts() == before


BOB = make_id_number(702)


def _bob_residences(batch: str, first_day: int, n: int) -> node_pb2.SubmitRecordsRequest:
    """A batch about BOB with ``n`` residences of distinct dates from 2001-01-01 + day."""
    since = [date(2001, 1, 1) + timedelta(days=first_day + k) for k in range(n)]
    return node_pb2.SubmitRecordsRequest(
        batch_id=batch,
        records=[honour_record(f"{batch}-r", BOB)],
        subjects=[
            node_pb2.SubjectInfo(
                subject_id=BOB,
                residence=[
                    node_pb2.ResidenceBasis(kind="hukou", since=d.isoformat()) for d in since
                ],
            )
        ],
    )


async def test_residences_are_bounded_per_person_across_batches(node: Node) -> None:
    """Issue 14 item 7: 16 residences per batch accumulated without limit
    (20 batches stored 320 for one person).  The bound holds for the person's STORED
    current residences: the batch that would exceed it is refused INVALID_ARGUMENT
    ``TOO_MANY_ITEMS`` naming ``subjects[0].residence`` (with the batch-rejection
    trailer) and nothing of it is stored; re-sending stored residences adds nothing and
    is accepted."""
    db = node.node.server.ctx.config.database

    def bobs() -> int:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            key = node.node.server.ctx.records.key_of(BOB)
            return int(
                conn.execute(
                    "SELECT count(*) FROM residences WHERE subject_key = ?", (key,)
                ).fetchone()[0]
            )

    assert (await node.court.SubmitRecords(_bob_residences("bob-0", 0, 16))).accepted == 1
    assert bobs() == 16
    before = node.counts()
    for name, request in (
        ("one-more", _bob_residences("bob-1", 16, 1)),
        ("sixteen-more", _bob_residences("bob-2", 100, 16)),
    ):
        err = await expect_refused(node.court.SubmitRecords(request))
        assert err.code() == S.INVALID_ARGUMENT, (name, err.details())
        assert (reason_of(err), field_of(err)) == ("TOO_MANY_ITEMS", "subjects[0].residence")
        rejection = batch_rejection_of(err)
        assert rejection is not None
        assert [(r.field, r.code) for r in rejection.rejections] == [
            ("subjects[0].residence", "TOO_MANY_ITEMS")
        ]
        assert node.counts() == before, name
        assert bobs() == 16
    # the same 16 again (another batch, another record): nothing new, accepted
    assert (await node.court.SubmitRecords(_bob_residences("bob-3", 0, 16))).accepted == 1
    assert bobs() == 16


async def test_catalogue_flags_within_the_bound_are_stored_and_read_back(node: Node) -> None:
    """Issue 14 item 7: both catalogue flags are accepted and read back as two flags."""
    resp = await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="flags-ok", records=[_batch(flags=FLAGS).records[1]])
    )
    assert resp.accepted == 1
    db = node.node.server.ctx.config.database
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (stored,) = conn.execute("SELECT flags FROM records WHERE record_id = 'b-bad'").fetchone()
    assert sorted(stored.split(",")) == sorted(FLAGS)


# ------------------------------------------------------------------ item 13: integers
# The citizen's integers out of range (``after_id = 2**63``, ``page_size = 2**32 - 1``,
# ``valid_days = 2**32 - 1`` ...) are rows of the shared table above.


async def test_the_largest_valid_integers_are_answered(node: Node) -> None:
    """Issue 14 item 13: 2**63 - 1 is in range: an empty answer, not an error."""
    notes = await node.citizen.ListNotifications(
        node_pb2.ListNotificationsRequest(after_id=INT64_MAX), metadata=node.me()
    )
    assert list(notes.notifications) == []


# ------------------------------------------------------------------ item 13: the hub


@dataclass
class Hub:
    server: NodeServer
    stub: hub_pb2_grpc.HubServiceStub


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """The hub of a one-region federation, served in-process; called as the region."""
    now = datetime.now(UTC)
    root: Path = tmp_path_factory.mktemp("bounds-hub")
    layout = init_federation(root / "fed", ["heihe"], "heilongjiang", now)
    server = await NodeServer.create(
        load_config(layout.nodes["heilongjiang"].config), clock=ManualClock(now)
    )
    await server.start()
    assert server.ports is not None
    tls = layout.nodes["heihe"].directory / "tls"
    channel = peer_channel(
        f"127.0.0.1:{server.ports.peer}",
        (root / "fed" / "ca" / "ca.pem").read_bytes(),
        (tls / "node.pem").read_bytes(),
        (tls / "node.key").read_bytes(),
    )
    yield Hub(server, hub_pb2_grpc.HubServiceStub(channel))
    await channel.close(None)
    await server.stop(1.0)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(hub_pb2.GetReceiptsRequest(from_seq=UINT64_MAX), "from_seq", id="from-seq-2^64-1"),
        pytest.param(hub_pb2.GetReceiptsRequest(from_seq=INT64_MAX + 1), "from_seq", id="from-seq-2^63"),
        pytest.param(hub_pb2.GetReceiptsRequest(limit=1001), "limit", id="limit-1001"),
        pytest.param(hub_pb2.GetReceiptsRequest(limit=UINT32_MAX), "limit", id="limit-2^32-1"),
    ],
)  # fmt: skip
async def test_get_receipts_refuses_an_integer_out_of_range(
    hub: Hub, request_: hub_pb2.GetReceiptsRequest, field: str
) -> None:
    """Issue 14 item 13: ``GetReceipts(from_seq=2**64-1)`` and other out-of-range integers are
    INVALID_ARGUMENT ``INVALID_FIELD`` naming the field."""
    err = await expect_refused(hub.stub.GetReceipts(request_))
    assert (err.code(), reason_of(err), field_of(err)) == (
        S.INVALID_ARGUMENT,
        "INVALID_FIELD",
        field,
    ), err.details()


async def test_get_receipts_answers_the_largest_valid_seq(hub: Hub) -> None:
    resp = await hub.stub.GetReceipts(hub_pb2.GetReceiptsRequest(from_seq=INT64_MAX, limit=1000))
    assert list(resp.receipts) == []
