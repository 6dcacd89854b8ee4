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
  it (:meth:`node.federation._trust.TrustState.vouch`), so the consent's audience is
  still checked against an authenticated identity;
* a request is forwarded only to regions in the trust list (H17) and at most
  :data:`MAX_HOPS` times (``huxin-hops``), so a routing loop ends;
* a request's form is checked (:func:`node.exchange._request_form.check_attestation_request`)
  BEFORE anything is forwarded, by the same function the home region uses, so
  a request the home region would refuse for its form never leaves the first
  hop, and is refused there with the same status, reason and field;
* a downstream refusal reaches our caller as the refusing node's own: its
  gRPC code (UNAUTHENTICATED, which speaks of a hop's credentials, becomes
  PERMISSION_DENIED), its ``huxin-reason`` and its ``huxin-field``, plus
  ``huxin-upstream-reason`` (the same reason: the refusal was relayed) and
  ``huxin-refused-by`` (the node that refused: the one the downstream names,
  if it is in our trust list, else the hop WE called); a throttled downstream
  keeps a clamped ``retry-after``.  Only reasons in :data:`KNOWN_REASONS` (read
  from the modules that raise them) pass by name; any other refusal becomes
  our own ``UPSTREAM_REFUSED`` with ``huxin-upstream-reason=UNSPECIFIED``; a
  deadline or an unreachable hop is our own ``UPSTREAM_DEADLINE_EXCEEDED`` /
  ``UPSTREAM_UNAVAILABLE``.  No downstream text is ever passed on: the message
  is ours, naming the refusing node and the hop we called;
* the hop counter is clamped to ``0..MAX_HOPS``; a non-integer
  ``huxin-hops`` is refused (``INVALID_ARGUMENT HOPS_INVALID``);
* the consent token is only *peeked at* here for routing; the home region
  verifies it before it is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import time
from collections.abc import Container
from typing import Any

import grpc
from grpc import aio

from keys import REASON_CODES, KeysError, region_of_certificate
from node.core._config import ID_PATTERN
from node.core._errors import (
    FIELD_KEY,
    REASON_KEY,
    DeadlineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NodeError,
    PermissionDeniedError,
    RelayedError,
    ResourceExhaustedError,
    UnavailableError,
)
from node.core._observe import log_event
from node.exchange._request_form import check_attestation_request
from node.exchange._throttle import RETRY_AFTER_KEY
from node.federation._trust import HOPS_KEY, ON_BEHALF_KEY
from node.pb.v1 import hub_pb2, node_pb2, node_pb2_grpc
from node.rpc._client import peer_channel
from node.rpc._context import NodeContext
from node.rpc._guard import require_caller
from node.rpc._peer import REQUEST_REASONS, PeerServicer

__all__ = [
    "ADMISSION_REASONS",
    "DOWNSTREAM_STATUS",
    "KNOWN_REASONS",
    "MAX_HOPS",
    "REFUSED_BY_KEY",
    "RELAYED_STATUS",
    "ROUTING_REASONS",
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
UPSTREAM_REASON_KEY = "huxin-upstream-reason"  # the reason behind a relayed refusal
RETRY_AFTER_MIN, RETRY_AFTER_MAX, RETRY_AFTER_DEFAULT = 1, 3600, 1

REFUSED_BY_KEY = "huxin-refused-by"  # the node whose refusal a relayed error carries
_FIELD = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")

#: downstream gRPC code -> our error class when the reason is not one we relay by name
#: (then our reason is ``UPSTREAM_REFUSED``); codes not listed mean the hop failed us
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

#: the gRPC code our caller sees for a refusal relayed by name: the refusing node's own
RELAYED_STATUS: dict[grpc.StatusCode, grpc.StatusCode] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
}

#: reasons the peer port's guard and query throttle give before a handler runs
#: (node.rpc._guard, node.exchange._throttle), and the one a malformed message gets
ADMISSION_REASONS = frozenset(
    {
        "NO_CLIENT_CERTIFICATE",
        "RELAY_NOT_TRUSTED",
        "MESSAGE_TOO_LARGE",
        "MALFORMED_REQUEST",
        "TOO_MANY_CONCURRENT_CALLS",
        "QUERY_RATE_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "REQUEST_TIMEOUT",
        "IDENTITY_MISSING",
        "CERTIFICATE_NOT_PINNED",
        "CLIENT_UNKNOWN",
        "CLIENT_REVOKED",
        "CLIENT_NOT_HOME",
    }
)

#: reasons this module gives, one hop further down
ROUTING_REASONS = frozenset(
    {
        "PEER_NOT_TRUSTED",
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

#: every reason a downstream RequestAttestation may give that we relay by name: read
#: from the modules that raise them (the serving path, admission, routing) and from
#: the keys package's own list of verification reasons
KNOWN_REASONS = REQUEST_REASONS | ADMISSION_REASONS | ROUTING_REASONS | REASON_CODES


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
            # the class name is for the operator's log; the caller gets a stable text
            log_event("upstream did not answer", 30, peer=peer, exc=type(exc).__name__)
            raise UnavailableError("UPSTREAM_UNAVAILABLE", f"{peer} did not answer") from None
        try:
            region = region_of_certificate(der)
        except KeysError:
            region = ""
        entry = self._trust.regions().get(peer)
        # the inbound rule (node.federation._callers): a listed entry that pins nothing admits nobody
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


def _refuser(trailing: Any, hop: str, listed: Container[str]) -> str:
    """The node that refused: the one the hop names if we list it, else the hop itself."""
    named = _value(trailing, REFUSED_BY_KEY)
    return named if named and named in listed and ID_PATTERN.match(named) else hop


def downstream_error(hop: str, err: aio.AioRpcError, listed: Container[str] = ()) -> NodeError:
    """Our caller's error for a refusal by ``hop`` (the hop WE called) or by a node behind
    it; ``listed`` is our trust list's ids (see the module invariants)."""
    trailing = err.trailing_metadata()
    reason = _value(trailing, REASON_KEY)
    if reason == "UPSTREAM_REFUSED":  # a relay that did not pass the reason on by name
        reason = _value(trailing, UPSTREAM_REASON_KEY)
    shown = reason if reason in KNOWN_REASONS else "UNSPECIFIED"
    kind, code = DOWNSTREAM_STATUS.get(err.code(), (UnavailableError, "UPSTREAM_UNAVAILABLE"))
    details: tuple[tuple[str, str | bytes], ...] = ((UPSTREAM_REASON_KEY, shown),)
    if code != "UPSTREAM_REFUSED":
        return kind(code, f"{hop} did not answer ({err.code().name})", details=details)
    refuser = _refuser(trailing, hop, listed)
    details += ((REFUSED_BY_KEY, refuser),)
    if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        wait = _retry_after(_value(trailing, RETRY_AFTER_KEY))
        details += ((RETRY_AFTER_KEY, str(wait)),)
    via = "" if refuser == hop else f" (relayed by {hop})"
    message = f"{refuser} refused the request{via}: {shown}"
    if shown == "UNSPECIFIED":
        return kind(code, message, details=details)
    field = _value(trailing, FIELD_KEY)
    return RelayedError(
        RELAYED_STATUS[err.code()],
        shown,
        message,
        field=field if _FIELD.match(field) else "",
        details=details,
    )


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
            raise downstream_error(hop, err, self._ctx.trust.regions()) from None
        self._ctx.metrics.attestations.labels(f"routed:{hop}").inc()
        return response

    async def route_for_hub(
        self, ctx: NodeContext, request: hub_pb2.RouteAttestationRequest, who: str
    ) -> node_pb2.AttestationResponse:
        """HubService.RouteAttestation: forward to ``home_region`` for caller ``who``."""
        check_attestation_request(request.request)  # before anything is forwarded
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
        check_attestation_request(request)  # the home region's own check, before forwarding
        home = consent_issuer(request.consent_token)
        if not home or home == ctx.config.region:
            return await self.serve_attestation(request, context)
        who = require_caller()
        if not ctx.trust.allows(who, ctx.now_s()):
            raise PermissionDeniedError(
                "PEER_NOT_TRUSTED", "this region is not in the domestic trust list (H17)"
            )
        hops = parse_hops(_metadata(context, HOPS_KEY))
        remaining = context.time_remaining()
        timeout = None if remaining is None else max(0.1, remaining - 0.05)
        return await self._router.forward(home, request, who, hops=hops, timeout=timeout)
