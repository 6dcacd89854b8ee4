"""Credit-repair applications (N22, H16): the citizen applies, the department decides.

A person may repair a negative record "by commitment, rectification,
verification, credit report, or charity" (N22).  The application goes to the
department that filed the record (its certificate identity): only it lists
and decides it.  Granted, the record is marked ``repaired`` exactly as
``MarkRecord`` does — in ONE rights unit with the mark, the grade recomputed at
once, the person's attestations superseded, the person told and the
transparency log written (ADR 0501).

Invariants:

* only the person's own, active, negative record can be the object (another
  person's record is NOT_FOUND ``RECORD_NOT_FOUND``, never "forbidden"); one
  pending application per record (ALREADY_EXISTS ``REPAIR_PENDING``);
* ``due`` is the last working day of the decision step on the node's
  calendar: ``[rights] repair_decision_days`` (default 5) after filing.
  Neither seed gives a number for repair (ADR 0509); the scheduler
  (:func:`advance`) escalates an application past ``due`` once: the person is
  told and the log records it.  A late decision still counts;
* a refusal carries the department's reason (told to the person, never put in
  the append-only log); the log holds only application ids, routes and the
  record's digest, never a caller-chosen string;
* every caller-chosen field is bounded and ID-checked by the service before
  anything here runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from node.core._errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from node.pb.v1 import node_pb2
from node.rights._events import RightsTx, grade_change_proto, run_rights_unit
from node.store import _repair as store

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = [
    "REPAIR_ROUTES",
    "advance",
    "apply",
    "decide",
    "list_for_department",
    "list_for_subject",
    "record_digest",
]


def _info(
    row: Sequence[Any], today: date, grade: node_pb2.GradeChange | None = None
) -> node_pb2.RepairApplicationInfo:
    state, due = str(row[5]), str(row[6])
    info = node_pb2.RepairApplicationInfo(
        application_id=str(row[0]),
        record_id=str(row[1]),
        source=str(row[2]),
        route=str(row[3]),
        statement=str(row[4]),
        state=state,
        due=due,
        overdue=bool(row[7]) or (state == "pending" and date.fromisoformat(due) < today),
        reason=str(row[8]),
        filed_at=str(row[9]),
        decided_at=str(row[10] or ""),
    )
    if grade is not None:
        info.grade.CopyFrom(grade)
    return info


#: The repair routes a source may record (N25: commitment, rectification, verification,
#: a credit report, charity); the source servicer checks requests against this set.
REPAIR_ROUTES = frozenset(
    {"commitment", "rectification", "verification", "credit_report", "charity"}
)


def record_digest(record_id: str) -> str:
    """What the transparency log holds instead of a source-chosen record id."""
    return hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:16]


async def apply(
    ctx: NodeContext,
    key: bytes,
    req: node_pb2.RepairApplicationRequest,
) -> node_pb2.RepairApplicationInfo:
    """The person applies to repair one of their negative records (N22)."""
    routes = REPAIR_ROUTES
    if req.route not in routes:
        raise InvalidArgumentError(
            "INVALID_FIELD", f"must be one of {', '.join(sorted(routes))}", field="route"
        )
    if req.evidence_sha256 and len(req.evidence_sha256) != 32:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be a 32-byte SHA-256", field="evidence_sha256"
        )
    today = ctx.today()
    due = ctx.calendar.add_working_days(today, ctx.config.rights.repair_decision_days)
    application_id = os.urandom(8).hex()

    def fn(rtx: RightsTx) -> node_pb2.RepairApplicationInfo:
        found = [
            row
            for row in store.records_with_id(rtx.conn, key, req.record_id)
            if not req.source or req.source in (row[0], row[1])
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
        ((owner, _src, status, polarity),) = found
        if polarity != "negative":
            raise InvalidArgumentError(
                "NOT_NEGATIVE", "only a negative record can be repaired (N22)", field="record_id"
            )
        if status != "active":
            raise FailedPreconditionError(
                "RECORD_NOT_COUNTING", f"the record is {status}", field="record_id"
            )
        if store.pending_on_record(rtx.conn, owner, req.record_id):
            raise AlreadyExistsError(
                "REPAIR_PENDING",
                "a repair application for this record is pending",
                field="record_id",
            )
        store.insert_application(
            rtx.conn,
            application_id,
            key,
            str(owner),
            req.record_id,
            route=req.route,
            statement=req.statement,
            evidence_sha256=bytes(req.evidence_sha256) or None,
            due=due.isoformat(),
            at_iso=rtx.now_iso,
        )
        rtx.log("repair_applied", key, requester=str(owner), reason=f"{application_id} {req.route}")
        rtx.notify(
            key,
            "repair",
            f"repair application {application_id} ({req.route}) for record {req.record_id} "
            f"sent to {owner}; it decides by {due}",
        )
        row = store.by_id(rtx.conn, application_id)
        return _info(row, today)

    return await run_rights_unit(ctx, fn)


async def decide(
    ctx: NodeContext, department: str, application_id: str, grant: bool, reason: str
) -> node_pb2.RepairApplicationInfo:
    """The department that filed the record grants (repairs it) or refuses."""
    if not grant and not reason:
        raise InvalidArgumentError("MISSING_FIELD", "a refusal states its reason", field="reason")
    today = ctx.today()

    def fn(rtx: RightsTx) -> node_pb2.RepairApplicationInfo:
        conn = rtx.conn
        row = store.by_id_with_key(conn, application_id)
        if row is None or str(row[2]) != department:
            raise NotFoundError(
                "REPAIR_APPLICATION_NOT_FOUND", "no such application", field="application_id"
            )
        if row[5] != "pending":
            raise FailedPreconditionError(
                "REPAIR_DECIDED", f"already {row[5]}", field="application_id"
            )
        key, record_id, route = bytes(row[11]), str(row[1]), str(row[3])
        change = None
        if grant:
            if not rtx.set_record_status(department, record_id, "repaired", only_from="active"):
                raise FailedPreconditionError(
                    "RECORD_NOT_COUNTING", "the record does not count", field="application_id"
                )
            rtx.mark(
                department,
                record_id,
                "repaired",
                route=route,
                note=f"repair application {application_id}",
                by=department,
            )
            rtx.supersede(key)
            change = grade_change_proto(rtx.rescore(key, f"credit repair ({route})"))
            rtx.log(
                "record_repaired",
                key,
                requester=department,
                reason=f"{record_digest(record_id)} {route}",
            )
        state = "granted" if grant else "refused"
        store.set_decision(conn, application_id, state, reason, rtx.now_iso)
        rtx.log(f"repair_{state}", key, requester=department, reason=application_id)
        told = f"repair application {application_id} for record {record_id} {state} by {department}"
        rtx.notify(key, "repair", f"{told}: {reason}" if reason else told)
        out = store.by_id(conn, application_id)
        return _info(out, today, change)

    return await run_rights_unit(ctx, fn)


async def advance(ctx: NodeContext) -> int:
    """The scheduler's step: escalate, once, every pending application past its due day."""
    today = ctx.today()
    if not await store.overdue(ctx.db, today.isoformat()):
        return 0  # the common case: no write unit on every tick

    def fn(rtx: RightsTx) -> int:
        rows = store.overdue_sync(rtx.conn, today.isoformat())
        for app_id, key, dept, due in rows:
            store.mark_escalated(rtx.conn, app_id)
            rtx.log(
                "repair_escalated", bytes(key), requester=str(dept), reason=f"{app_id} due {due}"
            )
            rtx.notify(
                bytes(key),
                "repair",
                f"repair application {app_id}: {dept} did not decide by {due}; "
                "the operator has been told to follow it up",
            )
        return len(rows)

    return await run_rights_unit(ctx, fn)


async def list_for_subject(
    ctx: NodeContext, key: bytes, pending_only: bool
) -> node_pb2.ListRepairApplicationsResponse:
    return await _list(ctx, "subject", key, pending_only)


async def list_for_department(
    ctx: NodeContext, department: str, pending_only: bool
) -> node_pb2.ListRepairApplicationsResponse:
    return await _list(ctx, "department", department, pending_only)


async def _list(
    ctx: NodeContext, by: str, param: object, pending_only: bool
) -> node_pb2.ListRepairApplicationsResponse:
    rows = await store.list_applications(ctx.db, by, param, pending_only)
    today = ctx.today()
    return node_pb2.ListRepairApplicationsResponse(applications=[_info(r, today) for r in rows])
