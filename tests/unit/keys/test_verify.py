"""The integrator's verifier: valid paths and the named attack table (issue 3).

REQ: H12 (third parties see grade and score only, with authorisation),
H16 (every use traceable), H17 (security).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import (
    REASON_CODES,
    Status,
    StatusList,
    Threshold,
    Trust,
    VerificationError,
    issue_attestation,
    issue_batch,
    load_trust,
    sign,
    sign_checkpoint,
    verify_attestation,
    verify_status_list,
)
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import AUD, DAY, SALT, SUBJECT, T0, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


def _status(world: World, trust: Trust) -> StatusList:
    env = world.status.sign(world.heihe_key, T0 - 600, T0 + DAY)
    return verify_status_list(env, trust, T0)


def test_single_envelope_verifies_with_everything(world: World, trust: Trust) -> None:
    att = world.attestation()
    blob = issue_attestation(att, world.heihe_key)
    v = verify_attestation(
        blob,
        trust,
        T0,
        AUD,
        nonce=b"nonce-123",
        subject_id=SUBJECT,
        binding_salt=SALT,
        status=_status(world, trust),
    )
    assert v.attestation == att
    assert v.key_id == world.heihe_key.key_id
    assert not v.batched
    assert v.status == "valid"
    assert not v.trust_stale
    assert v.attestation.score == 780
    assert v.attestation.mapped is not None and v.attestation.mapped.grade == "A"


def test_batch_member_verifies_on_its_own(world: World, trust: Trust) -> None:
    atts = [world.attestation(attestation_id=f"a{i}", nonce=b"") for i in range(37)]
    batch = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    for i in (0, 17, 36):
        v = verify_attestation(
            batch.bundle(i), trust, T0, AUD, subject_id=SUBJECT, binding_salt=SALT
        )
        assert v.batched and v.attestation.attestation_id == f"a{i}"
        assert v.checkpoint is not None and v.checkpoint.tree_size == 37


def test_old_key_still_verifies_old_attestation_after_rotation(world: World, trust: Trust) -> None:
    att = world.attestation(issued_at=T0 - 40 * DAY, expires_at=T0 + DAY)
    v = verify_attestation(issue_attestation(att, world.heihe_old), trust, T0, AUD)
    assert v.key_id == world.heihe_old.key_id


def test_nonce_and_subject_optional(world: World, trust: Trust) -> None:
    blob = issue_attestation(world.attestation(score=None, disclosure="grade"), world.heihe_key)
    v = verify_attestation(blob, trust, T0, AUD)
    assert v.status == "unchecked"
    assert v.attestation.score is None


def test_stale_trust_is_reported_when_allowed(world: World) -> None:
    stale = load_trust(world.trust_expired, world.hub_root.public_key, T0, allow_stale=True)
    stale = stale.with_scenarios(world.scenarios).with_approvals(world.approvals)
    assert stale.stale
    blob = issue_attestation(world.attestation(), world.heihe_key)
    assert verify_attestation(blob, stale, T0, AUD).trust_stale


# ------------------------------------------------------------------ attack table


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _batch_blob(world: World, index: int = 2, **kw: Any) -> bytes:
    atts = [world.attestation(attestation_id=f"b{i}", **kw) for i in range(5)]
    return issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundle(index)


def _rewrap(blob: bytes, edit: Callable[[pb.SignedAttestation], None]) -> bytes:
    m = pb.SignedAttestation()
    m.ParseFromString(blob)
    edit(m)
    return m.SerializeToString()


def _proof_for_other_tree(world: World) -> bytes:
    blob = _batch_blob(world)
    other = pb.SignedAttestation()
    other.ParseFromString(
        issue_batch(
            [world.attestation(attestation_id=f"c{i}") for i in range(5)],
            world.heihe_key,
            "heihe",
            T0 - 60,
        ).bundle(2)
    )
    return _rewrap(blob, lambda m: m.batched.checkpoint.CopyFrom(other.batched.checkpoint))


def _checkpoint_by_other_region(world: World) -> bytes:
    """Hainan signs a checkpoint over Heihe attestations (origin claims heihe)."""
    atts = [world.attestation(attestation_id=f"d{i}") for i in range(4)]
    good = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    forged = sign_checkpoint(world.hainan_key, "heihe", 4, good.root, T0 - 60)
    return _rewrap(good.bundle(1), lambda m: m.batched.checkpoint.CopyFrom(forged.to_proto()))


def _wrong_type(world: World) -> bytes:
    env = sign("application/json", world.attestation().to_bytes(), world.heihe_key)
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString()


def _typed_as_checkpoint(world: World) -> bytes:
    """An attestation signed as if it were a checkpoint (type confusion)."""
    env = sign(
        "application/vnd.huxin.checkpoint.v1+proto", world.attestation().to_bytes(), world.heihe_key
    )
    return pb.SignedAttestation(envelope=env.to_proto()).SerializeToString()


def _relabelled_type(world: World) -> bytes:
    blob = issue_attestation(world.attestation(), world.heihe_key)
    return _rewrap(
        blob, lambda m: setattr(m.envelope, "payload_type", m.envelope.payload_type + " ")
    )


def _shortened_proof(world: World) -> bytes:
    return _rewrap(_batch_blob(world), lambda m: m.batched.proof.hashes.pop())


def _proof_wrong_size(world: World) -> bytes:
    return _rewrap(_batch_blob(world), lambda m: setattr(m.batched.proof, "tree_size", 6))


def _moved_index(world: World) -> bytes:
    return _rewrap(_batch_blob(world), lambda m: setattr(m.batched.proof, "leaf_index", 3))


def _swapped_payload(world: World) -> bytes:
    other = world.attestation(grade="SSS").to_bytes()
    return _rewrap(_batch_blob(world), lambda m: setattr(m.batched, "payload", other))


def _other_region_signs_heihe(world: World) -> bytes:
    return issue_attestation(world.attestation(), world.hainan_key)


ATTACKS: list[tuple[str, Callable[[World], bytes], dict[str, Any], str]] = [
    ("garbage_blob", lambda w: b"\xff\x00garbage", {}, "MALFORMED"),
    ("empty_blob", lambda w: b"", {}, "MALFORMED"),
    ("wrong_payload_type", _wrong_type, {}, "WRONG_PAYLOAD_TYPE"),
    ("typed_as_checkpoint", _typed_as_checkpoint, {}, "WRONG_PAYLOAD_TYPE"),
    ("relabelled_payload_type", _relabelled_type, {}, "WRONG_PAYLOAD_TYPE"),
    ("unknown_key", lambda w: issue_attestation(w.attestation(), w.stranger), {}, "UNKNOWN_KEY"),
    (
        "root_key_signs_directly",
        lambda w: issue_attestation(w.attestation(), w.heihe_root),
        {},
        "UNKNOWN_KEY",
    ),
    (
        "key_outside_validity",
        lambda w: issue_attestation(w.attestation(), w.heihe_old),
        {},
        "KEY_NOT_VALID",
    ),
    (
        "key_before_not_before",
        lambda w: issue_attestation(
            w.attestation(issued_at=T0 - 35 * DAY, expires_at=T0 + DAY), w.heihe_key
        ),
        {},
        "KEY_NOT_VALID",
    ),
    (
        "key_revoked_before_issue",
        lambda w: issue_attestation(w.attestation(), w.heihe_revoked),
        {},
        "KEY_REVOKED",
    ),
    (
        "expired_attestation",
        lambda w: issue_attestation(
            w.attestation(issued_at=T0 - 9 * DAY, expires_at=T0 - 1), w.heihe_key
        ),
        {},
        "EXPIRED",
    ),
    (
        "future_dated",
        lambda w: issue_attestation(
            w.attestation(issued_at=T0 + 3600, expires_at=T0 + 2 * DAY), w.heihe_key
        ),
        {},
        "NOT_YET_VALID",
    ),
    (
        "wrong_audience",
        lambda w: issue_attestation(w.attestation(audience="other-bank"), w.heihe_key),
        {},
        "WRONG_AUDIENCE",
    ),
    (
        "replayed_nonce",
        lambda w: issue_attestation(w.attestation(nonce=b"old-nonce"), w.heihe_key),
        {"nonce": b"nonce-123"},
        "NONCE_MISMATCH",
    ),
    (
        "missing_nonce",
        lambda w: issue_attestation(w.attestation(nonce=b""), w.heihe_key),
        {"nonce": b"nonce-123"},
        "NONCE_MISSING",
    ),
    (
        "wrong_subject",
        lambda w: issue_attestation(w.attestation(), w.heihe_key),
        {"subject_id": "110101199003074477", "binding_salt": SALT},
        "SUBJECT_MISMATCH",
    ),
    (
        "wrong_salt",
        lambda w: issue_attestation(w.attestation(), w.heihe_key),
        {"subject_id": SUBJECT, "binding_salt": b"another-salt-0123456789abcdef"},
        "SUBJECT_MISMATCH",
    ),
    (
        "salt_without_subject",
        lambda w: issue_attestation(w.attestation(), w.heihe_key),
        {"binding_salt": SALT},
        "SUBJECT_MISMATCH",
    ),
    (
        "status_revoked",
        lambda w: issue_attestation(w.attestation(status_index=7), w.heihe_key),
        {"status": "LIST"},
        "STATUS_REVOKED",
    ),
    (
        "status_suspended",
        lambda w: issue_attestation(w.attestation(status_index=8), w.heihe_key),
        {"status": "LIST"},
        "STATUS_SUSPENDED",
    ),
    (
        "status_superseded",
        lambda w: issue_attestation(w.attestation(status_index=9), w.heihe_key),
        {"status": "LIST"},
        "STATUS_SUPERSEDED",
    ),
    (
        "status_index_out_of_range",
        lambda w: issue_attestation(w.attestation(status_index=1 << 20), w.heihe_key),
        {"status": "LIST"},
        "STATUS_UNAVAILABLE",
    ),
    (
        "status_other_list",
        lambda w: issue_attestation(w.attestation(status_list_id="x"), w.heihe_key),
        {"status": "LIST"},
        "STATUS_UNAVAILABLE",
    ),
    (
        "status_expired",
        lambda w: issue_attestation(w.attestation(), w.heihe_key),
        {"status": "EXPIRED_LIST"},
        "STATUS_UNAVAILABLE",
    ),
    (
        "scheme_not_listed",
        lambda w: issue_attestation(
            w.attestation(scheme_version="1999", threshold=Threshold("heihe", "1999", "A")),
            w.heihe_key,
        ),
        {},
        "SCHEME_NOT_TRUSTED",
    ),
    ("other_region_signs_as_heihe", _other_region_signs_heihe, {}, "ISSUER_MISMATCH"),
    ("checkpoint_by_other_region", _checkpoint_by_other_region, {}, "ISSUER_MISMATCH"),
    ("batch_proof_for_other_tree", _proof_for_other_tree, {}, "BAD_PROOF"),
    ("batch_shortened_proof", _shortened_proof, {}, "BAD_PROOF"),
    ("batch_proof_wrong_size", _proof_wrong_size, {}, "BAD_PROOF"),
    ("batch_moved_index", _moved_index, {}, "BAD_PROOF"),
    ("batch_swapped_payload", _swapped_payload, {}, "BAD_PROOF"),
    (
        "batch_missing_checkpoint",
        lambda w: _rewrap(_batch_blob(w), lambda m: m.batched.ClearField("checkpoint")),
        {},
        "MALFORMED",
    ),
    (
        "flipped_signature",
        lambda w: _rewrap(
            issue_attestation(w.attestation(), w.heihe_key),
            lambda m: setattr(
                m.envelope.signatures[0], "sig", _flip(m.envelope.signatures[0].sig, 10)
            ),
        ),
        {},
        "BAD_SIGNATURE",
    ),
]


@pytest.mark.parametrize(
    ("make", "kwargs", "code"),
    [(m, k, c) for _, m, k, c in ATTACKS],
    ids=[n for n, _, _, _ in ATTACKS],
)
def test_attack_table(
    world: World, trust: Trust, make: Callable[[World], bytes], kwargs: dict[str, Any], code: str
) -> None:
    assert code in REASON_CODES
    kw = dict(kwargs)
    if kw.get("status") == "LIST":
        kw["status"] = _status(world, trust)
    elif kw.get("status") == "EXPIRED_LIST":
        kw["status"] = replace_expiry(_status(world, trust))
    with pytest.raises(VerificationError) as err:
        verify_attestation(make(world), trust, T0, AUD, **kw)
    assert err.value.code == code
    assert SUBJECT not in str(err.value)


def replace_expiry(sl: StatusList) -> StatusList:
    sl.expires_at = T0
    return sl


TRUST_ATTACKS: list[tuple[str, Callable[[World], Any], str]] = [
    (
        "rollback",
        lambda w: load_trust(w.trust_v1, w.hub_root.public_key, T0, min_version=2),
        "TRUST_ROLLBACK",
    ),
    ("expired", lambda w: load_trust(w.trust_expired, w.hub_root.public_key, T0), "TRUST_EXPIRED"),
    (
        "wrong_hub_key",
        lambda w: load_trust(w.trust_v2, w.heihe_root.public_key, T0),
        "TRUST_INVALID",
    ),
    (
        "tampered_payload",
        lambda w: load_trust(
            replace(w.trust_v2, payload=_flip(w.trust_v2.payload, 20)), w.hub_root.public_key, T0
        ),
        "TRUST_INVALID",
    ),
    (
        "key_set_signed_by_wrong_root",
        lambda w: load_trust(
            __import__("keys")
            .TrustList(
                "hlj-hub",
                5,
                T0 - DAY,
                T0 + DAY,
                (
                    replace(
                        w.regions[1],
                        key_set=w.hainan_keys.sign(w.hainan_root),
                    ),
                ),
            )
            .sign(w.hub_root),
            w.hub_root.public_key,
            T0,
        ),
        "BAD_KEY_SET",
    ),
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, k) for _, c, k in TRUST_ATTACKS], ids=[n for n, _, _ in TRUST_ATTACKS]
)
def test_trust_list_attacks(world: World, call: Callable[[World], Any], code: str) -> None:
    with pytest.raises(VerificationError) as err:
        call(world)
    assert err.value.code == code


def test_status_list_signed_by_other_region_refused(world: World, trust: Trust) -> None:
    env = world.status.sign(world.hainan_key, T0 - 60, T0 + DAY)
    with pytest.raises(VerificationError) as err:
        verify_status_list(env, trust, T0)
    assert err.value.code == "ISSUER_MISMATCH"


def test_status_list_roundtrip_and_size(world: World, trust: Trust) -> None:
    sl = _status(world, trust)
    assert sl.size >= 131_072
    assert [sl.get(i) for i in (3, 7, 8, 9)] == [
        Status.VALID,
        Status.REVOKED,
        Status.SUSPENDED,
        Status.SUPERSEDED,
    ]
    env = world.status.sign(world.heihe_key, T0 - 60, T0 + DAY)
    assert len(env.payload) < 2000  # compressed


# ------------------------------------------------------------- flip any byte


@pytest.fixture(scope="module")
def blobs(world: World) -> dict[str, bytes]:
    return {
        "envelope": issue_attestation(world.attestation(), world.heihe_key),
        "batched": _batch_blob(world),
    }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_flip_any_byte_fails_closed(
    world: World, trust: Trust, blobs: dict[str, bytes], data: st.DataObject
) -> None:
    """Any single-bit change anywhere (payload, signature, proof, checkpoint) is refused."""
    kind = data.draw(st.sampled_from(sorted(blobs)))
    blob = blobs[kind]
    i = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = blob[:i] + bytes([blob[i] ^ (1 << bit)]) + blob[i + 1 :]
    with pytest.raises(VerificationError) as err:
        verify_attestation(
            bad, trust, T0, AUD, nonce=b"nonce-123", subject_id=SUBJECT, binding_salt=SALT
        )
    assert err.value.code in REASON_CODES, (kind, i, bit)


def _flip_field(blob: bytes, path: str, i: int) -> tuple[bytes, int]:
    """Flip byte ``i % len`` of the bytes field at ``path`` inside a SignedAttestation."""
    m = pb.SignedAttestation()
    m.ParseFromString(blob)
    *parents, leaf = path.split(".")
    obj: Any = m
    for part in parents:
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    if leaf.isdigit():
        value = bytes(obj[int(leaf)])
        j = i % len(value)
        obj[int(leaf)] = _flip(value, j)
    else:
        value = bytes(getattr(obj, leaf))
        j = i % len(value)
        setattr(obj, leaf, _flip(value, j))
    return m.SerializeToString(), j


FIELD_FLIPS = [
    ("envelope_payload", "envelope", "envelope.payload", "BAD_SIGNATURE"),
    ("envelope_signature", "envelope", "envelope.signatures.0.sig", "BAD_SIGNATURE"),
    ("batched_payload", "batched", "batched.payload", "BAD_PROOF"),
    ("proof_hash_first", "batched", "batched.proof.hashes.0", "BAD_PROOF"),
    ("proof_hash_last", "batched", "batched.proof.hashes.2", "BAD_PROOF"),
    ("checkpoint_payload", "batched", "batched.checkpoint.payload", "BAD_SIGNATURE"),
    ("checkpoint_signature", "batched", "batched.checkpoint.signatures.0.sig", "BAD_SIGNATURE"),
]


@pytest.mark.parametrize(
    ("kind", "path", "code"),
    [(k, p, c) for _, k, p, c in FIELD_FLIPS],
    ids=[n for n, _, _, _ in FIELD_FLIPS],
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(i=st.integers(0, 10_000))
def test_flip_any_byte_of_each_part_gives_exact_code(
    trust: Trust, blobs: dict[str, bytes], kind: str, path: str, code: str, i: int
) -> None:
    """Flipped byte in payload, signature, proof or checkpoint: exact reason code."""
    bad, j = _flip_field(blobs[kind], path, i)
    with pytest.raises(VerificationError) as err:
        verify_attestation(bad, trust, T0, AUD)
    assert err.value.code == code, (path, j)
