"""Credit records and subjects: the engine's inputs, and intake validation.

:func:`validate_record` turns an untrusted mapping (a JSON line, a gRPC
message converted to a dict) into a :class:`CreditRecord` or raises one
:class:`~scoring.RecordError` naming the field.  It refuses forbidden (H7) and
unknown categories, flags outside the catalogue :data:`~scoring.RECORD_FLAGS`,
text fields over :data:`MAX_TEXT` characters, invalid ID numbers, records
recognised in the future, and provenances the category does not accept.  It is pure: ``today`` is passed in.

Legal documents (H10): a record of a category that ``requires_legal_document``
must carry a structured reference (``legal_document``, a mapping validated by
:func:`scoring.validate_legal_document`); any other category refuses one
(``LEGAL_DOCUMENT_NOT_APPLICABLE``: minimal collection, H7), and free text
(``legal_document`` as a string, or ``legal_document_text``) is refused for
every category (``LEGAL_DOCUMENT_UNSTRUCTURED``).  The validated record holds
the reference in ``legal_reference`` and its ``"<kind> <number>"`` form in
``legal_document``, which is what storage keeps for the engine.  Whether the
organisation is on the severe-dishonesty list is the node's check (it needs
the listings its sources filed).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ._errors import RecordError
from ._idnumber import birth_date, normalise_id_number
from ._legal import LegalDocument, validate_legal_document
from ._scheme import FORBIDDEN_CATEGORIES, RECORD_FLAGS, Category, Polarity, Provenance, Scheme

__all__ = [
    "CreditRecord",
    "RecordStatus",
    "Residence",
    "Subject",
    "validate_batch",
    "validate_record",
]

MAX_TEXT = 256


class RecordStatus(enum.StrEnum):
    ACTIVE = "active"
    MASKED = "masked"  # masked pending investigation after an objection (H15)
    REPAIRED = "repaired"  # credit repair (H16, N22)
    REVOKED = "revoked"  # withdrawn by the source


@dataclass(frozen=True, slots=True)
class CreditRecord:
    record_id: str
    subject_id: str
    source: str
    category: str
    polarity: Polarity
    act_id: str
    recognised_on: date
    valid_until: date | None = None
    level: str | None = None
    severity: str | None = None
    legal_document: str | None = None  # ``legal_reference.reference`` when set
    status: RecordStatus = RecordStatus.ACTIVE
    provenance: Provenance = Provenance.PUBLIC
    flags: frozenset[str] = frozenset()
    legal_reference: LegalDocument | None = None  # H10 deductions only


@dataclass(frozen=True, slots=True)
class Residence:
    """A residence basis (``hukou``, ``residence_permit``, …) held since a date."""

    kind: str
    since: date


@dataclass(frozen=True, slots=True)
class Subject:
    """What the engine knows of the person: birth date and residence, never the ID (H6).

    Build it with :meth:`from_id_number` at intake; storage keeps the birth
    date next to the pseudonymous subject key, so batch scoring needs no ID.
    """

    birth_date: date
    residence: tuple[Residence, ...] = ()
    full_civil_capacity: bool = True

    @classmethod
    def from_id_number(
        cls,
        id_number: str,
        residence: tuple[Residence, ...] = (),
        *,
        full_civil_capacity: bool = True,
    ) -> Subject:
        return cls(birth_date(normalise_id_number(id_number)), residence, full_civil_capacity)


def _text(raw: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise RecordError(key, "is required", code="MISSING_FIELD")
        return None
    if not isinstance(value, str):
        raise RecordError(key, "must be a string", code="INVALID_FIELD")
    if len(value) > MAX_TEXT:
        raise RecordError(key, f"is longer than {MAX_TEXT} characters", code="INVALID_FIELD")
    return value


def _date(raw: Mapping[str, Any], key: str, *, required: bool = True) -> date | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise RecordError(key, "is required", code="MISSING_FIELD")
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise RecordError(key, "must be a date YYYY-MM-DD", code="INVALID_FIELD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecordError(
            key, f"{value!r} is not a date YYYY-MM-DD", code="INVALID_FIELD"
        ) from None


def _legal_reference(
    raw: Mapping[str, Any], category: Category, recognised_on: date, today: date
) -> LegalDocument | None:
    """The record's validated legal-document reference (H10), or None where none belongs."""
    if raw.get("legal_document_text"):
        raise RecordError(
            "legal_document_text",
            "free text is not a legal-document reference; give legal_document "
            "(kind, number, issuing_body, issued_on, organisation_code) (H10)",
            code="LEGAL_DOCUMENT_UNSTRUCTURED",
        )
    given = raw.get("legal_document")
    if not category.requires_legal_document:
        if given:
            raise RecordError(
                "legal_document",
                f"category {category.id!r} takes no legal-document reference (H7, H10)",
                code="LEGAL_DOCUMENT_NOT_APPLICABLE",
            )
        return None
    return validate_legal_document(
        given, kinds=category.legal_document_kinds, recognised_on=recognised_on, today=today
    )


def validate_record(raw: Mapping[str, Any], scheme: Scheme, today: date) -> CreditRecord:
    """Validate one untrusted record against ``scheme``; raise :class:`RecordError`."""
    if not isinstance(raw, Mapping):
        raise RecordError("record", "must be an object", code="INVALID_FIELD")
    category_id = _text(raw, "category")
    assert category_id is not None
    if category_id in FORBIDDEN_CATEGORIES:
        raise RecordError(
            "category",
            f"{category_id!r} is a forbidden category and is never collected (H7)",
            code="FORBIDDEN_CATEGORY",
        )
    category = scheme.categories.get(category_id)
    if category is None:
        raise RecordError(
            "category",
            f"{category_id!r} is not in scheme {scheme.key}'s catalogue",
            code="UNKNOWN_CATEGORY",
        )
    subject_id = normalise_id_number(raw.get("subject_id"))
    polarity_raw = raw.get("polarity", category.polarity.value)
    try:
        polarity = Polarity(polarity_raw)
    except ValueError:
        raise RecordError(
            "polarity", "must be 'positive' or 'negative'", code="INVALID_FIELD"
        ) from None
    if polarity is not category.polarity:
        raise RecordError(
            "polarity",
            f"category {category_id!r} is {category.polarity.value}",
            code="POLARITY_MISMATCH",
        )
    recognised_on = _date(raw, "recognised_on")
    assert recognised_on is not None
    if recognised_on > today:
        raise RecordError(
            "recognised_on",
            f"{recognised_on} is in the future (today is {today})",
            code="FUTURE_RECOGNITION",
        )
    valid_until = _date(raw, "valid_until", required=False)
    if valid_until is not None and valid_until < recognised_on:
        raise RecordError("valid_until", "is before recognised_on", code="INVALID_VALIDITY")
    level = _text(raw, "level", required=False)
    if level is not None and level not in category.level_multipliers:
        raise RecordError(
            "level", f"{level!r} is not a level of category {category_id!r}", code="UNKNOWN_LEVEL"
        )
    if level is None and category.level_multipliers:
        raise RecordError(
            "level", f"category {category_id!r} requires a level", code="MISSING_FIELD"
        )
    severity = _text(raw, "severity", required=False)
    if severity is not None and severity not in category.severities:
        raise RecordError(
            "severity",
            f"{severity!r} is not a severity of category {category_id!r}",
            code="UNKNOWN_SEVERITY",
        )
    try:
        provenance = Provenance(raw.get("provenance", "public"))
    except ValueError:
        raise RecordError(
            "provenance", "must be public, market or personal_verified", code="INVALID_FIELD"
        ) from None
    if provenance not in category.provenances:
        raise RecordError(
            "provenance",
            f"category {category_id!r} does not accept {provenance.value} records",
            code="PROVENANCE_NOT_ALLOWED",
        )
    try:
        status = RecordStatus(raw.get("status", "active"))
    except ValueError:
        raise RecordError(
            "status", "must be active, masked, repaired or revoked", code="INVALID_FIELD"
        ) from None
    flags_raw = raw.get("flags", [])
    if not isinstance(flags_raw, list | tuple | frozenset | set) or not all(
        isinstance(f, str) for f in flags_raw
    ):
        raise RecordError("flags", "must be a list of strings", code="INVALID_FIELD")
    if len(flags_raw) > len(RECORD_FLAGS):
        raise RecordError("flags", f"at most {len(RECORD_FLAGS)} flags", code="TOO_MANY_ITEMS")
    if not RECORD_FLAGS.issuperset(flags_raw):
        raise RecordError(  # the value is not echoed: it is the caller's free text
            "flags", f"each flag must be one of {sorted(RECORD_FLAGS)}", code="UNKNOWN_FLAG"
        )
    legal = _legal_reference(raw, category, recognised_on, today)
    record_id = _text(raw, "record_id")
    source = _text(raw, "source")
    act_id = _text(raw, "act_id")
    assert record_id is not None
    assert source is not None
    assert act_id is not None
    return CreditRecord(
        record_id=record_id,
        subject_id=subject_id,
        source=source,
        category=category_id,
        polarity=polarity,
        act_id=act_id,
        recognised_on=recognised_on,
        valid_until=valid_until,
        level=level,
        severity=severity,
        legal_document=None if legal is None else legal.reference,
        status=status,
        provenance=provenance,
        flags=frozenset(flags_raw),
        legal_reference=legal,
    )


def validate_batch(
    raws: Sequence[Mapping[str, Any]], scheme: Scheme, today: date
) -> tuple[list[CreditRecord], list[RecordError]]:
    """Validate every record; return the records and every error (with ``index`` set).

    Callers that must be all-or-nothing store the records only when the error
    list is empty.  Duplicate ``record_id`` values within a batch are an error.
    """
    records: list[CreditRecord] = []
    errors: list[RecordError] = []
    seen: set[str] = set()
    for i, raw in enumerate(raws):
        try:
            rec = validate_record(raw, scheme, today)
        except RecordError as exc:
            exc.index = i
            errors.append(exc)
            continue
        if rec.record_id in seen:
            errors.append(
                RecordError(
                    "record_id", "duplicate record_id in batch", code="INVALID_FIELD", index=i
                )
            )
            continue
        seen.add(rec.record_id)
        records.append(rec)
    return records, errors
