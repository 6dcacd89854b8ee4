"""Bulk verification: many batch bundles, each distinct checkpoint verified once.

:func:`verify_batch` returns, for every blob, exactly what
:func:`~keys.verify_attestation` (without nonce or subject) returns for it: a
:class:`VerifiedAttestation` with the same content, or a
:class:`VerificationError` with the same code, message and field.  The fast
path only ever *accepts* an item when the single-item path would accept it;
whenever a sufficient condition below does not hold, the item (or group)
takes the single-item path, which decides the exact reason code.

Whole batch in leaf order (the common bulk case, docs/adr/0110): the first
blob names the checkpoint (its tail must hold exactly ``payload_type`` and the
checkpoint envelope); the checkpoint signature is verified once; the leaves of
all payloads must hash to its root with ``tree_size`` = number of blobs; then
every canonical bundle is rebuilt from the tree (lengths, leaf index, tree
size, audit path, the same tail bytes) and the concatenation compared with the
blobs (:func:`keys._bundle.whole_batch_payloads`), so each blob is proven equal
to the bundle of its leaf.  Any difference: the general path.

General path, per item and per group:

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
4. **Inclusion.** When the group covers the whole tree (in member order, or
   placed by the leaf index each proof claims), the root is recomputed from
   all leaves (about two hashes per item) and each member's proof bytes must
   equal the canonical proof of its place, built from the same levels; a
   member whose proof differs takes the single-item path.  Otherwise each
   member's own audit path is walked (RFC 9162), as the single-item path does.

Then, for every authenticated member, the **attestation checks** (issuer, key
validity at issue and checkpoint time, time window, scheme, disclosure and
scenario, mapping approval, audience, status) on one protobuf parse of the payload: for all
members at once with C-level scans when they all pass, else member by member;
any doubt -> the full check of the single-item path for the exact code.

:func:`verify_batch_payloads` authenticates a pushed batch (all payloads in
order plus one checkpoint): checkpoint once, root from the payloads.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from itertools import count, repeat
from operator import attrgetter, eq

from google.protobuf.message import DecodeError

from node.pb.v1 import attestation_pb2 as pb

from ._approval import mapping_verdict
from ._attestation import Checkpoint
from ._bundle import (
    Member,
    canonical_proofs,
    claimed_index,
    leaf_hashes,
    leaves_in_order,
    split_bundle,
    tail_parts,
    whole_batch_payloads,
)
from ._disclosure import disclosure_verdict
from ._envelope import ATTESTATION_TYPE, Envelope
from ._errors import KeysError, VerificationError
from ._merkle import carry_levels, root_from_inclusion, root_of_leaf_hashes
from ._status_select import StatusCandidate, StatusPool
from ._strict import canonical_bytes
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
    status_pool,
)

__all__ = ["verify_batch", "verify_batch_payloads"]


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

    __slots__ = (
        "approvals", "fast", "hub", "latest", "na", "nb", "region", "revoked", "scenarios",
        "schemes", "signer",
    )  # fmt: skip

    def __init__(self, trust: Trust, checkpoint: Checkpoint, kid: str, t: int, skew: int) -> None:
        region, info = _signer(trust, kid)
        self.signer = Signer(kid, checkpoint, trust.stale)
        self.region = region
        self.nb, self.na = info.not_before, info.not_after
        self.revoked = info.revoked_at or 2**63
        self.latest = t + skew
        self.schemes = trust.regions[region].schemes
        self.scenarios = trust.scenarios
        self.approvals = trust.approvals
        self.hub = trust.issuer
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
_CHUNK = 512


def _included(payloads: Sequence[bytes], proofs: Sequence[bytes], cp: Checkpoint) -> list[bool]:
    """Whether each member's payload and proof bytes are a leaf of ``cp``'s tree.

    Whole tree: members usually arrive in leaf order, so that order is tried
    first (no index decoding); otherwise leaves are placed by their claimed
    indexes.  Either way a member counts only if its proof bytes equal the
    canonical proof of its place.  Anything else: each member's own path.
    """
    n = cp.tree_size
    leafs = leaf_hashes(payloads)
    if len(payloads) == n:
        levels = carry_levels(leafs)
        if hmac.compare_digest(levels[-1][0], cp.root_hash):
            return list(map(eq, canonical_proofs(levels), proofs))
        index = list(map(claimed_index, proofs))
        leaves = leaves_in_order(index, leafs, n)
        if leaves is not None and leaves is not leafs:
            levels = carry_levels(leaves)
            if hmac.compare_digest(levels[-1][0], cp.root_hash):
                canonical = canonical_proofs(levels)
                return list(map(eq, map(canonical.__getitem__, index), proofs))
    return [_own_path(p, leaf, cp) for p, leaf in zip(proofs, leafs, strict=True)]


def _all_pass(
    atts: list[pb.Attestation], payloads: Sequence[bytes], g: _Group, t: int, audience: str
) -> bool:
    """Steps 4-12 for every member at once (C-level scans); False if any may fail."""
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
    if not all(map(eq, map(canonical_bytes, atts), payloads)):
        return False  # the single-item path names it: MALFORMED
    if g.schemes and not all(f"{a}@{v}" in g.schemes for a, v in set(map(_SCHEME, atts))):
        return False
    catalogue, hub, approvals = g.scenarios, g.hub, g.approvals
    return all(
        disclosure_verdict(a, catalogue, hub) is None and mapping_verdict(a, approvals) is None
        for a in atts
    )


def _verify_group(  # noqa: PLR0917
    members: list[Member],
    checkpoint: Checkpoint,
    kid: str,
    results: list[VerifiedAttestation | VerificationError | None],
    trust: Trust,
    t: int,
    audience: str,
    status_lists: StatusPool | None,
    skew: int,
) -> None:
    """Inclusion, then steps 4-15, for the members of one verified checkpoint.

    A member left ``None`` in ``results`` takes the single-item path.
    """
    positions, payloads, proofs, _ = zip(*members, strict=True)
    included = _included(payloads, proofs, checkpoint)
    g = _Group(trust, checkpoint, kid, t, skew)
    _check_group(g, positions, payloads, included, results, trust, t, audience, status_lists, skew)


def _check_group(  # noqa: PLR0917
    g: _Group,
    positions: Sequence[int],
    payloads: Sequence[bytes],
    included: Sequence[bool],
    results: list[VerifiedAttestation | VerificationError | None],
    trust: Trust,
    t: int,
    audience: str,
    status_lists: StatusPool | None,
    skew: int,
) -> None:
    """Steps 4-15 for the authenticated (``included``) members of group ``g``, in
    chunks (parsed messages are dropped after each, which keeps the collector's
    work small): a whole chunk at once when every member passes, else member by
    member."""
    for lo in range(0, len(positions), _CHUNK):
        hi = lo + _CHUNK
        _check_chunk(
            g,
            positions[lo:hi],
            payloads[lo:hi],
            included[lo:hi],
            results,
            trust,
            t,
            audience,
            status_lists,
            skew,
        )


def _check_chunk(  # noqa: PLR0917
    g: _Group,
    positions: Sequence[int],
    payloads: Sequence[bytes],
    included: Sequence[bool],
    results: list[VerifiedAttestation | VerificationError | None],
    trust: Trust,
    t: int,
    audience: str,
    status_lists: StatusPool | None,
    skew: int,
) -> None:
    kid, checkpoint = g.signer.key_id, g.signer.checkpoint
    if all(included) and status_lists is None:
        try:
            atts = list(map(_parse_attestation, payloads))
        except DecodeError:
            atts = []
        if atts and _all_pass(atts, payloads, g, t, audience):
            done = map(VerifiedAttestation, payloads, repeat(g.signer), repeat("unchecked"))
            for _ in map(results.__setitem__, positions, done):
                pass
            return
    region, nb, na, revoked, latest = g.region, g.nb, g.na, g.revoked, g.latest
    schemes, signer, fast, scenarios = g.schemes, g.signer, g.fast, g.scenarios
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
                    and canonical_bytes(att) == payload
                    and disclosure_verdict(att, scenarios, g.hub) is None
                    and mapping_verdict(att, g.approvals) is None
                ):
                    if status_lists is None:
                        results[pos] = VerifiedAttestation(payload, signer, "unchecked", att)
                        continue
                    try:
                        state, warnings = _check_status(att, status_lists, t)
                    except VerificationError as exc:
                        results[pos] = exc
                    else:
                        results[pos] = VerifiedAttestation(payload, signer, state, att, warnings)
                    continue
        try:
            results[pos] = _check(
                payload, kid, checkpoint, trust, t, audience, None, None, None, status_lists, skew
            )
        except VerificationError as exc:
            results[pos] = exc


def _whole_batch(  # noqa: PLR0917
    blobs: Sequence[bytes],
    results: list[VerifiedAttestation | VerificationError | None],
    trust: Trust,
    t: int,
    audience: str,
    status_lists: StatusPool | None,
    skew: int,
) -> bool:
    """Fast path for a whole batch in leaf order (the common bulk case): the first
    blob names the checkpoint, verified once; then :func:`whole_batch_payloads`
    authenticates every blob by rebuilding the canonical bundles and comparing
    bytes.  True when every result is filled; False leaves ``results`` untouched."""
    first = split_bundle(blobs[0], 0) if blobs else None
    if first is None:
        return False
    tail = first[3]
    m = tail_parts(tail)
    if m is None or m.payload_type != ATTESTATION_TYPE:
        return False
    try:
        checkpoint, kid = _verify_checkpoint(trust, m.checkpoint)
    except VerificationError:
        return False
    if checkpoint.tree_size != len(blobs):
        return False
    payloads = whole_batch_payloads(blobs, tail, checkpoint.root_hash)
    if payloads is None:
        return False
    g = _Group(trust, checkpoint, kid, t, skew)
    n = len(blobs)
    _check_group(g, range(n), payloads, [True] * n, results, trust, t, audience, status_lists, skew)
    return True


def verify_batch(
    blobs: Sequence[bytes],
    trust: Trust,
    now: Instant,
    audience: str,
    *,
    status: StatusCandidate | Iterable[StatusCandidate] | StatusPool | None = None,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> list[VerifiedAttestation | VerificationError]:
    """Verify many ``SignedAttestation`` blobs; one result (or error) per blob, in order.

    Same checks and the same result per blob as :func:`verify_attestation`
    (without nonce/subject, which are per request); see the module docstring
    for how the work is shared.  The status lists are authenticated once and the
    deciding one is chosen once per issuer and list id (keys._status_select).
    """
    t = to_epoch(now)
    status_lists = status_pool(status, trust, skew)
    results: list[VerifiedAttestation | VerificationError | None] = [None] * len(blobs)
    if _whole_batch(blobs, results, trust, t, audience, status_lists, skew):
        return results  # type: ignore[return-value]  # every slot filled
    groups: dict[bytes, list[Member]] = {}
    last_tail = b""
    last: list[Member] = []
    for member in map(split_bundle, blobs, count()):
        if member is None:
            continue
        if member[3] != last_tail:
            last_tail = member[3]
            last = groups.setdefault(last_tail, [])
        last.append(member)
    for tail, members in groups.items():
        m = tail_parts(tail)
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
    root = root_of_leaf_hashes(leaf_hashes(payloads, payload_type))
    if not hmac.compare_digest(root, cp.root_hash):
        raise _fail("BAD_PROOF", "payloads do not hash to the signed root", "payloads")
    return cp
