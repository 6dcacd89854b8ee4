"""Residence facts from a population authority: the vocabulary and their validation.

A fact says one thing about one person on one day (H1, N1): a residence basis
begins (``move_in``, ``permit_issued``, ``contribution_year``) or ends
(``move_out``, ``permit_expired``), full civil capacity is lost or restored,
or the person died.  Validation is pure (no I/O) and total: every fact of a
batch is checked and every problem is reported as a
``(index, "", field, code, message)`` tuple, the shape
:func:`node.store._records.batch_rejection` takes, so a refused batch reads
like a refused record batch.

Invariants: a problem never quotes the ID number (the index names the row); a
residence kind is one the scheme's eligibility rules know (a kind no rule
counts would be data collected for nothing, H7); no fact is dated after the
intake day or before the person's birth; a person under the scheme's minimum
age on the intake day is out of scope (``SUBJECT_MINOR``): their facts are
not stored, the authority files them when the person comes of age.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from node.core._bounds import CONTRIBUTION_KINDS, RESIDENCE_KIND_MAX
from node.core._freetext import contains_id_number
from scoring import RecordError, Scheme, birth_date, normalise_id_number, years_between

__all__ = [
    "BEGINS",
    "ENDS",
    "FACTS_MAX",
    "FACT_KINDS",
    "Fact",
    "FactProblem",
    "residence_kinds",
    "validate_facts",
]

#: Facts per ``SubmitResidenceFacts`` batch: ~40 bytes each on the wire, so a full
#: batch stays well under the 4 MiB message limit; a city is many batches.
FACTS_MAX = 50_000
FACT_KIND_MAX = 32

#: Kinds that start a residence basis, with the basis they imply (None: the fact names it).
BEGINS: dict[str, str | None] = {
    "move_in": None,
    "permit_issued": "residence_permit",
    "contribution_year": None,
}
#: Kinds that end a residence basis ("" for move_out: every basis the person holds).
ENDS: dict[str, str | None] = {"move_out": None, "permit_expired": "residence_permit"}
OTHERS = ("capacity_lost", "capacity_restored", "death")
FACT_KINDS = (*BEGINS, *ENDS, *OTHERS)
#: N1: one year of contributions to the social-insurance or tax authority.

FactProblem = tuple[int, str, str, str, str]  # index, "", field, code, message


@dataclass(frozen=True, slots=True)
class Fact:
    """One validated fact; ``residence_kind`` is "" where the kind names no basis."""

    id_number: str
    kind: str
    residence_kind: str
    on: date


def residence_kinds(scheme: Scheme) -> frozenset[str]:
    """The residence bases the scheme's eligibility rules count (H1, N1)."""
    return frozenset(rule.kind for rule in scheme.eligibility.residence)


def _problem(i: int, field: str, code: str, message: str) -> FactProblem:
    return (i, "", field, code, message)


def _residence_kind(
    i: int, kind: str, given: str, known: frozenset[str]
) -> tuple[str, FactProblem | None]:
    if len(given) > RESIDENCE_KIND_MAX or contains_id_number(given):
        return "", _problem(i, "residence_kind", "INVALID_FIELD",
                            f"at most {RESIDENCE_KIND_MAX} characters, no ID number")  # fmt: skip
    implied = BEGINS.get(kind) or ENDS.get(kind)
    if kind in OTHERS:
        if given:
            return "", _problem(
                i, "residence_kind", "INVALID_FIELD", f"a {kind} names no residence"
            )
        return "", None
    if implied is not None:
        if given and given != implied:
            return "", _problem(i, "residence_kind", "INVALID_FIELD", f"a {kind} is {implied}")
        given = implied
    elif kind == "move_in":
        given = given or "hukou"
    elif kind == "move_out" and not given:
        return "", None  # every basis the person holds ends
    if kind == "contribution_year" and given not in CONTRIBUTION_KINDS:
        return "", _problem(i, "residence_kind", "INVALID_FIELD",
                            f"a contribution_year is one of {sorted(CONTRIBUTION_KINDS)} (N1)")  # fmt: skip
    if given not in known:
        return "", _problem(
            i,
            "residence_kind",
            "UNKNOWN_RESIDENCE_KIND",
            f"the scheme counts only {sorted(known)} (H1, N1, H7)",
        )
    return given, None


def _one(
    i: int, raw: object, scheme: Scheme, today: date, known: frozenset[str]
) -> tuple[Fact | None, list[FactProblem]]:
    subject_id = str(getattr(raw, "subject_id", ""))
    kind = str(getattr(raw, "kind", ""))
    given = str(getattr(raw, "residence_kind", ""))
    on_text = str(getattr(raw, "on", ""))
    problems: list[FactProblem] = []
    idn = ""
    try:
        idn = normalise_id_number(subject_id)
    except RecordError as exc:
        problems.append(_problem(i, "subject_id", exc.code, exc.message))
    if not kind:
        problems.append(_problem(i, "kind", "MISSING_FIELD", "is required"))
    elif kind not in FACT_KINDS:
        # length first: a kind over the bound is not scanned nor shown
        shown = kind if len(kind) <= FACT_KIND_MAX and not contains_id_number(kind) else ""
        problems.append(
            _problem(i, "kind", "UNKNOWN_FACT_KIND", f"{shown!r} is not one of {list(FACT_KINDS)}")
        )
    residence_kind = ""
    if kind in FACT_KINDS:
        residence_kind, bad = _residence_kind(i, kind, given, known)
        if bad is not None:
            problems.append(bad)
    on: date | None = None
    if not on_text:
        problems.append(_problem(i, "on", "MISSING_FIELD", "is required"))
    else:
        try:
            on = date.fromisoformat(on_text) if len(on_text) == 10 else None
        except ValueError:
            on = None
        if on is None:
            problems.append(_problem(i, "on", "INVALID_FIELD", "must be a date YYYY-MM-DD"))
        elif on > today:
            problems.append(_problem(i, "on", "INVALID_FIELD", "is after today"))
    if idn:
        born = birth_date(idn)
        if on is not None and on < born:
            problems.append(_problem(i, "on", "INVALID_FIELD", "is before the person's birth"))
        if years_between(born, today) < scheme.eligibility.min_age:
            problems.append(
                _problem(
                    i,
                    "subject_id",
                    "SUBJECT_MINOR",
                    f"under {scheme.eligibility.min_age}: not a subject of the scheme, "
                    "nothing is collected (H1, N1, H7)",
                )
            )
    if problems or on is None:
        return None, problems
    return Fact(idn, kind, residence_kind, on), []


def validate_facts(
    raws: Sequence[object], scheme: Scheme, today: date
) -> tuple[list[Fact], list[FactProblem]]:
    """Every fact of ``raws`` (objects with ``subject_id``, ``kind``,
    ``residence_kind``, ``on`` as text) checked; facts only when no problem."""
    facts: list[Fact] = []
    problems: list[FactProblem] = []
    known = residence_kinds(scheme)
    for i, raw in enumerate(raws):
        fact, found = _one(i, raw, scheme, today, known)
        if fact is not None:
            facts.append(fact)
        problems += found
    return (facts if not problems else []), problems
