"""Objections as a state machine with working-day deadlines (H15, N21).

Driven across the 2026 Mid-Autumn and National Day holidays with exact dates.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from scoring import (
    CorrectRecord,
    Escalate,
    MaskRecord,
    NotifyCitizen,
    ObjectionError,
    ObjectionState,
    Outcome,
    UnmaskRecord,
    WorkingDayCalendar,
    answer,
    file_objection,
    forward,
    load_scheme,
    reply,
    resolve_directly,
    tick,
)

CAL = WorkingDayCalendar()
HEIHE = load_scheme("heihe")
HAINAN = load_scheme("hainan")


def at(d: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{d}T{hour:02d}:00:00+08:00")


def test_heihe_happy_path_with_exact_deadlines() -> None:
    """REQ: H15 — forward in 3, source in 7, reply in 3 working days; correction recomputes."""
    obj, effects = file_objection("o1", "r1", HEIHE, at("2026-09-24"), CAL)
    assert obj.state is ObjectionState.RECEIVED
    assert obj.due == date(2026, 9, 30)
    assert isinstance(effects[0], NotifyCitizen)
    obj, _ = forward(obj, at("2026-09-30"), CAL)
    assert (obj.state, obj.due) == (ObjectionState.FORWARDED, date(2026, 10, 15))
    obj, effects = answer(obj, Outcome.CORRECTED, at("2026-10-15", 17), CAL)
    assert effects == [CorrectRecord("r1")]
    assert (obj.state, obj.due) == (ObjectionState.ANSWERED, date(2026, 10, 20))
    obj, effects = reply(obj, at("2026-10-16"))
    assert obj.state is ObjectionState.REPLIED
    assert "corrected" in effects[0].message  # type: ignore[union-attr]
    assert [t.state for t in obj.history] == ["received", "forwarded", "answered", "replied"]


def test_heihe_missed_source_deadline_masks_record() -> None:
    """REQ: H15 — the source misses its deadline: deemed accepted, record masked, citizen told."""
    obj, _ = file_objection("o2", "r2", HEIHE, at("2026-09-24"), CAL)
    obj, _ = forward(obj, at("2026-09-28"), CAL)
    assert obj.due == date(2026, 10, 13)
    same, effects = tick(obj, at("2026-10-13", 23))
    assert (same, effects) == (obj, [])
    obj, effects = tick(obj, at("2026-10-14", 0))
    assert obj.state is ObjectionState.DEEMED_ACCEPTED
    assert effects[0] == MaskRecord("r2")
    assert "masked pending investigation" in effects[1].message  # type: ignore[union-attr]
    assert tick(obj, at("2026-10-20")) == (obj, [])
    # A late answer concludes the investigation; upheld means the mask is lifted.
    obj, effects = answer(obj, Outcome.UPHELD, at("2026-10-21"), CAL)
    assert effects == [UnmaskRecord("r2")]
    assert obj.state is ObjectionState.ANSWERED


def test_hainan_deadlines_and_direct_resolution() -> None:
    """REQ: N21 — forward in 2, source in 5; the operator may resolve its own in 3; no reply step."""
    obj, _ = file_objection("o3", "r3", HAINAN, at("2026-09-24"), CAL)
    assert obj.due == date(2026, 9, 29)
    fwd, _ = forward(obj, at("2026-09-29"), CAL)
    assert fwd.due == date(2026, 10, 12)
    done, effects = answer(fwd, Outcome.UPHELD, at("2026-10-12"), CAL)
    assert done.state is ObjectionState.REPLIED
    assert isinstance(effects[-1], NotifyCitizen)
    direct, effects = resolve_directly(obj, Outcome.CORRECTED, at("2026-09-25"), CAL)
    assert direct.state is ObjectionState.REPLIED
    assert effects[0] == CorrectRecord("r3")


def test_overdue_operator_step_escalates_once() -> None:
    obj, _ = file_objection("o4", "r4", HEIHE, at("2026-09-24"), CAL)
    obj, effects = tick(obj, at("2026-10-01"))
    assert effects == [Escalate("forward", date(2026, 9, 30))]
    assert obj.state is ObjectionState.RECEIVED
    assert tick(obj, at("2026-10-02")) == (obj, [])


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        pytest.param("reply", "expected answered", id="reply-before-answer"),
        pytest.param("answer", "expected forwarded or deemed_accepted", id="answer-before-forward"),
        pytest.param(
            "resolve-heihe", "does not let the operator resolve", id="heihe-no-handle-step"
        ),
    ],
)
def test_invalid_transitions(action: str, fragment: str) -> None:
    obj, _ = file_objection("o5", "r5", HEIHE, at("2026-09-24"), CAL)
    actions = {
        "reply": lambda: reply(obj, at("2026-09-25")),
        "answer": lambda: answer(obj, Outcome.UPHELD, at("2026-09-25"), CAL),
        "resolve-heihe": lambda: resolve_directly(obj, Outcome.UPHELD, at("2026-09-25"), CAL),
    }
    with pytest.raises(ObjectionError) as info:
        actions[action]()
    assert info.value.code == "INVALID_TRANSITION"
    assert fragment in str(info.value)
