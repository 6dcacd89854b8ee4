"""The canonical layout of a batch bundle, and whole-batch authentication by bytes.

``Batch.bundle`` (keys/_attestation.py) writes a batch member as

    0x12 len | 0x0a len payload | 0x1a len proof | tail

where ``proof`` is ``InclusionProof{leaf_index, tree_size, hashes}`` serialised
deterministically (``leaf_index`` absent when 0) and ``tail`` is
``payload_type`` then the checkpoint envelope, identical for every member of
one batch.  Bulk verification (keys/_batchverify.py) relies on this module to
cut blobs without protobuf, to rebuild what a canonical proof or a whole
canonical batch must be, and to compare bytes.  Nothing here accepts anything
by itself: a mismatch only means "take the general path".

Invariant: every function is exact about protobuf semantics in the cases it
accepts (one occurrence of each field, minimal varints, no unknown fields) and
returns None / False for everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain, islice, repeat
from operator import getitem, itemgetter
from typing import cast

from google.protobuf.message import DecodeError

from keys.pb.v1 import attestation_pb2 as pb

from ._envelope import ATTESTATION_TYPE
from ._merkle import carry_levels

__all__ = [
    "Member",
    "canonical_proofs",
    "claimed_index",
    "leaf_hashes",
    "leaves_in_order",
    "read_len",
    "split_bundle",
    "tail_parts",
    "whole_batch_payloads",
]

Member = tuple[int, bytes, bytes, bytes]  # position, payload, proof bytes, tail

_TAG = b"\x1a\x20"  # InclusionProof.hashes (field 3), 32 bytes
_IDX = b"\x08"  # InclusionProof.leaf_index (field 1)
_concat = bytes.__add__
_digest = type(hashlib.sha256()).digest
_LEAF_HEAD = b"\x00DSSEv1 %d %b " % (len(ATTESTATION_TYPE), ATTESTATION_TYPE.encode())
_VARINT_2 = 1 << 14
#: Minimal protobuf varint encodings of 0 .. 2**14 - 1 (one or two bytes).
_VARINTS = [
    bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(_VARINT_2)
]


def _varint(n: int) -> bytes:
    if n < _VARINT_2:
        return _VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_len(blob: bytes, i: int) -> tuple[int, int]:
    """A minimal 1-3 byte varint at ``i``: (value, next offset); (-1, 0) otherwise."""
    b = blob[i]
    if b < 0x80:
        return b, i + 1
    c = blob[i + 1]
    if 0 < c < 0x80:
        return (b & 0x7F) | (c << 7), i + 2
    d = blob[i + 2]
    if c >= 0x80 and 0 < d < 0x80:
        return (b & 0x7F) | ((c & 0x7F) << 7) | (d << 14), i + 3
    return -1, 0


def split_bundle(blob: bytes, pos: int) -> Member | None:
    """(pos, payload, proof bytes, tail) of a blob in the canonical batched
    layout, else None.

    Lengths are minimal varints, decoded inline when one or two bytes long.
    """
    if type(blob) is not bytes:
        return None
    n = len(blob)
    try:
        if blob[0] != 0x12:
            return None
        c = blob[1]
        if c < 0x80:
            i = 2
        else:
            d = blob[2]
            if 0 < d < 0x80:
                c, i = (c & 0x7F) | (d << 7), 3
            else:
                c, i = read_len(blob, 1)
        if c != n - i or blob[i] != 0x0A:
            return None
        c = blob[i + 1]
        if c < 0x80:
            i += 2
        else:
            d = blob[i + 2]
            if 0 < d < 0x80:
                c, i = (c & 0x7F) | (d << 7), i + 3
            else:
                c, i = read_len(blob, i + 1)
                if c < 0:
                    return None
        j = i + c
        if blob[j] != 0x1A:
            return None
        c = blob[j + 1]
        if c < 0x80:
            k = j + 2
        else:
            d = blob[j + 2]
            if 0 < d < 0x80:
                c, k = (c & 0x7F) | (d << 7), j + 3
            else:
                c, k = read_len(blob, j + 1)
                if c < 0:
                    return None
        e = k + c
        if e >= n:
            return None
    except IndexError:
        return None
    return pos, blob[i:j], blob[k:e], blob[e:]


def tail_parts(tail: bytes) -> pb.BatchedAttestation | None:
    """The tail as a message when it holds exactly ``payload_type`` and ``checkpoint``."""
    m = pb.BatchedAttestation()
    try:
        m.ParseFromString(tail)
    except DecodeError:
        return None
    if m.payload or m.HasField("proof") or not m.HasField("checkpoint"):
        return None
    if m.SerializeToString(deterministic=True) != tail:
        return None
    return m


def _heads(n: int) -> tuple[bytes, ...]:
    """``leaf_index`` and ``tree_size`` fields of every canonical proof of a tree of ``n``
    (remembered for a few batch sizes up to 2**16, which repeat from call to call)."""
    return _heads_cached(n) if n <= 1 << 16 else _build_heads(n)


def _build_heads(n: int) -> tuple[bytes, ...]:
    size = b"\x10" + _varint(n)
    index = _VARINTS[1:n] if n <= _VARINT_2 else [_varint(i) for i in range(1, n)]
    return (size, *map(_concat, map(_IDX.__add__, index), repeat(size)))


_heads_cached = lru_cache(maxsize=4)(_build_heads)


def canonical_proofs(levels: list[list[bytes]]) -> list[bytes]:
    """Serialised ``InclusionProof`` of every leaf, exactly as ``Batch.proof`` writes it.

    The audit path of leaf ``i`` is ``level[h][(i >> h) ^ 1]`` for each level
    where that sibling exists; paths share their upper parts, so each node's
    upper path is built once (a few concatenations per leaf in all).
    """
    leaves = levels[0]
    n = len(leaves)
    size = b"\x10" + _varint(n)
    if n == 1:
        return [size]
    upper: list[bytes] = [b""]  # path bytes from level h up, per node of level h
    for h in range(len(levels) - 2, -1, -1):
        level = levels[h]
        count = len(level)
        sib = [b""] * count  # tagged sibling of each node (none for an unpaired last node)
        sib[0 : count - 1 : 2] = map(_TAG.__add__, level[1::2])
        sib[1::2] = map(_TAG.__add__, level[0 : count - 1 : 2])
        upper = list(map(_concat, sib, chain.from_iterable(zip(upper, upper, strict=True))))
    heads = _heads(n)
    return list(map(_concat, heads, upper))


def leaves_in_order(index: list[int], leafs: list[bytes], n: int) -> list[bytes] | None:
    """Leaf hashes by leaf index when ``index`` is a permutation of 0..n-1, else None."""
    whole = list(range(n))
    if index == whole:
        return leafs
    if sorted(index) != whole:
        return None
    out = [b""] * n
    for i, leaf in zip(index, leafs, strict=True):
        out[i] = leaf
    return out


def leaf_hashes(payloads: Sequence[bytes], payload_type: str = ATTESTATION_TYPE) -> list[bytes]:
    """``SHA-256(0x00 || PAE(payload_type, payload))`` of each payload (C-level loop)."""
    if payload_type == ATTESTATION_TYPE:
        head = _LEAF_HEAD
    else:
        t = payload_type.encode("utf-8")
        head = b"\x00DSSEv1 %d %b " % (len(t), t)
    prefixes = {k: head + b"%d " % k for k in set(map(len, payloads))}
    pae_of = map(_concat, map(prefixes.__getitem__, map(len, payloads)), payloads)
    return list(map(_digest, map(hashlib.sha256, pae_of)))


def claimed_index(proof: bytes) -> int:
    """``leaf_index`` as a canonical proof writes it (field 1 first, absent for 0);
    -1 when it cannot be read that way.  Only places a leaf: the proof bytes are
    then compared whole with the canonical proof of that index."""
    if proof[:1] != b"\x08":
        return 0
    try:
        return read_len(proof, 1)[0]
    except IndexError:
        return -1


_FIRST6 = itemgetter(slice(0, 6))
_COMPARE_CHUNK = 256
_VARINT_AT = _VARINTS.__getitem__


def _payload_at(head: bytes) -> tuple[int, int] | None:
    """(start, end) of the payload from a blob's first six bytes:
    ``0x12 len 0x0a len``, one- or two-byte lengths; None otherwise."""
    try:
        if head[0] != 0x12:
            return None
        _, i = read_len(head, 1)
        if i == 0 or i > 3 or head[i] != 0x0A:
            return None
        plen, j = read_len(head, i + 1)
    except IndexError:
        return None
    if plen < 0:
        return None
    return j, j + plen


_SHARED_FROM = 4  # audit-path levels from here up are built once per subtree of 16 leaves


def _path_pieces(levels: list[list[bytes]]) -> tuple[list[list[bytes]], list[int]]:
    """Every leaf's audit path as a few per-leaf columns (tagged siblings of the
    lowest levels, then the shared upper part of its subtree), and every leaf's
    total path length in bytes."""
    n = len(levels[0])
    step = len(_TAG) + 32
    lengths = [(len(levels) - 1) * step] * n
    columns: list[list[bytes]] = []
    upper: list[bytes] = [b""]
    for h in range(len(levels) - 2, -1, -1):
        level = levels[h]
        count = len(level)
        node = [b""] * count
        node[0 : count - 1 : 2] = map(_TAG.__add__, level[1::2])
        node[1::2] = map(_TAG.__add__, level[0 : count - 1 : 2])
        if count & 1:  # the leaves under the unpaired last node have no piece at this level
            first = (count - 1) << h
            lengths[first:] = [x - step for x in lengths[first:]]
        if h >= _SHARED_FROM:
            upper = list(map(_concat, node, chain.from_iterable(zip(upper, upper, strict=True))))
        else:
            columns.append(node if h == 0 else _spread(node, h, n))
    columns.reverse()
    if len(levels) - 1 > _SHARED_FROM:
        columns.append(_spread(upper, _SHARED_FROM, n))
    return columns, lengths


def _spread(nodes: list[bytes], h: int, n: int) -> list[bytes]:
    """Per leaf, the value of its ancestor at level ``h`` (each repeated ``2**h`` times)."""
    return list(islice(chain.from_iterable(map(repeat, nodes, repeat(1 << h))), n))


def _tagged(prefix: bytes, values: list[int]) -> list[bytes]:
    """``prefix || varint(v)`` for each value (a few distinct values per batch)."""
    table = {v: prefix + _varint(v) for v in set(values)}
    return list(map(table.__getitem__, values))


def whole_batch_payloads(blobs: Sequence[bytes], tail: bytes, root: bytes) -> list[bytes] | None:
    """The payloads when ``blobs`` are exactly the canonical bundles of every leaf
    of the tree with ``root``, in leaf order, each ending in ``tail``; else None.

    Payload boundaries are read from each blob's first bytes (a handful of
    distinct headers per batch); the leaves are hashed and the root compared;
    then every bundle is rebuilt from the tree as one byte string and compared
    with the blobs, so every header, length, leaf index, tree size, audit path
    and tail of every blob is checked by one comparison.
    """
    n = len(blobs)
    if not n or n >= _VARINT_2 * 64 or set(map(type, blobs)) != {bytes}:
        return None
    heads6 = list(map(_FIRST6, blobs))
    start_of: dict[bytes, int] = {}
    end_of: dict[bytes, int] = {}
    for h6 in set(heads6):
        loc = _payload_at(h6)
        if loc is None:
            return None
        start_of[h6], end_of[h6] = loc
    slices = map(slice, map(start_of.__getitem__, heads6), map(end_of.__getitem__, heads6))
    payloads = cast(list[bytes], list(map(getitem, blobs, slices)))
    levels = carry_levels(leaf_hashes(payloads))
    if levels[-1][0] != root:
        return None
    heads = _heads(n)
    columns, path_lengths = _path_pieces(levels)
    plens = list(map(len, payloads))
    qlens = list(map(sum, zip(map(len, heads), path_lengths, strict=True)))
    vp = _tagged(b"\x0a", plens)
    vq = _tagged(b"\x1a", qlens)
    inner = list(map(sum, zip(map(len, vp), plens, map(len, vq), qlens, repeat(len(tail)))))
    outer = _tagged(b"\x12", inner)
    if list(map(len, blobs)) != list(map(sum, zip(map(len, outer), inner, strict=True))):
        return None  # equal lengths + equal concatenation = every blob equal to its bundle
    rows = zip(outer, vp, payloads, vq, heads, *columns, repeat(tail))
    for lo in range(0, n, _COMPARE_CHUNK):  # chunks stay in cache
        rebuilt = b"".join(chain.from_iterable(islice(rows, _COMPARE_CHUNK)))
        if rebuilt != b"".join(blobs[lo : lo + _COMPARE_CHUNK]):
            return None
    return payloads
