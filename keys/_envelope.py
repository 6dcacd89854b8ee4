"""DSSE envelopes: sign bytes, verify before parsing.

``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` where
``LEN`` is the ASCII decimal byte length and ``SP`` one space (0x20).  The
signature is Ed25519 over the PAE.  Invariants: the payload is returned only
after a signature by a known key over exactly the received bytes has been
checked; nothing is re-serialised for verification; every failure raises
:class:`VerificationError` with a stable code (``MALFORMED``,
``WRONG_PAYLOAD_TYPE``, ``UNKNOWN_KEY``, ``BAD_SIGNATURE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import nacl.signing
from google.protobuf.message import DecodeError

from node.pb.v1 import attestation_pb2 as pb

from ._ed25519 import KeyPair, ed25519_verify, key_id
from ._errors import VerificationError

__all__ = [
    "ATTESTATION_TYPE",
    "CHECKPOINT_TYPE",
    "KEYSET_TYPE",
    "STATUSLIST_TYPE",
    "TRUSTLIST_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "pae",
    "sign",
    "verify_envelope",
]

ATTESTATION_TYPE = "application/vnd.huxin.attestation.v1+proto"
CHECKPOINT_TYPE = "application/vnd.huxin.checkpoint.v1+proto"
KEYSET_TYPE = "application/vnd.huxin.keyset.v1+proto"
TRUSTLIST_TYPE = "application/vnd.huxin.trustlist.v1+proto"
STATUSLIST_TYPE = "application/vnd.huxin.statuslist.v1+proto"


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
        message = pb.Envelope()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError:
            raise VerificationError("MALFORMED", "not an Envelope", field="envelope") from None
        return cls.from_proto(message)


def sign(payload_type: str, payload: bytes, key: KeyPair | nacl.signing.SigningKey) -> Envelope:
    """Sign ``payload`` (bytes, produced once by the caller) as a DSSE envelope."""
    if isinstance(key, nacl.signing.SigningKey):
        key = KeyPair(bytes(key))
    sig = key.sign(pae(payload_type, bytes(payload)))
    return Envelope(payload_type, bytes(payload), (EnvelopeSignature(key.key_id, sig),))


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
    if not envelope.signatures:
        raise VerificationError("BAD_SIGNATURE", "no signature", field="signatures")
    message = pae(envelope.payload_type, envelope.payload)
    known = False
    for s in envelope.signatures:
        public = keys.get(s.key_id)
        if public is None:
            continue
        known = True
        if key_id(public) == s.key_id and ed25519_verify(public, message, s.sig):
            return envelope.payload, s.key_id
    if not known:
        raise VerificationError("UNKNOWN_KEY", "no signature by a known key", field="key_id")
    raise VerificationError("BAD_SIGNATURE", "signature does not verify", field="signatures")


def verify_envelope(
    envelope: Envelope | bytes | pb.Envelope,
    keys: Mapping[str, bytes],
    payload_type: str | None = None,
) -> bytes:
    """Return the payload after a signature by one of ``keys`` (key id → raw public key)
    over PAE(payload_type, payload) verifies; raises :class:`VerificationError` otherwise."""
    return verified_signer(envelope, keys, payload_type)[0]
