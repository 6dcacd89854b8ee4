"""Fair mappings: clean-record parity and incentive-tier tables, on the shipped schemes.

REQ: C3, H8, H13, H14, N14, N20 (issue 16 §"Fair mappings": a clean record maps to the
target's clean-record grade or higher; below the source's incentive tier an incentive-tier
table recognises nothing, so recognition only unlocks incentives).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from mapping import (
    INCENTIVE_TIER_SCOPE,
    GradeHistogram,
    InvariantError,
    MappingError,
    NotRecognisedError,
    agreement_table,
    anchored_table,
    canonical,
    check_set,
    compose,
    content_hash,
    equipercentile_table,
    most_conservative,
    published_table,
    published_tables,
    require_valid,
    sign_table,
    table_from_document,
)
from scoring import Scheme

from .conftest import SHIPPED, public_keys, region_key

PAIRS = [(a, b) for a in SHIPPED for b in SHIPPED if a != b]

#: Hainan → Wendeng recognises every grade and did not change: its content hash is the one
#: published before incentive-tier tables existed.
HAINAN_WENDENG_HASH = "sha256:ee43a5745eabdd9acfea41b00258cd05861d108b21e8daf8a3a65312822b01e9"


@pytest.mark.parametrize(("src", "tgt"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_shipped_tables_hold_clean_record_parity(
    schemes: dict[str, Scheme], src: str, tgt: str
) -> None:
    """REQ: H8, C3, N20 — in every published table the source's clean-record grade maps to the
    target's clean-record grade or higher, or (incentive-tier table, clean record not rewarded
    at home) is not recognised; and the table passes all seven invariants."""
    source, target = schemes[src], schemes[tgt]
    table = published_table(src, tgt)
    require_valid(table, source, target)
    mapped = table.recognise(source.base_grade)
    if mapped is None:
        assert table.incentive_tier
        assert not source.is_incentive_grade(source.base_grade)
        assert target.is_incentive_grade(target.base_grade)  # why no full table can be fair
    else:
        assert target.rank(mapped) >= target.rank(target.base_grade)


def test_exactly_the_tables_into_heihe_are_incentive_tier() -> None:
    """REQ: H8, H14 — Heihe rewards its clean record (A is its incentive tier), Fuzhou, Hainan
    and Wendeng do not: only tables into Heihe need the incentive-tier scope."""
    scoped = {(t.source.scheme, t.target.scheme) for t in published_tables() if t.incentive_tier}
    assert scoped == {("fuzhou", "heihe"), ("hainan", "heihe"), ("wendeng", "heihe")}


def test_parity_violation_is_refused_with_the_code_and_grades(schemes: dict[str, Scheme]) -> None:
    """REQ: H8, C3 — an agreement sending Heihe's clean record A to Hainan C (below Hainan's
    clean-record grade B) is refused before it can be signed, naming A, C and B."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    grades = {"SSS": "AA", "SS": "AA", "S": "A", "AAA": "A", "AA": "A", "A": "C"}
    grades |= {"B": "C", "C": "D", "D": "D"}
    with pytest.raises(InvariantError) as err:
        agreement_table(heihe, hainan, grades, effective_from=date(2026, 1, 1))
    assert err.value.code == "INVARIANT_CLEAN_RECORD_PARITY"
    assert err.value.invariant == "clean_record_parity"
    assert err.value.grades == ("A", "C", "B")
    draft = replace(published_table("heihe", "hainan"), grades=tuple(grades.items()))
    with pytest.raises(InvariantError) as signing:
        sign_table(draft, heihe, hainan, region_key("heihe"))
    assert signing.value.code == "INVARIANT_CLEAN_RECORD_PARITY"
    others = [
        t
        for t in published_tables()
        if t.content_hash != published_table("heihe", "hainan").content_hash
    ]
    assert "clean_record_parity" in {v.invariant for v in check_set([*others, draft], schemes)}


@pytest.mark.parametrize("src", ["fuzhou", "hainan", "wendeng"])
def test_full_table_into_heihe_cannot_be_fair(schemes: dict[str, Scheme], src: str) -> None:
    """REQ: H8, H14 — a table recognising every grade into Heihe would have to send the source's
    clean record (not rewarded at home) either below Heihe A (unfair) or to A (incentive-unsafe):
    refused with INVARIANT_CLEAN_RECORD_PARITY, pointing at the incentive-tier option."""
    with pytest.raises(InvariantError) as err:
        anchored_table(schemes[src], schemes["heihe"], incentive_tier=False)
    assert err.value.code == "INVARIANT_CLEAN_RECORD_PARITY"
    assert err.value.grades[0] == schemes[src].base_grade
    assert "incentive-tier" in err.value.message
    assert anchored_table(schemes[src], schemes["heihe"]) == published_table(src, "heihe")


# -- incentive-tier tables: representation, hash, lookups ----------------------


def test_incentive_tier_table_content_names_its_scope(schemes: dict[str, Scheme]) -> None:
    """REQ: C3 — the scope and the not-recognised grades (JSON null) are in the hashed content,
    and the document round-trips to the same table."""
    table = published_table("hainan", "heihe")
    content = table.content()
    assert content["scope"] == INCENTIVE_TIER_SCOPE
    assert content["grades"] == {"AAA": "AAA", "AA": "A", "A": "A", "B": None, "C": None, "D": None}
    assert table.content_hash == content_hash(content)
    assert b'"B":null' in canonical(content)
    assert table_from_document(table.to_json_bytes()) == table


def test_full_tables_keep_their_hash(schemes: dict[str, Scheme]) -> None:
    """REQ: C3 — with the option off a table's content has no scope member, so a table that did
    not change keeps the hash it was published with."""
    table = anchored_table(schemes["hainan"], schemes["wendeng"], incentive_tier=False)
    assert "scope" not in table.content()
    assert (
        table.content_hash
        == HAINAN_WENDENG_HASH
        == published_table("hainan", "wendeng").content_hash
    )


def _doc(table_pair: tuple[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(published_table(*table_pair).to_json_bytes())
    return doc


def _rehash(doc: dict[str, Any]) -> dict[str, Any]:
    doc["content_hash"] = content_hash(doc["content"])
    return doc


BAD_SCOPES = [
    ("scope-spelled-out", ("hainan", "wendeng"), lambda c: c.update(scope="all"), "MALFORMED_TABLE"),
    ("scope-not-a-string", ("hainan", "heihe"), lambda c: c.update(scope=True), "MALFORMED_TABLE"),
    ("grade-not-string-or-null", ("hainan", "heihe"), lambda c: c["grades"].update(B=1), "MALFORMED_TABLE"),
    ("null-without-scope", ("hainan", "wendeng"), lambda c: c["grades"].update(D=None), "INVARIANT_TOTAL"),
    ("below-tier-recognised", ("hainan", "heihe"), lambda c: c["grades"].update(D="D"), "INVARIANT_TOTAL"),
    ("eligible-not-recognised", ("hainan", "heihe"), lambda c: c["grades"].update(AAA=None), "INVARIANT_TOTAL"),
    ("scope-dropped", ("hainan", "heihe"), lambda c: c.pop("scope"), "INVARIANT_TOTAL"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "pair", "mutate", "code"), BAD_SCOPES, ids=[b[0] for b in BAD_SCOPES]
)
def test_bad_incentive_tier_documents_are_refused(
    schemes: dict[str, Scheme], name: str, pair: tuple[str, str], mutate: Any, code: str
) -> None:
    """REQ: C3, H14 — a scope other than incentive_tier, a null outside an incentive-tier table,
    a below-tier grade recognised or an eligible grade dropped is refused by name."""
    doc = _doc(pair)
    mutate(doc["content"])

    def load_and_check() -> None:
        table = table_from_document(json.dumps(_rehash(doc)).encode())
        require_valid(table, schemes[pair[0]], schemes[pair[1]])

    with pytest.raises(MappingError) as err:
        load_and_check()
    assert err.value.code == code, name


@pytest.mark.parametrize("grade", ["B", "C", "D"])
def test_lookups_say_not_recognised(schemes: dict[str, Scheme], grade: str) -> None:
    """REQ: H14, N20 — below Hainan's incentive tier the Hainan → Heihe table recognises
    nothing: ``recognise`` is None, ``map`` refuses with NOT_RECOGNISED, and so do a route
    through it and the resolved recognition."""
    table = published_table("hainan", "heihe")
    assert table.recognise(grade) is None
    with pytest.raises(NotRecognisedError) as err:
        table.map(grade)
    assert err.value.code == "NOT_RECOGNISED"
    route = compose(published_table("hainan", "fuzhou"), published_table("fuzhou", "heihe"))
    assert route.recognise(grade) is None
    with pytest.raises(NotRecognisedError):
        route.map(grade)
    rec = most_conservative(schemes["hainan"], schemes["heihe"], published_tables())
    assert rec.recognise(grade) is None
    with pytest.raises(NotRecognisedError):
        rec.map(grade)
    assert rec.map("A") == "A"


def test_most_conservative_prefers_not_recognised(schemes: dict[str, Scheme]) -> None:
    """REQ: C3, H14 — without a direct table, a route that does not recognise a grade wins over
    one that would carry a low grade: recognition never carries a low grade via a pivot."""
    tables = [
        t for t in published_tables() if (t.source.scheme, t.target.scheme) != ("heihe", "fuzhou")
    ]
    heihe = schemes["heihe"]
    full = most_conservative(heihe, schemes["fuzhou"], tables)
    assert all(len(full.route_entry(g)[2].tables) == 2 for g in heihe.grades)
    scoped = anchored_table(heihe, schemes["hainan"], incentive_tier=True)
    pool = [scoped if t.id == "heihe-hainan-anchored" else t for t in tables]
    rec = most_conservative(heihe, schemes["fuzhou"], pool, prefer_direct=False)
    for grade in heihe.grades:
        if heihe.is_incentive_grade(grade):
            assert rec.recognise(grade) is not None
        else:
            assert rec.recognise(grade) is None, grade


def test_every_method_offers_the_incentive_tier_option(schemes: dict[str, Scheme]) -> None:
    """REQ: C3, H14 — anchored, agreement and equipercentile tables can all be incentive-tier:
    below Heihe's A nothing is recognised, A and above keep their grades."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    anchored = anchored_table(heihe, hainan, incentive_tier=True)
    eligible = {g: anchored.map(g) for g in heihe.grades if heihe.is_incentive_grade(g)}
    agreement = agreement_table(
        heihe, hainan, eligible, effective_from=date(2026, 1, 1), incentive_tier=True
    )
    hs = GradeHistogram.of(heihe, "2026-10", dict.fromkeys(heihe.grades, 500))
    ht = GradeHistogram.of(hainan, "2026-10", dict.fromkeys(hainan.grades, 500))
    equi = equipercentile_table(
        heihe,
        hainan,
        hs.signed(region_key("heihe")),
        ht.signed(region_key("hainan")),
        keys=public_keys("heihe", "hainan"),
        incentive_tier=True,
    )
    for table in (anchored, agreement, equi):
        assert table.incentive_tier
        for grade in ("B", "C", "D"):
            assert table.recognise(grade) is None
        assert all(table.recognise(g) is not None for g in eligible)
    assert {g: agreement.map(g) for g in eligible} == eligible
