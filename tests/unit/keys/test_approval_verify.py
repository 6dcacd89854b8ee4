"""Offline verification of mapped grades against the hub's approved list (批准或备案).

Issue 16 (H13: a mapped grade counts only when its table is approved or filed and in
force at the attestation's issue time; C3: fail closed — no list, no mapped grade).
Bulk verification gives the same verdicts as the single-item path (ADR 0110).
"""

from __future__ import annotations

from typing import Any

import pytest

from keys import (
    MappedGrade,
    Threshold,
    Trust,
    VerificationError,
    issue_attestation,
    issue_batch,
    load_trust,
    sign,
    sign_approved_mappings,
    verify_approved_mappings,
    verify_attestation,
    verify_batch,
)
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import AUD, DAY, T0, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


def _mapped(
    sha: bytes = b"\x07" * 32,
    target: tuple[str, str] = ("hainan-jinyefen", "2025"),
    ident: tuple[str, str] = ("heihe-to-hainan", "1"),
    grade: str = "A",
    method: str = "anchored",
) -> MappedGrade:
    return MappedGrade(grade, target[0], target[1], ident[0], ident[1], sha, method)


def _bundle(world: World, approvals: Any = "keep") -> bytes:
    env = world.approvals_env if approvals == "keep" else approvals
    return pb.TrustBundle(
        trust_list=world.trust_v2.to_proto(),
        scenarios=world.scenarios_env.to_proto(),
        mapping_approvals=None if env is None else env.to_proto(),
    ).SerializeToString(deterministic=True)


def test_bundle_approvals_are_loaded(world: World, trust: Trust) -> None:
    """Issue 16, H13: load_trust reads TrustBundle.mapping_approvals into Trust.approvals."""
    assert trust.approvals is not None
    assert trust.approvals.find(b"\x07" * 32) == world.approval


def test_bundle_without_approvals_loads_as_none(world: World) -> None:
    """Issue 16, C3: no list in the bundle is Trust.approvals None, not an empty pass."""
    loaded = load_trust(_bundle(world, None), world.hub_root.public_key, T0)
    assert loaded.approvals is None
    assert loaded.scenarios is not None


def test_list_signed_by_another_key_makes_the_bundle_invalid(world: World) -> None:
    """Issue 16, C3: a list signed by a key other than the hub root is TRUST_INVALID at load."""
    env = world.approvals_env
    forged = sign(env.payload_type, env.payload, world.heihe_root)
    with pytest.raises(VerificationError) as err:
        load_trust(_bundle(world, forged), world.hub_root.public_key, T0)
    assert (err.value.code, err.value.field) == ("TRUST_INVALID", "mapping_approvals")


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("approved-grade", {}, None),
    ("approved-grade-only", {"disclosure": "grade", "score": None}, None),
    ("no-mapped-grade", {"mapped": None}, None),
    ("hash-not-listed", {"mapped": _mapped(sha=b"\x08" * 32)}, "MAPPING_NOT_APPROVED"),
    ("other-target-version", {"mapped": _mapped(target=("hainan-jinyefen", "2026"))}, "MAPPING_NOT_APPROVED"),
    ("other-table-id", {"mapped": _mapped(ident=("another-table", "1"))}, "MAPPING_NOT_APPROVED"),
    ("other-table-version", {"mapped": _mapped(ident=("heihe-to-hainan", "2"))}, "MAPPING_NOT_APPROVED"),
]  # fmt: skip


def test_mapped_grade_with_another_method_than_its_approval_is_not_approved(
    world: World, trust: Trust
) -> None:
    """Issue 16, H13, C3: the mapped grade cites the approved table's hash, id and version
    but another method (equipercentile for an anchored approval): MAPPING_NOT_APPROVED."""
    mapped = _mapped(method="equipercentile")
    blob = issue_attestation(world.attestation(mapped=mapped), world.heihe_key)
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, trust, T0, AUD)
    assert (err.value.code, err.value.field) == ("MAPPING_NOT_APPROVED", "mapped")


@pytest.mark.parametrize(("changes", "code"), [pytest.param(c, k, id=i) for i, c, k in CASES])
def test_mapped_grade_verdicts(
    world: World, trust: Trust, changes: dict[str, Any], code: str | None
) -> None:
    """Issue 16, H13, C3: the mapped grade's table must be in the approved list for this pair."""
    blob = issue_attestation(world.attestation(**changes), world.heihe_key)
    if code is None:
        assert verify_attestation(blob, trust, T0, AUD).attestation.mapped == changes.get(
            "mapped", world.attestation().mapped
        )
        return
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, trust, T0, AUD)
    assert err.value.code == code
    if code == "MAPPING_NOT_APPROVED":
        assert err.value.field == "mapped"


def test_threshold_met_in_another_scheme_needs_the_approval(world: World, trust: Trust) -> None:
    """Issue 16, H13: a threshold attestation met through a mapping carries `mapped` (no grade):
    it verifies with the table approved, and is refused without the list."""
    att = world.threshold_attestation(
        purpose="hainan-jinyefen/bank-credit",
        scenario="hainan-jinyefen/bank-credit",
        mapped=_mapped(grade=""),
        threshold=Threshold("hainan-jinyefen", "2025", "AA"),
    )
    blob = issue_attestation(att, world.heihe_key)
    assert verify_attestation(blob, trust, T0, AUD).attestation.mapped is not None
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, trust.with_approvals(None), T0, AUD)
    assert (err.value.code, err.value.field) == ("MAPPING_NOT_APPROVED", "mapped")


def _time_bound(world: World, **changes: int) -> Trust:
    bounded = pb.MappingApproval()
    bounded.CopyFrom(world.approval)
    for name, value in changes.items():
        setattr(bounded, name, value)
    env = sign_approved_mappings("hlj-hub", T0 - DAY, [bounded], world.hub_root)
    approvals = verify_approved_mappings(env, world.hub_root.public_key, "hlj-hub")
    loaded = load_trust(world.bundle_v2, world.hub_root.public_key, T0)
    return loaded.with_approvals(approvals)


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        pytest.param({"effective_from": T0 - DAY}, True, id="in-force-from-the-day-of-issue"),
        pytest.param({"effective_from": T0}, False, id="in-force-from-the-day-after-issue"),
        pytest.param({"expires": T0}, True, id="expires-the-day-after-issue"),
        pytest.param({"expires": T0 - DAY}, False, id="expired-on-the-day-of-issue"),
        pytest.param({"expires": T0 - 2 * DAY}, False, id="expired-before-issue"),
    ],
)
def test_approval_dates_are_checked_at_issue_time(
    world: World, changes: dict[str, int], ok: bool
) -> None:
    """Issue 16, H13: the approval must be in force at issued_at (not at verification time)."""
    bounded = _time_bound(world, **changes)
    blob = issue_attestation(world.attestation(), world.heihe_key)  # issued at T0 - 3600
    if ok:
        verify_attestation(blob, bounded, T0, AUD)
        return
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, bounded, T0, AUD)
    assert (err.value.code, err.value.field) == ("MAPPING_NOT_APPROVED", "mapped")


def _summary(v: Any) -> object:
    if isinstance(v, VerificationError):
        return (v.code, v.field)
    return (v.payload, v.key_id, v.status, v.attestation)


def _single(blob: bytes, trust: Trust) -> object:
    try:
        return _summary(verify_attestation(blob, trust, T0, AUD))
    except VerificationError as exc:
        return _summary(exc)


@pytest.mark.parametrize(
    "approved", [pytest.param(True, id="list-present"), pytest.param(False, id="no-list")]
)
def test_bulk_verification_gives_the_same_verdicts(
    world: World, trust: Trust, approved: bool
) -> None:
    """Issue 16, C3 (ADR 0110): a whole batch mixing approved, unlisted and unmapped grades
    gets, item by item, the single-item path's verdict, with or without the list."""
    t = trust if approved else trust.with_approvals(None)
    mixes = [{}, {"mapped": _mapped(sha=b"\x09" * 32)}, {"mapped": None}, {}]
    atts = [
        world.attestation(attestation_id=f"bulk{i}", nonce=b"", **m) for i, m in enumerate(mixes)
    ]
    blobs = issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()
    t._checkpoints.clear()
    bulk = [_summary(r) for r in verify_batch(blobs, t, T0, AUD)]
    single = [_single(b, t) for b in blobs]
    assert bulk == single
    codes = [s[0] if isinstance(s, tuple) and len(s) == 2 else "ok" for s in bulk]  # type: ignore[misc]
    if approved:
        assert codes == ["ok", "MAPPING_NOT_APPROVED", "ok", "ok"]
    else:
        assert codes == [
            "MAPPING_NOT_APPROVED",
            "MAPPING_NOT_APPROVED",
            "ok",
            "MAPPING_NOT_APPROVED",
        ]


def test_bulk_all_approved_takes_the_shared_path(world: World, trust: Trust) -> None:
    """Issue 16, C3: a batch whose members all cite the approved table verifies in bulk."""
    atts = [world.attestation(attestation_id=f"ok{i}", nonce=b"") for i in range(6)]
    blobs = issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()
    results = verify_batch(blobs, trust, T0, AUD)
    assert all(not isinstance(r, VerificationError) for r in results)


def test_replacing_the_catalogue_keeps_the_approvals(world: World, trust: Trust) -> None:
    """Issue 16, C3: Trust.with_scenarios keeps the approved list, with_approvals the catalogue."""
    assert trust.with_scenarios(None).approvals is trust.approvals
    assert trust.with_approvals(None).scenarios is trust.scenarios
