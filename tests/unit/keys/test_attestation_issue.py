"""Single attestation issuance assembled from serialised fields (docs/adr/0313).

REQ: H12 — the signed bytes an integrator receives are exactly those the protobuf
messages give: ``issue_attestation`` equals ``SignedAttestation(envelope=sign(...))``
serialised, for any payload and key, and still verifies; ``KeyPair.sign`` equals
PyNaCl's ``SigningKey.sign`` (Ed25519 is deterministic).
"""

from __future__ import annotations

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import (
    ATTESTATION_TYPE,
    Attestation,
    KeyPair,
    MappedGrade,
    Threshold,
    VerificationError,
    issue_attestation,
    sign,
    verify_envelope,
)
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import fixed_key


def _reference(payload: bytes, key: KeyPair) -> bytes:
    """The construction used before the fast path (and by every other envelope)."""
    env = sign(ATTESTATION_TYPE, payload, key)
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString()


def _attestation(**over: object) -> Attestation:
    fields: dict[str, object] = {
        "attestation_id": "a" * 32,
        "issuer_region": "heihe",
        "scheme_id": "heihe",
        "scheme_version": "1.0.0",
        "grade": "A",
        "period": "2026-11",
        "model_version": "heihe@1.0.0",
        "issued_at": 1_800_000_000,
        "expires_at": 1_800_003_600,
        "subject_binding": b"\x01" * 32,
        "consent_id": "c" * 32,
        "consent_sha256": b"\x02" * 32,
        "audience": "hainan",
        "purpose": "heihe/credit-loans",
        "nonce": b"\x03" * 16,
        "status_list_id": "heihe/status",
        "status_index": 7,
        "mapped": MappedGrade("AA", "hainan", "1.0", "m", "1", b"\x04" * 32, "agreement"),
        "scenario": "heihe/credit-loans",
        "disclosure": "grade",
        "threshold": Threshold("heihe", "1.0.0", "A"),
    }
    fields.update(over)
    return Attestation(**fields)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.integers(16_370, 16_400).map(lambda n: b"\x07" * n),  # 2- to 3-byte lengths
    ),
    seed=st.binary(min_size=32, max_size=32),
)
def test_same_bytes_as_the_protobuf_construction(payload: bytes, seed: bytes) -> None:
    key = KeyPair(seed)
    blob = issue_attestation(payload, key)
    assert blob == _reference(payload, key)
    env = pb.SignedAttestation.FromString(blob).envelope
    assert verify_envelope(env, {key.key_id: key.public_key}, ATTESTATION_TYPE) == payload


@pytest.mark.parametrize(
    "att",
    [
        _attestation(),
        _attestation(score=612, mapped=None, disclosure="grade_and_score"),
        _attestation(score=0, status_index=None, nonce=b"", disclosure="grade_and_score"),
        _attestation(score=-5, issuer_region="x" * 200, disclosure="grade_and_score"),
        _attestation(grade="", mapped=None, disclosure="threshold"),
    ],
    ids=["mapped", "score", "zero-score-no-status", "negative-score-long-region", "threshold"],
)
def test_attestations_issue_the_reference_bytes(att: Attestation) -> None:
    key = fixed_key("issuer")
    assert issue_attestation(att, key) == _reference(att.to_bytes(), key)


def test_a_flipped_signature_byte_fails_verification() -> None:
    key = fixed_key("issuer")
    blob = bytearray(issue_attestation(_attestation(), key))
    blob[-1] ^= 1  # the last byte is the signature's
    env = pb.SignedAttestation.FromString(bytes(blob)).envelope
    with pytest.raises(VerificationError) as err:
        verify_envelope(env, {key.key_id: key.public_key}, ATTESTATION_TYPE)
    assert err.value.code == "BAD_SIGNATURE"


@settings(max_examples=40, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2000))
def test_keypair_sign_equals_pynacl(seed: bytes, message: bytes) -> None:
    assert KeyPair(seed).sign(message) == nacl.signing.SigningKey(seed).sign(message).signature
