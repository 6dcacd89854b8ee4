"""Bounded refusal logging and the writer's deadline, against a real node
(loopback, mutual TLS, SQLite).

A peer replaying an old token cannot grow a citizen's log without bound
(refusals are logged first per key, then hourly with a count, then not at all
a day after the consent ended; ADR 0319), and QueryLog pages, every page
proved against its own signed checkpoint.  A request whose deadline passed
while it waited for the writer uses, logs and allocates nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from keys import CHECKPOINT_TYPE, verify_envelope, verify_inclusion
from keys.pb.v1 import attestation_pb2
from node.core._clock import ManualClock
from node.core._errors import FIELD_KEY
from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.exchange._refusals import INTERVAL, QUIET_AFTER_END
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from node.store._locks import WriterLock
from node.store._translog import PAGE_DEFAULT, PAGE_MAX
from tests._waiting import live_handlers, until, writer_lock_waiters

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = make_id_number(201)
BOB = make_id_number(202)
CAROL = make_id_number(203)
DORA = make_id_number(204)
PEOPLE = (ALICE, BOB, CAROL, DORA)
REPLAYS = 2_100  # refusals on one withdrawn token (review: ~8,000 broke QueryLog)
WAVE = 48  # concurrent calls per wave (below the per-peer limit of 64)


class Node:
    def __init__(self, bed: Testbed, heihe: RunningNode) -> None:
        self.bed, self.heihe = bed, heihe
        self.peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, bed.cert("hainan")))
        self.unlisted = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, bed.cert("fuzhou")))
        self.citizen = bed.citizen_stub(heihe)
        ctx = heihe.server.ctx
        self.ctx = ctx
        keys = {ctx.secrets.signing.key_id: ctx.secrets.signing.public_key}
        self.keys = keys

    @property
    def clock(self) -> ManualClock:
        clock = self.heihe.clock
        assert isinstance(clock, ManualClock)
        return clock

    async def grant(self, who: str, **kw: Any) -> node_pb2.ConsentToken:
        req = node_pb2.GrantConsentRequest(
            audience=kw.get("audience", "hainan"),
            purpose="heihe/credit-loans",
            scope=node_pb2.CONSENT_SCOPE_GRADE,
            max_uses=kw.get("max_uses", 0),
        )
        return await self.citizen.GrantConsent(req, metadata=self.heihe.identity(who))

    async def withdraw(self, who: str, token: node_pb2.ConsentToken) -> None:
        await self.citizen.WithdrawConsent(
            node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
            metadata=self.heihe.identity(who),
        )

    async def page(self, who: str, start: int = 0, size: int = 0) -> node_pb2.QueryLogResponse:
        return await self.citizen.QueryLog(
            node_pb2.QueryLogRequest(start_index=start, page_size=size),
            metadata=self.heihe.identity(who),
        )

    def checked(self, page: node_pb2.QueryLogResponse) -> attestation_pb2.Checkpoint:
        """The page's checkpoint, verified; every entry's proof verified against it."""
        cp = attestation_pb2.Checkpoint.FromString(
            verify_envelope(page.checkpoint, self.keys, CHECKPOINT_TYPE)
        )
        for e in page.entries:
            assert e.proof.tree_size == cp.tree_size
            assert verify_inclusion(
                e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
            )
        return cp

    async def whole_log(self, who: str, size: int = 0) -> list[node_pb2.LoggedEntry]:
        """Every entry of ``who``, page by page, each page verified."""
        out: list[node_pb2.LoggedEntry] = []
        start = 0
        while True:
            page = await self.page(who, start, size)
            cp = self.checked(page)
            assert len(page.entries) <= (size or PAGE_DEFAULT)
            out.extend(page.entries)
            if page.entries:
                assert page.next_start_index >= page.entries[-1].proof.leaf_index + 1
            if not page.more:
                assert page.next_start_index == cp.tree_size
                return out
            assert page.next_start_index == page.entries[-1].proof.leaf_index + 1
            start = page.next_start_index

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        db = sqlite3.connect(self.ctx.config.database)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def refusals(self, reason: str) -> float:
        value = self.ctx.metrics.registry.get_sample_value(
            "huxin_attestation_refusals_total", {"reason": reason}
        )
        return value or 0.0


def _entries(logged: Sequence[node_pb2.LoggedEntry]) -> list[node_pb2.LogEntry]:
    return [node_pb2.LogEntry.FromString(e.entry) for e in logged]


async def _refused_times(
    stub: node_pb2_grpc.PeerServiceStub,
    req: node_pb2.AttestationRequest,
    times: int,
    status: grpc.StatusCode,
    reason: str,
) -> None:
    """``times`` identical requests, in concurrent waves; each refused exactly so."""

    async def one() -> None:
        with pytest.raises(aio.AioRpcError) as info:
            await stub.RequestAttestation(req)
        assert (info.value.code(), reason_of(info.value)) == (status, reason)

    left = times
    while left:
        n = min(WAVE, left)
        await asyncio.gather(*(one() for _ in range(n)))
        left -= n


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("h2"))
    heihe = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))
    n = Node(bed, heihe)
    source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    await source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed-1",
            records=[honour_record(f"seed-{i}", p) for i, p in enumerate(PEOPLE)],
            subjects=[resident(p) for p in PEOPLE],
        )
    )
    yield n
    await bed.close()


async def test_replayed_withdrawn_token_leaves_the_log_bounded(node: Node) -> None:
    """REQ: H16 N23 H5 — 2,100 refusals on a withdrawn token: every caller gets
    CONSENT_WITHDRAWN and the metric counts every one, but the citizen's log gets
    one leaf, then one per hour carrying the count, then none a day after the
    withdrawal; nothing is lost: leaf counts + the unlogged rest = refusals sent."""
    start = node.clock.now()
    token = await node.grant(ALICE, max_uses=1)
    await node.peer.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans"))
    await node.withdraw(ALICE, token)
    replay = attestation_request(token, ALICE, "heihe/credit-loans")
    fp = grpc.StatusCode.FAILED_PRECONDITION
    before = node.refusals("CONSENT_WITHDRAWN")
    try:
        await _refused_times(node.peer, replay, REPLAYS, fp, "CONSENT_WITHDRAWN")
        assert node.refusals("CONSENT_WITHDRAWN") == before + REPLAYS
        kinds = [(e.kind, e.reason, e.count) for e in _entries(await node.whole_log(ALICE, 2))]
        assert kinds == [
            ("consent_granted", "", 0),
            ("attestation_issued", "", 0),
            ("consent_withdrawn", "", 0),
            ("request_refused", "CONSENT_WITHDRAWN", 0),  # the first: stands for itself
        ]

        # an hour later: one more leaf, standing for itself and the 2,099 between
        node.clock.advance(seconds=INTERVAL)
        await _refused_times(node.peer, replay, 10, fp, "CONSENT_WITHDRAWN")
        refused = [e for e in _entries(await node.whole_log(ALICE)) if e.kind == "request_refused"]
        assert [e.count for e in refused] == [0, REPLAYS]

        # a day after the withdrawal: refused as before, counted, no leaf
        node.clock.advance(seconds=QUIET_AFTER_END)
        await _refused_times(node.peer, replay, 5, fp, "CONSENT_WITHDRAWN")
        assert node.refusals("CONSENT_WITHDRAWN") == before + REPLAYS + 15
        log = _entries(await node.whole_log(ALICE))
        assert len(log) == 5
        ((unlogged,),) = node.rows(
            "SELECT unlogged FROM refusal_marks WHERE consent_id = ?", (token.consent_id,)
        )
        assert unlogged == 9 + 5
        assert sum(e.count or 1 for e in log if e.kind == "request_refused") + unlogged == (
            REPLAYS + 15
        )

        # another key (reason) of the same consent is still logged once, then bounded
        wrong = attestation_request(token, ALICE, "heihe/transit-discount")
        await _refused_times(
            node.peer, wrong, 30, grpc.StatusCode.PERMISSION_DENIED, "CONSENT_WRONG_PURPOSE"
        )
        # an unlisted caller with the genuine token: its own key, logged once
        unlisted = node.unlisted
        pd = grpc.StatusCode.PERMISSION_DENIED
        await _refused_times(unlisted, replay, 30, pd, "PEER_NOT_TRUSTED")
        log = _entries(await node.whole_log(ALICE))
        assert [(e.requester, e.reason) for e in log[5:]] == [
            ("hainan", "CONSENT_WRONG_PURPOSE"),
            ("fuzhou", "PEER_NOT_TRUSTED"),
        ]
    finally:
        node.clock.set(start)


async def test_query_log_pages_through_every_entry_with_proofs(node: Node) -> None:
    """REQ: H16 N23 — 1,001 entries (a grant and 1,000 real uses): default pages of
    500, pages of 1,000, small pages; each page's proofs verify against its own
    signed checkpoint; together they are exactly the citizen's rows, in order."""
    token = await node.grant(BOB, max_uses=1000)
    ok = 0
    for _ in range(1000 // 50):
        replies = await asyncio.gather(
            *(
                node.peer.RequestAttestation(attestation_request(token, BOB, "heihe/credit-loans"))
                for _ in range(50)
            )
        )
        ok += len(replies)
    assert ok == 1000
    (subject_key,) = {
        r[0]
        for r in node.rows(
            "SELECT subject_key FROM consents WHERE consent_id = ?", (token.consent_id,)
        )
    }
    expected = [
        (int(i), bytes(leaf))
        for i, leaf in node.rows(
            "SELECT idx, leaf FROM log_entries WHERE subject_key = ? ORDER BY idx", (subject_key,)
        )
    ]
    assert len(expected) == 1001

    first = await node.page(BOB)
    node.checked(first)
    assert (len(first.entries), first.more) == (PAGE_DEFAULT, True)
    assert first.next_start_index == first.entries[-1].proof.leaf_index + 1
    big = await node.page(BOB, size=PAGE_MAX)
    node.checked(big)
    assert (len(big.entries), big.more) == (PAGE_MAX, True)
    assert big.ByteSize() < 4 * 1024 * 1024 // 2  # far below gRPC's 4 MB message limit
    for size in (0, PAGE_MAX, 7):
        got = [(e.proof.leaf_index, e.entry) for e in await node.whole_log(BOB, size)]
        assert got == expected, size

    # resuming from the last page's next_start_index returns only what is new
    last = await node.page(BOB, start=expected[-1][0] + 1)
    assert (list(last.entries), last.more) == ([], False)
    await node.withdraw(BOB, token)
    after = await node.page(BOB, start=last.next_start_index)
    node.checked(after)
    assert [node_pb2.LogEntry.FromString(e.entry).kind for e in after.entries] == [
        "consent_withdrawn"
    ]


@pytest.mark.parametrize(
    ("start", "size", "field"),
    [
        (0, PAGE_MAX + 1, "page_size"),
        (0, 2**32 - 1, "page_size"),
        (None, 0, "start_index"),  # one past the checkpoint's tree size
        (2**63, 0, "start_index"),
        (2**64 - 1, 10, "start_index"),
    ],
    ids=["page-1001", "page-max-uint32", "start-past-end", "start-2^63", "start-max-uint64"],
)
async def test_query_log_bad_paging_inputs(
    node: Node, start: int | None, size: int, field: str
) -> None:
    """REQ: H16 — bad paging values are INVALID_ARGUMENT naming the field."""
    if start is None:
        start = node.ctx.log.size + 1
    with pytest.raises(aio.AioRpcError) as info:
        await node.page(CAROL, start, size)
    err = info.value
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert (FIELD_KEY, field) in tuple(err.trailing_metadata() or ())


async def test_query_log_edge_pages_are_valid(node: Node) -> None:
    """REQ: H16 — start at the very end (empty page), page_size 1 and PAGE_MAX accepted."""
    await node.grant(CAROL)
    end = await node.page(CAROL, start=node.ctx.log.size)
    cp = node.checked(end)
    assert (list(end.entries), end.more, end.next_start_index) == ([], False, cp.tree_size)
    one = await node.page(CAROL, size=1)
    node.checked(one)
    assert (len(one.entries), one.more) == (1, False)


async def test_deadline_passed_while_waiting_for_the_writer_uses_nothing(node: Node) -> None:
    """REQ: H5 N15 H16 — the writer is held past the caller's deadline:
    DEADLINE_EXCEEDED, and once the writer is free the request's unit changes
    nothing (uses 0, no log leaf, no status index); a retry then works."""
    token = await node.grant(DORA, max_uses=1)
    req = attestation_request(token, DORA, "heihe/credit-loans")
    log_before = node.rows("SELECT count(*) FROM log_entries")[0][0]
    status_before = node.rows("SELECT count(*) FROM status_entries")[0][0]
    database = node.ctx.config.database
    lock = WriterLock(database)
    try:
        with lock:  # what a batch commit, a checkpoint RESTART or `score run` does
            with pytest.raises(aio.AioRpcError) as info:
                await node.peer.RequestAttestation(req, timeout=0.3)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # The handler queued its unit (the writer thread now waits for the lock);
            # its deadline is at most 0.3 s after it started, so 0.3 s from now it
            # has passed for certain, however late the handler ran.
            await until(lambda: writer_lock_waiters(database) >= 1, "the unit to wait")
            await asyncio.sleep(0.3)
        # the waiting unit runs first (the queue is FIFO): after this one, it has run
        await node.ctx.db.write_unit(lambda conn: None)
    finally:
        lock.close()
    ((uses, withdrawn),) = node.rows(
        "SELECT uses, withdrawn_at FROM consents WHERE consent_id = ?", (token.consent_id,)
    )
    assert (uses, withdrawn) == (0, None)
    assert node.rows("SELECT count(*) FROM log_entries")[0][0] == log_before
    assert node.rows("SELECT count(*) FROM status_entries")[0][0] == status_before
    await node.peer.RequestAttestation(req)  # the consent was not used up
    kinds = [e.kind for e in _entries(await node.whole_log(DORA))]
    assert kinds == ["consent_granted", "attestation_issued"]


async def test_grant_and_withdraw_past_their_deadline_change_nothing(node: Node) -> None:
    """REQ: H5 N15 — a citizen told DEADLINE_EXCEEDED was not given a consent
    behind their back, and a withdrawal they were told failed did not happen.  (These
    units are queued with ``drop_if_cancelled``: gRPC cancels the handler at the
    deadline and the unit, still waiting for the writer, is skipped; unlike
    RequestAttestation's unit, no deadline check inside is needed.)"""
    token = await node.grant(BOB)
    consents_before = node.rows("SELECT count(*) FROM consents")[0][0]
    log_before = node.rows("SELECT count(*) FROM log_entries")[0][0]
    grant = node_pb2.GrantConsentRequest(
        audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
    )
    withdraw = node_pb2.WithdrawConsentRequest(consent_id=token.consent_id)
    database = node.ctx.config.database

    async def past_deadline(method: str, call: Callable[[], Any]) -> None:
        lock = WriterLock(database)
        try:
            with lock:
                with pytest.raises(aio.AioRpcError) as info:
                    await call()  # started only now, with the writer held
                assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                # the handler's unit waits for the writer until gRPC cancels the
                # handler at its deadline (the handler ends, its unit is marked
                # dropped): only then may the writer go, or the unit would run
                await until(lambda: writer_lock_waiters(database) >= 1, "the handler to wait")
                await until(lambda: live_handlers(method) == 0, f"{method} cancelled")
            await node.ctx.db.write_unit(lambda conn: None)  # the waiting write has run
        finally:
            lock.close()

    def md() -> Any:  # a fresh identity assertion for each call
        return node.heihe.identity(BOB)

    await past_deadline(
        "GrantConsent", lambda: node.citizen.GrantConsent(grant, metadata=md(), timeout=0.3)
    )
    await past_deadline(
        "WithdrawConsent",
        lambda: node.citizen.WithdrawConsent(withdraw, metadata=md(), timeout=0.3),
    )
    assert node.rows("SELECT count(*) FROM consents")[0][0] == consents_before
    assert node.rows("SELECT count(*) FROM log_entries")[0][0] == log_before
    ((withdrawn,),) = node.rows(
        "SELECT withdrawn_at FROM consents WHERE consent_id = ?", (token.consent_id,)
    )
    assert withdrawn is None
