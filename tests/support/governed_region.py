"""A region for the governance tests (repair, deregistration, rollout): a real node
(mutual TLS, SQLite, manual clock) seeded with three people, each holding honours and
one serious penalty (issue 17: shared by ``test_rights_governance`` and
``test_rights_rollout_live``).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keys import Status, StatusList
from keys.pb.v1 import attestation_pb2
from node.cli._init import init_region
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from tests.support.processes import huxin_here

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "MORE_HONOURS",
    "PEOPLE",
    "START",
    "Fed",
    "huxin_json",
    "penalty",
    "start_governed",
]

START = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)
ALICE, BOB, CAROL = make_id_number(301), make_id_number(302), make_id_number(303)
PEOPLE = [ALICE, BOB, CAROL]
#: Heihe honours besides the city one (30), so that everyone meets heihe/credit-loans
#: (tier A) despite a serious penalty and an attestation can exist at all (H14):
#: 600 + 30 + 60 + 80 - 80 = 690 A; 770 AA without the penalty; 750 AA with it at 20.
MORE_HONOURS = {"heihe": ("national", "international")}


def _honours(scheme: str, on: str) -> list[scoring_pb2.CreditRecord]:
    out = []
    for i, p in enumerate(PEOPLE):
        out.append(honour_record(f"h-{i}", p, on))
        for n, level in enumerate(MORE_HONOURS.get(scheme, ())):
            extra = honour_record(f"h-{i}-{n}", p, on)
            extra.level = level
            out.append(extra)
    return out


def penalty(
    record_id: str, idn: str, recognised_on: str = "2026-09-28"
) -> scoring_pb2.CreditRecord:
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=idn,
        source="court",
        category="admin_penalty",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        severity="serious",
    )


@dataclass
class Fed:
    bed: Testbed
    node: RunningNode
    clock: ManualClock
    source: node_pb2_grpc.SourceServiceStub
    other_source: node_pb2_grpc.SourceServiceStub
    peer: node_pb2_grpc.PeerServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub

    def me(self, idn: str) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(idn)

    async def token(self, idn: str, purpose: str = "heihe/credit-loans") -> node_pb2.ConsentToken:
        return await self.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience=self.requester, purpose=purpose, scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=self.me(idn),
        )

    requester: str = ""

    async def attest(self, idn: str) -> tuple[node_pb2.ConsentToken, bytes]:
        token = await self.token(idn)
        resp = await self.peer.RequestAttestation(
            attestation_request(token, idn, "heihe/credit-loans")
        )
        return token, resp.signed_attestation

    async def status_list(self) -> attestation_pb2.Envelope:
        return await self.peer.GetStatusList(node_pb2.GetStatusListRequest())

    async def status_of(self, signed: bytes) -> Status:
        env = attestation_pb2.SignedAttestation.FromString(signed).envelope
        index = attestation_pb2.Attestation.FromString(env.payload).status.index
        m = attestation_pb2.StatusList.FromString((await self.status_list()).payload)
        return StatusList(m.issuer_region, m.list_id, m.size, raw=zlib.decompress(m.bits)).get(
            index
        )

    async def grade(self, idn: str) -> str:
        r = await self.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=self.me(idn))
        return r.result.grade

    async def notes(self, idn: str) -> list[str]:
        r = await self.citizen.ListNotifications(
            node_pb2.ListNotificationsRequest(), metadata=self.me(idn)
        )
        return [n.message for n in r.notifications]


async def start_governed(
    tmp: Path,
    region: str,
    scheme: str,
    rights_toml: str = "",
    extra_toml: str = "",
    *,
    seed_month: str = "2026-08",
    http_listen: tuple[str, str] = ("", ""),
    wall: datetime | None = None,
) -> Fed:
    """A node with the three people's seed records formed in ``seed_month``: by default
    August, the month the node publishes on START (H3), so that they count.
    ``http_listen``: the HTTPS listeners' addresses (citizen, mutual TLS); off unless
    given (the caller starts ``node.http._app.HttpServer`` on the node's context).
    ``wall``: the wall clock of a browser that checks the node's TLS (issue 19); the
    clock stays at START, the CA and certificates are valid around both."""
    bed = Testbed(tmp, now=START, wall=wall)
    other = "hainan" if region == "heihe" else "heihe"
    assert bed.ca is not None
    init_region(
        tmp / region,
        region,
        scheme,
        bed.ca,
        START,
        peers=(other,),
        sources=(f"{region}-court", f"{region}-tax"),
        http_listen=http_listen,
    )
    bed.widen_node_certificate(tmp / region, region)
    if rights_toml:
        with (tmp / region / "node.toml").open("a", encoding="utf-8") as f:
            f.write("\n[rights]\n" + rights_toml + "\n")
    if extra_toml:
        with (tmp / region / "node.toml").open("a", encoding="utf-8") as f:
            f.write("\n" + extra_toml + "\n")
    clock = ManualClock(START)
    node = await bed.start_node(region, scheme, clock=clock)
    fed = Fed(
        bed,
        node,
        clock,
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(f"{region}-court"))),
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(f"{region}-tax"))),
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(node, bed.cert(other))),
        bed.citizen_stub(node),
        requester=other,
    )
    await fed.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=_honours(scheme, f"{seed_month}-21")
            + [penalty(f"p-{i}", p, f"{seed_month}-28") for i, p in enumerate(PEOPLE)],
            subjects=[resident(p) for p in PEOPLE],
        )
    )
    return fed


def huxin_json(*argv: str) -> dict[str, object]:
    """Run ``huxin ARGV... --json`` in this process; it must succeed; its JSON output."""
    result = huxin_here(*argv, "--json")
    assert result.code == 0, result.err
    out: dict[str, object] = json.loads(result.out)
    return out
