"""The operator's console on a real node (issue 19: "an operator sees the charts and answers
the objection"; H3, H11, H15, H16, N7, N21, N22, N23).

A real region node (mutual TLS, SQLite, manual clock) with three people and two
published months; the console's reads are checked against the store itself, and
(in the browser tests) a real headless Chromium presents an operator's client
certificate to the node's mutual-TLS HTTPS listener.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from node.console._data import (
    NOT_SCORED,
    GradeCache,
    grade_distribution,
    model_state,
    query_review,
    rights_queues,
)
from node.console._federation import federation_state
from node.pb.v1 import node_pb2
from tests.support.governed_region import ALICE, BOB, Fed, start_governed

pytestmark = pytest.mark.asyncio(loop_scope="function")

#: Wed 14 Oct 2026, after National Day: September is published too (H3), Alice's score
#: objection to August waits for the operator, Bob's record objection for the court.
LATER = datetime(2026, 10, 14, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def heihe(tmp_path: Path) -> AsyncIterator[Fed]:
    f = await start_governed(tmp_path, "heihe", "heihe")
    f.clock.set(LATER)
    assert f.node.server.monthly is not None
    await f.node.server.monthly.run_once()  # publishes September
    yield f
    await f.bed.close()


def store_grades(database: Path) -> dict[str, dict[str, int]]:
    """period -> grade -> people, straight from the snapshots (no correction exists here)."""
    conn = sqlite3.connect(database)
    try:
        out: dict[str, dict[str, int]] = {}
        for period, grade, n in conn.execute(
            "SELECT r.period, s.grade, count(*) FROM snapshots s JOIN snapshot_runs r "
            "ON r.run_id = s.run_id WHERE r.finished_at IS NOT NULL GROUP BY 1, 2"
        ):
            out.setdefault(period, {})[grade or NOT_SCORED] = n
        return out
    finally:
        conn.close()


async def file_objections(f: Fed) -> tuple[node_pb2.ObjectionInfo, node_pb2.ObjectionInfo]:
    score = await f.citizen.FileObjection(
        node_pb2.FileObjectionRequest(about_score=True, period="2026-08", reason="分数有误"),
        metadata=f.me(ALICE),
    )
    record = await f.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1", reason="not mine"), metadata=f.me(BOB)
    )
    return score, record


async def test_console_reads_match_the_store(heihe: Fed) -> None:
    """Issue 19: the chart's numbers are the published grades of the store, month by
    month (H3); the queues list both objections with every step's due day (H15, N21)."""
    ctx = heihe.node.server.ctx
    doc = await grade_distribution(ctx, 12, GradeCache())
    expected = store_grades(ctx.config.database)
    assert [m["period"] for m in doc["months"]] == ["2026-08", "2026-09"]
    for m in doc["months"]:
        assert {g: n for g, n in m["counts"].items() if n} == expected.get(m["period"], {})
    # the node started before the seed records came in: August scored nobody (H3)
    assert [m["people"] for m in doc["months"]] == [0, 3]
    assert doc["grades"][: len(ctx.scheme.grades)] == list(ctx.scheme.grades)
    assert doc["grades"][-1] == NOT_SCORED
    score, record = await file_objections(heihe)
    queues = await rights_queues(ctx)
    by_id = {o["objection_id"]: o for o in queues["objections"]}
    assert by_id[score.objection_id]["kind"] == "score"
    assert by_id[score.objection_id]["operator_resolves"] is True
    assert by_id[score.objection_id]["due"] == score.due
    assert by_id[record.objection_id]["operator_resolves"] is False
    assert by_id[record.objection_id]["deadlines"] == {d.step: d.due for d in record.deadlines}
    assert queues["objections_total"] == 2
    model = await model_state(ctx)
    assert model["stage"] == "current_only" and model["version_in_force"] == ctx.scheme.version
    assert [r["period"] for r in model["runs"]][:2] == ["2026-09", "2026-08"]
    review = await query_review(ctx)
    assert {s["source"] for s in review["sources"]} == {"heihe-court"}
    fed = await federation_state(ctx)
    assert fed["certificate"]["state"] == "valid"
    assert fed["signing_key"]["state"] in {"valid", "expires soon"}


async def test_overdue_objections_come_first(heihe: Fed) -> None:
    """Issue 19 ("deadline status, overdue first"), H15: once the operator's handle step is
    past its day, the score objection is listed first and marked overdue."""
    score, record = await file_objections(heihe)
    heihe.clock.set(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    queues = await rights_queues(heihe.node.server.ctx)
    first = queues["objections"][0]
    assert first["overdue"] is True and first["days_left"] < 0
    assert all(o["overdue"] for o in queues["objections"])  # both steps are long past
    assert {o["objection_id"] for o in queues["objections"]} == {
        score.objection_id,
        record.objection_id,
    }
