"""DSSE envelopes: PAE bytes, sign/verify, failure codes, flipped bytes."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import Envelope, EnvelopeSignature, VerificationError, pae, sign, verify_envelope

from .conftest import fixed_key

T = "application/vnd.huxin.attestation.v1+proto"


def test_pae_matches_dsse_spec() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_sign_verify_roundtrip_through_bytes() -> None:
    key = fixed_key("a")
    env = sign(T, b"payload", key)
    again = Envelope.from_bytes(env.to_bytes())
    assert again == env
    assert verify_envelope(again.to_bytes(), {key.key_id: key.public_key}, T) == b"payload"
    assert verify_envelope(env, {key.key_id: key.public_key}) == b"payload"


def test_sign_accepts_pynacl_key() -> None:
    raw = nacl.signing.SigningKey(b"\x05" * 32)
    env = sign(T, b"x", raw)
    pk = bytes(raw.verify_key)
    assert verify_envelope(env, {env.signatures[0].key_id: pk}) == b"x"


def _other_keys_env() -> Envelope:
    return sign(T, b"payload", fixed_key("other"))


FAILURES: list[tuple[str, Any, str]] = [
    ("wrong_type", lambda e, k: verify_envelope(e, k, "text/plain"), "WRONG_PAYLOAD_TYPE"),
    ("unknown_key", lambda e, k: verify_envelope(_other_keys_env(), k, T), "UNKNOWN_KEY"),
    (  # no signature by a known key, none at all included (docs/SPEC.md section 2)
        "no_signature",
        lambda e, k: verify_envelope(Envelope(T, e.payload, ()), k, T),
        "UNKNOWN_KEY",
    ),
    (
        "payload_changed",
        lambda e, k: verify_envelope(Envelope(T, b"payloaD", e.signatures), k, T),
        "BAD_SIGNATURE",
    ),
    (
        "type_changed_in_pae",
        lambda e, k: verify_envelope(Envelope(T + "x", e.payload, e.signatures), k),
        "BAD_SIGNATURE",
    ),
    (
        "key_id_mislabelled",
        lambda e, k: verify_envelope(
            Envelope(T, e.payload, (EnvelopeSignature("00" * 16, e.signatures[0].sig),)),
            {"00" * 16: next(iter(k.values()))},
            T,
        ),
        "BAD_SIGNATURE",
    ),
    ("garbage_bytes", lambda e, k: verify_envelope(b"\xff\xff\xff", k, T), "MALFORMED"),
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, k) for _, c, k in FAILURES], ids=[n for n, _, _ in FAILURES]
)
def test_envelope_failures(call: Any, code: str) -> None:
    key = fixed_key("a")
    env = sign(T, b"payload", key)
    with pytest.raises(VerificationError) as err:
        call(env, {key.key_id: key.public_key})
    assert err.value.code == code


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_flip_any_byte_of_serialised_envelope(data: st.DataObject) -> None:
    key = fixed_key("a")
    blob = sign(T, b"some attestation payload", key).to_bytes()
    i = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :]
    with pytest.raises(VerificationError) as err:
        verify_envelope(bad, {key.key_id: key.public_key}, T)
    assert err.value.code in {"MALFORMED", "WRONG_PAYLOAD_TYPE", "UNKNOWN_KEY", "BAD_SIGNATURE"}
