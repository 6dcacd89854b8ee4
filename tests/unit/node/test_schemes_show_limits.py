"""``huxin schemes show`` prints what limits a score: expiry, validity ceiling, caps.

REQ: H7 (issue 15 §3) — the validity ceiling (Heihe: 3 years from recognition, national
and international honours excepted) is shown; N11, N12 — the scheme's own expiry
(Hainan's measures are valid for three years) is shown; ADR 0003 — the caps on positive
points per category and per family and period are shown; every value the scheme lists
as illustrative (ours, not published) is marked "(illustrative)".
"""

from __future__ import annotations

import json

import pytest

from node.cli._main import main


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["schemes", "show", *args]) == 0
    return capsys.readouterr().out


def test_heihe_text_shows_ceiling_no_expiry_and_illustrative_caps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REQ: H7 — Heihe's 3-year ceiling (published, unmarked) with its exempt honours; no
    expiry; each cap with points and period, marked illustrative (the plan has no points)."""
    out = _show(capsys, "heihe")
    lines = out.splitlines()
    ceiling = next(x for x in lines if x.startswith("validity ceiling"))
    assert "at most 3 years from recognition" in ceiling
    assert "honour at international, national" in ceiling
    assert "(illustrative)" not in ceiling
    assert "scheme expiry: none" in out
    utility = next(x for x in lines if x.strip().startswith("category utility_paid"))
    assert "6 points per 12 months" in utility and utility.endswith("(illustrative)")
    family = next(x for x in lines if x.strip().startswith("family   other_credit_info"))
    assert "10 points per 12 months" in family
    assert "loan_repaid, tax_paid, utility_paid" in family
    assert family.endswith("(illustrative)")


def test_hainan_text_shows_its_expiry_as_illustrative(capsys: pytest.CaptureFixture[str]) -> None:
    """REQ: N12 — Hainan's measures end after three years: the last day is shown, marked
    illustrative (the term is published, its start date is ours)."""
    out = _show(capsys, "hainan")
    expiry = next(x for x in out.splitlines() if x.startswith("scheme expiry"))
    assert "valid until 2027-12-31" in expiry and "SCHEME_EXPIRED" in expiry
    assert expiry.endswith("(illustrative)")
    family = next(x for x in out.splitlines() if "family   social_contribution" in x)
    assert "20 points per 12 months" in family


def test_json_carries_the_limits_with_illustrative_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REQ: H7, N12 — the same facts for machines, each with its illustrative flag."""
    heihe = json.loads(_show(capsys, "heihe", "--json"))
    assert heihe["valid_until"] is None
    assert heihe["validity_cap"] == {
        "months": 36,
        "exempt": {"honour": ["international", "national"]},
        "illustrative": False,
    }
    assert heihe["category_caps"]["utility_paid"] == {
        "points": 6, "period_months": 12, "illustrative": True,
    }  # fmt: skip
    fam = heihe["family_caps"]["other_credit_info"]
    assert (fam["points"], fam["period_months"], fam["illustrative"]) == (10, 12, True)
    assert fam["categories"] == ["loan_repaid", "tax_paid", "utility_paid"]
    assert heihe["categories"]["responsible_individual"]["legal_document_kinds"] == [
        "dishonesty_determination", "enforcement_decision", "judgment", "penalty_decision",
        "ruling",
    ]  # fmt: skip
    hainan = json.loads(_show(capsys, "hainan", "--json"))
    assert (hainan["valid_until"], hainan["valid_until_illustrative"]) == ("2027-12-31", True)
