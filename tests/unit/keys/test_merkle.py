"""Merkle trees: RFC 6962/9162 vectors, incremental tree, proof properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import (
    EMPTY_ROOT,
    KeysError,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

from .conftest import load_external

DATA: dict[str, Any] = load_external("rfc6962_merkle.json")
LEAVES = [bytes.fromhex(h) for h in DATA["leaf_data_hex"]]
ROOTS = [bytes.fromhex(h) for h in DATA["roots_by_size"]]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_rfc6962_roots(size: int) -> None:
    assert merkle_root(LEAVES[:size]) == ROOTS[size]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle_root([]) == EMPTY_ROOT == ROOTS[0]


@pytest.mark.parametrize("case", DATA["inclusion"], ids=lambda c: f"{c['index']}of{c['size']}")
def test_rfc6962_inclusion(case: dict[str, Any]) -> None:
    proof = inclusion_proof(LEAVES[: case["size"]], case["index"])
    assert [p.hex() for p in proof] == case["proof"]
    root = ROOTS[case["size"]]
    assert verify_inclusion(LEAVES[case["index"]], case["index"], case["size"], proof, root)
    assert not verify_inclusion(
        LEAVES[case["index"]] + b"x", case["index"], case["size"], proof, root
    )


@pytest.mark.parametrize("case", DATA["consistency"], ids=lambda c: f"{c['first']}to{c['second']}")
def test_rfc6962_consistency(case: dict[str, Any]) -> None:
    first, second = case["first"], case["second"]
    proof = consistency_proof(LEAVES[:second], first)
    assert [p.hex() for p in proof] == case["proof"]
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)
    if first not in (0, second):
        assert not verify_consistency(first, second, ROOTS[second], ROOTS[second], proof)


def test_incremental_tree_matches_batch_for_every_prefix() -> None:
    leaves = [bytes([i]) * (i % 5) for i in range(40)]
    tree = MerkleTree()
    for n, data in enumerate(leaves, start=1):
        assert tree.append(data) == n - 1
        assert tree.root() == merkle_root(leaves[:n])
    for m in range(1, 41):
        assert tree.root(m) == merkle_root(leaves[:m])
        for i in range(m):
            assert verify_inclusion(leaves[i], i, m, tree.inclusion_proof(i, m), tree.root(m))
        assert verify_consistency(m, 40, tree.root(m), tree.root(), tree.consistency_proof(m))


BAD_INPUTS = [
    ("index_past_end", lambda t: t.inclusion_proof(5)),
    ("negative_index", lambda t: t.inclusion_proof(-1)),
    ("size_past_end", lambda t: t.root(6)),
    ("consistency_past_end", lambda t: t.consistency_proof(6)),
    ("short_leaf_hash", lambda t: t.append_hash(b"\x00" * 31)),
]


@pytest.mark.parametrize("call", [c for _, c in BAD_INPUTS], ids=[n for n, _ in BAD_INPUTS])
def test_bad_proof_inputs(call: Any) -> None:
    tree = MerkleTree([b"a", b"b", b"c", b"d", b"e"])
    with pytest.raises(KeysError) as err:
        call(tree)
    assert err.value.code == "INVALID_PROOF_INPUT"


def test_leaf_and_node_domains_differ() -> None:
    """A two-leaf root can't be passed off as a leaf (second-preimage defence)."""
    root = merkle_root([b"a", b"b"])
    assert root != leaf_hash(leaf_hash(b"a") + leaf_hash(b"b"))


@settings(max_examples=40, deadline=None)
@given(
    leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=33),
    data=st.data(),
)
def test_proofs_verify_and_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = tree.inclusion_proof(i)
    root = tree.root()
    assert verify_inclusion(leaves[i], i, n, proof, root)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof]
        bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
        assert not verify_inclusion(leaves[i], i, n, bad, root)
        assert not verify_inclusion(leaves[i], i, n, proof[:-1], root)
    m = data.draw(st.integers(1, n))
    cproof = tree.consistency_proof(m)
    assert verify_consistency(m, n, tree.root(m), root, cproof)
    if cproof:
        assert not verify_consistency(m, n, tree.root(m), root, cproof[:-1])
