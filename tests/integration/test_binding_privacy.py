"""The consent's binding salt never reaches a node's disk or the wire to a node.

REQ: C2, H12, N4 — ``subject_binding = HMAC-SHA256(salt, ID)`` protects the ID
only while the salt stays away from the binding: ID numbers are few enough
(area code, birth date, sequence) to be searched when both are known.  The
salt goes to the citizen in ``ConsentToken.binding_salt`` and from them to the
relying party; the signed grant (stored, and relayed through hubs) holds no
salt, and the node keeps only the binding.  See ADR 0305.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import node_pb2, node_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

RESIDENT = make_id_number(401)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def heihe(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningNode]:
    bed = Testbed(tmp_path_factory.mktemp("binding"))
    node = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))
    source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court")))
    await source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="b-1", records=[honour_record("r-1", RESIDENT)], subjects=[resident(RESIDENT)]
        )
    )
    node.bed = bed  # type: ignore[attr-defined]
    yield node
    await bed.close()


def _stored_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*.db*")) if p.is_file())


async def test_salt_is_not_in_the_grant_nor_in_the_request_nor_on_disk(heihe: RunningNode) -> None:
    """REQ: C2, H12 — the salt is the citizen's; nodes and relays see the binding only."""
    citizen = heihe.bed.citizen_stub(heihe)  # type: ignore[attr-defined]
    token = await citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
        ),
        metadata=heihe.identity(RESIDENT),
    )
    salt = token.binding_salt
    assert len(salt) == 32
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    assert grant.consent_id == token.consent_id
    assert salt not in token.token.SerializeToString()  # the signed, relayed part
    request = attestation_request(token, RESIDENT, "heihe/credit-loans", target_scheme="hainan")
    assert salt not in request.SerializeToString()  # what a requester sends (through hubs)
    assert salt not in _stored_bytes(heihe.directory)
    assert salt.hex().encode() not in _stored_bytes(heihe.directory)
