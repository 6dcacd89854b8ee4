"""How ``huxin verify`` names the approval behind a mapped grade (批准或备案, H13).

The offline verifier accepts a mapped grade only when the bundle's hub-signed
approved list covers its table (docs/SPEC.md section 6a); this module renders
that approval for the verdict: table id and version, ``approved by <authority>
(批准)`` or ``filed with <authority> (备案)``, the dates in force and the
incentive reach the record carries (parts per million, shown rounded down).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keys import Attestation, Trust

__all__ = ["DECISION_NAMES", "approval_doc", "approval_text"]

#: The two acts of the plan (批准或备案) by their names in an approval record.
DECISION_NAMES = {"approved": "批准", "filed": "备案"}


def approval_doc(a: Attestation, trust: Trust) -> dict[str, Any] | None:
    """The approval that let the mapped grade verify (None: no mapped grade)."""
    if a.mapped is None or trust.approvals is None:
        return None
    found = trust.approvals.find(a.mapped.mapping_sha256)
    if found is None:  # pragma: no cover - verification refused it (MAPPING_NOT_APPROVED)
        return None
    return {
        "table": f"{found.mapping_id}@{found.mapping_version}",
        "decision": found.decision,
        "decision_zh": DECISION_NAMES.get(found.decision, ""),
        "authority": found.authority,
        "effective_from": _day(found.effective_from),
        "expires": _day(found.expires) if found.expires else None,
        "reach_ppm": found.reach_ppm,
        "reach": _percent(found.reach_ppm),
    }


def _day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _percent(ppm: int) -> str:
    """Parts per million as a percentage with two decimals, rounded down."""
    return f"{ppm // 10_000}.{ppm % 10_000 // 100:02d}%"


def approval_text(a: Attestation, trust: Trust) -> str:
    doc = approval_doc(a, trust)
    if doc is None:
        return ""
    how = "approved by" if doc["decision"] == "approved" else "filed with"
    until = f" until {doc['expires']}" if doc["expires"] else ""
    return (
        f"; table {doc['table']} {how} {doc['authority']} ({doc['decision_zh']}), "
        f"in force from {doc['effective_from']}{until}, incentive reach {doc['reach']}"
    )
