"""The approval record of a mapping table (批准或备案): built only from a fair table.

Issue 16 (H13: a table is used only once approved or filed with the authority, and the
record carries the incentive reach; C3: fail closed — a table failing an invariant or the
reach floor never gets a record).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from fractions import Fraction

import pytest

from keys import open_approval, sign_approval
from mapping import (
    InvariantError,
    ReachError,
    TableError,
    agreement_table,
    approval_for,
    day_start,
    incentive_reach,
    published_table,
)
from scoring import Scheme

from .conftest import region_key

T = 1_796_000_000
STINGY = ("AAA", "AAA", "AA", "AA", "A", "B", "C", "D", "D")  # Heihe A → Hainan B


def test_record_of_the_shipped_table(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13: identity, hash, both scheme versions, dates and reach are copied."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = published_table("heihe", "hainan")
    a = approval_for(table, heihe, hainan, authority="hub", decision="approved", issued_at=T)
    assert a.mapping_sha256.hex() == table.content_hash.removeprefix("sha256:")
    assert (a.mapping_id, a.mapping_version, a.method) == (table.id, table.version, "anchored")
    assert (a.source_scheme_id, a.source_scheme_version, a.source_region) == (
        "heihe",
        heihe.version,
        "heihe",
    )
    assert (a.target_scheme_id, a.target_scheme_version) == ("hainan", hainan.version)
    assert a.effective_from == day_start(table.effective_from)
    assert a.expires == 0
    assert (a.decision, a.authority, a.issued_at) == ("approved", "hub", T)
    reach = incentive_reach(table, heihe, hainan)
    assert a.reach_ppm == reach.reach_ppm == 1_000_000
    assert a.reach_kept == a.reach_eligible == 887_500


def test_record_signs_and_opens(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13, C3: what approval_for builds is well formed for the keys room."""
    from keys import KeyPair

    hub = KeyPair(b"hub".ljust(32, b"\0"))
    table = published_table("hainan", "heihe")
    a = approval_for(
        table, schemes["hainan"], schemes["heihe"], authority="hub", decision="filed", issued_at=T
    )
    assert open_approval(sign_approval(a, hub), {"hub": hub.public_key}) == a


def test_reach_figure_is_carried_exactly_for_a_stingy_table(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13, H14: without a floor the (low) figure is recorded exactly, rounded down."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = agreement_table(
        heihe, hainan, dict(zip(heihe.grades, STINGY, strict=True)), effective_from=date(2026, 1, 1)
    )
    a = approval_for(table, heihe, hainan, authority="hub", decision="filed", issued_at=T)
    assert Fraction(a.reach_kept, a.reach_eligible) == Fraction(11, 355)
    assert a.reach_ppm == 30_985


def test_floor_refuses_with_the_figure(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13, H14: below --min-reach no record is made; the error names the figure."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = agreement_table(
        heihe, hainan, dict(zip(heihe.grades, STINGY, strict=True)), effective_from=date(2026, 1, 1)
    )
    with pytest.raises(ReachError) as err:
        approval_for(
            table, heihe, hainan, authority="hub", decision="approved", issued_at=T, min_reach="0.5"
        )
    assert err.value.code == "INCENTIVE_REACH_TOO_LOW"
    assert "3.09%" in err.value.message


def test_table_failing_an_invariant_is_refused(schemes: dict[str, Scheme]) -> None:
    """Issue 16, C3: a table that breaks an invariant (here: not monotone) gets no record."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = published_table("heihe", "hainan")
    grades = list(table.grades)
    grades[0], grades[-1] = (grades[0][0], grades[-1][1]), (grades[-1][0], grades[0][1])
    with pytest.raises(InvariantError):
        approval_for(
            replace(table, grades=tuple(grades)),
            heihe,
            hainan,
            authority="hub",
            decision="approved",
            issued_at=T,
        )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        pytest.param({"decision": "recommended"}, "BAD_DECISION", id="decision-unknown"),
        pytest.param({"decision": "批准"}, "BAD_DECISION", id="decision-in-chinese"),
        pytest.param({"swap": True}, "SCHEME_MISMATCH", id="schemes-swapped"),
        pytest.param(
            {"effective_from": date(2024, 12, 31)}, "BAD_EFFECTIVE_FROM", id="before-table"
        ),
    ],
)
def test_bad_requests_are_refused(
    schemes: dict[str, Scheme], kwargs: dict[str, object], code: str
) -> None:
    """Issue 16, C3: an unknown decision, the wrong schemes or a start before the table's."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = published_table("heihe", "hainan")
    args: dict[str, object] = {"authority": "hub", "decision": "approved", "issued_at": T}
    swap = bool(kwargs.pop("swap", False))
    args.update(kwargs)
    source, target = (hainan, heihe) if swap else (heihe, hainan)
    with pytest.raises(TableError) as err:
        approval_for(table, source, target, **args)  # type: ignore[arg-type]
    assert err.value.code == code


def test_later_effective_date_and_table_expiry(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13: an approval may start after the table; it ends when the table does,
    and a start on or after the table's expiry is refused."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = replace(published_table("heihe", "hainan"), expires=date(2027, 1, 1))
    a = approval_for(
        table,
        heihe,
        hainan,
        authority="national",
        decision="approved",
        issued_at=T,
        effective_from=date(2026, 12, 1),
    )
    assert a.effective_from == day_start(date(2026, 12, 1))
    assert a.expires == day_start(date(2027, 1, 1))
    with pytest.raises(TableError) as err:
        approval_for(
            table,
            heihe,
            hainan,
            authority="hub",
            decision="approved",
            issued_at=T,
            effective_from=date(2027, 1, 1),
        )
    assert err.value.code == "BAD_EFFECTIVE_FROM"


def test_signed_table_signature_does_not_change_the_record(schemes: dict[str, Scheme]) -> None:
    """Issue 16, H13: the record cites the content hash, which signatures do not change."""
    heihe, hainan = schemes["heihe"], schemes["hainan"]
    table = published_table("heihe", "hainan")
    signed = table.signed(region_key("heihe"))
    kw: dict[str, object] = {"authority": "hub", "decision": "approved", "issued_at": T}
    assert approval_for(signed, heihe, hainan, **kw) == approval_for(table, heihe, hainan, **kw)  # type: ignore[arg-type]
