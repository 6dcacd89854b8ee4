"""The operator's review report (H16, N23): every third-party query and use, reviewed.

Every query a third party makes is already registered, with requester
(certificate identity), purpose and consent, as a transparency-log entry
(``attestation_issued`` or ``request_refused``, see :mod:`node.store._translog`) in
the same transaction as the use itself.  This module reads those entries and
the consents back and reports:

* queries by requester and purpose (issued / refused);
* **purpose outside the consent**: a query whose purpose differs from the
  purpose the citizen consented to (refused as ``CONSENT_WRONG_PURPOSE``,
  or — defence in depth — any logged use whose consent names another
  purpose), and queries from a requester the consent does not name;
* **late sources** (N7): departments that shared records more than 15
  working days after formation, and departments that let an objection
  deadline pass (H15);
* objections by state and, given ``today``, every step past its deadline
  (what an operator escalates).

Invariants: read only (a ``sqlite3`` connection opened read-only by the CLI; the
reads are :mod:`node.store._audit`);
nothing in the report identifies a person (no subject key, no ID): entries
are counted, mismatches list the consent id and time only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from node.pb.v1 import node_pb2
from node.store import Connection
from node.store import _audit as store

__all__ = ["Mismatch", "ReviewReport", "review"]

QUERY_KINDS = ("attestation_issued", "request_refused")
OUTSIDE_CONSENT = {
    "CONSENT_WRONG_PURPOSE": "purpose outside the consent",
    "CONSENT_WRONG_AUDIENCE": "requester not named in the consent",
}


@dataclass(frozen=True, slots=True)
class Mismatch:
    requester: str
    purpose: str
    consented_purpose: str
    consent_id: str
    timestamp: int
    outcome: str  # refused reason, or "issued"
    flag: str


@dataclass(frozen=True, slots=True)
class LateSource:
    source: str
    late_records: int
    missed_objection_deadlines: int


@dataclass(frozen=True, slots=True)
class OverdueStep:
    objection_id: str
    source: str
    waiting_for: str
    due: str


@dataclass
class ReviewReport:
    queries: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    late_sources: list[LateSource] = field(default_factory=list)
    objections: dict[str, int] = field(default_factory=dict)
    overdue: list[OverdueStep] = field(default_factory=list)
    total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_queries": self.total,
            "queries": [
                {
                    "requester": req,
                    "purpose": purpose,
                    "issued": counts["issued"],
                    "refused": sum(v for k, v in counts.items() if k != "issued"),
                    "refusals": {k: v for k, v in sorted(counts.items()) if k != "issued"},
                }
                for (req, purpose), counts in sorted(self.queries.items())
            ],
            "flagged": [
                {
                    "requester": m.requester,
                    "purpose": m.purpose,
                    "consented_purpose": m.consented_purpose,
                    "consent_id": m.consent_id,
                    "timestamp": m.timestamp,
                    "outcome": m.outcome,
                    "flag": m.flag,
                }
                for m in self.mismatches
            ],
            "late_sources": [
                {
                    "source": s.source,
                    "late_records": s.late_records,
                    "missed_objection_deadlines": s.missed_objection_deadlines,
                }
                for s in self.late_sources
            ],
            "objections": dict(sorted(self.objections.items())),
            "overdue_objection_steps": [
                {
                    "objection_id": o.objection_id,
                    "source": o.source,
                    "waiting_for": o.waiting_for,
                    "due": o.due,
                }
                for o in self.overdue
            ],
        }

    def render(self) -> str:
        d = self.as_dict()
        lines = [f"Queries registered: {d['total_queries']}", ""]
        lines.append(f"{'requester':<20} {'purpose':<24} {'issued':>7} {'refused':>8}")
        for q in d["queries"]:
            lines.append(
                f"{q['requester']:<20} {q['purpose']:<24} {q['issued']:>7} {q['refused']:>8}"
            )
        lines += ["", f"Flagged ({len(d['flagged'])}):"]
        for m in d["flagged"]:
            lines.append(
                f"  {m['flag']}: {m['requester']} asked for {m['purpose']!r}, consent "
                f"{m['consent_id'] or '?'} is for {m['consented_purpose'] or '?'!r} ({m['outcome']})"
            )
        lines += ["", f"Late sources ({len(d['late_sources'])}):"]
        for s in d["late_sources"]:
            lines.append(
                f"  {s['source']}: {s['late_records']} record(s) shared after 15 working days (N7), "
                f"{s['missed_objection_deadlines']} objection deadline(s) missed (H15)"
            )
        states = ", ".join(f"{k} {v}" for k, v in d["objections"].items()) or "none"
        lines += ["", f"Objections: {states}"]
        for o in d["overdue_objection_steps"]:
            lines.append(
                f"  overdue: {o['objection_id']} waits for {o['waiting_for']} "
                f"({o['source']}) since {o['due']}"
            )
        return "\n".join(lines) + "\n"


def review(conn: Connection, today: str = "") -> ReviewReport:
    """The report; ``today`` (YYYY-MM-DD) lists objection steps overdue on that day."""
    report = ReviewReport()
    consents = store.consent_terms(conn)
    for leaf in store.leaves_of_kinds(conn, QUERY_KINDS):
        entry = node_pb2.LogEntry.FromString(leaf)
        times = entry.count or 1  # a bounded refusal entry stands for `count` (ADR 0319)
        report.total += times
        outcome = "issued" if entry.kind == "attestation_issued" else entry.reason or "refused"
        counts = report.queries.setdefault((entry.requester, entry.purpose), Counter())
        counts[outcome] += times
        audience, consented = consents.get(entry.consent_id, ("", ""))
        flag = OUTSIDE_CONSENT.get(entry.reason)
        if flag is None and consented and consented != entry.purpose:
            flag = OUTSIDE_CONSENT["CONSENT_WRONG_PURPOSE"]
        if flag is None and audience and audience != entry.requester:
            flag = OUTSIDE_CONSENT["CONSENT_WRONG_AUDIENCE"]
        if flag is not None:
            report.mismatches.append(
                Mismatch(
                    entry.requester,
                    entry.purpose,
                    consented,
                    entry.consent_id,
                    entry.timestamp,
                    outcome,
                    flag,
                )
            )
    late = store.late_records_by_source(conn)
    missed = store.missed_deadlines_by_source(conn)
    report.objections = store.objections_by_state(conn)
    if today:
        report.overdue = [OverdueStep(*step) for step in store.overdue_steps(conn, today)]
    report.late_sources = [
        LateSource(str(s), int(late.get(s, 0)), int(missed.get(s, 0)))
        for s in sorted(set(late) | set(missed))
    ]
    return report
