"""Disclosure kinds and the scenario catalogue in the issuer and the offline verifier.

REQ: H12 H14 N14 — issue 15 §2 (docs/SPEC.md sections 3, 6, 7; docs/adr/0512): a
threshold attestation carries neither grade nor score; the issuer refuses to
serialise an attestation whose fields contradict its kind and the verifier refuses
one (``DISCLOSURE_MISMATCH``); a consented attestation verifies only when its scenario
is in the hub-signed catalogue of the trust bundle (``SCENARIO_NOT_TRUSTED``) and
discloses no more than the scenario allows (``DISCLOSURE_NOT_ALLOWED``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keys import (
    STATUTORY_PURPOSE,
    Attestation,
    KeysError,
    MappedGrade,
    ScenarioCatalogue,
    Threshold,
    Trust,
    TrustedScenario,
    VerificationError,
    issue_attestation,
    issue_batch,
    load_trust,
    sign,
    verify_attestation,
    verify_batch,
)
from keys._disclosure import SCENARIOS_TYPE
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import AUD, SCENARIOS, T0, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


OTHER = MappedGrade("", "hainan-jinyefen", "2025", "heihe-to-hainan", "1", b"\x07" * 32, "anchored")
BANK = {
    "purpose": "hainan-jinyefen/bank-credit",
    "scenario": "hainan-jinyefen/bank-credit",
    "threshold": Threshold("hainan-jinyefen", "2025", "AA"),
    "mapped": OTHER,
}

#: a monthly snapshot leaf for the hub (node.monthly._snapshots), as changes to the threshold one
STATUTORY_PUSH: dict[str, Any] = {
    "audience": "hlj-hub", "consent_id": "", "consent_sha256": b"", "nonce": b"",
    "scenario": "", "disclosure": "statutory", "threshold": None, "mapped": None,
    "purpose": STATUTORY_PURPOSE, "grade": "AA", "score": 780,
}  # fmt: skip

# (id, changes to the threshold attestation, field the issuer names)
CONTRADICTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("threshold-with-grade", {"grade": "AA"}, "grade"),
    ("threshold-with-score", {"score": 780}, "score"),
    ("threshold-with-mapped-grade", {**BANK, "mapped": MappedGrade("AA", *[getattr(OTHER, f) for f in ("scheme_id", "scheme_version", "mapping_id", "mapping_version", "mapping_sha256", "method")])}, "mapped.grade"),
    ("grade-without-grade", {"disclosure": "grade"}, "grade"),
    ("grade-with-score", {"disclosure": "grade", "grade": "AA", "score": 780}, "score"),
    ("grade-and-score-without-score", {"disclosure": "grade_and_score", "grade": "AA"}, "score"),
    ("no-kind", {"disclosure": ""}, "disclosure"),
    ("unknown-kind", {"disclosure": "everything"}, "disclosure"),
    ("free-text-scenario", {"scenario": "loan"}, "scenario"),
    ("no-threshold", {"threshold": None}, "threshold"),
    ("threshold-of-another-scheme", {"threshold": Threshold("hainan-jinyefen", "2025", "AA")}, "threshold"),
    ("threshold-without-tier", {"threshold": Threshold("heihe", "2024", "")}, "threshold"),
    ("other-scheme-without-mapping", {**BANK, "mapped": None}, "mapped"),
    ("consented-without-consent", {"consent_id": ""}, "consent_id"),
    ("statutory-naming-a-scenario", {"disclosure": "statutory", "grade": "AA"}, "disclosure"),
    ("purpose-not-the-scenario", {"purpose": "blacklist_check"}, "purpose"),
    ("purpose-of-another-scenario", {"purpose": "heihe/credit-loans"}, "purpose"),
    ("statutory-with-another-purpose", {**STATUTORY_PUSH, "purpose": "deny_housing_subsidy"}, "purpose"),
    ("statutory-without-purpose", {**STATUTORY_PUSH, "purpose": ""}, "purpose"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field"), [c[1:] for c in CONTRADICTIONS], ids=[c[0] for c in CONTRADICTIONS]
)
def test_the_issuer_refuses_fields_that_contradict_the_disclosure_kind(
    world: World, changes: dict[str, Any], field: str
) -> None:
    """REQ: H12 H14 — Attestation.check accepts an empty grade only for a threshold
    attestation and refuses grade or score where the kind forbids them."""
    att = world.threshold_attestation(**changes)
    with pytest.raises(KeysError) as info:
        att.to_bytes()
    assert (info.value.code, info.value.field) == ("INVALID_ATTESTATION", field)


def _raw(world: World, att: Attestation, edit: Callable[[pb.Attestation], None]) -> bytes:
    """Signed bytes an honest issuer would refuse to produce (the verifier must refuse)."""
    m = att.to_proto()
    edit(m)
    return pb.SignedAttestation(
        envelope=sign(
            "application/vnd.huxin.attestation.v2+proto",
            m.SerializeToString(deterministic=True),
            world.heihe_key,
        ).to_proto()
    ).SerializeToString()


def test_a_threshold_attestation_verifies_without_grade_or_score(
    world: World, trust: Trust
) -> None:
    """REQ: H12 H14 — "meets heihe/deposit-free-rental (tier ≥ A in heihe@2024)": valid,
    and the signed payload holds no grade, no score, no mapped grade."""
    blob = issue_attestation(world.threshold_attestation(), world.heihe_key)
    v = verify_attestation(blob, trust, T0, AUD, nonce=b"nonce-123")
    m = pb.Attestation.FromString(v.payload)
    assert {d.name for d, _ in m.ListFields()} & {"grade", "score", "mapped"} == set()
    assert (v.attestation.disclosure, v.attestation.threshold) == (
        "threshold",
        Threshold("heihe", "2024", "A"),
    )
    other = issue_attestation(world.threshold_attestation(**BANK), world.heihe_key)
    assert verify_attestation(other, trust, T0, AUD).attestation.mapped == OTHER


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda w: _raw(w, w.threshold_attestation(), lambda m: setattr(m, "grade", "AA")), "DISCLOSURE_MISMATCH", id="threshold-carrying-grade"),
        pytest.param(lambda w: _raw(w, w.threshold_attestation(), lambda m: setattr(m, "score", 780)), "DISCLOSURE_MISMATCH", id="threshold-carrying-score"),
        pytest.param(lambda w: _raw(w, w.attestation(), lambda m: m.ClearField("score")), "DISCLOSURE_MISMATCH", id="grade-and-score-without-score"),
        pytest.param(lambda w: _raw(w, w.attestation(), lambda m: m.ClearField("disclosure")), "DISCLOSURE_MISMATCH", id="no-kind"),
        pytest.param(lambda w: _raw(w, w.attestation(), lambda m: setattr(m, "scenario", "loan")), "DISCLOSURE_MISMATCH", id="free-text-purpose"),
        pytest.param(lambda w: issue_attestation(w.attestation(scenario="heihe/blacklist-check", purpose="heihe/blacklist-check"), w.heihe_key), "SCENARIO_NOT_TRUSTED", id="scenario-not-in-catalogue"),
        pytest.param(lambda w: _raw(w, w.attestation(), lambda m: setattr(m.threshold, "scheme_version", "2023")), "DISCLOSURE_MISMATCH", id="own-scheme-threshold-at-another-version"),
        pytest.param(lambda w: issue_attestation(w.attestation(threshold=Threshold("heihe", "2024", "B")), w.heihe_key), "SCENARIO_NOT_TRUSTED", id="tier-lowered"),
        pytest.param(lambda w: issue_attestation(w.threshold_attestation(disclosure="grade", grade="AA"), w.heihe_key), "DISCLOSURE_NOT_ALLOWED", id="grade-for-threshold-scenario"),
        pytest.param(lambda w: issue_attestation(w.threshold_attestation(disclosure="grade_and_score", grade="AA", score=780), w.heihe_key), "DISCLOSURE_NOT_ALLOWED", id="score-for-threshold-scenario"),
    ],
)  # fmt: skip
def test_the_verifier_refuses_what_the_catalogue_and_the_kind_do_not_allow(
    world: World, trust: Trust, make: Callable[[World], bytes], code: str
) -> None:
    """REQ: H12 H14 N14 — named codes, the same one-by-one and in bulk (verify_batch)."""
    blob = make(world)
    with pytest.raises(VerificationError) as info:
        verify_attestation(blob, trust, T0, AUD)
    assert info.value.code == code
    (bulk,) = verify_batch([blob], trust, T0, AUD)
    assert isinstance(bulk, VerificationError) and bulk.code == code


def test_without_a_catalogue_no_consented_attestation_verifies(world: World) -> None:
    """REQ: H14 — fail closed: a trust list without the scenario catalogue is trust
    material in which no scenario is; a statutory push (no consent) still verifies."""
    bare = load_trust(world.trust_v2, world.hub_root.public_key, T0, min_version=2)
    assert bare.scenarios is None
    blob = issue_attestation(world.attestation(), world.heihe_key)
    with pytest.raises(VerificationError) as info:
        verify_attestation(blob, bare, T0, AUD)
    assert info.value.code == "SCENARIO_NOT_TRUSTED"
    push = world.attestation(
        audience="hlj-hub", consent_id="", consent_sha256=b"", nonce=b"", scenario="",
        disclosure="statutory", threshold=None, mapped=None, purpose="provincial-push",
    )  # fmt: skip
    batch = issue_batch([push], world.heihe_key, "heihe", T0 - 60)
    assert verify_attestation(batch.bundle(0), bare, T0, "hlj-hub").attestation.score == 780


def test_a_batch_of_mixed_kinds_gives_each_its_own_verdict(world: World, trust: Trust) -> None:
    """REQ: H12 — bulk verification gives every member the single-item verdict."""
    atts = [
        world.attestation(attestation_id="m0", nonce=b""),
        world.threshold_attestation(attestation_id="m1", nonce=b""),
        world.threshold_attestation(attestation_id="m2", nonce=b"", disclosure="grade", grade="A"),
        world.attestation(
            attestation_id="m3", nonce=b"", scenario="heihe/nope", purpose="heihe/nope"
        ),
    ]
    blobs = issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()
    verdicts = [
        r.code if isinstance(r, VerificationError) else "VALID"
        for r in verify_batch(blobs, trust, T0, AUD)
    ]
    assert verdicts == ["VALID", "VALID", "DISCLOSURE_NOT_ALLOWED", "SCENARIO_NOT_TRUSTED"]
    for blob, verdict in zip(blobs, verdicts, strict=True):
        try:
            verify_attestation(blob, trust, T0, AUD)
            single = "VALID"
        except VerificationError as exc:
            single = exc.code
        assert single == verdict


def _bundle(world: World, catalogue: Any) -> bytes:
    return pb.TrustBundle(
        trust_list=world.trust_v2.to_proto(), scenarios=catalogue.to_proto()
    ).SerializeToString()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda w: ScenarioCatalogue.of("hlj-hub", T0, SCENARIOS).sign(w.stranger), id="signed-by-another-key"),
        pytest.param(lambda w: ScenarioCatalogue.of("other-hub", T0, SCENARIOS).sign(w.hub_root), id="another-hubs-catalogue"),
        pytest.param(lambda w: sign("application/json", w.scenarios.to_bytes(), w.hub_root), id="wrong-payload-type"),
        pytest.param(lambda w: sign(SCENARIOS_TYPE, w.scenarios.to_bytes() + b"\xf8\x07\x01", w.hub_root), id="unknown-field"),
        pytest.param(lambda w: sign(SCENARIOS_TYPE, pb.ScenarioCatalogue(issuer="hlj-hub", scenarios=[pb.TrustedScenario(scenario=s.scenario, scheme_version=s.scheme_version, min_tier=s.min_tier, disclosure=s.disclosure) for s in reversed(SCENARIOS)]).SerializeToString(), w.hub_root), id="not-sorted"),
        pytest.param(lambda w: sign(SCENARIOS_TYPE, pb.ScenarioCatalogue(issuer="hlj-hub", scenarios=[pb.TrustedScenario(scenario="loan", scheme_version="1", min_tier="A", disclosure="threshold")]).SerializeToString(), w.hub_root), id="free-text-scenario"),
        pytest.param(lambda w: sign(SCENARIOS_TYPE, pb.ScenarioCatalogue(issuer="hlj-hub", scenarios=[pb.TrustedScenario(scenario="heihe/x", scheme_version="1", min_tier="A", disclosure="everything")]).SerializeToString(), w.hub_root), id="unknown-disclosure"),
    ],
)  # fmt: skip
def test_a_bad_scenario_catalogue_makes_the_bundle_invalid(
    world: World, make: Callable[[World], Any]
) -> None:
    """REQ: H14 — the catalogue is hub-signed trust material: a catalogue that does not
    verify under the pinned hub key, names another hub, or is not canonical, sorted and
    well formed makes loading the bundle fail with TRUST_INVALID."""
    with pytest.raises(VerificationError) as info:
        load_trust(_bundle(world, make(world)), world.hub_root.public_key, T0)
    assert (info.value.code, info.value.field) == ("TRUST_INVALID", "scenarios")


def test_duplicated_scenarios_are_refused() -> None:
    """A scenario at one scheme version is listed once."""
    twice = (*SCENARIOS, TrustedScenario("heihe/credit-loans", "2024", "AA", "grade"))
    with pytest.raises(VerificationError) as info:
        ScenarioCatalogue.of("hlj-hub", T0, twice)
    assert info.value.code == "TRUST_INVALID"


def _push(world: World, **changes: Any) -> Attestation:
    return world.threshold_attestation(**{**STATUTORY_PUSH, **changes})


# (id, signed blob, audience the verifier expects, field the refusal names)
MISADDRESSED: list[tuple[str, Callable[[World], bytes], str, str]] = [
    ("consented-purpose-not-the-scenario", lambda w: _raw(w, w.threshold_attestation(), lambda m: setattr(m, "purpose", "blacklist_check")), AUD, "purpose"),
    ("consented-purpose-empty", lambda w: _raw(w, w.attestation(), lambda m: m.ClearField("purpose")), AUD, "purpose"),
    ("statutory-to-a-bank-for-another-purpose", lambda w: _raw(w, _push(w), lambda m: (setattr(m, "audience", AUD), setattr(m, "purpose", "deny_housing_subsidy"))), AUD, "purpose"),
    ("statutory-to-the-hub-for-another-purpose", lambda w: _raw(w, _push(w), lambda m: setattr(m, "purpose", "deny_housing_subsidy")), "hlj-hub", "purpose"),
    ("statutory-to-a-bank", lambda w: issue_attestation(_push(w, audience=AUD), w.heihe_key), AUD, "audience"),
    ("statutory-to-another-hub", lambda w: issue_batch([_push(w, audience="other-hub")], w.heihe_key, "heihe", T0 - 60).bundle(0), "other-hub", "audience"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "audience", "field"), [c[1:] for c in MISADDRESSED], ids=[c[0] for c in MISADDRESSED]
)
def test_the_verifier_refuses_a_purpose_or_audience_the_kind_does_not_allow(
    world: World, trust: Trust, make: Callable[[World], bytes], audience: str, field: str
) -> None:
    """REQ: H12 H13 H14 N14 — issue 15 §2: a consented attestation's purpose is its
    scenario; a statutory push has the purpose "provincial-push" and is addressed to
    the hub of the verifier's trust material (``Trust.issuer``), even when the relying
    party asks for its own name as audience: DISCLOSURE_MISMATCH naming the field,
    the same one-by-one and in bulk, and nothing verified is returned."""
    blob = make(world)
    with pytest.raises(VerificationError) as info:
        verify_attestation(blob, trust, T0, audience)
    assert (info.value.code, info.value.field) == ("DISCLOSURE_MISMATCH", field)
    (bulk,) = verify_batch([blob], trust, T0, audience)
    assert isinstance(bulk, VerificationError)
    assert (bulk.code, bulk.field) == ("DISCLOSURE_MISMATCH", field)


def test_a_statutory_push_verifies_only_under_its_hubs_trust(world: World, trust: Trust) -> None:
    """REQ: H13 — the hub-addressed leaf verifies under the hub's trust list; the same
    leaf under trust material of no hub (``Trust.from_key_sets``, issuer "local") is
    refused: the verifier cannot tell that its audience is a hub."""
    blob = issue_batch([_push(world)], world.heihe_key, "heihe", T0 - 60).bundle(0)
    assert verify_attestation(blob, trust, T0, "hlj-hub").attestation.purpose == STATUTORY_PURPOSE
    local = Trust.from_key_sets([trust.regions["heihe"].keys])
    with pytest.raises(VerificationError) as info:
        verify_attestation(blob, local, T0, "hlj-hub")
    assert (info.value.code, info.value.field) == ("DISCLOSURE_MISMATCH", "audience")
    hubs = Trust.from_key_sets([trust.regions["heihe"].keys], issuer="hlj-hub")
    assert verify_attestation(blob, hubs, T0, "hlj-hub").attestation.score == 780


def test_the_statutory_purpose_is_the_one_the_snapshot_signer_uses() -> None:
    """REQ: H13 — node.monthly._snapshots builds every leaf with keys.STATUTORY_PURPOSE."""
    from node.monthly import _snapshots

    assert _snapshots.PURPOSE == STATUTORY_PURPOSE == "provincial-push"


def _steps(text: str) -> dict[int, set[str]]:
    """Step number -> the reason codes its block names, in a numbered step list."""
    import re

    steps: dict[int, set[str]] = {}
    current = 0
    for line in text.splitlines():
        m = re.match(r"^\s*(\d+)\.\s", line)
        if m:
            current = int(m.group(1))
        if current:
            steps.setdefault(current, set()).update(re.findall(r"\b[A-Z]+(?:_[A-Z]+)+\b", line))
    return steps


def test_the_verifier_docstring_numbers_its_steps_as_the_spec_does() -> None:
    """REQ: N14 — keys._verify's steps carry docs/SPEC.md section 7's numbers: every
    reason code of the docstring's step n is one of the specification's step n."""
    from pathlib import Path

    import keys._verify

    spec = (Path(__file__).resolve().parents[3] / "docs" / "SPEC.md").read_text()
    section = spec.split("## 7. Verification of an attestation", 1)[1].split("\n## ", 1)[0]
    listing = section.split("Steps, in this order", 1)[1].split("Only then is", 1)[0]
    doc = keys._verify.__doc__ or ""
    ours = _steps(doc.split("first failure:", 1)[1].split("Invariant:", 1)[0])
    theirs = _steps(listing)
    assert sorted(ours) == sorted(theirs) == list(range(1, 16))
    for n, codes in ours.items():
        assert codes - {"STATUS_*"} <= theirs[n], n
    assert "DISCLOSURE_MISMATCH" in ours[9] and "SCENARIO_NOT_TRUSTED" in ours[10]


def test_a_threshold_of_the_own_scheme_must_be_at_the_attestations_version(
    world: World, trust: Trust
) -> None:
    """Issue 16, H13, C3: "tier ≥ A in heihe@2025" says nothing about a heihe@2024 grade;
    the issuer refuses it (INVALID_ATTESTATION, field threshold) and the verifier refuses
    the same signed bytes from a dishonest issuer."""
    att = world.threshold_attestation(threshold=Threshold("heihe", "2025", "A"))
    with pytest.raises(KeysError) as info:
        att.to_bytes()
    assert (info.value.code, info.value.field) == ("INVALID_ATTESTATION", "threshold")

    def edit(m: pb.Attestation) -> None:
        m.threshold.scheme_version = "2025"

    blob = _raw(world, world.threshold_attestation(), edit)
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, trust, T0, AUD, nonce=b"nonce-123")
    assert (err.value.code, err.value.field) == ("DISCLOSURE_MISMATCH", "threshold")
