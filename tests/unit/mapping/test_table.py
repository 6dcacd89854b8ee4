"""Table documents: canonical encoding, content hash, parsing, tampering and validity dates.

REQ: C3 — tables are versioned, effective from a date and cited by content hash.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

import pytest

from mapping import (
    MappingError,
    TableError,
    ValidityError,
    anchored_table,
    canonical,
    check_validity,
    content_hash,
    published_table,
    strict_loads,
    table_from_document,
)
from scoring import Scheme


def test_canonical_encoding_vector() -> None:
    """docs/mapping.md's test vector: sorted keys, no spaces, UTF-8, escapes."""
    value = {"b": [1, -2, None, True], "a": '黑河\n"x"\u0001', "é": {}}
    assert canonical(value) == (
        '{"a":"黑河\\n\\"x\\"\\u0001","b":[1,-2,null,true],"é":{}}'.encode()
    )
    assert content_hash({"a": 1}) == "sha256:" + hashlib.sha256(b'{"a":1}').hexdigest()


@pytest.mark.parametrize(
    "value",
    [1.5, {"a": float("nan")}, {1: "x"}, {"a": object()}],
    ids=["float", "nan", "int-key", "object"],
)
def test_canonical_refuses_non_json_values(value: Any) -> None:
    with pytest.raises(TableError):
        canonical(value)


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"a":1.0}', '{"a":NaN}', "{", b"\xff\xfe"],
    ids=["duplicate-key", "float", "nan", "truncated", "not-utf8"],
)
def test_strict_loads_refuses(text: str | bytes) -> None:
    with pytest.raises(TableError):
        strict_loads(text)


def test_document_round_trip_keeps_hash(schemes: dict[str, Scheme]) -> None:
    table = anchored_table(schemes["heihe"], schemes["wendeng"])
    again = table_from_document(table.to_json_bytes())
    assert again == table
    assert again.content_hash == table.content_hash
    # the hash is over the canonical content, not the pretty file
    doc = json.loads(table.to_json_bytes())
    assert content_hash(doc["content"]) == table.content_hash


def test_hash_ignores_signatures(schemes: dict[str, Scheme]) -> None:
    from .conftest import region_key

    table = anchored_table(schemes["heihe"], schemes["wendeng"])
    assert table.signed(region_key("heihe")).content_hash == table.content_hash


def test_hash_changes_with_any_content(schemes: dict[str, Scheme]) -> None:
    from dataclasses import replace

    table = anchored_table(schemes["heihe"], schemes["wendeng"])
    assert replace(table, version="2").content_hash != table.content_hash
    assert replace(table, expires=date(2030, 1, 1)).content_hash != table.content_hash


def _doc(schemes: dict[str, Scheme]) -> dict[str, Any]:
    return json.loads(anchored_table(schemes["heihe"], schemes["fuzhou"]).to_json_bytes())


def _rehash(doc: dict[str, Any]) -> dict[str, Any]:
    doc["content_hash"] = content_hash(doc["content"])
    return doc


BAD_DOCUMENTS = [
    ("edited-grade", lambda d: d["content"]["grades"].update(A="jicha") or d, "HASH_MISMATCH"),
    ("edited-hash", lambda d: d.update(content_hash="sha256:" + "0" * 64) or d, "HASH_MISMATCH"),
    ("no-hash-prefix", lambda d: d.update(content_hash="abc") or d, "MALFORMED_TABLE"),
    ("extra-member", lambda d: d.update(extra=1) or d, "MALFORMED_TABLE"),
    (
        "wrong-format",
        lambda d: _rehash(d["content"].update(format="v0") or d),
        "MALFORMED_TABLE",
    ),
    (
        "unknown-method",
        lambda d: _rehash(d["content"].update(method="vibes") or d),
        "UNKNOWN_METHOD",
    ),
    (
        "bad-date",
        lambda d: _rehash(d["content"].update(effective_from="2025-13-01") or d),
        "MALFORMED_TABLE",
    ),
    (
        "grades-not-object",
        lambda d: _rehash(d["content"].update(grades=["A"]) or d),
        "MALFORMED_TABLE",
    ),
    (
        "extra-content-field",
        lambda d: _rehash(d["content"].update(note="x") or d),
        "MALFORMED_TABLE",
    ),
    ("bad-signature-shape", lambda d: d.update(signatures=[{"key_id": 1}]) or d, "BAD_SIGNATURE"),
    (
        "signature-not-base64",
        lambda d: d.update(signatures=[{"key_id": "k", "sig": "!!"}]) or d,
        "BAD_SIGNATURE",
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "code"), BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS]
)
def test_bad_documents_are_refused(
    schemes: dict[str, Scheme], name: str, mutate: Any, code: str
) -> None:
    doc = mutate(_doc(schemes))
    with pytest.raises(MappingError) as err:
        table_from_document(json.dumps(doc).encode())
    assert err.value.code == code, name


@pytest.mark.parametrize(
    ("today", "code"),
    [
        (date(2024, 12, 31), "TABLE_NOT_YET_EFFECTIVE"),
        (date(2027, 1, 1), "TABLE_EXPIRED"),
        (date(2027, 6, 1), "TABLE_EXPIRED"),
    ],
    ids=["day-before", "expiry-day", "after"],
)
def test_validity_window(schemes: dict[str, Scheme], today: date, code: str) -> None:
    table = anchored_table(schemes["heihe"], schemes["hainan"], expires=date(2027, 1, 1))
    with pytest.raises(ValidityError) as err:
        check_validity(table, today)
    assert err.value.code == code


def test_validity_edges_inclusive_start(schemes: dict[str, Scheme]) -> None:
    table = anchored_table(schemes["heihe"], schemes["hainan"], expires=date(2027, 1, 1))
    check_validity(table, date(2025, 1, 1))  # first effective day
    check_validity(table, date(2026, 12, 31))  # last day before expiry


def test_published_tables_effective_from_later_scheme() -> None:
    t = published_table("wendeng", "heihe")
    assert t.effective_from == date(2025, 1, 1)
    assert t.expires is None


@pytest.mark.parametrize(
    ("src", "tgt"), [("nowhere", "heihe"), ("heihe", "nowhere")], ids=["source", "target"]
)
def test_unknown_scheme_is_named(src: str, tgt: str) -> None:
    with pytest.raises(TableError) as err:
        published_table(src, tgt)
    assert err.value.code == "UNKNOWN_SCHEME"


def test_unknown_source_grade(schemes: dict[str, Scheme]) -> None:
    table = anchored_table(schemes["heihe"], schemes["hainan"])
    with pytest.raises(TableError) as err:
        table.map("Z")
    assert err.value.code == "UNKNOWN_GRADE"
