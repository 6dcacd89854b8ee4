"""Consent purposes are catalogue scenarios; disclosure rules (node/disclosure, ADR 0512).

REQ: H12 H14 N14 N16 — issue 15 §2.  The end-to-end story is
tests/integration/test_scenario_disclosure.py; here the pure rules and the unit of
work that ends a consent whose subject fell below its scenario.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import KeyPair, MappedGrade
from node.core._errors import NodeError
from node.demo._testbed import approved_set
from node.disclosure import (
    disclosed,
    end_unmet_consent,
    grade_in_scenario,
    request_terms,
    scenario_for,
    shipped_scenario,
    target_for,
    trusted_scenarios,
    unrecognised_for_threshold,
)
from node.exchange._consent import withdrawn_error
from node.pb.v1 import node_pb2
from node.rpc._status import map_error
from node.store._consents import STATUS_REVOKED, STATUS_SUPERSEDED
from node.store._db import Database
from node.store._translog import TransparencyLog
from scoring import Disclosure, load_scheme

HEIHE = load_scheme("heihe")
SUBJECT = b"\x07" * 32
NOW = 1_800_000_000


def _code(fn: object) -> tuple[str, str]:
    with pytest.raises(NodeError) as info:
        fn()  # type: ignore[operator]
    return info.value.code, info.value.field


@pytest.mark.parametrize(
    "purpose",
    [
        pytest.param("loan", id="free-text"),
        pytest.param("deny_housing_subsidy", id="punitive-deny"),
        pytest.param("blacklist_check", id="punitive-blacklist"),
        pytest.param("heihe/blacklist-check", id="not-in-catalogue"),
        pytest.param("fuzhou/credit-loans", id="scheme-without-that-scenario"),
        pytest.param("atlantis/x", id="unknown-scheme"),
        pytest.param("heihe/" + "x" * 95, id="too-long"),
        pytest.param("", id="empty"),
    ],
)
def test_only_catalogue_scenarios_are_purposes(purpose: str) -> None:
    """REQ: H14 N14 — anything but '<scheme id>/<scenario id>' of a shipped catalogue is
    INVALID_ARGUMENT UNKNOWN_SCENARIO on the purpose, the text never echoed."""
    assert _code(lambda: shipped_scenario(purpose)) == ("UNKNOWN_SCENARIO", "purpose")
    assert _code(lambda: scenario_for(purpose, HEIHE)) == ("UNKNOWN_SCENARIO", "purpose")
    with pytest.raises(NodeError) as info:
        shipped_scenario(purpose)
    assert purpose not in map_error(info.value).message or not purpose


def test_a_scenario_names_its_tier_disclosure_and_scheme_version() -> None:
    """REQ: H12 H14 — heihe/credit-loans: tier A, grade and score allowed; a grade is met
    at the tier or above only."""
    s = scenario_for("heihe/credit-loans", HEIHE)
    assert (s.scheme, s.min_tier, s.allowed) == ("heihe@2025.1", "A", Disclosure.GRADE_AND_SCORE)
    assert [g for g in HEIHE.grades if s.meets(g)] == ["SSS", "SS", "S", "AAA", "AA", "A"]
    assert not s.meets("B") and not s.meets("") and not s.meets("X")
    assert s.describe() == "meets heihe/credit-loans (tier ≥ A in heihe@2025.1)"


@pytest.mark.parametrize(
    ("purpose", "scope", "target", "expect"),
    [
        pytest.param("heihe/credit-loans", node_pb2.CONSENT_SCOPE_GRADE, "", ("grade", ""), id="own-scheme-no-mapping"),
        pytest.param("heihe/credit-loans", node_pb2.CONSENT_SCOPE_GRADE, "heihe", ("grade", ""), id="own-scheme-named"),
        pytest.param("heihe/credit-loans", node_pb2.CONSENT_SCOPE_GRADE, "hainan", ("grade", "hainan"), id="grade-mapped-for-recognition"),
        pytest.param("heihe/deposit-free-rental", node_pb2.CONSENT_SCOPE_UNSPECIFIED, "", ("threshold", ""), id="unspecified-is-threshold"),
        pytest.param("hainan/bank-credit", node_pb2.CONSENT_SCOPE_THRESHOLD, "", ("threshold", "hainan"), id="other-scheme-target-filled"),
        pytest.param("hainan/bank-credit", node_pb2.CONSENT_SCOPE_THRESHOLD, "hainan", ("threshold", "hainan"), id="other-scheme-target-named"),
    ],
)  # fmt: skip
def test_request_terms(purpose: str, scope: int, target: str, expect: tuple[str, str]) -> None:
    """REQ: C3 H12 N16 — the disclosure of the consent and the scheme the grade is mapped
    into: the scenario's own scheme decides the tier; an empty target is filled with it."""
    _scenario, disclosure, mapped_into = request_terms(purpose, HEIHE, scope, target)
    assert (disclosure.value, mapped_into) == expect


@pytest.mark.parametrize(
    ("purpose", "scope", "target", "reason", "field"),
    [
        pytest.param("heihe/deposit-free-rental", node_pb2.CONSENT_SCOPE_GRADE, "", "DISCLOSURE_NOT_ALLOWED", "scope", id="grade-beyond-threshold-scenario"),
        pytest.param("heihe/credit-loans", node_pb2.CONSENT_SCOPE_THRESHOLD, "hainan", "TARGET_SCHEME_MISMATCH", "target_scheme", id="threshold-never-mapped-elsewhere"),
        pytest.param("hainan/bank-credit", node_pb2.CONSENT_SCOPE_THRESHOLD, "wendeng", "TARGET_SCHEME_MISMATCH", "target_scheme", id="other-scheme-other-target"),
        pytest.param("heihe/credit-loans", 7, "", "INVALID_FIELD", "scope", id="unknown-scope"),
    ],
)  # fmt: skip
def test_request_terms_refusals(
    purpose: str, scope: int, target: str, reason: str, field: str
) -> None:
    """REQ: H12 H14 — a disclosure beyond the scenario, or a mapping a threshold has no
    grade for, is refused naming the field."""
    assert _code(lambda: request_terms(purpose, HEIHE, scope, target)) == (reason, field)


def test_the_grade_compared_is_the_mapped_one_for_another_scheme() -> None:
    """REQ: C3 N16 — Heihe A maps to Hainan B: it does not meet a Hainan tier-A scenario."""
    fast_lane = scenario_for("hainan/fast-lane", HEIHE)
    mapped = MappedGrade("B", "hainan", "2025.1", "heihe-hainan-anchored", "1", b"\0" * 32, "x")
    assert grade_in_scenario(fast_lane, "heihe", "A", mapped) == "B"
    assert not fast_lane.meets(grade_in_scenario(fast_lane, "heihe", "A", mapped))
    assert grade_in_scenario(fast_lane, "heihe", "A", None) == ""  # no mapping: never met
    assert target_for(fast_lane, "heihe", "", Disclosure.THRESHOLD) == "hainan"


@pytest.mark.parametrize(
    ("disclosure", "grade", "score", "mapped_grade"),
    [
        pytest.param(Disclosure.THRESHOLD, "", None, "", id="threshold"),
        pytest.param(Disclosure.GRADE, "AA", None, "A", id="grade"),
        pytest.param(Disclosure.GRADE_AND_SCORE, "AA", 780, "A", id="grade-and-score"),
    ],
)
def test_disclosed_fields_follow_the_kind(
    disclosure: Disclosure, grade: str, score: int | None, mapped_grade: str
) -> None:
    """REQ: H12 — a threshold attestation carries neither grade nor score and names the
    mapping without its grade; the score only under grade_and_score."""
    s = scenario_for("heihe/credit-loans", HEIHE)
    mapped = MappedGrade("A", "hainan", "2025.1", "t", "1", b"\0" * 32, "anchored")
    out = disclosed(s, disclosure, grade="AA", score=780, mapped=mapped)
    assert (out["grade"], out["score"], out["mapped"].grade) == (grade, score, mapped_grade)
    assert (out["scenario"], out["disclosure"]) == ("heihe/credit-loans", disclosure.value)


def test_the_trusted_catalogue_is_every_shipped_scenario() -> None:
    """REQ: H14 N17 — what a hub vouches for in its bundle is exactly what a node accepts
    as a purpose, with tier, version and the most it may disclose."""
    entries = {t.scenario: t for t in trusted_scenarios()}
    for ref, t in entries.items():
        s = shipped_scenario(ref)
        assert (t.scheme_version, t.min_tier, t.disclosure) == (
            s.scheme_version,
            s.min_tier,
            s.allowed.value,
        )
    assert entries["heihe/credit-loans"].disclosure == "grade_and_score"
    assert entries["heihe/deposit-free-rental"].disclosure == "threshold"


# ------------------------------------------------------------------ ending a consent


async def _db(path: Path) -> Database:
    db = await Database.open(path)

    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )
        for cid in ("c1", "c2"):
            tx.execute(
                "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, "
                "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
                "granted_at) VALUES (?, ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, 5, 1, ?, "
                "x'00', x'00', ?)",
                (cid, SUBJECT, NOW - 10, NOW + 86_400, b"\x01" * 32, NOW - 10),
            )
        for idx, cid, status in ((1, "c1", 0), (2, "c1", STATUS_SUPERSEDED), (3, "c2", 0)):
            tx.execute(
                "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, "
                "status, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (idx, f"a{idx}", SUBJECT, cid, status, NOW - 5, NOW + 3600),
            )

    await db.write_unit(_unit)
    return db


async def test_a_consent_whose_subject_fell_below_ends_like_a_withdrawal(tmp_path: Path) -> None:
    """REQ: H14 H16 N14 — issue 15 §2: in one unit the consent is withdrawn (reason
    SCENARIO_NOT_MET, seen by the citizen only), its valid attestations revoked exactly as
    a withdrawal revokes them (a superseded one stays superseded, another consent's are
    untouched), the citizen notified and a consent_ended leaf appended; the requester's
    error is the withdrawn consent's own."""
    db = await _db(tmp_path / "n.db")
    log = TransparencyLog(db, "heihe", KeyPair.generate())
    scenario = scenario_for("heihe/credit-loans", HEIHE)

    def unit(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
        ended = end_unmet_consent(
            conn, consent_id="c1", subject_key=SUBJECT, scenario=scenario,
            audience="hainan", now=NOW,
        )  # fmt: skip
        return log.append_sync(conn, [ended])

    _first, leaves = await db.write_unit(unit, lambda r: log.mirror(*r), quick=True)
    assert len(leaves) == 1
    entry = node_pb2.LogEntry.FromString(leaves[0])
    assert (entry.kind, entry.consent_id, entry.requester) == ("consent_ended", "c1", "hainan")
    assert entry.reason.startswith("SCENARIO_NOT_MET: ")
    rows = await db.fetchall(
        "SELECT consent_id, withdrawn_at, withdrawn_reason FROM consents ORDER BY consent_id"
    )
    assert [tuple(r) for r in rows] == [("c1", NOW, "SCENARIO_NOT_MET"), ("c2", None, None)]
    statuses = await db.fetchall("SELECT idx, status FROM status_entries ORDER BY idx")
    assert [tuple(r) for r in statuses] == [(1, STATUS_REVOKED), (2, STATUS_SUPERSEDED), (3, 0)]
    (note,) = await db.fetchall("SELECT kind, message FROM notifications")
    assert note[0] == "consent" and "heihe/credit-loans" in note[1] and "hainan" in note[1]
    err = map_error(withdrawn_error())
    assert (err.reason, err.status.name) == ("CONSENT_WITHDRAWN", "FAILED_PRECONDITION")
    assert "SCENARIO" not in err.message
    await db.close()


# ------------------------------------------------------------------ incentive-tier view (issue 16)


def test_the_incentive_tier_view_never_recognises_a_grade_below_the_home_incentive_tier() -> None:
    """REQ: C3 H14 N20 — issue 16 §2 (docs/adr/0205): the view of an installed table is
    not recognised below the source's incentive tier and the installed grade elsewhere,
    whatever the installed table says below it (here an installed table mapping Heihe B
    to Hainan A: the full table would let B meet a tier-A scenario, the view does not);
    a recognised grade is the installed table's MappedGrade, citing its hash."""
    from dataclasses import replace
    from datetime import date

    from mapping import published_table
    from node.disclosure import incentive_tier_view, recognised_for_threshold
    from node.exchange._mapping import Mapper
    from scoring import load_scheme

    heihe = load_scheme("heihe")
    lax = published_table("heihe", "hainan")
    lax = replace(lax, grades=tuple((g, "A" if g == "B" else t) for g, t in lax.grades))
    view = incentive_tier_view(lax, heihe)
    assert view.incentive_tier
    assert [g for g, t in view.grades if t is None] == ["B", "C", "D"]
    assert all(view.recognise(g) == lax.recognise(g) for g in ("SSS", "SS", "S", "AAA", "AA", "A"))
    assert incentive_tier_view(view, heihe) is view
    mapper = Mapper(heihe, approved_set([lax], KeyPair.generate(), datetime.now(UTC)))
    today = date(2026, 11, 10)
    assert mapper.map("B", "hainan", today).grade == "A"  # what a grade disclosure would use
    assert recognised_for_threshold(mapper, heihe, "B", "hainan", today) is None
    got = recognised_for_threshold(mapper, heihe, "A", "hainan", today)
    assert got is not None and got.grade == "A"
    assert got.mapping_sha256.hex() == lax.content_hash.removeprefix("sha256:")


@pytest.mark.parametrize(
    ("scenario_scheme", "disclosure", "grade", "unrecognised"),
    [
        pytest.param("hainan", Disclosure.THRESHOLD, "B", True, id="threshold-other-below-tier"),
        pytest.param("hainan", Disclosure.THRESHOLD, "A", False, id="threshold-other-at-tier"),
        pytest.param("heihe", Disclosure.THRESHOLD, "B", False, id="threshold-own-scheme"),
        pytest.param("hainan", Disclosure.GRADE, "B", False, id="grade-disclosure-full-table"),
    ],
)
def test_the_request_path_reads_the_incentive_tier_view_like_the_grant(
    scenario_scheme: str, disclosure: Disclosure, grade: str, unrecognised: bool
) -> None:
    """Issue 16 (C3, H14, N20): a threshold request for another scheme's scenario treats a
    home grade below the incentive tier as not recognised, as the grant does; the node's own
    scenarios and grade disclosures are decided by the tier and the full table instead."""
    heihe = load_scheme("heihe")
    assert unrecognised_for_threshold(scenario_scheme, disclosure, heihe, grade) is unrecognised


# ------------------------------------------------------------------ the request path's mapping


def _tables() -> dict[str, object]:
    """Installed tables Heihe → Hainan: the approved one, its incentive-tier form (Heihe
    B, C, D carry no Hainan grade), one targeting another Hainan version, one expired."""
    from dataclasses import replace
    from datetime import date

    from mapping import published_table
    from node.disclosure import incentive_tier_view

    approved = published_table("heihe", "hainan")
    return {
        "approved": approved,
        "incentive-tier": incentive_tier_view(approved, HEIHE),
        "other-version": replace(approved, target=replace(approved.target, version="2099.1")),
        "expired": replace(approved, expires=date(2026, 1, 1)),
    }


FAST = "hainan/fast-lane"  # Hainan tier A, threshold only


@pytest.mark.parametrize(
    ("table", "disclosure", "grade", "expected"),
    [
        pytest.param("incentive-tier", Disclosure.THRESHOLD, "B", None, id="incentive-tier-below-is-unmet"),
        pytest.param("incentive-tier", Disclosure.GRADE, "B", None, id="incentive-tier-grade-disclosure-below-is-unmet"),
        pytest.param("incentive-tier", Disclosure.THRESHOLD, "A", "A", id="incentive-tier-at-tier-maps"),
        pytest.param("approved", Disclosure.THRESHOLD, "B", None, id="view-below-is-unmet"),
        pytest.param("approved", Disclosure.GRADE, "B", "C", id="grade-disclosure-full-table"),
        pytest.param("approved", Disclosure.THRESHOLD, "SS", "AAA", id="approved-maps"),
    ],
)  # fmt: skip
def test_a_grade_the_scenarios_table_does_not_recognise_is_unmet_never_a_mapping_error(
    table: str, disclosure: Disclosure, grade: str, expected: str | None
) -> None:
    """REQ: C3 H14 N14 N20 — issue 15/16 §2 (docs/adr/0203, 0205): at request time a Heihe
    grade that the table into the scenario's scheme does not recognise (an incentive-tier
    table, or the incentive-tier view for a threshold consent) maps to None, which meets no
    scenario (the requester then sees a withdrawal); it is never MAPPING_UNAVAILABLE
    "(NOT_RECOGNISED)", which would tell the relying party the person falls short."""
    from dataclasses import replace
    from datetime import date

    from mapping import MappingTable
    from node.disclosure import mapped_for_request
    from node.exchange._mapping import Mapper

    installed = _tables()[table]
    assert isinstance(installed, MappingTable)
    scenario = replace(shipped_scenario(FAST), allowed=Disclosure.GRADE_AND_SCORE)
    got = mapped_for_request(
        Mapper(HEIHE, approved_set([installed], KeyPair.generate(), datetime.now(UTC))), HEIHE, scenario, disclosure=disclosure, grade=grade,
        target="hainan", today=date(2026, 11, 10),
    )  # fmt: skip
    assert (None if got is None else got.grade) == expected
    if got is None:
        assert not scenario.meets(grade_in_scenario(scenario, "heihe", grade, got))
    else:
        assert got.mapping_sha256.hex() == installed.content_hash.removeprefix("sha256:")


@pytest.mark.parametrize(
    ("table", "status", "reason", "names"),
    [
        pytest.param("other-version", "FAILED_PRECONDITION", "SCHEME_VERSION_MISMATCH", ("hainan@2099.1", "hainan@2025.1"), id="table-at-another-target-version"),
        pytest.param("expired", "FAILED_PRECONDITION", "MAPPING_UNAVAILABLE", ("EXPIRED",), id="expired-table"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("grade", ["SS", "A", "B", "D"])
def test_a_table_that_cannot_serve_the_scenario_is_refused_whatever_the_grade(
    table: str, status: str, reason: str, names: tuple[str, ...], grade: str
) -> None:
    """REQ: C3 H13 N16 N20 — issue 15 §2: a table into the scenario's scheme that targets
    another version than the scenario's (the attestation could not be built: its mapped
    grade would not be of the threshold's version) is refused FAILED_PRECONDITION
    SCHEME_VERSION_MISMATCH naming both versions, and an expired table MAPPING_UNAVAILABLE,
    field target_scheme -- decided from the table alone, so the same answer for every grade,
    above or below the tier."""
    from datetime import date

    from mapping import MappingTable
    from node.disclosure import mapped_for_request
    from node.exchange._mapping import Mapper

    installed = _tables()[table]
    assert isinstance(installed, MappingTable)
    with pytest.raises(NodeError) as info:
        mapped_for_request(
            Mapper(HEIHE, approved_set([installed], KeyPair.generate(), datetime.now(UTC))), HEIHE, shipped_scenario(FAST),
            disclosure=Disclosure.THRESHOLD, grade=grade, target="hainan",
            today=date(2026, 11, 10),
        )  # fmt: skip
    err = map_error(info.value)
    assert (err.status.name, err.reason, info.value.field) == (status, reason, "target_scheme")
    assert all(n in err.message for n in names), err.message
    assert "NOT_RECOGNISED" not in err.message


def test_the_node_own_scenario_without_a_target_maps_nothing() -> None:
    """REQ: H13 N16 — issue 15 §2: a scenario of the node's own scheme with no target is
    decided by the native grade; no table is read."""
    from datetime import date

    from node.disclosure import mapped_for_request
    from node.exchange._mapping import Mapper

    got = mapped_for_request(
        Mapper(HEIHE), HEIHE, shipped_scenario("heihe/credit-loans"),
        disclosure=Disclosure.GRADE, grade="B", target="", today=date(2026, 11, 10),
    )  # fmt: skip
    assert got is None
