"""Objections on the node (H15, N21): storage, effects and the scheduler's step.

The workflow itself is the pure state machine :mod:`scoring._objections`;
this module stores its state, applies its *effects* and logs every
transition.  Each operation is one :func:`~node.rights._events.run_rights_unit`.

Invariants:

* an objection is filed by the record's own subject only (another person's
  record is NOT_FOUND, never "forbidden"); one open objection per record;
  a record is (department, record id): the citizen's own record
  with that id, or — when two departments used the id — the one named by
  ``source``; every effect touches that department's record only;
* it is forwarded to the department that submitted the record (the batch's
  certificate identity), and only that department sees it in its queue and
  may answer it; only the operator (caller identity = the node's region) may
  resolve an objection about its own handling, and only in a scheme with a
  ``handle`` step;
* the scheduler (:func:`advance`) forwards received objections, replies
  answered ones, and moves overdue ones (source missed its deadline ⇒ deemed
  accepted ⇒ record masked, attestations suspended, grade recomputed, the
  citizen told); it is idempotent for the same ``now``;
* every transition appends ``objection_<state>`` to the transparency log;
  each step's deadline (working days on the node's calendar) is kept in
  ``deadlines_json`` so the citizen sees every date;
* an objection to the published score itself (N21, :func:`file_score`) is
  the same row with ``about_score`` set, no record, ``source`` = the node's
  region and the disputed ``period``: only the operator sees
  (:func:`list_for_operator`) and resolves it, within the scheme's ``handle``
  working days (else ``[rights] score_objection_days``); corrected, the grade
  is recomputed at once and the person's attestations superseded (ADR 0501,
  0509); overdue, it escalates once and is never deemed accepted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from node.core._errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from node.core._observe import log_event
from node.pb.v1 import node_pb2
from node.rights._events import RightsTx, run_rights_unit
from node.store import _objections as store
from node.store._optout import is_opted_out
from node.store._rights import subject_exists
from scoring import (
    CorrectRecord,
    Effect,
    Escalate,
    MaskRecord,
    NotifyCitizen,
    Objection,
    ObjectionError,
    ObjectionState,
    Outcome,
    Recompute,
    Scheme,
    Transition,
    UnmaskRecord,
    WorkingDayCalendar,
    answer,
    file_objection,
    file_score_objection,
    forward,
    reply,
    resolve_directly,
    tick,
)

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = [
    "OPEN_STATES",
    "advance",
    "answer_objection",
    "deadline_scheme",
    "dump_objection",
    "file",
    "file_score",
    "list_for_operator",
    "list_for_source",
    "list_for_subject",
    "load_objection",
]

OPEN_STATES = ("received", "forwarded", "deemed_accepted", "answered")
_KEY = store.KEY  # index of subject_key in rows read inside a unit


def dump_objection(obj: Objection) -> str:
    return json.dumps(
        {
            "objection_id": obj.objection_id,
            "record_id": obj.record_id,
            "scheme_id": obj.scheme_id,
            "deadlines": [list(d) for d in obj.deadlines],
            "state": obj.state.value,
            "filed_at": obj.filed_at.isoformat(),
            "due": obj.due.isoformat() if obj.due else None,
            "waiting_for": obj.waiting_for,
            "outcome": obj.outcome.value if obj.outcome else None,
            "escalated": list(obj.escalated),
            "history": [[t.at.isoformat(), t.state.value, t.note] for t in obj.history],
            "period": obj.period,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def load_objection(text: str) -> Objection:
    d: dict[str, Any] = json.loads(text)
    return Objection(
        objection_id=d["objection_id"],
        record_id=d["record_id"],
        scheme_id=d["scheme_id"],
        deadlines=tuple((str(s), int(n)) for s, n in d["deadlines"]),
        state=ObjectionState(d["state"]),
        filed_at=datetime.fromisoformat(d["filed_at"]),
        due=date.fromisoformat(d["due"]) if d["due"] else None,
        waiting_for=d["waiting_for"],
        outcome=Outcome(d["outcome"]) if d["outcome"] else None,
        escalated=tuple(d["escalated"]),
        history=tuple(
            Transition(datetime.fromisoformat(a), ObjectionState(s), n) for a, s, n in d["history"]
        ),
        period=str(d.get("period", "")),  # absent in rows written before score objections
    )


def deadline_scheme(ctx: NodeContext) -> Scheme:
    """The node's scheme with ``[rights] objection_deadlines`` applied (step by step)."""
    override, scheme = ctx.config.rights.objection_deadlines, ctx.scheme  # one version
    if not override:
        return scheme
    merged = {**dict(scheme.objection_deadlines), **override}
    return replace(scheme, objection_deadlines=tuple(merged.items()))


def _info(row: Sequence[Any]) -> node_pb2.ObjectionInfo:
    obj = load_objection(row[5])
    deadlines: dict[str, str] = json.loads(row[6])
    return node_pb2.ObjectionInfo(
        objection_id=obj.objection_id,
        record_id=obj.record_id,
        state=obj.state.value,
        waiting_for=obj.waiting_for,
        due=obj.due.isoformat() if obj.due else "",
        outcome=obj.outcome.value if obj.outcome else "",
        filed_at=obj.filed_at.isoformat(timespec="seconds"),
        reason=str(row[4]),
        about_handling=bool(row[3]),
        source=str(row[2]),
        history=[
            node_pb2.ObjectionStep(
                at=t.at.isoformat(timespec="seconds"), state=t.state.value, note=t.note
            )
            for t in obj.history
        ],
        deadlines=[node_pb2.StepDeadline(step=s, due=d) for s, d in deadlines.items()],
        about_score=bool(row[8]),
        period=str(row[9]),
    )


class _Stored:
    """One objection row being changed inside a rights unit."""

    def __init__(self, rtx: RightsTx, row: Sequence[Any], key: bytes) -> None:
        self.rtx = rtx
        self.row = list(row)
        self.key = key
        self.obj = load_objection(row[5])
        self.deadlines: dict[str, str] = json.loads(row[6])

    @property
    def source(self) -> str:
        return str(self.row[2])

    def save(self, obj: Objection, effects: Sequence[Effect], cal: WorkingDayCalendar) -> None:
        rtx = self.rtx
        moved = len(obj.history) > len(self.obj.history)
        if obj.due is not None and obj.waiting_for:
            self.deadlines.setdefault(obj.waiting_for, obj.due.isoformat())
        store.save_state(
            rtx.conn,
            obj.objection_id,
            state=obj.state.value,
            waiting_for=obj.waiting_for,
            due=obj.due.isoformat() if obj.due else None,
            state_json=dump_objection(obj),
            deadlines_json=json.dumps(self.deadlines),
            at_iso=rtx.now_iso,
        )
        if moved:
            for t in obj.history[len(self.obj.history) :]:
                rtx.log(
                    f"objection_{t.state.value}",
                    self.key,
                    requester=self.source,
                    reason=f"{obj.objection_id}: {t.note}",
                )
        self.obj = obj
        self.row[5] = dump_objection(obj)
        self.row[6] = json.dumps(self.deadlines)
        _apply(rtx, self.key, self.source, obj, effects)


def _apply(
    rtx: RightsTx, key: bytes, owner: str, obj: Objection, effects: Sequence[Effect]
) -> None:
    """Apply ``effects`` to the record ``owner`` (the department the objection is
    forwarded to) filed as ``obj.record_id`` (record ids are per department)."""
    for eff in effects:
        if isinstance(eff, MaskRecord):
            if rtx.set_record_status(owner, eff.record_id, "masked", only_from="active"):
                rtx.suspend(key)
                rtx.rescore(key, f"objection {obj.objection_id} (record masked)")
        elif isinstance(eff, UnmaskRecord):
            if rtx.set_record_status(owner, eff.record_id, "active", only_from="masked"):
                rtx.unsuspend(key)
                rtx.rescore(key, f"objection {obj.objection_id} (mask lifted)")
        elif isinstance(eff, CorrectRecord):
            rtx.set_record_status(owner, eff.record_id, "revoked")
            rtx.mark(
                owner,
                eff.record_id,
                "revoked",
                route="",
                note=f"corrected after objection {obj.objection_id}",
                by="objection",
            )
            rtx.supersede(key)
            rtx.rescore(key, f"objection {obj.objection_id} (record corrected)")
        elif isinstance(eff, Recompute):
            rtx.supersede(key)
            rtx.rescore(key, f"objection {obj.objection_id} (score {eff.period} corrected)")
        elif isinstance(eff, NotifyCitizen):
            rtx.notify(key, "objection", eff.message)
        elif isinstance(eff, Escalate):
            rtx.log(
                "objection_escalated",
                key,
                reason=f"{obj.objection_id}: step {eff.step} overdue since {eff.due}",
            )
            log_event("objection step overdue", 30, step=eff.step, due=str(eff.due))


async def file(
    ctx: NodeContext,
    key: bytes,
    record_id: str,
    reason: str,
    about_handling: bool,
    *,
    source: str = "",
) -> node_pb2.ObjectionInfo:
    """A citizen files an objection against one of their own records.

    Record ids are per department: the record is looked up among
    the citizen's own records; ``source`` (the department as the citizen's
    report shows it, or its certificate identity) picks one when two
    departments filed records with this id (else INVALID_ARGUMENT
    ``RECORD_AMBIGUOUS``, field ``source``).
    """
    if not record_id:
        raise InvalidArgumentError("MISSING_FIELD", "is required", field="record_id")
    scheme, cal = deadline_scheme(ctx), ctx.calendar
    handle_days = dict(scheme.objection_deadlines).get("handle")
    if about_handling and handle_days is None:
        raise InvalidArgumentError(
            "NO_HANDLE_STEP",
            f"scheme {scheme.id} has no operator handling step; the source verifies",
            field="about_handling",
        )
    now = ctx.clock.now()
    objection_id = os.urandom(8).hex()

    def fn(rtx: RightsTx) -> node_pb2.ObjectionInfo:
        found = [
            row
            for row in store.records_with_id(rtx.conn, key, record_id)
            if not source or source in (row[1], row[3])
        ]
        if not found:
            raise NotFoundError("RECORD_NOT_FOUND", "no such record of yours", field="record_id")
        if len(found) > 1:
            raise InvalidArgumentError(
                "RECORD_AMBIGUOUS",
                "several departments filed a record of yours with this id; name the "
                "department as your report shows it",
                field="source",
            )
        (owner,) = found
        if owner[2] in ("revoked", "repaired"):
            raise FailedPreconditionError(
                "RECORD_NOT_COUNTING", f"the record is {owner[2]}", field="record_id"
            )
        if store.open_on_record(rtx.conn, record_id, str(owner[1]), OPEN_STATES):
            raise AlreadyExistsError(
                "OBJECTION_OPEN", "an objection against this record is open", field="record_id"
            )
        obj, effects = file_objection(objection_id, record_id, scheme, now, cal)
        if about_handling:
            assert handle_days is not None
            due = cal.add_working_days(now.date(), handle_days)
            obj = replace(obj, waiting_for="handle", due=due)
            effects = [
                NotifyCitizen(
                    f"objection {objection_id} received; the operator resolves it by {due}"
                )
            ]
        deadlines = {obj.waiting_for: obj.due.isoformat()} if obj.due else {}
        store.insert_record_objection(
            rtx.conn,
            objection_id,
            key,
            record_id,
            str(owner[1]),
            about_handling=about_handling,
            reason=reason,  # bounded and ID-checked by the service (node.core._bounds)
            state=obj.state.value,
            waiting_for=obj.waiting_for,
            due=obj.due.isoformat() if obj.due else None,
            state_json=dump_objection(obj),
            deadlines_json=json.dumps(deadlines),
            at_iso=rtx.now_iso,
        )
        rtx.log(
            "objection_received",
            key,
            requester=str(owner[1]),
            reason=f"{objection_id}: received; {obj.waiting_for} due {obj.due}",
        )
        _apply(rtx, key, str(owner[1]), obj, effects)
        (row,) = store.by_id(rtx.conn, objection_id)
        return _info(row)

    return await run_rights_unit(ctx, fn)


async def answer_objection(
    ctx: NodeContext,
    caller: str,
    objection_id: str,
    outcome_text: str,
    note: str,
    *,
    operator: bool,
) -> node_pb2.ObjectionInfo:
    """The source answers (or the operator resolves an objection about its own handling)."""
    try:
        outcome = Outcome(outcome_text)
    except ValueError:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be 'upheld' or 'corrected'", field="outcome"
        ) from None
    cal, now = ctx.calendar, ctx.clock.now()

    def fn(rtx: RightsTx) -> node_pb2.ObjectionInfo:
        rows = store.by_id(rtx.conn, objection_id)
        stored = _Stored(rtx, rows[0], bytes(rows[0][_KEY])) if rows else None
        if stored is None or (not operator and stored.source != caller):
            raise NotFoundError("OBJECTION_NOT_FOUND", "no such objection", field="objection_id")
        try:
            obj, effects = _decide(stored, outcome)
        except ObjectionError as exc:
            raise FailedPreconditionError(
                "INVALID_TRANSITION", exc.message, field="objection_id"
            ) from None
        if note:  # free text: told to the person, never written to the append-only log
            rtx.notify(stored.key, "objection", f"objection {objection_id}: {caller} notes: {note}")
        stored.save(obj, effects, cal)
        (row,) = store.by_id(rtx.conn, objection_id)
        return _info(row)

    def _decide(stored: _Stored, outcome: Outcome) -> tuple[Objection, list[Effect]]:
        if operator:
            if not (stored.row[3] or stored.row[8]):
                raise PermissionDeniedError(
                    "NOT_OPERATOR_OBJECTION",
                    "the objection is about the source's data; the source answers it",
                    field="objection_id",
                )
            return resolve_directly(stored.obj, outcome, now, cal)
        else:
            if stored.row[3] or stored.row[8]:
                raise PermissionDeniedError(
                    "OPERATOR_OBJECTION",
                    "the objection is about the operator's handling",
                    field="objection_id",
                )
            return answer(stored.obj, outcome, now, cal)

    return await run_rights_unit(ctx, fn)


async def advance(ctx: NodeContext, now: datetime | None = None) -> int:
    """The scheduler's step: forward, reply and expire.  Returns the number moved."""
    cal = ctx.calendar
    at = now or ctx.clock.now()

    def step(rtx: RightsTx, row: Sequence[Any]) -> bool:
        stored = _Stored(rtx, row, bytes(row[_KEY]))
        before = stored.obj
        obj, effects = tick(before, at)
        if obj.state is ObjectionState.RECEIVED and obj.waiting_for == "forward":
            obj, more = forward(obj, at, cal)
            effects = [*effects, *more]
        elif obj.state is ObjectionState.ANSWERED and obj.waiting_for == "reply":
            obj, more = reply(obj, at)
            effects = [*effects, *more]
        if obj == before:
            return False
        stored.save(obj, effects, cal)
        return True

    def fn(rtx: RightsTx) -> int:
        moved = 0
        # only rows with work to do: to forward, to reply, or past their step's deadline
        for row in store.due_for_step(rtx.conn, at.date().isoformat()):
            # One objection that cannot be moved (e.g. a damaged row) must not stop the
            # others: each runs in its own savepoint and is skipped (and logged) on error.
            logged = len(rtx.logs)
            store.start_step(rtx.conn)
            try:
                moved += step(rtx, row)
            except Exception as exc:
                store.rollback_step(rtx.conn)
                del rtx.logs[logged:]
                log_event(
                    "objection step failed", 40, objection=str(row[0]), exc=type(exc).__name__
                )
            store.release_step(rtx.conn)
        return moved

    return await run_rights_unit(ctx, fn)


async def list_for_source(
    ctx: NodeContext, source: str, open_only: bool
) -> node_pb2.ListObjectionsResponse:
    rows = await store.list_for_source(ctx.db, source, open_only)
    return node_pb2.ListObjectionsResponse(objections=[_info(r) for r in rows])


async def list_for_subject(
    ctx: NodeContext, key: bytes, open_only: bool
) -> node_pb2.ListObjectionsResponse:
    rows = await store.list_for_subject(ctx.db, key, open_only)
    return node_pb2.ListObjectionsResponse(objections=[_info(r) for r in rows])


async def list_for_operator(ctx: NodeContext, open_only: bool) -> node_pb2.ListObjectionsResponse:
    """The operator's queue of objections to the score itself (N21)."""
    rows = await store.list_for_operator(ctx.db, open_only)
    return node_pb2.ListObjectionsResponse(objections=[_info(r) for r in rows])


def _month_ended(period: str, today: date) -> bool:
    try:
        first = date.fromisoformat(period + "-01")
    except ValueError:
        return False
    return (
        len(period) == 7
        and first <= today.replace(day=1)
        and (first.year, first.month)
        < (
            today.year,
            today.month,
        )
    )


async def file_score(
    ctx: NodeContext, key: bytes, period: str, reason: str
) -> node_pb2.ObjectionInfo:
    """A citizen objects to their published score of ``period`` (YYYY-MM, an ended
    month) itself (N21); the operator handles it.  One open one per period."""
    if not _month_ended(period, ctx.today()):
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be YYYY-MM, a month already ended", field="period"
        )
    scheme, cal = deadline_scheme(ctx), ctx.calendar
    handle_days = dict(scheme.objection_deadlines).get(
        "handle", ctx.config.rights.score_objection_days
    )
    now, region = ctx.clock.now(), ctx.config.region
    objection_id = os.urandom(8).hex()

    def fn(rtx: RightsTx) -> node_pb2.ObjectionInfo:
        if not subject_exists(rtx.conn, key):
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        if is_opted_out(rtx.conn, key):
            raise FailedPreconditionError(
                "SUBJECT_OPTED_OUT", "you asked not to be scored; opt in first", field="period"
            )
        if store.open_on_score(rtx.conn, key, period):
            raise AlreadyExistsError(
                "OBJECTION_OPEN", "an objection to this month's score is open", field="period"
            )
        obj, effects = file_score_objection(
            objection_id, period, scheme, now, cal, handle_days=handle_days
        )
        assert obj.due is not None
        store.insert_score_objection(
            rtx.conn,
            objection_id,
            key,
            region,
            reason=reason,  # bounded and ID-checked by the service (node.core._bounds)
            state=obj.state.value,
            waiting_for=obj.waiting_for,
            due=obj.due.isoformat(),
            state_json=dump_objection(obj),
            deadlines_json=json.dumps({obj.waiting_for: obj.due.isoformat()}),
            at_iso=rtx.now_iso,
            period=period,
        )
        rtx.log(
            "objection_received",
            key,
            requester=region,
            reason=f"{objection_id}: score {period}; handle due {obj.due}",
        )
        _apply(rtx, key, region, obj, effects)
        (row,) = store.by_id(rtx.conn, objection_id)
        return _info(row)

    return await run_rights_unit(ctx, fn)
