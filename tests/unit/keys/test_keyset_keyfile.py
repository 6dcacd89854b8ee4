"""Key sets (rotation, revocation, weak keys), key files, batch verification."""

from __future__ import annotations

import pytest

from keys import (
    KeyRefusedError,
    KeysError,
    KeySet,
    Threshold,
    Trust,
    VerificationError,
    decode_private_key,
    encode_private_key,
    is_encrypted_key,
    issue_batch,
    load_trust,
    verify_batch,
    verify_key_set,
)

from .conftest import AUD, DAY, T0, World, fixed_key

SMALL_ORDER = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")


def test_rotation_keeps_old_keys_and_bumps_version() -> None:
    root, k1, k2 = fixed_key("r"), fixed_key("k1"), fixed_key("k2")
    ks = KeySet.new("heihe", root.public_key, T0)
    ks1 = ks.add_key(k1.public_key, T0, T0 + 30 * DAY)
    ks2 = ks1.add_key(k2.public_key, T0 + 29 * DAY, T0 + 60 * DAY)
    assert (ks1.version, ks2.version) == (1, 2)
    assert [k.key_id for k in ks2.keys] == [k1.key_id, k2.key_id]
    assert ks2.current(T0 + DAY) == ks2.find(k1.key_id)
    assert ks2.current(T0 + 29 * DAY + 1) == ks2.find(k2.key_id)
    assert ks2.current(T0 + 61 * DAY) is None
    again = verify_key_set(ks2.sign(root), root.public_key, "heihe")
    assert again == ks2


def test_revocation_time_semantics() -> None:
    root, k1 = fixed_key("r"), fixed_key("k1")
    ks = KeySet.new("heihe", root.public_key, T0).add_key(k1.public_key, T0, T0 + 30 * DAY)
    ks = ks.revoke(k1.key_id, T0 + 10 * DAY, "lost laptop")
    info = ks.find(k1.key_id)
    assert info is not None
    assert info.problem_at(T0 + 10 * DAY - 1) is None
    assert info.problem_at(T0 + 10 * DAY) == "KEY_REVOKED"
    assert info.problem_at(T0 - 1) == "KEY_NOT_VALID"
    assert ks.revoke(k1.key_id, T0 + 20 * DAY) is ks  # a later revocation never extends


REGISTRATION_ERRORS = [
    ("weak_signing_key", lambda ks: ks.add_key(SMALL_ORDER, T0, T0 + DAY), "WEAK_KEY"),
    ("short_key", lambda ks: ks.add_key(b"\x01" * 31, T0, T0 + DAY), "INVALID_KEY"),
    (
        "inverted_validity",
        lambda ks: ks.add_key(fixed_key("z").public_key, T0, T0),
        "INVALID_VALIDITY",
    ),
    ("duplicate", lambda ks: ks.add_key(fixed_key("k1").public_key, T0, T0 + DAY), "DUPLICATE_KEY"),
    (
        "root_as_signing_key",
        lambda ks: ks.add_key(fixed_key("r").public_key, T0, T0 + DAY),
        "DUPLICATE_KEY",
    ),
    ("revoke_unknown", lambda ks: ks.revoke("00" * 16, T0), "UNKNOWN_KEY"),
    ("weak_root", lambda ks: KeySet.new("x", SMALL_ORDER, T0), "WEAK_KEY"),
    ("sign_with_wrong_root", lambda ks: ks.sign(fixed_key("k1")), "INVALID_KEY"),
]


@pytest.mark.parametrize(
    ("call", "code"),
    [(c, k) for _, c, k in REGISTRATION_ERRORS],
    ids=[n for n, _, _ in REGISTRATION_ERRORS],
)
def test_registration_errors(call: object, code: str) -> None:
    ks = KeySet.new("heihe", fixed_key("r").public_key, T0).add_key(
        fixed_key("k1").public_key, T0, T0 + DAY
    )
    with pytest.raises(KeysError) as err:
        call(ks)  # type: ignore[operator]
    assert err.value.code == code


def test_key_set_verification_failures() -> None:
    root = fixed_key("r")
    env = KeySet.new("heihe", root.public_key, T0).sign(root)
    for call in (
        lambda: verify_key_set(env, fixed_key("other").public_key),
        lambda: verify_key_set(env, root.public_key, "hainan"),
        lambda: verify_key_set(b"\x00\x01junk", root.public_key),
    ):
        with pytest.raises(VerificationError) as err:
            call()
        assert err.value.code == "BAD_KEY_SET"


def test_key_file_plain_and_encrypted() -> None:
    key = fixed_key("root")
    plain = encode_private_key(key)
    assert not is_encrypted_key(plain)
    assert decode_private_key(plain) == key
    enc = encode_private_key(key, b"correct horse")
    assert is_encrypted_key(enc)
    assert key.seed.hex().encode() not in enc
    assert decode_private_key(enc, b"correct horse").seed == key.seed


KEYFILE_ERRORS = [
    ("wrong_passphrase", lambda e, p: decode_private_key(e, b"wrong"), "BAD_PASSPHRASE"),
    ("missing_passphrase", lambda e, p: decode_private_key(e), "BAD_PASSPHRASE"),
    ("not_json", lambda e, p: decode_private_key(b"\x00garbage"), "INVALID_KEY"),
    ("wrong_kind", lambda e, p: decode_private_key(b'{"kind": "x"}'), "INVALID_KEY"),
    (
        "public_key_mismatch",
        lambda e, p: decode_private_key(p.replace(b'"public_key": "', b'"public_key": "00')),
        "INVALID_KEY",
    ),
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, k) for _, c, k in KEYFILE_ERRORS], ids=[n for n, _, _ in KEYFILE_ERRORS]
)
def test_key_file_errors(call: object, code: str) -> None:
    key = fixed_key("root")
    enc, plain = encode_private_key(key, b"pw"), encode_private_key(key)
    with pytest.raises(KeyRefusedError) as err:
        call(enc, plain)  # type: ignore[operator]
    assert err.value.code == code
    assert key.seed.hex() not in str(err.value)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0)


def test_verify_batch_whole_partial_and_tampered(world: World, trust: Trust) -> None:
    atts = [world.attestation(attestation_id=f"w{i}") for i in range(11)]
    batch = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    blobs = [batch.bundle(i) for i in range(11)]
    results = verify_batch(blobs, trust, T0, AUD)
    assert [r.attestation.attestation_id for r in results] == [f"w{i}" for i in range(11)]  # type: ignore[union-attr]
    partial = verify_batch(blobs[3:7], trust, T0, AUD)
    assert all(not isinstance(r, Exception) for r in partial)
    # a member with a swapped payload: the whole-tree shortcut fails, per-item finds it
    other = issue_batch(
        [world.attestation(attestation_id="evil")], world.heihe_key, "heihe", T0 - 60
    )
    from keys.pb.v1 import attestation_pb2 as pb

    m = pb.SignedAttestation()
    m.ParseFromString(blobs[4])
    evil = pb.SignedAttestation()
    evil.ParseFromString(other.bundle(0))
    m.batched.payload = evil.batched.payload
    mixed = [*blobs[:4], m.SerializeToString(), *blobs[5:], b"junk", blobs[0]]
    res = verify_batch(mixed, trust, T0, AUD, status=None)
    codes = [r.code if isinstance(r, VerificationError) else "ok" for r in res]
    assert codes == ["ok"] * 4 + ["BAD_PROOF"] + ["ok"] * 6 + ["MALFORMED", "ok"]
    wrong_aud = verify_batch(blobs[:2], trust, T0, "someone-else")
    assert [r.code for r in wrong_aud] == ["WRONG_AUDIENCE"] * 2  # type: ignore[union-attr]


def test_verify_batch_fast_path_falls_back_with_exact_codes(world: World, trust: Trust) -> None:
    from keys import verify_status_list

    atts = [world.attestation(attestation_id=f"s{i}", status_index=i) for i in range(10)]
    atts[2] = world.attestation(attestation_id="s2", expires_at=T0 - 1, issued_at=T0 - 2 * DAY)
    atts[4] = world.attestation(
        attestation_id="s4", scheme_version="1999", threshold=Threshold("heihe", "1999", "A")
    )
    atts[5] = world.attestation(attestation_id="s5", issuer_region="hainan")
    batch = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    status = verify_status_list(world.status.sign(world.heihe_key, T0 - 60, T0 + DAY), trust, T0)
    res = verify_batch([batch.bundle(i) for i in range(10)], trust, T0, AUD, status=status)
    codes = [r.code if isinstance(r, VerificationError) else r.status for r in res]
    assert codes == [
        "valid",
        "valid",
        "EXPIRED",
        "valid",
        "SCHEME_NOT_TRUSTED",
        "ISSUER_MISMATCH",
        "valid",
        "STATUS_REVOKED",
        "STATUS_SUSPENDED",
        "STATUS_SUPERSEDED",
    ]
    # the same verdicts as verify_attestation item by item
    from keys import verify_attestation

    for i in range(len(res)):
        try:
            single = verify_attestation(batch.bundle(i), trust, T0, AUD, status=status).status
        except VerificationError as err:
            single = err.code
        assert single == codes[i]


def test_verify_batch_checkpoint_from_future_uses_slow_path(world: World, trust: Trust) -> None:
    atts = [world.attestation(attestation_id=f"f{i}") for i in range(3)]
    batch = issue_batch(atts, world.heihe_key, "heihe", T0 + DAY)
    res = verify_batch([batch.bundle(i) for i in range(3)], trust, T0, AUD)
    assert [r.code for r in res] == ["NOT_YET_VALID"] * 3  # type: ignore[union-attr]


def test_root_of_leaf_hashes_matches_tree() -> None:
    from keys import MerkleTree, leaf_hash, root_of_leaf_hashes

    for n in range(0, 70):
        data = [bytes([i]) for i in range(n)]
        assert root_of_leaf_hashes([leaf_hash(d) for d in data]) == MerkleTree(data).root()


def test_verify_batch_payloads(world: World, trust: Trust) -> None:
    from keys import sign_checkpoint, verify_batch_payloads

    atts = [world.attestation(attestation_id=f"p{i}").to_bytes() for i in range(9)]
    batch = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    cp = verify_batch_payloads(batch.payloads, batch.checkpoint.to_bytes(), trust, T0)
    assert (cp.origin, cp.tree_size, cp.root_hash) == ("heihe", 9, batch.root)
    forged = sign_checkpoint(world.hainan_key, "heihe", 9, batch.root, T0 - 60)
    cases = [
        (lambda: verify_batch_payloads(atts[:8], batch.checkpoint, trust, T0), "BAD_PROOF"),
        (
            lambda: verify_batch_payloads([*atts[:8], b"x"], batch.checkpoint, trust, T0),
            "BAD_PROOF",
        ),
        (lambda: verify_batch_payloads(atts[::-1], batch.checkpoint, trust, T0), "BAD_PROOF"),
        (lambda: verify_batch_payloads(atts, forged, trust, T0), "ISSUER_MISMATCH"),
        (lambda: verify_batch_payloads(atts, batch.checkpoint, trust, T0 - DAY), "NOT_YET_VALID"),
        (
            lambda: verify_batch_payloads(
                atts, issue_batch(atts, world.heihe_old, "heihe", T0).checkpoint, trust, T0
            ),
            "KEY_NOT_VALID",
        ),
    ]
    for call, code in cases:
        with pytest.raises(VerificationError) as err:
            call()
        assert err.value.code == code


def test_key_claimed_by_two_regions_is_refused(world: World) -> None:
    """A region cannot list another region's signing key to hijack or block it."""
    from dataclasses import replace as dc_replace

    from keys import TrustList

    thief = KeySet.new("hainan", world.hainan_root.public_key, T0 - DAY).add_key(
        world.heihe_key.public_key, T0 - DAY, T0 + DAY
    )
    regions = (
        dc_replace(world.regions[0], key_set=thief.sign(world.hainan_root)),
        world.regions[1],
    )
    env = TrustList("hlj-hub", 9, T0 - DAY, T0 + DAY, regions).sign(world.hub_root)
    with pytest.raises(VerificationError) as err:
        load_trust(env, world.hub_root.public_key, T0)
    assert err.value.code == "BAD_KEY_SET"
