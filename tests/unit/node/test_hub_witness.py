"""Witnessing: consistent log checkpoints are co-signed; a split view is evidence (H16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys import CHECKPOINT_TYPE, MerkleTree, VerificationError, sign_checkpoint, verify_envelope
from keys.pb.v1 import attestation_pb2
from node.core._errors import NodeError
from node.pb.v1 import hub_pb2
from tests.support.hub_world import (  # noqa: F401 (close_databases: an autouse fixture)
    NOW,
    World,
    close_databases,
    make_world,
)


def _lc(w: World, tree: MerkleTree, first: int, origin: str = "heihe/log") -> hub_pb2.LogCheckpoint:
    env = sign_checkpoint(w.region.signing, origin, tree.size, tree.root(), NOW, kind="log")
    lc = hub_pb2.LogCheckpoint()
    lc.checkpoint.CopyFrom(env.to_proto())
    lc.proof.first_size, lc.proof.second_size = first, tree.size
    lc.proof.hashes.extend(tree.consistency_proof(first) if first else [])
    return lc


async def test_consistent_checkpoints_cosigned(tmp_path: Path) -> None:
    """REQ: H16 — the hub checks consistency between checkpoints and co-signs them."""
    w = await make_world(tmp_path)
    tree = MerkleTree([b"e%d" % i for i in range(5)])
    first = await w.hub.witness("heihe", _lc(w, tree, 0), NOW)
    env = attestation_pb2.Envelope.FromString(first)
    assert {s.key_id for s in env.signatures} == {w.region.signing.key_id, w.hub_signing.key_id}
    verify_envelope(first, {w.hub_signing.key_id: w.hub_signing.public_key}, CHECKPOINT_TYPE)
    for i in range(5, 12):
        tree.append(b"e%d" % i)
    await w.hub.witness("heihe", _lc(w, tree, 5), NOW + 1)
    cur = await w.hub.cursor("heihe")
    assert (cur.witnessed_log_size, cur.witnessed_log_root) == (12, tree.root())


def _fork(w: World, tree: MerkleTree) -> hub_pb2.LogCheckpoint:
    other = MerkleTree([b"e0", b"e1", b"FORGED", *(b"e%d" % i for i in range(3, 8))])
    return _lc(w, other, 5)


def _same_size_other_root(w: World, tree: MerkleTree) -> hub_pb2.LogCheckpoint:
    return _lc(w, MerkleTree([b"x%d" % i for i in range(5)]), 5)


def _shrunk(w: World, tree: MerkleTree) -> hub_pb2.LogCheckpoint:
    return _lc(w, MerkleTree([b"e%d" % i for i in range(3)]), 0)


@pytest.mark.parametrize(
    ("present", "reason"),
    [(_fork, "SPLIT_VIEW"), (_same_size_other_root, "SPLIT_VIEW"), (_shrunk, "LOG_ROLLBACK")],
    ids=["forked-history", "same-size-other-root", "rollback"],
)
async def test_split_view_recorded_and_raised(tmp_path: Path, present: object, reason: str) -> None:
    """An inconsistent checkpoint is stored as evidence, counted, and refused."""
    w = await make_world(tmp_path)
    tree = MerkleTree([b"e%d" % i for i in range(5)])
    await w.hub.witness("heihe", _lc(w, tree, 0), NOW)
    with pytest.raises(NodeError) as err:
        await w.hub.witness("heihe", present(w, tree), NOW + 1)  # type: ignore[operator]
    assert err.value.code == "LOG_INCONSISTENT"
    row = await w.db.fetchone("SELECT reason, previous IS NOT NULL FROM hub_witness_evidence")
    assert tuple(row) == (reason, 1)
    assert w.hub.metrics.split_views.labels("heihe", reason)._value.get() == 1
    cur = await w.hub.cursor("heihe")
    assert (cur.witnessed_log_size, cur.witnessed_log_root) == (5, tree.root())  # unchanged


@pytest.mark.parametrize(
    ("origin", "code"),
    [("hainan/log", "LOG_CHECKPOINT_INVALID"), ("heihe", "LOG_CHECKPOINT_INVALID")],
    ids=["other-origin", "batch-origin"],
)
async def test_foreign_checkpoint_refused(tmp_path: Path, origin: str, code: str) -> None:
    w = await make_world(tmp_path)
    with pytest.raises(NodeError) as err:
        await w.hub.witness("heihe", _lc(w, MerkleTree([b"a"]), 0, origin), NOW)
    assert err.value.code == code
    assert (await w.db.fetchone("SELECT count(*) FROM hub_witness_evidence"))[0] == 0


async def _revoke_region_key(w: World, at: int) -> None:
    """Re-register heihe with its signing key revoked at ``at`` (a newer key set)."""
    from keys import KeySet, verify_key_set
    from node.hub._registry import register_region

    ks: KeySet = verify_key_set(w.region.key_set, w.region.root.public_key, "heihe")
    revoked = ks.revoke(w.region.signing.key_id, at, "compromised").sign(w.region.root, NOW)
    await w.db.write_unit(
        lambda c: register_region(
            c, region="heihe", root_public_key=w.region.root.public_key,
            key_set=revoked.to_bytes(), now=NOW, schemes=("heihe@2024.1",),
        )
    )  # fmt: skip
    await w.hub.reload()


def _lc_at(w: World, tree: MerkleTree, ts: int) -> hub_pb2.LogCheckpoint:
    env = sign_checkpoint(w.region.signing, "heihe/log", tree.size, tree.root(), ts, kind="log")
    lc = hub_pb2.LogCheckpoint()
    lc.checkpoint.CopyFrom(env.to_proto())
    lc.proof.second_size = tree.size
    return lc


@pytest.mark.parametrize(
    ("revoked_at", "signed_at", "code"),
    [
        (NOW - 500, NOW, "KEY_REVOKED"),
        (None, NOW + 400 * 86_400, "KEY_NOT_VALID"),
        (None, NOW + 3600, "NOT_YET_VALID"),
        (None, NOW - 30 * 86_400, "KEY_NOT_VALID"),
    ],
    ids=[
        "revoked-before-checkpoint",
        "after-key-expiry",
        "future-beyond-skew",
        "before-not-before",
    ],
)
async def test_checkpoint_with_unusable_key_or_time_not_cosigned(
    tmp_path: Path, revoked_at: int | None, signed_at: int, code: str
) -> None:
    """REQ: H16, N23 — the hub refuses to co-sign a checkpoint whose key was revoked or
    outside its validity at the checkpoint time, or that is dated in the future beyond
    the skew (same checks as batch authentication); the witnessed state is unchanged."""
    w = await make_world(tmp_path)
    if revoked_at is not None:
        await _revoke_region_key(w, revoked_at)
    with pytest.raises(VerificationError) as err:
        await w.hub.witness("heihe", _lc_at(w, MerkleTree([b"a", b"b"]), signed_at), NOW)
    assert err.value.code == code
    cur = await w.hub.cursor("heihe")
    assert cur.witnessed_log_size == 0
    assert (await w.db.fetchone("SELECT count(*) FROM hub_witness_evidence"))[0] == 0


async def test_checkpoint_signed_before_revocation_still_cosigned(tmp_path: Path) -> None:
    """A checkpoint signed before its key's revocation, within the skew, is co-signed."""
    w = await make_world(tmp_path)
    await _revoke_region_key(w, NOW + 100)
    cosigned = await w.hub.witness("heihe", _lc_at(w, MerkleTree([b"a"]), NOW + 50), NOW)
    assert len(attestation_pb2.Envelope.FromString(cosigned).signatures) == 2
