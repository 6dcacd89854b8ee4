"""The explained report (H12) as it leaves the node, and as a published correction keeps it.

Invariant: a report is the ``huxin.scoring.v1.ScoreResult`` message the citizen
reads from ``GetMyScore``; a correction stores exactly those bytes
(:func:`report_bytes`), so what the citizen reads later is what was published.
"""

from __future__ import annotations

from datetime import date

from node.pb.v1 import scoring_pb2
from scoring import Scheme, ScoreResult

__all__ = ["ineligible_report", "report_bytes", "report_of", "score_result_proto"]


def score_result_proto(r: ScoreResult, *, explain: bool) -> scoring_pb2.ScoreResult:
    msg = scoring_pb2.ScoreResult(
        scheme_id=r.scheme_id,
        scheme_version=r.scheme_version,
        as_of=r.as_of.isoformat(),
        eligible=r.eligible,
        grade=r.grade or "",
        ineligible_reason=r.ineligible_reason or "",
        base_score=r.base_score,
        added=r.added,
        deducted=r.deducted,
        clean_record=r.clean_record,
    )
    if r.score is not None:
        msg.score = r.score
    if explain:
        msg.contributions.extend(
            scoring_pb2.Contribution(
                record_id=c.record_id,
                category=c.category,
                category_name=c.category_name,
                source=c.source,
                act_id=c.act_id,
                polarity=c.polarity.value,
                nominal_points=c.nominal_points,
                points=c.points,
                status=c.status.value,
                reason=c.reason,
                recognised_on=c.recognised_on.isoformat(),
                valid_until=c.valid_until.isoformat(),
            )
            for c in r.contributions
        )
    return msg


def report_bytes(r: ScoreResult) -> bytes:
    """The explained report of ``r``, serialised deterministically (stored with a correction)."""
    return score_result_proto(r, explain=True).SerializeToString(deterministic=True)


def report_of(blob: bytes) -> scoring_pb2.ScoreResult:
    msg = scoring_pb2.ScoreResult()
    msg.ParseFromString(blob)
    return msg


def ineligible_report(scheme: Scheme, as_of: date, reason: str) -> scoring_pb2.ScoreResult:
    """The whole report of a person the month's run found not eligible: the reason is
    all the engine says about them (it scores no records for them)."""
    return scoring_pb2.ScoreResult(
        scheme_id=scheme.id,
        scheme_version=scheme.version,
        as_of=as_of.isoformat(),
        eligible=False,
        ineligible_reason=reason,
        base_score=scheme.base_score,
        clean_record=True,
    )
