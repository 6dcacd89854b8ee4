"""Grade attestations: the domain type, single and batch issuance.

An :class:`Attestation` is serialised once by the issuer (``to_bytes``); those
bytes are what is signed, either singly (a DSSE envelope) or as one leaf of a
Merkle batch whose root is signed once as a :class:`Checkpoint`.  The leaf data
of a batched payload is ``PAE(payload_type, payload)``, so a leaf is
domain-separated exactly like a signature.  What travels to an integrator is a
serialised ``SignedAttestation`` (envelope, or payload + inclusion proof +
checkpoint envelope), verifiable on its own with a trust bundle.

What an attestation discloses follows its kind (``keys._disclosure``): a
threshold attestation carries neither grade nor score, a grade attestation the
grade, a grade-and-score attestation both, a statutory push (a monthly snapshot
leaf for the hub) grade and score without a consent; :meth:`Attestation.check`
refuses to serialise anything else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from keys.pb.v1 import attestation_pb2 as pb

from ._disclosure import Threshold, disclosure_problem
from ._ed25519 import KeyPair
from ._envelope import ATTESTATION_TYPE, CHECKPOINT_TYPE, Envelope, pae, sign
from ._errors import KeysError
from ._merkle import carry_levels, path_from_levels
from ._strict import parse_signed
from ._timeutil import Instant, to_epoch

__all__ = [
    "Attestation",
    "Batch",
    "Checkpoint",
    "MappedGrade",
    "issue_attestation",
    "issue_batch",
    "sign_checkpoint",
]

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class MappedGrade:
    grade: str
    scheme_id: str
    scheme_version: str
    mapping_id: str
    mapping_version: str
    mapping_sha256: bytes
    method: str


@dataclass(frozen=True, slots=True)
class Attestation:
    """A grade attestation (DESIGN.md, "Attestations"); times are Unix seconds."""

    attestation_id: str
    issuer_region: str
    scheme_id: str
    scheme_version: str
    grade: str
    period: str
    model_version: str
    issued_at: int
    expires_at: int
    subject_binding: bytes
    consent_id: str
    consent_sha256: bytes
    audience: str
    purpose: str
    nonce: bytes = b""
    status_list_id: str = ""
    status_index: int | None = None
    score: int | None = None
    mapped: MappedGrade | None = None
    #: "<scheme id>/<scenario id>" of the consent's catalogue scenario ("" for statutory)
    scenario: str = ""
    #: threshold | grade | grade_and_score | statutory (keys._disclosure)
    disclosure: str = ""
    #: the scenario's requirement the subject meets (every consented attestation)
    threshold: Threshold | None = None

    def check(self, message: pb.Attestation | None = None) -> None:
        """Raise :class:`KeysError` (``INVALID_ATTESTATION``) naming a bad field;
        ``message`` is :meth:`to_proto`'s result when the caller has it already."""
        bad = None
        if not self.issuer_region:
            bad = "issuer_region"
        elif not self.scheme_id:
            bad = "scheme_id"
        elif not _PERIOD.match(self.period):
            bad = "period"
        elif self.expires_at <= self.issued_at:
            bad = "expires_at"
        elif len(self.subject_binding) != 32:
            bad = "subject_binding"
        elif not self.audience:
            bad = "audience"
        elif self.mapped is not None and len(self.mapped.mapping_sha256) != 32:
            bad = "mapped.mapping_sha256"
        if bad:
            raise KeysError(bad, "missing or invalid", code="INVALID_ATTESTATION")
        problem = disclosure_problem(self.to_proto() if message is None else message)
        if problem is not None:
            raise KeysError(problem[0], problem[1], code="INVALID_ATTESTATION")

    def to_proto(self) -> pb.Attestation:
        m = pb.Attestation(
            attestation_id=self.attestation_id,
            issuer_region=self.issuer_region,
            scheme_id=self.scheme_id,
            scheme_version=self.scheme_version,
            grade=self.grade,
            period=self.period,
            model_version=self.model_version,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
            subject_binding=self.subject_binding,
            consent_id=self.consent_id,
            consent_sha256=self.consent_sha256,
            audience=self.audience,
            purpose=self.purpose,
            nonce=self.nonce,
            scenario=self.scenario,
            disclosure=self.disclosure,
        )
        if self.score is not None:
            m.score = self.score
        if self.status_index is not None:
            m.status.list_id = self.status_list_id
            m.status.index = self.status_index
        if self.mapped is not None:
            mg = self.mapped
            m.mapped.CopyFrom(
                pb.MappedGrade(
                    grade=mg.grade,
                    scheme_id=mg.scheme_id,
                    scheme_version=mg.scheme_version,
                    mapping_id=mg.mapping_id,
                    mapping_version=mg.mapping_version,
                    mapping_sha256=mg.mapping_sha256,
                    method=mg.method,
                )
            )
        if self.threshold is not None:
            th = self.threshold
            m.threshold.CopyFrom(
                pb.Threshold(
                    scheme_id=th.scheme_id, scheme_version=th.scheme_version, min_tier=th.min_tier
                )
            )
        return m

    def to_bytes(self) -> bytes:
        """The payload bytes: serialised once, then only ever signed and copied."""
        m = self.to_proto()
        self.check(m)
        return m.SerializeToString(deterministic=True)

    @classmethod
    def from_proto(cls, m: pb.Attestation) -> Attestation:
        mapped = None
        if m.HasField("mapped"):
            g = m.mapped
            mapped = MappedGrade(
                g.grade,
                g.scheme_id,
                g.scheme_version,
                g.mapping_id,
                g.mapping_version,
                bytes(g.mapping_sha256),
                g.method,
            )
        return cls(
            attestation_id=m.attestation_id,
            issuer_region=m.issuer_region,
            scheme_id=m.scheme_id,
            scheme_version=m.scheme_version,
            grade=m.grade,
            period=m.period,
            model_version=m.model_version,
            issued_at=m.issued_at,
            expires_at=m.expires_at,
            subject_binding=bytes(m.subject_binding),
            consent_id=m.consent_id,
            consent_sha256=bytes(m.consent_sha256),
            audience=m.audience,
            purpose=m.purpose,
            nonce=bytes(m.nonce),
            status_list_id=m.status.list_id if m.HasField("status") else "",
            status_index=m.status.index if m.HasField("status") else None,
            score=m.score if m.HasField("score") else None,
            mapped=mapped,
            scenario=m.scenario,
            disclosure=m.disclosure,
            threshold=Threshold(
                m.threshold.scheme_id, m.threshold.scheme_version, m.threshold.min_tier
            )
            if m.HasField("threshold")
            else None,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Attestation:
        """Parse payload bytes (only call after their signature has been verified);
        canonical encoding only (keys._strict)."""
        return cls.from_proto(
            parse_signed(pb.Attestation, data, "MALFORMED", "payload", "Attestation")
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: origin (issuer region), size, root, time, kind."""

    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: int
    kind: str = "batch"

    def to_bytes(self) -> bytes:
        return pb.Checkpoint(
            origin=self.origin,
            tree_size=self.tree_size,
            root_hash=self.root_hash,
            timestamp=self.timestamp,
            kind=self.kind,
        ).SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Parse signed checkpoint bytes (canonical encoding only, keys._strict)."""
        m = parse_signed(pb.Checkpoint, data, "MALFORMED", "checkpoint", "Checkpoint")
        return cls(m.origin, m.tree_size, bytes(m.root_hash), m.timestamp, m.kind)


def sign_checkpoint(
    key: KeyPair,
    origin: str,
    tree_size: int,
    root_hash: bytes,
    timestamp: Instant,
    *,
    kind: str = "batch",
) -> Envelope:
    """Sign a checkpoint (batches and transparency logs use the same format)."""
    if len(root_hash) != 32:
        raise KeysError("root_hash", "must be 32 bytes", code="INVALID_CHECKPOINT")
    cp = Checkpoint(
        origin, tree_size, bytes(root_hash), to_epoch(timestamp, field="timestamp"), kind
    )
    return sign(CHECKPOINT_TYPE, cp.to_bytes(), key)


def _varint(n: int) -> bytes:
    if n <= 0x7F:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited protobuf field; empty data is omitted (proto3 default)."""
    return tag + _varint(len(data)) + data if data else b""


# Envelope.payload_type (field 2) for attestations, serialised once.
_ATTESTATION_TYPE_FIELD = _field(b"\x12", ATTESTATION_TYPE.encode())


@lru_cache(maxsize=64)
def _signature_prefix(key_id: str) -> bytes:
    """``Signature.key_id`` (field 1) serialised, followed by the tag of ``sig`` (field 2)."""
    return _field(b"\x0a", key_id.encode()) + b"\x12"


def issue_attestation(attestation: Attestation | bytes, key: KeyPair) -> bytes:
    """A singly-signed attestation: serialised ``SignedAttestation`` (envelope).

    The bytes are assembled from serialised fields in field-number order —
    exactly what ``SignedAttestation(envelope=sign(...).to_proto())
    .SerializeToString()`` gives (tests/unit/keys/test_envelope.py checks the
    two against each other), without building the intermediate messages.
    """
    payload = attestation.to_bytes() if isinstance(attestation, Attestation) else attestation
    payload = bytes(payload)
    sig = key.sign(pae(ATTESTATION_TYPE, payload))
    signature = _signature_prefix(key.key_id) + _varint(len(sig)) + sig
    envelope = (
        _field(b"\x0a", payload)  # Envelope.payload
        + _ATTESTATION_TYPE_FIELD
        + _field(b"\x1a", signature)  # Envelope.signatures[0]
    )
    return _field(b"\x0a", envelope)  # SignedAttestation.envelope (field 1)


class Batch:
    """Many payloads under one signed Merkle root; ``bundle(i)`` is item ``i``'s blob.

    Bundles are assembled from pre-serialised parts (protobuf fields may be
    concatenated): ``payload`` and ``proof`` per item, then the shared
    ``payload_type`` and ``checkpoint`` serialised once per batch.
    """

    __slots__ = ("_levels", "_tail", "checkpoint", "payload_type", "payloads")

    def __init__(
        self,
        payloads: Sequence[bytes],
        levels: list[list[bytes]],
        checkpoint: Envelope,
        payload_type: str,
    ) -> None:
        self.payloads = payloads
        self._levels = levels
        self.checkpoint = checkpoint
        self.payload_type = payload_type
        self._tail = pb.BatchedAttestation(
            payload_type=payload_type, checkpoint=checkpoint.to_proto()
        ).SerializeToString(deterministic=True)

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def inclusion_proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.payloads):
            raise KeysError("index", "outside the batch", code="INVALID_PROOF_INPUT")
        return path_from_levels(self._levels, index)

    def proof(self, index: int) -> pb.InclusionProof:
        return pb.InclusionProof(
            leaf_index=index, tree_size=len(self.payloads), hashes=self.inclusion_proof(index)
        )

    def bundle(self, index: int) -> bytes:
        """Serialised ``SignedAttestation`` for item ``index``, verifiable on its own."""
        head = pb.BatchedAttestation(
            payload=self.payloads[index], proof=self.proof(index)
        ).SerializeToString(deterministic=True)
        inner = head + self._tail
        return b"\x12" + _varint(len(inner)) + inner  # SignedAttestation.batched (field 2)

    def bundles(self) -> list[bytes]:
        return [self.bundle(i) for i in range(len(self.payloads))]


def issue_batch(
    attestations: Sequence[Attestation | bytes],
    key: KeyPair,
    origin: str,
    now: Instant,
    payload_type: str = ATTESTATION_TYPE,
) -> Batch:
    """Sign one checkpoint over all payloads (one signature per batch, not per person)."""
    if not attestations:
        raise KeysError("attestations", "batch is empty", code="INVALID_BATCH")
    payloads = [a.to_bytes() if isinstance(a, Attestation) else bytes(a) for a in attestations]
    sha = hashlib.sha256
    levels = carry_levels([sha(b"\x00" + pae(payload_type, p)).digest() for p in payloads])
    checkpoint = sign_checkpoint(key, origin, len(payloads), levels[-1][0], now, kind="batch")
    return Batch(payloads, levels, checkpoint, payload_type)
