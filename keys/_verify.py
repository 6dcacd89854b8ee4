"""The integrator's verifier: one call, one exception type, stable reason codes.

:func:`verify_attestation` checks, in this order (docs/SPEC.md, "Verification"),
and raises :class:`VerificationError` at the first failure:

1. the blob parses as a ``SignedAttestation``                       MALFORMED
2. ``payload_type`` is the attestation type                          WRONG_PAYLOAD_TYPE
3. the signing key (envelope signature, or the checkpoint's) is a
   certified key of a trusted region                                 UNKNOWN_KEY
4. the signature verifies over PAE(type, bytes) as received           BAD_SIGNATURE
   (batch: checkpoint signature, then inclusion of PAE(type, payload)
   under the checkpoint root with the checkpoint's tree size)         BAD_PROOF
5. only now is the payload parsed                                    MALFORMED
6. issuer region == the signing key's region (== checkpoint origin)   ISSUER_MISMATCH
7. key valid at issue (and checkpoint) time, not revoked before it     KEY_NOT_VALID / KEY_REVOKED
8. not issued in the future (beyond ``skew``), not expired           NOT_YET_VALID / EXPIRED
9. scheme listed for the region (if the trust list names schemes)     SCHEME_NOT_TRUSTED
10. audience                                                          WRONG_AUDIENCE
11. nonce (when the caller supplies one)                              NONCE_MISSING / NONCE_MISMATCH
12. subject binding (when the caller supplies ID and salt)            SUBJECT_MISMATCH
13. status (when the caller supplies status lists)                    STATUS_*

Invariant: the payload is returned (inside :class:`VerifiedAttestation`) only
after every applicable check passed; no partial result escapes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import cast

from google.protobuf.message import DecodeError

from node.pb.v1 import attestation_pb2 as pb

from ._attestation import Attestation, Checkpoint
from ._ed25519 import ed25519_verify
from ._envelope import ATTESTATION_TYPE, CHECKPOINT_TYPE, Envelope, pae
from ._errors import KeysError, VerificationError
from ._merkle import leaf_hash, root_from_inclusion, root_of_leaf_hashes
from ._pseudonym import subject_binding as compute_binding
from ._status import Status, StatusList
from ._timeutil import Instant, to_epoch
from ._trust import SigningKeyInfo, Trust

__all__ = [
    "DEFAULT_SKEW_SECONDS",
    "VerifiedAttestation",
    "verify_attestation",
    "verify_batch",
    "verify_batch_payloads",
]

DEFAULT_SKEW_SECONDS = 300
_STATUS_CODES = {
    Status.REVOKED: "STATUS_REVOKED",
    Status.SUSPENDED: "STATUS_SUSPENDED",
    Status.SUPERSEDED: "STATUS_SUPERSEDED",
}


class VerifiedAttestation:
    """A fully verified attestation and how it was verified.

    ``attestation`` (the domain object) is built on first access from the
    verified message, so bulk verification does not pay for it up front.
    """

    __slots__ = (
        "_attestation",
        "_message",
        "batched",
        "checkpoint",
        "key_id",
        "payload",
        "status",
        "trust_stale",
    )

    def __init__(  # noqa: PLR0917
        self,
        message: pb.Attestation,
        payload: bytes,
        key_id: str,
        checkpoint: Checkpoint | None,
        status: str,
        trust_stale: bool,
    ) -> None:
        self._message = message
        self._attestation: Attestation | None = None
        self.payload = payload
        self.key_id = key_id
        self.batched = checkpoint is not None
        self.checkpoint = checkpoint
        self.status = status  # "valid", or "unchecked" when no status list was supplied
        self.trust_stale = trust_stale  # trust list expired and the caller allowed stale use

    @property
    def attestation(self) -> Attestation:
        if self._attestation is None:
            self._attestation = Attestation.from_proto(self._message)
        return self._attestation

    def __repr__(self) -> str:
        return f"VerifiedAttestation(key_id={self.key_id!r}, batched={self.batched})"


def _fail(code: str, message: str, field: str = "attestation") -> VerificationError:
    return VerificationError(code, message, field=field)


def _signer(trust: Trust, kid: str) -> tuple[str, SigningKeyInfo]:
    owner = trust.signing_key(kid)
    if owner is None:
        raise _fail("UNKNOWN_KEY", "not a certified key of a trusted region", "key_id")
    return owner


def _verify_sig(trust: Trust, ptype: str, payload: bytes, sigs: Iterable[pb.Signature]) -> str:
    message = pae(ptype, payload)
    known = False
    for s in sigs:
        owner = trust.signing_key(s.key_id)
        if owner is None:
            continue
        known = True
        if ed25519_verify(owner[1].public_key, message, s.sig):
            return str(s.key_id)
    if not known:
        raise _fail("UNKNOWN_KEY", "not a certified key of a trusted region", "key_id")
    raise _fail("BAD_SIGNATURE", "signature does not verify", "signatures")


def _verify_checkpoint(trust: Trust, env: pb.Envelope) -> tuple[Checkpoint, str]:
    raw = (env.payload_type, env.payload, tuple((s.key_id, s.sig) for s in env.signatures))
    cached = trust._checkpoints.get(raw)
    if cached is not None:
        return cast(tuple[Checkpoint, str], cached)
    if env.payload_type != CHECKPOINT_TYPE:
        raise _fail("WRONG_PAYLOAD_TYPE", "checkpoint has the wrong type", "checkpoint")
    kid = _verify_sig(trust, env.payload_type, env.payload, env.signatures)
    cp = Checkpoint.from_bytes(env.payload)
    if len(cp.root_hash) != 32:
        raise _fail("MALFORMED", "checkpoint root hash", "checkpoint")
    if len(trust._checkpoints) > 1024:
        trust._checkpoints.clear()
    trust._checkpoints[raw] = (cp, kid)
    return cp, kid


def _check_status(att: pb.Attestation, status: StatusList | Iterable[StatusList], now: int) -> str:
    lists = [status] if isinstance(status, StatusList) else status
    if not att.HasField("status"):
        raise _fail("STATUS_UNAVAILABLE", "attestation has no status entry", "status")
    for sl in lists:
        if sl.issuer_region == att.issuer_region and sl.list_id == att.status.list_id:
            if now >= sl.expires_at:
                raise _fail("STATUS_UNAVAILABLE", "status list has expired", "status")
            try:
                state = sl.get(att.status.index)
            except KeysError:
                raise _fail("STATUS_UNAVAILABLE", "index outside the list", "status") from None
            if state is not Status.VALID:
                raise _fail(_STATUS_CODES[state], f"status is {state.name.lower()}", "status")
            return "valid"
    raise _fail("STATUS_UNAVAILABLE", "no status list for this attestation", "status")


def _authenticate(
    outer: pb.SignedAttestation, trust: Trust, proof_checked: bool = False
) -> tuple[bytes, str, Checkpoint | None]:
    """Steps 2-4: (payload, signing key id, checkpoint) once the bytes are authentic."""
    kind = outer.WhichOneof("kind")
    if kind == "envelope":
        env = outer.envelope
        if env.payload_type != ATTESTATION_TYPE:
            raise _fail("WRONG_PAYLOAD_TYPE", f"expected {ATTESTATION_TYPE}", "payload_type")
        return env.payload, _verify_sig(trust, env.payload_type, env.payload, env.signatures), None
    if kind != "batched":
        raise _fail("MALFORMED", "empty SignedAttestation", "blob")
    b = outer.batched
    if b.payload_type != ATTESTATION_TYPE:
        raise _fail("WRONG_PAYLOAD_TYPE", f"expected {ATTESTATION_TYPE}", "payload_type")
    if not b.HasField("checkpoint") or not b.HasField("proof"):
        raise _fail("MALFORMED", "batched attestation lacks proof or checkpoint", "blob")
    checkpoint, kid = _verify_checkpoint(trust, b.checkpoint)
    if proof_checked:
        return b.payload, kid, checkpoint
    proof = b.proof
    if proof.tree_size != checkpoint.tree_size:
        raise _fail("BAD_PROOF", "proof is for a tree of another size", "proof")
    try:
        root = root_from_inclusion(
            proof.leaf_index,
            proof.tree_size,
            leaf_hash(pae(b.payload_type, b.payload)),
            proof.hashes,
        )
    except KeysError:
        raise _fail("BAD_PROOF", "malformed inclusion proof", "proof") from None
    if not hmac.compare_digest(root, checkpoint.root_hash):
        raise _fail("BAD_PROOF", "inclusion proof does not lead to the signed root", "proof")
    return b.payload, kid, checkpoint


def _parse(blob: bytes) -> pb.SignedAttestation:
    outer = pb.SignedAttestation()
    try:
        outer.ParseFromString(bytes(blob))
    except DecodeError:
        raise _fail("MALFORMED", "not a SignedAttestation", "blob") from None
    return outer


def verify_attestation(  # noqa: PLR0917 (signature fixed by issue 3)
    blob: bytes,
    trust: Trust,
    now: Instant,
    audience: str,
    nonce: bytes | None = None,
    subject_id: str | None = None,
    binding_salt: bytes | None = None,
    status: StatusList | Iterable[StatusList] | None = None,
    *,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> VerifiedAttestation:
    """Verify a serialised ``SignedAttestation`` offline; see the module docstring."""
    t = to_epoch(now)
    payload, kid, checkpoint = _authenticate(_parse(blob), trust)
    return _check(
        payload, kid, checkpoint, trust, t, audience, nonce, subject_id, binding_salt, status, skew
    )


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

    Same checks as :func:`verify_attestation` (without nonce/subject, which are
    per request).  Each distinct checkpoint signature is verified once; when the
    blobs of one checkpoint are the whole tree (every index exactly once), the
    root is recomputed from the leaves in one pass (about 2 hashes per item)
    instead of walking every inclusion path; otherwise each path is checked.
    """
    t = to_epoch(now)
    status_lists = (
        None if status is None else ([status] if isinstance(status, StatusList) else list(status))
    )
    count = len(blobs)
    results: list[VerifiedAttestation | VerificationError | None] = [None] * count
    parsed: list[pb.SignedAttestation | None] = [None] * count
    groups: dict[tuple[str, bytes], list[int]] = {}
    for i, blob in enumerate(blobs):
        outer = pb.SignedAttestation()
        try:
            outer.ParseFromString(blob)
        except DecodeError:
            results[i] = _fail("MALFORMED", "not a SignedAttestation", "blob")
            continue
        parsed[i] = outer
        if outer.HasField("batched"):
            # Same checkpoint bytes => same authenticated content, whoever's copy we verify.
            cp = outer.batched.checkpoint
            groups.setdefault((cp.payload_type, cp.payload), []).append(i)
    sha = hashlib.sha256
    t_type = ATTESTATION_TYPE.encode("utf-8")
    leaf_prefix = b"\x00DSSEv1 %d %b " % (len(t_type), t_type)
    stale = trust.stale
    for members in groups.values():
        first = parsed[members[0]]
        assert first is not None
        try:
            checkpoint, group_kid = _verify_checkpoint(trust, first.batched.checkpoint)
        except VerificationError:
            continue  # each member reports its error on the per-item path
        n = checkpoint.tree_size
        if len(members) != n:
            continue
        leaves: list[bytes | None] = [None] * n
        payloads: list[bytes] = []
        for i in members:
            b = cast(pb.SignedAttestation, parsed[i]).batched
            proof = b.proof
            idx = proof.leaf_index
            if proof.tree_size != n or idx >= n or leaves[idx] is not None:
                break
            if b.payload_type != ATTESTATION_TYPE:
                break
            payload = b.payload
            payloads.append(payload)
            leaves[idx] = sha(leaf_prefix + b"%d " % len(payload) + payload).digest()
        else:
            root = root_of_leaf_hashes(cast(list[bytes], leaves))
            if hmac.compare_digest(root, checkpoint.root_hash):
                g = _Group(trust, checkpoint, group_kid, t, skew)
                for i, payload in zip(members, payloads, strict=True):
                    results[i] = _check_member(
                        g, payload, trust, t, audience, status_lists, skew, stale
                    )
    out: list[VerifiedAttestation | VerificationError] = []
    for i, res in enumerate(results):
        if res is None:
            item = parsed[i]
            assert item is not None
            try:
                payload, kid, item_cp = _authenticate(item, trust)
                res = _check(
                    payload, kid, item_cp, trust, t, audience, None, None, None, status_lists, skew
                )
            except VerificationError as exc:
                res = exc
        out.append(res)
    return out


def _check_member(  # noqa: PLR0917
    g: _Group,
    payload: bytes,
    trust: Trust,
    t: int,
    audience: str,
    status_lists: list[StatusList] | None,
    skew: int,
    stale: bool,
) -> VerifiedAttestation | VerificationError:
    """One authenticated batch member: fast checks, any doubt -> the full :func:`_check`."""
    if g.fast:
        att = pb.Attestation()
        try:
            att.ParseFromString(payload)
            issued = att.issued_at
            if (
                att.issuer_region == g.region
                and g.nb <= issued <= g.na
                and issued < g.revoked
                and issued <= g.latest
                and t < att.expires_at
                and att.audience == audience
                and (not g.schemes or f"{att.scheme_id}@{att.scheme_version}" in g.schemes)
            ):
                state = "unchecked" if status_lists is None else _check_status(att, status_lists, t)
                return VerifiedAttestation(att, payload, g.kid, g.checkpoint, state, stale)
        except DecodeError:
            pass
        except VerificationError as exc:
            return exc
    try:
        return _check(
            payload, g.kid, g.checkpoint, trust, t, audience, None, None, None, status_lists, skew
        )
    except VerificationError as exc:
        return exc


class _Group:
    """Checks shared by every member of one verified checkpoint (done once)."""

    __slots__ = ("checkpoint", "fast", "kid", "latest", "na", "nb", "region", "revoked", "schemes")

    def __init__(self, trust: Trust, checkpoint: Checkpoint, kid: str, t: int, skew: int) -> None:
        self.checkpoint = checkpoint
        self.kid = kid
        region, info = _signer(trust, kid)
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


def _check(  # noqa: PLR0917
    payload: bytes,
    kid: str,
    checkpoint: Checkpoint | None,
    trust: Trust,
    t: int,
    audience: str,
    nonce: bytes | None,
    subject_id: str | None,
    binding_salt: bytes | None,
    status: StatusList | Iterable[StatusList] | None,
    skew: int,
) -> VerifiedAttestation:
    """Steps 5-13, on authenticated payload bytes."""
    att = pb.Attestation()
    try:
        att.ParseFromString(payload)
    except DecodeError:
        raise _fail("MALFORMED", "not an Attestation", "payload") from None
    region, info = _signer(trust, kid)
    if att.issuer_region != region:
        raise _fail("ISSUER_MISMATCH", "signed by another region's key", "issuer_region")
    if checkpoint is not None and checkpoint.origin != region:
        raise _fail("ISSUER_MISMATCH", "checkpoint origin is another region", "checkpoint")
    times = [att.issued_at] if checkpoint is None else [att.issued_at, checkpoint.timestamp]
    for when in times:
        problem = info.problem_at(when)
        if problem:
            raise _fail(problem, "signing key not usable at signing time", "key_id")
    if att.issued_at > t + skew or (checkpoint is not None and checkpoint.timestamp > t + skew):
        raise _fail("NOT_YET_VALID", "issued in the future", "issued_at")
    if t >= att.expires_at:
        raise _fail("EXPIRED", "attestation has expired", "expires_at")
    schemes = trust.regions[region].schemes
    if schemes and f"{att.scheme_id}@{att.scheme_version}" not in schemes:
        raise _fail("SCHEME_NOT_TRUSTED", "scheme not listed for this region", "scheme_id")
    if att.audience != audience:
        raise _fail("WRONG_AUDIENCE", "attestation is for another audience", "audience")
    if nonce is not None:
        if not att.nonce:
            raise _fail("NONCE_MISSING", "attestation carries no nonce", "nonce")
        if not hmac.compare_digest(att.nonce, nonce):
            raise _fail("NONCE_MISMATCH", "nonce does not match the request", "nonce")
    if subject_id is not None or binding_salt is not None:
        if subject_id is None or binding_salt is None:
            raise _fail("SUBJECT_MISMATCH", "need both subject id and binding salt", "subject")
        try:
            expected = compute_binding(binding_salt, subject_id)
        except KeysError:
            raise _fail("SUBJECT_MISMATCH", "invalid subject id or salt", "subject") from None
        if not hmac.compare_digest(expected, att.subject_binding):
            raise _fail("SUBJECT_MISMATCH", "attestation is about someone else", "subject")
    state = "unchecked" if status is None else _check_status(att, status, t)
    return VerifiedAttestation(att, payload, kid, checkpoint, state, trust.stale)


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
