"""Bulk verification (``verify_batch``) gives exactly what ``verify_attestation`` gives.

The fast path shares work (one checkpoint signature, one tree, bulk checks);
these tests tamper with single members of a group and assert every item's
result equals the single-item verdict, code for code.

REQ: H17 (security: a batch shortcut must not accept what a single check refuses).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import (
    Status,
    StatusList,
    Threshold,
    Trust,
    VerificationError,
    VerifiedAttestation,
    issue_attestation,
    issue_batch,
    load_trust,
    sign_checkpoint,
    verify_attestation,
    verify_batch,
    verify_status_list,
)
from keys.pb.v1 import attestation_pb2 as pb

from .conftest import AUD, DAY, T0, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trust(world: World) -> Trust:
    return load_trust(world.bundle_v2, world.hub_root.public_key, T0, min_version=2)


def _single(blob: bytes, trust: Trust, **kw: Any) -> object:
    trust._checkpoints.clear()
    try:
        return _summary(verify_attestation(blob, trust, T0, AUD, **kw))
    except VerificationError as exc:
        return (exc.code, exc.field)


def _summary(v: VerifiedAttestation | VerificationError) -> object:
    if isinstance(v, VerificationError):
        return (v.code, v.field)
    return (v.payload, v.key_id, v.checkpoint, v.status, v.trust_stale, v.batched, v.attestation)


def _assert_agrees(blobs: list[bytes], trust: Trust, **kw: Any) -> list[object]:
    trust._checkpoints.clear()
    bulk = [_summary(r) for r in verify_batch(blobs, trust, T0, AUD, **kw)]
    single = [_single(b, trust, **kw) for b in blobs]
    assert bulk == single
    return bulk


def _edit(blob: bytes, change: Callable[[pb.SignedAttestation], None]) -> bytes:
    m = pb.SignedAttestation()
    m.ParseFromString(blob)
    change(m)
    return m.SerializeToString(deterministic=True)


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _codes(results: list[object]) -> list[str]:
    return [r[0] if isinstance(r, tuple) and len(r) == 2 else "ok" for r in results]  # type: ignore[misc]


def _batch(world: World, n: int, tag: str = "m") -> list[bytes]:
    atts = [world.attestation(attestation_id=f"{tag}{i}", nonce=b"") for i in range(n)]
    return issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()


# ---------------------------------------------------- one tampered member of a whole tree


def _sig(m: pb.SignedAttestation) -> None:
    s = m.batched.checkpoint.signatures[0]
    s.sig = _flip(s.sig, 5)


def _proof_hash(m: pb.SignedAttestation) -> None:
    m.batched.proof.hashes[1] = _flip(m.batched.proof.hashes[1], 0)


def _last_proof_hash(m: pb.SignedAttestation) -> None:
    m.batched.proof.hashes[-1] = _flip(m.batched.proof.hashes[-1], 31)


def _extra_unknown_sig(m: pb.SignedAttestation) -> None:
    m.batched.checkpoint.signatures.add(key_id="00" * 16, sig=b"\x00" * 64)


def _explicit_zero_index(m: pb.SignedAttestation) -> None:
    m.batched.proof.leaf_index = 0


MEMBER_TAMPERING: list[tuple[str, Callable[[pb.SignedAttestation], None], str]] = [
    ("checkpoint_signature_of_one_copy", _sig, "BAD_SIGNATURE"),
    ("proof_hash_of_one_member", _proof_hash, "BAD_PROOF"),
    ("proof_for_other_size", lambda m: setattr(m.batched.proof, "tree_size", 9), "BAD_PROOF"),
    ("proof_shortened", lambda m: m.batched.proof.hashes.pop(), "BAD_PROOF"),
    (
        "payload_type_relabelled",
        lambda m: setattr(m.batched, "payload_type", "x"),
        "WRONG_PAYLOAD_TYPE",
    ),
    (
        "checkpoint_relabelled",
        lambda m: setattr(m.batched.checkpoint, "payload_type", "x"),
        "WRONG_PAYLOAD_TYPE",
    ),
    ("checkpoint_removed", lambda m: m.batched.ClearField("checkpoint"), "MALFORMED"),
    ("unknown_extra_signature_still_valid", _extra_unknown_sig, "ok"),
]


@pytest.mark.parametrize(
    ("change", "code"),
    [(c, k) for _, c, k in MEMBER_TAMPERING],
    ids=[n for n, _, _ in MEMBER_TAMPERING],
)
def test_one_tampered_member_of_a_whole_tree(
    world: World, trust: Trust, change: Callable[[pb.SignedAttestation], None], code: str
) -> None:
    """The other members keep the shared fast path; the tampered one gets its own code."""
    blobs = _batch(world, 8)
    blobs[3] = _edit(blobs[3], change)
    codes = _codes(_assert_agrees(blobs, trust))
    assert codes == ["ok"] * 3 + [code] + ["ok"] * 4


def test_index_zero_written_explicitly_is_still_valid(world: World, trust: Trust) -> None:
    """A non-canonical but valid encoding (leaf_index 0 on the wire) is accepted, as singly."""
    blobs = _batch(world, 4)
    m = pb.SignedAttestation()
    m.ParseFromString(blobs[0])
    # leaf_index = 0 explicitly: 0x08 0x00 at the start of the proof
    proof = b"\x08\x00" + m.batched.proof.SerializeToString(deterministic=True)
    payload = m.batched.payload
    raw = b"\x0a" + _varint(len(payload)) + payload + b"\x1a" + _varint(len(proof)) + proof
    tail = pb.BatchedAttestation(
        payload_type=m.batched.payload_type, checkpoint=m.batched.checkpoint
    ).SerializeToString(deterministic=True)
    inner = raw + tail
    blobs[0] = b"\x12" + _varint(len(inner)) + inner
    assert pb.SignedAttestation.FromString(blobs[0]).batched.proof == m.batched.proof
    assert _codes(_assert_agrees(blobs, trust)) == ["ok"] * 4


def test_members_in_any_order_and_mixed_groups(world: World, trust: Trust) -> None:
    a, b = _batch(world, 6, "a"), _batch(world, 5, "b")
    single = issue_attestation(world.attestation(), world.heihe_key)
    blobs = [*a, *b, single, b"", b"\x12\x01\x00"]
    random.Random(7).shuffle(blobs)
    codes = _codes(_assert_agrees(blobs, trust))
    assert codes.count("ok") == 12
    assert codes.count("MALFORMED") == 2


def test_checkpoint_failures_reach_every_member(world: World, trust: Trust) -> None:
    atts = [world.attestation(attestation_id=f"k{i}") for i in range(4)]
    good = issue_batch(atts, world.heihe_key, "heihe", T0 - 60)
    forged = sign_checkpoint(world.hainan_key, "heihe", 4, good.root, T0 - 60).to_proto()
    old = issue_batch(atts, world.heihe_old, "heihe", T0 - 60).bundles()
    blobs = [_edit(b, lambda m: m.batched.checkpoint.CopyFrom(forged)) for b in good.bundles()]
    assert _codes(_assert_agrees(blobs, trust)) == ["ISSUER_MISMATCH"] * 4
    assert _codes(_assert_agrees(old, trust)) == ["KEY_NOT_VALID"] * 4
    stranger = issue_batch(atts, world.stranger, "heihe", T0 - 60).bundles()
    assert _codes(_assert_agrees(stranger, trust)) == ["UNKNOWN_KEY"] * 4


def test_per_member_attestation_checks_and_status(world: World, trust: Trust) -> None:
    atts = [world.attestation(attestation_id=f"s{i}", status_index=i) for i in range(12)]
    atts[1] = world.attestation(attestation_id="s1", audience="other-bank")
    atts[2] = world.attestation(attestation_id="s2", expires_at=T0 - 1, issued_at=T0 - 2 * DAY)
    atts[3] = world.attestation(attestation_id="s3", issued_at=T0 + 3600, expires_at=T0 + DAY)
    atts[4] = world.attestation(
        attestation_id="s4", scheme_version="1999", threshold=Threshold("heihe", "1999", "A")
    )
    atts[5] = world.attestation(attestation_id="s5", issuer_region="hainan")
    blobs = issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()
    codes = _codes(_assert_agrees(blobs, trust))
    assert codes[:6] == [
        "ok",
        "WRONG_AUDIENCE",
        "EXPIRED",
        "NOT_YET_VALID",
        "SCHEME_NOT_TRUSTED",
        "ISSUER_MISMATCH",
    ]
    status = verify_status_list(world.status.sign(world.heihe_key, T0 - 60, T0 + DAY), trust, T0)
    assert isinstance(status, StatusList) and status.get(7) is Status.REVOKED
    codes = _codes(_assert_agrees(blobs, trust, status=status))
    assert codes[7:10] == ["STATUS_REVOKED", "STATUS_SUSPENDED", "STATUS_SUPERSEDED"]


# ------------------------------------------------------------------ property


@st.composite
def _tampered(draw: st.DrawFn, world: World) -> tuple[list[bytes], bool]:
    n = draw(st.integers(1, 12))
    audiences = draw(st.lists(st.sampled_from([AUD, AUD, AUD, "other"]), min_size=n, max_size=n))
    atts = [
        world.attestation(attestation_id=f"h{i}", audience=a, status_index=i)
        for i, a in enumerate(audiences)
    ]
    blobs = issue_batch(atts, world.heihe_key, "heihe", T0 - 60).bundles()
    other = _batch(world, 3, "o")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "drop", "dup", "foreign", "swap"]))
        i = draw(st.integers(0, len(blobs) - 1))
        if op == "flip":
            j = draw(st.integers(0, len(blobs[i]) - 1))
            blobs[i] = (
                blobs[i][:j]
                + bytes([blobs[i][j] ^ (1 << draw(st.integers(0, 7)))])
                + blobs[i][j + 1 :]
            )
        elif op == "drop" and len(blobs) > 1:
            del blobs[i]
        elif op == "dup":
            blobs.append(blobs[i])
        elif op == "foreign":
            blobs[i] = other[draw(st.integers(0, 2))]
        else:
            j = draw(st.integers(0, len(blobs) - 1))
            blobs[i], blobs[j] = blobs[j], blobs[i]
    return blobs, draw(st.booleans())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_bulk_and_single_verdicts_agree(world: World, trust: Trust, data: st.DataObject) -> None:
    """Random batches, random tampering (bit flips, drops, duplicates, foreign members,
    reordering), with and without status lists: identical verdicts item by item."""
    blobs, with_status = data.draw(_tampered(world))
    kw: dict[str, Any] = {}
    if with_status:
        env = world.status.sign(world.heihe_key, T0 - 60, T0 + DAY)
        kw["status"] = verify_status_list(env, trust, T0)
    _assert_agrees(blobs, trust, **kw)


# ------------------------------------------------ whole batch in leaf order (fastest path)

SIZES = [1, 2, 3, 5, 16, 17, 31, 33, 64, 100]


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
def test_whole_batch_in_order_is_recognised_and_agrees(world: World, trust: Trust, n: int) -> None:
    """In-order canonical bundles are authenticated by rebuilding them from the tree
    (the fast path really runs); its verdicts equal the single-item ones."""
    from keys._bundle import split_bundle, whole_batch_payloads

    batch = issue_batch(
        [world.attestation(attestation_id=f"o{i}", nonce=b"") for i in range(n)],
        world.heihe_key,
        "heihe",
        T0 - 60,
    )
    blobs = batch.bundles()
    first = split_bundle(blobs[0], 0)
    assert first is not None
    assert whole_batch_payloads(blobs, first[3], batch.root) == list(batch.payloads)
    assert _codes(_assert_agrees(blobs, trust)) == ["ok"] * n
    # any change to any blob, or another order, leaves the fast path (and is still judged right)
    if n > 1:
        assert whole_batch_payloads(blobs[::-1], first[3], batch.root) is None
        assert _codes(_assert_agrees(blobs[::-1], trust)) == ["ok"] * n
    last = _edit(blobs[-1], _last_proof_hash) if n > 1 else _edit(blobs[-1], _sig)
    tampered = [*blobs[:-1], last]
    assert whole_batch_payloads(tampered, first[3], batch.root) is None
    assert _codes(_assert_agrees(tampered, trust))[-1] in {"BAD_PROOF", "BAD_SIGNATURE"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(2, 40), data=st.data())
def test_whole_batch_one_flipped_bit_anywhere(
    world: World, trust: Trust, n: int, data: st.DataObject
) -> None:
    """A single bit flipped anywhere in a whole in-order batch: verdicts still agree."""
    blobs = issue_batch(
        [world.attestation(attestation_id=f"q{i}", nonce=b"") for i in range(n)],
        world.heihe_key,
        "heihe",
        T0 - 60,
    ).bundles()
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, len(blobs[i]) - 1))
    blobs[i] = (
        blobs[i][:j]
        + bytes([blobs[i][j] ^ (1 << data.draw(st.integers(0, 7)))])
        + blobs[i][j + 1 :]
    )
    codes = _codes(_assert_agrees(blobs, trust))
    assert codes[i] != "ok" or codes.count("ok") == n


def test_verify_batch_payloads_other_payload_type(world: World, trust: Trust) -> None:
    """Leaves are PAE(payload_type, payload): the same bytes under another type do not verify."""
    from keys import verify_batch_payloads

    items = [b"entry-%d" % i for i in range(7)]
    batch = issue_batch(items, world.heihe_key, "heihe", T0 - 60, payload_type="application/x-log")
    cp = verify_batch_payloads(items, batch.checkpoint, trust, T0, "application/x-log")
    assert cp.root_hash == batch.root
    with pytest.raises(VerificationError) as err:
        verify_batch_payloads(items, batch.checkpoint, trust, T0)
    assert err.value.code == "BAD_PROOF"
