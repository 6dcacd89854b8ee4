"""Legal-document references for responsible-individual deductions (H10).

Heihe 三(二)4: 法人、非法人组织为严重失信主体且被列入失信名单的，对失信行为负有
直接责任并有明确法律文书（如行政处罚决定书、法院判决书）认定的个人依法依规扣分.
A record of a category that ``requires_legal_document`` carries a structured
:class:`LegalDocument`; free text is never enough.  This module is pure: the
organisation's presence on the severe-dishonesty list is checked by the node
against the listings its sources filed (``node.organisations``).

Invariants of a validated :class:`LegalDocument` (checked by
:func:`validate_legal_document`, which raises one :class:`~scoring.RecordError`
whose field is the dotted path ``legal_document.<part>``):

* ``kind`` is in :data:`LEGAL_DOCUMENT_KINDS` (and in the category's own
  ``legal_document_kinds`` where the scheme narrows it);
* ``number`` matches :data:`NUMBER_PATTERN` (at most :data:`NUMBER_MAX`
  characters): an issuer's abbreviation, the year in brackets, the serial, 号 —
  ``黑市监罚〔2026〕12号``, ``（2026）黑1102民初123号``;
* ``issuing_body`` is 1..:data:`ISSUER_MAX` printable characters;
* ``issued_on`` is not after the intake day nor after the record's recognition
  (a record cannot rest on a document not yet issued);
* ``organisation_code`` is a GB 32100 unified social credit code with a
  matching check character (:func:`normalise_uscc`).

``reference`` (``"<kind> <number>"``) is what the engine reads and explains;
:func:`parse_reference` accepts exactly the references this module builds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ._errors import RecordError

__all__ = [
    "ISSUER_MAX",
    "LEGAL_DOCUMENT_KINDS",
    "NUMBER_MAX",
    "NUMBER_PATTERN",
    "LegalDocument",
    "describe_reference",
    "normalise_uscc",
    "parse_reference",
    "uscc_check_character",
    "validate_legal_document",
]

#: The documents that may name an individual as directly responsible (H10 names
#: 行政处罚决定书 and 法院判决书 as examples; H6 adds compulsory enforcement, court
#: rulings (判决、裁定) and dishonesty determinations (失信认定)).  Closed: a kind
#: outside it is refused (``UNKNOWN_DOCUMENT_KIND``).  A scheme category may
#: narrow it with ``legal_document_kinds``.
LEGAL_DOCUMENT_KINDS: Mapping[str, str] = {
    "penalty_decision": "行政处罚决定书",
    "enforcement_decision": "行政强制执行决定书",
    "judgment": "判决书",
    "ruling": "裁定书",
    "dishonesty_determination": "失信行为认定文书",
}
NUMBER_MAX = 64
ISSUER_MAX = 64
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
#: 文号: an optional issuer abbreviation (up to 24), the year 1900-2099 in brackets
#: (〔〕, （）, (), [], 【】), a serial of up to 32 (letters, digits, CJK, ``-``), 号.
NUMBER_PATTERN = re.compile(
    rf"[{_CJK}A-Za-z0-9]{{0,24}}"
    r"[〔（(\[【](?:19|20)[0-9]{2}[〕）)\]】]"
    rf"[{_CJK}A-Za-z0-9\-]{{1,32}}号"
)
_PARTS = ("kind", "number", "issuing_body", "issued_on", "organisation_code")

# GB 32100-2015: 18 characters of 0-9 and A-Y without I, O, S, V, Z; characters
# 3-8 are the administrative division (digits); the 18th is a MOD 31 check.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARS)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


@dataclass(frozen=True, slots=True)
class LegalDocument:
    """A validated reference to the document naming the responsible individual."""

    kind: str
    number: str
    issuing_body: str
    issued_on: date
    organisation_code: str

    @property
    def reference(self) -> str:
        """``"<kind> <number>"``: what the record stores for the engine to explain."""
        return f"{self.kind} {self.number}"


def uscc_check_character(first17: str) -> str:
    """The GB 32100 check character of 17 code characters (from the code alphabet)."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def normalise_uscc(value: object, *, field: str = "organisation_code") -> str:
    """The canonical (upper-case) unified social credit code, or ``INVALID_ORGANISATION_CODE``.

    The message never quotes the value.
    """
    code = "INVALID_ORGANISATION_CODE"
    if not isinstance(value, str) or not value:
        raise RecordError(field, "is required", code="MISSING_FIELD")
    text = value.strip().upper()
    if len(text) != 18 or not text.isascii():
        raise RecordError(field, "must be 18 characters (GB 32100)", code=code)
    if any(c not in _USCC_VALUE for c in text):
        raise RecordError(field, "must use 0-9 and A-Y without I, O, S, V, Z (GB 32100)", code=code)
    if not text[2:8].isdigit():
        raise RecordError(field, "characters 3-8 must be the division code (digits)", code=code)
    if uscc_check_character(text[:17]) != text[17]:
        raise RecordError(field, "check character does not match (GB 32100)", code=code)
    return text


def _part(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    path = f"legal_document.{key}"
    if value is None or value == "":
        raise RecordError(path, "is required (H10)", code="MISSING_FIELD")
    if not isinstance(value, str):
        raise RecordError(path, "must be a string", code="INVALID_FIELD")
    return value


def validate_legal_document(
    raw: object,
    *,
    kinds: frozenset[str],
    recognised_on: date,
    today: date,
) -> LegalDocument:
    """Validate an untrusted reference (a mapping of :data:`_PARTS`); raise RecordError.

    ``kinds`` are the kinds the record's category accepts.
    """
    if isinstance(raw, str):
        raise RecordError(
            "legal_document",
            "must be a structured reference (kind, number, issuing_body, issued_on, "
            "organisation_code), not free text (H10)",
            code="LEGAL_DOCUMENT_UNSTRUCTURED",
        )
    if not isinstance(raw, Mapping) or not any(raw.get(p) for p in _PARTS):
        raise RecordError(
            "legal_document",
            "a responsible-individual deduction needs the legal document naming the "
            "individual (H10)",
            code="LEGAL_DOCUMENT_REQUIRED",
        )
    unknown = sorted(str(k) for k in raw if k not in _PARTS)
    if unknown:
        raise RecordError(
            f"legal_document.{unknown[0][:32]}",
            f"is not a part of a reference {list(_PARTS)}",
            code="INVALID_FIELD",
        )
    kind = _part(raw, "kind")
    if kind not in kinds:
        shown = kind if kind in LEGAL_DOCUMENT_KINDS else "this kind"
        raise RecordError(
            "legal_document.kind",
            f"{shown!r} is not one of {sorted(kinds)} (H10)",
            code="UNKNOWN_DOCUMENT_KIND",
        )
    number = _part(raw, "number")
    if len(number) > NUMBER_MAX or not NUMBER_PATTERN.fullmatch(number):
        raise RecordError(
            "legal_document.number",
            f"must be a document number such as 黑市监罚〔2026〕12号 or （2026）黑1102民初123号 "
            f"(at most {NUMBER_MAX} characters: issuer, year in brackets, serial, 号)",
            code="INVALID_DOCUMENT_NUMBER",
        )
    issuer = _part(raw, "issuing_body")
    if len(issuer) > ISSUER_MAX or not issuer.isprintable() or issuer != issuer.strip():
        raise RecordError(
            "legal_document.issuing_body",
            f"must be 1-{ISSUER_MAX} printable characters without surrounding spaces",
            code="INVALID_FIELD",
        )
    issued_text = _part(raw, "issued_on")
    try:
        issued_on = date.fromisoformat(issued_text) if len(issued_text) == 10 else None
    except ValueError:
        issued_on = None
    if issued_on is None:
        raise RecordError(
            "legal_document.issued_on", "must be a date YYYY-MM-DD", code="INVALID_FIELD"
        )
    if issued_on > today:
        raise RecordError(
            "legal_document.issued_on",
            f"{issued_on} is in the future (today is {today})",
            code="FUTURE_DOCUMENT_DATE",
        )
    if issued_on > recognised_on:
        raise RecordError(
            "legal_document.issued_on",
            f"{issued_on} is after the record's recognition {recognised_on}",
            code="DOCUMENT_AFTER_RECOGNITION",
        )
    organisation = normalise_uscc(
        raw.get("organisation_code"), field="legal_document.organisation_code"
    )
    return LegalDocument(kind, number, issuer, issued_on, organisation)


def parse_reference(text: str | None, kinds: frozenset[str]) -> tuple[str, str] | None:
    """``(kind, number)`` of a stored reference, or None if it is not one of ``kinds``'."""
    if not text:
        return None
    kind, _, number = text.partition(" ")
    if kind not in kinds or len(number) > NUMBER_MAX or not NUMBER_PATTERN.fullmatch(number):
        return None
    return kind, number


def describe_reference(kind: str, number: str) -> str:
    """The reference as a citizen reads it: ``行政处罚决定书 黑市监罚〔2026〕12号``."""
    return f"{LEGAL_DOCUMENT_KINDS.get(kind, kind)} {number}"
