"""Consent tokens: verified against the node's own key set, then parsed, once.

Invariants:

* a token is verified before its payload is parsed, against EVERY signing key
  of the node's own key set (certified by the region root), so a key rotation
  keeps outstanding tokens valid;
* the key that verified must have been valid and not revoked at the grant's
  ``granted_at`` (else ``CONSENT_KEY_REVOKED`` / ``CONSENT_KEY_NOT_VALID``), and
  the grant must be issued by this region (else ``CONSENT_INVALID``);
* verified grants are remembered by the token's exact bytes (payload, type and
  signatures): the same bytes verify the same way, so a repeat skips the
  Ed25519 check; the key map and this cache are rebuilt when the key set's
  version changes, and the cache holds at most :data:`TOKEN_CACHE` grants.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from keys import KeySet, VerificationError, verified_signer
from keys.pb.v1 import attestation_pb2
from node.core._errors import PermissionDeniedError
from node.core._secrets import NodeSecrets
from node.disclosure import CONSENT_TYPE
from node.pb.v1 import node_pb2

__all__ = ["TOKEN_CACHE", "ConsentTokens"]

TOKEN_CACHE = 4096


class ConsentTokens:
    """The node's verified consent grants, by token bytes."""

    def __init__(self, secrets: NodeSecrets, region: str) -> None:
        self._secrets = secrets
        self._region = region
        self._verified: dict[bytes, node_pb2.ConsentGrant] = {}
        self._key_set: KeySet | None = None
        self._key_map: dict[str, bytes] = {}

    def grant(self, token: attestation_pb2.Envelope) -> node_pb2.ConsentGrant:
        """The grant ``token`` carries, once it verified; PERMISSION_DENIED otherwise."""
        key_set = self._own_keys()
        cache_key = b"".join(
            [token.payload, token.payload_type.encode()]
            + [s.key_id.encode() + s.sig for s in token.signatures]
        )
        cached = self._verified.get(cache_key)
        if cached is not None:
            return cached
        grant = self._verify(token, key_set)
        if len(self._verified) >= TOKEN_CACHE:
            self._verified.clear()
        self._verified[cache_key] = grant
        return grant

    def _own_keys(self) -> KeySet:
        """The node's key set; on a new version the key map and token cache are rebuilt."""
        ks = self._secrets.key_set
        if ks is not self._key_set:
            self._key_map = {k.key_id: k.public_key for k in ks.keys}
            self._verified.clear()
            self._key_set = ks
        return ks

    def _verify(self, token: attestation_pb2.Envelope, key_set: KeySet) -> node_pb2.ConsentGrant:
        try:
            payload, kid = verified_signer(token, self._key_map, CONSENT_TYPE)
        except VerificationError as exc:
            raise PermissionDeniedError(
                "CONSENT_INVALID",
                f"consent token does not verify ({exc.code})",
                field="consent_token",
            ) from None
        grant = node_pb2.ConsentGrant()
        try:  # the only parse of the payload, after its signature verified
            grant.ParseFromString(payload)
        except DecodeError:
            raise PermissionDeniedError(
                "CONSENT_INVALID", "malformed consent grant", field="consent_token"
            ) from None
        if grant.issuer_region != self._region:
            raise PermissionDeniedError(
                "CONSENT_INVALID", "consent issued by another region", field="consent_token"
            )
        info = key_set.find(kid)
        problem = "KEY_NOT_VALID" if info is None else info.problem_at(grant.granted_at)
        if problem is not None:
            # A revoked key signs nothing valid from its revocation time on (DESIGN).
            raise PermissionDeniedError(
                f"CONSENT_{problem}",
                "the consent token's signing key was not valid at the grant time",
                field="consent_token",
            )
        return grant
