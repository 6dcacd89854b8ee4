"""The offline verifier's rules for a derived score's attestation (issue 16, N18, N19;
docs/adr/0006): the hub's catalogue lists the derived scenario at its version with its
base; the attestation names the derived score as its scheme and the base as its
model_version; a region may claim it only when the trust list lists the base for it."""

from __future__ import annotations

import pytest

from keys import ScenarioCatalogue, TrustedScenario, VerificationError
from keys._disclosure import scenario_problem, scheme_listed
from node.pb.v1 import attestation_pb2 as pb

CARD = "hainan-credit-card/integrity-credit-card"
ENTRY = TrustedScenario(CARD, "2026.1", "B", "threshold", "card", base="hainan@2025.1")
OWN = TrustedScenario("hainan/fast-lane", "2025.1", "A", "threshold", "fast lane")
CATALOGUE = ScenarioCatalogue.of("hub", 1, [ENTRY, OWN])


def _att(**change: object) -> pb.Attestation:
    att = pb.Attestation(
        scheme_id="hainan-credit-card",
        scheme_version="2026.1",
        model_version="hainan@2025.1",
        scenario=CARD,
        purpose=CARD,
        disclosure="threshold",
        consent_id="c",
        threshold=pb.Threshold(
            scheme_id="hainan-credit-card", scheme_version="2026.1", min_tier="B"
        ),
    )
    for key, value in change.items():
        if key == "version":
            att.scheme_version = att.threshold.scheme_version = str(value)
        else:
            setattr(att, key, value)
    return att


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({}, None, id="listed-version-with-its-base"),
        pytest.param({"version": "2026.2"}, ("SCENARIO_NOT_TRUSTED", "scenario"), id="version-the-hub-lacks"),
        pytest.param({"model_version": "hainan@2026.1"}, ("SCENARIO_NOT_TRUSTED", "model_version"), id="another-base-version"),
        pytest.param({"model_version": "heihe@2025.1"}, ("SCENARIO_NOT_TRUSTED", "model_version"), id="another-base-scheme"),
        pytest.param({"disclosure": "grade", "grade": "B"}, ("DISCLOSURE_NOT_ALLOWED", "disclosure"), id="grade-for-threshold-card"),
    ],
)  # fmt: skip
def test_a_derived_attestation_is_checked_against_the_hub_catalogue(
    change: dict[str, object], expected: tuple[str, str] | None
) -> None:
    """REQ: N18 N19 H12 — issue 16: step 10 for a derived scenario: the catalogue entry at
    the attestation's version, its base as model_version, its disclosure bound."""
    found = scenario_problem(_att(**change), CATALOGUE)
    assert (None if found is None else found[:2]) == expected


@pytest.mark.parametrize(
    ("schemes", "change", "catalogue", "listed"),
    [
        pytest.param(frozenset(), {}, None, True, id="trust-list-names-no-schemes"),
        pytest.param(frozenset({"hainan@2025.1"}), {}, CATALOGUE, True, id="base-listed-for-region"),
        pytest.param(frozenset({"heihe@2025.1"}), {}, CATALOGUE, False, id="base-not-listed"),
        pytest.param(frozenset({"hainan@2025.1"}), {}, None, False, id="no-catalogue"),
        pytest.param(frozenset({"hainan@2025.1"}), {"version": "2026.2"}, CATALOGUE, False, id="version-not-in-catalogue"),
        pytest.param(frozenset({"hainan@2025.1"}), {"model_version": "heihe@2025.1"}, CATALOGUE, False, id="model-version-not-the-base"),
        pytest.param(frozenset({"hainan@2025.1"}), {"scheme_id": "hainan"}, CATALOGUE, False, id="scheme-not-the-scenarios"),
    ],
)  # fmt: skip
def test_a_region_may_claim_a_derived_score_only_of_a_base_listed_for_it(
    schemes: frozenset[str],
    change: dict[str, object],
    catalogue: ScenarioCatalogue | None,
    listed: bool,
) -> None:
    """REQ: N18 H17 — issue 16: step 8 (SCHEME_NOT_TRUSTED unless listed) accepts a derived
    score's attestation through its base, and only as the hub's catalogue describes it."""
    assert scheme_listed(_att(**change), schemes, catalogue) is listed


def test_the_base_survives_the_signed_catalogue_and_a_malformed_base_is_refused() -> None:
    """REQ: N18 — issue 16: the base is part of the hub-signed catalogue bytes; a base that
    is not '<scheme id>@<version>' makes the catalogue TRUST_INVALID."""
    again = ScenarioCatalogue.from_bytes(CATALOGUE.to_bytes())
    assert again.find(CARD, "2026.1") == ENTRY
    assert again.find("hainan/fast-lane", "2025.1").base == ""  # type: ignore[union-attr]
    with pytest.raises(VerificationError) as info:
        ScenarioCatalogue.of(
            "hub", 1, [TrustedScenario(CARD, "2026.1", "B", "threshold", base="hainan")]
        )
    assert (info.value.code, info.value.field) == ("TRUST_INVALID", "scenarios")
