"""Bulk verification: many batch bundles, each distinct checkpoint verified once.

:func:`verify_batch` returns, for every blob, exactly what
:func:`~keys.verify_attestation` (without nonce or subject) returns for it: a
:class:`VerifiedAttestation` with the same content, or a
:class:`VerificationError` with the same code, message and field.  The fast
path only ever *accepts* an item when the single-item path would accept it;
whenever a sufficient condition below does not hold, the item (or group)
takes the single-item path, which decides the exact reason code.

Fast path, per item and per group (docs/adr/0110):

1. **Split without protobuf.** A blob in the canonical layout
   ``0x12 len | 0x0a len payload | 0x1a len proof | tail`` (minimal varints,
   lengths consistent) is cut into ``payload``, ``proof`` bytes and ``tail``;
   anything else takes the single-item path.
2. **Group by the exact tail bytes** (``payload_type`` and the whole
   checkpoint envelope, signatures included).  An item joins a group only if
   its checkpoint bytes are identical to the bytes whose signature was
   verified, so no copy of a checkpoint is ever trusted on another's merit.
3. **Per group, once:** the tail must parse to exactly ``payload_type`` and
   ``checkpoint`` (re-serialises to the same bytes; no payload or proof field
   inside that would merge into the item's own); the type must be the
   attestation type; the checkpoint signature is verified once (and cached in
   :class:`Trust` by content).  A checkpoint failure is every member's
   failure, with the code the single-item path gives.
4. **Inclusion.** When the group covers the whole tree (each index of
   ``tree_size`` exactly once), the root is recomputed from all leaves
   (about two hashes per item) and each member's proof bytes must equal the
   canonical proof for its index built from the same levels; a member whose
   proof differs takes the single-item path.  Otherwise each member's own
   audit path is walked (RFC 9162), as the single-item path does.
5. **Attestation checks** (issuer, key validity at issue and checkpoint time,
   time window, scheme, audience, status) on one protobuf parse of the
   payload; any doubt -> the full check for the exact code.

:func:`verify_batch_payloads` authenticates a pushed batch (all payloads in
order plus one checkpoint): checkpoint once, root from the payloads.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from itertools import chain, count, repeat
from operator import attrgetter, eq

from google.protobuf.message import DecodeError

from node.pb.v1 import attestation_pb2 as pb

from ._attestation import Checkpoint
from ._envelope import ATTESTATION_TYPE, Envelope, pae
from ._errors import KeysError, VerificationError
from ._merkle import carry_levels, root_from_inclusion, root_of_leaf_hashes
from ._status import StatusList
from ._timeutil import Instant, to_epoch
from ._trust import Trust
from ._verify import (
    DEFAULT_SKEW_SECONDS,
    Signer,
    VerifiedAttestation,
    _authenticate,
    _check,
    _check_status,
    _fail,
    _parse,
    _signer,
    _verify_checkpoint,
)

__all__ = ["verify_batch", "verify_batch_payloads"]

Member = tuple[int, bytes, bytes, int, bytes]  # position, payload, proof bytes, index, tail

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


def _read_len(blob: bytes, i: int) -> tuple[int, int]:
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


def _split(blob: bytes, pos: int) -> Member | None:
    """(pos, payload, proof bytes, claimed leaf index, tail) of a blob in the
    canonical batched layout, else None.  The index only places the leaf: the
    proof bytes are later compared whole with the canonical proof of that index.

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
                c, i = _read_len(blob, 1)
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
                c, i = _read_len(blob, i + 1)
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
                c, k = _read_len(blob, j + 1)
                if c < 0:
                    return None
        e = k + c
        if e >= n:
            return None
        idx = 0
        if blob[k] == 0x08:
            c = blob[k + 1]
            if c < 0x80:
                idx = c
            else:
                d = blob[k + 2]
                idx = (c & 0x7F) | (d << 7) if d < 0x80 else _read_len(blob, k + 1)[0]
    except IndexError:
        return None
    return pos, blob[i:j], blob[k:e], idx, blob[e:]


def _tail_parts(tail: bytes) -> pb.BatchedAttestation | None:
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


def _canonical_proofs(levels: list[list[bytes]]) -> list[bytes]:
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
    index = _VARINTS[1:n] if n <= _VARINT_2 else [_varint(i) for i in range(1, n)]
    heads = [size, *map(_concat, map(_IDX.__add__, index), repeat(size))]
    return list(map(_concat, heads, upper))


def _leaves_in_order(index: list[int], leafs: list[bytes], n: int) -> list[bytes] | None:
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


def _own_path(proof_bytes: bytes, leaf: bytes, checkpoint: Checkpoint) -> bool:
    """True when the member's own audit path (RFC 9162) leads to the checkpoint root."""
    proof = pb.InclusionProof()
    try:
        proof.ParseFromString(proof_bytes)
        if proof.tree_size != checkpoint.tree_size:
            return False
        root = root_from_inclusion(proof.leaf_index, proof.tree_size, leaf, proof.hashes)
    except (DecodeError, KeysError):
        return False
    return hmac.compare_digest(root, checkpoint.root_hash)


class _Group:
    """Attestation checks shared by every member of one verified checkpoint."""

    __slots__ = ("fast", "latest", "na", "nb", "region", "revoked", "schemes", "signer")

    def __init__(self, trust: Trust, checkpoint: Checkpoint, kid: str, t: int, skew: int) -> None:
        region, info = _signer(trust, kid)
        self.signer = Signer(kid, checkpoint, trust.stale)
        self.region = region
        self.nb, self.na = info.not_before, info.not_after
        self.revoked = info.revoked_at or 2**63
        self.latest = t + skew
        self.schemes = trust.regions[region].schemes
        self.fast = (
            checkpoint.origin == region
            and info.problem_at(checkpoint.timestamp) is None
            and checkpoint.timestamp <= self.latest
        )


_AUDIENCE = attrgetter("audience")
_REGION = attrgetter("issuer_region")
_ISSUED = attrgetter("issued_at")
_EXPIRES = attrgetter("expires_at")
_SCHEME = attrgetter("scheme_id", "scheme_version")
_parse_attestation = pb.Attestation.FromString


def _leaf_hashes(payloads: Sequence[bytes]) -> list[bytes]:
    """``SHA-256(0x00 || PAE(attestation type, payload))`` of each payload (C-level loop)."""
    prefixes = {k: _LEAF_HEAD + b"%d " % k for k in set(map(len, payloads))}
    pae_of = map(_concat, map(prefixes.__getitem__, map(len, payloads)), payloads)
    return list(map(_digest, map(hashlib.sha256, pae_of)))


def _included(
    payloads: Sequence[bytes], proofs: Sequence[bytes], index: Sequence[int], cp: Checkpoint
) -> list[bool]:
    """Whether each member's payload and proof bytes are leaf ``index`` of ``cp``'s tree."""
    n = cp.tree_size
    leafs = _leaf_hashes(payloads)
    if len(payloads) == n:
        leaves = _leaves_in_order(list(index), leafs, n)
        if leaves is not None:
            levels = carry_levels(leaves)
            if hmac.compare_digest(levels[-1][0], cp.root_hash):
                canonical = _canonical_proofs(levels)
                return list(map(eq, map(canonical.__getitem__, index), proofs))
    return [_own_path(p, leaf, cp) for p, leaf in zip(proofs, leafs, strict=True)]


def _all_pass(atts: list[pb.Attestation], g: _Group, t: int, audience: str) -> bool:
    """Steps 5-10 for every member at once (C-level scans); False if any may fail."""
    if not g.fast:
        return False
    k = len(atts)
    if list(map(_AUDIENCE, atts)).count(audience) != k:
        return False
    if list(map(_REGION, atts)).count(g.region) != k:
        return False
    issued = list(map(_ISSUED, atts))
    if min(issued) < g.nb or max(issued) > min(g.na, g.latest, g.revoked - 1):
        return False
    if min(map(_EXPIRES, atts)) <= t:
        return False
    return not g.schemes or all(f"{a}@{v}" in g.schemes for a, v in set(map(_SCHEME, atts)))


def _verify_group(  # noqa: PLR0917
    members: list[Member],
    checkpoint: Checkpoint,
    kid: str,
    results: list[VerifiedAttestation | VerificationError | None],
    trust: Trust,
    t: int,
    audience: str,
    status_lists: list[StatusList] | None,
    skew: int,
) -> None:
    """Inclusion, then steps 4-12, for the members of one verified checkpoint.

    A member left ``None`` in ``results`` takes the single-item path.
    """
    positions, payloads, proofs, index, _ = zip(*members, strict=True)
    included = _included(payloads, proofs, index, checkpoint)
    g = _Group(trust, checkpoint, kid, t, skew)
    if all(included) and status_lists is None:
        try:
            atts = list(map(_parse_attestation, payloads))
        except DecodeError:
            atts = []
        if atts and _all_pass(atts, g, t, audience):
            done = map(VerifiedAttestation, atts, payloads, repeat(g.signer), repeat("unchecked"))
            for _ in map(results.__setitem__, positions, done):
                pass
            return
    region, nb, na, revoked, latest = g.region, g.nb, g.na, g.revoked, g.latest
    schemes, signer, fast = g.schemes, g.signer, g.fast
    new_att = pb.Attestation
    for pos, payload, ok in zip(positions, payloads, included, strict=True):
        if not ok:
            continue
        # authenticated: payload is a leaf under the verified checkpoint
        if fast:
            att = new_att()
            try:
                att.ParseFromString(payload)
            except DecodeError:
                pass
            else:
                issued = att.issued_at
                if (
                    att.audience == audience
                    and nb <= issued <= na
                    and issued < revoked
                    and issued <= latest
                    and t < att.expires_at
                    and att.issuer_region == region
                    and (not schemes or f"{att.scheme_id}@{att.scheme_version}" in schemes)
                ):
                    if status_lists is None:
                        results[pos] = VerifiedAttestation(att, payload, signer, "unchecked")
                        continue
                    try:
                        state = _check_status(att, status_lists, t)
                    except VerificationError as exc:
                        results[pos] = exc
                    else:
                        results[pos] = VerifiedAttestation(att, payload, signer, state)
                    continue
        try:
            results[pos] = _check(
                payload, kid, checkpoint, trust, t, audience, None, None, None, status_lists, skew
            )
        except VerificationError as exc:
            results[pos] = exc


def verify_batch(
    blobs: Sequence[bytes],
    trust: Trust,
    now: Instant,
    audience: str,
    *,
    status: StatusList | Iterable[StatusList] | None = None,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> list[VerifiedAttestation | VerificationError]:
    """Verify many ``SignedAttestation`` blobs; one result (or error) per blob, in order.

    Same checks and the same result per blob as :func:`verify_attestation`
    (without nonce/subject, which are per request); see the module docstring
    for how the work is shared.
    """
    t = to_epoch(now)
    status_lists = (
        None if status is None else ([status] if isinstance(status, StatusList) else list(status))
    )
    results: list[VerifiedAttestation | VerificationError | None] = [None] * len(blobs)
    groups: dict[bytes, list[Member]] = {}
    last_tail = b""
    last: list[Member] = []
    for member in map(_split, blobs, count()):
        if member is None:
            continue
        if member[4] != last_tail:
            last_tail = member[4]
            last = groups.setdefault(last_tail, [])
        last.append(member)
    for tail, members in groups.items():
        m = _tail_parts(tail)
        if m is None or m.payload_type != ATTESTATION_TYPE:
            continue  # every member on the single-item path
        try:
            checkpoint, kid = _verify_checkpoint(trust, m.checkpoint)
        except VerificationError as exc:
            for member in members:
                results[member[0]] = VerificationError(exc.code, exc.message, field=exc.field)
            continue
        _verify_group(members, checkpoint, kid, results, trust, t, audience, status_lists, skew)
    if None not in results:
        return results  # type: ignore[return-value]  # every slot filled
    out: list[VerifiedAttestation | VerificationError] = []
    for pos, res in enumerate(results):
        if res is None:
            try:
                payload, kid, item_cp = _authenticate(_parse(blobs[pos]), trust)
                res = _check(
                    payload, kid, item_cp, trust, t, audience, None, None, None, status_lists, skew
                )
            except VerificationError as exc:
                res = exc
        out.append(res)
    return out


def verify_batch_payloads(
    payloads: Sequence[bytes],
    checkpoint: Envelope | bytes | pb.Envelope,
    trust: Trust,
    now: Instant,
    payload_type: str = ATTESTATION_TYPE,
    *,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> Checkpoint:
    """Authenticate a whole batch as pushed (all payloads in order + one checkpoint).

    Checks the checkpoint signature once (certified key of the origin region,
    usable at the checkpoint time, not from the future), then recomputes the
    root from ``PAE(payload_type, payload)`` leaves.  Returns the checkpoint;
    the payloads are then authentic bytes of that region (attestation-level
    policy, e.g. audience, is the caller's business).  Raises
    :class:`VerificationError` (``BAD_PROOF`` when the payloads are not exactly
    the signed batch).
    """
    t = to_epoch(now)
    if isinstance(checkpoint, bytes | bytearray):
        checkpoint = Envelope.from_bytes(checkpoint).to_proto()
    elif isinstance(checkpoint, Envelope):
        checkpoint = checkpoint.to_proto()
    cp, kid = _verify_checkpoint(trust, checkpoint)
    region, info = _signer(trust, kid)
    if cp.origin != region:
        raise _fail("ISSUER_MISMATCH", "checkpoint origin is another region", "checkpoint")
    problem = info.problem_at(cp.timestamp)
    if problem:
        raise _fail(problem, "signing key not usable at checkpoint time", "key_id")
    if cp.timestamp > t + skew:
        raise _fail("NOT_YET_VALID", "checkpoint from the future", "checkpoint")
    if cp.tree_size != len(payloads):
        raise _fail("BAD_PROOF", "batch size differs from the checkpoint", "payloads")
    sha = hashlib.sha256
    root = root_of_leaf_hashes([sha(b"\x00" + pae(payload_type, p)).digest() for p in payloads])
    if not hmac.compare_digest(root, cp.root_hash):
        raise _fail("BAD_PROOF", "payloads do not hash to the signed root", "payloads")
    return cp
