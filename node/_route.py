"""Routing of consented attestation requests to the subject's home region.

A requester asks any node it can reach (its own region's node, or its hub).
The consent token names the region that issued it (``issuer_region``, the
subject's home region); that region alone checks the consent and signs the
attestation, so the attestation verifies offline end to end whatever the
route.  See docs/adr/0411.

Next hop (:meth:`Router.next_hop`):

* on a **region** node: the home region's endpoint from the trust list when
  ``[federation].route`` is ``auto`` or ``direct`` and one is listed,
  otherwise the node's hub (``route = "hub"`` always goes through the hub);
* on a **hub**: the home region's endpoint when the region's home hub (its
  ``hub:<id>`` tag in the trust list) is this hub, otherwise the peer hub
  that is the region's home (hubs are peers of each other).

Invariants:

* the original requester's identity travels in the ``huxin-on-behalf-of``
  metadata; the next hop accepts it only from a caller allowed to vouch for
  it (:meth:`node._trust.TrustState.vouch`), so the consent's audience is
  still checked against an authenticated identity;
* a request is forwarded only to regions in the trust list (H17) and at most
  :data:`MAX_HOPS` times (``huxin-hops``), so a routing loop ends;
* a downstream error is never passed through: its gRPC code is mapped by
  the explicit table :data:`DOWNSTREAM_STATUS` to our own error
  (``UPSTREAM_REFUSED``, ``UPSTREAM_DEADLINE_EXCEEDED`` or
  ``UPSTREAM_UNAVAILABLE``; a throttled downstream stays
  ``RESOURCE_EXHAUSTED`` with our own ``retry-after`` hint, clamped).  The
  origin we report is the hop WE called, never text from the downstream; the
  downstream reason (``huxin-upstream-reason`` when it relayed a refusal
  itself, else its ``huxin-reason``) is passed on only if it is in
  :data:`KNOWN_REASONS`, otherwise as ``UNSPECIFIED``;
* the hop counter is clamped to ``0..MAX_HOPS``; a non-integer
  ``huxin-hops`` is refused (``INVALID_ARGUMENT HOPS_INVALID``);
* the consent token is only *peeked at* here for routing; the home region
  verifies it before it is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from typing import Any

import grpc
from grpc import aio

from keys import KeysError, region_of_certificate

from ._client import peer_channel
from ._context import NodeContext
from ._errors import (
    REASON_KEY,
    DeadlineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
)
from ._guard import require_caller
from ._observe import log_event
from ._svc_peer import PeerServicer
from ._throttle import RETRY_AFTER_KEY
from ._trust import HOPS_KEY, ON_BEHALF_KEY
from .pb.v1 import hub_pb2, node_pb2, node_pb2_grpc

__all__ = [
    "DOWNSTREAM_STATUS",
    "KNOWN_REASONS",
    "MAX_HOPS",
    "UPSTREAM_REASON_KEY",
    "EndpointCheck",
    "Router",
    "RoutingPeerServicer",
    "consent_issuer",
    "downstream_error",
    "parse_hops",
]

MAX_HOPS = 4
DEFAULT_TIMEOUT = 10.0
UPSTREAM_REASON_KEY = "huxin-upstream-reason"  # the reason behind a relayed UPSTREAM_REFUSED
RETRY_AFTER_MIN, RETRY_AFTER_MAX, RETRY_AFTER_DEFAULT = 1, 3600, 1

#: downstream gRPC code -> (our error class, our reason code); anything else is UNAVAILABLE
DOWNSTREAM_STATUS: dict[grpc.StatusCode, tuple[type[NodeError], str]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: (ResourceExhaustedError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.PERMISSION_DENIED: (PermissionDeniedError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.UNAUTHENTICATED: (PermissionDeniedError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.NOT_FOUND: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.INVALID_ARGUMENT: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.FAILED_PRECONDITION: (FailedPreconditionError, "UPSTREAM_REFUSED"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (DeadlineError, "UPSTREAM_DEADLINE_EXCEEDED"),
    grpc.StatusCode.UNAVAILABLE: (UnavailableError, "UPSTREAM_UNAVAILABLE"),
}

#: reason codes a downstream RequestAttestation may give that we pass on by name
KNOWN_REASONS = frozenset(
    {
        # consent and subject (node._svc_peer)
        "CONSENT_INVALID",
        "CONSENT_WITHDRAWN",
        "CONSENT_EXPIRED",
        "CONSENT_EXHAUSTED",
        "CONSENT_NOT_YET_VALID",
        "CONSENT_WRONG_AUDIENCE",
        "CONSENT_WRONG_PURPOSE",
        "SUBJECT_BINDING_MISMATCH",
        "SUBJECT_UNKNOWN",
        "SUBJECT_NOT_ELIGIBLE",
        "NONCE_INVALID",
        "MAPPING_UNAVAILABLE",
        "TABLE_EXPIRED",
        "TABLE_NOT_YET_EFFECTIVE",
        # the consent token's signature (keys)
        "UNKNOWN_KEY",
        "BAD_SIGNATURE",
        "UNKNOWN_ISSUER",
        "KEY_NOT_VALID",
        "KEY_REVOKED",
        # admission (node._guard, node._throttle)
        "PEER_NOT_TRUSTED",
        "RELAY_NOT_TRUSTED",
        "NO_CLIENT_CERTIFICATE",
        "MESSAGE_TOO_LARGE",
        "TOO_MANY_CONCURRENT_CALLS",
        "QUERY_RATE_EXCEEDED",
        "DEADLINE_EXCEEDED",
        # routing (this module, one hop further)
        "REGION_NOT_TRUSTED",
        "HOME_REGION_MISMATCH",
        "NO_ROUTE",
        "TOO_MANY_HOPS",
        "HOPS_INVALID",
        "PEER_IDENTITY_MISMATCH",
        "UPSTREAM_DEADLINE_EXCEEDED",
        "UPSTREAM_UNAVAILABLE",
    }
)


def consent_issuer(token: Any) -> str:
    """The ``issuer_region`` a consent token claims ('' if unreadable); routing only."""
    try:
        grant = node_pb2.ConsentGrant.FromString(token.payload)
    except Exception:  # unreadable: served (and refused) locally
        return ""
    return str(grant.issuer_region)


async def endpoint_certificate(target: str, tls: Any, timeout: float = 5.0) -> bytes:
    """DER of the certificate the server at ``target`` presents (mutual TLS handshake only)."""
    host, _, port = target.rpartition(":")
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.check_hostname = False  # the identity is checked by region id and fingerprint instead
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    ctx.set_alpn_protocols(["h2"])
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=ctx), timeout
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.transport.abort()  # no close_notify round trip: we only wanted the certificate
    return bytes(der)


class EndpointCheck:
    """Before talking to a peer, check that its endpoint presents THAT peer's certificate.

    The region id in the certificate must be the expected peer, and when the trust
    list lists the peer, the certificate's SHA-256 must be one its entry pins — an
    entry that pins nothing admits nobody, as inbound (``PEER_IDENTITY_MISMATCH``
    otherwise).  A verified (target, peer) is re-checked
    after ``ttl`` seconds.
    """

    def __init__(self, trust: Any, tls: Any, ttl: float = 300.0) -> None:
        self._trust, self._tls, self._ttl = trust, tls, ttl
        self._ok: dict[tuple[str, str], float] = {}

    async def check(self, peer: str, target: str, timeout: float = 5.0) -> None:
        key = (peer, target)
        if time.monotonic() - self._ok.get(key, -1e18) < self._ttl:
            return
        try:
            der = await endpoint_certificate(target, self._tls, timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise UnavailableError(
                "UPSTREAM_UNAVAILABLE", f"{peer} did not answer ({type(exc).__name__})"
            ) from None
        try:
            region = region_of_certificate(der)
        except KeysError:
            region = ""
        entry = self._trust.regions().get(peer)
        # the inbound rule (node._callers): a listed entry that pins nothing admits nobody
        pinned = entry is None or hashlib.sha256(der).digest() in entry.tls_sha256
        if region != peer or not pinned:
            raise UnavailableError(
                "PEER_IDENTITY_MISMATCH",
                f"the endpoint {target} does not present {peer}'s listed certificate",
            )
        self._ok[key] = time.monotonic()


def _metadata(context: Any, key: str) -> str:
    return _value(context.invocation_metadata(), key)


def _value(metadata: Any, key: str) -> str:
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")
    return ""


def parse_hops(value: str) -> int:
    """The ``huxin-hops`` header: absent is 0, clamped to ``0..MAX_HOPS``; not an integer is refused."""
    if not value:
        return 0
    try:
        hops = int(value.strip())
    except ValueError:
        raise InvalidArgumentError(
            "HOPS_INVALID", "must be a whole number", field=HOPS_KEY
        ) from None
    return max(0, min(hops, MAX_HOPS))


def _retry_after(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        return RETRY_AFTER_DEFAULT
    return max(RETRY_AFTER_MIN, min(seconds, RETRY_AFTER_MAX))


def downstream_error(hop: str, err: aio.AioRpcError) -> NodeError:
    """Our own error for a refusal by ``hop`` (the hop WE called; see the module invariants)."""
    trailing = err.trailing_metadata()
    reason = _value(trailing, REASON_KEY)
    if reason == "UPSTREAM_REFUSED":  # it relayed a refusal itself: the reason behind it
        reason = _value(trailing, UPSTREAM_REASON_KEY)
    shown = reason if reason in KNOWN_REASONS else "UNSPECIFIED"
    kind, code = DOWNSTREAM_STATUS.get(err.code(), (UnavailableError, "UPSTREAM_UNAVAILABLE"))
    details: tuple[tuple[str, str | bytes], ...] = ((UPSTREAM_REASON_KEY, shown),)
    if code != "UPSTREAM_REFUSED":
        return kind(code, f"{hop} did not answer ({err.code().name})", details=details)
    if kind is ResourceExhaustedError:
        wait = _retry_after(_value(trailing, RETRY_AFTER_KEY))
        details += ((RETRY_AFTER_KEY, str(wait)),)
        return kind(
            code, f"{hop} refused the request: {shown}; retry after {wait} s", details=details
        )
    return kind(code, f"{hop} refused the request: {shown}", details=details)


class Router:
    """Forwards requests one hop towards the home region over mutual TLS."""

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._channels: dict[str, aio.Channel] = {}
        self.endpoints = EndpointCheck(ctx.trust, ctx.config.tls)

    def next_hop(self, home: str) -> tuple[str, str]:
        """(hop id, host:port) of the next hop towards ``home``; NO_ROUTE otherwise."""
        ctx = self._ctx
        trust, fed = ctx.trust, ctx.config.federation
        if not trust.allows(home, ctx.now_s()):
            raise PermissionDeniedError(
                "REGION_NOT_TRUSTED",
                "the consent's home region is not in the trust list (H17)",
                field="consent_token",
            )
        if ctx.config.role == "hub":
            home_hub = trust.home_hub(home)
            hop = home if home_hub in (None, ctx.config.region) else home_hub
            target = trust.endpoint(hop)
            if target:
                return hop, target
        else:
            route = fed.route if fed is not None else "direct"
            target = trust.endpoint(home) if route in ("auto", "direct") else None
            if target:
                return home, target
            if fed is not None and route != "direct" and fed.hub_endpoint:
                return fed.hub, fed.hub_endpoint
        raise UnavailableError("NO_ROUTE", f"no route to region {home}")

    def _channel(self, target: str) -> aio.Channel:
        ch = self._channels.get(target)
        if ch is None:
            s = self._ctx.secrets
            ch = peer_channel(target, s.tls_ca, s.tls_cert, s.tls_key)
            self._channels[target] = ch
        return ch

    async def forward(
        self,
        home: str,
        request: node_pb2.AttestationRequest,
        requester: str,
        *,
        hops: int = 0,
        timeout: float | None = None,
    ) -> node_pb2.AttestationResponse:
        hops = max(0, min(hops, MAX_HOPS))  # whoever calls: the loop bound holds
        if hops >= MAX_HOPS:
            raise FailedPreconditionError("TOO_MANY_HOPS", "the request was relayed too often")
        hop, target = self.next_hop(home)
        if self._ctx.trust.federated:
            await self.endpoints.check(hop, target)
        stub = node_pb2_grpc.PeerServiceStub(self._channel(target))
        metadata = ((ON_BEHALF_KEY, requester), (HOPS_KEY, str(hops + 1)))
        log_event("request routed", home=home, hop=hop, requester=requester, hops=hops + 1)
        try:
            response: node_pb2.AttestationResponse = await stub.RequestAttestation(
                request, metadata=metadata, timeout=timeout or DEFAULT_TIMEOUT
            )
        except aio.AioRpcError as err:
            raise downstream_error(hop, err) from None
        self._ctx.metrics.attestations.labels(f"routed:{hop}").inc()
        return response

    async def route_for_hub(
        self, ctx: NodeContext, request: hub_pb2.RouteAttestationRequest, who: str
    ) -> node_pb2.AttestationResponse:
        """HubService.RouteAttestation: forward to ``home_region`` for caller ``who``."""
        if not ctx.trust.allows(who, ctx.now_s()):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        home = request.home_region or consent_issuer(request.request.consent_token)
        issuer = consent_issuer(request.request.consent_token)
        if issuer and home != issuer:
            raise FailedPreconditionError(
                "HOME_REGION_MISMATCH",
                "home_region differs from the consent's issuer",
                field="home_region",
            )
        return await self.forward(home, request.request, who)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()


class RoutingPeerServicer(PeerServicer):
    """PeerService that serves its own region's consents and routes the others."""

    def __init__(self, ctx: NodeContext, router: Router) -> None:
        super().__init__(ctx)
        self._router = router
        self._ctx_r = ctx

    async def RequestAttestation(
        self, request: node_pb2.AttestationRequest, context: aio.ServicerContext[Any, Any]
    ) -> node_pb2.AttestationResponse:
        ctx = self._ctx_r
        home = consent_issuer(request.consent_token)
        if not home or home == ctx.config.region:
            return await super().RequestAttestation(request, context)
        who = require_caller()
        if not ctx.trust.allows(who, ctx.now_s()):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        hops = parse_hops(_metadata(context, HOPS_KEY))
        remaining = context.time_remaining()
        timeout = None if remaining is None else max(0.1, remaining - 0.05)
        return await self._router.forward(home, request, who, hops=hops, timeout=timeout)
