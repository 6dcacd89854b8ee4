"""The verifier's rules for integrators in other languages (issue 14 item 16).

REQ: H17 (security: fail closed).  Each rule is in docs/SPEC.md (sections 2,
5, 6, 8) and docs/adr/0112, and has a published vector (tools/gen_vectors.py):

* several signatures on one envelope: unknown keys are ignored, every
  signature by a known key must verify, whatever the order;
* signed payloads: valid UTF-8, no unknown field, no duplicated field, fields
  in order (the canonical encoding); unsigned containers: protobuf rules;
* a status list with bytes after its zlib stream is malformed; a status or
  trust list dated beyond the clock skew is not yet valid;
* a broken status list never decides: the attestation's verdict is
  ``STATUS_UNAVAILABLE`` (with the list's own code as a warning) unless
  another usable list decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keys import (
    ATTESTATION_TYPE,
    MAX_SIGNATURES,
    STATUSLIST_TYPE,
    Envelope,
    EnvelopeSignature,
    KeyPair,
    StatusList,
    Trust,
    TrustList,
    VerificationError,
    issue_batch,
    load_trust,
    pae,
    sign,
    verify_attestation,
    verify_envelope,
    verify_key_set,
    verify_status_list,
)
from keys._deflate import compress
from keys._strict import parse_container
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import AUD, DAY, T0, World

T = ATTESTATION_TYPE


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


def _code_of(call: Callable[[], object]) -> str:
    """The reason code ``call`` fails with, or VALID."""
    try:
        call()
    except VerificationError as exc:
        return exc.code
    return "VALID"


# ------------------------------------------------------------ several signatures


def _sig(key: KeyPair, payload: bytes, *, broken: bool = False) -> EnvelopeSignature:
    sig = key.sign(pae(T, payload))
    return EnvelopeSignature(key.key_id, bytes([sig[0] ^ 1]) + sig[1:] if broken else sig)


def _signed(payload: bytes, *sigs: EnvelopeSignature) -> bytes:
    env = Envelope(T, payload, tuple(sigs))
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString()


def _multi(w: World, order: str) -> bytes:
    """An attestation with several signatures: g = good by the current key, b = broken
    by the (certified) previous key, u = by a key no trust list names."""
    payload = w.attestation().to_bytes()
    parts = {
        "g": _sig(w.heihe_key, payload),
        "b": _sig(w.heihe_old, payload, broken=True),
        "u": _sig(w.stranger, payload),
    }
    return _signed(payload, *(parts[c] for c in order))


SIGNATURES = [
    ("bad-then-good", "bg", "BAD_SIGNATURE"),
    ("good-then-bad", "gb", "BAD_SIGNATURE"),
    ("unknown-then-good", "ug", "VALID"),
    ("good-then-unknown", "gu", "VALID"),
    ("good-twice", "gg", "VALID"),
    ("unknown-only", "u", "UNKNOWN_KEY"),
    ("none", "", "UNKNOWN_KEY"),
    ("too-many", "g" * (MAX_SIGNATURES + 1), "MALFORMED"),
]


@pytest.mark.parametrize(
    ("order", "expect"), [s[1:] for s in SIGNATURES], ids=[s[0] for s in SIGNATURES]
)
def test_several_signatures_on_an_attestation(
    world: World, trust: Trust, order: str, expect: str
) -> None:
    """issue 14 item 16 (docs/adr/0112): signatures by unknown keys are ignored; one
    failing signature by a known key refuses the envelope, before or after a good one."""
    assert _verdict(_multi(world, order), trust) == expect


@pytest.mark.parametrize(
    ("order", "expect"), [s[1:] for s in SIGNATURES], ids=[s[0] for s in SIGNATURES]
)
def test_several_signatures_on_any_envelope(world: World, order: str, expect: str) -> None:
    """issue 14 item 16: the same rule for every envelope (status and trust lists, key
    sets, consent tokens, checkpoints): keys._envelope.signer_of."""
    outer = pb.SignedAttestation.FromString(_multi(world, order))
    keys = {k.key_id: k.public_key for k in (world.heihe_key, world.heihe_old)}
    assert _code_of(lambda: verify_envelope(outer.envelope, keys, T)) == expect


def test_a_broken_co_signature_on_a_checkpoint_refuses_the_batch(
    world: World, trust: Trust
) -> None:
    """issue 14 item 16: a checkpoint co-signed by a known key whose signature fails is
    refused for every member (single and bulk paths alike)."""
    batch = issue_batch([world.attestation(attestation_id=f"c{i}") for i in range(3)],
                        world.heihe_key, "heihe", T0 - 60)  # fmt: skip
    m = pb.SignedAttestation.FromString(batch.bundle(1))
    cp = m.batched.checkpoint
    bad = world.heihe_old.sign(pae(cp.payload_type, cp.payload))
    cp.signatures.add(key_id=world.heihe_old.key_id, sig=bytes([bad[0] ^ 1]) + bad[1:])
    assert _verdict(m.SerializeToString(), trust) == "BAD_SIGNATURE"


# ---------------------------------------------------------------- encodings


def _signed_payload(w: World, payload: bytes) -> bytes:
    return pb.SignedAttestation(
        envelope=sign(T, payload, w.heihe_key).to_proto()
    ).SerializeToString()


def _invalid_utf8(w: World) -> bytes:
    payload = w.attestation().to_bytes()
    assert b"att-0001" in payload
    return _signed_payload(w, payload.replace(b"att-0001", b"att-\xff001"))


def _unknown_field(w: World) -> bytes:
    return _signed_payload(w, w.attestation().to_bytes() + b"\xf8\x07\x01")  # field 127 = 1


def _duplicated_field(w: World) -> bytes:
    """``grade`` twice: protobuf would silently take the second (``SSS``)."""
    return _signed_payload(w, w.attestation().to_bytes() + b"\x2a\x03SSS")


def _nested_unknown_field(w: World) -> bytes:
    m = pb.Attestation.FromString(w.attestation().to_bytes())
    status, mapped = m.status.SerializeToString(), m.mapped.SerializeToString()
    m.ClearField("status")
    m.ClearField("mapped")
    inner = status + b"\x18\x01"  # field 3 of StatusRef does not exist
    payload = (
        m.SerializeToString(deterministic=True)
        + b"\x8a\x01" + bytes([len(inner)]) + inner
        + b"\x92\x01" + bytes([len(mapped)]) + mapped
    )  # fmt: skip
    return _signed_payload(w, payload)


def _out_of_order(w: World) -> bytes:
    m = pb.Attestation.FromString(w.attestation().to_bytes())
    first = pb.Attestation(attestation_id=m.attestation_id).SerializeToString()
    m.ClearField("attestation_id")
    return _signed_payload(w, m.SerializeToString(deterministic=True) + first)


def _container_unknown_field(w: World) -> bytes:
    blob = _signed_payload(w, w.attestation().to_bytes())
    return blob + b"\xf8\x07\x01"  # unknown field in the unsigned SignedAttestation


def _container_bad_utf8(w: World) -> bytes:
    """``payload_type`` (a string of the unsigned Envelope) is not UTF-8."""
    env = pb.Envelope(payload=w.attestation().to_bytes(), payload_type="x")
    blob = pb.SignedAttestation(envelope=env).SerializeToString()
    assert blob.count(b"\x12\x01x") == 1
    return blob.replace(b"\x12\x01x", b"\x12\x01\xff")


def _checkpoint_duplicated_field(w: World) -> bytes:
    batch = issue_batch([w.attestation(attestation_id=f"d{i}") for i in range(2)],
                        w.heihe_key, "heihe", T0 - 60)  # fmt: skip
    m = pb.SignedAttestation.FromString(batch.bundle(0))
    payload = m.batched.checkpoint.payload + b"\x10\x02"  # tree_size again
    cp = sign("application/vnd.huxin.checkpoint.v1+proto", payload, w.heihe_key)
    m.batched.checkpoint.CopyFrom(cp.to_proto())
    return m.SerializeToString()


ENCODINGS: list[tuple[str, Callable[[World], bytes], str]] = [
    ("payload-invalid-utf8", _invalid_utf8, "MALFORMED"),
    ("payload-unknown-field", _unknown_field, "MALFORMED"),
    ("payload-duplicated-field", _duplicated_field, "MALFORMED"),
    ("payload-nested-unknown-field", _nested_unknown_field, "MALFORMED"),
    ("payload-fields-out-of-order", _out_of_order, "MALFORMED"),
    ("checkpoint-duplicated-field", _checkpoint_duplicated_field, "MALFORMED"),
    ("container-unknown-field-ignored", _container_unknown_field, "VALID"),
    ("container-invalid-utf8", _container_bad_utf8, "MALFORMED"),
]


def _verdict(blob: bytes, trust: Trust, **kw: Any) -> str:
    return _code_of(lambda: verify_attestation(blob, trust, T0, AUD, **kw))


@pytest.mark.parametrize(
    ("build", "expect"), [e[1:] for e in ENCODINGS], ids=[e[0] for e in ENCODINGS]
)
def test_signed_payloads_have_one_encoding(
    world: World, trust: Trust, build: Callable[[World], bytes], expect: str
) -> None:
    """issue 14 item 16: a signed payload with invalid UTF-8, an unknown, duplicated or
    misplaced field is MALFORMED (never an exception); the unsigned container follows
    protobuf rules, as the signature covers none of it."""
    assert _verdict(build(world), trust) == expect


def test_no_runtime_exception_escapes_a_parse() -> None:
    """issue 14 item 16: the pure-Python protobuf runtime raises UnicodeDecodeError (not
    DecodeError) for bad UTF-8; it is MALFORMED all the same."""

    class PurePythonLike:
        def ParseFromString(self, data: bytes) -> int:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "invalid start byte")

    with pytest.raises(VerificationError) as err:
        parse_container(
            PurePythonLike,  # type: ignore[type-var]
            b"\x12\x01\xff",
            "MALFORMED",
            "blob",
            "Envelope",
        )
    assert err.value.code == "MALFORMED"


# ----------------------------------------------------------- lists and time


def _status_payload(w: World, **changes: Any) -> Envelope:
    sl = StatusList("heihe", "heihe-2026-11")
    m = sl.to_proto(T0 - 60, T0 + DAY)
    for k, v in changes.items():
        setattr(m, k, v)
    return sign(STATUSLIST_TYPE, m.SerializeToString(deterministic=True), w.heihe_key)


LISTS: list[tuple[str, Callable[[World], Any], str]] = [
    ("zlib-trailing-bytes", lambda w: _status_payload(
        w, bits=compress(bytes(131072 // 4)) + b"\x00"), "MALFORMED"),
    ("zlib-truncated", lambda w: _status_payload(w, bits=compress(bytes(131072 // 4))[:-3]),
     "MALFORMED"),
    ("list-id-invalid-utf8", lambda w: sign(
        STATUSLIST_TYPE,
        _status_payload(w, list_id="heihe-2026-11").payload.replace(b"heihe-2026", b"heihe-\xff026"),
        w.heihe_key,
    ), "MALFORMED"),
    ("unknown-field", lambda w: sign(
        STATUSLIST_TYPE, _status_payload(w).payload + b"\xf8\x07\x01", w.heihe_key), "MALFORMED"),
    ("future-dated", lambda w: _status_payload(w, issued_at=T0 + 3600), "NOT_YET_VALID"),
    ("expired", lambda w: _status_payload(w, issued_at=T0 - 2 * DAY, expires_at=T0 - DAY),
     "EXPIRED"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "code"), [x[1:] for x in LISTS], ids=[x[0] for x in LISTS])
def test_a_broken_status_list_is_refused_and_never_decides(
    world: World, trust: Trust, build: Callable[[World], Any], code: str
) -> None:
    """issue 14 item 16: verify_status_list names the list's problem; for an attestation
    the list is skipped with that code as a warning, and with no other list the verdict
    is STATUS_UNAVAILABLE."""
    env = build(world)
    with pytest.raises(VerificationError) as err:
        verify_status_list(env, trust, T0)
    assert err.value.code == code
    blob = _signed_payload(world, world.attestation().to_bytes())
    with pytest.raises(VerificationError) as err:
        verify_attestation(blob, trust, T0, AUD, status=[env])
    assert err.value.code == "STATUS_UNAVAILABLE"
    assert [w.code for w in err.value.warnings] == [code]


TRUST: list[tuple[str, Callable[[World], Any], str]] = [
    ("future-dated", lambda w: TrustList("hlj-hub", 4, T0 + DAY, T0 + 30 * DAY, w.regions).sign(
        w.hub_root), "NOT_YET_VALID"),
    ("within-clock-skew", lambda w: TrustList("hlj-hub", 4, T0 + 200, T0 + 30 * DAY, w.regions).sign(
        w.hub_root), "VALID"),
    ("unknown-field", lambda w: sign(
        "application/vnd.huxin.trustlist.v1+proto",
        TrustList("hlj-hub", 4, T0, T0 + DAY, w.regions).to_proto().SerializeToString()
        + b"\xf8\x07\x01", w.hub_root), "TRUST_INVALID"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "code"), [x[1:] for x in TRUST], ids=[x[0] for x in TRUST])
def test_trust_list_time_and_encoding(
    world: World, build: Callable[[World], Any], code: str
) -> None:
    """issue 14 item 16: a trust list dated beyond the clock skew is NOT_YET_VALID; one
    with a field the schema does not define is TRUST_INVALID."""
    assert _code_of(lambda: load_trust(build(world), world.hub_root.public_key, T0)) == code


def test_key_set_with_a_duplicated_field_is_refused(world: World) -> None:
    """issue 14 item 16: a key set whose payload repeats a field is BAD_KEY_SET."""
    env = world.heihe_keys.sign(world.heihe_root)
    payload = env.payload + b"\x10\x63"  # version again (99)
    bad = sign("application/vnd.huxin.keyset.v1+proto", payload, world.heihe_root)
    with pytest.raises(VerificationError) as err:
        verify_key_set(bad, world.heihe_root.public_key, "heihe")
    assert err.value.code == "BAD_KEY_SET"
