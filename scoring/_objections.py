"""The objection workflow as a pure state machine (H15, N21).

An objection against one record moves::

    RECEIVED ──forward──▶ FORWARDED ──answer──▶ ANSWERED ──reply──▶ REPLIED
       │                      │
       └─resolve (own data)─▶ ANSWERED          └─deadline missed─▶ DEEMED_ACCEPTED ──late answer──▶ ANSWERED

Deadlines come from the scheme's ``objection_deadlines`` in working days
(Heihe: forward 3, source 7, reply 3; Hainan: handle 3, forward 2, source 5)
counted on a :class:`~scoring.WorkingDayCalendar`.  A step a scheme does not
name has no deadline of its own: without ``reply`` the answer is replied the
same day; without ``handle`` the operator cannot resolve on its own.

Functions take an :class:`Objection` and ``now`` and return a new objection
plus the *effects* the node must carry out (mask a record, correct it,
recompute, notify the citizen, escalate an overdue step).  Nothing here does
I/O; the node applies effects and writes every transition to its
transparency log.  An impossible transition raises :class:`ObjectionError`
(code ``INVALID_TRANSITION``) naming the current state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime

from ._calendar import WorkingDayCalendar
from ._errors import ScoringError
from ._scheme import Scheme

__all__ = [
    "CorrectRecord",
    "Effect",
    "Escalate",
    "MaskRecord",
    "NotifyCitizen",
    "Objection",
    "ObjectionError",
    "ObjectionState",
    "Outcome",
    "Recompute",
    "Transition",
    "UnmaskRecord",
    "answer",
    "file_objection",
    "file_score_objection",
    "forward",
    "reply",
    "resolve_directly",
    "tick",
]


class ObjectionError(ScoringError):
    code = "INVALID_TRANSITION"


class ObjectionState(enum.StrEnum):
    RECEIVED = "received"
    FORWARDED = "forwarded"
    DEEMED_ACCEPTED = "deemed_accepted"  # source missed its deadline: record masked (H15)
    ANSWERED = "answered"
    REPLIED = "replied"


class Outcome(enum.StrEnum):
    UPHELD = "upheld"  # the record stands
    CORRECTED = "corrected"  # the record was wrong and is corrected


@dataclass(frozen=True)
class MaskRecord:
    record_id: str


@dataclass(frozen=True)
class UnmaskRecord:
    record_id: str


@dataclass(frozen=True)
class CorrectRecord:
    """The source found the record wrong: revoke or replace it and recompute at once."""

    record_id: str


@dataclass(frozen=True)
class NotifyCitizen:
    message: str


@dataclass(frozen=True)
class Escalate:
    """An operator step is overdue; raised once per step."""

    step: str
    due: date


@dataclass(frozen=True)
class Recompute:
    """An objection to the score itself was upheld in the person's favour (N21): the
    operator corrected its computation; recompute at once and supersede attestations."""

    period: str


Effect = MaskRecord | UnmaskRecord | CorrectRecord | NotifyCitizen | Escalate | Recompute


@dataclass(frozen=True)
class Transition:
    at: datetime
    state: ObjectionState
    note: str


@dataclass(frozen=True)
class Objection:
    objection_id: str
    record_id: str
    scheme_id: str
    deadlines: tuple[tuple[str, int], ...]
    state: ObjectionState
    filed_at: datetime
    due: date | None  # deadline of the step the objection waits for
    waiting_for: str  # step name: forward / source / reply / "" when closed
    outcome: Outcome | None = None
    escalated: tuple[str, ...] = ()
    history: tuple[Transition, ...] = ()
    #: "" for an objection to a record; "YYYY-MM" for one to the published score of
    #: that month (N21), which only the operator handles ("handle" step).
    period: str = ""

    def days_for(self, step: str) -> int | None:
        return dict(self.deadlines).get(step)


def _due(cal: WorkingDayCalendar, obj: Objection, step: str, start: date) -> date | None:
    days = obj.days_for(step)
    return None if days is None else cal.add_working_days(start, days)


def _move(
    obj: Objection, state: ObjectionState, now: datetime, note: str, **changes: object
) -> Objection:
    history = (*obj.history, Transition(now, state, note))
    return replace(obj, state=state, history=history, **changes)  # type: ignore[arg-type]


def _require(obj: Objection, *states: ObjectionState) -> None:
    if obj.state not in states:
        allowed = " or ".join(s.value for s in states)
        raise ObjectionError("state", f"objection is {obj.state.value}, expected {allowed}")


def file_objection(
    objection_id: str, record_id: str, scheme: Scheme, now: datetime, cal: WorkingDayCalendar
) -> tuple[Objection, list[Effect]]:
    """A citizen files an objection: the forwarding clock starts."""
    obj = Objection(
        objection_id,
        record_id,
        scheme.id,
        scheme.objection_deadlines,
        ObjectionState.RECEIVED,
        now,
        None,
        "forward",
    )
    due = _due(cal, obj, "forward", now.date())
    obj = _move(obj, ObjectionState.RECEIVED, now, "objection received", due=due)
    msg = f"objection {objection_id} received" + (
        f"; forwarded to the source by {due}" if due else ""
    )
    return obj, [NotifyCitizen(msg)]


def file_score_objection(
    objection_id: str,
    period: str,
    scheme: Scheme,
    now: datetime,
    cal: WorkingDayCalendar,
    *,
    handle_days: int,
) -> tuple[Objection, list[Effect]]:
    """A citizen objects to the published score of ``period`` itself (N21).

    The operator handles it within ``handle_days`` working days (Hainan's
    ``handle`` step; a scheme without one passes the node's configured default):
    there is no department to forward it to.  Overdue, it escalates once, like
    any operator step; it is never "deemed accepted" (no record to mask).
    """
    deadlines = (*((s, n) for s, n in scheme.objection_deadlines if s != "handle"),)
    obj = Objection(
        objection_id,
        "",
        scheme.id,
        (*deadlines, ("handle", handle_days)),
        ObjectionState.RECEIVED,
        now,
        None,
        "handle",
        period=period,
    )
    due = cal.add_working_days(now.date(), handle_days)
    obj = _move(obj, ObjectionState.RECEIVED, now, f"objection to the {period} score", due=due)
    return obj, [
        NotifyCitizen(
            f"objection {objection_id} to your {period} score received; "
            f"the operator answers by {due}"
        )
    ]


def forward(
    obj: Objection, now: datetime, cal: WorkingDayCalendar
) -> tuple[Objection, list[Effect]]:
    _require(obj, ObjectionState.RECEIVED)
    due = _due(cal, obj, "source", now.date())
    if due is None:
        raise ObjectionError("deadlines", f"scheme {obj.scheme_id} has no 'source' deadline")
    return _move(
        obj, ObjectionState.FORWARDED, now, "forwarded to the source", due=due, waiting_for="source"
    ), []


def resolve_directly(
    obj: Objection, outcome: Outcome, now: datetime, cal: WorkingDayCalendar
) -> tuple[Objection, list[Effect]]:
    """The operator resolves an objection about its own handling (Hainan's 'handle' step)."""
    _require(obj, ObjectionState.RECEIVED)
    if obj.days_for("handle") is None:
        raise ObjectionError(
            "deadlines", f"scheme {obj.scheme_id} does not let the operator resolve directly"
        )
    return _answered(obj, outcome, now, cal, "resolved by the operator")


def answer(
    obj: Objection, outcome: Outcome, now: datetime, cal: WorkingDayCalendar
) -> tuple[Objection, list[Effect]]:
    """The source answers (also after a missed deadline: the investigation concludes)."""
    _require(obj, ObjectionState.FORWARDED, ObjectionState.DEEMED_ACCEPTED)
    obj2, effects = _answered(obj, outcome, now, cal, f"source answered: {outcome.value}")
    if obj.state is ObjectionState.DEEMED_ACCEPTED and outcome is Outcome.UPHELD:
        effects.insert(0, UnmaskRecord(obj.record_id))
    return obj2, effects


def _answered(
    obj: Objection, outcome: Outcome, now: datetime, cal: WorkingDayCalendar, note: str
) -> tuple[Objection, list[Effect]]:
    effects: list[Effect] = []
    if outcome is Outcome.CORRECTED:
        effects.append(Recompute(obj.period) if obj.period else CorrectRecord(obj.record_id))
    due = _due(cal, obj, "reply", now.date())
    answered = _move(
        obj, ObjectionState.ANSWERED, now, note, outcome=outcome, due=due, waiting_for="reply"
    )
    if due is None:  # no separate reply step: the person is told at once
        replied, more = reply(answered, now)
        return replied, effects + more
    return answered, effects


def reply(obj: Objection, now: datetime) -> tuple[Objection, list[Effect]]:
    _require(obj, ObjectionState.ANSWERED)
    assert obj.outcome is not None
    if obj.period:
        text = (
            f"the operator found your {obj.period} score wrong; it has been recomputed"
            if obj.outcome is Outcome.CORRECTED
            else f"the operator checked your {obj.period} score; it stands"
        )
    else:
        text = (
            "the record was found wrong and corrected; your score has been recomputed"
            if obj.outcome is Outcome.CORRECTED
            else "the source confirmed the record; it stands"
        )
    closed = _move(
        obj, ObjectionState.REPLIED, now, f"replied: {obj.outcome.value}", due=None, waiting_for=""
    )
    return closed, [NotifyCitizen(f"objection {obj.objection_id}: {text}")]


def tick(obj: Objection, now: datetime) -> tuple[Objection, list[Effect]]:
    """Advance timers: called by the node's scheduler; idempotent for the same ``now``."""
    if obj.due is None or now.date() <= obj.due:
        return obj, []
    if obj.state is ObjectionState.FORWARDED:
        moved = _move(
            obj,
            ObjectionState.DEEMED_ACCEPTED,
            now,
            f"source missed its deadline {obj.due}: deemed accepted, record masked",
            due=None,
            waiting_for="source",
        )
        return moved, [
            MaskRecord(obj.record_id),
            NotifyCitizen(
                f"objection {obj.objection_id}: the source did not answer by {obj.due}; "
                "the record is masked pending investigation and no longer counts"
            ),
        ]
    step = obj.waiting_for
    if (
        obj.state in (ObjectionState.RECEIVED, ObjectionState.ANSWERED)
        and step not in obj.escalated
    ):
        return replace(obj, escalated=(*obj.escalated, step)), [Escalate(step, obj.due)]
    return obj, []
