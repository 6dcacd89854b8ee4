"""A region for the citizen's rights tests: real node (mutual TLS, SQLite), a manual
clock across National Day 2026, two sources, a peer and the citizen port (issue 17:
shared by ``test_rights_objections`` and ``test_rights_citizen15``).

Every seeded person holds honours and one serious penalty, so that each is at tier A
with the penalty and one tier higher without it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keys import Status, StatusList
from keys.pb.v1 import attestation_pb2
from node.core._clock import ManualClock
from node.demo._testbed import RunningNode, Testbed, attestation_request, honour_record, resident
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2

__all__ = ["MORE_HONOURS", "SCENARIO", "START", "Region", "at", "penalty", "start_region"]

START = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)  # Tue 29 Sep 2026, 10:00 Beijing
#: the consent a relying party gets, per scheme: a catalogue scenario for tier A (H14)
SCENARIO = {
    "heihe": ("heihe/credit-loans", node_pb2.CONSENT_SCOPE_GRADE),
    "hainan": ("hainan/fast-lane", node_pb2.CONSENT_SCOPE_THRESHOLD),
}
#: honours besides the city one (30), so that everyone is at tier A despite a serious
#: penalty (-80) and one tier higher without it: only a person who meets a scenario
#: holds an attestation (H14).  Heihe: 600 + 30 + 2 x 60 - 80 = 670 A, 750 AA without
#: the penalty; Hainan: 500 + 30 + 60 + 2 x 80 - 80 = 670 A, 750 AA.
MORE_HONOURS = {"heihe": ("national", "national"), "hainan": ("national",) + ("international",) * 2}


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T02:00:00+00:00")


def penalty(record_id: str, idn: str, severity: str = "serious") -> scoring_pb2.CreditRecord:
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=idn,
        source="court",
        category="admin_penalty",
        act_id=f"act-{record_id}",
        recognised_on="2026-08-20",  # in August, the month published on 29 September (H3)
        severity=severity,
    )


@dataclass
class Region:
    bed: Testbed
    node: RunningNode
    clock: ManualClock
    source: node_pb2_grpc.SourceServiceStub
    other_source: node_pb2_grpc.SourceServiceStub
    operator: node_pb2_grpc.SourceServiceStub
    peer: node_pb2_grpc.PeerServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub

    async def tick(self, day: str) -> int:
        self.clock.set(at(day))
        return await self.node.server.scheduler.run_once()

    def me(self, idn: str) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(idn)

    async def status_of(self, signed: bytes) -> Status:
        env = attestation_pb2.SignedAttestation.FromString(signed).envelope
        index = attestation_pb2.Attestation.FromString(env.payload).status.index
        sl_env = await self.peer.GetStatusList(node_pb2.GetStatusListRequest())
        m = attestation_pb2.StatusList.FromString(sl_env.payload)
        return StatusList(m.issuer_region, m.list_id, m.size, raw=zlib.decompress(m.bits)).get(
            index
        )

    async def attest(self, idn: str, requester: str) -> bytes:
        """A consented attestation for a scenario of the node's scheme the person meets
        (tier A): Heihe's discloses the grade, Hainan's is a threshold one."""
        purpose, scope = SCENARIO[self.node.server.ctx.scheme.id]
        token = await self.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(audience=requester, purpose=purpose, scope=scope),
            metadata=self.me(idn),
        )
        resp = await self.peer.RequestAttestation(attestation_request(token, idn, purpose))
        return resp.signed_attestation

    async def grade(self, idn: str) -> str:
        r = await self.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=self.me(idn))
        return r.result.grade

    async def notes(self, idn: str) -> list[str]:
        r = await self.citizen.ListNotifications(
            node_pb2.ListNotificationsRequest(), metadata=self.me(idn)
        )
        return [n.message for n in r.notifications]


async def start_region(tmp: Path, region: str, scheme: str, people: list[str]) -> Region:
    bed = Testbed(tmp, now=START)
    clock = ManualClock(START)
    other = "hainan" if region == "heihe" else "heihe"
    node = await bed.start_node(
        region,
        scheme,
        peers=(other,),
        sources=(f"{region}-court", f"{region}-tax"),
        clock=clock,
    )
    source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(f"{region}-court")))
    r = Region(
        bed,
        node,
        clock,
        source,
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(f"{region}-tax"))),
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(region))),
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(node, bed.cert(other))),
        bed.citizen_stub(node),
    )
    records = []
    for i, idn in enumerate(people):
        records.append(honour_record(f"h-{i}", idn, recognised_on="2026-06-01"))
        for n, level in enumerate(MORE_HONOURS[scheme]):
            extra = honour_record(f"h-{i}-{n}", idn, recognised_on="2026-06-01")
            extra.level = level
            records.append(extra)
        records.append(penalty(f"p-{i}", idn))
    await source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=records, subjects=[resident(p) for p in people]
        )
    )
    return r
