"""A citizen cannot flood the node with supplement uploads.

REQ: N5, N9, H16 — ``UploadSupplement`` inserted a row, a transparency-log leaf and an
entry in the department's queue for every call, without limit (300 uploads by one
citizen: 300 rows, 300 leaves).  Now a citizen uploads at most ``[rights]
supplements_per_hour`` in any rolling hour (RESOURCE_EXHAUSTED
``SUPPLEMENT_RATE_EXCEEDED`` with ``retry-after``) and holds at most
``max_pending_supplements`` undecided uploads (RESOURCE_EXHAUSTED
``TOO_MANY_PENDING_SUPPLEMENTS``); a refused upload writes nothing (no row, no log
leaf).  The counts are read in the upload's own write unit.  Time is the node's
injected :class:`ManualClock`: the hour passes without sleeping.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.cli._init import init_region
from node.core._clock import ManualClock
from node.core._config import ConfigError, load_config
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

PER_HOUR, PENDING = 6, 3
PEOPLE = {name: make_id_number(900 + i) for i, name in enumerate(("ann", "ben"))}


@dataclass
class Node:
    node: RunningNode
    clock: ManualClock
    citizen: node_pb2_grpc.CitizenServiceStub
    court: node_pb2_grpc.SourceServiceStub

    def counts(self) -> tuple[int, int]:
        """(supplement rows, log leaves)."""
        db = self.node.server.ctx.config.database
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT count(*) FROM supplements").fetchone()[0]
            leaves = conn.execute("SELECT count(*) FROM log_entries").fetchone()[0]
        return int(rows), int(leaves)

    async def upload(self, who: str) -> node_pb2.SupplementInfo:
        return await self.citizen.UploadSupplement(
            node_pb2.UploadSupplementRequest(
                category="honour",
                act_id="award-2025",
                recognised_on="2025-05-01",
                verifier="hainan-court",
                level="national",
                proof_sha256=b"\x01" * 32,
                authorise_verification=True,
            ),
            metadata=self.node.identity(PEOPLE[who]),
        )

    async def reject(self, supplement_id: str) -> None:
        await self.court.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id=supplement_id, reason="not found")
        )

    async def refused(self, who: str, reason: str) -> aio.AioRpcError:
        """The next upload is refused with RESOURCE_EXHAUSTED ``reason``; nothing written."""
        before = self.counts()
        with pytest.raises(aio.AioRpcError) as info:
            await self.upload(who)
        assert (info.value.code(), reason_of(info.value)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            reason,
        ), info.value.details()
        assert self.counts() == before
        return info.value


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("supplement-limits"))
    assert bed.ca is not None
    directory = bed.root / "hainan"
    init_region(
        directory, "hainan", "hainan", bed.ca, bed.now, peers=("heihe",), sources=("hainan-court",)
    )
    config = directory / "node.toml"
    config.write_text(
        config.read_text()
        + f"\n[rights]\nsupplements_per_hour = {PER_HOUR}\nmax_pending_supplements = {PENDING}\n"
    )
    clock = ManualClock(bed.now)
    hainan = await bed.start_node("hainan", "hainan", peers=("heihe",), clock=clock)
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(hainan, bed.cert("hainan-court")))
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=[honour_record(f"seed-{n}", idn) for n, idn in PEOPLE.items()],
            subjects=[resident(idn) for idn in PEOPLE.values()],
        )
    )
    yield Node(hainan, clock, bed.citizen_stub(hainan), court)
    await bed.close()


async def test_pending_uploads_are_bounded_and_a_decision_frees_one(node: Node) -> None:
    """``max_pending_supplements`` undecided uploads pass; the next is
    TOO_MANY_PENDING_SUPPLEMENTS with no row and no log leaf; once the department has
    decided one, one more can be uploaded."""
    uploads = [await node.upload("ann") for _ in range(PENDING)]
    await node.refused("ann", "TOO_MANY_PENDING_SUPPLEMENTS")
    await node.reject(uploads[0].supplement_id)
    await node.upload("ann")
    await node.refused("ann", "TOO_MANY_PENDING_SUPPLEMENTS")
    pending = await node.court.ListSupplements(node_pb2.ListSupplementsRequest(pending_only=True))
    assert len(pending.supplements) == PENDING


async def test_upload_rate_is_limited_per_rolling_hour(node: Node) -> None:
    """``supplements_per_hour`` uploads in an hour (each decided at once, so only the
    rate counts), then SUPPLEMENT_RATE_EXCEEDED with ``retry-after`` until the first
    upload of the hour leaves the window; another citizen is not affected."""
    node.clock.advance(hours=2)
    for i in range(PER_HOUR):
        await node.reject((await node.upload("ben")).supplement_id)
        if i == 0:
            node.clock.advance(seconds=600)
    err = await node.refused("ben", "SUPPLEMENT_RATE_EXCEEDED")
    retry = int(dict(err.trailing_metadata() or ())["retry-after"])
    assert retry == 3_600 - 600
    node.clock.advance(seconds=retry - 1)
    await node.refused("ben", "SUPPLEMENT_RATE_EXCEEDED")  # the first is still inside
    node.clock.advance(seconds=2)
    await node.reject((await node.upload("ben")).supplement_id)
    await node.refused("ben", "SUPPLEMENT_RATE_EXCEEDED")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("supplements_per_hour", 0, id="rate-zero"),
        pytest.param("supplements_per_hour", 3_601, id="rate-over-bound"),
        pytest.param("max_pending_supplements", 0, id="pending-zero"),
        pytest.param("max_pending_supplements", 10_001, id="pending-over-bound"),
    ],
)
async def test_supplement_limits_outside_their_bounds_are_refused(
    node: Node, key: str, value: int
) -> None:
    """Both keys have a bound; outside it the config is refused naming the key."""
    path = node.node.directory / "bad.toml"
    text = (node.node.directory / "node.toml").read_text().split("\n[rights]\n")[0]
    path.write_text(text + f"\n[rights]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.field == f"rights.{key}"
