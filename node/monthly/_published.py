"""The published grade of the last finished month (H3) and its corrections (H16).

Where a grade leaves the node, it is the PUBLISHED one: the newest finished
monthly run of the scheme version in force, as corrected since.  Nothing here
scores "today": a score is always computed as of a published month's last day.

Invariants:

* :func:`published_grade` (the attestation path, inside its write unit) and the
  self-query read the same entry: the newest correction of (person, run), else the
  run's row (:func:`node.store._monthly.published_entry`);
* a person the run did not score (registered after it, or the node learned of
  them later) is published ONCE, on first need, as of the same day with the
  records filed until then (:func:`entry_or_publish`, cause :data:`LATE`); later
  records wait for the next run like everyone's;
* a rights event appends a correction computed as of the published month's end
  from the records the published entry read (filed up to the run's
  ``records_through``, or up to the late publication; :func:`records_cutoff`), as
  they are after the event (:func:`correct_published`); the
  run's row and earlier corrections stay (audit).  A run still being computed gets
  the same correction: a chunk read before the event may be written after it, and
  the correction, being newer than any run row, still wins once the run finishes;
* no published month for the version in force: FAILED_PRECONDITION
  ``SCORE_NOT_PUBLISHED``, never a live score stamped with an unfinished month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from keys import MappedGrade
from node.core._errors import FailedPreconditionError
from node.exchange._mapping import Mapper
from node.monthly._explain import report_bytes
from node.store import Connection
from node.store._monthly import (
    PublishedEntry,
    PublishedRun,
    append_correction,
    published_entry,
    published_run,
    records_cutoff,
    records_through,
    subject_as_of,
    unfinished_runs,
)
from scoring import Scheme, ScoreResult, score

__all__ = [
    "LATE",
    "PUBLISHED_REASONS",
    "Correction",
    "append_result",
    "compute_as_of",
    "correct_published",
    "entry_or_publish",
    "entry_would_publish",
    "not_published",
    "published_grade",
    "require_run",
]

#: Every reason :func:`published_grade` gives (relayed by name by routers, node.federation._route).
PUBLISHED_REASONS = frozenset({"SCORE_NOT_PUBLISHED", "SUBJECT_UNKNOWN", "SUBJECT_NOT_ELIGIBLE"})
LATE = "published after the month's run (not in its population then)"


def not_published(scheme: Scheme) -> FailedPreconditionError:
    return FailedPreconditionError(
        "SCORE_NOT_PUBLISHED",
        f"no month has been published under {scheme.key} yet; the node runs the last"
        " finished month itself (H3)",
    )


def require_run(conn: Connection, scheme: Scheme, today: date) -> PublishedRun:
    """The month the node publishes under ``scheme`` on ``today``, or ``SCORE_NOT_PUBLISHED``."""
    run = published_run(conn, scheme.id, scheme.version, today)
    if run is None:
        raise not_published(scheme)
    return run


def compute_as_of(
    conn: Connection, key: bytes, scheme: Scheme, as_of: date, through: str | None
) -> ScoreResult | None:
    """The explained score of the person as of ``as_of`` from the records submitted up to
    ``through``; None when the person is unknown, deregistered or dead by then."""
    subject = subject_as_of(conn, key, as_of)
    if subject is None:
        return None
    return score(subject, records_through(conn, key, through), scheme, as_of, explain=True)


def append_result(
    conn: Connection, run: PublishedRun, key: bytes, r: ScoreResult, *, cause: str, at: str
) -> PublishedEntry:
    """Append ``r`` (explained) as the person's newest entry of ``run``."""
    report = report_bytes(r)
    append_correction(
        conn, run.run_id, key, eligible=r.eligible, score=r.score, grade=r.grade,
        reason=r.ineligible_reason, report=report, cause=cause, at=at,
    )  # fmt: skip
    return PublishedEntry(r.eligible, r.score, r.grade, r.ineligible_reason, report, cause)


def entry_or_publish(
    conn: Connection, run: PublishedRun, key: bytes, scheme: Scheme, at: str
) -> PublishedEntry | None:
    """The person's published entry; one the run lacks is published now (:data:`LATE`).
    ``conn`` must be a write unit's connection.  None: unknown or dead by the month's end."""
    entry = published_entry(conn, run.run_id, key)
    if entry is not None:
        return entry
    result = compute_as_of(conn, key, scheme, run.as_of, at)
    if result is None:
        return None
    return append_result(conn, run, key, result, cause=LATE, at=at)


def entry_would_publish(
    conn: Connection, run: PublishedRun, key: bytes, scheme: Scheme, at: str
) -> PublishedEntry | None:
    """What :func:`entry_or_publish` would return at ``at``, computed without writing:
    for decisions that must leave the database untouched (a grant's preview, a grant
    refused).  The entry a later request publishes is computed the same way."""
    entry = published_entry(conn, run.run_id, key)
    if entry is not None:
        return entry
    r = compute_as_of(conn, key, scheme, run.as_of, at)
    if r is None:
        return None
    return PublishedEntry(r.eligible, r.score, r.grade, r.ineligible_reason, report_bytes(r), LATE)


def published_grade(
    conn: Connection,
    key: bytes,
    *,
    scheme: Scheme,
    mapper: Mapper,
    target: str,
    at: datetime,
) -> tuple[str, int | None, MappedGrade | None, str]:
    """(grade, score, mapped grade, period) of the person's published entry under
    ``scheme`` (read once by the caller); the target table is the one valid on ``at``'s
    day.  Raises ``SCORE_NOT_PUBLISHED``, ``SUBJECT_UNKNOWN`` or ``SUBJECT_NOT_ELIGIBLE``
    (FAILED_PRECONDITION) or the mapper's refusal."""
    run = require_run(conn, scheme, at.date())
    entry = entry_or_publish(conn, run, key, scheme, at.isoformat(timespec="seconds"))
    if entry is None:
        raise FailedPreconditionError("SUBJECT_UNKNOWN", "no records for the person")
    if not entry.eligible or entry.grade is None:
        raise FailedPreconditionError(
            "SUBJECT_NOT_ELIGIBLE", f"the person has no grade in the published month {run.period}"
        )
    mapped = mapper.map(entry.grade, target, at.date(), source=scheme) if target else None
    return entry.grade, entry.score, mapped, run.period


@dataclass(frozen=True, slots=True)
class Correction:
    period: str
    prior: str | None  # the grade published until this correction (None: none, or not eligible)
    after: ScoreResult


def correct_published(
    conn: Connection, key: bytes, scheme: Scheme, cause: str, at: str
) -> Correction | None:
    """Recompute the person's published month at once after a rights event (H16) and
    append it as a correction (and to any run of ``scheme`` still being computed).
    None when no month is published under ``scheme`` yet (the run in progress, or the
    next one, includes the change) or the person was not alive on the month's last day."""
    for running in unfinished_runs(conn, scheme.id, scheme.version):
        through = running.records_through or at
        if (result := compute_as_of(conn, key, scheme, running.as_of, through)) is not None:
            append_result(conn, running, key, result, cause=cause, at=at)
    run = published_run(conn, scheme.id, scheme.version, date.fromisoformat(at[:10]))
    if run is None:
        return None
    before = published_entry(conn, run.run_id, key)
    # the records the published entry read (H3): one filed later waits for the next run
    after = compute_as_of(conn, key, scheme, run.as_of, records_cutoff(conn, run, key, at))
    if after is None:
        return None
    append_result(conn, run, key, after, cause=cause, at=at)
    return Correction(run.period, before.grade if before is not None else None, after)
