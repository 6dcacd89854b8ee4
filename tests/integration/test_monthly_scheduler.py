"""The node runs its own monthly run: once, at the configured day and hour (H3).

REQ: H3 — issue 15 §3: nothing had to schedule the monthly run; the node runs each
finished month itself after ``[schedule] monthly_day`` / ``monthly_hour`` (UTC), once
(not again on a second tick, nor after a restart), catches up a month it was down
for, retries a failed run after ``retry_minutes``, and shows its progress in the log
and in ``huxin status``.  A hub schedules nothing.  docs/adr/0514.

Real node (mutual TLS on loopback, SQLite file) with a ManualClock; the scheduler's
background loop checks once an hour of real time, so only ``run_once`` steps it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from node.cli._init import init_region
from node.cli._status import node_status, render_status
from node.core._config import load_config
from node.demo._testbed import Testbed, make_id_number
from node.monthly._batch import run_month
from node.rpc._server import NodeServer
from node.store import connect
from node.store._monthly import mark_started
from tests.integration._monthly import Heihe, start_heihe

pytestmark = pytest.mark.asyncio(loop_scope="function")

# the people are registered in September; September's run is due on 3 Oct 05:00
START = datetime(2026, 9, 25, 12, 0, tzinfo=UTC)
SCHEDULE = "monthly_day = 3\nmonthly_hour = 5\nretry_minutes = 30\n"
PEOPLE = [make_id_number(n) for n in (721, 722, 723)]


@pytest_asyncio.fixture
async def heihe(tmp_path: Path) -> AsyncIterator[Heihe]:
    h = await start_heihe(tmp_path, START, SCHEDULE)
    try:
        await h.residents("people", *PEOPLE)
        yield h
    finally:
        await h.bed.close()


def _runs(h: Heihe) -> list[tuple[str, str, int]]:
    return [
        (p, s, a)
        for p, s, a in h.rows("SELECT period, state, attempts FROM monthly_runs ORDER BY period")
    ]


def _status(h: Heihe) -> dict[str, object]:
    doc = node_status(load_config(h.node.directory / "node.toml"), int(h.clock.now().timestamp()))
    monthly = doc["monthly"]
    assert isinstance(monthly, dict)
    return monthly


async def test_the_month_runs_once_at_the_configured_day_and_hour(
    heihe: Heihe, caplog: pytest.LogCaptureFixture
) -> None:
    """REQ: H3 — issue 15 §3: August ran when the node started (its run was due); at
    04:59:59 on 3 October nothing is due, at 05:00 September runs, every later tick
    that month does nothing; the run reads the records filed before its second; its
    start, progress and end are in the structured log."""
    h = heihe
    assert _runs(h) == [("2026-08", "finished", 1)]
    assert await h.step("2026-10-03T04:59:59+00:00") is None
    with caplog.at_level(logging.INFO, logger="huxin.node"):
        outcome = await h.step("2026-10-03T05:00:00+00:00")
    assert outcome is not None
    assert (outcome.period, outcome.state, outcome.people, outcome.scored) == (
        "2026-09",
        "finished",
        3,
        3,
    )
    for when in ("2026-10-03T05:00:01+00:00", "2026-10-31T23:59:59+00:00"):
        assert await h.step(when) is None
    assert _runs(h) == [("2026-08", "finished", 1), ("2026-09", "finished", 1)]
    assert h.rows("SELECT records_through FROM snapshot_runs WHERE period = '2026-09'") == [
        ("2026-10-03T04:59:59+00:00",)
    ]
    lines = [
        (r.getMessage(), r.fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage().startswith("monthly run")
    ]
    assert [m for m, _ in lines] == [
        "monthly run started",
        "monthly run progress",
        "monthly run finished",
    ]
    started, progress, finished = (f for _, f in lines)
    assert (started["period"], started["people"]) == ("2026-09", 3)
    assert (progress["chunks_done"], progress["chunks"], progress["people_done"]) == (1, 1, 3)
    assert (finished["scored"], finished["eligible"]) == (3, 3)


async def test_a_restart_never_runs_a_month_twice_and_catches_up_a_missed_one(
    heihe: Heihe,
) -> None:
    """REQ: H3 — issue 15 §3: the month run is recorded in the database, so a restart runs
    nothing; a node down at October's due hour (3 Nov 05:00) runs October at its first
    step after it, once; after a longer outage only the newest due month is run (the
    month it publishes), not every month it missed."""
    h = heihe
    assert (await h.step("2026-10-03T05:00:00+00:00")) is not None
    await h.bed.stop_node("heihe")
    node = await h.bed.start_node("heihe", "heihe", clock=h.clock)
    assert node.server.monthly is not None and node.server.monthly.outcomes == []
    assert _runs(h) == [("2026-08", "finished", 1), ("2026-09", "finished", 1)]

    await h.bed.stop_node("heihe")
    h.clock.set(datetime(2026, 11, 20, tzinfo=UTC))
    node = await h.bed.start_node("heihe", "heihe", clock=h.clock)
    assert node.server.monthly is not None
    assert [(o.period, o.state) for o in node.server.monthly.outcomes] == [("2026-10", "finished")]
    assert await node.server.monthly.run_once() is None

    await h.bed.stop_node("heihe")
    h.clock.set(datetime(2027, 1, 10, tzinfo=UTC))
    node = await h.bed.start_node("heihe", "heihe", clock=h.clock)
    assert node.server.monthly is not None
    assert [o.period for o in node.server.monthly.outcomes] == ["2026-12"]
    assert [p for p, _, _ in _runs(h)] == ["2026-08", "2026-09", "2026-10", "2026-12"]


async def test_a_failed_run_is_marked_and_retried_after_retry_minutes(
    heihe: Heihe, caplog: pytest.LogCaptureFixture
) -> None:
    """REQ: H3 — issue 15 §3: a run that fails (here a stored record of a category the
    scheme does not know) is marked failed with its reason code in the database, the
    log and ``huxin status``; August stays the published month (a half run is never
    served); the next tick within retry_minutes does nothing; once the cause is gone
    the retry finishes the month (attempt 2)."""
    h = heihe
    conn = connect(h.db)
    conn.execute(
        "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id,"
        " recognised_on, batch_id, submitted_at, submitted_by) VALUES (?, 'bad', 'court',"
        " 'no_such_category', 'positive', 'bad-act', '2026-09-01', 'b',"
        " '2026-09-25T12:00:00+00:00', 'heihe-court')",
        (h.key(PEOPLE[0]),),
    )
    conn.close()
    with caplog.at_level(logging.INFO, logger="huxin.node"):
        failed = await h.step("2026-10-03T05:00:00+00:00")
    assert failed is not None and (failed.state, failed.error) == ("failed", "UNKNOWN_CATEGORY")
    assert _runs(h)[-1] == ("2026-09", "failed", 1)
    (line,) = [r for r in caplog.records if r.getMessage() == "monthly run failed"]
    assert line.fields["error"] == "UNKNOWN_CATEGORY"  # type: ignore[attr-defined]
    (run,) = _status(h)["runs"][:1]  # type: ignore[index]
    assert (run["period"], run["state"], run["error"]) == ("2026-09", "failed", "UNKNOWN_CATEGORY")
    text = render_status(
        node_status(load_config(h.node.directory / "node.toml"), int(h.clock.now().timestamp()))
    )
    assert "2026-09 heihe@2025.1 FAILED 2026-10-03T05:00:00+00:00: UNKNOWN_CATEGORY" in text
    assert (await h.my_score(PEOPLE[1])).period == "2026-08"

    assert await h.step("2026-10-03T05:29:59+00:00") is None
    conn = connect(h.db)
    conn.execute("DELETE FROM records WHERE record_id = 'bad'")
    conn.close()
    retried = await h.step("2026-10-03T05:30:00+00:00")
    assert retried is not None and retried.state == "finished"
    assert _runs(h)[-1] == ("2026-09", "finished", 2)
    assert (await h.my_score(PEOPLE[1])).period == "2026-09"


async def test_status_shows_the_progress_of_a_run_and_then_its_end(heihe: Heihe) -> None:
    """REQ: H3 — issue 15 §3: ``huxin status`` reads the run's progress from the database
    (chunks and people done of the total); a run a stopped node left half done shows as
    interrupted, and the node's next step resumes it rather than starting over."""
    h = heihe
    h.clock.set(datetime(2026, 10, 3, 5, 0, tzinfo=UTC))
    month = h.month("2026-09")
    conn = connect(h.db)
    mark_started(conn, month, people=3, at="2026-10-03T05:00:00+00:00")
    conn.close()

    class Stop(Exception):
        pass

    def stop_after_first(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):  # the node stopped after one chunk of three
        run_month(h.run_db, h.node.server.ctx.scheme, "2026-09", workers=1, chunk_subjects=1,
                  progress=stop_after_first, records_through="2026-10-03T04:59:59+00:00")  # fmt: skip
    (first,) = h.rows(
        "SELECT c.subjects FROM snapshot_run_chunks AS c JOIN snapshot_runs AS r USING (run_id)"
        " WHERE r.period = '2026-09'"
    )
    (run,) = _status(h)["runs"][:1]  # type: ignore[index]
    assert (run["period"], run["state"], run["chunks_done"], run["chunks"]) == (
        "2026-09",
        "running",
        1,
        3,
    )
    assert (run["people_done"], run["people"]) == (first[0], 3)
    text = render_status(
        node_status(load_config(h.node.directory / "node.toml"), int(h.clock.now().timestamp()))
    )
    assert (
        f"2026-09 heihe@2025.1 interrupted (resumes when the node serves again): 1/3 chunks,"
        f" {first[0]} of 3 people (attempt 1)"
    ) in text

    resumed = await h.monthly.run_once()
    assert resumed is not None and (resumed.state, resumed.scored) == ("finished", 3)
    monthly = _status(h)
    (run,) = monthly["runs"][:1]  # type: ignore[index]
    assert (run["state"], run["attempts"], run["chunks_done"], run["people_done"]) == (
        "finished",
        2,
        3,
        3,
    )
    # the schedule's run ended at the node's clock; the published month is the one
    # finished snapshot run of 2026-09, as stored
    assert run["finished_at"] == "2026-10-03T05:00:00+00:00"
    (finished_at,) = h.rows(
        "SELECT finished_at FROM snapshot_runs WHERE period = '2026-09' AND finished_at IS NOT NULL"
    )
    assert monthly["published"] == {
        "period": "2026-09",
        "scheme_version": "2025.1",
        "finished_at": finished_at[0],
    }
    assert (monthly["next_period"], monthly["next_due"]) == (
        "2026-10",
        "2026-11-03T05:00:00+00:00",
    )
    text = render_status(
        node_status(load_config(h.node.directory / "node.toml"), int(h.clock.now().timestamp()))
    )
    assert (
        "monthly run: day 3 at 05:00 UTC; published 2026-09 (2025.1);"
        " next 2026-10 due 2026-11-03T05:00:00+00:00"
    ) in text


async def test_a_hub_schedules_nothing(tmp_path: Path) -> None:
    """REQ: H3, H13 — issue 15 §3: a hub scores nobody: no monthly scheduler, no run, and
    ``huxin status`` says so."""
    bed = Testbed(tmp_path, now=START)
    assert bed.ca is not None
    init_region(tmp_path / "hub", "heilongjiang", "heihe", bed.ca, START, role="hub")
    config = load_config(tmp_path / "hub/node.toml")
    hub = await NodeServer.create(config)
    await hub.start()
    try:
        assert hub.monthly is None
        doc = node_status(config, int(START.timestamp()))
        assert doc["monthly"] == {"scheduled": False, "why": "role hub scores nobody"}
        assert "monthly run: not scheduled (role hub scores nobody)" in render_status(doc)
        conn = connect(config.storage)
        assert conn.execute("SELECT count(*) FROM monthly_runs").fetchone() == (0,)
        conn.close()
    finally:
        await hub.stop(0)
        await bed.close()
