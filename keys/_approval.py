"""Mapping approvals (批准或备案, H13): signed records and the hub's approved list.

A :class:`~keys.pb.v1.attestation_pb2.MappingApproval` says that one mapping
table (by its content hash) from one scheme version to another was approved
(``approved``, 批准) or filed (``filed``, 备案) with an authority, in force from
``effective_from`` until ``expires`` (0: open-ended), with the incentive reach
measured on the reference population.  The authority signs it as a DSSE
envelope under :data:`APPROVAL_TYPE` (:func:`sign_approval`).

:func:`open_approval` checks, in this order, failing closed with a
:class:`VerificationError` code of docs/SPEC.md:

1. at most :data:`MAX_APPROVAL_BYTES` of payload (``MALFORMED``);
2. the payload type (``WRONG_PAYLOAD_TYPE``);
3. a signature by the key of a listed authority over exactly these bytes
   (``UNKNOWN_KEY``, ``BAD_SIGNATURE``) — nothing is parsed before it holds;
4. the canonical encoding (``MALFORMED``);
5. every field well formed, in field-number order (``APPROVAL_INVALID``, the
   field named): see :func:`approval_problem`;
6. ``authority`` is the id of the authority whose key signed (``APPROVAL_INVALID``,
   field ``authority``).

The hub vouches for approvals to offline verifiers with an
``ApprovedMappings`` list signed by its root key under
:data:`APPROVED_MAPPINGS_TYPE` (:func:`sign_approved_mappings`), carried in
``TrustBundle.mapping_approvals``.  :func:`verify_approved_mappings` requires the
hub signature, the canonical encoding, the trust list's issuer, at most
:data:`MAX_APPROVED_MAPPINGS` entries sorted by ``mapping_sha256`` and unique,
each well formed; anything else is ``TRUST_INVALID`` (the trust material is
unusable, not one attestation).  A verifier needs no national key: the hub's
signature over the list is what it trusts (docs/adr/0206).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from keys.pb.v1 import attestation_pb2 as pb

from ._ed25519 import KeyPair, key_id
from ._envelope import Envelope, sign, verified_signer
from ._errors import VerificationError
from ._strict import canonical_bytes, parse_signed

__all__ = [
    "APPROVAL_TYPE",
    "APPROVED_MAPPINGS_TYPE",
    "DECISIONS",
    "MAX_APPROVAL_BYTES",
    "MAX_APPROVAL_FIELD_CHARS",
    "MAX_APPROVED_MAPPINGS",
    "ApprovedMappings",
    "approval_covers",
    "approval_problem",
    "mapping_verdict",
    "open_approval",
    "sign_approval",
    "sign_approved_mappings",
    "verify_approved_mappings",
]

APPROVAL_TYPE = "application/vnd.huxin.mapping-approval.v1+proto"
APPROVED_MAPPINGS_TYPE = "application/vnd.huxin.approved-mappings.v1+proto"

#: decision → its name in the plan (批准或备案): both put a table in force.
DECISIONS: Mapping[str, str] = {"approved": "批准", "filed": "备案"}
METHODS = frozenset({"agreement", "anchored", "equipercentile"})
#: Every id, version, region and authority in an approval is 1..64 characters.
MAX_APPROVAL_FIELD_CHARS = 64
#: One approval of 18 fields (at most 64 characters each) stays far below this.
MAX_APPROVAL_BYTES = 4096
#: A hub approves at most this many tables (every ordered pair of 16 schemes fits).
MAX_APPROVED_MAPPINGS = 256
MAX_APPROVED_BYTES = MAX_APPROVED_MAPPINGS * MAX_APPROVAL_BYTES
#: reach counts are sums of reference-population weights (mapping.MAX_WEIGHT per grade)
MAX_REACH_COUNT = 2**62
PPM = 1_000_000
#: Approvals start and end on whole UTC days, so a node deciding on the day of issue
#: (at its 00:00 UTC) and a verifier deciding at the attestation's issued_at agree.
DAY_SECONDS = 86_400

_TEXT_FIELDS = (
    "mapping_id",
    "mapping_version",
    "source_scheme_id",
    "source_scheme_version",
    "source_region",
    "target_scheme_id",
    "target_scheme_version",
    "target_region",
)


def _bad_text(value: str) -> bool:
    return (
        not 0 < len(value) <= MAX_APPROVAL_FIELD_CHARS
        or not value.isprintable()
        or value != value.strip()
    )


def expected_ppm(kept: int, eligible: int) -> int:
    """kept/eligible in parts per million, rounded down; 1 000 000 when no one is eligible."""
    return PPM if eligible == 0 else kept * PPM // eligible


def approval_problem(a: pb.MappingApproval) -> tuple[str, str] | None:
    """``(field, message)`` of the first ill-formed field in field-number order, else None."""
    if len(a.mapping_sha256) != 32:
        return "mapping_sha256", "must be 32 bytes (SHA-256)"
    for name in _TEXT_FIELDS[:2]:
        if _bad_text(getattr(a, name)):
            return name, f"must be 1-{MAX_APPROVAL_FIELD_CHARS} printable characters"
    if a.method not in METHODS:
        return "method", f"must be one of {', '.join(sorted(METHODS))}"
    for name in _TEXT_FIELDS[2:]:
        if _bad_text(getattr(a, name)):
            return name, f"must be 1-{MAX_APPROVAL_FIELD_CHARS} printable characters"
    if a.source_scheme_id == a.target_scheme_id:
        return "target_scheme_id", "a table maps one scheme into another"
    if a.effective_from <= 0:
        return "effective_from", "must be a positive Unix time"
    if a.effective_from % DAY_SECONDS:
        return "effective_from", "must be 00:00 UTC of a day (a whole UTC day)"
    if a.expires != 0 and a.expires <= a.effective_from:
        return "expires", "must be 0 (open-ended) or after effective_from"
    if a.expires % DAY_SECONDS:
        return "expires", "must be 0 or 00:00 UTC of a day (a whole UTC day)"
    if a.decision not in DECISIONS:
        return "decision", "must be approved (批准) or filed (备案)"
    if _bad_text(a.authority):
        return "authority", f"must be 1-{MAX_APPROVAL_FIELD_CHARS} printable characters"
    if a.reach_eligible > MAX_REACH_COUNT:
        return "reach_eligible", f"must be at most {MAX_REACH_COUNT}"
    if a.reach_kept > a.reach_eligible:
        return "reach_kept", "must not exceed reach_eligible"
    if a.reach_ppm != expected_ppm(a.reach_kept, a.reach_eligible):
        return "reach_ppm", "must be reach_kept/reach_eligible in ppm, rounded down"
    if a.issued_at <= 0:
        return "issued_at", "must be a positive Unix time"
    return None


def _require_well_formed(a: pb.MappingApproval) -> None:
    bad = approval_problem(a)
    if bad is not None:
        raise VerificationError("APPROVAL_INVALID", bad[1], field=bad[0])


def sign_approval(approval: pb.MappingApproval, key: KeyPair) -> Envelope:
    """Sign ``approval`` in its canonical encoding once it is well formed
    (``APPROVAL_INVALID`` otherwise: an authority never signs what no one could open)."""
    copy = pb.MappingApproval()
    copy.CopyFrom(approval)
    _require_well_formed(copy)
    return sign(APPROVAL_TYPE, canonical_bytes(copy), key)


def _as_envelope(envelope: Envelope | bytes | pb.Envelope) -> Envelope:
    if isinstance(envelope, bytes | bytearray):
        return Envelope.from_bytes(bytes(envelope))
    if isinstance(envelope, pb.Envelope):
        return Envelope.from_proto(envelope)
    return envelope


def open_approval(
    envelope: Envelope | bytes | pb.Envelope, authorities: Mapping[str, bytes]
) -> pb.MappingApproval:
    """The approval after the checks of the module docstring; ``authorities`` maps an
    authority id to its raw Ed25519 public key."""
    env = _as_envelope(envelope)
    if len(env.payload) > MAX_APPROVAL_BYTES:
        raise VerificationError(
            "MALFORMED", f"an approval is at most {MAX_APPROVAL_BYTES} bytes", field="payload"
        )
    owners: dict[str, set[str]] = {}
    keys: dict[str, bytes] = {}
    for authority, public in authorities.items():
        kid = key_id(bytes(public))
        keys[kid] = bytes(public)
        owners.setdefault(kid, set()).add(authority)
    payload, kid = verified_signer(env, keys, APPROVAL_TYPE)
    approval = parse_signed(pb.MappingApproval, payload, "MALFORMED", "payload", "MappingApproval")
    _require_well_formed(approval)
    if approval.authority not in owners[kid]:
        raise VerificationError(
            "APPROVAL_INVALID",
            "the approval names another authority than the one whose key signed it",
            field="authority",
        )
    return approval


def approval_covers(
    approval: pb.MappingApproval,
    *,
    mapping_sha256: bytes,
    source: tuple[str, str],
    target: tuple[str, str],
    at: int,
) -> str | None:
    """None iff ``approval`` puts exactly this table (hash) from ``source`` to ``target``
    (both ``(scheme id, version)``: compared as pairs, since an id may itself hold ``@``)
    in force at Unix time ``at``; else a short English reason."""
    if bytes(approval.mapping_sha256) != bytes(mapping_sha256):
        return "the approval is for another table"
    if (approval.source_scheme_id, approval.source_scheme_version) != tuple(source):
        return f"the approval is for a table from another scheme version than {_pair(source)}"
    if (approval.target_scheme_id, approval.target_scheme_version) != tuple(target):
        return f"the approval is for a table into another scheme version than {_pair(target)}"
    if at < approval.effective_from:
        return "the approval is not yet in force at that time"
    if approval.expires and at >= approval.expires:
        return "the approval had expired at that time"
    return None


def _pair(p: tuple[str, str]) -> str:
    return f"{p[0]}@{p[1]}"[:80]


@dataclass(frozen=True)
class ApprovedMappings:
    """The approvals an offline verifier accepts (hub-signed trust material)."""

    issuer: str
    issued_at: int
    approvals: tuple[pb.MappingApproval, ...]
    #: hash -> approval, built once: bulk verification looks one up per attestation, and
    #: a scan of up to MAX_APPROVED_MAPPINGS entries would cost more than the rest of it
    _by_hash: Mapping[bytes, pb.MappingApproval] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # the list is unique by hash (verify_approved_mappings), so no entry is lost
        object.__setattr__(self, "_by_hash", {bytes(a.mapping_sha256): a for a in self.approvals})

    def find(self, mapping_sha256: bytes) -> pb.MappingApproval | None:
        """The approval of the table with this content hash, or None."""
        return self._by_hash.get(bytes(mapping_sha256))

    def covering(
        self,
        *,
        mapping_sha256: bytes,
        source: tuple[str, str],
        target: tuple[str, str],
        at: int,
    ) -> tuple[pb.MappingApproval | None, str]:
        """``(approval, "")`` when one in the list covers the table (:func:`approval_covers`),
        else ``(None, reason)``."""
        approval = self.find(mapping_sha256)
        if approval is None:
            return None, "the table is not in the hub's approved list"
        reason = approval_covers(
            approval, mapping_sha256=mapping_sha256, source=source, target=target, at=at
        )
        return (None, reason) if reason else (approval, "")


def _approved_message(
    issuer: str, issued_at: int, approvals: Iterable[pb.MappingApproval]
) -> pb.ApprovedMappings:
    ordered = sorted(approvals, key=lambda a: bytes(a.mapping_sha256))
    return pb.ApprovedMappings(issuer=issuer, issued_at=issued_at, approvals=ordered)


def sign_approved_mappings(
    issuer: str, issued_at: int, approvals: Iterable[pb.MappingApproval], hub_root: KeyPair
) -> Envelope:
    """The hub's approved list, entries sorted by ``mapping_sha256``; refuses (``TRUST_INVALID``)
    a list :func:`verify_approved_mappings` would refuse."""
    message = _approved_message(issuer, issued_at, approvals)
    payload = canonical_bytes(message)
    _check_list(message, issuer)
    return sign(APPROVED_MAPPINGS_TYPE, payload, hub_root)


def _check_list(m: pb.ApprovedMappings, issuer: str) -> None:
    if m.issuer != issuer:
        raise VerificationError(
            "TRUST_INVALID", "approved mappings of another hub", field="mapping_approvals"
        )
    if len(m.approvals) > MAX_APPROVED_MAPPINGS:
        raise VerificationError(
            "TRUST_INVALID",
            f"at most {MAX_APPROVED_MAPPINGS} approved mappings",
            field="mapping_approvals",
        )
    hashes = [bytes(a.mapping_sha256) for a in m.approvals]
    if any(x >= y for x, y in itertools.pairwise(hashes)):
        raise VerificationError(
            "TRUST_INVALID",
            "approved mappings are not sorted by mapping_sha256, or repeat one",
            field="mapping_approvals",
        )
    for a in m.approvals:
        bad = approval_problem(a)
        if bad is not None:
            raise VerificationError(
                "TRUST_INVALID", f"approved mapping {bad[0]}: {bad[1]}", field="mapping_approvals"
            )


def verify_approved_mappings(
    envelope: Envelope | bytes | pb.Envelope, hub_root_public_key: bytes, issuer: str
) -> ApprovedMappings:
    """The approved list, once its hub signature holds and it names ``issuer`` (the trust
    list's hub) and is well formed (module docstring); ``TRUST_INVALID`` otherwise."""
    keys = {key_id(hub_root_public_key): bytes(hub_root_public_key)}
    try:
        env = _as_envelope(envelope)
        if len(env.payload) > MAX_APPROVED_BYTES:
            raise VerificationError("MALFORMED", "too large", field="mapping_approvals")
        payload, _ = verified_signer(env, keys, APPROVED_MAPPINGS_TYPE)
    except VerificationError as exc:
        raise VerificationError(
            "TRUST_INVALID", f"approved mappings signature: {exc.code}", field="mapping_approvals"
        ) from None
    m = parse_signed(
        pb.ApprovedMappings, payload, "TRUST_INVALID", "mapping_approvals", "ApprovedMappings"
    )
    _check_list(m, issuer)
    return ApprovedMappings(m.issuer, m.issued_at, tuple(m.approvals))


def mapping_verdict(
    att: pb.Attestation, approvals: ApprovedMappings | None
) -> tuple[str, str, str] | None:
    """``(code, field, message)`` when ``att`` carries a mapped grade (``att.mapped``: a
    grade disclosure's, or a threshold attestation's met in another scheme) whose table is
    not approved in ``approvals`` for the attestation's scheme version → the mapped scheme
    version at ``att.issued_at``; None otherwise (and for an attestation with no mapped
    grade).  No list at all approves nothing."""
    if not att.HasField("mapped"):
        return None
    m = att.mapped
    if approvals is None:
        return "MAPPING_NOT_APPROVED", "mapped", "the trust material holds no approved mappings"
    found, reason = approvals.covering(
        mapping_sha256=bytes(m.mapping_sha256),
        source=(att.scheme_id, att.scheme_version),
        target=(m.scheme_id, m.scheme_version),
        at=att.issued_at,
    )
    if found is None:
        return "MAPPING_NOT_APPROVED", "mapped", reason
    if (found.mapping_id, found.mapping_version) != (m.mapping_id, m.mapping_version):
        return (
            "MAPPING_NOT_APPROVED",
            "mapped",
            "the table's id or version differs from its approval",
        )
    if found.method != m.method:
        return "MAPPING_NOT_APPROVED", "mapped", "the table's method differs from its approval"
    return None
