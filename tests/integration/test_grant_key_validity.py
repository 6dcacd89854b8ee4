"""A node whose signing key has expired issues no consent tokens.

A token signed with an expired key would be refused on every later request as
PERMISSION_DENIED CONSENT_KEY_NOT_VALID, blaming the requester; so GrantConsent
refuses to sign with it and says why.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc import aio

from node.cli._init import SIGNING_KEY_DAYS
from node.core._clock import ManualClock
from node.demo._testbed import Testbed, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of

ALICE = make_id_number(901)


async def test_no_consent_is_signed_with_an_expired_signing_key(tmp_path: Path) -> None:
    """REQ: C2 H5 — a token no one could ever use is refused at the source, naming the node."""
    bed = Testbed(tmp_path)
    clock = ManualClock(bed.now)
    node = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("court",),
                                clock=clock)  # fmt: skip
    try:
        source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("court")))
        await source.SubmitRecords(node_pb2.SubmitRecordsRequest(
            batch_id="b1", records=[honour_record("r1", ALICE)], subjects=[resident(ALICE)]))  # fmt: skip
        citizen = bed.citizen_stub(node)
        grant = node_pb2.GrantConsentRequest(
            audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
        )
        assert (await citizen.GrantConsent(grant, metadata=node.identity(ALICE))).consent_id
        clock.set(bed.now + timedelta(days=SIGNING_KEY_DAYS + 1))
        with pytest.raises(aio.AioRpcError) as info:
            await citizen.GrantConsent(grant, metadata=node.identity(ALICE))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(info.value) == "NODE_KEY_EXPIRED"
        listed = await citizen.ListConsents(
            node_pb2.ListConsentsRequest(), metadata=node.identity(ALICE)
        )
        assert len(listed.consents) == 1  # only the grant made while the key was valid
    finally:
        await bed.close()
