"""Who may speak as whom on the peer port: pinned peers, registered clients, public material.

The TLS handshake proves only that the federation CA issued the caller's
certificate, and the identity is the ``huxin://region/`` SAN in it.  Whoever can
get the CA to sign can therefore mint a second certificate for ``hainan``.  So
before a call is handled, :meth:`CallerCheck.admit` checks the certificate
itself (docs/adr/0415):

* **public trust material** (:data:`PUBLIC_METHODS`: the hub's trust list and
  key set, a region's key set, status list and signed incentive catalogue) is
  served to any certificate of the federation CA, whatever identity it names: it
  is signed, verifiers need it offline, and anyone may hold the bundle file anyway;
* a **peer** (an identity the trust list lists: a region or hub, or this node's
  own region) must present a certificate whose SHA-256 the trust list pins for
  it (``tls_sha256``: the certificate in use and, during a renewal, the next
  one), else ``UNAUTHENTICATED CERTIFICATE_NOT_PINNED``; a listed entry that pins
  nothing admits nobody.  A standalone development node (static
  ``[peers] allowed``, no trust list) has no pins: the CA decides there;
* an **own client** (``<this region>.<org>``, or an identity in ``[sources]
  allowed``) must present a certificate registered here and not revoked
  (:mod:`node.federation._clients`): ``CLIENT_UNKNOWN`` / ``CLIENT_REVOKED``;
* a **foreign client** (``<other listed region>.<org>``) cannot be checked
  here (its registry lives with its own region): it calls its own region's
  node, which relays on its behalf, and is refused here directly
  (``PERMISSION_DENIED CLIENT_NOT_HOME``);
* anything else (an identity no list knows) passes on to the services, which
  refuse it with their own reason (``PEER_NOT_TRUSTED``, ``SOURCE_NOT_ALLOWED``)
  so that a refusal naming a genuine consent still reaches its citizen's log.

Invariants: the check reads only the verified certificate (never a field the
caller sends); the pins follow the trust list the node holds (workers follow
the primary's, docs/adr/0312) and the registry file is re-read when it changes,
so neither a new list nor a revocation needs a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from keys import KeysError, certificate_fingerprint
from node.core._config import NodeConfig
from node.core._errors import PermissionDeniedError, UnauthenticatedError
from node.federation._clients import ClientRegistry
from node.federation._trust import TrustState, region_of_identity

__all__ = [
    "CLIENT",
    "FOREIGN_CLIENT",
    "OTHER",
    "PEER",
    "PUBLIC_METHODS",
    "CallerCheck",
    "caller_certificate",
]

#: Trust material served to any certificate of the federation CA (docs/adr/0415).
PUBLIC_METHODS = frozenset(
    {
        "/huxin.v1.HubService/GetTrustList",
        "/huxin.v1.HubService/GetHubKeySet",
        "/huxin.v1.PeerService/GetKeySet",
        "/huxin.v1.PeerService/GetStatusList",
        "/huxin.v1.PeerService/GetSignedCatalogue",  # N17: the signed incentive catalogue
    }
)
PEER, CLIENT, FOREIGN_CLIENT, OTHER = "peer", "client", "foreign-client", "other"


@lru_cache(maxsize=1024)
def _fingerprint(pem: bytes) -> bytes | None:
    try:
        return certificate_fingerprint(pem)
    except KeysError:
        return None


def caller_certificate(context: Any) -> bytes | None:
    """The PEM of the verified client certificate of a call (None without one)."""
    auth = context.auth_context()
    certs = auth.get("x509_pem_cert") if auth else None
    return bytes(certs[0]) if certs else None


class CallerCheck:
    """The certificate check of one node (every process builds its own)."""

    def __init__(
        self,
        region: str,
        trust: TrustState,
        registry: ClientRegistry,
        *,
        sources: Sequence[str] = (),
        own_certificate: bytes = b"",
    ) -> None:
        self.region = region
        self.trust = trust
        self.registry = registry
        self.sources = frozenset(sources)
        self._own = frozenset({certificate_fingerprint(own_certificate)} if own_certificate else ())

    @classmethod
    def for_node(cls, config: NodeConfig, trust: TrustState, own_certificate: bytes) -> CallerCheck:
        return cls(
            config.region,
            trust,
            ClientRegistry(config.clients.registry),
            sources=config.sources,
            own_certificate=own_certificate,
        )

    def _listed(self) -> Mapping[str, Any] | Sequence[str]:
        return self.trust.regions() if self.trust.federated else self.trust.static_peers

    def kind(self, identity: str) -> str:
        """:data:`PEER`, :data:`CLIENT`, :data:`FOREIGN_CLIENT` or :data:`OTHER`."""
        listed = self._listed()
        if identity == self.region or identity in listed:
            return PEER
        home = region_of_identity(identity, listed)
        if identity in self.sources or home == self.region:
            return CLIENT
        return FOREIGN_CLIENT if home in listed else OTHER

    def pins(self, identity: str) -> frozenset[bytes] | None:
        """The fingerprints a peer may present (None: no trust list, the CA decides)."""
        if not self.trust.federated:
            return None
        entry = self.trust.regions().get(identity)
        listed = entry.tls_sha256 if entry is not None else frozenset()
        return listed | self._own if identity == self.region else listed

    def admit(self, method: str, identity: str, context: Any) -> None:
        """Refuse the call unless the caller's certificate may speak as ``identity``."""
        if method in PUBLIC_METHODS:
            return
        self.admit_certificate(identity, caller_certificate(context) or b"")

    def admit_certificate(self, identity: str, cert_pem: bytes) -> None:
        kind = self.kind(identity)
        if kind == PEER:
            pins = self.pins(identity)
            if pins is not None and _fingerprint(cert_pem) not in pins:
                raise UnauthenticatedError(
                    "CERTIFICATE_NOT_PINNED",
                    f"this certificate of {identity} is not one the trust list pins for it",
                )
        elif kind == CLIENT:
            self.registry.check(identity, _fingerprint(cert_pem) or b"")
        elif kind == FOREIGN_CLIENT:
            raise PermissionDeniedError(
                "CLIENT_NOT_HOME",
                f"{identity} calls its own region's node, which relays for it;"
                " this node cannot check its certificate",
            )
