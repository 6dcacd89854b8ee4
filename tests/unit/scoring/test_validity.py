"""Validity ceilings, default validity, scheme expiry and the N6 categories.

REQ: H7, N6, N11, N12 (issue 15 §3; ADR 0003).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from scoring import (
    ContributionStatus,
    CreditRecord,
    Residence,
    Scheme,
    SchemeError,
    Subject,
    add_months,
    load_scheme,
    score,
    validate_record,
)

from .conftest import make_id

HEIHE = load_scheme("heihe")
HAINAN = load_scheme("hainan")
SUBJECT = Subject(date(1990, 1, 1), (Residence("hukou", date(1990, 1, 1)),))
ON = date(2024, 3, 15)


def rec(category: str, scheme: Scheme, on: date = ON, **kw: Any) -> CreditRecord:
    return CreditRecord(
        record_id=kw.pop("record_id", "r"),
        subject_id="x",
        source="dept",
        category=category,
        polarity=scheme.categories[category].polarity,
        act_id=kw.pop("act_id", "a"),
        recognised_on=on,
        **kw,
    )


@pytest.mark.parametrize(
    ("category", "level", "source_until", "as_of", "status", "until", "cut"),
    [
        pytest.param(
            "good_deed",
            None,
            date(2034, 3, 14),
            date(2027, 3, 14),
            "counted",
            date(2027, 3, 14),
            True,
            id="ten-years-cut-to-three-last-day-counts",
        ),
        pytest.param(
            "good_deed",
            None,
            date(2034, 3, 14),
            date(2027, 3, 15),
            "expired",
            date(2027, 3, 14),
            True,
            id="ten-years-cut-to-three-next-day-expired",
        ),
        pytest.param(
            "honour",
            "county",
            date(2029, 3, 14),
            date(2028, 1, 1),
            "expired",
            date(2027, 3, 14),
            True,
            id="county-honour-is-not-exempt",
        ),
        pytest.param(
            "honour",
            "national",
            date(2032, 3, 14),
            date(2031, 1, 1),
            "counted",
            date(2032, 3, 14),
            False,
            id="national-honour-exempt",
        ),
        pytest.param(
            "honour",
            "international",
            date(2032, 3, 14),
            date(2031, 1, 1),
            "counted",
            date(2032, 3, 14),
            False,
            id="international-honour-exempt",
        ),
        pytest.param(
            "admin_penalty",
            None,
            date(2029, 1, 1),
            date(2027, 6, 1),
            "expired",
            date(2027, 3, 14),
            True,
            id="negative-records-cut-too",
        ),
        pytest.param(
            "good_deed",
            None,
            date(2025, 3, 14),
            date(2025, 3, 14),
            "counted",
            date(2025, 3, 14),
            False,
            id="shorter-source-validity-untouched",
        ),
    ],
)
def test_heihe_validity_cap(
    category: str,
    level: str | None,
    source_until: date,
    as_of: date,
    status: str,
    until: date,
    cut: bool,
) -> None:
    """REQ: H7 — scoring validity is at most 3 years, except national and international honours;
    a source's longer valid_until is cut to the cap and the explanation says so."""
    severity = "ordinary" if category == "admin_penalty" else None
    r = score(
        SUBJECT,
        [rec(category, HEIHE, level=level, severity=severity, valid_until=source_until)],
        HEIHE,
        as_of,
    )
    [c] = r.contributions
    assert (c.status, c.valid_until, c.validity_capped) == (status, until, cut)
    if cut:
        assert f"validity {source_until} set by the source cut to {until}" in c.reason
        assert "(H7)" in c.reason
    else:
        assert "cut to" not in c.reason


def test_heihe_category_defaults_never_exceed_the_cap() -> None:
    """REQ: H7 — only the exempt honours default beyond 3 years."""
    cap = HEIHE.validity_cap
    assert cap is not None and cap.months == 36
    assert cap.exempt == {"honour": frozenset({"national", "international"})}
    for cid, cat in HEIHE.categories.items():
        assert cat.validity_months <= 36, cid
        assert all(b.validity_months <= 36 for b in cat.severities.values()), cid


def test_hainan_has_no_ceiling_the_source_decides() -> None:
    """REQ: N11 — Hainan's validity is set by the source: a 5-year valid_until stands."""
    assert HAINAN.validity_cap is None
    r = score(
        SUBJECT,
        [rec("volunteering", HAINAN, valid_until=date(2029, 3, 14))],
        HAINAN,
        date(2027, 12, 1),
    )
    [c] = r.contributions
    assert (c.status, c.valid_until, c.validity_capped) == ("counted", date(2029, 3, 14), False)


def test_hainan_every_default_is_three_years() -> None:
    """REQ: N11 — 未明确有效期限的一般为3年; 市场信用信息的有效期一般为3年 (第十三条)."""
    for cid, cat in HAINAN.categories.items():
        assert cat.validity_months == 36, cid
        assert {b.validity_months for b in cat.severities.values()} <= {36}, cid
        assert cat.extended_validity_months == {}, cid


@pytest.mark.parametrize(
    ("category", "kw"),
    [
        pytest.param("loan_repaid", {}, id="market-positive"),
        pytest.param("loan_default", {}, id="market-negative"),
        pytest.param("admin_penalty", {"severity": "minor"}, id="minor-penalty"),
        pytest.param("admin_penalty", {"severity": "ordinary"}, id="ordinary-penalty"),
    ],
)
def test_hainan_default_validity_edges(category: str, kw: dict[str, Any]) -> None:
    """REQ: N11 — without a source date a record counts for 3 years from recognition:
    on its last day, not the day after (market information and minor penalties included)."""
    last = add_months(ON, 36).replace(day=14)
    records = [rec(category, HAINAN, **kw)]
    on_last = score(SUBJECT, records, HAINAN, last)
    after = score(SUBJECT, records, HAINAN, date.fromordinal(last.toordinal() + 1))
    assert on_last.contributions[0].status is ContributionStatus.COUNTED
    assert on_last.contributions[0].valid_until == last
    assert after.contributions[0].status is ContributionStatus.EXPIRED


# -- scheme expiry (N12) ----------------------------------------------------------


def test_hainan_measures_run_three_years() -> None:
    """REQ: N12 — 本办法自印发之日起施行，有效期三年 (第二十七条); the start is illustrative."""
    assert HAINAN.valid_until == date.fromordinal(add_months(HAINAN.effective, 36).toordinal() - 1)
    assert {"effective", "valid_until"} <= set(HAINAN.illustrative)
    assert HEIHE.valid_until is None


def test_expired_scheme_refuses_to_score() -> None:
    """REQ: N12 — the last valid day scores; the day after raises SCHEME_EXPIRED, for everyone."""
    last = HAINAN.valid_until
    assert last is not None
    assert score(SUBJECT, [], HAINAN, last).score == HAINAN.base_score
    after = date.fromordinal(last.toordinal() + 1)
    minor = Subject(date(2015, 1, 1), (Residence("hukou", date(2015, 1, 1)),))
    for subject in (SUBJECT, minor):
        for explain in (True, False):
            with pytest.raises(SchemeError) as info:
                score(subject, [], HAINAN, after, explain=explain)
            assert (info.value.code, info.value.field) == ("SCHEME_EXPIRED", "as_of")
            assert "hainan@2025.1" in info.value.message


# -- N6 categories ---------------------------------------------------------------


def test_hainan_n6_missing_categories_present() -> None:
    """REQ: N6 — the joint-reward list and deregistering a business licence to evade a penalty
    (第九条(五)) are in Hainan's catalogue, the latter a dishonesty record."""
    reward = HAINAN.categories["joint_reward_list"]
    dereg = HAINAN.categories["deregistration_to_evade_penalty"]
    assert (reward.polarity, dereg.polarity) == ("positive", "negative")
    assert "deregistration_to_evade_penalty" in HAINAN.dishonesty_categories
    assert "joint_reward_list" not in HAINAN.capped_categories


def test_hainan_n6_categories_score_and_pass_intake() -> None:
    """REQ: N6 — both new categories are accepted at intake and counted by the engine."""
    today = date(2026, 11, 30)
    for cid in ("joint_reward_list", "deregistration_to_evade_penalty"):
        raw = {
            "record_id": f"r-{cid}",
            "subject_id": make_id("460105"),
            "source": "hainan-market-regulator",
            "category": cid,
            "act_id": f"a-{cid}",
            "recognised_on": "2026-06-01",
        }
        assert validate_record(raw, HAINAN, today).category == cid
    r = score(
        SUBJECT,
        [
            rec("joint_reward_list", HAINAN, date(2026, 6, 1), record_id="j", act_id="j"),
            rec(
                "deregistration_to_evade_penalty",
                HAINAN,
                date(2026, 6, 1),
                record_id="d",
                act_id="d",
            ),
        ],
        HAINAN,
        today,
    )
    reward = HAINAN.categories["joint_reward_list"].points
    dereg = HAINAN.categories["deregistration_to_evade_penalty"].points
    assert (r.added, r.deducted, r.clean_record) == (reward, dereg, False)
