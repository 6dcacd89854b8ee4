"""A region's published catalogue against the hub's recognised one (ADR 0516).

Issue 15 §2 (N17, N20, H12): ``huxin catalogue fetch`` names every scenario of a
verified peer catalogue that offline verifiers would not recognise as published:
absent from the hub's scenario catalogue at that scheme version, or held there with
another tier or disclosure.
"""

from __future__ import annotations

import pytest

from keys.pb.v1 import catalogue_pb2
from node.catalogue import hub_disagreements
from node.disclosure import trusted_scenarios


def _heihe(**changes: str) -> catalogue_pb2.Catalogue:
    """Heihe's shipped scenarios as a region would publish them, with ``changes`` to
    ``heihe/credit-loans`` (``min_grade``, ``disclosure``, ``ref``, ``scheme_version``)."""
    version = changes.pop("scheme_version", "2025.1")
    cat = catalogue_pb2.Catalogue(region="heihe", scheme_id="heihe", scheme_version=version)
    for t in trusted_scenarios():
        if t.scenario.startswith("heihe/") and t.scheme_version == "2025.1":
            s = cat.scenarios.add(ref=t.scenario, min_grade=t.min_tier, disclosure=t.disclosure)
            if t.scenario == "heihe/credit-loans":
                for key, value in changes.items():
                    setattr(s, key, value)
    return cat


def test_the_shipped_heihe_catalogue_agrees_with_the_hub() -> None:
    """ADR 0516: a region running the shipped scheme publishes what the hub recognises."""
    cat = _heihe()
    assert len(cat.scenarios) == 19
    assert hub_disagreements(cat, trusted_scenarios()) == ()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"min_grade": "AA"},
            "heihe/credit-loans at heihe@2025.1: tier AA published, A recognised",
            id="different-tier",
        ),
        pytest.param(
            {"disclosure": "threshold"},
            "heihe/credit-loans at heihe@2025.1: disclosure threshold published, "
            "grade_and_score recognised",
            id="different-disclosure",
        ),
        pytest.param(
            {"ref": "heihe/credit-lines"},
            "heihe/credit-lines at heihe@2025.1: not in the hub's scenario catalogue "
            "(SCENARIO_NOT_TRUSTED)",
            id="scenario-the-hub-does-not-hold",
        ),
    ],
)
def test_each_disagreement_is_named(changes: dict[str, str], expected: str) -> None:
    """ADR 0516 (H12, N17): one line per differing scenario, naming what differs."""
    assert hub_disagreements(_heihe(**changes), trusted_scenarios()) == (expected,)


def test_a_version_the_hub_has_not_shipped_is_not_recognised_at_all() -> None:
    """ADR 0516: after a rollout the hub's catalogue holds only shipped versions, so
    every scenario of a newer version's catalogue is reported."""
    lines = hub_disagreements(_heihe(scheme_version="2099.1"), trusted_scenarios())
    assert len(lines) == 19
    assert all(line.endswith("not in the hub's scenario catalogue (SCENARIO_NOT_TRUSTED)")
               for line in lines)  # fmt: skip
