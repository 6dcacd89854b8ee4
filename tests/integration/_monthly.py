"""A Heihe node for the published-grade and monthly-run tests (issue 15 §3, H3, H16).

Real pieces only: the testbed's CA, a node directory written by ``init_region``,
mutual TLS on loopback, the node's SQLite file or PostgreSQL database, a ManualClock.  The node's monthly
scheduler checks once an hour of real time (``[schedule] interval_seconds``), so
only the tests' explicit ``run_once`` calls step it after the start.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from keys import Status, StatusList
from keys.pb.v1 import attestation_pb2
from node.cli._init import init_region
from node.core._clock import ManualClock
from node.core._config_storage import StorageConfig
from node.demo._testbed import RunningNode, Testbed, attestation_request, residence_fact
from node.monthly import MonthKey
from node.monthly._scheduler import MonthlyOutcome, MonthlyScheduler
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.store import connect

REQUESTER = "hainan"
SCENARIO = "heihe/credit-loans"  # tier A and above; discloses grade and score (H12, H14)


def penalty(record_id: str, idn: str, recognised_on: str) -> scoring_pb2.CreditRecord:
    """A serious administrative penalty: 80 points off in heihe."""
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=idn,
        source="court",
        category="admin_penalty",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        severity="serious",
    )


def honour(
    record_id: str, idn: str, recognised_on: str, level: str = "city"
) -> scoring_pb2.CreditRecord:
    """An honour: 20 points in heihe times the level (city 30, national 60, ...)."""
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=idn,
        source="court",
        category="honour",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        level=level,
    )


def payload(signed: bytes) -> attestation_pb2.Attestation:
    env = attestation_pb2.SignedAttestation.FromString(signed).envelope
    return attestation_pb2.Attestation.FromString(env.payload)


@dataclass
class Heihe:
    bed: Testbed
    node: RunningNode
    clock: ManualClock
    population: node_pb2_grpc.SourceServiceStub
    court: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub
    peer: node_pb2_grpc.PeerServiceStub

    @property
    def monthly(self) -> MonthlyScheduler:
        assert self.node.server.monthly is not None
        return self.node.server.monthly

    @property
    def db(self) -> StorageConfig:
        """The node's storage (SQLite or PostgreSQL, issue 18): what ``connect`` opens."""
        return self.node.server.ctx.config.storage

    @property
    def run_db(self) -> str | Path:
        """What ``run_month`` opens: the PostgreSQL URL or the SQLite file."""
        config = self.node.server.ctx.config
        return config.storage.url if config.storage.dialect == "postgresql" else config.database

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        conn = connect(self.db, readonly=True)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def count(self, sql: str, *params: object) -> int:
        return int(self.rows(sql, *params)[0][0])

    def key(self, idn: str) -> bytes:
        return self.node.server.ctx.records.key_of(idn)

    async def step(self, when: str) -> MonthlyOutcome | None:
        """The monthly scheduler's step at ``when`` (UTC, ISO)."""
        self.clock.set(datetime.fromisoformat(when))
        return await self.monthly.run_once()

    async def residents(self, batch: str, *idns: str, since: str = "2000-01-01") -> None:
        await self.population.SubmitResidenceFacts(
            node_pb2.SubmitResidenceFactsRequest(
                batch_id=batch, facts=[residence_fact(i, on=since) for i in idns]
            )
        )

    async def records(self, batch: str, *records: scoring_pb2.CreditRecord) -> None:
        await self.court.SubmitRecords(
            node_pb2.SubmitRecordsRequest(batch_id=batch, records=list(records))
        )

    async def my_score(self, idn: str) -> node_pb2.MyScoreResponse:
        return await self.citizen.GetMyScore(
            node_pb2.MyScoreRequest(), metadata=self.node.identity(idn)
        )

    async def grant(self, idn: str) -> node_pb2.ConsentToken:
        return await self.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience=REQUESTER,
                purpose=SCENARIO,
                scope=node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE,
            ),
            metadata=self.node.identity(idn),
        )

    async def attest(self, idn: str) -> bytes:
        token = await self.grant(idn)
        resp = await self.peer.RequestAttestation(attestation_request(token, idn, SCENARIO))
        return resp.signed_attestation

    async def status_of(self, signed: bytes) -> Status:
        index = payload(signed).status.index
        env = await self.peer.GetStatusList(node_pb2.GetStatusListRequest())
        m = attestation_pb2.StatusList.FromString(env.payload)
        return StatusList(m.issuer_region, m.list_id, m.size, raw=zlib.decompress(m.bits)).get(
            index
        )

    def month(self, period: str) -> MonthKey:
        scheme = self.node.server.ctx.scheme
        return MonthKey(period, scheme.id, scheme.version)


def write_node(bed: Testbed, start: datetime, schedule: str = "") -> Path:
    """The node directory, with ``[schedule]`` set for tests (``schedule``: more keys)."""
    assert bed.ca is not None
    directory = bed.root / "heihe"
    init_region(
        directory, "heihe", "heihe", bed.ca, start, peers=(REQUESTER,),
        sources=("heihe-court",), population=("heihe.hukou",),
        extra_toml=f"[schedule]\ninterval_seconds = 3600\n{schedule}",
    )  # fmt: skip
    return directory


def stubs(bed: Testbed, node: RunningNode, clock: ManualClock) -> Heihe:
    return Heihe(
        bed,
        node,
        clock,
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe.hukou"))),
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court"))),
        bed.citizen_stub(node),
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(node, bed.cert(REQUESTER))),
    )


async def start_heihe(tmp: Path, start: datetime, schedule: str = "") -> Heihe:
    """A served Heihe node whose first monthly step (the month due at ``start``) is done."""
    bed = Testbed(tmp, now=start)
    write_node(bed, start, schedule)
    clock = ManualClock(start)
    node = await bed.start_node("heihe", "heihe", clock=clock)
    return stubs(bed, node, clock)
