"""Citizen authentication: signed identity assertions from an identity provider.

Real-name verification happens outside the node.  A trusted identity provider
signs an :class:`~node.pb.v1.node_pb2.IdentityAssertion` (DSSE envelope, type
:data:`IDENTITY_TYPE`) naming the citizen's ID number and the node it is meant
for; the citizen's client sends it in the binary metadata ``huxin-identity-bin``.

Invariants: the envelope's signature is verified (by ``keys``) before the
payload is parsed; the assertion must name this node as audience, be within
its validity window and not older than the configured maximum age; the ID
number is validated (GB 11643 check digit) and only its subject key leaves
this module's caller — it is never logged.  Each assertion is accepted ONCE
per node: its nonce (16..64 bytes) is recorded in a :class:`~node.rpc._replay.ReplayCache`
until the assertion could no longer be accepted anyway, and a second use is
``IDENTITY_REPLAYED`` (docs/adr/0416); only a fully valid assertion reaches
the cache, so junk cannot fill it.  A citizen's client therefore mints a fresh
assertion for every call.  :class:`DevIdentityProvider` is for development and
the demo only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from keys import KeyPair, VerificationError, key_id, sign, subject_key, verify_envelope
from node.core._config import DEFAULT_REPLAY_ENTRIES, NodeConfig
from node.core._errors import UnauthenticatedError
from node.pb.v1 import node_pb2
from node.rpc._replay import KEY_BYTES, ReplayCache
from scoring import RecordError, normalise_id_number

__all__ = [
    "IDENTITY_METADATA",
    "IDENTITY_TYPE",
    "AuthenticatedCitizen",
    "DevIdentityProvider",
    "IdentityVerifier",
    "replay_cache",
]

IDENTITY_TYPE = "application/vnd.huxin.identity.v1+proto"
IDENTITY_METADATA = "huxin-identity-bin"
CLOCK_SKEW_SECONDS = 60
NONCE_MIN, NONCE_MAX = 16, 64  # bytes of an assertion's nonce (its replay-cache key)


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
        """Serialised Envelope asserting ``id_number`` to the node ``audience``.

        Good for ONE call: every assertion carries a fresh random nonce and the
        node refuses it the second time (``IDENTITY_REPLAYED``)."""
        msg = node_pb2.IdentityAssertion(
            subject_id=id_number,
            issuer=self.issuer,
            audience=audience,
            issued_at=now,
            expires_at=now + ttl,
            nonce=os.urandom(16),
        )
        return sign(IDENTITY_TYPE, msg.SerializeToString(), self.key).to_bytes()


def replay_cache(config: NodeConfig) -> ReplayCache:
    """The node's replay cache: on SQLite journaled next to its database
    (``<database>.identity-replay``); on PostgreSQL the ``identity_replay`` table every
    replica shares (issue 18, docs/adr/0702), so no replica accepts an assertion another
    one has."""
    if config.storage.dialect == "postgresql":
        from node.store._replay import SharedReplay

        return ReplayCache(
            config.identity.replay_cache_entries, shared=SharedReplay(config.storage)
        )
    journal = Path(f"{config.database}.identity-replay")
    return ReplayCache(config.identity.replay_cache_entries, journal)


def _replay_key(issuer: str, nonce: bytes) -> bytes:
    """The cache key of an assertion: its provider and nonce (a provider's nonces are unique)."""
    raw = issuer.encode()
    digest = hashlib.sha256(len(raw).to_bytes(2, "big") + raw + nonce).digest()
    return digest[:KEY_BYTES]


class IdentityVerifier:
    """Checks identity assertions for one node, each accepted once (``replay``:
    the node's journaled cache; default: a memory-only one)."""

    def __init__(
        self,
        region: str,
        public_keys: tuple[bytes, ...],
        storage_secret: bytes,
        max_age_seconds: int = 600,
        *,
        replay: ReplayCache | None = None,
    ) -> None:
        self._region = region
        self._keys: Mapping[str, bytes] = {key_id(k): k for k in public_keys}
        self._secret = storage_secret
        self._max_age = max_age_seconds
        self._replay = replay if replay is not None else ReplayCache(DEFAULT_REPLAY_ENTRIES)

    def close(self) -> None:
        self._replay.close()

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
        if not NONCE_MIN <= len(msg.nonce) <= NONCE_MAX:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", f"nonce must be {NONCE_MIN}-{NONCE_MAX} bytes", field="nonce"
            )
        try:
            id_number = normalise_id_number(msg.subject_id)
        except RecordError:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", "assertion names no valid ID number", field="subject_id"
            ) from None
        # Last: only an assertion that is valid in every other respect takes a place.
        until = min(msg.expires_at, msg.issued_at + self._max_age + 1)
        self._replay.admit(_replay_key(msg.issuer, bytes(msg.nonce)), until, now)
        return AuthenticatedCitizen(subject_key(self._secret, id_number), id_number)
