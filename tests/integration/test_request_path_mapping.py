"""The mapping on the attestation request path (issue 15/16 §2; docs/adr/0203, 0205, 0512).

A Heihe node and a Hainan node (loopback, mutual TLS, SQLite, a manual clock); the
Hainan node's certificate is the relying party.  Each test installs, in the Heihe
node's mapper, the table the case needs (an incentive-tier table; one targeting
another Hainan version) and the approved table is back after it.

* a grade the table into the scenario's scheme does not recognise meets no scenario:
  the relying party sees a withdrawal, never MAPPING_UNAVAILABLE "(NOT_RECOGNISED)";
* a table at another target version than the scenario's is refused before the use
  is kept (SCHEME_VERSION_MISMATCH): no use, no status index, no attestation_issued.

People (Heihe: base 600 = A; admin penalty -30; city honour +30; international +80):

* GINA — a city honour and a penalty: 600, A until the honour is revoked (570, B);
* HUGO — four international honours: 920, SS (Hainan AAA through the approved table).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from keys import NodeCertificate
from mapping import MappingTable, published_table
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    approved_set,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.disclosure import incentive_tier_view
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import field_of, reason_of
from scoring import load_scheme

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
GINA, HUGO = make_id_number(701), make_id_number(702)
HAINAN_FAST = "hainan/fast-lane"  # Hainan tier A, threshold only
HAINAN_BANK = "hainan/bank-credit"  # Hainan tier AA, threshold only
APPROVED = published_table("heihe", "hainan")


class Bed:
    def __init__(self, bed: Testbed, heihe: RunningNode, hainan: RunningNode) -> None:
        assert bed.ca is not None
        self.bed, self.heihe = bed, heihe
        cert = NodeCertificate(
            "hainan",
            (hainan.directory / "tls/node.pem").read_bytes(),
            (hainan.directory / "tls/node.key").read_bytes(),
            bed.ca.cert_pem,
        )
        self.peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, cert))
        self.source = node_pb2_grpc.SourceServiceStub(
            bed.peer_channel(heihe, bed.cert("heihe-court"))
        )
        self.citizen = bed.citizen_stub(heihe)

    async def grant(self, idn: str, purpose: str) -> node_pb2.ConsentToken:
        req = node_pb2.GrantConsentRequest(audience="hainan", purpose=purpose, max_uses=10)
        return await self.citizen.GrantConsent(req, metadata=self.heihe.identity(idn))

    async def request(self, token: node_pb2.ConsentToken, idn: str, purpose: str) -> bytes:
        req = attestation_request(token, idn, purpose)
        return bytes((await self.peer.RequestAttestation(req)).signed_attestation)

    async def refused(
        self, token: node_pb2.ConsentToken, idn: str, purpose: str
    ) -> aio.AioRpcError:
        with pytest.raises(aio.AioRpcError) as info:
            await self.request(token, idn, purpose)
        return info.value

    async def uses(self, idn: str, consent_id: str) -> int:
        mine = await self.citizen.ListConsents(
            node_pb2.ListConsentsRequest(), metadata=self.heihe.identity(idn)
        )
        (c,) = [c for c in mine.consents if c.grant.consent_id == consent_id]
        return int(c.uses)

    async def issued(self) -> tuple[int, int]:
        """attestation_issued log entries and status entries in the Heihe database."""
        row = await self.heihe.server.ctx.db.fetchone(
            "SELECT (SELECT count(*) FROM log_entries WHERE kind = 'attestation_issued'),"
            " (SELECT count(*) FROM status_entries)"
        )
        return int(row[0]), int(row[1])

    def install(self, monkeypatch: pytest.MonkeyPatch, table: MappingTable) -> None:
        """``table`` as the Heihe node's only table into Hainan, approved by the bed's
        authority (undone after the test).  ``huxin mapping install`` verifies a table
        against the schemes the node knows, and these cases need tables no node would
        install (one into an unknown Hainan version, an unsigned view): the set is put in
        the mapper directly, and the approval gate still decides."""
        mapper = self.heihe.server.ctx.mapper
        monkeypatch.setattr(mapper, "_set", approved_set([table], self.bed.authority, NOW))


def _penalty(record_id: str, idn: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.category, rec.level = "admin_penalty", ""
    return rec


def _international(record_id: str, idn: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.level = "international"
    return rec


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bed]:
    tb = Testbed(tmp_path_factory.mktemp("reqpath"), now=NOW)
    heihe = await tb.start_node(
        "heihe", "heihe", peers=("hainan",), sources=("heihe-court",), clock=ManualClock(NOW)
    )
    hainan = await tb.start_node("hainan", "hainan", peers=("heihe",), clock=ManualClock(NOW))
    b = Bed(tb, heihe, hainan)
    records = [
        honour_record("g-hon", GINA),
        _penalty("g-pen", GINA),
        *(_international(f"h-{i}", HUGO) for i in range(4)),
    ]
    await b.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=records, subjects=[resident(p) for p in (GINA, HUGO)]
        )
    )
    yield b
    await tb.close()


async def test_below_an_incentive_tier_tables_tier_the_requester_sees_a_withdrawal(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ: C3 H14 H16 N14 N20 — issue 15/16 §2 (docs/adr/0203, 0205): Gina (600, A)
    grants a threshold consent for hainan/fast-lane (tier A) and is attested; the node's
    table into Hainan is incentive-tier (no Hainan grade below Heihe's incentive tier);
    her honour is revoked (570, B).  The next request is refused FAILED_PRECONDITION
    CONSENT_WITHDRAWN (field consent_token), exactly what a withdrawn consent gets, and
    nothing in it says a mapping failed or a grade was not recognised; no use is counted
    and no attestation is issued."""
    token = await bed.grant(GINA, HAINAN_FAST)
    bed.install(monkeypatch, incentive_tier_view(APPROVED, load_scheme("heihe")))
    await bed.request(token, GINA, HAINAN_FAST)
    assert await bed.uses(GINA, token.consent_id) == 1
    revoked = await bed.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="g-hon", status="revoked", note="award withdrawn")
    )
    assert revoked.grade.grade_after == "B"
    before = await bed.issued()

    err = await bed.refused(token, GINA, HAINAN_FAST)
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_WITHDRAWN",
        "consent_token",
    )
    shown = repr((err.details(), err.trailing_metadata()))
    assert "MAPPING" not in shown and "NOT_RECOGNISED" not in shown
    assert await bed.uses(GINA, token.consent_id) == 1
    assert await bed.issued() == before


async def test_a_table_at_another_target_version_is_refused_before_the_use_is_kept(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ: C3 H13 N16 N20 — issue 15 §2: Hugo (SS → Hainan AAA) grants a consent for
    hainan/bank-credit (tier AA in hainan@2025.1); the node's table into Hainan targets
    hainan@2099.1.  The request is refused FAILED_PRECONDITION SCHEME_VERSION_MISMATCH
    (field target_scheme) naming both versions, before anything is kept: the use is given
    back, no status index, no attestation_issued entry.  With the approved table back,
    the same consent is attested and its first use counted."""
    token = await bed.grant(HUGO, HAINAN_BANK)
    other = replace(APPROVED, target=replace(APPROVED.target, version="2099.1"))
    with monkeypatch.context() as patch:
        bed.install(patch, other)
        before = await bed.issued()
        for _ in range(2):  # and again: nothing was kept by the first
            err = await bed.refused(token, HUGO, HAINAN_BANK)
            assert (err.code(), reason_of(err), field_of(err)) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "SCHEME_VERSION_MISMATCH",
                "target_scheme",
            )
            assert "hainan@2099.1" in (err.details() or "") and "hainan@2025.1" in (
                err.details() or ""
            )
        assert await bed.uses(HUGO, token.consent_id) == 0
        assert await bed.issued() == before
    assert await bed.request(token, HUGO, HAINAN_BANK)
    assert await bed.uses(HUGO, token.consent_id) == 1
    issued, statuses = await bed.issued()
    assert (issued, statuses) == (before[0] + 1, before[1] + 1)


async def test_a_grant_the_request_path_would_refuse_is_refused_at_grant(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ: C3 H13 N20 — issue 15 §2: the grant decides with the request path's own
    function, so no consent is granted that every request would refuse: with the table
    into Hainan at hainan@2099.1, Hugo's grant for hainan/bank-credit is refused
    FAILED_PRECONDITION SCHEME_VERSION_MISMATCH (field target_scheme) and no consent is
    stored."""
    mine = node_pb2.ListConsentsRequest()
    before = len((await bed.citizen.ListConsents(mine, metadata=bed.heihe.identity(HUGO))).consents)
    other = replace(APPROVED, target=replace(APPROVED.target, version="2099.1"))
    with monkeypatch.context() as patch:
        bed.install(patch, other)
        with pytest.raises(aio.AioRpcError) as info:
            await bed.grant(HUGO, HAINAN_BANK)
    err = info.value
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SCHEME_VERSION_MISMATCH",
        "target_scheme",
    )
    after = (await bed.citizen.ListConsents(mine, metadata=bed.heihe.identity(HUGO))).consents
    assert len(after) == before


async def test_an_attestation_that_cannot_be_built_keeps_nothing(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQ: H13 N16 N23 — issue 15 §2: the attestation is built and checked inside the
    request's unit, before COMMIT.  Here its check is made to fail (a fault injected at
    the one seam: no real input reaches it once the version is checked): the request is
    refused INTERNAL OWN_DATA_UNUSABLE and the whole unit is rolled back -- no use
    counted, no status index, no attestation_issued entry -- so a use is never counted
    without an attestation delivered."""
    import keys

    def broken(self: keys.Attestation, message: object = None) -> None:
        raise keys.KeysError("threshold", "made to fail", code="INVALID_ATTESTATION")

    token = await bed.grant(HUGO, HAINAN_FAST)
    before = await bed.issued()
    with monkeypatch.context() as patch:
        patch.setattr(keys.Attestation, "check", broken)
        err = await bed.refused(token, HUGO, HAINAN_FAST)
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.INTERNAL, "OWN_DATA_UNUSABLE")
    assert await bed.uses(HUGO, token.consent_id) == 0
    assert await bed.issued() == before
    assert await bed.request(token, HUGO, HAINAN_FAST)  # nothing was left half-done
    assert await bed.uses(HUGO, token.consent_id) == 1
