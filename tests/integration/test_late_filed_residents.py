"""A month covers the residents of its end, however late the authority filed them (ADR 0515).

A node learns its population when the population authority files it, usually
after the month the node first publishes has ended (a fresh node, a late
file).  The monthly run decides who is in the month by the filed facts, dated
by the month's end, not by the day the node learned them: a resident since
2000 filed on the 5th of December is scored for November; a person who moved
in during December is in November's run as not eligible; nobody is scored
for a month they had not yet lived through.

REQ: H1, N1 (eligibility on the month's last day by the residence rules), H3
(monthly published grades), H8 (a resident without records at the base).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from node.core._clock import ManualClock
from node.demo._main import last_finished_month
from node.demo._testbed import RunningNode, Testbed, make_id_number, residence_fact
from node.monthly._batch import run_month
from node.pb.v1 import node_pb2, node_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONG_AGO = make_id_number(601)  # a resident since 2000
NEWCOMER = make_id_number(602)  # moved in after the month ended
LEFT = make_id_number(603)  # moved out before the month's end


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningNode]:
    now = datetime.now(UTC)
    # the 5th of this month: the last month is over, this one is not
    clock = ManualClock(now.replace(day=5, hour=12, minute=0, second=0, microsecond=0))
    bed = Testbed(tmp_path_factory.mktemp("late-filed"), now=now)
    heihe = await bed.start_node(
        "heihe", "heihe", population=("heihe.hukou",), require_registry=True, clock=clock
    )
    authority = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe.hukou")))
    today = clock.now().date()
    await authority.SubmitResidenceFacts(
        node_pb2.SubmitResidenceFactsRequest(
            batch_id="late-1",
            facts=[
                residence_fact(LONG_AGO),
                residence_fact(NEWCOMER, on=(today - timedelta(days=2)).isoformat()),
                residence_fact(LEFT),
                residence_fact(LEFT, kind="move_out", on=_last_month_day(today, 10).isoformat()),
            ],
        )
    )
    yield heihe
    await bed.close()


def _last_month_day(today: date, day: int) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=day)


def _snapshot(db: Path, run_id: int, key: bytes) -> tuple[object, ...] | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row: tuple[object, ...] | None = conn.execute(
            "SELECT eligible, score, grade, reason FROM snapshots"
            " WHERE run_id = ? AND subject_key = ?",
            (run_id, key),
        ).fetchone()
    return row


async def test_a_resident_filed_after_the_month_ended_is_scored_for_it(
    node: RunningNode,
) -> None:
    """ADR 0515 (H1, H3, H8): filed on the 5th, a resident since 2000 is in last
    month's run at the base, grade A; the subjects' filing time decides nothing."""
    ctx = node.server.ctx
    period = last_finished_month(node.clock.now().date())
    summary = run_month(ctx.config.database, ctx.scheme, period, workers=1)
    assert summary.subjects == 3
    row = _snapshot(ctx.config.database, summary.run_id, ctx.records.key_of(LONG_AGO))
    assert row == (1, 600, "A", None)


@pytest.mark.parametrize(
    ("who", "why"),
    [
        pytest.param(NEWCOMER, "no qualifying residence basis", id="moved-in-after-the-month"),
        pytest.param(LEFT, "no qualifying residence basis", id="moved-out-during-the-month"),
    ],
)
async def test_facts_dated_after_the_month_do_not_make_anyone_eligible_for_it(
    node: RunningNode, who: str, why: str
) -> None:
    """ADR 0515 (H1, N1): eligibility on the month's last day follows the facts' dates:
    a move-in after it, or a move-out before it, leaves the person not eligible."""
    ctx = node.server.ctx
    period = last_finished_month(node.clock.now().date())
    summary = run_month(ctx.config.database, ctx.scheme, period, workers=1)
    row = _snapshot(ctx.config.database, summary.run_id, ctx.records.key_of(who))
    assert row is not None
    assert row[:3] == (0, None, None)
    assert str(row[3]).startswith(why)
