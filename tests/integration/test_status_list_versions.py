"""Status lists: a changed list is never dated like the one before it.

REQ: C2, H16 — peers keep the highest status list they have seen and treat a
different list with the same ``issued_at`` as equivocation; a withdrawal in the
same second as the previous rendering must still produce a newer list.
"""

from __future__ import annotations

from pathlib import Path

from node.demo._testbed import Testbed, attestation_request, honour_record, make_id_number, resident
from node.pb.v1 import attestation_pb2, node_pb2, node_pb2_grpc

RESIDENT = make_id_number(501)


def _parse(env: attestation_pb2.Envelope) -> attestation_pb2.StatusList:
    return attestation_pb2.StatusList.FromString(env.payload)


async def test_a_change_within_the_same_second_gets_a_later_issue_time(
    tmp_path: Path,
) -> None:
    bed = Testbed(tmp_path)
    try:
        heihe = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("court",))
        await bed.start_node("hainan", "hainan", peers=("heihe",))
        source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("court")))
        await source.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="s-1",
                records=[honour_record("r-1", RESIDENT)],
                subjects=[resident(RESIDENT)],
            )
        )
        citizen = bed.citizen_stub(heihe)
        token = await citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=heihe.identity(RESIDENT),
        )
        peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, bed.cert("hainan")))
        await peer.RequestAttestation(attestation_request(token, RESIDENT, "heihe/credit-loans"))
        first = _parse(await peer.GetStatusList(node_pb2.GetStatusListRequest()))
        again = _parse(await peer.GetStatusList(node_pb2.GetStatusListRequest()))
        assert again == first  # nothing changed: the very same list, same time
        await citizen.WithdrawConsent(
            node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
            metadata=heihe.identity(RESIDENT),
        )  # the manual clock has not moved: same second
        after = _parse(await peer.GetStatusList(node_pb2.GetStatusListRequest()))
        assert after.bits != first.bits
        assert after.issued_at == first.issued_at + 1
    finally:
        await bed.close()
