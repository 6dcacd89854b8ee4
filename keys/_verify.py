"""The integrator's verifier: one call, one exception type, stable reason codes.

:func:`verify_attestation` checks, in this order (the steps and numbers of
docs/SPEC.md section 7), and raises :class:`VerificationError` at the first failure:

1. the blob parses as a ``SignedAttestation``                       MALFORMED
2. ``payload_type`` is the attestation type                          WRONG_PAYLOAD_TYPE
3. some signature (envelope, or the checkpoint's) is by a certified
   key of a trusted region,                                          UNKNOWN_KEY
   every such signature verifies over PAE(type, bytes) as received   BAD_SIGNATURE
   (batch: checkpoint signature, then inclusion of PAE(type, payload)
   under the checkpoint root with the checkpoint's tree size)         BAD_PROOF
4. only now is the payload parsed, canonical encoding only           MALFORMED
5. issuer region == the signing key's region (== checkpoint origin)   ISSUER_MISMATCH
6. key valid at issue (and checkpoint) time, not revoked before it     KEY_NOT_VALID / KEY_REVOKED
7. not issued in the future (beyond ``skew``), not expired           NOT_YET_VALID / EXPIRED
8. scheme listed for the region (if the trust list names schemes;
   a derived score's: its base, docs/adr/0006)                        SCHEME_NOT_TRUSTED
9. fields as the disclosure kind allows (no grade or score in a
   threshold attestation, ...), a consented attestation's purpose
   is its scenario, a statutory one's purpose is "provincial-push"
   and its audience the trust's hub (``Trust.issuer``;
   keys._disclosure)                                                 DISCLOSURE_MISMATCH
10. a consented attestation's scenario, at its threshold's scheme
    version and tier, in the trust's scenario catalogue              SCENARIO_NOT_TRUSTED
    and its disclosure no more than the scenario allows               DISCLOSURE_NOT_ALLOWED
11. a mapped grade (``mapped``) cites a table in the trust's approved
    list (``Trust.approvals``, keys._approval) for the attestation's
    scheme version → the mapped one, in force at ``issued_at``         MAPPING_NOT_APPROVED
12. audience                                                          WRONG_AUDIENCE
13. nonce (when the caller supplies one)                              NONCE_MISSING / NONCE_MISMATCH
14. subject binding (when the caller supplies ID and salt)            SUBJECT_MISMATCH
15. status (when the caller supplies status lists; the newest usable
    list of the issuer and list id decides, keys._status_select)       STATUS_*

Invariant: the payload is returned (inside :class:`VerifiedAttestation`) only
after every applicable check passed; no partial result escapes.  Status
lists skipped on the way are reported as ``warnings`` on the result, or on
the :class:`VerificationError`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import cast

from node.pb.v1 import attestation_pb2 as pb

from ._approval import mapping_verdict
from ._attestation import Attestation, Checkpoint
from ._disclosure import disclosure_verdict, scheme_listed
from ._envelope import ATTESTATION_TYPE, CHECKPOINT_TYPE, pae, signer_of
from ._errors import KeysError, VerificationError
from ._merkle import leaf_hash, root_from_inclusion
from ._pseudonym import subject_binding as compute_binding
from ._status import Status
from ._status_select import StatusCandidate, StatusPool, StatusWarning
from ._strict import parse_container, parse_signed
from ._timeutil import DEFAULT_SKEW_SECONDS, Instant, to_epoch
from ._trust import SigningKeyInfo, Trust

__all__ = ["DEFAULT_SKEW_SECONDS", "VerifiedAttestation", "verify_attestation"]
_STATUS_CODES = {
    Status.REVOKED: "STATUS_REVOKED",
    Status.SUSPENDED: "STATUS_SUSPENDED",
    Status.SUPERSEDED: "STATUS_SUPERSEDED",
}


class Signer:
    """How an attestation was authenticated: signing key, checkpoint (batch) and
    whether the trust list was stale; shared by every member of one batch."""

    __slots__ = ("checkpoint", "key_id", "trust_stale")

    def __init__(self, key_id: str, checkpoint: Checkpoint | None, trust_stale: bool) -> None:
        self.key_id = key_id
        self.checkpoint = checkpoint
        self.trust_stale = trust_stale


class VerifiedAttestation:
    """A fully verified attestation and how it was verified.

    ``attestation`` (the domain object) is built on first access from the
    verified message (or, after bulk verification, from the verified payload
    bytes), so bulk verification does not pay for it up front.
    """

    __slots__ = ("_attestation", "_message", "_signer", "payload", "status", "warnings")
    _attestation: Attestation

    def __init__(
        self,
        payload: bytes,
        signer: Signer,
        status: str,
        message: pb.Attestation | None = None,
        warnings: tuple[StatusWarning, ...] = (),
    ) -> None:
        self._message = message
        self.payload = payload
        self._signer = signer
        self.status = status  # "valid", or "unchecked" when no status list was supplied
        self.warnings = warnings  # status lists skipped on the way (docs/SPEC.md section 8)

    @property
    def key_id(self) -> str:
        return self._signer.key_id

    @property
    def checkpoint(self) -> Checkpoint | None:
        return self._signer.checkpoint

    @property
    def batched(self) -> bool:
        return self._signer.checkpoint is not None

    @property
    def trust_stale(self) -> bool:
        """The trust list had expired and the caller allowed stale use."""
        return self._signer.trust_stale

    @property
    def attestation(self) -> Attestation:
        try:
            return self._attestation
        except AttributeError:
            m = self._message
            att = self._attestation = (
                Attestation.from_bytes(self.payload) if m is None else Attestation.from_proto(m)
            )
            return att

    def __repr__(self) -> str:
        return f"VerifiedAttestation(key_id={self.key_id!r}, batched={self.batched})"


def _fail(code: str, message: str, field: str = "attestation") -> VerificationError:
    return VerificationError(code, message, field=field)


def _signer(trust: Trust, kid: str) -> tuple[str, SigningKeyInfo]:
    owner = trust.signing_key(kid)
    if owner is None:
        raise _fail("UNKNOWN_KEY", "not a certified key of a trusted region", "key_id")
    return owner


def _public_key_of(trust: Trust) -> Callable[[str], bytes | None]:
    def public_key(kid: str) -> bytes | None:
        owner = trust.signing_key(kid)
        return None if owner is None else owner[1].public_key

    return public_key


def _verify_sig(trust: Trust, ptype: str, payload: bytes, sigs: Iterable[pb.Signature]) -> str:
    """Step 3 under the several-signatures rule of keys._envelope (docs/adr/0112)."""
    return signer_of(ptype, payload, sigs, _public_key_of(trust))


def _verify_checkpoint(trust: Trust, env: pb.Envelope) -> tuple[Checkpoint, str]:
    raw = (env.payload_type, env.payload, tuple((s.key_id, s.sig) for s in env.signatures))
    cached = trust._checkpoints.get(raw)
    if cached is not None:
        return cast(tuple[Checkpoint, str], cached)
    if env.payload_type != CHECKPOINT_TYPE:
        raise _fail("WRONG_PAYLOAD_TYPE", "checkpoint has the wrong type", "checkpoint")
    kid = _verify_sig(trust, env.payload_type, env.payload, env.signatures)
    cp = Checkpoint.from_bytes(env.payload)  # canonical encoding only
    if len(cp.root_hash) != 32:
        raise _fail("MALFORMED", "checkpoint root hash", "checkpoint")
    if len(trust._checkpoints) > 1024:
        trust._checkpoints.clear()
    trust._checkpoints[raw] = (cp, kid)
    return cp, kid


def _check_status(
    att: pb.Attestation, pool: StatusPool, now: int
) -> tuple[str, tuple[StatusWarning, ...]]:
    """Step 15: the state in the deciding list (keys._status_select), and the warnings."""
    if not att.HasField("status"):
        raise _fail("STATUS_UNAVAILABLE", "attestation has no status entry", "status")
    sl, warnings = pool.select(att.issuer_region, att.status.list_id, now)
    if sl is None:
        raise VerificationError(
            "STATUS_UNAVAILABLE",
            "no usable status list for this attestation",
            field="status",
            warnings=warnings,
        )
    try:
        state = sl.get(att.status.index)
    except KeysError:
        raise VerificationError(
            "STATUS_UNAVAILABLE", "index outside the list", field="status", warnings=warnings
        ) from None
    if state is not Status.VALID:
        raise VerificationError(
            _STATUS_CODES[state], f"status is {state.name.lower()}", field="status",
            warnings=warnings,
        )  # fmt: skip
    return "valid", warnings


def _authenticate(
    outer: pb.SignedAttestation, trust: Trust, proof_checked: bool = False
) -> tuple[bytes, str, Checkpoint | None]:
    """Steps 2-3: (payload, signing key id, checkpoint) once the bytes are authentic."""
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
    return parse_container(pb.SignedAttestation, blob, "MALFORMED", "blob", "SignedAttestation")


def status_pool(
    status: StatusCandidate | Iterable[StatusCandidate] | StatusPool | None,
    trust: Trust,
    skew: int,
) -> StatusPool | None:
    """The caller's status lists, authenticated once (None: no status check)."""
    if status is None or isinstance(status, StatusPool):
        return status
    return StatusPool(status, trust, skew=skew)


def verify_attestation(  # noqa: PLR0917 (signature fixed by issue 3)
    blob: bytes,
    trust: Trust,
    now: Instant,
    audience: str,
    nonce: bytes | None = None,
    subject_id: str | None = None,
    binding_salt: bytes | None = None,
    status: StatusCandidate | Iterable[StatusCandidate] | StatusPool | None = None,
    *,
    skew: int = DEFAULT_SKEW_SECONDS,
) -> VerifiedAttestation:
    """Verify a serialised ``SignedAttestation`` offline; see the module docstring.

    ``status``: the status lists the caller holds, in any order (signed envelopes or
    their bytes, authenticated here, or lists returned by ``verify_status_list``); the
    newest usable one of the attestation's issuer and list id decides (docs/SPEC.md
    section 8); None skips the status check (``status == "unchecked"``).
    """
    t = to_epoch(now)
    payload, kid, checkpoint = _authenticate(_parse(blob), trust)
    pool = status_pool(status, trust, skew)
    return _check(
        payload, kid, checkpoint, trust, t, audience, nonce, subject_id, binding_salt, pool, skew
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
    status: StatusPool | None,
    skew: int,
) -> VerifiedAttestation:
    """Steps 4-15, on authenticated payload bytes."""
    att = parse_signed(pb.Attestation, payload, "MALFORMED", "payload", "Attestation")
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
    if not scheme_listed(att, trust.regions[region].schemes, trust.scenarios):  # derived: 0006
        raise _fail("SCHEME_NOT_TRUSTED", "scheme not listed for this region", "scheme_id")
    refused = disclosure_verdict(att, trust.scenarios, trust.issuer) or mapping_verdict(
        att, trust.approvals
    )
    if refused is not None:
        raise _fail(refused[0], refused[2], refused[1])
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
    state, warnings = ("unchecked", ()) if status is None else _check_status(att, status, t)
    return VerifiedAttestation(payload, Signer(kid, checkpoint, trust.stale), state, att, warnings)
