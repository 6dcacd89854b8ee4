"""Positive-point caps per calendar period: routine conduct cannot outscore honours.

REQ: H6, H9, H10, N6, N13 (issue 15 §3; ADR 0003).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import (
    ContributionStatus,
    CreditRecord,
    Polarity,
    Residence,
    Scheme,
    ScoreResult,
    Subject,
    load_scheme,
    score,
)

AS_OF = date(2026, 11, 30)
HEIHE = load_scheme("heihe")
HAINAN = load_scheme("hainan")
SUBJECT = Subject(date(1990, 1, 1), (Residence("hukou", date(1990, 1, 1)),))


def rec(record_id: str, category: str, on: date, scheme: Scheme = HEIHE, **kw: Any) -> CreditRecord:
    return CreditRecord(
        record_id=record_id,
        subject_id="x",
        source=kw.pop("source", "dept"),
        category=category,
        polarity=scheme.categories[category].polarity,
        act_id=kw.pop("act_id", f"act-{record_id}"),
        recognised_on=on,
        **kw,
    )


def uncapped(scheme: Scheme) -> Scheme:
    """The same scheme without any positive-point cap (the baseline the caps are measured against)."""
    return replace(
        scheme,
        categories={cid: replace(c, cap=None) for cid, c in scheme.categories.items()},
        families={},
    )


def top_honour_points(scheme: Scheme) -> int:
    """What one honour of the scheme's highest level adds (Heihe: international, 80)."""
    return max(
        int(c.points * max(c.level_multipliers.values()))
        for c in scheme.categories.values()
        if c.polarity is Polarity.POSITIVE and c.level_multipliers
    )


def month_start(months_back: int) -> date:
    """The 1st of the month ``months_back`` months before AS_OF's month."""
    y, m = divmod(AS_OF.year * 12 + AS_OF.month - 1 - months_back, 12)
    return date(y, m + 1, 1)


def gaming_records() -> list[CreditRecord]:
    """60 utility bills (five a month) and 20 public-service records over the last 12 months."""
    out = [
        rec(f"u{i}", "utility_paid", month_start(i % 12) + timedelta(days=i // 12), source="power")
        for i in range(60)
    ]
    out += [
        rec(f"v{i}", "public_service", month_start(i % 12) + timedelta(days=i)) for i in range(20)
    ]
    return out


def test_gaming_case_stays_below_the_top_honour() -> None:
    """REQ: H6, H9 — issue 15: 60 utility + 20 volunteering records took 600 to SSS 980.

    With the caps the same records add 42 (utility: 6 for December 2025 and 6
    for 2026; public service: 10 for December 2025's one record and 20 for
    2026), less than one international honour (80), and the resident stays A.
    """
    records = gaming_records()
    before = score(SUBJECT, records, uncapped(HEIHE), AS_OF)
    assert (before.score, before.grade) == (980, "SSS")
    after = score(SUBJECT, records, HEIHE, AS_OF)
    gain = after.added
    assert gain == 12 + 30
    assert gain < top_honour_points(HEIHE) == 80
    assert (after.score, after.grade) == (642, "A")
    assert after.cut_by_caps == before.added - after.added == 380 - 42
    assert sum(c.points for c in after.contributions) == after.added
    honoured = score(SUBJECT, [rec("h", "honour", AS_OF, level="international")], HEIHE, AS_OF)
    assert honoured.score is not None and after.score < honoured.score


def test_routine_payments_at_their_worst_stay_below_a_provincial_honour() -> None:
    """REQ: H6 — tax, utility and loan records every month for years add at most 30 (3 x 10).

    Loans are valid 2 years, so three calendar years of the family cap can be
    live at once; a provincial honour is worth 40.
    """
    records = []
    for m in range(36):
        day = month_start(m)
        for cid in ("tax_paid", "utility_paid", "loan_repaid"):
            records.append(rec(f"{cid}-{m}", cid, day))
    r = score(SUBJECT, records, HEIHE, AS_OF)
    assert r.added <= 30 < 40 == int(HEIHE.categories["honour"].points * 2.0)


@pytest.mark.parametrize(
    ("records", "added", "points"),
    [
        pytest.param(
            [rec(f"u{i}", "utility_paid", date(2026, 3, 1 + i)) for i in range(3)],
            6,
            {"u0": 3, "u1": 3, "u2": 0},
            id="category-cap-keeps-the-earlier-of-equal-records",
        ),
        pytest.param(
            [
                rec("t", "tax_paid", date(2026, 2, 1)),
                rec("l", "loan_repaid", date(2026, 3, 1)),
                rec("u", "utility_paid", date(2026, 1, 1)),
            ],
            10,
            {"l": 10, "t": 0, "u": 0},
            id="family-cap-keeps-the-largest-first",
        ),
        pytest.param(
            [
                rec("g", "good_deed", date(2026, 6, 1)),
                rec("p", "public_service", date(2026, 1, 1)),
            ],
            20,
            {"g": 15, "p": 5},
            id="family-cap-cuts-part-of-a-record",
        ),
        pytest.param(
            [
                rec("a", "utility_paid", date(2025, 12, 31)),
                rec("b", "utility_paid", date(2025, 12, 30)),
                rec("c", "utility_paid", date(2026, 1, 1)),
                rec("d", "utility_paid", date(2026, 1, 2)),
            ],
            12,
            {"a": 3, "b": 3, "c": 3, "d": 3},
            id="calendar-years-are-separate-periods",
        ),
        pytest.param(
            [rec(f"b{i}", "bravery", date(2026, 5, 1 + i)) for i in range(3)],
            120,
            {"b0": 40, "b1": 40, "b2": 40},
            id="bravery-is-not-capped",
        ),
        pytest.param(
            [rec(f"h{i}", "honour", date(2026, 5, 1 + i), level="county") for i in range(5)],
            100,
            {f"h{i}": 20 for i in range(5)},
            id="honours-are-not-capped",
        ),
        pytest.param(
            [
                rec("p1", "public_service", date(2026, 4, 1), act_id="same"),
                rec("p2", "public_service", date(2026, 4, 2), act_id="same"),
                rec("p3", "public_service", date(2026, 4, 3)),
            ],
            20,
            {"p1": 10, "p2": 0, "p3": 10},
            id="a-superseded-duplicate-uses-no-cap-room",
        ),
    ],
)
def test_caps_table(records: list[CreditRecord], added: int, points: dict[str, int]) -> None:
    """REQ: H6, H10, N13 — category caps, then family caps, per calendar year; every point explained."""
    r = score(SUBJECT, records, HEIHE, AS_OF)
    assert r.added == added
    assert {c.record_id: c.points for c in r.contributions} == points
    assert sum(c.cap_cut for c in r.contributions) == r.cut_by_caps


def test_negatives_are_never_capped() -> None:
    """REQ: H10 — caps limit additions only; every deduction counts in full."""
    records = [rec(f"d{i}", "other_dishonesty", date(2026, 2, 1 + i)) for i in range(5)]
    r = score(SUBJECT, records, HEIHE, AS_OF)
    assert (r.deducted, r.cut_by_caps, r.caps_applied) == (100, 0, ())


def test_explanation_names_the_cap_the_period_and_the_cut() -> None:
    """REQ: N13 — a cut record says which cap, which period, how many points were cut."""
    r = score(
        SUBJECT,
        [
            rec("g", "good_deed", date(2026, 6, 1)),
            rec("p", "public_service", date(2026, 1, 1)),
            rec("q", "public_service", date(2026, 2, 1)),
        ],
        HEIHE,
        AS_OF,
    )
    by_id = {c.record_id: c for c in r.contributions}
    assert by_id["g"].status is ContributionStatus.COUNTED and by_id["g"].cap_cut == 0
    partial, gone = by_id["p"], by_id["q"]
    assert (partial.status, partial.points, partial.cap_cut) == ("counted", 5, 5)
    assert partial.caps == ("family:social_contribution",)
    assert "family:social_contribution" in partial.reason
    assert "2026-01-01/2026-12-31" in partial.reason and "cut 5" in partial.reason
    assert (gone.status, gone.points, gone.nominal_points) == (ContributionStatus.CAPPED, 0, 10)
    assert gone.reason.startswith("capped: 0 of 10 points count")
    [app] = r.caps_applied
    assert (app.cap, app.limit, app.period, app.requested, app.cut) == (
        "family:social_contribution",
        20,
        "2026-01-01/2026-12-31",
        35,
        15,
    )
    assert r.cut_by_caps == 15


def test_category_cap_before_family_cap_both_named() -> None:
    """REQ: N13 — a record cut by its category cap and then its family cap names both."""
    utility = HEIHE.categories["utility_paid"]
    assert utility.cap is not None
    scheme = replace(
        HEIHE,
        categories={
            **HEIHE.categories,
            "utility_paid": replace(utility, cap=replace(utility.cap, points=5)),
        },
    )
    records = [rec(f"u{i}", "utility_paid", date(2026, 1, 1 + i)) for i in range(3)]
    records += [rec("l", "loan_repaid", date(2026, 3, 1))]
    r = score(SUBJECT, records, scheme, AS_OF)
    assert r.added == 10
    assert [a.cap for a in r.caps_applied] == ["category:utility_paid", "family:other_credit_info"]
    by_id = {c.record_id: c for c in r.contributions}
    assert (by_id["u1"].cap_cut, by_id["u1"].caps) == (
        3,
        ("category:utility_paid", "family:other_credit_info"),
    )
    assert "category:utility_paid" in by_id["u1"].reason
    assert "family:other_credit_info" in by_id["u1"].reason
    assert (by_id["u2"].caps, by_id["l"].caps) == (("category:utility_paid",), ())


def test_explain_false_applies_the_same_caps() -> None:
    records = gaming_records()
    full = score(SUBJECT, records, HEIHE, AS_OF)
    fast = score(SUBJECT, records, HEIHE, AS_OF, explain=False)
    assert (fast.score, fast.added, fast.cut_by_caps) == (full.score, full.added, full.cut_by_caps)
    assert fast.contributions == () and fast.caps_applied == ()


def test_hainan_social_contribution_family() -> None:
    """REQ: N6 — volunteering, charity, donation and civic practice share one yearly cap."""
    records = [rec(f"v{i}", "volunteering", date(2026, 1, 1 + i), HAINAN) for i in range(10)] + [
        rec(f"c{i}", "charity", date(2026, 2, 1 + i), HAINAN) for i in range(10)
    ]
    r = score(SUBJECT, records, HAINAN, AS_OF)
    assert r.added == 20
    rescue = [rec(f"e{i}", "emergency_rescue", date(2026, 3, 1 + i), HAINAN) for i in range(3)]
    assert score(SUBJECT, records + rescue, HAINAN, AS_OF).added == 20 + 90


# -- properties -----------------------------------------------------------------


def _capped_categories(scheme: Scheme) -> list[str]:
    return sorted(scheme.capped_categories)


@st.composite
def capped_records(draw: st.DrawFn, scheme: Scheme) -> list[CreditRecord]:
    cats = _capped_categories(scheme)
    extra = sorted(c for c, cat in scheme.categories.items() if cat.polarity is Polarity.POSITIVE)
    out = []
    for i in range(draw(st.integers(0, 40))):
        cid = draw(st.sampled_from(cats if draw(st.integers(0, 9)) else extra))
        cat = scheme.categories[cid]
        level = (
            draw(st.sampled_from(sorted(cat.level_multipliers))) if cat.level_multipliers else None
        )
        out.append(
            rec(
                f"r{i}",
                cid,
                draw(st.dates(date(2024, 1, 1), AS_OF)),
                scheme,
                act_id=f"act{draw(st.integers(0, 30))}",
                level=level,
            )
        )
    return out


def _check_caps_hold(scheme: Scheme, r: ScoreResult) -> None:
    caps = [(c.cap, {cid}) for cid, c in scheme.categories.items() if c.cap is not None]
    caps += [(f.cap, set(f.categories)) for f in scheme.families.values()]
    for cap, members in caps:
        assert cap is not None
        per_period: dict[int, int] = {}
        for c in r.contributions:
            if c.category in members:
                idx = cap.period_index(c.recognised_on)
                per_period[idx] = per_period.get(idx, 0) + c.points
        assert all(total <= cap.points for total in per_period.values()), (cap.id, per_period)


@pytest.mark.parametrize("scheme", [HEIHE, HAINAN], ids=["heihe", "hainan"])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_no_combination_exceeds_a_cap_within_its_period(
    scheme: Scheme, data: st.DataObject
) -> None:
    """REQ: H6, N6, N13 — whatever the records, a cap's categories add at most the cap per period.

    Also: caps only ever remove points (the uncapped score minus the cut is the
    capped score), the order of records does not matter, and one more positive
    record never lowers the score.
    """
    records = data.draw(capped_records(scheme))
    r = score(SUBJECT, records, scheme, AS_OF)
    _check_caps_hold(scheme, r)
    free = score(SUBJECT, records, uncapped(scheme), AS_OF)
    assert free.added - r.added == r.cut_by_caps >= 0
    assert sum(c.points for c in r.contributions) == r.added - r.deducted
    shuffled = list(records)
    random.Random(data.draw(st.integers(0, 2**32))).shuffle(shuffled)
    again = score(SUBJECT, shuffled, scheme, AS_OF)
    assert (again.score, again.added, again.cut_by_caps) == (r.score, r.added, r.cut_by_caps)
    more = data.draw(capped_records(scheme))
    extra = [replace(x, record_id=f"m{x.record_id}", act_id=f"m{x.act_id}") for x in more[:1]]
    if extra:
        bigger = score(SUBJECT, [*records, *extra], scheme, AS_OF)
        assert bigger.added >= r.added
