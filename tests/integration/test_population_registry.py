"""The population registry: residence facts without records, everyone scored, leavers not served.

REQ: H1, N1 — every eligible resident (18+, full civil capacity, the scheme's
residence rules) is a subject, records or not; H7 — minimal and necessary
collection: facts and records about people out of scope are refused at intake,
not stored for later; H8 — a clean resident holds the base score (Heihe: 600,
grade A); H12 — the resident may query their own score and grant consent.

Runs one real node (mutual TLS on loopback, its own SQLite file) with a
population authority ``heihe.hukou`` and ``[sources] require_registry = true``;
every "nothing was written" check reads the database file directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    residence_fact,
)
from node.monthly import due_period
from node.monthly._batch import run_month
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from node.store import connect
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLEAN = make_id_number(501)
DIES = make_id_number(502)
LEAVES = make_id_number(503)
OTHER = make_id_number(504)
UNKNOWN = make_id_number(505)
PAST_DEAD = make_id_number(506)
PAST_LEFT = make_id_number(507)


def _minor(today: date) -> str:
    born = date(today.year - 10, 1, 1).strftime("%Y%m%d")
    return make_id_number(508, born=born)


@dataclass
class Node:
    bed: Testbed
    node: RunningNode
    population: node_pb2_grpc.SourceServiceStub
    court: node_pb2_grpc.SourceServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub
    peer: node_pb2_grpc.PeerServiceStub

    def _row(self, sql: str, params: tuple[object, ...]) -> Any:
        """One row read from the node's database, on either backend (issue 18)."""
        conn = connect(self.node.server.ctx.config.storage, readonly=True)
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            conn.close()

    def count(self, sql: str, *params: object) -> int:
        return int(self._row(sql, params)[0])

    def one(self, sql: str, *params: object) -> object:
        row = self._row(sql, params)
        return None if row is None else row[0]

    async def facts(
        self, batch: str, *facts: node_pb2.ResidenceFact
    ) -> node_pb2.SubmitRecordsResponse:
        return await self.population.SubmitResidenceFacts(
            node_pb2.SubmitResidenceFactsRequest(batch_id=batch, facts=list(facts))
        )

    async def grant(self, who: str) -> node_pb2.ConsentToken:
        return await self.citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=self.node.identity(who),
        )

    @property
    def today(self) -> date:
        return self.node.clock.now().date()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    bed = Testbed(tmp_path_factory.mktemp("population"))
    heihe = await bed.start_node(
        "heihe",
        "heihe",
        peers=("hainan",),
        sources=("heihe-court",),
        population=("heihe.hukou",),
        require_registry=True,
    )
    hainan = bed.cert("hainan")
    yield Node(
        bed,
        heihe,
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe.hukou"))),
        node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court"))),
        bed.citizen_stub(heihe),
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, hainan)),
    )
    await bed.close()


def _rejections(err: aio.AioRpcError) -> list[tuple[int, str, str]]:
    detail = dict(err.trailing_metadata())["huxin-batch-rejection-bin"]
    rejection = node_pb2.BatchRejection.FromString(detail)
    return [(r.index, r.field, r.code) for r in rejection.rejections]


# name, the bad fact (second in its batch), field, exact reason
BAD_FACTS = [
    ("id-bad-check-digit", residence_fact(OTHER[:17] + ("0" if OTHER[17] != "0" else "1")),
     "subject_id", "INVALID_ID_NUMBER"),
    ("unknown-kind", residence_fact(OTHER, kind="emigrate"), "kind", "UNKNOWN_FACT_KIND"),
    ("missing-kind", residence_fact(OTHER, kind=""), "kind", "MISSING_FIELD"),
    # N1: contribution proof counts in Hainan; Heihe's rules know no such basis (H1)
    ("contribution-in-heihe", residence_fact(OTHER, kind="contribution_year",
                                              residence_kind="social_insurance"),
     "residence_kind", "UNKNOWN_RESIDENCE_KIND"),
    ("unknown-residence", residence_fact(OTHER, residence_kind="holiday_home"),
     "residence_kind", "UNKNOWN_RESIDENCE_KIND"),
    ("id-in-residence-kind", residence_fact(OTHER, residence_kind=OTHER),
     "residence_kind", "INVALID_FIELD"),
    ("death-names-residence", residence_fact(OTHER, kind="death", residence_kind="hukou"),
     "residence_kind", "INVALID_FIELD"),
    ("future-date", residence_fact(OTHER, on="2999-01-01"), "on", "INVALID_FIELD"),
    ("not-a-date", residence_fact(OTHER, on="2020-02-30"), "on", "INVALID_FIELD"),
    ("before-birth", residence_fact(OTHER, on="1980-01-01"), "on", "INVALID_FIELD"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fact", "field", "code"), BAD_FACTS, ids=[case[0] for case in BAD_FACTS]
)
async def test_bad_residence_fact_is_named_and_nothing_is_written(
    node: Node, name: str, fact: node_pb2.ResidenceFact, field: str, code: str
) -> None:
    """REQ: H1, H7, N1 — exact code, reason and field; the good fact next to it is lost too."""
    before = node.count("SELECT count(*) FROM subjects")
    err = await expect_refused(node.facts(f"bad-{name}", residence_fact(CLEAN), fact))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err) == "BATCH_REJECTED"
    assert _rejections(err) == [(1, field, code)]
    assert OTHER not in err.details()
    assert node.count("SELECT count(*) FROM subjects") == before
    assert (
        node.count("SELECT count(*) FROM population_facts WHERE batch_id = ?", f"bad-{name}") == 0
    )
    assert node.count("SELECT count(*) FROM source_batches WHERE batch_id = ?", f"bad-{name}") == 0


async def test_fact_about_a_minor_is_refused_and_not_stored(node: Node) -> None:
    """REQ: H1, H7 — a person under 18 is not a subject: nothing of them is collected."""
    minor = _minor(node.today)
    err = await expect_refused(
        node.facts("minor-1", residence_fact(minor, on=f"{node.today.year - 5}-01-01"))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _rejections(err) == [(0, "subject_id", "SUBJECT_MINOR")]
    assert node.count("SELECT count(*) FROM source_batches WHERE batch_id = 'minor-1'") == 0


async def test_only_a_population_authority_files_facts(node: Node) -> None:
    """REQ: H7, N1 — a record department is not a population authority."""
    err = await expect_refused(
        node.court.SubmitResidenceFacts(
            node_pb2.SubmitResidenceFactsRequest(batch_id="court-1", facts=[residence_fact(OTHER)])
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(err) == "POPULATION_NOT_ALLOWED"
    assert node.count("SELECT count(*) FROM source_batches WHERE batch_id = 'court-1'") == 0


async def test_empty_fact_batch_is_refused(node: Node) -> None:
    """REQ: H7 — a batch needs facts (named field)."""
    err = await expect_refused(node.facts("empty-1"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err) == "MISSING_FIELD"


async def test_fact_batch_replay_is_idempotent_and_other_content_conflicts(node: Node) -> None:
    """REQ: H1 — same batch id + same content = same answer; other content = conflict."""
    first = await node.facts("load-1", residence_fact(CLEAN), residence_fact(DIES))
    again = await node.facts("load-1", residence_fact(CLEAN), residence_fact(DIES))
    assert (first.accepted, first.replayed) == (2, False)
    assert (again.accepted, again.replayed, again.batch_sha256) == (2, True, first.batch_sha256)
    err = await expect_refused(node.facts("load-1", residence_fact(CLEAN)))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(err) == "BATCH_ID_REUSED"
    assert node.count("SELECT count(*) FROM population_facts WHERE batch_id = 'load-1'") == 2
    sealed = node.one("SELECT id_sealed FROM subjects LIMIT 1")
    assert isinstance(sealed, bytes) and CLEAN.encode() not in sealed  # sealed, never plain


async def test_clean_resident_without_records_is_scored_at_base_and_can_consent(
    node: Node,
) -> None:
    """REQ: H1, H8, H12 — no record at all: base score 600, grade A, consent, query log."""
    await node.facts("clean-1", residence_fact(CLEAN))
    assert node.count("SELECT count(*) FROM records") == 0
    resp = await node.citizen.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=node.node.identity(CLEAN)
    )
    assert resp.result.eligible
    assert (resp.result.score, resp.result.grade) == (600, "A")
    token = await node.grant(CLEAN)
    assert token.consent_id
    log = await node.citizen.QueryLog(
        node_pb2.QueryLogRequest(), metadata=node.node.identity(CLEAN)
    )
    kinds = [node_pb2.LogEntry.FromString(e.entry).kind for e in log.entries]
    assert kinds == ["consent_granted"]


async def test_death_ends_consents_and_the_person_is_no_longer_served(node: Node) -> None:
    """REQ: H1 — a death: consents withdrawn with SUBJECT_DECEASED, requests refused, rows kept."""
    await node.facts("dies-1", residence_fact(DIES))
    token = await node.grant(DIES)
    await node.facts("dies-2", residence_fact(DIES, kind="death", on=node.today.isoformat()))
    assert (
        node.one("SELECT withdrawn_reason FROM consents WHERE consent_id = ?", token.consent_id)
        == "SUBJECT_DECEASED"
    )
    err = await expect_refused(
        node.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=node.node.identity(DIES))
    )
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "SUBJECT_DECEASED")
    err = await expect_refused(node.grant(DIES))
    assert reason_of(err) == "SUBJECT_DECEASED"
    err = await expect_refused(
        node.peer.RequestAttestation(attestation_request(token, DIES, "heihe/credit-loans"))
    )
    assert reason_of(err) == "CONSENT_WITHDRAWN"
    notes = await node.citizen.ListNotifications(
        node_pb2.ListNotificationsRequest(), metadata=node.node.identity(DIES)
    )
    assert any(n.message.startswith("SUBJECT_DECEASED") for n in notes.notifications)
    assert node.count("SELECT count(*) FROM subjects WHERE died_on IS NOT NULL") == 1  # kept


async def test_move_out_ends_consents_and_refuses_with_not_resident(node: Node) -> None:
    """REQ: H1, N1, H3 — moving away: consents end (SUBJECT_NOT_RESIDENT) at once; the
    self-query still answers with the published month, in which the person lived here
    (the run after the month of the move says "not eligible":
    test_monthly_run_scores_residents_without_records_and_drops_leavers)."""
    await node.facts("leaves-1", residence_fact(LEAVES))
    token = await node.grant(LEAVES)
    await node.facts("leaves-2", residence_fact(LEAVES, kind="move_out", on=node.today.isoformat()))
    assert (
        node.one("SELECT withdrawn_reason FROM consents WHERE consent_id = ?", token.consent_id)
        == "SUBJECT_NOT_RESIDENT"
    )
    err = await expect_refused(node.grant(LEAVES))
    assert (err.code(), reason_of(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUBJECT_NOT_RESIDENT",
    )
    resp = await node.citizen.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=node.node.identity(LEAVES)
    )
    sched = node.node.server.ctx.config.schedule
    published = due_period(node.node.clock.now(), sched.monthly_day, sched.monthly_hour)
    assert resp.period == published != f"{node.today:%Y-%m}"  # H3: not today's month
    assert resp.result.eligible and resp.result.grade == "A"  # resident all that month
    assert node.count("SELECT count(*) FROM residences WHERE ended_on IS NOT NULL") >= 1  # kept


async def test_capacity_lost_ends_consents_not_eligible(node: Node) -> None:
    """REQ: H1, N1 — loss of full civil capacity: SUBJECT_NOT_ELIGIBLE; restoration serves again."""
    who = make_id_number(509)
    await node.facts("cap-1", residence_fact(who))
    token = await node.grant(who)
    await node.facts("cap-2", residence_fact(who, kind="capacity_lost", on=node.today.isoformat()))
    assert (
        node.one("SELECT withdrawn_reason FROM consents WHERE consent_id = ?", token.consent_id)
        == "SUBJECT_NOT_ELIGIBLE"
    )
    err = await expect_refused(node.grant(who))
    assert reason_of(err) == "SUBJECT_NOT_ELIGIBLE"
    await node.facts(
        "cap-3", residence_fact(who, kind="capacity_restored", on=node.today.isoformat())
    )
    assert (await node.grant(who)).consent_id


async def test_record_about_a_person_out_of_scope_is_refused_at_intake(node: Node) -> None:
    """REQ: H7 — a minor and a person the registry does not hold: named, nothing stored."""
    await node.facts("scope-1", residence_fact(OTHER))
    minor = _minor(node.today)
    request = node_pb2.SubmitRecordsRequest(
        batch_id="scope-records",
        records=[
            honour_record("s-ok", OTHER),
            honour_record("s-minor", minor, recognised_on=node.today.isoformat()),
            honour_record("s-unknown", UNKNOWN),
        ],
    )
    err = await expect_refused(node.court.SubmitRecords(request))
    assert (err.code(), reason_of(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "BATCH_REJECTED")
    assert _rejections(err) == [
        (1, "subject_id", "SUBJECT_MINOR"),
        (2, "subject_id", "SUBJECT_NOT_REGISTERED"),
    ]
    assert node.count("SELECT count(*) FROM records WHERE batch_id = 'scope-records'") == 0
    ok = await node.court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="scope-ok", records=[honour_record("s-ok", OTHER)])
    )
    assert ok.accepted == 1


async def test_monthly_run_scores_residents_without_records_and_drops_leavers(node: Node) -> None:
    """REQ: H1, H8, N1 — the month scores every registered resident; the dead leave the
    run, a person who moved out before the month is not eligible."""
    await node.facts(
        "past-1",
        residence_fact(PAST_DEAD),
        residence_fact(PAST_LEFT),
        residence_fact(PAST_DEAD, kind="death", on="2020-01-01"),
        residence_fact(PAST_LEFT, kind="move_out", on="2020-01-01"),
    )
    # the month the registry was loaded in (a run covers people registered by its end)
    config = node.node.server.ctx.config
    summary = run_month(
        config.storage.url if config.storage.dialect == "postgresql" else config.database,
        node.node.server.ctx.scheme, f"{node.today:%Y-%m}", workers=1,
    )  # fmt: skip
    key = node.node.server.ctx.records.key_of
    grade = "SELECT grade FROM snapshots WHERE run_id = ? AND subject_key = ?"
    assert node.one(grade, summary.run_id, key(CLEAN)) == "A"
    assert node.count(
        "SELECT count(*) FROM snapshots WHERE run_id = ? AND subject_key = ?",
        summary.run_id, key(PAST_DEAD),
    ) == 0  # fmt: skip
    assert node.one(
        "SELECT eligible FROM snapshots WHERE run_id = ? AND subject_key = ?",
        summary.run_id, key(PAST_LEFT),
    ) == 0  # fmt: skip


async def test_collection_consent_for_an_unregistered_person_is_refused(node: Node) -> None:
    """REQ: H7 — a collection consent would store the person: not without the registry."""
    before = node.count("SELECT count(*) FROM subjects")
    err = await expect_refused(
        node.court.RecordCollectionConsent(
            node_pb2.CollectionConsent(
                subject_id=UNKNOWN,
                collector="heihe-court",
                stated_use="loan history",
                document_sha256=bytes(32),
                signed_on="2025-01-01",
                adverse_consequences_acknowledged=True,
            )
        )
    )
    assert (err.code(), reason_of(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUBJECT_NOT_REGISTERED",
    )
    assert node.count("SELECT count(*) FROM subjects") == before


MOVER = make_id_number(510)


def _moves_in(first_day: int, n: int, kind: str = "move_in") -> list[node_pb2.ResidenceFact]:
    """``n`` move-ins of MOVER on distinct dates from 2001-01-01 + ``first_day``."""
    return [
        residence_fact(
            MOVER, kind=kind, on=(date(2001, 1, 1) + timedelta(days=first_day + k)).isoformat()
        )
        for k in range(n)
    ]


async def test_residence_facts_are_bounded_per_person_as_stored(node: Node) -> None:
    """REQ: H17, issue 14 item 7 — a person holds at most 16 CURRENT
    residences, whatever batch added them: the fact batch that would exceed it is refused
    INVALID_ARGUMENT ``TOO_MANY_ITEMS`` naming the fact (``facts[i].residence_kind``,
    also in the batch-rejection trailer) and nothing of it is written.  Ended residences
    do not count (docs/bounds.md): after a move-out, 16 new ones are accepted."""
    key = node.node.server.ctx.records.key_of(MOVER)
    current = "SELECT count(*) FROM residences WHERE subject_key = ? AND ended_on IS NULL"
    assert (await node.facts("mover-1", *_moves_in(0, 16))).accepted == 16
    assert node.count(current, key) == 16
    for batch, facts, index in (
        ("mover-2", _moves_in(100, 1), 0),
        ("mover-3", [residence_fact(CLEAN), *_moves_in(200, 1, kind="permit_issued")], 1),
    ):
        err = await expect_refused(node.facts(batch, *facts))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(err) == "TOO_MANY_ITEMS"
        assert dict(err.trailing_metadata())["huxin-field"] == f"facts[{index}].residence_kind"
        assert _rejections(err) == [(index, f"facts[{index}].residence_kind", "TOO_MANY_ITEMS")]
        assert node.count(current, key) == 16
        assert node.count("SELECT count(*) FROM residences WHERE subject_key = ?", key) == 16
        assert node.count("SELECT count(*) FROM population_facts WHERE batch_id = ?", batch) == 0
        assert node.count("SELECT count(*) FROM source_batches WHERE batch_id = ?", batch) == 0
    # every basis ends (history kept), then 16 new ones: the ended ones do not count
    out = residence_fact(MOVER, kind="move_out", on="2003-01-01")
    assert (await node.facts("mover-4", out, *_moves_in(800, 16))).accepted == 17
    assert node.count(current, key) == 16
    assert node.count("SELECT count(*) FROM residences WHERE subject_key = ?", key) == 32
