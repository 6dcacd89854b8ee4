"""Ed25519 signatures over canonical content, DSSE-compatible.

A signature is Ed25519 over DSSE's pre-authentication encoding
``PAE(payload_type, canonical(content))`` (``"DSSEv1" SP len(type) SP type SP
len(body) SP body``), exactly what ``keys.sign(payload_type, body, key)``
produces for the same bytes, so a table's signatures can also travel as a DSSE
envelope whose payload is the canonical content.  Key id = hex of the first 16
bytes of SHA-256 of the raw public key (DESIGN.md, "Keys and trust").

The primitives (``key_id``, ``pae``, strict ``ed25519_verify``) come from
:mod:`keys`; this module only adds the table-side interface (``Signature``
with its JSON form, ``sign_bytes``, ``verify_signatures``).  Verification is
strict and fails closed: a non-canonical ``S``, a small-order key or a key
whose id does not match is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import nacl.signing

from keys import ed25519_verify, key_id, pae

from ._errors import SignatureError

__all__ = [
    "HISTOGRAM_TYPE",
    "TABLE_TYPE",
    "Signature",
    "SigningKeyLike",
    "key_id",
    "pae",
    "sign_bytes",
    "verify_signatures",
]

TABLE_TYPE = "application/vnd.huxin.mapping-table.v1+json"
HISTOGRAM_TYPE = "application/vnd.huxin.grade-histogram.v1+json"


class SigningKeyLike(Protocol):
    """Anything that signs like ``nacl.signing.SigningKey`` (PyNaCl) or ``keys.KeyPair``."""

    def sign(self, message: bytes) -> object: ...


@dataclass(frozen=True)
class Signature:
    """One signature: the signer's key id and the 64 raw signature bytes."""

    key_id: str
    sig: bytes

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "sig": base64.b64encode(self.sig).decode("ascii")}

    @classmethod
    def from_json(cls, raw: object, field: str = "signatures") -> Signature:
        if not isinstance(raw, dict) or set(raw) != {"key_id", "sig"}:
            raise SignatureError(field, "must be an object {key_id, sig}", code="BAD_SIGNATURE")
        kid, sig = raw["key_id"], raw["sig"]
        if not isinstance(kid, str) or not isinstance(sig, str):
            raise SignatureError(field, "key_id and sig must be strings", code="BAD_SIGNATURE")
        try:
            sig_bytes = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{field}.sig", "is not base64", code="BAD_SIGNATURE") from None
        return cls(kid, sig_bytes)


def _public_key_of(key: SigningKeyLike) -> bytes:
    if isinstance(key, nacl.signing.SigningKey):
        return bytes(key.verify_key)
    public = getattr(key, "public_key", None)
    if isinstance(public, bytes):
        return public
    raise TypeError("signing key must be a nacl SigningKey or expose public_key bytes")


def sign_bytes(payload_type: str, payload: bytes, key: SigningKeyLike) -> Signature:
    """Sign ``PAE(payload_type, payload)``; returns the key id and signature."""
    raw = key.sign(pae(payload_type, payload))
    sig = raw.signature if isinstance(raw, nacl.signing.SignedMessage) else raw
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise TypeError("signing key returned something that is not a 64-byte signature")
    return Signature(key_id(_public_key_of(key)), sig)


def verify_signatures(
    payload_type: str,
    payload: bytes,
    signatures: Iterable[Signature],
    keys: Mapping[str, bytes],
) -> frozenset[str]:
    """Key ids (among ``keys``: key id → raw public key) whose signatures verify.

    A signature by a key in ``keys`` that does not verify raises ``BAD_SIGNATURE``
    (a tampered table is refused, not silently skipped); signatures by unknown
    keys are ignored.
    """
    message = pae(payload_type, payload)
    good: set[str] = set()
    for s in signatures:
        public = keys.get(s.key_id)
        if public is None:
            continue
        if key_id(public) != s.key_id or not ed25519_verify(public, message, s.sig):
            raise SignatureError(
                "signatures", f"signature by key {s.key_id} does not verify", code="BAD_SIGNATURE"
            )
        good.add(s.key_id)
    return frozenset(good)
