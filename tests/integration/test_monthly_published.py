"""Published monthly grades on a real node (mutual TLS, SQLite, a manual clock).

REQ: H3 — issue 15 §3: an attestation and the self-query carry the published grade of
the last finished month from its stored snapshot, with that month as ``period``; a
record filed mid-month changes neither until the next run.  REQ: H16, H15 — an
objection's outcome that masks a record corrects the published grade at once, and
the next attestation carries it; the month's original stays.  docs/adr/0514.

Timeline: the node starts on Sun 20 Sep 2026 (August, empty, is published at start);
the people and their September records are filed; on 1 Oct 02:00 UTC the scheduler
publishes September.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from keys import Status, decode_private_key
from node.core._clock import ManualClock
from node.core._config import load_config
from node.demo._testbed import RunningNode, Testbed, attestation_request, make_id_number
from node.monthly import LATE
from node.monthly._scheduler import MonthlyScheduler
from node.pb.v1 import node_pb2
from node.rpc._client import reason_of
from node.rpc._identity import DevIdentityProvider
from node.rpc._server import NodeServer
from tests.integration._monthly import (
    SCENARIO,
    Heihe,
    honour,
    payload,
    penalty,
    start_heihe,
    stubs,
    write_node,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")

START = datetime(2026, 9, 20, 3, 0, tzinfo=UTC)
SEPTEMBER_DUE = "2026-10-01T02:00:01+00:00"
ALICE, BOB, CAROL, DAVE = (make_id_number(n) for n in (711, 712, 713, 714))


@pytest_asyncio.fixture
async def september(tmp_path: Path) -> AsyncIterator[Heihe]:
    """ALICE (national and city honours: 690, A) and BOB (national, international and
    provincial honours less a serious penalty: 780 - 80 = 700, A); September published."""
    h = await start_heihe(tmp_path, START)
    try:
        await h.residents("people", ALICE, BOB)
        await h.records(
            "september",
            honour("h-0", ALICE, "2026-09-01", "national"),
            honour("h-1", ALICE, "2026-09-05"),
            honour("hb-1", BOB, "2026-09-02", "national"),
            honour("hb-2", BOB, "2026-09-03", "international"),
            honour("hb-3", BOB, "2026-09-04", "province"),
            penalty("p-1", BOB, "2026-09-10"),
        )
        outcome = await h.step(SEPTEMBER_DUE)
        assert outcome is not None and (outcome.period, outcome.state) == ("2026-09", "finished")
        yield h
    finally:
        await h.bed.close()


def _explained(report: node_pb2.MyScoreResponse) -> dict[str, tuple[str, int]]:
    r = report.result
    assert r.base_score + r.added - r.deducted == r.score  # the report adds up
    return {c.record_id: (c.status, c.points) for c in r.contributions}


async def test_self_query_and_attestation_carry_last_months_published_grade_and_period(
    september: Heihe,
) -> None:
    """REQ: H3, H12 — issue 15 §3: in October both answers are September's, as its run
    stored them (no correction is involved), with period 2026-09; the explained report
    adds up to the published score."""
    h = september
    h.clock.set(datetime(2026, 10, 14, 8, 0, tzinfo=UTC))
    alice, bob = await h.my_score(ALICE), await h.my_score(BOB)
    assert (alice.period, alice.result.grade, alice.result.score) == ("2026-09", "A", 690)
    assert (bob.period, bob.result.grade, bob.result.score) == ("2026-09", "A", 700)
    assert alice.result.as_of == bob.result.as_of == "2026-09-30"
    assert _explained(alice) == {"h-0": ("counted", 60), "h-1": ("counted", 30)}
    assert _explained(bob) == {
        "hb-1": ("counted", 60),
        "hb-2": ("counted", 80),
        "hb-3": ("counted", 40),
        "p-1": ("counted", -80),
    }
    att = payload(await h.attest(BOB))
    assert (att.period, att.grade, att.score) == ("2026-09", "A", 700)
    assert att.model_version == "heihe@2025.1"
    assert h.rows(
        "SELECT s.grade, s.score FROM snapshots AS s JOIN snapshot_runs AS r USING (run_id)"
        " WHERE r.period = '2026-09' AND s.subject_key = ?",
        h.key(BOB),
    ) == [("A", 700)]
    assert h.count("SELECT count(*) FROM published_corrections") == 0


async def test_a_record_filed_mid_month_changes_nothing_until_the_next_run(
    september: Heihe,
) -> None:
    """REQ: H3 — issue 15 §3: records filed on 15 October (one of them dated inside
    September) change neither the self-query nor the attestation, nor the report's
    records; the run of October, on 1 November, counts them."""
    h = september
    h.clock.set(datetime(2026, 10, 15, 8, 0, tzinfo=UTC))
    before = await h.my_score(ALICE)
    await h.records(
        "october", penalty("p-2", ALICE, "2026-09-25"), honour("h-2", ALICE, "2026-10-10")
    )
    after = await h.my_score(ALICE)
    assert after == before
    assert _explained(after) == {"h-0": ("counted", 60), "h-1": ("counted", 30)}
    att = payload(await h.attest(ALICE))
    assert (att.period, att.grade, att.score) == ("2026-09", "A", 690)

    outcome = await h.step("2026-11-01T02:00:01+00:00")
    assert outcome is not None and (outcome.period, outcome.state) == ("2026-10", "finished")
    october = await h.my_score(ALICE)
    assert (october.period, october.result.grade, october.result.score) == ("2026-10", "A", 640)
    assert _explained(october) == {
        "h-0": ("counted", 60),
        "h-1": ("counted", 30),
        "h-2": ("counted", 30),
        "p-2": ("counted", -80),
    }
    att = payload(await h.attest(ALICE))
    assert (att.period, att.grade, att.score) == ("2026-10", "A", 640)


async def test_an_objection_that_masks_a_record_corrects_the_published_grade_at_once(
    september: Heihe,
) -> None:
    """REQ: H16, H15 — issue 15 §3: BOB objects to his September penalty; the court misses
    its deadline, the record is masked: his published September grade is corrected at
    once (A 700 -> AA 780), he is told, the attestation that carried A is suspended and
    the next one carries AA for the same month; the run's row keeps A for audit."""
    h = september
    h.clock.set(datetime(2026, 10, 8, 2, 0, tzinfo=UTC))  # Thu, after National Day
    old = await h.attest(BOB)
    assert (payload(old).grade, payload(old).score) == ("A", 700)
    filed = await h.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1", reason="I paid the fine in time"),
        metadata=h.node.identity(BOB),
    )
    rights = h.node.server.scheduler
    h.clock.set(datetime(2026, 10, 9, 2, 0, tzinfo=UTC))
    assert await rights.run_once() == 1  # forwarded to the court
    h.clock.set(datetime(2026, 10, 30, 2, 0, tzinfo=UTC))
    assert await rights.run_once() == 1  # the court's 7 working days passed: masked
    (mine,) = (
        await h.citizen.ListMyObjections(
            node_pb2.ListObjectionsRequest(), metadata=h.node.identity(BOB)
        )
    ).objections
    assert (mine.objection_id, mine.state) == (filed.objection_id, "deemed_accepted")

    report = await h.my_score(BOB)
    assert (report.period, report.result.grade, report.result.score) == ("2026-09", "AA", 780)
    assert _explained(report)["p-1"] == ("masked", 0)
    notes = await h.citizen.ListNotifications(
        node_pb2.ListNotificationsRequest(), metadata=h.node.identity(BOB)
    )
    assert any(
        "published grade for 2026-09 was corrected at once: A -> AA" in n.message
        for n in notes.notifications
    )
    assert await h.status_of(old) is Status.SUSPENDED
    fresh = payload(await h.attest(BOB))
    assert (fresh.period, fresh.grade, fresh.score) == ("2026-09", "AA", 780)
    key = h.key(BOB)
    assert h.rows(
        "SELECT s.grade FROM snapshots AS s JOIN snapshot_runs AS r USING (run_id)"
        " WHERE r.period = '2026-09' AND s.subject_key = ?",
        key,
    ) == [("A",)]  # the month's original stays
    ((grade, cause),) = h.rows(
        "SELECT grade, cause FROM published_corrections WHERE subject_key = ?", key
    )
    assert grade == "AA" and cause.endswith("(record masked)")


async def test_a_resident_the_run_did_not_include_is_published_once_as_of_the_months_end(
    september: Heihe,
) -> None:
    """REQ: H3, H8, H1 — issue 15 §3: CAROL, a long-time resident whose registry entry
    was filed in October, gets September's grade (clean: the base, A) on her first
    query, once; her later record waits for the next run.  DAVE moved in on 3 October:
    for September he is not eligible, so he cannot grant a consent (nothing written)."""
    h = september
    h.clock.set(datetime(2026, 10, 5, 2, 0, tzinfo=UTC))
    await h.residents("late-carol", CAROL)
    await h.residents("new-dave", DAVE, since="2026-10-03")
    carol = await h.my_score(CAROL)
    assert (carol.period, carol.result.grade, carol.result.score) == ("2026-09", "A", 600)
    await h.records("carol", penalty("p-3", CAROL, "2026-09-20"))
    assert await h.my_score(CAROL) == carol
    assert h.rows(
        "SELECT count(*), min(cause) FROM published_corrections WHERE subject_key = ?",
        h.key(CAROL),
    ) == [(1, LATE)]

    dave = await h.my_score(DAVE)
    assert dave.period == "2026-09"
    assert not dave.result.eligible and dave.result.ineligible_reason
    with pytest.raises(aio.AioRpcError) as err:
        await h.grant(DAVE)
    assert (err.value.code(), reason_of(err.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUBJECT_NOT_ELIGIBLE",
    )
    assert h.count("SELECT count(*) FROM consents WHERE subject_key = ?", h.key(DAVE)) == 0
    assert h.count("SELECT count(*) FROM status_entries WHERE subject_key = ?", h.key(DAVE)) == 0


async def test_before_the_first_run_both_answers_are_score_not_published(tmp_path: Path) -> None:
    """REQ: H3 — issue 15 §3: a node whose first monthly step has not run yet publishes
    nothing: the self-query and a consent (which needs the grade the attestation would
    carry) are refused FAILED_PRECONDITION SCORE_NOT_PUBLISHED, never answered with a
    live score, and nothing is granted, published or issued; after the step both
    answer August."""
    bed = Testbed(tmp_path, now=START)
    directory = write_node(bed, START)
    clock = ManualClock(START)
    server = await NodeServer.create(load_config(directory / "node.toml"), clock=clock)
    server.monthly = None  # its scheduler has not started: the state before the first step
    await server.start()
    idp = DevIdentityProvider(decode_private_key((directory / "keys/dev-idp.key").read_bytes()))
    node = RunningNode("heihe", directory, server, idp, clock)
    bed.nodes["heihe"] = node
    h = stubs(bed, node, clock)
    try:
        await h.residents("people", ALICE)
        for call in (h.my_score(ALICE), h.attest(ALICE)):
            with pytest.raises(aio.AioRpcError) as err:
                await call
            assert (err.value.code(), reason_of(err.value)) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "SCORE_NOT_PUBLISHED",
            )
        assert h.count("SELECT count(*) FROM consents") == 0
        assert h.count("SELECT count(*) FROM status_entries") == 0
        assert h.count("SELECT count(*) FROM published_corrections") == 0
        assert h.count("SELECT count(*) FROM snapshot_runs") == 0

        first = await MonthlyScheduler(server.ctx).run_once()
        assert first is not None and (first.period, first.state) == ("2026-08", "finished")
        report = await h.my_score(ALICE)
        assert (report.period, report.result.grade) == ("2026-08", "A")
        assert payload(await h.attest(ALICE)).period == "2026-08"
    finally:
        await bed.close()


async def test_the_run_that_publishes_a_grade_below_the_tier_ends_the_consent(
    september: Heihe,
) -> None:
    """REQ: H3 H14 N14 — issue 15 §2, §3: Alice (690, A) grants heihe/credit-loans in
    October; two penalties filed in October bring her October grade to B.  The unit that
    finishes October's run ends the consent (withdrawn, reason SCENARIO_NOT_MET, one
    consent_ended leaf) before any relying party asks; the next request is refused
    FAILED_PRECONDITION CONSENT_WITHDRAWN, as after a withdrawal."""
    h = september
    h.clock.set(datetime(2026, 10, 15, 8, 0, tzinfo=UTC))
    token = await h.grant(ALICE)
    await h.records(
        "october", penalty("p-a1", ALICE, "2026-10-05"), penalty("p-a2", ALICE, "2026-10-06")
    )
    ended = "SELECT count(*) FROM log_entries"
    leaves = h.count(ended)
    outcome = await h.step("2026-11-01T02:00:01+00:00")
    assert outcome is not None and (outcome.period, outcome.state) == ("2026-10", "finished")
    assert (await h.my_score(ALICE)).result.grade == "B"
    assert h.rows(
        "SELECT withdrawn_reason FROM consents WHERE consent_id = ?", token.consent_id
    ) == [("SCENARIO_NOT_MET",)]
    assert h.count(ended) == leaves + 1  # the consent_ended leaf, for Alice's log alone
    with pytest.raises(aio.AioRpcError) as err:
        await h.peer.RequestAttestation(attestation_request(token, ALICE, SCENARIO))
    assert (err.value.code(), reason_of(err.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_WITHDRAWN",
    )
