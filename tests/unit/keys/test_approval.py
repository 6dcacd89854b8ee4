"""Mapping approval records (批准或备案) and the hub's approved list: every bad input refused.

Issue 16 (H13: a mapping table is used only once approved or filed with the authority;
C3: fail closed, verify before parsing).  Each refusal names its reason code and field.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import (
    APPROVAL_TYPE,
    APPROVED_MAPPINGS_TYPE,
    MAX_APPROVED_MAPPINGS,
    ApprovedMappings,
    Envelope,
    EnvelopeSignature,
    VerificationError,
    approval_covers,
    open_approval,
    sign,
    sign_approval,
    sign_approved_mappings,
    verify_approved_mappings,
)
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import DAY, T0, fixed_key

HUB, NATIONAL, STRANGER = fixed_key("hub-root"), fixed_key("national"), fixed_key("stranger")
AUTHORITIES = {"hub": HUB.public_key, "national": NATIONAL.public_key}
SHA = bytes(range(32))


def approval(**fields: object) -> pb.MappingApproval:
    base: dict[str, object] = {
        "mapping_sha256": SHA,
        "mapping_id": "heihe-hainan-anchored",
        "mapping_version": "1",
        "method": "anchored",
        "source_scheme_id": "heihe",
        "source_scheme_version": "2025.1",
        "source_region": "heihe",
        "target_scheme_id": "hainan",
        "target_scheme_version": "2025.1",
        "target_region": "hainan",
        "effective_from": T0,
        "expires": T0 + 365 * DAY,
        "decision": "approved",
        "authority": "hub",
        "reach_eligible": 887_500,
        "reach_kept": 700_000,
        "reach_ppm": 788_732,
        "issued_at": T0 - DAY,
    }
    base.update(fields)
    return pb.MappingApproval(**base)  # type: ignore[arg-type]


def raw_envelope(a: pb.MappingApproval, key: object = HUB, ptype: str = APPROVAL_TYPE) -> Envelope:
    """Signed without the well-formedness check of sign_approval (what an attacker can do)."""
    return sign(ptype, a.SerializeToString(deterministic=True), key)  # type: ignore[arg-type]


def test_round_trip_hub_and_national() -> None:
    """Issue 16, H13: an approval signed by the hub or a national authority opens as signed."""
    for who, key in (("hub", HUB), ("national", NATIONAL)):
        a = approval(authority=who, decision="filed" if who == "hub" else "approved")
        opened = open_approval(sign_approval(a, key).to_bytes(), AUTHORITIES)
        assert opened == a


def test_signing_is_deterministic() -> None:
    """Issue 16, C3: the same record signed twice gives the same bytes."""
    assert sign_approval(approval(), HUB).to_bytes() == sign_approval(approval(), HUB).to_bytes()


def _tampered() -> Envelope:
    env = sign_approval(approval(), HUB)
    payload = bytearray(env.payload)
    payload[-1] ^= 1
    return Envelope(env.payload_type, bytes(payload), env.signatures)


def _non_canonical() -> Envelope:
    # the same fields with mapping_id written twice: protobuf would merge it, we refuse it
    payload = approval().SerializeToString(deterministic=True)
    return raw_envelope_bytes(payload + b"\x12\x01x")


def _unknown_field() -> Envelope:
    payload = approval().SerializeToString(deterministic=True)
    return raw_envelope_bytes(payload + b"\xa8\x06\x01")  # field 101, varint 1


def raw_envelope_bytes(payload: bytes, key: object = HUB) -> Envelope:
    return sign(APPROVAL_TYPE, payload, key)  # type: ignore[arg-type]


def _too_large() -> Envelope:
    return raw_envelope_bytes(b"\x00" * 5000)


BAD_ENVELOPES: list[tuple[str, Callable[[], Envelope | bytes], str, str]] = [
    ("tampered-payload", _tampered, "BAD_SIGNATURE", "signatures"),
    (
        "wrong-type",
        lambda: raw_envelope(approval(), ptype=APPROVED_MAPPINGS_TYPE),
        "WRONG_PAYLOAD_TYPE",
        "payload_type",
    ),
    ("unknown-key", lambda: raw_envelope(approval(), STRANGER), "UNKNOWN_KEY", "key_id"),
    (
        "no-signature",
        lambda: Envelope(APPROVAL_TYPE, approval().SerializeToString(), ()),
        "UNKNOWN_KEY",
        "key_id",
    ),
    (
        "signature-under-other-key-id",
        lambda: Envelope(
            APPROVAL_TYPE,
            approval().SerializeToString(),
            (EnvelopeSignature(HUB.key_id, STRANGER.sign(b"x")),),
        ),
        "BAD_SIGNATURE",
        "signatures",
    ),
    (
        "authority-mismatch",
        lambda: raw_envelope(approval(authority="national"), HUB),
        "APPROVAL_INVALID",
        "authority",
    ),
    (
        "unlisted-authority-named",
        lambda: raw_envelope(approval(authority="province"), HUB),
        "APPROVAL_INVALID",
        "authority",
    ),
    ("non-canonical", _non_canonical, "MALFORMED", "payload"),
    ("unknown-field", _unknown_field, "MALFORMED", "payload"),
    ("too-large", _too_large, "MALFORMED", "payload"),
    ("not-an-envelope", lambda: b"\xff\xff\xff", "MALFORMED", "envelope"),
]


@pytest.mark.parametrize(
    ("make", "code", "field"),
    [pytest.param(m, c, f, id=i) for i, m, c, f in BAD_ENVELOPES],
)
def test_open_approval_refuses_bad_envelopes(
    make: Callable[[], Envelope | bytes], code: str, field: str
) -> None:
    """Issue 16, C3: signature first, then canonical bytes, then the named authority."""
    with pytest.raises(VerificationError) as err:
        open_approval(make(), AUTHORITIES)
    assert (err.value.code, err.value.field) == (code, field)


BAD_FIELDS: list[tuple[str, dict[str, object], str]] = [
    ("sha256-short", {"mapping_sha256": SHA[:31]}, "mapping_sha256"),
    ("sha256-empty", {"mapping_sha256": b""}, "mapping_sha256"),
    ("id-empty", {"mapping_id": ""}, "mapping_id"),
    ("id-65-chars", {"mapping_id": "x" * 65}, "mapping_id"),
    ("id-control-char", {"mapping_id": "a\nb"}, "mapping_id"),
    ("version-empty", {"mapping_version": ""}, "mapping_version"),
    ("version-65-chars", {"mapping_version": "1" * 65}, "mapping_version"),
    ("method-unknown", {"method": "guess"}, "method"),
    ("source-scheme-empty", {"source_scheme_id": ""}, "source_scheme_id"),
    ("source-version-long", {"source_scheme_version": "v" * 65}, "source_scheme_version"),
    ("source-region-empty", {"source_region": ""}, "source_region"),
    ("target-scheme-long", {"target_scheme_id": "t" * 65}, "target_scheme_id"),
    ("target-version-empty", {"target_scheme_version": ""}, "target_scheme_version"),
    ("target-region-spaces", {"target_region": " hainan"}, "target_region"),
    ("same-scheme", {"target_scheme_id": "heihe"}, "target_scheme_id"),
    ("effective-from-zero", {"effective_from": 0}, "effective_from"),
    ("expires-equal-start", {"expires": T0}, "expires"),
    ("expires-before-start", {"expires": T0 - 1}, "expires"),
    ("decision-unknown", {"decision": "recommended"}, "decision"),
    ("decision-chinese", {"decision": "批准"}, "decision"),
    ("authority-empty", {"authority": ""}, "authority"),
    ("authority-65-chars", {"authority": "h" * 65}, "authority"),
    ("eligible-huge", {"reach_eligible": 2**63, "reach_kept": 0, "reach_ppm": 0}, "reach_eligible"),
    ("kept-above-eligible", {"reach_kept": 887_501, "reach_ppm": 1_000_001}, "reach_kept"),
    ("ppm-rounded-up", {"reach_ppm": 788_733}, "reach_ppm"),
    ("ppm-no-one-eligible", {"reach_eligible": 0, "reach_kept": 0, "reach_ppm": 0}, "reach_ppm"),
    ("issued-at-zero", {"issued_at": 0}, "issued_at"),
]


@pytest.mark.parametrize(("fields", "field"), [pytest.param(f, n, id=i) for i, f, n in BAD_FIELDS])
def test_open_approval_refuses_each_bad_field(fields: dict[str, object], field: str) -> None:
    """Issue 16, H13, C3: every field is bounded and checked after the signature holds."""
    with pytest.raises(VerificationError) as err:
        open_approval(raw_envelope(approval(**fields)), AUTHORITIES)
    assert (err.value.code, err.value.field) == ("APPROVAL_INVALID", field)


@pytest.mark.parametrize(("fields", "field"), [pytest.param(f, n, id=i) for i, f, n in BAD_FIELDS])
def test_sign_approval_refuses_each_bad_field(fields: dict[str, object], field: str) -> None:
    """Issue 16, C3: an authority never signs a record no verifier could open."""
    with pytest.raises(VerificationError) as err:
        sign_approval(approval(**fields), HUB)
    assert (err.value.code, err.value.field) == ("APPROVAL_INVALID", field)


def test_open_ended_and_no_one_eligible_are_well_formed() -> None:
    """Issue 16, H13: expires 0 is open-ended; no one eligible is reach 1 000 000 ppm."""
    a = approval(expires=0, reach_eligible=0, reach_kept=0, reach_ppm=1_000_000)
    assert open_approval(sign_approval(a, HUB), AUTHORITIES) == a


SRC, DST = ("heihe", "2025.1"), ("hainan", "2025.1")


@pytest.mark.parametrize(
    ("kwargs", "covered"),
    [
        pytest.param({}, True, id="in-force"),
        pytest.param({"at": T0}, True, id="first-second"),
        pytest.param({"at": T0 - 1}, False, id="not-yet-effective"),
        pytest.param({"at": T0 + 365 * DAY}, False, id="expired"),
        pytest.param({"mapping_sha256": bytes(32)}, False, id="other-table"),
        pytest.param({"source": ("heihe", "2024")}, False, id="other-source-version"),
        pytest.param({"target": ("fuzhou", "2025.1")}, False, id="other-target"),
        pytest.param({"source": DST, "target": SRC}, False, id="reversed-pair"),
    ],
)
def test_approval_covers(kwargs: dict[str, object], covered: bool) -> None:
    """Issue 16, H13: an approval covers exactly its table, pair and dates."""
    args: dict[str, object] = {"mapping_sha256": SHA, "source": SRC, "target": DST, "at": T0 + DAY}
    args.update(kwargs)
    reason = approval_covers(approval(), **args)  # type: ignore[arg-type]
    assert (reason is None) == covered
    if not covered:
        assert isinstance(reason, str) and reason


def test_open_ended_approval_covers_far_future() -> None:
    """Issue 16, H13: expires 0 never ends."""
    a = approval(expires=0)
    assert approval_covers(a, mapping_sha256=SHA, source=SRC, target=DST, at=2**40) is None


@given(kept=st.integers(0, 10**12), extra=st.integers(0, 10**12))
def test_ppm_rule_accepts_exactly_the_floor(kept: int, extra: int) -> None:
    """Issue 16, C3 (property): reach_ppm is accepted iff it is kept/eligible rounded down."""
    eligible = kept + extra
    ppm = 1_000_000 if eligible == 0 else kept * 1_000_000 // eligible
    a = approval(reach_eligible=eligible, reach_kept=kept, reach_ppm=ppm)
    assert open_approval(sign_approval(a, HUB), AUTHORITIES).reach_ppm == ppm
    with pytest.raises(VerificationError):
        sign_approval(approval(reach_eligible=eligible, reach_kept=kept, reach_ppm=ppm + 1), HUB)


# ------------------------------------------------------------ the hub's approved list


def _sha(i: int) -> bytes:
    return bytes([i]) * 32


def test_approved_list_round_trip_sorted() -> None:
    """Issue 16, H13: the hub signs the list sorted by hash; the verifier finds entries."""
    entries = [approval(mapping_sha256=_sha(i)) for i in (3, 1, 2)]
    env = sign_approved_mappings("hub", T0, entries, HUB)
    listed = verify_approved_mappings(env.to_bytes(), HUB.public_key, "hub")
    assert [bytes(a.mapping_sha256) for a in listed.approvals] == [_sha(1), _sha(2), _sha(3)]
    assert listed.find(_sha(2)) == entries[2]
    assert listed.find(_sha(9)) is None
    found, reason = listed.covering(mapping_sha256=_sha(1), source=SRC, target=DST, at=T0)
    assert found is not None and reason == ""


def _list_bytes(entries: list[pb.MappingApproval], issuer: str = "hub") -> bytes:
    return pb.ApprovedMappings(issuer=issuer, issued_at=T0, approvals=entries).SerializeToString(
        deterministic=True
    )


BAD_LISTS: list[tuple[str, Callable[[], Envelope | bytes]]] = [
    (
        "signed-by-non-hub-key",
        lambda: sign(APPROVED_MAPPINGS_TYPE, _list_bytes([approval()]), NATIONAL),
    ),
    ("wrong-type", lambda: sign(APPROVAL_TYPE, _list_bytes([approval()]), HUB)),
    ("other-issuer", lambda: sign(APPROVED_MAPPINGS_TYPE, _list_bytes([approval()], "hub2"), HUB)),
    (
        "unsorted",
        lambda: sign(
            APPROVED_MAPPINGS_TYPE,
            _list_bytes([approval(mapping_sha256=_sha(2)), approval(mapping_sha256=_sha(1))]),
            HUB,
        ),
    ),
    (
        "duplicate-hash",
        lambda: sign(APPROVED_MAPPINGS_TYPE, _list_bytes([approval(), approval()]), HUB),
    ),
    (
        "too-many",
        lambda: sign(
            APPROVED_MAPPINGS_TYPE,
            _list_bytes(
                [
                    approval(mapping_sha256=i.to_bytes(32, "big"))
                    for i in range(MAX_APPROVED_MAPPINGS + 1)
                ]
            ),
            HUB,
        ),
    ),
    (
        "ill-formed-entry",
        lambda: sign(APPROVED_MAPPINGS_TYPE, _list_bytes([approval(decision="x")]), HUB),
    ),
    (
        "non-canonical",
        lambda: sign(APPROVED_MAPPINGS_TYPE, _list_bytes([approval()]) + b"\x0a\x03hub", HUB),
    ),
    ("not-an-envelope", lambda: b"\xff\xff"),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in BAD_LISTS])
def test_approved_list_refused_at_load(make: Callable[[], Envelope | bytes]) -> None:
    """Issue 16, C3: a malformed or foreign approved list makes the trust material unusable."""
    with pytest.raises(VerificationError) as err:
        verify_approved_mappings(make(), HUB.public_key, "hub")
    assert (err.value.code, err.value.field) == ("TRUST_INVALID", "mapping_approvals")


def test_hub_refuses_to_sign_a_bad_list() -> None:
    """Issue 16, C3: the hub never signs a list a verifier would refuse."""
    with pytest.raises(VerificationError) as err:
        sign_approved_mappings("hub", T0, [approval(), approval()], HUB)
    assert err.value.code == "TRUST_INVALID"
    too_many = [
        approval(mapping_sha256=i.to_bytes(32, "big")) for i in range(MAX_APPROVED_MAPPINGS + 1)
    ]
    with pytest.raises(VerificationError):
        sign_approved_mappings("hub", T0, too_many, HUB)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"effective_from": T0 + 3600}, "effective_from", id="start-mid-day"),
        pytest.param({"effective_from": T0 - 1}, "effective_from", id="start-a-second-early"),
        pytest.param({"expires": T0 + DAY + 1}, "expires", id="end-a-second-late"),
        pytest.param({"expires": T0 + 30 * DAY - 3600}, "expires", id="end-mid-day"),
    ],
)
def test_approval_bounds_must_be_whole_utc_days(fields: dict[str, int], field: str) -> None:
    """Issue 16, H13, C3: effective_from and expires are 00:00 UTC of a day, so the node
    (deciding at 00:00 UTC of the day of issue) and the offline verifier (deciding at
    issued_at) never disagree; any other instant is APPROVAL_INVALID naming the field."""
    with pytest.raises(VerificationError) as err:
        open_approval(raw_envelope(approval(**fields)), AUTHORITIES)
    assert (err.value.code, err.value.field) == ("APPROVAL_INVALID", field)
    with pytest.raises(VerificationError) as err:
        sign_approval(approval(**fields), HUB)
    assert (err.value.code, err.value.field) == ("APPROVAL_INVALID", field)


def test_approval_covers_compares_id_and_version_as_a_pair() -> None:
    """Issue 16, H13, C3: scheme ids may hold "@", so ("heihe@2025", "1") and
    ("heihe", "2025@1") are different pairs although both read "heihe@2025@1"."""
    a = approval(source_scheme_id="heihe@2025", source_scheme_version="1")
    reason = approval_covers(a, mapping_sha256=SHA, source=("heihe", "2025@1"), target=DST, at=T0)
    assert reason is not None and "from another scheme version" in reason
    ok = approval_covers(a, mapping_sha256=SHA, source=("heihe@2025", "1"), target=DST, at=T0)
    assert ok is None


def test_approved_list_finds_every_entry_by_its_hash() -> None:
    """Issue 16, H13, C3: find answers from an index built once per list (bulk verification
    looks one up per attestation): every one of 256 entries by its hash, None otherwise."""
    entries = [approval(mapping_sha256=bytes([i]) + bytes(31)) for i in range(256)]
    listed = ApprovedMappings("hub", T0, tuple(entries))
    assert all(listed.find(bytes(a.mapping_sha256)) is a for a in entries)
    assert listed.find(b"\xff" * 32) is None
    assert len(listed._by_hash) == 256
