"""Citizen authentication: signed identity assertions from an identity provider.

Real-name verification happens outside the node.  A trusted identity provider
signs an :class:`~node.pb.v1.node_pb2.IdentityAssertion` (DSSE envelope, type
:data:`IDENTITY_TYPE`) naming the citizen's ID number and the node it is meant
for; the citizen's client sends it in the binary metadata ``huxin-identity-bin``.

Invariants: the envelope's signature is verified (by ``keys``) before the
payload is parsed; the assertion must name this node as audience, be within
its validity window and not older than the configured maximum age; the ID
number is validated (GB 11643 check digit) and only its subject key leaves
this module's caller — it is never logged.  :class:`DevIdentityProvider` is
for development and the demo only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from keys import KeyPair, VerificationError, key_id, sign, subject_key, verify_envelope
from node.pb.v1 import node_pb2
from scoring import RecordError, normalise_id_number

from ._errors import UnauthenticatedError

__all__ = [
    "IDENTITY_METADATA",
    "IDENTITY_TYPE",
    "AuthenticatedCitizen",
    "DevIdentityProvider",
    "IdentityVerifier",
]

IDENTITY_TYPE = "application/vnd.huxin.identity.v1+proto"
IDENTITY_METADATA = "huxin-identity-bin"
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class AuthenticatedCitizen:
    """An authenticated citizen: the ID stays in memory for this call only."""

    subject_key: bytes
    id_number: str

    def __repr__(self) -> str:  # never print the ID number
        return f"AuthenticatedCitizen(subject_key={self.subject_key.hex()[:12]}…)"


class DevIdentityProvider:
    """A development identity provider: signs assertions with a local key."""

    def __init__(self, key: KeyPair, issuer: str = "dev-idp") -> None:
        self.key = key
        self.issuer = issuer

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def assertion(self, id_number: str, audience: str, now: int, ttl: int = 300) -> bytes:
        """Serialised Envelope asserting ``id_number`` to the node ``audience``."""
        msg = node_pb2.IdentityAssertion(
            subject_id=id_number,
            issuer=self.issuer,
            audience=audience,
            issued_at=now,
            expires_at=now + ttl,
            nonce=os.urandom(16),
        )
        return sign(IDENTITY_TYPE, msg.SerializeToString(), self.key).to_bytes()


class IdentityVerifier:
    """Checks identity assertions for one node."""

    def __init__(
        self,
        region: str,
        public_keys: tuple[bytes, ...],
        storage_secret: bytes,
        max_age_seconds: int = 600,
    ) -> None:
        self._region = region
        self._keys: Mapping[str, bytes] = {key_id(k): k for k in public_keys}
        self._secret = storage_secret
        self._max_age = max_age_seconds

    def verify(self, envelope: bytes | None, now: int) -> AuthenticatedCitizen:
        if not envelope:
            raise UnauthenticatedError(
                "IDENTITY_MISSING", "no identity assertion", field="huxin-identity-bin"
            )
        try:
            payload = verify_envelope(envelope, self._keys, IDENTITY_TYPE)
        except VerificationError as exc:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", f"identity assertion does not verify ({exc.code})"
            ) from None
        msg = node_pb2.IdentityAssertion()
        try:
            msg.ParseFromString(payload)
        except DecodeError:
            raise UnauthenticatedError("IDENTITY_INVALID", "malformed identity assertion") from None
        if msg.audience != self._region:
            raise UnauthenticatedError(
                "IDENTITY_WRONG_AUDIENCE", "assertion is for another node", field="audience"
            )
        if msg.issued_at > now + CLOCK_SKEW_SECONDS or msg.expires_at <= now:
            raise UnauthenticatedError(
                "IDENTITY_EXPIRED", "assertion outside its validity", field="expires_at"
            )
        if now - msg.issued_at > self._max_age:
            raise UnauthenticatedError("IDENTITY_EXPIRED", "assertion too old", field="issued_at")
        try:
            id_number = normalise_id_number(msg.subject_id)
        except RecordError:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", "assertion names no valid ID number", field="subject_id"
            ) from None
        return AuthenticatedCitizen(subject_key(self._secret, id_number), id_number)
