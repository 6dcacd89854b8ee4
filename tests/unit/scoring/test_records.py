"""Record intake: a named table of bad records, each with its exact error (H6, H7, N5, N10)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from scoring import (
    RECORD_FLAGS,
    Polarity,
    Provenance,
    RecordError,
    Scheme,
    list_schemes,
    load_scheme,
    validate_batch,
    validate_record,
)

from .conftest import make_id

TODAY = date(2026, 11, 23)
ID = make_id()


def good(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "record_id": "r1",
        "subject_id": ID,
        "source": "heihe-court",
        "category": "admin_penalty",
        "act_id": "act-1",
        "recognised_on": "2026-01-05",
        "severity": "ordinary",
    }
    base.update(overrides)
    return base


def test_good_record(heihe: Scheme) -> None:
    rec = validate_record(good(), heihe, TODAY)
    assert rec.polarity is Polarity.NEGATIVE
    assert rec.provenance is Provenance.PUBLIC
    assert rec.recognised_on == date(2026, 1, 5)


BAD = [
    pytest.param(
        {"subject_id": ID[:-1] + ("0" if ID[-1] != "0" else "1")},
        "subject_id",
        "INVALID_ID_NUMBER",
        id="bad-check-digit",
    ),
    pytest.param({"subject_id": "123"}, "subject_id", "INVALID_ID_NUMBER", id="short-id"),
    pytest.param({"subject_id": None}, "subject_id", "INVALID_ID_NUMBER", id="missing-id"),
    pytest.param(
        {"category": "religion"}, "category", "FORBIDDEN_CATEGORY", id="forbidden-religion"
    ),
    pytest.param(
        {"category": "biometrics"}, "category", "FORBIDDEN_CATEGORY", id="forbidden-biometrics"
    ),
    pytest.param({"category": "karaoke"}, "category", "UNKNOWN_CATEGORY", id="unknown-category"),
    pytest.param({"category": None}, "category", "MISSING_FIELD", id="missing-category"),
    pytest.param({"polarity": "positive"}, "polarity", "POLARITY_MISMATCH", id="wrong-polarity"),
    pytest.param(
        {"recognised_on": "2026-11-24"},
        "recognised_on",
        "FUTURE_RECOGNITION",
        id="recognised-tomorrow",
    ),
    pytest.param({"recognised_on": "2026-13-01"}, "recognised_on", "INVALID_FIELD", id="bad-date"),
    pytest.param(
        {"valid_until": "2025-01-01"},
        "valid_until",
        "INVALID_VALIDITY",
        id="validity-before-recognition",
    ),
    pytest.param(
        {"severity": "apocalyptic"}, "severity", "UNKNOWN_SEVERITY", id="unknown-severity"
    ),
    pytest.param(
        {"provenance": "market"}, "provenance", "PROVENANCE_NOT_ALLOWED", id="market-penalty"
    ),
    pytest.param({"provenance": "rumour"}, "provenance", "INVALID_FIELD", id="unknown-provenance"),
    pytest.param({"status": "deleted"}, "status", "INVALID_FIELD", id="bad-status"),
    pytest.param({"act_id": ""}, "act_id", "MISSING_FIELD", id="missing-act"),
    pytest.param({"source": 7}, "source", "INVALID_FIELD", id="non-string-source"),
    pytest.param({"source": "x" * 300}, "source", "INVALID_FIELD", id="overlong-source"),
    pytest.param({"flags": "simple_procedure"}, "flags", "INVALID_FIELD", id="flags-not-list"),
    # issue 14 item 7: flags from the catalogue only, at most as many as it holds
    pytest.param({"flags": ["vip"]}, "flags", "UNKNOWN_FLAG", id="flag-not-in-catalogue"),
    pytest.param(
        {"flags": ["simple_procedure,minor_corrected_promptly"]},
        "flags",
        "UNKNOWN_FLAG",
        id="flag-with-comma",
    ),
    pytest.param(
        {"flags": ["simple_procedure"] * 100_000}, "flags", "TOO_MANY_ITEMS", id="flags-100000"
    ),
    pytest.param(
        {"category": "honour", "severity": None},
        "level",
        "MISSING_FIELD",
        id="honour-without-level",
    ),
    pytest.param(
        {"category": "honour", "severity": None, "level": "galactic"},
        "level",
        "UNKNOWN_LEVEL",
        id="unknown-level",
    ),
]


@pytest.mark.parametrize(("overrides", "field", "code"), BAD)
def test_bad_records(heihe: Scheme, overrides: dict[str, Any], field: str, code: str) -> None:
    with pytest.raises(RecordError) as info:
        validate_record(good(**overrides), heihe, TODAY)
    assert (info.value.field, info.value.code) == (field, code)
    assert ID not in str(info.value)


def test_batch_reports_every_bad_record_with_its_index(heihe: Scheme) -> None:
    """A batch is all-or-nothing: every error is reported so the caller writes nothing (H7)."""
    raws = [
        good(),
        good(record_id="r2", category="religion"),
        good(record_id="r1"),
        good(record_id="r4"),
    ]
    records, errors = validate_batch(raws, heihe, TODAY)
    assert [(e.index, e.code) for e in errors] == [(1, "FORBIDDEN_CATEGORY"), (2, "INVALID_FIELD")]
    assert [r.record_id for r in records] == ["r1", "r4"]


def test_personal_supplementary_upload_allowed_only_where_scheme_says(hainan: Scheme) -> None:
    """REQ: N5, N9 — verified personal uploads count for honours in Hainan."""
    raw = good(category="volunteering", severity=None, provenance="personal_verified")
    assert validate_record(raw, hainan, TODAY).provenance is Provenance.PERSONAL_VERIFIED


def test_the_flag_catalogue_is_safe_to_store_comma_joined() -> None:
    """Issue 14 item 7: records keep flags comma-joined; no catalogue flag holds a comma,
    and every flag a shipped scheme excludes is in the catalogue."""
    assert RECORD_FLAGS and not any("," in f or not f for f in RECORD_FLAGS)
    for scheme_id in list_schemes():
        for cat in load_scheme(scheme_id).categories.values():
            assert cat.excluded_flags <= RECORD_FLAGS
