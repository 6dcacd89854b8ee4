"""Rights building blocks without servers: config, calendar, throttle, tombstones, N7, rollout."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core._config import ConfigError, RightsConfig, parse_config
from node.core._errors import ResourceExhaustedError
from node.exchange._throttle import RETRY_AFTER_KEY, QueryThrottle
from node.model._rollout import active_scheme, dump_rollout, load_rollout
from node.rights._events import build_calendar
from node.store import connect
from node.store._erase import subject_tables
from node.store._records import RecordsRepository, tombstone
from scoring import CreditRecord as Rec
from scoring import (
    Evaluation,
    Polarity,
    Rollout,
    WorkingDayCalendar,
    load_scheme,
    parse_scheme_toml,
)

BASE: dict[str, Any] = {
    "node": {"region": "heihe", "scheme": "heihe"},
    "tls": {"cert": "a", "key": "b", "ca": "c"},
    "keys": {"root": "r", "signing": "s", "key_set": "k", "storage_secret": "t", "seal": "u"},
}


def _rights(**values: Any) -> dict[str, Any]:
    return {**BASE, "rights": values}


# ------------------------------------------------------------------ [rights] config


def test_rights_defaults_and_overrides(tmp_path: Path) -> None:
    """REQ: N23 — rate limits are configured per node and per requester."""
    assert parse_config(BASE, tmp_path).rights == RightsConfig()
    cfg = parse_config(
        _rights(
            queries_per_minute=100,
            query_burst=5,
            per_requester_per_minute={"bank": 3},
            holiday_files=["h/2027.toml"],
            scheduler_interval_seconds=5,
        ),
        tmp_path,
    ).rights
    assert cfg.rate_for("bank") == 3
    assert cfg.rate_for("other") == 100
    assert cfg.holiday_files == (tmp_path / "h/2027.toml",)
    assert cfg.scheduler_interval_seconds == 5.0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        pytest.param({"queries_per_minute": -1}, "rights.queries_per_minute", id="negative-rate"),
        pytest.param({"queries_per_minute": True}, "rights.queries_per_minute", id="bool"),
        pytest.param({"query_burst": -1}, "rights.query_burst", id="negative-burst"),
        pytest.param(
            {"per_requester_per_minute": {"bank": 0}},
            "rights.per_requester_per_minute.bank",
            id="zero-requester",
        ),
        pytest.param({"holiday_files": "x.toml"}, "rights.holiday_files", id="not-a-list"),
        pytest.param(
            {"scheduler_interval_seconds": 0}, "rights.scheduler_interval_seconds", id="interval"
        ),
        pytest.param({"deadline": 3}, "rights.deadline", id="unknown-key"),
    ],
)
def test_bad_rights_config_names_the_field(
    tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_rights(**values), tmp_path)
    assert info.value.field == field


def test_operator_holiday_file_decides_an_uncovered_year(tmp_path: Path) -> None:
    """REQ: H15 N21 — a year chinese-calendar lacks is decided by the operator's file."""
    f = tmp_path / "2031.toml"
    f.write_text(
        "year = 2031\nholidays = [2031-10-01, 2031-10-02, 2031-10-03]\nworkdays = [2031-09-28]\n"
    )
    cal = build_calendar(RightsConfig(holiday_files=(f,)))
    assert cal.coverage(2031) == "operator"
    # Tue 30 Sep 2031 + 2 working days: Wed 1-Fri 3 Oct are holidays → Mon 6, Tue 7 Oct
    assert cal.add_working_days(date(2031, 9, 30), 2) == date(2031, 10, 7)
    assert cal.is_working_day(date(2031, 9, 28))  # a Sunday made a working day


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("year = 2031\nholidays = []\n", "holidays", id="no-holidays"),
        pytest.param("not toml [", "TOML", id="syntax"),
        pytest.param(None, "cannot read", id="missing-file"),
    ],
)
def test_bad_holiday_file_is_a_config_error(tmp_path: Path, text: str | None, needle: str) -> None:
    f = tmp_path / "h.toml"
    if text is not None:
        f.write_text(text)
    with pytest.raises(ConfigError) as info:
        build_calendar(RightsConfig(holiday_files=(f,)))
    assert info.value.field == "rights.holiday_files"
    assert needle in str(info.value)


# ------------------------------------------------------------------ throttle


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


# The throttle's behaviour table lives in tests/unit/node/test_throttle.py (run against
# the in-process and the shared buckets alike); the bound property stays below.


# ------------------------------------------------------------------ deregistration helpers


def test_tombstone_is_keyed_and_unlinkable_without_the_secret() -> None:
    """REQ: H2 — the tombstone is an HMAC of the subject key under the region secret."""
    key = b"\x07" * 32
    a, b = tombstone(b"s" * 32, key), tombstone(b"t" * 32, key)
    assert a != b and len(a) == 32 and key not in a
    assert tombstone(b"s" * 32, key) == a


def test_subject_tables_cover_every_table_with_a_subject_key(tmp_path: Path) -> None:
    """REQ: H2 — deletion finds tables through sqlite_master, later migrations included."""
    conn = connect(tmp_path / "n.db")
    conn.execute("CREATE TABLE later_feature (subject_key BLOB, x INT)")
    tables = subject_tables(conn)
    assert tables[-1] == "subjects"
    for t in ("records", "consents", "objections", "notifications", "supplements", "snapshots"):
        assert t in tables
    assert "later_feature" in tables
    assert "deregistrations" not in tables
    conn.close()


# ------------------------------------------------------------------ timeliness (N7)


def _rec(formed: date) -> Rec:
    return Rec("r", "x", "court", "honour", Polarity.POSITIVE, "a", formed)


@pytest.mark.parametrize(
    ("formed", "today", "due"),
    [
        pytest.param(date(2026, 9, 8), date(2026, 9, 29), None, id="15th-working-day-on-time"),
        pytest.param(date(2026, 9, 7), date(2026, 9, 29), "2026-09-28", id="one-day-late"),
        pytest.param(date(2026, 9, 20), date(2026, 9, 29), None, id="recent"),
        # 30 Sep, 8, 9, 10 (make-up), 12-16, 19-23, 26 Oct
        pytest.param(date(2026, 9, 29), date(2026, 10, 26), None, id="national-day-in-between"),
        pytest.param(date(2026, 9, 29), date(2026, 10, 27), "2026-10-26", id="after-holiday"),
        # 2-3, 6-10, 13-17, 19 (Sunday make-up day), 20, 21 January 2020
        pytest.param(date(2020, 1, 1), date(2026, 9, 29), "2020-01-21", id="years-old"),
    ],
)
def test_share_due_flags_records_shared_after_15_working_days(
    formed: date, today: date, due: str | None
) -> None:
    """REQ: N7 — shared more than 15 working days after formation ⇒ flagged, still accepted."""
    repo = RecordsRepository(None, b"s" * 32, None, WorkingDayCalendar())  # type: ignore[arg-type]
    assert repo.share_due([_rec(formed)], today) == [due]


# ------------------------------------------------------------------ rollout state


def _candidate_text(version: str) -> str:
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    return text.replace('version = "2025.1"', f'version = "{version}"', 1)


def test_rollout_state_round_trips_and_decides_the_version_in_force() -> None:
    """REQ: H11 N12 — the stored rollout decides which version scores on a day."""
    shipped = load_scheme("heihe")
    cand_text = _candidate_text("2026.1")
    cand = parse_scheme_toml(cand_text)
    r = Rollout.start(shipped).evaluate(cand, Evaluation("2026.1", 0.01, 10, 2, 1))
    r = r.start_trial(date(2026, 1, 1)).activate(date(2026, 3, 1), date(2026, 4, 1))
    assert load_rollout(dump_rollout(r)) == r
    state = dump_rollout(r)
    assert active_scheme(state, cand_text, shipped, date(2026, 3, 31)) is shipped
    assert active_scheme(state, cand_text, shipped, date(2026, 4, 1)).version == "2026.1"
    assert active_scheme(None, None, shipped, date(2030, 1, 1)) is shipped
    # A stored text that does not match the state is never used (fail safe).
    assert active_scheme(state, _candidate_text("2099.9"), shipped, date(2026, 4, 2)) is shipped


def test_objection_rows_and_notifications_cascade_with_the_subject(tmp_path: Path) -> None:
    """REQ: H2 — rights rows reference the subject; deleting it leaves none behind."""
    conn = connect(tmp_path / "n.db")
    key = b"\x01" * 32
    now = datetime(2026, 9, 29, tzinfo=UTC).isoformat()
    conn.execute(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
        "VALUES (?, '1985-01-01', x'00', ?)",
        (key, now),
    )
    conn.execute(
        "INSERT INTO notifications (subject_key, kind, message, created_at) VALUES (?, 'x', 'y', ?)",
        (key, now),
    )
    conn.execute("DELETE FROM subjects WHERE subject_key = ?", (key,))
    assert conn.execute("SELECT count(*) FROM notifications").fetchone() == (0,)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO deregistrations (tombstone, deregistered_at) VALUES (x'01', ?)", (now,)
        )
    conn.close()


# ------------------------------------------------------------------ deadline overrides


def test_objection_deadlines_can_be_overridden_per_node(tmp_path: Path) -> None:
    """REQ: H15 N21 — deadlines are the scheme's unless the node's config overrides a step."""
    from dataclasses import replace as dc_replace

    from node.rights._objections import deadline_scheme

    cfg = parse_config(_rights(objection_deadlines={"source": 5}), tmp_path)
    assert cfg.rights.objection_deadlines == {"source": 5}

    class Ctx:
        scheme = load_scheme("heihe")
        config = cfg

    merged = deadline_scheme(Ctx())  # type: ignore[arg-type]
    assert dict(merged.objection_deadlines) == {"forward": 3, "source": 5, "reply": 3}
    Ctx.config = dc_replace(cfg, rights=RightsConfig())
    assert deadline_scheme(Ctx()) is Ctx.scheme  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param({"appeal": 3}, "rights.objection_deadlines.appeal", id="unknown-step"),
        pytest.param({"source": 0}, "rights.objection_deadlines.source", id="zero"),
        pytest.param({"source": 61}, "rights.objection_deadlines.source", id="too-long"),
    ],
)
def test_bad_deadline_override_names_the_step(
    tmp_path: Path, value: dict[str, int], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_rights(objection_deadlines=value), tmp_path)
    assert info.value.field == field


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=120),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=60),
)
def test_throttle_never_admits_more_than_burst_plus_refill(
    rate: int, burst: int, gaps: list[float]
) -> None:
    """REQ: N23 — over any window, admitted queries ≤ burst + rate × window."""
    clock = _Clock()
    t = QueryThrottle(RightsConfig(queries_per_minute=rate, query_burst=burst), clock)
    start = clock.t
    admitted = 0
    hints: list[int] = []
    for gap in gaps:
        clock.t += gap
        try:
            t.check("x")
            admitted += 1
        except ResourceExhaustedError as exc:
            hints.append(int(dict(exc.details)[RETRY_AFTER_KEY]))
    assert all(h >= 1 for h in hints)
    assert admitted <= min(burst, rate) + rate * (clock.t - start) / 60.0 + 1e-9
