"""A refused batch of any size up to the limit gets a readable, bounded refusal.

REQ: H4, N6 — a batch is stored whole or not at all, and the source learns why:
INVALID_ARGUMENT ``BATCH_REJECTED`` with a ``huxin-batch-rejection-bin`` trailer
holding the first problems (at most 100, at most 6 KiB), ``rejected_total``,
``records_refused``, ``truncated`` and a count per (field, code).  The trailer is
bounded because an unbounded list of about 160 bad records would overflow the
client's 16 KiB metadata limit and the source would get RESOURCE_EXHAUSTED and no
reasons at all.  REQ: N7 — late records are no refusal.

Runs one real node (mutual TLS on loopback, its own SQLite file) for the module
and counts every table a batch could write before and after each refusal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import REJECTION_KEY, batch_rejection_of, reason_of
from node.store._records import MAX_LISTED_REJECTIONS, MAX_REJECTION_BYTES

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERSON = make_id_number(701)
TABLES = ("records", "subjects", "residences", "source_batches", "log_entries")
METADATA_SOFT_LIMIT = 8 * 1024  # above it gRPC clients may refuse trailers (16 KiB: always)


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    court: node_pb2_grpc.SourceServiceStub

    def counts(self) -> dict[str, int]:
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("rejections"))
    heihe = await bed.start_node("heihe", "heihe", sources=("heihe-court",))
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    n = Node(bed, heihe, court)
    yield n
    await bed.close()


def bad_category(i: int) -> scoring_pb2.CreditRecord:
    rec = honour_record(f"bad-{i}", PERSON)
    rec.category = "nonsense"
    return rec


def bad_date(i: int) -> scoring_pb2.CreditRecord:
    rec = honour_record(f"date-{i}", PERSON)
    rec.recognised_on = "01/06/2025"
    return rec


def long_id(i: int) -> scoring_pb2.CreditRecord:
    return honour_record(f"{i:06d}-" + "x" * 1000, PERSON)  # too long; echoed cut to 128


def alternating(i: int) -> scoring_pb2.CreditRecord:
    if i % 10 == 9:
        return honour_record(f"good-{i}", PERSON)
    return bad_category(i) if i % 2 else bad_date(i)


def every_third_foreign(i: int) -> scoring_pb2.CreditRecord:
    rec = honour_record(f"f-{i}", PERSON)
    if i % 3 == 0:
        rec.source = "bank"
    return rec


def _problem(rec: scoring_pb2.CreditRecord) -> tuple[str, str] | None:
    """The (field, code) the node must report for a record, from the cases' design."""
    if rec.category == "nonsense":
        return ("category", "UNKNOWN_CATEGORY")
    if rec.recognised_on != "2025-06-01":
        return ("recognised_on", "INVALID_FIELD")
    if len(rec.record_id) > 256:
        return ("record_id", "INVALID_FIELD")
    if rec.source == "bank":
        return ("source", "SOURCE_MISMATCH")
    return None


# name, records in the batch, how record i is made
BAD_BATCHES: list[tuple[str, int, Callable[[int], scoring_pb2.CreditRecord]]] = [
    ("one-bad", 1, bad_category),
    ("ten-bad", 10, bad_category),
    ("exactly-the-listed-bound", MAX_LISTED_REJECTIONS, bad_category),
    ("one-past-the-listed-bound", MAX_LISTED_REJECTIONS + 1, bad_category),
    ("a-thousand-bad", 1_000, bad_category),
    ("max-batch-10000-same-mistake", 10_000, bad_category),
    ("max-batch-10000-two-mistakes-some-good", 10_000, alternating),
    ("max-batch-10000-foreign-source", 10_000, every_third_foreign),
    ("2000-1kb-record-ids", 2_000, long_id),  # 10,000 would pass the 4 MiB message limit
]


@pytest.mark.parametrize(("name", "size", "make"), BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
async def test_refusal_is_bounded_and_complete_in_its_totals(
    node: Node, name: str, size: int, make: Callable[[int], scoring_pb2.CreditRecord]
) -> None:
    """REQ: H4, N6 — exact status and reason whatever the size; the trailer
    fits the client's limit; ``rejected_total``/``records_refused`` count every problem,
    ``truncated`` says whether the list is shorter, the summary groups them all by
    (field, code); the listed ones are the first in record order; nothing is written."""
    request = node_pb2.SubmitRecordsRequest(
        batch_id=f"bound-{name}",
        records=[make(i) for i in range(size)],
        subjects=[resident(PERSON)],
    )
    problems = [(i, _problem(rec)) for i, rec in enumerate(request.records)]
    bad = [i for i, p in problems if p is not None]
    expected: dict[tuple[str, str], int] = {}
    for _, p in problems:
        if p is not None:
            expected[p] = expected.get(p, 0) + 1
    total = len(bad)
    before = node.counts()
    with pytest.raises(aio.AioRpcError) as info:
        await node.court.SubmitRecords(request)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert reason_of(err) == "BATCH_REJECTED"
    trailer: Any = dict(err.trailing_metadata() or ())[REJECTION_KEY]
    assert len(trailer) <= MAX_REJECTION_BYTES
    everything = sum(32 + len(k) + len(v) for k, v in err.trailing_metadata() or ())
    assert everything < METADATA_SOFT_LIMIT  # HPACK size: name + value + 32 per entry
    rejection = batch_rejection_of(err)
    assert rejection is not None
    assert rejection.batch_id == f"bound-{name}"
    assert (rejection.rejected_total, rejection.records_refused) == (total, total)
    listed = list(rejection.rejections)
    assert 0 < len(listed) <= min(total, MAX_LISTED_REJECTIONS)
    assert rejection.truncated == (len(listed) < total)
    if make is not long_id:  # <= 150 B each: the first 40 always fit, small batches whole
        assert len(listed) >= min(total, 40)
    if total <= 40 and make is not long_id:
        assert len(listed) == total and not rejection.truncated
    assert [r.index for r in listed] == bad[: len(listed)]
    assert all(len(r.record_id) <= 128 for r in listed)
    assert {(s.field, s.code): s.count for s in rejection.summary} == expected
    assert [s.count for s in rejection.summary] == sorted(expected.values(), reverse=True)
    assert f"{total} problem(s) in {total} record(s), nothing stored" in (err.details() or "")
    assert node.counts() == before


async def test_a_good_batch_after_the_refusals_is_stored(node: Node) -> None:
    """REQ: H4 — the refusals left nothing behind: the corrected batch is new work."""
    before = node.counts()
    resp = await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="bound-max-batch-10000-same-mistake",
            records=[honour_record(f"ok-{i}", PERSON) for i in range(3)],
            subjects=[resident(PERSON)],
        )
    )
    assert (resp.accepted, resp.replayed) == (3, False)
    after = node.counts()
    assert (after["records"], after["source_batches"]) == (
        before["records"] + 3,
        before["source_batches"] + 1,
    )
