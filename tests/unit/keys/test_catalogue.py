"""Signed incentive catalogues: round trip, deterministic bytes, every tampering refused.

Issue 15 §2 (N17): the operator publishes the catalogue signed by its region's key;
a peer verifies it against the region's key set before believing a byte of it
(H12: what each scenario discloses; H14, N14: incentives only).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keys import (
    CATALOGUE_TYPE,
    Envelope,
    EnvelopeSignature,
    KeyPair,
    KeySet,
    VerificationError,
    open_catalogue,
    sign,
    sign_catalogue,
)
from keys.pb.v1 import catalogue_pb2

from .conftest import DAY, T0, fixed_key

ROOT, SIGNER, OTHER = fixed_key("heihe-root"), fixed_key("heihe-signing"), fixed_key("stranger")


def _key_set(region: str = "heihe", *, revoked_at: int = 0) -> KeySet:
    ks = KeySet.new(region, ROOT.public_key, T0 - DAY).add_key(
        SIGNER.public_key, T0 - DAY, T0 + 365 * DAY
    )
    return ks.revoke(SIGNER.key_id, revoked_at) if revoked_at else ks


def _catalogue(region: str = "heihe", scenarios: int = 2) -> catalogue_pb2.Catalogue:
    return catalogue_pb2.Catalogue(
        region=region,
        scheme_id="heihe",
        scheme_version="2025.1",
        version="2026.03",
        published_on="2026-03-01",
        incentive_tier="A",
        scenarios=[
            catalogue_pb2.CatalogueScenario(
                ref=f"heihe/s{i}",
                id=f"s{i}",
                title="住宿延迟退房",
                min_grade="A",
                qualifying_grades=["SSS", "A"],
                disclosure="threshold",
            )
            for i in range(scenarios)
        ],
    )


def test_signed_catalogue_round_trips_and_its_bytes_are_deterministic() -> None:
    """N17: the region's signing key signs; the peer gets back exactly what was signed;
    the same catalogue signed twice is the same envelope (no time in it)."""
    env = sign_catalogue(_catalogue(), SIGNER)
    assert env.payload_type == CATALOGUE_TYPE
    assert env.to_bytes() == sign_catalogue(_catalogue(), SIGNER).to_bytes()
    opened = open_catalogue(env.to_bytes(), _key_set(), T0)
    assert opened.key_id == SIGNER.key_id
    assert opened.catalogue == _catalogue()


def _resign(payload: bytes, key: KeyPair = SIGNER, kind: str = CATALOGUE_TYPE) -> Envelope:
    return sign(kind, payload, key)


def _flip_payload(env: Envelope) -> Envelope:
    payload = bytearray(env.payload)
    payload[-1] ^= 0x01
    return Envelope(env.payload_type, bytes(payload), env.signatures)


def _flip_signature(env: Envelope) -> Envelope:
    (s,) = env.signatures
    sig = EnvelopeSignature(s.key_id, bytes([s.sig[0] ^ 1]) + s.sig[1:])
    return Envelope(env.payload_type, env.payload, (sig,))


def _non_canonical(_: Envelope) -> Envelope:
    # the same message with a field written twice: protobuf would merge it; we refuse
    doubled = (
        _catalogue().SerializeToString()
        + catalogue_pb2.Catalogue(version="2026.03").SerializeToString()
    )
    return _resign(doubled)


def _unknown_field(_: Envelope) -> Envelope:
    return _resign(_catalogue().SerializeToString() + b"\xf8\x3e\x01")  # field 999 = 1


Tamper = Callable[[Envelope], Envelope]


@pytest.mark.parametrize(
    ("tamper", "key_set", "code"),
    [
        pytest.param(_flip_payload, _key_set(), "BAD_SIGNATURE", id="payload-byte-changed"),
        pytest.param(_flip_signature, _key_set(), "BAD_SIGNATURE", id="signature-changed"),
        pytest.param(lambda e: Envelope("application/vnd.huxin.keyset.v1+proto", e.payload,
                                        e.signatures),
                     _key_set(), "WRONG_PAYLOAD_TYPE", id="other-payload-type"),
        pytest.param(lambda e: _resign(e.payload, OTHER), _key_set(), "UNKNOWN_KEY",
                     id="signed-by-a-stranger"),
        pytest.param(lambda e: _resign(e.payload, ROOT), _key_set(), "UNKNOWN_KEY",
                     id="signed-by-the-root-key"),
        pytest.param(lambda e: e, _key_set(revoked_at=T0 - 60), "KEY_REVOKED",
                     id="signing-key-revoked"),
        pytest.param(lambda e: _resign(_catalogue(region="hainan").SerializeToString()),
                     _key_set(), "ISSUER_MISMATCH", id="names-another-region"),
        pytest.param(lambda e: _resign(_catalogue(scenarios=65).SerializeToString()),
                     _key_set(), "MALFORMED", id="too-many-scenarios"),
        pytest.param(lambda e: _resign(b"\x0a" + b"\xff" * 10), _key_set(), "MALFORMED",
                     id="not-a-catalogue"),
        pytest.param(_non_canonical, _key_set(), "MALFORMED", id="field-written-twice"),
        pytest.param(_unknown_field, _key_set(), "MALFORMED", id="unknown-field"),
        pytest.param(lambda e: _resign(b"\x00" * (512 * 1024 + 1)), _key_set(), "MALFORMED",
                     id="too-large"),
    ],
)  # fmt: skip
def test_tampered_catalogue_is_refused(tamper: Tamper, key_set: KeySet, code: str) -> None:
    """Issue 15 §2, N17: nothing of a catalogue is believed unless the region's current key
    signed exactly these canonical bytes, naming that region."""
    env = tamper(sign_catalogue(_catalogue(), SIGNER))
    with pytest.raises(VerificationError) as info:
        open_catalogue(env.to_bytes(), key_set, T0)
    assert info.value.code == code


def test_a_key_outside_its_validity_signs_no_catalogue() -> None:
    """N17: a catalogue is current material: the key must be valid at the verifier's now."""
    env = sign_catalogue(_catalogue(), SIGNER)
    with pytest.raises(VerificationError) as info:
        open_catalogue(env, _key_set(), T0 + 400 * DAY)
    assert info.value.code == "KEY_NOT_VALID"
