"""What the operator's console shows, as JSON-ready dicts (issue 19; H3, H11, H15, H16, N7, N21-N23).

Each function reads one page's worth through the node's storage
(``ctx.db.read_unit`` and the repositories of :mod:`node.store`) and returns plain
dicts, lists, strings and numbers; the console's routes turn them into JSON.

Invariants:

* read only: nothing here writes (the one console action, resolving an objection,
  is :func:`node.rights._objections.answer_objection`, the function the gRPC
  ``ResolveObjection`` calls);
* nothing identifies a person: grades are counts, queues carry ids, departments,
  states and dates, the query review counts (its flags name a consent id and time);
* every list is bounded by a constant of this module, and says how many there
  were before the bound (``total``), so a cut list is never mistaken for all;
* "today" is the node's clock (``ctx.today()``), so a test's manual clock and the
  node's deadlines agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from node.exchange._review import review
from node.model._rollout import read_rollout
from node.monthly import MonthKey, monthly_runs, run_progress
from node.rights._objections import OPEN_STATES
from node.store import Connection
from node.store import _console as store

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = [
    "MONTHS_DEFAULT",
    "MONTHS_MAX",
    "QUEUE_MAX",
    "GradeCache",
    "grade_distribution",
    "model_state",
    "query_review",
    "rights_queues",
]

MONTHS_DEFAULT = 12  # published months a chart shows unless asked
MONTHS_MAX = 36  # the most a caller may ask for (three years of monthly grades)
QUEUE_MAX = 500  # objections or repair applications listed at most
FLAGGED_MAX = 200  # flagged queries listed at most (the newest)
SOURCES_MAX = 200  # departments listed in the timeliness table at most
RUNS_SHOWN = 6  # monthly runs listed with their progress
NOT_SCORED = "-"  # the grade column of people not eligible to be scored


@dataclass
class GradeCache:
    """Grade counts of finished runs, kept until the run's newest correction moves.

    A finished run's snapshots never change; its published grades change only when a
    correction is appended (:func:`node.store._console.corrections_mark`), so a
    month is counted once per correction, not once per page view."""

    runs: dict[int, tuple[int, dict[str, int]]] = field(default_factory=dict)

    def counts(self, conn: Connection, run_id: int) -> dict[str, int]:
        mark = store.corrections_mark(conn, run_id)
        hit = self.runs.get(run_id)
        if hit is not None and hit[0] == mark:
            return hit[1]
        counts = {
            NOT_SCORED if c.grade is None else c.grade: c.people
            for c in store.grade_counts(conn, run_id)
        }
        self.runs[run_id] = (mark, counts)
        return counts


def _days(due: str, today: date) -> int | None:
    """Days from ``today`` to ``due`` (negative: overdue), None without a due day."""
    try:
        return (date.fromisoformat(due) - today).days
    except (TypeError, ValueError):
        return None


async def grade_distribution(ctx: NodeContext, months: int, cache: GradeCache) -> dict[str, Any]:
    """Grades by published month, oldest first (the chart's x axis), as published.

    ``grades`` lists the scheme's grades best first, then ``-`` (not scored); each
    month gives its count per grade (0 where none)."""
    scheme = ctx.scheme
    labels = {t.id: t.label for t in scheme.tiers}

    def fn(conn: Connection) -> list[dict[str, Any]]:
        out = []
        for m in reversed(store.published_months(conn, months)):
            counts = cache.counts(conn, m.run_id)
            out.append(
                {
                    "period": m.period,
                    "scheme": f"{m.scheme_id}@{m.scheme_version}",
                    "run_id": m.run_id,
                    "finished_at": m.finished_at,
                    "people": sum(counts.values()),
                    "counts": counts,
                }
            )
        return out

    rows = await ctx.db.read_unit(fn)
    seen = {g for r in rows for g in r["counts"]}
    # every grade of the scheme, so the legend shows the whole scale; a grade of another
    # version (a month scored before a rollout) after them
    grades = list(scheme.grades) + sorted(
        g for g in seen if g not in scheme.grades and g != NOT_SCORED
    )
    grades.append(NOT_SCORED)
    for r in rows:
        r["counts"] = {g: int(r["counts"].get(g, 0)) for g in grades}
    return {
        "scheme": scheme.key,
        "grades": grades,
        "labels": {g: labels.get(g, "未评分 not scored" if g == NOT_SCORED else g) for g in grades},
        "months": rows,
    }


async def model_state(ctx: NodeContext) -> dict[str, Any]:
    """The rollout of the scheme in force (H11) and the monthly runs' progress (H3)."""
    scheme, today = ctx.scheme, ctx.today()

    def fn(conn: Connection) -> dict[str, Any]:
        rollout, candidate, shadow = read_rollout(conn, scheme)
        runs = []
        for r in monthly_runs(conn, RUNS_SHOWN):
            done, chunks, scored = run_progress(
                conn, MonthKey(r.period, r.scheme_id, r.scheme_version)
            )
            runs.append(
                {
                    "period": r.period,
                    "scheme": f"{r.scheme_id}@{r.scheme_version}",
                    "state": r.state,
                    "attempts": r.attempts,
                    "people": r.people,
                    "people_done": scored,
                    "chunks_done": done,
                    "chunks": chunks,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at or "",
                    "error": r.error,
                }
            )
        ev = rollout.evaluation
        return {
            "scheme": rollout.scheme_id,
            "version_in_force": scheme.version,
            "stage": rollout.stage.value,
            "current_version": rollout.current_version,
            "current_since": rollout.current_since.isoformat(),
            "candidate_version": rollout.candidate_version,
            "candidate_valid": candidate is not None or rollout.candidate_version is None,
            "trial_started": rollout.trial_started.isoformat() if rollout.trial_started else None,
            "effective": rollout.effective.isoformat() if rollout.effective else None,
            "shadow_version": rollout.shadow_version(today),
            "revision_due": rollout.revision_due(today),
            "evaluation": None
            if ev is None
            else {
                "candidate_version": ev.candidate_version,
                "psi": ev.psi,
                "people": ev.people,
                "moved_up": ev.moved_up,
                "moved_down": ev.moved_down,
                "auc": ev.auc,
                "ks": ev.ks,
                "monthly_psi": ev.monthly_psi,
            },
            "thresholds": {
                "max_psi": rollout.max_psi,
                "min_trial_days": rollout.min_trial_days,
                "min_auc": rollout.min_auc,
                "min_ks": rollout.min_ks,
                "max_monthly_psi": rollout.max_monthly_psi,
            },
            "shadow": None
            if not shadow
            else {
                k: shadow.get(k)
                for k in (
                    "as_of",
                    "current",
                    "candidate",
                    "compared",
                    "psi",
                    "moved_up",
                    "moved_down",
                    "unchanged",
                    "current_distribution",
                    "candidate_distribution",
                )
            },
            "runs": runs,
        }

    return await ctx.db.read_unit(fn)


def _objection(row: tuple[Any, ...], today: date) -> dict[str, Any]:
    (oid, record_id, source, handling, score, period, state, waiting_for, due) = row[:9]
    deadlines_json, filed_at, reason = row[9:12]
    try:
        deadlines = {str(k): str(v) for k, v in json.loads(deadlines_json or "{}").items()}
    except (ValueError, AttributeError):
        deadlines = {}  # a damaged row still lists; its steps are unknown
    days = _days(str(due or ""), today)
    kind = "score" if score else "handling" if handling else "record"
    return {
        "objection_id": str(oid),
        "kind": kind,
        "record_id": str(record_id),
        "period": str(period),
        "source": str(source),
        "state": str(state),
        "waiting_for": str(waiting_for),
        "due": str(due or ""),
        "days_left": days,
        "overdue": days is not None and days < 0,
        "deadlines": deadlines,
        "filed_at": str(filed_at),
        "reason": str(reason),
        # the operator resolves only objections about its own handling or the score
        # itself, while they wait for the operator (scoring.resolve_directly)
        "operator_resolves": kind != "record" and str(state) == "received",
    }


def _repair(row: tuple[Any, ...], today: date) -> dict[str, Any]:
    app_id, record_id, dept, route, state, due, escalated, filed_at, decided_at = row
    days = _days(str(due), today) if state == "pending" else None
    return {
        "application_id": str(app_id),
        "record_id": str(record_id),
        "department": str(dept),
        "route": str(route),
        "state": str(state),
        "due": str(due),
        "days_left": days,
        "overdue": days is not None and days < 0,
        "escalated": bool(escalated),
        "filed_at": str(filed_at),
        "decided_at": str(decided_at or ""),
    }


async def rights_queues(ctx: NodeContext) -> dict[str, Any]:
    """Open objections and repair applications, overdue first, with every step's due day."""
    today = ctx.today()
    day = today.isoformat()

    def fn(conn: Connection) -> dict[str, Any]:
        return {
            "today": day,
            "objections": [
                _objection(r, today)
                for r in store.objection_queue(conn, OPEN_STATES, day, QUEUE_MAX)
            ],
            "objections_total": store.count_objections(conn, OPEN_STATES),
            "repairs": [_repair(r, today) for r in store.repair_queue(conn, day, QUEUE_MAX)],
            "repairs_pending": store.count_pending_repairs(conn),
        }

    return await ctx.db.read_unit(fn)


async def query_review(ctx: NodeContext) -> dict[str, Any]:
    """The review of third-party queries with its flags (H16, N23) and the sources'
    timeliness (N7, H15): :func:`node.exchange._review.review`, as ``huxin review report``."""
    day = ctx.today().isoformat()

    def fn(conn: Connection) -> dict[str, Any]:
        doc = review(conn, day).as_dict()
        doc["sources"] = [
            {
                "source": str(s),
                "records": int(n),
                "late_records": int(late or 0),
                "last_submitted": str(last or ""),
            }
            for s, n, late, last in store.source_timeliness(conn, SOURCES_MAX)
        ]
        return doc

    doc = await ctx.db.read_unit(fn)
    flagged = doc["flagged"]
    doc["flagged_total"] = len(flagged)
    doc["flagged"] = sorted(flagged, key=lambda m: -int(m["timestamp"]))[:FLAGGED_MAX]
    return doc
