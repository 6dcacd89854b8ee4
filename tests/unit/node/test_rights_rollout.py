"""The scheme version in force while a node runs (H11, N12; docs/adr/0507).

``SchemeInForce`` swaps one immutable scheme; ``active_scheme`` decides the
version for a day (fail safe); ``follow_rollout`` applies it from the node's
real SQLite database; the scheduler survives a damaged rollout row.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import date
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

import node.rights._scheduler as sched
from node.model._rollout import (
    SchemeInForce,
    Switch,
    active_scheme,
    dump_rollout,
    follow_rollout,
    write_rollout,
)
from node.store import connect
from node.store._db import Database
from scoring import Evaluation, Rollout, RolloutError, Scheme, load_scheme, parse_scheme_toml

SHIPPED = load_scheme("heihe")
EFFECTIVE = date(2026, 4, 1)


def _text(version: str, scheme_id: str = "heihe") -> str:
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    text = text.replace('version = "2025.1"', f'version = "{version}"', 1)
    return text.replace('id = "heihe"', f'id = "{scheme_id}"', 1)


CANDIDATE = parse_scheme_toml(_text("2026.1"))
_EVALUATED = Rollout.start(SHIPPED).evaluate(CANDIDATE, Evaluation("2026.1", 0.01, 10, 2, 1))
_TRIAL = _EVALUATED.start_trial(date(2026, 1, 1))
_SCHEDULED = _TRIAL.activate(date(2026, 3, 1), EFFECTIVE)


# ------------------------------------------------------------------ SchemeInForce


def test_scheme_in_force_switches_in_one_assignment_and_returns_the_previous() -> None:
    """REQ: H11 — one immutable scheme object is replaced; readers see old or new."""
    slot = SchemeInForce(SHIPPED)
    assert slot.current is SHIPPED and slot.shipped is SHIPPED
    assert slot.switch(CANDIDATE) is SHIPPED
    assert slot.current is CANDIDATE and slot.shipped is SHIPPED
    assert SchemeInForce(SHIPPED, CANDIDATE).current is CANDIDATE


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s: s.switch(load_scheme("hainan")), id="switch-to-other-scheme"),
        pytest.param(lambda s: SchemeInForce(SHIPPED, load_scheme("hainan")), id="start-other"),
    ],
)
def test_scheme_in_force_refuses_another_scheme(build: Callable[[SchemeInForce], Any]) -> None:
    """REQ: H11 — a node never switches to a different scheme, only another version."""
    slot = SchemeInForce(SHIPPED)
    with pytest.raises(RolloutError) as info:
        build(slot)
    assert (info.value.code, info.value.field) == ("INVALID_ROLLOUT", "scheme.id")
    assert slot.current is SHIPPED


# ------------------------------------------------------------------ active_scheme table


_NEXT = parse_scheme_toml(_text("2027.1"))
# 2026.1 took effect and is current; the operator evaluates 2027.1 (candidate slot).
_SETTLED_NEXT = _SCHEDULED.settle(EFFECTIVE).evaluate(_NEXT, Evaluation("2027.1", 0.01, 10, 1, 1))


@pytest.mark.parametrize(
    ("state", "text", "day", "version"),
    [
        pytest.param(
            dump_rollout(_SCHEDULED), _text("2026.1"), date(2026, 3, 31), "2025.1", id="day-before"
        ),
        pytest.param(dump_rollout(_SCHEDULED), _text("2026.1"), EFFECTIVE, "2026.1", id="on-day"),
        pytest.param(
            dump_rollout(_SCHEDULED), _text("2026.1"), date(2027, 1, 1), "2026.1", id="later"
        ),
        pytest.param(
            dump_rollout(_TRIAL), _text("2026.1"), date(2027, 1, 1), "2025.1", id="trial-is-shadow"
        ),
        pytest.param(
            dump_rollout(_EVALUATED), _text("2026.1"), date(2027, 1, 1), "2025.1", id="evaluated"
        ),
        pytest.param(
            dump_rollout(_SETTLED_NEXT, _text("2026.1")),
            _text("2027.1"),
            date(2027, 1, 1),
            "2026.1",
            id="next-candidate-keeps-rolled-out-current",
        ),
        pytest.param(
            dump_rollout(_SETTLED_NEXT),
            _text("2027.1"),
            date(2027, 1, 1),
            "2025.1",
            id="rolled-out-current-text-missing",
        ),
        pytest.param(
            dump_rollout(_SCHEDULED), _text("2099.9"), EFFECTIVE, "2025.1", id="text-other-version"
        ),
        pytest.param(
            dump_rollout(_SCHEDULED),
            _text("2026.1", "other"),
            EFFECTIVE,
            "2025.1",
            id="text-other-scheme",
        ),
        pytest.param(dump_rollout(_SCHEDULED), "id = [", EFFECTIVE, "2025.1", id="text-damaged"),
        pytest.param(dump_rollout(_SCHEDULED), None, EFFECTIVE, "2025.1", id="text-missing"),
        pytest.param(None, None, EFFECTIVE, "2025.1", id="no-rollout"),
    ],
)
def test_version_in_force_is_fail_safe(
    state: str | None, text: str | None, day: date, version: str
) -> None:
    """REQ: H11 N12 — only a scheduled version whose stored text matches, from its
    effective date (and it stays in force while a next candidate is evaluated); a
    trial candidate is never served; anything doubtful → the shipped version."""
    got = active_scheme(state, text, SHIPPED, day)
    assert (got.id, got.version) == ("heihe", version)
    if version == SHIPPED.version:
        assert got is SHIPPED


# ------------------------------------------------------------------ follow_rollout on a real DB


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Database, sqlite3.Connection]]:
    path = tmp_path / "node.db"
    conn = connect(path)
    database = await Database.open(path)
    yield database, conn
    await database.close()
    conn.close()


def _store(conn: sqlite3.Connection, state: Rollout, text: str | None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    write_rollout(conn, state, text, None, "2026-03-01T00:00:00+00:00")
    conn.execute("COMMIT")


async def test_follow_rollout_switches_once_at_the_effective_date(
    db: tuple[Database, sqlite3.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    """REQ: H11 N12 — the running node follows the stored rollout: nothing before the
    effective date, one logged switch on it, nothing more after; a removed rollout
    puts the shipped version back (what a restart would serve)."""
    database, conn = db
    slot = SchemeInForce(SHIPPED)
    assert await follow_rollout(database, slot, EFFECTIVE) is None  # no rollout stored
    _store(conn, _TRIAL, _text("2026.1"))
    assert await follow_rollout(database, slot, EFFECTIVE) is None  # trial: shadow only
    _store(conn, _SCHEDULED, _text("2026.1"))
    assert await follow_rollout(database, slot, date(2026, 3, 31)) is None
    assert slot.current is SHIPPED
    with caplog.at_level(logging.INFO, logger="huxin.node"):
        switch = await follow_rollout(database, slot, EFFECTIVE)
    assert switch == Switch("heihe@2025.1", "heihe@2026.1", EFFECTIVE)
    assert slot.current.key == "heihe@2026.1"
    logged = [r for r in caplog.records if r.getMessage() == "model version switched"]
    assert [r.fields["current"] for r in logged] == ["heihe@2026.1"]  # type: ignore[attr-defined]
    current = slot.current
    assert await follow_rollout(database, slot, date(2026, 4, 2)) is None
    assert slot.current is current  # not re-parsed and swapped on every step
    conn.execute("DELETE FROM rollouts")
    back = await follow_rollout(database, slot, date(2026, 4, 3))
    assert back == Switch("heihe@2026.1", "heihe@2025.1", date(2026, 4, 3))
    assert slot.current is SHIPPED


async def test_scheduler_keeps_version_and_objection_timers_on_a_damaged_rollout_row(
    db: tuple[Database, sqlite3.Connection],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """REQ: H11 H15 — an unreadable rollout row is logged, the version in force stays,
    and the same step still advances objections."""
    database, conn = db
    conn.execute(
        "INSERT INTO rollouts (scheme_id, state_json, candidate_toml, updated_at) "
        "VALUES ('heihe', '{', ?, 'x')",
        (_text("2026.1"),),
    )
    advanced: list[object] = []

    async def advance(ctx: Any) -> int:
        advanced.append(ctx)
        return 0

    monkeypatch.setattr(sched, "advance", advance)
    candidate: Scheme = CANDIDATE
    ctx = SimpleNamespace(db=database, in_force=SchemeInForce(SHIPPED, candidate))
    ctx.today = lambda: EFFECTIVE
    s = sched.RightsScheduler(ctx, interval=60)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="huxin.node"):
        assert await s.run_once() == 0
    assert ctx.in_force.current is CANDIDATE and s.switches == []
    assert advanced == [ctx]
    assert [r.getMessage() for r in caplog.records] == ["model rollout check failed"]
