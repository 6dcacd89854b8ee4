"""Merkle trees with RFC 9162 hashing (leaf prefix 0x00, node prefix 0x01).

``MTH({}) = SHA-256()``, ``MTH({d}) = SHA-256(0x00 || d)``,
``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the
largest power of two smaller than ``n``.  Proof generation and verification
follow RFC 9162 sections 2.1.3 and 2.1.4.

:class:`MerkleTree` appends leaves one at a time and keeps the hash of every
complete, aligned power-of-two subtree, so appending costs amortised one node
hash and a root or proof for any earlier size costs O(log n) lookups plus at
most O(log n) hashes, without rehashing the leaves.  Invariant: the stored
levels are append-only; a root for size ``m`` never changes once computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ._errors import KeysError

__all__ = [
    "EMPTY_ROOT",
    "MerkleTree",
    "carry_levels",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "path_from_levels",
    "root_from_inclusion",
    "root_of_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest
_concat = bytes.__add__
_NODE = b"\x01"
EMPTY_ROOT = _sha256(b"").digest()
HASH_BYTES = 32


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree; roots and proofs for any size up to ``size``."""

    __slots__ = ("_levels", "_memo")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        # _levels[h][i] = hash of the complete subtree of 2**h leaves starting at i * 2**h
        self._levels: list[list[bytes]] = [[]]
        # hashes of incomplete subtrees [start, start + n): immutable once their leaves exist
        self._memo: dict[tuple[int, int], bytes] = {}
        for data in leaves:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, data: bytes) -> int:
        """Append a leaf (its data, hashed here); returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> int:
        """Append an already computed leaf hash; returns its index."""
        if len(leaf) != HASH_BYTES:
            raise KeysError("leaf", "hash must be 32 bytes", code="INVALID_PROOF_INPUT")
        levels = self._levels
        index = len(levels[0])
        levels[0].append(leaf)
        h, i = 0, index
        while i & 1:
            level = levels[h]
            parent = node_hash(level[i - 1], level[i])
            h += 1
            i >>= 1
            if h == len(levels):
                levels.append([])
            levels[h].append(parent)
        return index

    def _subtree(self, start: int, n: int) -> bytes:
        """MTH of leaves [start, start + n) for ranges arising in RFC 9162 recursion."""
        if n & (n - 1) == 0 and start % n == 0:
            return self._levels[n.bit_length() - 1][start // n]
        memo = self._memo.get((start, n))
        if memo is None:
            k = _largest_pow2_below(n)
            memo = node_hash(self._subtree(start, k), self._subtree(start + k, n - k))
            if len(self._memo) < 1 << 16:
                self._memo[(start, n)] = memo
        return memo

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise KeysError("tree_size", "outside the tree", code="INVALID_PROOF_INPUT")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all)."""
        n = self._check_size(size)
        return EMPTY_ROOT if n == 0 else self._subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path (bottom-up) of leaf ``index`` in the tree of ``size`` leaves."""
        n = self._check_size(size)
        if not 0 <= index < n:
            raise KeysError("leaf_index", "outside the tree", code="INVALID_PROOF_INPUT")
        path: list[bytes] = []
        start = 0
        m = index
        while n > 1:
            k = _largest_pow2_below(n)
            if m < k:
                path.append(self._subtree(start + k, n - k))
                n = k
            else:
                path.append(self._subtree(start, k))
                start += k
                m -= k
                n -= k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof between sizes ``first`` and ``second``."""
        n = self._check_size(second)
        if not 0 <= first <= n:
            raise KeysError("first_size", "outside the tree", code="INVALID_PROOF_INPUT")
        if first in (0, n):
            return []
        return self._subproof(first, 0, n, True)

    def _subproof(self, m: int, start: int, n: int, whole: bool) -> list[bytes]:
        if m == n:
            return [] if whole else [self._subtree(start, n)]
        k = _largest_pow2_below(n)
        if m <= k:
            return [*self._subproof(m, start, k, whole), self._subtree(start + k, n - k)]
        return [*self._subproof(m - k, start + k, n - k, False), self._subtree(start, k)]


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """The next level up: ``node_hash`` of each pair; an unpaired last node moves up as is.

    Written as C-level ``map`` chains (no Python frame per node): this is the
    inner loop of batch issuance and bulk verification.
    """
    nxt = list(
        map(_digest, map(_sha256, map(_NODE.__add__, map(_concat, level[0::2], level[1::2]))))
    )
    if len(level) & 1:
        nxt.append(level[-1])
    return nxt


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 root from leaf hashes, level by level (an odd last node moves up as is).

    Equal to ``MTH`` because the tree is left-complete: the unpaired right-most
    node of a level is exactly the right subtree RFC 9162's split produces.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        level = _parents(level)
    return level[0]


def carry_levels(hashes: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the tree over ``hashes`` (level 0 = leaf hashes, last = [root]).

    Level-by-level form of the RFC 9162 tree: node ``j`` of level ``h + 1`` is
    ``node_hash(level[2j], level[2j + 1])``, or ``level[2j]`` itself when it is
    the unpaired last node.  The audit path of leaf ``i`` is then
    ``level[h][(i >> h) ^ 1]`` for every level where that sibling exists.
    """
    levels = [list(hashes)]
    while len(levels[-1]) > 1:
        levels.append(_parents(levels[-1]))
    return levels


def path_from_levels(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` from :func:`carry_levels` output."""
    return [
        level[(index >> h) ^ 1]
        for h, level in enumerate(levels[:-1])
        if (index >> h) ^ 1 < len(level)
    ]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root hash of ``leaves`` (leaf data, not hashes)."""
    sha = _sha256
    return root_of_leaf_hashes([sha(b"\x00" + d).digest() for d in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of ``leaves[index]``."""
    return MerkleTree(leaves).inclusion_proof(index)


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """Consistency proof from the tree of the first ``first`` leaves to all of ``leaves``."""
    return MerkleTree(leaves).consistency_proof(first)


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Root implied by an inclusion proof (RFC 9162 2.1.3.2); raises on a malformed proof."""
    if not 0 <= index < size:
        raise KeysError("leaf_index", "outside the tree", code="INVALID_PROOF_INPUT")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != HASH_BYTES or sn == 0:
            raise KeysError("proof", "malformed audit path", code="INVALID_PROOF_INPUT")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise KeysError("proof", "audit path too short", code="INVALID_PROOF_INPUT")
    return r


def verify_inclusion(
    leaf_data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True if ``leaf_data`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    try:
        return root_from_inclusion(index, size, leaf_hash(leaf_data), proof) == root
    except KeysError:
        return False


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """RFC 9162 2.1.4.2: True if the tree ``first_root`` is a prefix of ``second_root``."""
    if not 0 <= first_size <= second_size:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if first_size == 0:
        return not proof
    if any(len(p) != HASH_BYTES for p in proof):
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
