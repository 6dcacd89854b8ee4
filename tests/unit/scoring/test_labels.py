"""Printed grades carry their scheme and say when the scheme's grades are illustrative."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scoring import (
    grade_label,
    illustrative_note,
    illustrative_suffix,
    load_scheme,
    shipped_scheme,
)

HEIHE = load_scheme("heihe")
HAINAN = load_scheme("hainan")


@pytest.mark.parametrize(
    ("scheme", "grade", "label"),
    [
        pytest.param(HEIHE, "A", "A (heihe@2025.1)", id="heihe-published-tiers-and-base"),
        pytest.param(
            HAINAN, "B",
            "B (hainan@2025.1, illustrative: Hainan has published neither tiers nor base)",
            id="hainan-neither-published",
        ),
        pytest.param(
            replace(HEIHE, illustrative=("tiers",)), "A",
            "A (heihe@2025.1, illustrative: Heihe has not published its tiers)",
            id="tiers-only",
        ),
        pytest.param(
            replace(HEIHE, illustrative=("base_score", "score_min")), "A",
            "A (heihe@2025.1, illustrative: Heihe has not published its base score)",
            id="base-only",
        ),
        pytest.param(
            replace(HEIHE, illustrative=("categories.*.points", "score_max")), "A",
            "A (heihe@2025.1)", id="illustrative-points-leave-the-grade-published",
        ),
    ],
)  # fmt: skip
def test_grade_label_marks_illustrative_tiers_and_base(
    scheme: object, grade: str, label: str
) -> None:
    """issue 15 §5 (H9, N16): a grade of a scheme whose tiers or base score are ours,
    not the region's, is printed as illustrative; published tiers are printed plain."""
    assert grade_label(grade, scheme) == label  # type: ignore[arg-type]


def test_every_shipped_scheme_listing_tiers_or_base_is_marked() -> None:
    """issue 15 §5: the mark follows the scheme file's ``illustrative`` list alone."""
    from scoring import list_schemes

    for scheme_id in list_schemes():
        scheme = load_scheme(scheme_id)
        ours = {"tiers", "base_score"} & set(scheme.illustrative)
        assert bool(illustrative_note(scheme)) == bool(ours), scheme_id


@pytest.mark.parametrize(
    ("keys", "suffix"),
    [
        pytest.param(("heihe@2025.1",), "", id="published"),
        pytest.param(
            ("heihe@2025.1", "hainan@2025.1", "hainan@2025.1", None, ""),
            " [hainan@2025.1 grades are illustrative: Hainan has published neither tiers nor base]",
            id="once-per-illustrative-scheme",
        ),
        pytest.param(("hainan@1999.1",), "", id="a-version-not-shipped-is-unknown"),
        pytest.param(("atlantis@1",), "", id="a-scheme-not-shipped-is-unknown"),
        pytest.param(("hainan",), "", id="no-version"),
    ],
)
def test_illustrative_suffix_for_printers_holding_keys(
    keys: tuple[str | None, ...], suffix: str
) -> None:
    """issue 15 §5: `huxin verify` holds scheme keys only; the suffix marks each
    shipped scheme whose grades are illustrative, once, and nothing it does not know."""
    assert illustrative_suffix(*keys) == suffix


def test_shipped_scheme_needs_the_exact_version() -> None:
    """issue 15 §5: another version's tiers may differ, so it is not looked up."""
    assert shipped_scheme("hainan", HAINAN.version) == HAINAN
    assert shipped_scheme("hainan", "0") is None
