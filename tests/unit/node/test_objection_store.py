"""Objection state stored as JSON: what the scheduler reloads is what the machine produced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from node.rights._objections import dump_objection, load_objection
from scoring import (
    Objection,
    ObjectionError,
    Outcome,
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
START = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["forward", "answer_up", "answer_fix", "reply", "tick", "resolve"]),
        st.integers(min_value=0, max_value=12),
    ),
    max_size=8,
)


def _apply(obj: Objection, step: str, now: datetime) -> Objection:
    try:
        if step == "forward":
            return forward(obj, now, CAL)[0]
        if step in ("answer_up", "answer_fix"):
            outcome = Outcome.UPHELD if step == "answer_up" else Outcome.CORRECTED
            return answer(obj, outcome, now, CAL)[0]
        if step == "reply":
            return reply(obj, now)[0]
        if step == "resolve":
            return resolve_directly(obj, Outcome.CORRECTED, now, CAL)[0]
        return tick(obj, now)[0]
    except ObjectionError:
        return obj


@settings(max_examples=40, deadline=None)
@given(scheme_id=st.sampled_from(["heihe", "hainan"]), steps=STEPS)
def test_any_reachable_objection_round_trips(scheme_id: str, steps: list[tuple[str, int]]) -> None:
    """REQ: H15 N21 — every state the machine reaches survives storage unchanged."""
    scheme = load_scheme(scheme_id)
    obj, _ = file_objection("o1", "r1", scheme, START, CAL)
    now = START
    for step, days in steps:
        now += timedelta(days=days)
        obj = _apply(obj, step, now)
        assert load_objection(dump_objection(obj)) == obj


def test_stored_form_has_no_subject_and_keeps_every_transition() -> None:
    """REQ: H15 — the history with notes and deadlines is kept; no subject data in it."""
    obj, _ = file_objection("o1", "r1", load_scheme("heihe"), START, CAL)
    obj, _ = forward(obj, START + timedelta(days=1), CAL)
    obj, _ = tick(obj, START + timedelta(days=20))
    text = dump_objection(obj)
    back = load_objection(text)
    assert [t.state.value for t in back.history] == ["received", "forwarded", "deemed_accepted"]
    assert back.due is None and back.waiting_for == "source"
    assert "subject" not in text
