"""Objections to the score itself as a pure state machine (N21, N23).

Exact dates across the 2026 National Day holidays (1-7 October off, Sat 10
October a make-up working day).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from scoring import (
    CorrectRecord,
    Escalate,
    NotifyCitizen,
    ObjectionState,
    Outcome,
    Recompute,
    WorkingDayCalendar,
    file_score_objection,
    load_scheme,
    resolve_directly,
    tick,
)

CAL = WorkingDayCalendar()


def at(d: str) -> datetime:
    return datetime.fromisoformat(f"{d}T10:00:00+08:00")


@pytest.mark.parametrize(
    ("scheme", "filed", "days", "due"),
    [
        ("hainan", "2026-09-29", 3, "2026-10-09"),  # Wed 30 Sep, Thu 8, Fri 9 Oct
        ("heihe", "2026-09-29", 3, "2026-10-09"),
        ("heihe", "2026-10-09", 1, "2026-10-10"),  # Sat 10 Oct is a working day
        ("hainan", "2026-09-30", 2, "2026-10-09"),  # holidays do not count
    ],
)
def test_score_objection_due_in_working_days(scheme: str, filed: str, days: int, due: str) -> None:
    """REQ: N21, N23 — the operator's deadline for an objection to the score is counted
    in working days on the calendar, never calendar days."""
    obj, effects = file_score_objection(
        "o1", "2026-08", load_scheme(scheme), at(filed), CAL, handle_days=days
    )
    assert (obj.state, obj.waiting_for, obj.due and obj.due.isoformat()) == (
        ObjectionState.RECEIVED,
        "handle",
        due,
    )
    assert (obj.record_id, obj.period, obj.days_for("handle")) == ("", "2026-08", days)
    assert isinstance(effects[0], NotifyCitizen) and due in effects[0].message


@pytest.mark.parametrize(
    ("outcome", "effect", "told"),
    [
        (Outcome.CORRECTED, Recompute("2026-08"), "found your 2026-08 score wrong"),
        (Outcome.UPHELD, None, "your 2026-08 score; it stands"),
    ],
)
def test_score_objection_resolved_by_operator_recomputes_never_corrects_a_record(
    outcome: Outcome, effect: Recompute | None, told: str
) -> None:
    """REQ: N21 — corrected, the effect is a recomputation (no record is touched);
    upheld, nothing changes; the person is told either way (Hainan: no reply step)."""
    obj, _ = file_score_objection(
        "o1", "2026-08", load_scheme("hainan"), at("2026-09-29"), CAL, handle_days=3
    )
    done, effects = resolve_directly(obj, outcome, at("2026-09-30"), CAL)
    assert done.state is ObjectionState.REPLIED
    assert not any(isinstance(e, CorrectRecord) for e in effects)
    assert [e for e in effects if isinstance(e, Recompute)] == ([effect] if effect else [])
    assert any(isinstance(e, NotifyCitizen) and told in e.message for e in effects)


def test_score_objection_overdue_escalates_once_never_deemed_accepted() -> None:
    """REQ: N21, N23 — past the operator's deadline: one Escalate, state unchanged."""
    obj, _ = file_score_objection(
        "o1", "2026-08", load_scheme("heihe"), at("2026-09-29"), CAL, handle_days=3
    )
    same, none = tick(obj, at("2026-10-09"))
    assert (same, none) == (obj, [])
    late, effects = tick(obj, at("2026-10-10"))
    assert late.state is ObjectionState.RECEIVED
    assert effects == [Escalate("handle", obj.due)]  # type: ignore[list-item]
    assert tick(late, at("2026-10-12")) == (late, [])
