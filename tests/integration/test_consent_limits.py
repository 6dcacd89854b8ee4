"""A citizen cannot flood the node with consents: grants are rate-limited and bounded.

REQ: H5, H16 (every grant is a transparency-log leaf the citizen and auditors read) —
issue 14 item 8: one citizen granted 1,000 consents in 1.8 s, each adding a log leaf.
Now a citizen grants at most ``[consent] grants_per_hour`` per rolling hour and
``grant_burst`` per rolling minute (RESOURCE_EXHAUSTED ``CONSENT_RATE_EXCEEDED`` with
``retry-after``) and holds at most ``max_active_consents`` active consents (RESOURCE_EXHAUSTED
``TOO_MANY_ACTIVE_CONSENTS``); a refused grant writes nothing (no consent row, no log
leaf).  The counts come from the database inside the grant's write transaction, so they
hold for concurrent grants and across a restart.  Time is the node's injected
:class:`ManualClock`: the windows pass without sleeping.

One real node (citizen port with TLS) with small limits, per module and backend (real
SQLite, real PostgreSQL: issue 18).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.cli._init import init_region
from node.core._clock import ManualClock
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from node.store import connect

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACTIVE, PER_HOUR, BURST = 5, 8, 3
PEOPLE = {name: make_id_number(800 + i) for i, name in enumerate(("ann", "ben", "cat", "dan"))}


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    clock: ManualClock
    citizen: node_pb2_grpc.CitizenServiceStub

    def counts(self) -> tuple[int, int]:
        """(consent rows, log leaves)."""
        conn = connect(self.node.server.ctx.config.storage, readonly=True)  # either backend
        try:
            consents = conn.execute("SELECT count(*) FROM consents").fetchone()[0]
            leaves = conn.execute("SELECT count(*) FROM log_entries").fetchone()[0]
        finally:
            conn.close()
        return int(consents), int(leaves)

    async def grant(self, who: str) -> node_pb2.ConsentToken:
        return await self.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=self.node.identity(PEOPLE[who]),
        )

    async def withdraw(self, who: str, consent_id: str) -> None:
        await self.citizen.WithdrawConsent(
            node_pb2.WithdrawConsentRequest(consent_id=consent_id),
            metadata=self.node.identity(PEOPLE[who]),
        )

    async def refused(self, who: str, reason: str) -> aio.AioRpcError:
        """The next grant is refused with RESOURCE_EXHAUSTED ``reason``; nothing written."""
        before = self.counts()
        with pytest.raises(aio.AioRpcError) as info:
            await self.grant(who)
        assert (info.value.code(), reason_of(info.value)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            reason,
        ), info.value.details()
        assert self.counts() == before
        return info.value


def _retry_after(err: aio.AioRpcError) -> int:
    return int(dict(err.trailing_metadata() or ())["retry-after"])


async def _start(bed: Testbed, clock: ManualClock) -> RunningNode:
    return await bed.start_node("heihe", "heihe", peers=("hainan",), clock=clock)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(
    tmp_path_factory: pytest.TempPathFactory, harness_backend: str
) -> AsyncIterator[Node]:
    """The node on each backend in turn (issue 18: ``harness_backend``)."""
    bed = Testbed(tmp_path_factory.mktemp("consent-limits"))
    assert bed.ca is not None
    directory = bed.root / "heihe"
    init_region(
        directory, "heihe", "heihe", bed.ca, bed.now, peers=("hainan",), sources=("heihe-court",)
    )
    config = directory / "node.toml"
    config.write_text(
        config.read_text().replace(
            "default_max_uses = 10\n",
            "default_max_uses = 10\n"
            f"max_active_consents = {ACTIVE}\ngrants_per_hour = {PER_HOUR}\ngrant_burst = {BURST}\n",
        )
    )
    clock = ManualClock(bed.now)
    heihe = await _start(bed, clock)
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=[honour_record(f"seed-{n}", idn) for n, idn in PEOPLE.items()],
            subjects=[resident(idn) for idn in PEOPLE.values()],
        )
    )
    n = Node(bed, heihe, clock, bed.citizen_stub(heihe))
    yield n
    await bed.close()


async def test_active_consents_are_bounded_and_withdrawal_frees_one(node: Node) -> None:
    """Issue 14 item 8 (H5, H16): grants up to ``max_active_consents`` pass (the minute's
    burst passed in between); the next is TOO_MANY_ACTIVE_CONSENTS with no consent row
    and no log leaf; after a withdrawal one more can be granted."""
    granted = [await node.grant("ann") for _ in range(BURST)]
    node.clock.advance(seconds=61)
    granted += [await node.grant("ann") for _ in range(ACTIVE - BURST)]
    node.clock.advance(seconds=61)
    await node.refused("ann", "TOO_MANY_ACTIVE_CONSENTS")
    await node.withdraw("ann", granted[0].consent_id)
    await node.grant("ann")
    await node.refused("ann", "TOO_MANY_ACTIVE_CONSENTS")


async def test_grant_rate_is_limited_per_minute_and_per_hour(node: Node) -> None:
    """Issue 14 item 8: ``grant_burst`` grants in a minute, then CONSENT_RATE_EXCEEDED
    with ``retry-after`` until the minute has passed; ``grants_per_hour`` in the hour,
    then refused until the first grant of the hour leaves the window.  Refusals write
    nothing.  Each grant is withdrawn at once, so only the rate counts."""
    node.clock.advance(hours=2)

    async def grant_and_withdraw() -> None:
        token = await node.grant("ben")
        await node.withdraw("ben", token.consent_id)

    for _ in range(BURST):  # t = 0
        await grant_and_withdraw()
    err = await node.refused("ben", "CONSENT_RATE_EXCEEDED")
    assert _retry_after(err) == 60
    node.clock.advance(seconds=59)
    await node.refused("ben", "CONSENT_RATE_EXCEEDED")
    node.clock.advance(seconds=1)
    for _ in range(BURST):  # t = 60 s: the first minute has passed
        await grant_and_withdraw()
    node.clock.advance(seconds=60)
    for _ in range(PER_HOUR - 2 * BURST):  # t = 120 s: the hour's last grants
        await grant_and_withdraw()
    err = await node.refused("ben", "CONSENT_RATE_EXCEEDED")  # the minute has room
    assert _retry_after(err) == 3600 - 120  # when the grants of t = 0 leave the hour
    node.clock.advance(seconds=3600 - 120 - 1)
    await node.refused("ben", "CONSENT_RATE_EXCEEDED")
    node.clock.advance(seconds=1)
    await grant_and_withdraw()


async def test_concurrent_grants_cannot_pass_the_bound_together(node: Node) -> None:
    """Issue 14 item 8: ``2 * grant_burst`` grants sent at once: exactly ``grant_burst``
    pass (the count is made inside each grant's write transaction); the rest are
    CONSENT_RATE_EXCEEDED and wrote nothing."""
    node.clock.advance(hours=2)
    before_rows, before_leaves = node.counts()
    results = await asyncio.gather(
        *(node.grant("cat") for _ in range(2 * BURST)), return_exceptions=True
    )
    ok = [r for r in results if isinstance(r, node_pb2.ConsentToken)]
    refused = [r for r in results if isinstance(r, aio.AioRpcError)]
    assert len(ok) == BURST and len(refused) == BURST
    assert {reason_of(r) for r in refused} == {"CONSENT_RATE_EXCEEDED"}
    assert node.counts() == (before_rows + BURST, before_leaves + BURST)


async def test_the_limits_hold_across_a_restart(node: Node) -> None:
    """Issue 14 item 8: the counts come from the database, so a restarted node refuses
    the grant that would have exceeded the burst before the restart."""
    node.clock.advance(hours=2)
    for _ in range(BURST):
        await node.grant("dan")
    await node.bed.stop_node("heihe")
    node.node = await _start(node.bed, node.clock)
    node.citizen = node.bed.citizen_stub(node.node)
    await node.refused("dan", "CONSENT_RATE_EXCEEDED")
    node.clock.advance(seconds=60)
    await node.grant("dan")
