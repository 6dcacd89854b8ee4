"""The engine: base, dedup, validity, exclusions, clamping, eligibility, explanations.

REQ: H6, H7, H8, H10, H15, H16, N1, N6, N11, N13.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import (
    ContributionStatus,
    CreditRecord,
    Polarity,
    RecordStatus,
    Residence,
    Scheme,
    Subject,
    load_scheme,
    score,
)

AS_OF = date(2026, 11, 30)
HEIHE = load_scheme("heihe")


def rec(record_id: str, category: str, act: str, on: date, **kw: Any) -> CreditRecord:
    cat = HEIHE.categories.get(category) or load_scheme("hainan").categories[category]
    return CreditRecord(
        record_id=record_id,
        subject_id="x",
        source=kw.pop("source", "dept"),
        category=category,
        polarity=cat.polarity,
        act_id=act,
        recognised_on=on,
        **kw,
    )


def statuses(result: Any) -> dict[str, ContributionStatus]:
    return {c.record_id: c.status for c in result.contributions}


def test_clean_record_scores_base_grade_a(resident: Subject) -> None:
    """REQ: H8 — no records: base 600, grade A, clean record."""
    r = score(resident, [], HEIHE, AS_OF)
    assert (r.score, r.grade, r.clean_record, r.contributions) == (600, "A", True, ())


def test_same_good_act_counts_once_at_highest(resident: Subject) -> None:
    """REQ: H10 — a good act recognised by two departments counts once, highest addition."""
    r = score(
        resident,
        [
            rec("city", "honour", "act1", date(2025, 3, 1), level="city"),
            rec("nation", "honour", "act1", date(2025, 3, 2), level="national"),
            rec("other", "good_deed", "act2", date(2025, 3, 2)),
        ],
        HEIHE,
        AS_OF,
    )
    assert r.score == 600 + 60 + 15
    assert statuses(r) == {"city": "superseded", "nation": "counted", "other": "counted"}
    superseded = next(c for c in r.contributions if c.record_id == "city")
    assert superseded.points == 0 and superseded.nominal_points == 30
    assert "nation" in superseded.reason


def test_same_bad_act_counts_once_at_highest_deduction(resident: Subject) -> None:
    """REQ: H10 — a bad act recognised twice is deducted once, at its highest deduction."""
    r = score(
        resident,
        [
            rec("p1", "admin_penalty", "act9", date(2026, 1, 1), severity="minor"),
            rec("p2", "admin_penalty", "act9", date(2026, 1, 2), severity="serious"),
        ],
        HEIHE,
        AS_OF,
    )
    assert r.score == 600 - 80
    assert r.grade == "B" and not r.clean_record
    assert statuses(r) == {"p1": "superseded", "p2": "counted"}


def test_positive_and_negative_on_same_act_id_are_separate(resident: Subject) -> None:
    r = score(
        resident,
        [
            rec("g", "good_deed", "same", date(2026, 1, 1)),
            rec("b", "other_dishonesty", "same", date(2026, 1, 1)),
        ],
        HEIHE,
        AS_OF,
    )
    assert r.score == 600 + 15 - 20


def test_validity_window_edges(resident: Subject) -> None:
    """REQ: H7, N11 — validity counts from recognition; last valid day counts, the next does not."""
    on = date(2023, 11, 30)  # good_deed: 3 years → last valid day 2026-11-29
    r_last = score(resident, [rec("g", "good_deed", "a", on)], HEIHE, date(2026, 11, 29))
    r_after = score(resident, [rec("g", "good_deed", "a", on)], HEIHE, date(2026, 11, 30))
    assert r_last.score == 615 and r_after.score == 600
    assert r_after.contributions[0].status is ContributionStatus.EXPIRED
    assert r_after.contributions[0].valid_until == date(2026, 11, 29)


def test_national_honour_validity_extended(resident: Subject) -> None:
    """REQ: H7 — national honours may have a longer validity (5 years here)."""
    on = date(2022, 6, 1)
    r = score(
        resident,
        [
            rec("n", "honour", "a", on, level="national"),
            rec("c", "honour", "b", on, level="county"),
        ],
        HEIHE,
        AS_OF,
    )
    assert statuses(r) == {"n": "counted", "c": "expired"}


def test_explicit_validity_from_source_wins(resident: Subject) -> None:
    """REQ: N11 — validity set by the source."""
    r = score(
        resident,
        [rec("g", "good_deed", "a", date(2026, 1, 1), valid_until=date(2026, 6, 30))],
        HEIHE,
        AS_OF,
    )
    assert r.contributions[0].status is ContributionStatus.EXPIRED


def test_severity_band_sets_validity(resident: Subject) -> None:
    """REQ: H7 — negative information validity by severity: minor penalties last 1 year."""
    r = score(
        resident,
        [rec("m", "admin_penalty", "a", date(2025, 11, 1), severity="minor")],
        HEIHE,
        AS_OF,
    )
    assert r.contributions[0].status is ContributionStatus.EXPIRED


def test_record_recognised_after_as_of_not_counted(resident: Subject) -> None:
    r = score(resident, [rec("f", "good_deed", "a", date(2026, 12, 5))], HEIHE, AS_OF)
    assert r.contributions[0].status is ContributionStatus.NOT_YET_VALID and r.score == 600


def test_masked_repaired_revoked_excluded(resident: Subject) -> None:
    """REQ: H15 (masked), H16/N22 (repaired) — they stop counting and say why."""
    on = date(2026, 5, 1)
    r = score(
        resident,
        [
            rec("m", "joint_punishment_list", "a", on, status=RecordStatus.MASKED),
            rec("r", "refuse_judgment", "b", on, status=RecordStatus.REPAIRED),
            rec("v", "government_dishonesty", "c", on, status=RecordStatus.REVOKED),
        ],
        HEIHE,
        AS_OF,
    )
    assert r.score == 600 and r.clean_record
    assert statuses(r) == {"m": "masked", "r": "repaired", "v": "revoked"}
    assert all(c.points == 0 for c in r.contributions)


# name, the stored legal_document: none of them is a reference the category accepts
UNUSABLE_REFERENCES = [
    ("none", None),
    ("free-text-x", "x"),
    ("number-without-kind", "黑市监罚〔2026〕12号"),
    ("kind-not-in-catalogue", "letter 黑市监罚〔2026〕12号"),
    ("number-malformed", "penalty_decision 12"),
]


@pytest.mark.parametrize(
    ("name", "stored"), UNUSABLE_REFERENCES, ids=[c[0] for c in UNUSABLE_REFERENCES]
)
def test_responsible_individual_without_a_valid_reference_is_excluded(
    resident: Subject, name: str, stored: str | None
) -> None:
    """REQ: H10 (issue 15 §3) — a stored responsible-individual deduction counts only with a
    structured legal-document reference; free text such as "x" is excluded by rule."""
    on = date(2026, 5, 1)
    r = score(resident, [rec("x", "responsible_individual", "a", on, legal_document=stored)],
              HEIHE, AS_OF)  # fmt: skip
    assert r.score == 600
    assert r.contributions[0].status is ContributionStatus.EXCLUDED_BY_RULE
    assert "legal-document reference (H10)" in r.contributions[0].reason


def test_responsible_individual_with_a_reference_is_deducted_and_explained(
    resident: Subject,
) -> None:
    """REQ: H10, N13 (issue 15 §3) — the deduction counts and its explanation says it is for
    the responsible individual and names the document kind and number."""
    on = date(2026, 5, 1)
    stored = "penalty_decision 黑市监罚〔2026〕12号"
    r = score(resident, [rec("x", "responsible_individual", "a", on, legal_document=stored)],
              HEIHE, AS_OF)  # fmt: skip
    assert r.score == 500
    (c,) = r.contributions
    assert (c.status, c.points) == (ContributionStatus.COUNTED, -100)
    assert "individual directly responsible" in c.reason
    assert "行政处罚决定书 黑市监罚〔2026〕12号 (H10)" in c.reason


def test_hainan_excludes_simple_procedure_and_corrected_minor(resident: Subject) -> None:
    """REQ: N6 — simple-procedure penalties and promptly corrected minor violations do not count."""
    hainan = load_scheme("hainan")
    on = date(2026, 5, 1)
    r = score(
        resident,
        [
            rec(
                "s",
                "admin_penalty",
                "a",
                on,
                severity="ordinary",
                flags=frozenset({"simple_procedure"}),
            ),
            rec(
                "m",
                "admin_penalty",
                "b",
                on,
                severity="minor",
                flags=frozenset({"minor_corrected_promptly"}),
            ),
            rec("o", "admin_penalty", "c", on, severity="ordinary"),
        ],
        hainan,
        AS_OF,
    )
    assert r.score == 500 - 30
    assert statuses(r) == {"s": "excluded_by_rule", "m": "excluded_by_rule", "o": "counted"}


def test_score_clamped_to_range(resident: Subject) -> None:
    on = date(2026, 5, 1)
    many = [rec(f"j{i}", "joint_punishment_list", f"a{i}", on) for i in range(5)]
    r = score(resident, many, HEIHE, AS_OF)
    assert r.unclamped == 600 - 1000 and r.score == 0 and r.grade == "D"
    lots = [rec(f"h{i}", "honour", f"h{i}", on, level="international") for i in range(6)]
    r2 = score(resident, lots, HEIHE, AS_OF)
    assert r2.score == 1000 and r2.grade == "SSS"


def test_wendeng_direct_grade_caps() -> None:
    """Wendeng: some acts force grade C directly, whatever the points."""
    wendeng = load_scheme("wendeng")
    subject = Subject(date(1980, 1, 1), (Residence("hukou", date(1980, 1, 1)),))
    r = score(
        subject,
        [CreditRecord("c", "x", "d", "direct_c", Polarity.NEGATIVE, "a", date(2026, 1, 1))],
        wendeng,
        AS_OF,
    )
    assert (r.score, r.grade, r.capped_by) == (849, "C", "c")


def test_eligibility_18th_birthday_edges() -> None:
    """REQ: H1, N1 — not eligible the day before the 18th birthday, eligible on it."""
    born = date(2008, 11, 30)
    subject = Subject(born, (Residence("hukou", born),))
    before = score(subject, [], HEIHE, date(2026, 11, 29))
    on_day = score(subject, [], HEIHE, date(2026, 11, 30))
    assert (before.eligible, before.score, before.grade) == (False, None, None)
    assert before.ineligible_reason == "under 18 on 2026-11-29"
    assert (on_day.eligible, on_day.score) == (True, 600)


def test_leap_day_birthday_turns_18_on_1_march() -> None:
    subject = Subject(date(2008, 2, 29), (Residence("hukou", date(2008, 2, 29)),))
    assert not score(subject, [], HEIHE, date(2026, 2, 28)).eligible
    assert score(subject, [], HEIHE, date(2026, 3, 1)).eligible


def test_hainan_residence_one_year_rule() -> None:
    """REQ: N1 — a residence permit counts after one year; hukou at once."""
    hainan = load_scheme("hainan")
    permit = Subject(date(1990, 1, 1), (Residence("residence_permit", date(2025, 12, 1)),))
    assert not score(permit, [], hainan, date(2026, 11, 30)).eligible
    assert score(permit, [], hainan, date(2026, 12, 1)).eligible
    tourist = Subject(date(1990, 1, 1), (Residence("tourist", date(2000, 1, 1)),))
    r = score(tourist, [], hainan, AS_OF)
    assert not r.eligible and "no qualifying residence" in (r.ineligible_reason or "")
    incapable = Subject(
        date(1990, 1, 1), (Residence("hukou", date(1990, 1, 1)),), full_civil_capacity=False
    )
    assert score(incapable, [], hainan, AS_OF).ineligible_reason == "lacks full civil capacity"


def test_explain_false_gives_same_score(resident: Subject) -> None:
    records = [
        rec("a", "honour", "x", date(2025, 1, 1), level="city"),
        rec("b", "admin_penalty", "y", date(2026, 2, 1), severity="ordinary"),
    ]
    full = score(resident, records, HEIHE, AS_OF)
    fast = score(resident, records, HEIHE, AS_OF, explain=False)
    assert fast.contributions == () and (fast.score, fast.grade) == (full.score, full.grade)


_CATS = sorted(HEIHE.categories)


@st.composite
def records(draw: st.DrawFn) -> list[CreditRecord]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        cid = draw(st.sampled_from(_CATS))
        cat = HEIHE.categories[cid]
        level = (
            draw(st.sampled_from(sorted(cat.level_multipliers))) if cat.level_multipliers else None
        )
        sev = draw(st.sampled_from([None, *sorted(cat.severities)]))
        out.append(
            CreditRecord(
                record_id=f"r{i}",
                subject_id="x",
                source="d",
                category=cid,
                polarity=cat.polarity,
                act_id=f"act{draw(st.integers(0, 4))}",
                recognised_on=draw(st.dates(date(2021, 1, 1), date(2026, 12, 31))),
                level=level,
                severity=sev,
                legal_document=draw(
                    st.sampled_from([None, "doc", "judgment （2026）黑1102民初123号"])
                ),
                status=draw(st.sampled_from(list(RecordStatus))),
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(records(), st.randoms())
def test_properties(records: list[CreditRecord], rnd: Any) -> None:
    """Score in range; points explained exactly; order of records does not matter (N13)."""
    subject = Subject(date(1990, 1, 1), (Residence("hukou", date(1990, 1, 1)),))
    r = score(subject, records, HEIHE, AS_OF)
    assert r.score is not None and HEIHE.score_min <= r.score <= HEIHE.score_max
    assert sum(c.points for c in r.contributions) == r.added - r.deducted
    assert r.unclamped == HEIHE.base_score + r.added - r.deducted
    assert len(r.contributions) == len(records)
    assert all(c.points == 0 for c in r.contributions if c.status != "counted")
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert score(subject, shuffled, HEIHE, AS_OF).score == r.score
    if records:  # revoking a record is the same as never having it
        revoked = replace(records[0], status=RecordStatus.REVOKED)
        dropped = score(subject, records[1:], HEIHE, AS_OF).score
        assert score(subject, [revoked, *records[1:]], HEIHE, AS_OF).score == dropped


def test_scheme_fixture_matches(heihe: Scheme) -> None:
    assert heihe == HEIHE
