"""Legal-document references of responsible-individual deductions, validated purely.

REQ: H10 (issue 15 §3) — a deduction from the individual directly responsible for a
severely dishonest organisation rests on a structured reference to the legal
document naming them (kind from a closed list, number, issuing body, date) and the
organisation's unified social credit code (GB 32100); free text is refused. H7 —
no other category collects one.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Any

import pytest

from scoring import (
    LEGAL_DOCUMENT_KINDS,
    RecordError,
    SchemeError,
    check_character,
    load_scheme,
    normalise_uscc,
    parse_reference,
    parse_scheme_toml,
    uscc_check_character,
    validate_record,
)

HEIHE = load_scheme("heihe")
TODAY = date(2026, 11, 30)
ORG = "91350100M000100Y43"  # the worked example of GB 32100-2015
PERSON = "23110019850312001" + check_character("23110019850312001")


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "penalty_decision",
        "number": "黑市监罚〔2026〕12号",
        "issuing_body": "黑河市市场监督管理局",
        "issued_on": "2026-03-01",
        "organisation_code": ORG,
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


def _record(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "record_id": "ri-1",
        "subject_id": PERSON,
        "source": "court",
        "category": "responsible_individual",
        "act_id": "act-ri-1",
        "recognised_on": "2026-05-01",
        "legal_document": _doc(),
    }
    raw.update(changes)
    return raw


def _wrong_check(code: str) -> str:
    right = uscc_check_character(code[:17])
    return code[:17] + ("1" if right != "1" else "2")


# name, the record, the exact reason code and field
BAD = [
    ("missing", _record(legal_document=None), "LEGAL_DOCUMENT_REQUIRED", "legal_document"),
    ("empty", _record(legal_document={}), "LEGAL_DOCUMENT_REQUIRED", "legal_document"),
    ("free-text-x", _record(legal_document="x"), "LEGAL_DOCUMENT_UNSTRUCTURED", "legal_document"),
    ("free-text-field", _record(legal_document_text="x"), "LEGAL_DOCUMENT_UNSTRUCTURED",
     "legal_document_text"),
    ("kind-missing", _record(legal_document=_doc(kind=None)), "MISSING_FIELD",
     "legal_document.kind"),
    ("kind-not-in-list", _record(legal_document=_doc(kind="warning_letter")),
     "UNKNOWN_DOCUMENT_KIND", "legal_document.kind"),
    ("kind-chinese-name", _record(legal_document=_doc(kind="行政处罚决定书")),
     "UNKNOWN_DOCUMENT_KIND", "legal_document.kind"),
    ("number-missing", _record(legal_document=_doc(number=None)), "MISSING_FIELD",
     "legal_document.number"),
    ("number-no-year", _record(legal_document=_doc(number="黑市监罚12号")),
     "INVALID_DOCUMENT_NUMBER", "legal_document.number"),
    ("number-no-hao", _record(legal_document=_doc(number="黑市监罚〔2026〕12")),
     "INVALID_DOCUMENT_NUMBER", "legal_document.number"),
    ("number-x", _record(legal_document=_doc(number="x")), "INVALID_DOCUMENT_NUMBER",
     "legal_document.number"),
    ("number-too-long", _record(legal_document=_doc(number="黑" * 24 + "〔2026〕" + "1" * 33 + "号")),
     "INVALID_DOCUMENT_NUMBER", "legal_document.number"),
    ("issuer-missing", _record(legal_document=_doc(issuing_body=None)), "MISSING_FIELD",
     "legal_document.issuing_body"),
    ("issuer-too-long", _record(legal_document=_doc(issuing_body="局" * 65)), "INVALID_FIELD",
     "legal_document.issuing_body"),
    ("issuer-control-char", _record(legal_document=_doc(issuing_body="黑河\n法院")),
     "INVALID_FIELD", "legal_document.issuing_body"),
    ("date-missing", _record(legal_document=_doc(issued_on=None)), "MISSING_FIELD",
     "legal_document.issued_on"),
    ("date-malformed", _record(legal_document=_doc(issued_on="2026-3-1")), "INVALID_FIELD",
     "legal_document.issued_on"),
    ("date-in-future", _record(recognised_on="2026-11-30",
                               legal_document=_doc(issued_on="2026-12-01")),
     "FUTURE_DOCUMENT_DATE", "legal_document.issued_on"),
    ("date-after-recognition", _record(legal_document=_doc(issued_on="2026-06-01")),
     "DOCUMENT_AFTER_RECOGNITION", "legal_document.issued_on"),
    ("organisation-missing", _record(legal_document=_doc(organisation_code=None)),
     "MISSING_FIELD", "legal_document.organisation_code"),
    ("organisation-check-char-wrong", _record(legal_document=_doc(organisation_code=_wrong_check(ORG))),
     "INVALID_ORGANISATION_CODE", "legal_document.organisation_code"),
    ("organisation-17-chars", _record(legal_document=_doc(organisation_code=ORG[:17])),
     "INVALID_ORGANISATION_CODE", "legal_document.organisation_code"),
    ("organisation-letter-o", _record(legal_document=_doc(organisation_code="O" + ORG[1:])),
     "INVALID_ORGANISATION_CODE", "legal_document.organisation_code"),
    ("organisation-is-an-id-number", _record(legal_document=_doc(organisation_code=PERSON)),
     "INVALID_ORGANISATION_CODE", "legal_document.organisation_code"),
    ("unknown-part", _record(legal_document=_doc(organisation_name="某公司")), "INVALID_FIELD",
     "legal_document.organisation_name"),
    ("reference-on-another-category", _record(category="admin_penalty", severity="minor"),
     "LEGAL_DOCUMENT_NOT_APPLICABLE", "legal_document"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "code", "field"), BAD, ids=[c[0] for c in BAD])
def test_bad_reference_is_refused_with_its_reason_and_field(
    name: str, raw: dict[str, Any], code: str, field: str
) -> None:
    """REQ: H10, H7 (issue 15 §3) — each bad reference is refused with its exact reason,
    naming the part of the reference; the message never quotes the organisation code."""
    with pytest.raises(RecordError) as info:
        validate_record(raw, HEIHE, TODAY)
    assert (info.value.code, info.value.field) == (code, field)
    assert ORG[:17] not in info.value.message and PERSON not in info.value.message


def test_valid_reference_is_kept_structured_and_as_the_engine_reads_it() -> None:
    """REQ: H10 (issue 15 §3) — kind, number, issuer, date and the normalised code are kept;
    ``legal_document`` is ``"<kind> <number>"``, which the engine parses back."""
    rec = validate_record(_record(legal_document=_doc(organisation_code=ORG.lower())), HEIHE, TODAY)
    assert rec.legal_reference is not None
    assert rec.legal_reference.organisation_code == ORG
    assert rec.legal_reference.issued_on == date(2026, 3, 1)
    assert rec.legal_document == "penalty_decision 黑市监罚〔2026〕12号"
    kinds = HEIHE.categories["responsible_individual"].legal_document_kinds
    assert parse_reference(rec.legal_document, kinds) == (
        "penalty_decision",
        "黑市监罚〔2026〕12号",
    )


NUMBERS = [
    ("admin-decision", "黑市监罚〔2026〕12号"),
    ("court-judgment", "（2026）黑1102民初123号"),
    ("court-enforcement-ascii-brackets", "(2025)黑11执45号"),
    ("with-di", "黑河市监处罚字〔2024〕第7号"),
]


@pytest.mark.parametrize(("name", "number"), NUMBERS, ids=[c[0] for c in NUMBERS])
def test_real_document_number_shapes_are_accepted(name: str, number: str) -> None:
    """REQ: H10 — administrative and court document numbers (文号, 案号) both fit the pattern."""
    rec = validate_record(_record(legal_document=_doc(number=number)), HEIHE, TODAY)
    assert rec.legal_document == f"penalty_decision {number}"


def test_every_catalogue_kind_is_accepted_by_heihe() -> None:
    """REQ: H10, H6 — Heihe's category takes every kind of the closed catalogue."""
    for kind in LEGAL_DOCUMENT_KINDS:
        rec = validate_record(_record(legal_document=_doc(kind=kind)), HEIHE, TODAY)
        assert rec.legal_reference is not None and rec.legal_reference.kind == kind


def test_document_dated_before_the_listing_is_not_refused_here() -> None:
    """REQ: H10 — a penalty decision usually precedes (and grounds) the organisation's
    listing, so a document may be older than the record; only the record's date is
    checked against the listing (by the node)."""
    rec = validate_record(_record(legal_document=_doc(issued_on="2020-01-02")), HEIHE, TODAY)
    assert rec.legal_reference is not None


def test_uscc_check_character_worked_examples() -> None:
    """GB 32100-2015: the standard's example and its MOD 31 rule."""
    assert normalise_uscc(ORG) == ORG
    assert normalise_uscc("91110000802100433b") == "91110000802100433B"
    with pytest.raises(RecordError) as info:
        normalise_uscc(_wrong_check(ORG))
    assert info.value.code == "INVALID_ORGANISATION_CODE"


def _heihe_with(category_toml: str) -> str:
    """heihe.toml with its responsible_individual category replaced."""
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    start = text.index("[categories.responsible_individual]")
    end = text.index("[categories.other_dishonesty]")
    return text[:start] + category_toml + "\n" + text[end:]


SCHEME_CASES = [
    ("unknown-kind", 'polarity = "negative"\nrequires_legal_document = true\n'
     'legal_document_kinds = ["letter"]', "categories.responsible_individual.legal_document_kinds"),
    ("kinds-without-requirement", 'polarity = "negative"\nlegal_document_kinds = ["judgment"]',
     "categories.responsible_individual.legal_document_kinds"),
    ("positive-with-document", 'polarity = "positive"\nrequires_legal_document = true',
     "categories.responsible_individual.requires_legal_document"),
    ("empty-kinds", 'polarity = "negative"\nrequires_legal_document = true\n'
     "legal_document_kinds = []", "categories.responsible_individual.legal_document_kinds"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "field"), SCHEME_CASES, ids=[c[0] for c in SCHEME_CASES])
def test_scheme_document_kinds_are_checked_at_load(name: str, body: str, field: str) -> None:
    """REQ: H10, H7 — a scheme narrows the catalogue only for a deduction that needs a
    document, and only to kinds of the catalogue."""
    toml = _heihe_with(
        f'[categories.responsible_individual]\nname = "x"\npoints = 100\nvalidity_years = 3\n{body}'
    )
    with pytest.raises(SchemeError) as info:
        parse_scheme_toml(toml)
    assert info.value.field == field


def test_scheme_may_narrow_the_kinds() -> None:
    """REQ: H10 — a scheme accepting judgments only refuses a penalty decision."""
    toml = _heihe_with(
        '[categories.responsible_individual]\nname = "x"\npolarity = "negative"\npoints = 100\n'
        'validity_years = 3\nrequires_legal_document = true\nlegal_document_kinds = ["judgment"]'
    )
    scheme = parse_scheme_toml(toml)
    with pytest.raises(RecordError) as info:
        validate_record(_record(), scheme, TODAY)
    assert (info.value.code, info.value.field) == ("UNKNOWN_DOCUMENT_KIND", "legal_document.kind")
