"""A subject's derived score at request time, and the attestation fields it fills (N18, N19).

Invariants (docs/adr/0006):

* the derived score is :func:`scoring.derive` of the explained base result of
  the PUBLISHED month (H3): scored again as of the month's last day from the
  records that month read (:func:`node.store._monthly.records_cutoff`), and it
  must add up to the published entry (else ``SCORE_NOT_PUBLISHED``: the node
  serves no derived score it cannot explain); the explanation is what
  ``huxin derived`` and the citizen's report show;
* an attestation for a derived scenario names the derived score as its scheme
  (``scheme_id``/``scheme_version`` = the threshold's), the base scheme version
  as ``model_version``, and under a GRADE disclosure the DERIVED tier as its
  grade; under THRESHOLD neither grade nor score (:func:`node.disclosure.disclosed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from node.core._errors import FailedPreconditionError, NotFoundError
from node.disclosure._disclose import disclosed  # submodules: node.disclosure imports this room
from node.disclosure._scenarios import Scenario
from node.monthly._published import (
    compute_as_of,
    entry_or_publish,
    entry_would_publish,
    require_run,
)
from node.store import Connection
from node.store._monthly import records_cutoff
from scoring import DerivedResult, DerivedScore, Disclosure, Scheme, derive

__all__ = ["DerivedGrade", "derived_fields", "derived_grade", "is_derived"]


def is_derived(scenario: Scenario) -> bool:
    """A derived score's scenario (its ``base`` names the scheme it is computed from)."""
    return bool(scenario.base)


@dataclass(frozen=True, slots=True)
class DerivedGrade:
    result: DerivedResult
    period: str  # the published month the base result is of


def derived_grade(
    conn: Connection,
    key: bytes,
    home: Scheme,
    derived: DerivedScore,
    *,
    today: date,
    at: str,
    publish: bool,
) -> DerivedGrade:
    """The person's derived score from their published month under ``home``.

    ``publish``: a request's write unit publishes a missing entry late, as the
    scheme path does; a grant or a publication only reads.  Raises
    ``SCORE_NOT_PUBLISHED``, ``SUBJECT_UNKNOWN``, ``SUBJECT_NOT_ELIGIBLE``."""
    run = require_run(conn, home, today)
    entry = (entry_or_publish if publish else entry_would_publish)(conn, run, key, home, at)
    if entry is None:
        raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
    if not entry.eligible or entry.grade is None:
        raise FailedPreconditionError(
            "SUBJECT_NOT_ELIGIBLE", f"the person has no grade in the published month {run.period}"
        )
    base = compute_as_of(conn, key, home, run.as_of, records_cutoff(conn, run, key, at))
    if base is None or (base.score, base.grade) != (entry.score, entry.grade):
        # the facts changed since publication: the self query corrects the month first
        raise FailedPreconditionError(
            "SCORE_NOT_PUBLISHED",
            f"the published month {run.period} does not add up to its records now;"
            " reading one's own score corrects it",
        )
    result = derive(derived, base)
    if result.grade is None:
        raise FailedPreconditionError(
            "SUBJECT_NOT_ELIGIBLE", f"the person has no {derived.id} score"
        )
    return DerivedGrade(result, run.period)


def derived_fields(
    scenario: Scenario, disclosure: Disclosure, home: Scheme, grade: DerivedGrade
) -> dict[str, Any]:
    """The scheme, model and disclosure fields of the attestation (module docstring)."""
    return {
        "scheme_id": scenario.scheme_id,
        "scheme_version": scenario.scheme_version,
        "model_version": home.key,
        "period": grade.period,
        **disclosed(
            scenario,
            disclosure,
            grade=grade.result.grade or "",
            score=grade.result.score,
            mapped=None,
        ),
    }
