"""docs/catalogue.md lists every scenario of every shipped scheme, as the toml says.

Issue 15 §2 (N16, N17): the published scenario list is generated from the scheme
files, so it cannot drift from what consents may name.
"""

from __future__ import annotations

from pathlib import Path

from scoring import list_schemes, load_scheme
from tools import gen_catalogue_doc


def test_committed_catalogue_doc_matches_the_scheme_files() -> None:
    """N17: the committed file is exactly the generator's output."""
    assert not gen_catalogue_doc.drift(), "run: python tools/gen_catalogue_doc.py"


def test_every_scenario_is_listed_with_its_tier_and_disclosure() -> None:
    """N16, N17, H12: each scenario's reference, tier and disclosure appear in the doc."""
    text = gen_catalogue_doc.DOC.read_text(encoding="utf-8")
    for sid in list_schemes():
        scheme = load_scheme(sid)
        for entry in scheme.incentives:
            row = next(
                line for line in text.splitlines() if line.startswith(f"| `{entry.ref(sid)}`")
            )
            assert f"| {entry.min_grade}+ | {entry.disclosure.value} |" in row


def test_a_changed_scenario_is_drift(tmp_path: Path) -> None:
    stale = tmp_path / "catalogue.md"
    stale.write_text(gen_catalogue_doc.render().replace("heihe/credit-loans", "heihe/loans"))
    assert gen_catalogue_doc.drift(stale)
    assert gen_catalogue_doc.drift(tmp_path / "missing.md")
