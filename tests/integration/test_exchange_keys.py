"""Consent tokens across key rotation, and what a refusal writes to the transparency log.

REQ: H5 H16 H17 N23 — a consent token verifies against the node's whole key set
(every key certified by the region root, valid and not revoked at the grant
time), so `huxin keys rotate` and a restart leave outstanding consents usable,
while a token signed by a key revoked before its grant time is refused
(``CONSENT_KEY_REVOKED``).  A refusal that concerns a real consent of ours is in
the transparency log; one that names no consent of ours (unlisted caller, a token
that does not verify) adds no leaf, only a metric and a structured log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio

from keys import Envelope, sign
from node.cli._main import main
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._citizen import CONSENT_TYPE
from tests.support.refusals import expect_refused

ALICE = make_id_number(201)
BOB = make_id_number(202)


class Bed:
    def __init__(self, bed: Testbed) -> None:
        self.bed = bed
        self.node: RunningNode | None = None

    async def start(self, clock: ManualClock | None = None) -> RunningNode:
        self.node = await self.bed.start_node(
            "heihe", "heihe", peers=("hainan",), sources=("heihe-court",), clock=clock
        )
        return self.node

    async def restart(self, clock: ManualClock | None = None) -> RunningNode:
        await self.bed.stop_node("heihe")
        return await self.start(clock)

    def peer(self, identity: str = "hainan") -> node_pb2_grpc.PeerServiceStub:
        assert self.node is not None
        return node_pb2_grpc.PeerServiceStub(
            self.bed.peer_channel(self.node, self.bed.cert(identity))
        )

    async def grant(self, who: str, audience: str = "hainan") -> node_pb2.ConsentToken:
        assert self.node is not None
        req = node_pb2.GrantConsentRequest(
            audience=audience, purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
        )
        return await self.bed.citizen_stub(self.node).GrantConsent(
            req, metadata=self.node.identity(who)
        )

    def log_size(self) -> int:
        assert self.node is not None
        ctx = self.node.server.ctx
        return ctx.log.checkpoint(ctx.now_s())[0]

    def refusals(self, reason: str) -> float:
        assert self.node is not None
        value = self.node.server.ctx.metrics.registry.get_sample_value(
            "huxin_attestation_refusals_total", {"reason": reason}
        )
        return value or 0.0


@pytest_asyncio.fixture
async def bed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bed]:
    b = Bed(Testbed(tmp_path_factory.mktemp("keys")))
    node = await b.start()
    source = node_pb2_grpc.SourceServiceStub(b.bed.peer_channel(node, b.bed.cert("heihe-court")))
    await source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed-1",
            records=[honour_record(f"seed-{i}", p) for i, p in enumerate((ALICE, BOB))],
            subjects=[resident(p) for p in (ALICE, BOB)],
        )
    )
    yield b
    await b.bed.close()


def _signer(token: node_pb2.ConsentToken) -> str:
    return Envelope.from_proto(token.token).signatures[0].key_id


def _keys(bed: Bed, *argv: str) -> None:
    assert bed.node is not None
    assert main(["keys", *argv, "--dir", str(bed.node.directory / "keys")]) == 0


async def test_rotation_keeps_outstanding_tokens_and_a_revoked_key_is_refused(bed: Bed) -> None:
    """REQ: H5 N15 — grant, rotate, restart: the old token still works; revoke the old
    key from before the grant time, restart: that token is refused, newer ones work."""
    t0 = int(bed.bed.now.timestamp())
    old = await bed.grant(ALICE)
    old_kid = _signer(old)
    await bed.peer().RequestAttestation(attestation_request(old, ALICE, "heihe/credit-loans"))

    _keys(bed, "rotate", "--now", str(t0))
    later = ManualClock(bed.bed.now + timedelta(hours=1))
    await bed.restart(later)
    assert bed.node is not None and bed.node.server.ctx.secrets.signing.key_id != old_kid
    await bed.peer().RequestAttestation(attestation_request(old, ALICE, "heihe/credit-loans"))
    new = await bed.grant(BOB)
    assert _signer(new) == bed.node.server.ctx.secrets.signing.key_id != old_kid
    await bed.peer().RequestAttestation(attestation_request(new, BOB, "heihe/credit-loans"))

    # Revoked AFTER the grant time: what it signed before stays valid.
    _keys(bed, "revoke", old_kid, "--at", str(t0 + 60))
    await bed.restart(later)
    await bed.peer().RequestAttestation(attestation_request(old, ALICE, "heihe/credit-loans"))

    # Revoked BEFORE the grant time: the token is refused with a stable reason, no leaf.
    _keys(bed, "revoke", old_kid, "--at", str(t0 - 60))
    await bed.restart(later)
    size = bed.log_size()
    await expect_refused(
        bed.peer().RequestAttestation(attestation_request(old, ALICE, "heihe/credit-loans")),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_KEY_REVOKED",
    )
    assert bed.log_size() == size
    await bed.peer().RequestAttestation(attestation_request(new, BOB, "heihe/credit-loans"))


async def test_refusals_naming_no_consent_of_ours_add_no_log_leaf(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    """REQ: H16 H17 N23 — unlisted callers and unverifiable tokens cannot grow the log;
    refusals about a real consent (from anyone) are still logged."""
    token = await bed.grant(ALICE)
    forged = attestation_request(token, ALICE, "heihe/credit-loans")
    grant = node_pb2.ConsentGrant.FromString(forged.consent_token.payload)
    grant.max_uses = 1000
    forged.consent_token.payload = grant.SerializeToString()
    garbage = node_pb2.AttestationRequest(
        purpose="heihe/credit-loans", nonce=b"n" * 16, subject_binding=b"b" * 32
    )
    garbage.consent_token.payload = b"x" * 4_000
    oversized = node_pb2.AttestationRequest()
    oversized.CopyFrom(garbage)
    oversized.consent_token.payload = b"x" * 10_000  # refused for its form, before anything
    unlisted = bed.peer("fuzhou")

    cases = [
        (unlisted, oversized, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
        (unlisted, garbage, grpc.StatusCode.PERMISSION_DENIED, "PEER_NOT_TRUSTED"),
        (unlisted, forged, grpc.StatusCode.PERMISSION_DENIED, "PEER_NOT_TRUSTED"),
        (bed.peer(), forged, grpc.StatusCode.PERMISSION_DENIED, "CONSENT_INVALID"),
        (bed.peer(), garbage, grpc.StatusCode.PERMISSION_DENIED, "CONSENT_INVALID"),
    ]
    size = bed.log_size()
    before = {r: bed.refusals(r) for r in ("PEER_NOT_TRUSTED", "CONSENT_INVALID")}
    with caplog.at_level(logging.INFO, logger="huxin"):
        for stub, req, status, reason in cases:
            await expect_refused(stub.RequestAttestation(req), status, reason)
    assert bed.log_size() == size
    assert bed.refusals("PEER_NOT_TRUSTED") == before["PEER_NOT_TRUSTED"] + 2
    assert bed.refusals("CONSENT_INVALID") == before["CONSENT_INVALID"] + 2
    lines = [r for r in caplog.records if "no consent of ours" in r.getMessage()]
    assert {r.fields["reason"] for r in lines} == {"PEER_NOT_TRUSTED", "CONSENT_INVALID"}  # type: ignore[attr-defined]

    # A genuine consent of ours: refused, and logged for its citizen, listed caller or not.
    await expect_refused(
        unlisted.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans")),
        grpc.StatusCode.PERMISSION_DENIED,
        "PEER_NOT_TRUSTED",
    )
    assert bed.log_size() == size + 1
    await expect_refused(
        bed.peer().RequestAttestation(
            attestation_request(token, ALICE, "heihe/deposit-free-rental")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_WRONG_PURPOSE",
    )
    assert bed.log_size() == size + 2


async def test_unusable_stored_data_is_internal_not_the_callers_fault(bed: Bed) -> None:
    """REQ: N15 — a keys error on our own stored data (a status entry whose index no
    status list can hold) is INTERNAL OWN_DATA_UNUSABLE, not the caller's INVALID_ARGUMENT."""
    assert bed.node is not None
    peer = bed.peer()
    await peer.GetStatusList(node_pb2.GetStatusListRequest())
    await bed.node.server.ctx.db.write_unit(
        lambda conn: conn.execute(
            "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, "
            "issued_at, expires_at) VALUES (?, 'corrupt', ?, 'c', 0, 1)",
            (1 << 40, b"\x00" * 32),
        )
    )
    await expect_refused(
        peer.GetStatusList(node_pb2.GetStatusListRequest()),
        grpc.StatusCode.INTERNAL,
        "OWN_DATA_UNUSABLE",
    )


async def test_a_validly_signed_token_that_is_not_the_stored_grant_is_refused(bed: Bed) -> None:
    """REQ: H5 N15 — the consent row decides: a token signed by one of our keys for a real
    consent id but with other terms (here: a longer validity and more uses) is refused,
    and the use it would have taken is not counted."""
    assert bed.node is not None
    token = await bed.grant(ALICE)
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    grant.not_after += 365 * 86_400
    grant.max_uses = 1000
    forged = sign(
        CONSENT_TYPE,
        grant.SerializeToString(deterministic=True),
        bed.node.server.ctx.secrets.signing,
    )
    altered = node_pb2.ConsentToken(
        token=forged.to_proto(), consent_id=token.consent_id, binding_salt=token.binding_salt
    )
    await expect_refused(
        bed.peer().RequestAttestation(attestation_request(altered, ALICE, "heihe/credit-loans")),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_INVALID",
    )
    (row,) = [
        c
        for c in (
            await bed.node.server.ctx.consents.of_subject(bed.node.server.ctx.records.key_of(ALICE))
        )
        if c.consent_id == token.consent_id
    ]
    assert row.uses == 0
    await bed.peer().RequestAttestation(
        attestation_request(token, ALICE, "heihe/credit-loans")
    )  # genuine: ok
