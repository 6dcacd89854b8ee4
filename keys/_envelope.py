"""DSSE envelopes: sign bytes, verify before parsing.

``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` where
``LEN`` is the ASCII decimal byte length and ``SP`` one space (0x20).  The
signature is Ed25519 over the PAE.  Invariants: the payload is returned only
after a signature by a known key over exactly the received bytes has been
checked; nothing is re-serialised for verification; every failure raises
:class:`VerificationError` with a stable code (``MALFORMED``,
``WRONG_PAYLOAD_TYPE``, ``UNKNOWN_KEY``, ``BAD_SIGNATURE``).

Several signatures (docs/adr/0112, :func:`signer_of`): signatures by keys the
verifier does not know are ignored (a witness's co-signature, say); every
signature by a key it knows must verify, whatever its position; at least one
must exist.  So one bad signature by a known key refuses the envelope even
when another verifies: no verdict depends on the order of the signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import nacl.signing

from keys.pb.v1 import attestation_pb2 as pb

from ._ed25519 import KeyPair, ed25519_verify, key_id
from ._errors import VerificationError
from ._strict import parse_container

__all__ = [
    "ATTESTATION_TYPE",
    "CHECKPOINT_TYPE",
    "KEYSET_TYPE",
    "MAX_SIGNATURES",
    "STATUSLIST_TYPE",
    "TRUSTLIST_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "pae",
    "sign",
    "signer_of",
    "verified_signer",
    "verify_envelope",
]

ATTESTATION_TYPE = "application/vnd.huxin.attestation.v2+proto"
CHECKPOINT_TYPE = "application/vnd.huxin.checkpoint.v1+proto"
KEYSET_TYPE = "application/vnd.huxin.keyset.v1+proto"
TRUSTLIST_TYPE = "application/vnd.huxin.trustlist.v1+proto"
STATUSLIST_TYPE = "application/vnd.huxin.statuslist.v1+proto"

#: At most this many signatures on one envelope (more is ``MALFORMED``): a region's
#: signature plus witnesses' co-signatures stay far below it, and it bounds the work
#: an attacker can make a verifier do with one envelope.
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    key_id: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope; ``payload`` holds the exact bytes the signer produced."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def to_proto(self) -> pb.Envelope:
        return pb.Envelope(
            payload=self.payload,
            payload_type=self.payload_type,
            signatures=[pb.Signature(key_id=s.key_id, sig=s.sig) for s in self.signatures],
        )

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString()

    @classmethod
    def from_proto(cls, message: pb.Envelope) -> Envelope:
        return cls(
            payload_type=message.payload_type,
            payload=bytes(message.payload),
            signatures=tuple(
                EnvelopeSignature(key_id=s.key_id, sig=bytes(s.sig)) for s in message.signatures
            ),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.from_proto(
            parse_container(pb.Envelope, data, "MALFORMED", "envelope", "Envelope")
        )


def sign(payload_type: str, payload: bytes, key: KeyPair | nacl.signing.SigningKey) -> Envelope:
    """Sign ``payload`` (bytes, produced once by the caller) as a DSSE envelope."""
    if isinstance(key, nacl.signing.SigningKey):
        key = KeyPair(bytes(key))
    sig = key.sign(pae(payload_type, bytes(payload)))
    return Envelope(payload_type, bytes(payload), (EnvelopeSignature(key.key_id, sig),))


def signer_of(
    payload_type: str,
    payload: bytes,
    signatures: Iterable[EnvelopeSignature | pb.Signature],
    public_key_of: Callable[[str], bytes | None],
) -> str:
    """The key id of the first signature by a known key, once the envelope passes the rule
    of the module docstring; ``public_key_of`` maps a key id to its raw key (None: unknown).

    ``MALFORMED`` (more than :data:`MAX_SIGNATURES`), ``UNKNOWN_KEY`` (no signature by a
    known key, none at all included), ``BAD_SIGNATURE`` (a known key's signature fails).
    """
    sigs = list(signatures)
    if len(sigs) > MAX_SIGNATURES:
        raise VerificationError(
            "MALFORMED", f"more than {MAX_SIGNATURES} signatures", field="signatures"
        )
    message = pae(payload_type, payload)
    first = None
    for s in sigs:
        public = public_key_of(s.key_id)
        if public is None:
            continue
        if key_id(public) != s.key_id or not ed25519_verify(public, message, s.sig):
            raise VerificationError(
                "BAD_SIGNATURE", "a signature by a known key does not verify", field="signatures"
            )
        first = first or str(s.key_id)
    if first is None:
        raise VerificationError("UNKNOWN_KEY", "no signature by a known key", field="key_id")
    return first


def verified_signer(
    envelope: Envelope | bytes | pb.Envelope,
    keys: Mapping[str, bytes],
    payload_type: str | None = None,
) -> tuple[bytes, str]:
    """Like :func:`verify_envelope` but also returns the key id that verified."""
    if isinstance(envelope, bytes | bytearray):
        envelope = Envelope.from_bytes(envelope)
    elif isinstance(envelope, pb.Envelope):
        envelope = Envelope.from_proto(envelope)
    if payload_type is not None and envelope.payload_type != payload_type:
        raise VerificationError(
            "WRONG_PAYLOAD_TYPE", f"expected {payload_type}", field="payload_type"
        )
    kid = signer_of(envelope.payload_type, envelope.payload, envelope.signatures, keys.get)
    return envelope.payload, kid


def verify_envelope(
    envelope: Envelope | bytes | pb.Envelope,
    keys: Mapping[str, bytes],
    payload_type: str | None = None,
) -> bytes:
    """Return the payload after a signature by one of ``keys`` (key id → raw public key)
    over PAE(payload_type, payload) verifies; raises :class:`VerificationError` otherwise."""
    return verified_signer(envelope, keys, payload_type)[0]
