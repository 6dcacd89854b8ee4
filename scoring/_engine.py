"""The scoring engine: ``(subject, records, scheme, as_of) → ScoreResult``.

A pure function of its inputs (H6–H10, N6, N11, N13):

0. A scheme past its own expiry (``valid_until``; Hainan's measures are valid
   for three years) scores nobody: :class:`~scoring.SchemeError` with code
   ``SCHEME_EXPIRED``.
1. Eligibility first (H1, N1): age ≥ ``min_age`` on ``as_of`` from the ID's
   birth date, full civil capacity, and one qualifying residence basis held
   long enough.  An ineligible person gets a "not eligible" result, no score.
2. The ID number is never scored (H6); the score starts at the base (H8).
3. Each record's last valid day is the source's ``valid_until`` or the
   category default from the recognition date (H7, N11), cut to the scheme's
   validity cap where one applies (Heihe: 3 years except national and
   international honours, H7).
4. Each record is classified, in this order: revoked, masked (H15),
   repaired (H16, N22), excluded by rule (scheme exclusion flags such as N6's
   simple-procedure penalties; responsible-individual deductions whose
   ``legal_document`` is not a reference :func:`scoring.parse_reference`
   accepts for the category, H10), not yet recognised on ``as_of``, expired.  What
   remains is deduplicated per underlying act: the highest addition and the
   highest deduction count once each (H10; ties: earliest recognition, then
   smallest record id); the rest are superseded.
5. Positive points of capped categories are cut to the scheme's category and
   family caps, per calendar period (:mod:`scoring._caps`); a record cut to
   nothing is ``capped``.
6. The total is clamped to the scheme range, capped by any counted record
   that forces a grade (e.g. Wendeng's direct B/C/D), and graded.

Every record appears in the result's contributions with its status, so each
point is explained (a counted responsible-individual deduction names the kind
and number of its legal document, never the organisation's code): ``sum(c.points) == added - deducted``, and a record that
a cap or the validity ceiling touched says which and by how much.
``explain=False`` skips building contributions (the batch job's fast path)
but runs the same classification and cap code.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from ._caps import CapApplication, CapEntry, CapOutcome, apply_caps
from ._errors import SchemeError
from ._idnumber import years_between
from ._legal import describe_reference, parse_reference
from ._records import RecordStatus, Subject
from ._scheme import Category, Polarity, Scheme, add_months

__all__ = [
    "Contribution",
    "ContributionStatus",
    "RecordLike",
    "ScoreResult",
    "eligibility_problem",
    "score",
]

CLEAN_RECORD_MONTHS = 36  # H8: no dishonesty record in the last 3 years
_ONE_DAY = timedelta(days=1)


class ContributionStatus(enum.StrEnum):
    COUNTED = "counted"
    SUPERSEDED = "superseded"  # a higher duplicate of the same act counts instead (H10)
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MASKED = "masked"
    REPAIRED = "repaired"
    REVOKED = "revoked"
    EXCLUDED_BY_RULE = "excluded_by_rule"
    CAPPED = "capped"  # a positive-point cap left it nothing in its period (ADR 0003)


class RecordLike(Protocol):
    """What the engine reads of a record (``CreditRecord`` or a lighter row type)."""

    @property
    def record_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def act_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def recognised_on(self) -> date: ...
    @property
    def valid_until(self) -> date | None: ...
    @property
    def level(self) -> str | None: ...
    @property
    def severity(self) -> str | None: ...
    @property
    def legal_document(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def flags(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Contribution:
    """One record's part in a score, shown to the citizen (N13).

    ``points == nominal_points`` for a counted record untouched by caps;
    ``cap_cut`` is what positive-point caps removed (``caps`` names them) and
    ``validity_capped`` says the source's ``valid_until`` was cut to the
    scheme's validity cap (``valid_until`` is the cut date).  ``reason``
    says all of this in words.
    """

    record_id: str
    category: str
    category_name: str
    source: str
    act_id: str
    polarity: Polarity
    nominal_points: int  # signed: what the record is worth if it counts
    points: int  # signed: what it adds to this score (0 unless counted)
    status: ContributionStatus
    reason: str
    recognised_on: date
    valid_until: date
    cap_cut: int = 0
    caps: tuple[str, ...] = ()
    validity_capped: bool = False


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A score and its explanation.

    ``unclamped == base_score + added - deducted``; ``added`` is after caps,
    and ``cut_by_caps`` is what the caps removed (``caps_applied`` lists each
    cap and period that cut, only when explained).
    """

    scheme_id: str
    scheme_version: str
    as_of: date
    eligible: bool
    score: int | None
    grade: str | None
    ineligible_reason: str | None = None
    base_score: int = 0
    added: int = 0
    deducted: int = 0
    unclamped: int = 0
    capped_by: str | None = None
    clean_record: bool = True
    contributions: tuple[Contribution, ...] = ()
    cut_by_caps: int = 0
    caps_applied: tuple[CapApplication, ...] = ()


def eligibility_problem(subject: Subject, scheme: Scheme, as_of: date) -> str | None:
    """Why ``subject`` is not a subject of ``scheme`` on ``as_of`` (H1, N1), or None."""
    age = years_between(subject.birth_date, as_of)
    rules = scheme.eligibility
    if age < rules.min_age:
        return f"under {rules.min_age} on {as_of}"
    if not subject.full_civil_capacity:
        return "lacks full civil capacity"
    for rule in rules.residence:
        for res in subject.residence:
            if (
                res.kind == rule.kind
                and res.since <= as_of
                and (years_between(res.since, as_of) >= rule.min_years)
            ):
                return None
    wanted = ", ".join(
        f"{r.kind} ≥{r.min_years}y" if r.min_years else r.kind for r in rules.residence
    )
    return f"no qualifying residence basis ({wanted})"


def _value(cat: Category, rec: RecordLike) -> tuple[int, int]:
    """(points magnitude, validity in months) of a record under its category."""
    if rec.level is not None and rec.level in cat.level_multipliers:
        points = int(cat.points * cat.level_multipliers[rec.level])
        months = cat.extended_validity_months.get(rec.level, cat.validity_months)
        return points, months
    if rec.severity is not None and rec.severity in cat.severities:
        band = cat.severities[rec.severity]
        return band.points, band.validity_months
    return cat.points, cat.validity_months


_STATUS_REASON = {
    RecordStatus.REVOKED: (ContributionStatus.REVOKED, "revoked by the source"),
    RecordStatus.MASKED: (
        ContributionStatus.MASKED,
        "masked pending investigation of an objection",
    ),
    RecordStatus.REPAIRED: (ContributionStatus.REPAIRED, "credit repaired"),
}


# (record, category, magnitude, valid_until, status, reason, validity cut from)
_Row = tuple[RecordLike, Category, int, date, ContributionStatus, str, date | None]


def _until(rec: RecordLike, months: int, scheme: Scheme) -> tuple[date, date | None]:
    """(last valid day, the source's own last day when the validity cap cut it).

    The default is counted in calendar months from the recognition date (H7,
    N11); a source's explicit date wins (N11) unless it runs past the scheme's
    validity cap (H7), which category defaults never do (the loader checks).
    """
    if rec.valid_until is None:
        return add_months(rec.recognised_on, months) - _ONE_DAY, None
    cap = scheme.validity_cap
    if cap is not None and cap.applies_to(rec.category, rec.level):
        ceiling = add_months(rec.recognised_on, cap.months) - _ONE_DAY
        if rec.valid_until > ceiling:
            return ceiling, rec.valid_until
    return rec.valid_until, None


def _beats(magnitude: int, rec: RecordLike, held: _Row) -> bool:
    """Whether ``rec`` replaces ``held`` as the one count of their act (H10).

    The highest value wins; ties go to the earliest recognition, then the
    smallest record id, so the winner (whose date decides its cap period)
    does not depend on the order records arrive in.
    """
    if magnitude != held[2]:
        return magnitude > held[2]
    other = held[0]
    return (rec.recognised_on, rec.record_id) < (other.recognised_on, other.record_id)


def score(
    subject: Subject,
    records: Iterable[RecordLike],
    scheme: Scheme,
    as_of: date,
    *,
    explain: bool = True,
) -> ScoreResult:
    """Score one subject.  Records of other subjects must not be passed in.

    Raises :class:`~scoring.SchemeError` (``SCHEME_EXPIRED``) when ``as_of`` is
    after the scheme's ``valid_until``.
    """
    if scheme.expired_on(as_of):
        raise SchemeError(
            "as_of",
            f"scheme {scheme.key} expired after {scheme.valid_until}; it cannot score {as_of}",
            code="SCHEME_EXPIRED",
        )
    problem = eligibility_problem(subject, scheme, as_of)
    if problem is not None:
        return ScoreResult(
            scheme.id,
            scheme.version,
            as_of,
            eligible=False,
            score=None,
            grade=None,
            ineligible_reason=problem,
            base_score=scheme.base_score,
        )
    categories = scheme.categories
    rows: list[_Row] = []
    best: dict[tuple[bool, str], int] = {}  # (positive?, act) -> index in rows of current best
    clean_cutoff = add_months(as_of, -CLEAN_RECORD_MONTHS)
    for rec in records:
        cat = categories[rec.category]
        magnitude, months = _value(cat, rec)
        until, cut_from = _until(rec, months, scheme)
        status = ContributionStatus.COUNTED
        reason = ""
        state = rec.status
        if state != RecordStatus.ACTIVE:
            status, reason = _STATUS_REASON[RecordStatus(state)]
        elif rec.flags and (hit := rec.flags & cat.excluded_flags):
            status = ContributionStatus.EXCLUDED_BY_RULE
            reason = f"excluded by scheme rule ({', '.join(sorted(hit))})"
        elif cat.requires_legal_document and not parse_reference(
            rec.legal_document, cat.legal_document_kinds
        ):
            status = ContributionStatus.EXCLUDED_BY_RULE
            reason = (
                "responsible-individual deduction without a valid legal-document reference (H10)"
            )
        elif rec.recognised_on > as_of:
            status, reason = ContributionStatus.NOT_YET_VALID, f"recognised after {as_of}"
        elif as_of > until:
            status, reason = ContributionStatus.EXPIRED, f"validity ended {until}"
        index = len(rows)
        rows.append((rec, cat, magnitude, until, status, reason, cut_from))
        if status is ContributionStatus.COUNTED:
            key = (cat.polarity is Polarity.POSITIVE, rec.act_id)
            prev = best.get(key)
            if prev is None or _beats(magnitude, rec, rows[prev]):
                best[key] = index
    counted = set(best.values())
    outcome = _caps(rows, counted, scheme)
    added = deducted = 0
    clean = True
    cap_rank: int | None = None
    capped_by: str | None = None
    for i in counted:
        rec, cat, magnitude = rows[i][0], rows[i][1], rows[i][2]
        if cat.polarity is Polarity.POSITIVE:
            added += magnitude if outcome is None else outcome.kept.get(i, magnitude)
        else:
            deducted += magnitude
            if rec.category in scheme.dishonesty_categories and rec.recognised_on >= clean_cutoff:
                clean = False
            if cat.caps_grade is not None:
                rank = scheme.rank(cat.caps_grade)
                if cap_rank is None or rank < cap_rank:
                    cap_rank, capped_by = rank, rec.record_id
    unclamped = scheme.base_score + added - deducted
    value = min(max(unclamped, scheme.score_min), scheme.score_max)
    if cap_rank is not None:
        value = min(value, scheme.tiers[len(scheme.tiers) - 1 - cap_rank].max_score)
    cut_by_caps = 0 if outcome is None else sum(a.cut for a in outcome.applications)
    contributions: tuple[Contribution, ...] = ()
    applications: tuple[CapApplication, ...] = ()
    if explain:
        contributions = tuple(_explain(rows, best, counted, outcome))
        applications = () if outcome is None else outcome.applications
    return ScoreResult(
        scheme.id,
        scheme.version,
        as_of,
        eligible=True,
        score=value,
        grade=scheme.grade_for(value),
        base_score=scheme.base_score,
        added=added,
        deducted=deducted,
        unclamped=unclamped,
        capped_by=capped_by,
        clean_record=clean,
        contributions=contributions,
        cut_by_caps=cut_by_caps,
        caps_applied=applications,
    )


def _caps(rows: list[_Row], counted: set[int], scheme: Scheme) -> CapOutcome | None:
    """Apply the scheme's positive-point caps to the counted rows (None: nothing to cap)."""
    capped = scheme.capped_categories
    if not capped:
        return None
    entries = [
        CapEntry(i, rows[i][0].category, rows[i][2], rows[i][0].recognised_on, rows[i][0].record_id)
        for i in counted
        if rows[i][0].category in capped and rows[i][1].polarity is Polarity.POSITIVE
    ]
    if not entries:
        return None
    outcome = apply_caps(entries, scheme.category_caps, scheme.family_caps)
    return outcome if outcome.applications else None


def _validity_note(until: date, cut_from: date | None) -> str:
    if cut_from is None:
        return ""
    return (
        f"; validity {cut_from} set by the source cut to {until} by the scheme's validity cap (H7)"
    )


def _responsible_note(rec: RecordLike, cat: Category) -> str:
    """Why a person is deducted for an organisation's dishonesty, and on what document.

    The organisation's code is left out: a sole trader's code points at a person.
    """
    parsed = parse_reference(rec.legal_document, cat.legal_document_kinds)
    assert parsed is not None  # a counted record's reference parsed when classified
    return (
        "; deducted as the individual directly responsible for an organisation on the "
        f"severe-dishonesty list, named in {describe_reference(*parsed)} (H10)"
    )


def _cap_note(
    magnitude: int, kept: int, cuts: tuple[tuple[int, int], ...], outcome: CapOutcome
) -> str:
    parts = []
    for app_index, cut in cuts:
        app = outcome.applications[app_index]
        parts.append(
            f"{app.cap} ({app.name}, {app.limit} points per {app.period_months} months, "
            f"{app.period}) cut {cut}"
        )
    return f"{kept} of {magnitude} points count: " + "; ".join(parts)


def _explain(
    rows: list[_Row],
    best: dict[tuple[bool, str], int],
    counted: set[int],
    outcome: CapOutcome | None,
) -> Iterable[Contribution]:
    for i, (rec, cat, magnitude, until, status, reason, cut_from) in enumerate(rows):
        sign = 1 if cat.polarity is Polarity.POSITIVE else -1
        kept = magnitude
        cuts: tuple[tuple[int, int], ...] = ()
        if status is ContributionStatus.COUNTED:
            if i in counted:
                reason = (
                    "counted" if not cat.caps_grade else f"counted; caps grade at {cat.caps_grade}"
                )
                if cat.requires_legal_document:
                    reason += _responsible_note(rec, cat)
                if outcome is not None and i in outcome.cuts:
                    kept, cuts = outcome.kept[i], outcome.cuts[i]
                    note = _cap_note(magnitude, kept, cuts, outcome)
                    if kept == 0:
                        status, reason = ContributionStatus.CAPPED, f"capped: {note}"
                    else:
                        reason = f"counted; {note}"
            else:
                winner = rows[best[(sign > 0, rec.act_id)]][0]
                status = ContributionStatus.SUPERSEDED
                reason = (
                    f"same act counted once at its highest value (record {winner.record_id}, H10)"
                )
        reason += _validity_note(until, cut_from)
        caps_named = tuple(outcome.applications[a].cap for a, _ in cuts) if outcome else ()
        yield Contribution(
            record_id=rec.record_id,
            category=rec.category,
            category_name=cat.name,
            source=rec.source,
            act_id=rec.act_id,
            polarity=cat.polarity,
            nominal_points=sign * magnitude,
            points=sign * kept if i in counted else 0,
            status=status,
            reason=reason,
            recognised_on=rec.recognised_on,
            valid_until=until,
            cap_cut=magnitude - kept,
            caps=caps_named,
            validity_capped=cut_from is not None,
        )
