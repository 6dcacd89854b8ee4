"""Record intake refuses bad input with the exact reason and writes nothing.

REQ: H4, H7, N6, N7 — a source's batch is validated by ``scoring`` at the
node's SourceService; one bad record rejects the whole batch, the rejection
names the record (index) and the reason code, and neither the record, the
good records next to it, nor their subjects reach the database.

Runs one real node (mutual TLS on loopback, its own SQLite file) for the
module; every case reads the database file directly afterwards.
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

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = make_id_number(301)
OTHER = make_id_number(302)


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    source: node_pb2_grpc.SourceServiceStub

    def count(self, sql: str, *params: object) -> int:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row[0])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("intake"))
    heihe = await bed.start_node("heihe", "heihe", sources=("heihe-court",))
    stub = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    yield Node(bed, heihe, stub)
    await bed.close()


def _with(**changes: str) -> scoring_pb2.CreditRecord:
    rec = honour_record("bad-1", OTHER)
    for name, value in changes.items():
        setattr(rec, name, value)
    return rec


# name, the bad record, the exact reason code expected for it
BAD_RECORDS = [
    ("id-too-short", _with(subject_id=OTHER[:17]), "INVALID_ID_NUMBER"),
    ("id-wrong-check-digit", _with(subject_id=OTHER[:17] + ("0" if OTHER[17] != "0" else "1")),
     "INVALID_ID_NUMBER"),
    ("id-impossible-birth-date", _with(subject_id=make_id_number(3, born="19851345")),
     "INVALID_ID_NUMBER"),
    ("unknown-category", _with(category="lottery_win"), "UNKNOWN_CATEGORY"),
    ("forbidden-religion", _with(category="religion"), "FORBIDDEN_CATEGORY"),
    ("forbidden-biometrics", _with(category="biometrics"), "FORBIDDEN_CATEGORY"),
    ("recognised-in-future", _with(recognised_on="2999-01-01"), "FUTURE_RECOGNITION"),
    ("recognised-not-a-date", _with(recognised_on="2025-13-40"), "INVALID_FIELD"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "record", "code"), BAD_RECORDS, ids=[case[0] for case in BAD_RECORDS]
)
async def test_bad_record_is_named_and_nothing_is_written(
    node: Node, name: str, record: scoring_pb2.CreditRecord, code: str
) -> None:
    """REQ: H4, H7 — exact reason per bad record; the whole batch, subjects included, is lost."""
    batch = f"bad-{name}"
    good = honour_record(f"good-{name}", GOOD)
    request = node_pb2.SubmitRecordsRequest(
        batch_id=batch, records=[good, record], subjects=[resident(GOOD), resident(OTHER)]
    )
    subjects_before = node.count("SELECT count(*) FROM subjects")
    with pytest.raises(aio.AioRpcError) as info:
        await node.source.SubmitRecords(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "BATCH_REJECTED"
    detail = dict(info.value.trailing_metadata())["huxin-batch-rejection-bin"]
    rejection = node_pb2.BatchRejection.FromString(detail)
    assert [(r.index, r.code) for r in rejection.rejections] == [(1, code)]
    assert all(OTHER not in r.message for r in rejection.rejections)  # no ID echoed back
    assert node.count("SELECT count(*) FROM records WHERE batch_id = ?", batch) == 0
    assert node.count("SELECT count(*) FROM subjects") == subjects_before


async def test_good_batch_after_refusals_is_stored_once(node: Node) -> None:
    """REQ: H4 — the same batch, corrected, is accepted; resubmitting it is idempotent."""
    request = node_pb2.SubmitRecordsRequest(
        batch_id="good-1",
        records=[honour_record("ok-1", GOOD), honour_record("ok-2", OTHER)],
        subjects=[resident(GOOD), resident(OTHER)],
    )
    first = await node.source.SubmitRecords(request)
    again = await node.source.SubmitRecords(request)
    assert first.accepted == 2 and not first.replayed
    assert again.replayed
    assert node.count("SELECT count(*) FROM records WHERE batch_id = 'good-1'") == 2


async def test_a_relay_cannot_submit_records_for_a_source(node: Node) -> None:
    """REQ: H4, H17 — a source is its own certificate; ``huxin-on-behalf-of`` speaks for
    attestation requesters only, never for a department submitting records."""
    bed_stub = node_pb2_grpc.SourceServiceStub(
        node.bed.peer_channel(node.node, node.bed.cert("heilongjiang"))
    )
    request = node_pb2.SubmitRecordsRequest(
        batch_id="relayed-1", records=[honour_record("relayed-1", GOOD)], subjects=[resident(GOOD)]
    )
    with pytest.raises(aio.AioRpcError) as info:
        await bed_stub.SubmitRecords(request, metadata=(("huxin-on-behalf-of", "heihe-court"),))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(info.value) == "RELAY_NOT_TRUSTED"
    assert node.count("SELECT count(*) FROM records WHERE batch_id = 'relayed-1'") == 0
