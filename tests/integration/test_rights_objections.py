"""Objections on real nodes (mutual TLS, SQLite and PostgreSQL) with a manual clock across
National Day 2026.

2026 calendar (chinese-calendar): 1-7 October are holidays (Thu 1 … Wed 7);
Sun 27 September is a holiday-week weekend, Sat 10 October is a make-up
WORKING day.  Every expected date below is counted by hand on that calendar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from keys import Status
from keys.pb.v1 import attestation_pb2
from node.demo._testbed import (
    make_id_number,
)
from node.pb.v1 import node_pb2
from tests.support.refusals import expect_refused
from tests.support.rights_region import Region, at, start_region

pytestmark = pytest.mark.asyncio(loop_scope="function")


ALICE, BOB, CAROL = make_id_number(201), make_id_number(202), make_id_number(203)


@pytest_asyncio.fixture
async def heihe(tmp_path: Path, harness_backend: str) -> AsyncIterator[Region]:
    """Heihe on each backend in turn (issue 18: ``harness_backend``)."""
    r = await start_region(tmp_path, "heihe", "heihe", [ALICE, BOB, CAROL])
    yield r
    await r.bed.close()


@pytest_asyncio.fixture
async def hainan(tmp_path: Path, harness_backend: str) -> AsyncIterator[Region]:
    """Hainan on each backend in turn (issue 18: ``harness_backend``)."""
    r = await start_region(tmp_path, "hainan", "hainan", [ALICE, BOB])
    yield r
    await r.bed.close()


def deadlines(info: node_pb2.ObjectionInfo) -> dict[str, str]:
    return {d.step: d.due for d in info.deadlines}


# ------------------------------------------------------------------ Heihe: 3 / 7 / 3


async def test_heihe_source_misses_deadline_record_masked_status_suspended_citizen_told(
    heihe: Region,
) -> None:
    """REQ: H15 — forward ≤3, source ≤7 working days (across National Day 2026); a
    missed source deadline ⇒ deemed accepted: record masked, grade recomputed at once,
    attestation SUSPENDED on the status list, the citizen notified; a late correction
    then supersedes the attestation and the reply follows within 3 working days."""
    r = heihe
    # honours 150, serious penalty 80: 600 + 150 - 80 = 670 → A
    assert await r.grade(ALICE) == "A"
    old = await r.attest(ALICE, "hainan")
    assert await r.status_of(old) is Status.VALID

    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0", reason="I paid the fine in time"),
        metadata=r.me(ALICE),
    )
    assert filed.state == "received"
    # Tue 29 Sep + 3 working days: Wed 30 Sep, Thu 8 Oct, Fri 9 Oct
    assert deadlines(filed) == {"forward": "2026-10-09"}
    assert filed.source == "heihe-court"

    assert await r.tick("2026-09-30") == 1  # the scheduler forwards it
    # Wed 30 Sep + 7: 8, 9, 10 (Sat, make-up day), 12, 13, 14, 15 October
    (queued,) = (
        await r.source.ListObjections(node_pb2.ListObjectionsRequest(open_only=True))
    ).objections
    assert queued.objection_id == filed.objection_id
    assert queued.state == "forwarded"
    assert deadlines(queued) == {"forward": "2026-10-09", "source": "2026-10-15"}
    assert not (await r.other_source.ListObjections(node_pb2.ListObjectionsRequest())).objections

    assert await r.tick("2026-10-15") == 0  # the due day itself is still in time
    assert await r.grade(ALICE) == "A"

    assert await r.tick("2026-10-16") == 1  # missed: deemed accepted
    (mine,) = (
        await r.citizen.ListMyObjections(node_pb2.ListObjectionsRequest(), metadata=r.me(ALICE))
    ).objections
    assert mine.state == "deemed_accepted"
    assert await r.grade(ALICE) == "AA"  # 750: the masked penalty stops counting at once
    report = await r.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=r.me(ALICE))
    assert {c.record_id: c.status for c in report.result.contributions}["p-0"] == "masked"
    assert await r.status_of(old) is Status.SUSPENDED
    notes = await r.notes(ALICE)
    assert any("did not answer by 2026-10-15" in n and "masked" in n for n in notes)
    assert any("A -> AA" in n for n in notes)

    # The investigation concludes late: the record was wrong → corrected.
    answered = await r.source.AnswerObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="corrected")
    )
    assert answered.state == "answered"
    assert answered.outcome == "corrected"
    # Fri 16 Oct + 3: Mon 19, Tue 20, Wed 21
    assert deadlines(answered)["reply"] == "2026-10-21"
    assert await r.status_of(old) is Status.SUPERSEDED
    assert await r.grade(ALICE) == "AA"
    assert await r.tick("2026-10-19") == 1
    (closed,) = (
        await r.citizen.ListMyObjections(node_pb2.ListObjectionsRequest(), metadata=r.me(ALICE))
    ).objections
    assert closed.state == "replied"
    assert [h.state for h in closed.history] == [
        "received",
        "forwarded",
        "deemed_accepted",
        "answered",
        "replied",
    ]
    assert any("corrected" in n for n in await r.notes(ALICE))

    # Every transition is in the citizen's transparency log.
    log = await r.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=r.me(ALICE))
    kinds = [node_pb2.LogEntry.FromString(e.entry).kind for e in log.entries]
    for kind in (
        "objection_received",
        "objection_forwarded",
        "objection_deemed_accepted",
        "objection_answered",
        "objection_replied",
    ):
        assert kind in kinds


async def test_heihe_upheld_in_time_grade_unchanged_reply_across_make_up_day(
    heihe: Region,
) -> None:
    """REQ: H15 — filed Wed 30 Sep: forward by Sat 10 Oct (make-up working day); the
    source upholds on 9 Oct; reply due Tue 13 Oct (10, 12, 13); the record stands."""
    r = heihe
    r.clock.set(at("2026-09-30"))
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1"), metadata=r.me(BOB)
    )
    assert deadlines(filed) == {"forward": "2026-10-10"}
    await r.tick("2026-09-30")
    r.clock.set(at("2026-10-09"))
    old = await r.attest(BOB, "hainan")  # this month's attestation (earlier months are superseded)
    answered = await r.source.AnswerObjection(
        node_pb2.AnswerObjectionRequest(
            objection_id=filed.objection_id, outcome="upheld", note="checked the fine register"
        )
    )
    assert deadlines(answered) == {
        "forward": "2026-10-10",
        "source": "2026-10-15",
        "reply": "2026-10-13",
    }
    assert await r.status_of(old) is Status.VALID
    assert await r.grade(BOB) == "A"
    await r.tick("2026-10-10")
    (closed,) = (
        await r.citizen.ListMyObjections(node_pb2.ListObjectionsRequest(), metadata=r.me(BOB))
    ).objections
    assert closed.state == "replied"
    assert closed.outcome == "upheld"
    assert any("it stands" in n for n in await r.notes(BOB))
    assert any("checked the fine register" in n for n in await r.notes(BOB))
    log = await r.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=r.me(BOB))
    assert all(b"fine register" not in e.entry for e in log.entries)  # free text never logged


async def test_heihe_correction_recomputes_grade_at_once_and_supersedes(heihe: Region) -> None:
    """REQ: H15 H16 — a correction recomputes score and grade immediately (not at the
    next monthly run) and the attestation that carried the old grade is SUPERSEDED."""
    r = heihe
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-2"), metadata=r.me(CAROL)
    )
    await r.tick("2026-09-29")
    assert await r.grade(CAROL) == "A"
    r.clock.set(at("2026-10-08"))
    old = await r.attest(CAROL, "hainan")
    assert await r.status_of(old) is Status.VALID
    answered = await r.source.AnswerObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="corrected")
    )
    assert await r.grade(CAROL) == "AA"
    assert await r.status_of(old) is Status.SUPERSEDED
    # Thu 8 Oct + 3: Fri 9, Sat 10 (make-up), Mon 12
    assert deadlines(answered)["reply"] == "2026-10-12"
    fresh = await r.attest(CAROL, "hainan")
    env = attestation_pb2.SignedAttestation.FromString(fresh).envelope
    assert attestation_pb2.Attestation.FromString(env.payload).grade == "AA"
    assert await r.status_of(fresh) is Status.VALID


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("another_persons_record", grpc.StatusCode.NOT_FOUND, "RECORD_NOT_FOUND"),
        ("unknown_record", grpc.StatusCode.NOT_FOUND, "RECORD_NOT_FOUND"),
        ("id_number_in_reason", grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_IN_FIELD"),
        ("second_open_objection", grpc.StatusCode.ALREADY_EXISTS, "OBJECTION_OPEN"),
        ("handling_without_handle_step", grpc.StatusCode.INVALID_ARGUMENT, "NO_HANDLE_STEP"),
        ("answer_by_other_department", grpc.StatusCode.NOT_FOUND, "OBJECTION_NOT_FOUND"),
        ("bad_outcome", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
        ("answer_twice", grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION"),
        (
            "operator_resolves_source_objection",
            grpc.StatusCode.PERMISSION_DENIED,
            "NOT_OPERATOR_OBJECTION",
        ),
        ("source_resolves", grpc.StatusCode.PERMISSION_DENIED, "NOT_OPERATOR"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_objection_refusals(
    heihe: Region, case: str, status: grpc.StatusCode, reason: str
) -> None:
    """REQ: H15 — refusals carry stable reasons; a refused call changes nothing."""
    r = heihe
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0"), metadata=r.me(ALICE)
    )
    await r.tick("2026-09-30")
    oid = filed.objection_id
    calls = {
        "another_persons_record": lambda: r.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="p-1"), metadata=r.me(ALICE)
        ),
        "unknown_record": lambda: r.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="nope"), metadata=r.me(ALICE)
        ),
        "id_number_in_reason": lambda: r.citizen.FileObjection(  # stored as typed: refused
            node_pb2.FileObjectionRequest(record_id="h-0", reason=f"I am {ALICE}"),
            metadata=r.me(ALICE),
        ),
        "second_open_objection": lambda: r.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="p-0"), metadata=r.me(ALICE)
        ),
        "handling_without_handle_step": lambda: r.citizen.FileObjection(
            node_pb2.FileObjectionRequest(record_id="h-0", about_handling=True),
            metadata=r.me(ALICE),
        ),
        "answer_by_other_department": lambda: r.other_source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="upheld")
        ),
        "bad_outcome": lambda: r.source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="deny")
        ),
        "operator_resolves_source_objection": lambda: r.operator.ResolveObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="upheld")
        ),
        "source_resolves": lambda: r.source.ResolveObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="upheld")
        ),
    }
    if case == "answer_twice":
        await r.source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="upheld")
        )
        calls[case] = lambda: r.source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=oid, outcome="corrected")
        )
    await expect_refused(calls[case](), status, reason)
    assert await r.grade(ALICE) == "A"


# ------------------------------------------------------------------ Hainan: 3 / 2 / 5


async def test_hainan_forward_2_source_5_person_told_when_source_answers(hainan: Region) -> None:
    """REQ: N21 — forward ≤2, source ≤5 working days; no separate reply step: the
    person is told as soon as the source answers."""
    r = hainan
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0"), metadata=r.me(ALICE)
    )
    assert deadlines(filed) == {"forward": "2026-10-08"}  # 30 Sep, 8 Oct
    await r.tick("2026-09-29")
    (q,) = (await r.source.ListObjections(node_pb2.ListObjectionsRequest())).objections
    assert deadlines(q)["source"] == "2026-10-12"  # 30 Sep, 8, 9, 10 (make-up), 12 Oct
    r.clock.set(at("2026-10-12"))
    done = await r.source.AnswerObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="upheld")
    )
    assert done.state == "replied"
    assert any("it stands" in n for n in await r.notes(ALICE))


async def test_hainan_operator_resolves_its_own_handling_within_3_days(hainan: Region) -> None:
    """REQ: N21 — an objection about the operator's own handling is resolved by the
    operator (certificate = the node's region) within 3 working days, never forwarded."""
    r = hainan
    filed = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1", about_handling=True), metadata=r.me(BOB)
    )
    assert filed.waiting_for == "handle"
    assert deadlines(filed) == {"handle": "2026-10-09"}  # 30 Sep, 8 Oct, 9 Oct
    await r.tick("2026-09-30")
    assert not (await r.source.ListObjections(node_pb2.ListObjectionsRequest())).objections
    await expect_refused(
        r.source.AnswerObjection(
            node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="upheld")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "OPERATOR_OBJECTION",
    )
    before = await r.grade(BOB)
    assert await r.tick("2026-10-09") == 0  # due day: in time
    assert await r.tick("2026-10-12") == 1  # overdue: escalated once, logged
    assert await r.tick("2026-10-13") == 0
    log = await r.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=r.me(BOB))
    kinds = [node_pb2.LogEntry.FromString(e.entry).kind for e in log.entries]
    assert kinds.count("objection_escalated") == 1
    done = await r.operator.ResolveObjection(
        node_pb2.AnswerObjectionRequest(objection_id=filed.objection_id, outcome="corrected")
    )
    assert done.state == "replied"
    assert done.outcome == "corrected"
    assert await r.grade(BOB) != before


async def test_a_damaged_objection_does_not_stop_the_scheduler(heihe: Region) -> None:
    """REQ: H15 — the scheduler keeps every other deadline even if one row cannot move."""
    from node.store import connect

    r = heihe
    bad = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0"), metadata=r.me(ALICE)
    )
    good = await r.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1"), metadata=r.me(BOB)
    )
    conn = connect(r.node.server.ctx.config.storage)  # either backend (issue 18)
    try:
        conn.execute(
            "UPDATE objections SET state_json = '{}' WHERE objection_id = ?", (bad.objection_id,)
        )
    finally:
        conn.close()
    assert await r.tick("2026-09-30") == 1
    (q,) = (
        await r.source.ListObjections(node_pb2.ListObjectionsRequest(open_only=True))
    ).objections
    assert q.objection_id == good.objection_id
    assert await r.tick("2026-09-30") == 0
