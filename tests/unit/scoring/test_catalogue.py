"""The published catalogue and its application guide, built from a scheme (pure).

Issue 15 §2 (N17): the operator publishes the catalogue with a version, a date and an
application guide (who provides each scenario, how to apply, what the relying party
sees); what the relying party sees follows from the scenario's disclosure alone (H12);
tiers the source does not publish are marked illustrative (N16).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from scoring import (
    CatalogueError,
    Disclosure,
    Guide,
    GuideEntry,
    Publication,
    build_catalogue,
    default_publication,
    load_scheme,
    parse_guide,
)

HEIHE, HAINAN = load_scheme("heihe"), load_scheme("hainan")


def test_default_publication_is_the_scheme_version_and_date() -> None:
    """N17: with nothing configured the node publishes under the scheme's version and date,
    every scenario in the scheme's order, each with its reference, tiers and guide."""
    cat = build_catalogue(HEIHE, "heihe", default_publication(HEIHE))
    assert (cat.scheme_id, cat.version, cat.published_on) == ("heihe", "2025.1", HEIHE.effective)
    assert [s.incentive.id for s in cat.scenarios] == [i.id for i in HEIHE.incentives]
    loans = next(s for s in cat.scenarios if s.incentive.id == "credit-loans")
    assert loans.ref == "heihe/credit-loans"
    assert loans.qualifying_grades == ("SSS", "SS", "S", "AAA", "AA", "A")
    assert loans.provider == "金融机构（银行等）"
    assert "heihe/credit-loans" in loans.how_to_apply and "A级及以上" in loans.how_to_apply
    assert cat.illustrative == ()
    assert cat == build_catalogue(HEIHE, "heihe", default_publication(HEIHE))  # deterministic


def test_what_the_relying_party_sees_follows_from_disclosure_only() -> None:
    """H12: a threshold scenario promises no grade and no score; a grade_and_score one says
    the grade and the score; the guide cannot override it."""
    guide = Guide(scenarios={"credit-loans": GuideEntry(how_to_apply="到柜台办理")})
    cat = build_catalogue(HEIHE, "heihe", Publication("v2", date(2026, 3, 1), guide))
    sees = {s.incentive.id: s.relying_party_sees for s in cat.scenarios}
    assert sees["credit-loans"] == Disclosure.GRADE_AND_SCORE.sees_zh
    assert sees["hotel-late-checkout"] == Disclosure.THRESHOLD.sees_zh
    assert "不见等级和分数" in Disclosure.THRESHOLD.sees_zh


def test_the_operators_guide_names_local_providers_and_steps() -> None:
    """N17: the operator's guide overrides the provider and the steps of a scenario; the
    others keep the scheme's."""
    raw = {
        "intro": "黑河市营商环境建设监督局发布",
        "scenarios": {"credit-loans": {"provider": "黑河农商银行", "how_to_apply": "到柜台办理"}},
    }
    cat = build_catalogue(
        HEIHE, "heihe", Publication("2026.03", date(2026, 3, 1), parse_guide(raw))
    )
    by_id = {s.incentive.id: s for s in cat.scenarios}
    assert (by_id["credit-loans"].provider, by_id["credit-loans"].how_to_apply) == (
        "黑河农商银行",
        "到柜台办理",
    )
    assert by_id["hotel-late-checkout"].provider == "酒店、宾馆等住宿经营主体"
    assert (cat.version, cat.published_on, cat.intro) == (
        "2026.03",
        date(2026, 3, 1),
        "黑河市营商环境建设监督局发布",
    )


def test_hainans_catalogue_says_its_tiers_are_illustrative() -> None:
    """N16: Hainan's measures name no tier; the catalogue says the tiers are ours."""
    cat = build_catalogue(HAINAN, "hainan", default_publication(HAINAN))
    assert "incentives.*.min_grade" in cat.illustrative
    assert "tiers" in cat.illustrative


_PUNISH = "reads as a punishment or restriction; the score is for incentives only (H14, N14)"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        pytest.param({"title": "x"}, "title", "is not a field of an application guide",
                     id="unknown-top-key"),
        pytest.param({"intro": 5}, "guide.intro", "must be a string", id="intro-not-text"),
        pytest.param({"intro": "介" * 2001}, "guide.intro", "must be at most 2000 characters",
                     id="intro-too-long"),
        pytest.param({"scenarios": []}, "scenarios", "must be a table of scenario ids",
                     id="scenarios-not-a-table"),
        pytest.param({"scenarios": {"credit-loans": "bank"}}, "scenarios.credit-loans",
                     "must be a table", id="entry-not-a-table"),
        pytest.param({"scenarios": {"credit-loans": {"phone": "1"}}},
                     "scenarios.credit-loans.phone", "is not a field of a guide entry",
                     id="unknown-entry-key"),
        pytest.param({"scenarios": {"credit-loans": {"provider": "银" * 121}}},
                     "scenarios.credit-loans.provider", "must be at most 120 characters",
                     id="provider-too-long"),
        pytest.param({"scenarios": {"credit-loans": {"how_to_apply": "办" * 1001}}},
                     "scenarios.credit-loans.how_to_apply", "must be at most 1000 characters",
                     id="steps-too-long"),
        pytest.param({"scenarios": {"credit-loans": {"how_to_apply": "B级以下不予受理"}}},
                     "scenarios.credit-loans.how_to_apply", f"'不予' {_PUNISH}",
                     id="steps-punitive"),
        pytest.param({"scenarios": {"credit-loans": {"provider": "blacklist office"}}},
                     "scenarios.credit-loans.provider", f"'blacklist' {_PUNISH}",
                     id="provider-punitive"),
        pytest.param({"scenarios": {f"s{i}": {} for i in range(65)}}, "scenarios",
                     "must name at most 64 scenarios", id="too-many"),
    ],
)  # fmt: skip
def test_bad_guides_are_refused(raw: dict[str, Any], field: str, message: str) -> None:
    """Issue 15 §2, N17: a malformed, over-long or punitive guide is refused by path."""
    with pytest.raises(CatalogueError) as info:
        parse_guide(raw)
    assert (info.value.field, info.value.message, info.value.code) == (
        field,
        message,
        "INVALID_CATALOGUE",
    )


@pytest.mark.parametrize(
    ("publication", "field", "message"),
    [
        pytest.param(Publication("v1", date(2026, 1, 1), parse_guide(
            {"scenarios": {"deny-housing": {"provider": "住建局"}}})),
            "scenarios.deny-housing", "is not a scenario of heihe@2025.1's catalogue",
            id="guide-names-an-unknown-scenario"),
        pytest.param(Publication("v 1", date(2026, 1, 1)), "version",
                     "must be letters, digits, '.', '_' or '-' (a version)", id="bad-version"),
        pytest.param(Publication("v" * 33, date(2026, 1, 1)), "version",
                     "must be at most 32 characters", id="version-too-long"),
    ],
)  # fmt: skip
def test_a_publication_that_does_not_fit_the_scheme_is_refused(
    publication: Publication, field: str, message: str
) -> None:
    """Issue 15 §2, N17: a guide for a scenario the scheme does not offer is refused, not
    published (a relying party must not find a scenario no consent can name)."""
    with pytest.raises(CatalogueError) as info:
        build_catalogue(HEIHE, "heihe", publication)
    assert (info.value.field, info.value.message) == (field, message)
