"""The app factory and the two HTTPS listeners, on the node's own event loop.

:func:`build_apps` makes one aiohttp application per listener from route
providers (:data:`node.http._context.RouteProvider`): the citizen listener gets
the API's citizen and public routes, sign-in, the public trust material,
``/openapi.json`` and :data:`CITIZEN_PROVIDERS` (the citizen pages); the
mutual-TLS listener gets the API's client routes and :data:`MTLS_PROVIDERS`
(the operator console).  :class:`HttpServer` binds them (``[listen] http_citizen``,
``http_mtls``; empty = off) beside the gRPC ports, in the same process.

Invariants: every response passes the middleware, which turns any exception into
the one error body (:func:`node.http._context.json_error`; unknown routes and
methods too, with the reasons ``ROUTE_NOT_FOUND`` / ``METHOD_NOT_ALLOWED``), adds
the security headers (no resource from another origin: ``Content-Security-Policy:
default-src 'self'``; ``nosniff``; no framing; no referrer) and records one access
line and the call's metrics per API operation, never a payload; a body over
``[listen] http_max_body_bytes`` is refused (``MESSAGE_TOO_LARGE``, as on gRPC)
before it is parsed, and one not read within ``[listen] request_timeout_seconds`` is
``REQUEST_TIMEOUT`` (a slow sender holds no handler); the gRPC port's limits hold
here too (issue 19): at most ``[limits] max_concurrent_per_peer``
(``concurrency_for``) API calls in flight per caller (the certificate identity; a
citizen by client address, as on the citizen port) else ``TOO_MANY_CONCURRENT_CALLS``;
the public API calls (the catalogue) share the trust files' node-wide
``citizen_max_public_calls``; each listener accepts at most the connections its
gRPC twin does (:func:`node.rpc._port_limits.connection_limits`: the citizen
port's for the citizen listener, the peer port's for the mutual-TLS one), a
connection over it closed at once; TLS is 1.2 or newer with the node's certificate, and the
mutual-TLS listener completes no handshake without a client certificate of the
federation CA.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.console import console_routes
from node.core._errors import (
    DeadlineError,
    NodeError,
    NotFoundError,
    ResourceExhaustedError,
    UnimplementedError,
)
from node.core._observe import AccessLog, log_event
from node.http._api import API_ROUTES, CITIZEN, CLIENT, PUBLIC, ApiRoute, collaborators
from node.http._auth import Auth, auth_routes
from node.http._codec import decode, decode_query, encode, parse_json
from node.http._context import HttpContext, RouteProvider, json_error, json_response
from node.http._status import refusal_of
from node.rpc._context import NodeContext
from node.rpc._guard import REQUEST_TIMEOUT
from node.rpc._port_limits import connection_limits, raise_descriptor_limit
from node.web import citizen_routes

__all__ = [
    "CITIZEN_PROVIDERS",
    "MTLS_PROVIDERS",
    "HttpPorts",
    "HttpServer",
    "build_apps",
]

#: route providers of the citizen listener (the citizen pages add theirs here)
CITIZEN_PROVIDERS: tuple[RouteProvider, ...] = (citizen_routes,)
#: route providers of the mutual-TLS listener (the operator console adds its own here)
MTLS_PROVIDERS: tuple[RouteProvider, ...] = (console_routes,)

CONTEXT_KEY = web.AppKey("huxin_http", HttpContext)
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not "no-referrer": under it a browser sends "Origin: null" on its same-origin
    # POSTs (Fetch, "append a request Origin header"), which the CSRF check refuses
    "Referrer-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _http_refusal(exc: web.HTTPException) -> NodeError:
    """aiohttp's own refusals as the node's errors (their reasons are stable)."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ResourceExhaustedError(
            "MESSAGE_TOO_LARGE", "the request body exceeds the node's limit", field="request"
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return UnimplementedError("METHOD_NOT_ALLOWED", "this path takes another method")
    return NotFoundError("ROUTE_NOT_FOUND", "no such resource")


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # a provider's redirect: raised on, with the same headers
            for name, value in _SECURITY_HEADERS.items():
                exc.headers.setdefault(name, value)
            raise
        response = json_error(_http_refusal(exc))
        if isinstance(exc, web.HTTPMethodNotAllowed):  # 405 names what the path takes
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    except Exception as exc:  # the one error body; detail for the operator's log only
        if not isinstance(exc, NodeError) and refusal_of(exc).body["reason"] == "INTERNAL":
            log_event("internal error", 40, path=request.path[:100], exc=type(exc).__name__)
        response = json_error(exc)
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class InFlight:
    """API calls in flight per caller key, each key within ``[limits]``'s
    ``concurrency_for`` (the gRPC guard's TOO_MANY_CONCURRENT_CALLS)."""

    def __init__(self, limit_for: Callable[[str], int]) -> None:
        self._limit_for = limit_for
        self._calls: dict[str, int] = {}

    def enter(self, key: str) -> None:
        held = self._calls.get(key, 0)
        if held >= self._limit_for(key):
            raise ResourceExhaustedError(
                "TOO_MANY_CONCURRENT_CALLS",
                "too many concurrent calls from this caller; retry later",
            )
        self._calls[key] = held + 1

    def leave(self, key: str) -> None:
        held = self._calls.pop(key, 1) - 1
        if held > 0:  # a key with nothing in flight holds no entry (the map stays small)
            self._calls[key] = held


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body within ``timeout`` seconds (``REQUEST_TIMEOUT``, as the gRPC
    guard's for a request message that does not come)."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise DeadlineError(
            REQUEST_TIMEOUT, f"no request body within {timeout:g} s", field="request"
        ) from None


async def _serve(hc: HttpContext, route: ApiRoute, who: Any, request: web.Request) -> Any:
    body: Any
    if route.in_query:
        body = decode_query(route.request, request.query)
    else:
        raw = await read_body(request, hc.node.config.listen.request_timeout_seconds)
        body = decode(route.request, parse_json(raw))
    return encode(await route.call(hc, who, body))


def _api_handler(
    hc: HttpContext, route: ApiRoute, access: AccessLog, inflight: InFlight
) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        peer, code, reason = "citizen", "OK", ""
        try:
            who: Any = None
            if route.auth == PUBLIC:  # no identity: the node-wide cap of the trust files
                public = hc.extras["public_calls"]
                public.enter()
                try:
                    return json_response(await _serve(hc, route, who, request))
                finally:
                    public.leave()
            if route.auth == CITIZEN:  # on the headers, before the body is read
                who = await hc.require_citizen(request)
                key = f"citizen:{request.remote}"
            else:
                who = peer = key = hc.require_caller(request)
            inflight.enter(key)
            try:
                return json_response(await _serve(hc, route, who, request))
            finally:
                inflight.leave(key)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error: BaseException = _http_refusal(exc)
            refusal = refusal_of(error)
            code, reason = refusal.body["code"], refusal.body["reason"]
            return json_error(error)
        except Exception as exc:
            refusal = refusal_of(exc)
            code, reason = refusal.body["code"], refusal.body["reason"]
            if not isinstance(exc, NodeError) and reason == "INTERNAL":
                log_event("internal error", 40, method=route.operation, exc=type(exc).__name__)
            return json_error(exc)
        finally:
            access.record(
                route.operation,
                peer=peer,
                via="http",
                code=code,
                reason=reason,
                seconds=time.perf_counter() - started,
            )

    return handle


def api_routes(hc: HttpContext, kinds: frozenset[str]) -> list[web.AbstractRouteDef]:
    access: AccessLog = hc.extras["access"]
    inflight: InFlight = hc.extras.setdefault(
        "inflight", InFlight(hc.node.config.limits.concurrency_for)
    )
    return [
        web.route(r.method, r.path, _api_handler(hc, r, access, inflight))
        for r in API_ROUTES
        if r.auth in kinds
    ]


def _app(hc: HttpContext, routes: Iterable[web.AbstractRouteDef]) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=hc.max_body_bytes)
    app[CONTEXT_KEY] = hc
    app.add_routes(list(routes))
    return app


def build_apps(
    hc: HttpContext,
    citizen_routes: Sequence[RouteProvider] = CITIZEN_PROVIDERS,
    mtls_routes: Sequence[RouteProvider] = MTLS_PROVIDERS,
) -> tuple[web.Application, web.Application]:
    """The citizen listener's app and the mutual-TLS listener's app."""
    from node.http._openapi import openapi_route
    from node.http._trust import trust_routes

    node = hc.node
    citizen: list[web.AbstractRouteDef] = [
        *api_routes(hc, frozenset({CITIZEN, PUBLIC})),
        *auth_routes(hc.auth, node.config.region, node.now_s),
        *trust_routes(hc),
        openapi_route(hc),
    ]
    for provider in citizen_routes:
        citizen.extend(provider(hc))
    mtls: list[web.AbstractRouteDef] = [
        *api_routes(hc, frozenset({CLIENT})),
        openapi_route(hc, "mtls"),
    ]
    for provider in mtls_routes:
        mtls.extend(provider(hc))
    return _app(hc, citizen), _app(hc, mtls)


def _tls(node: NodeContext, *, client_certificates: bool) -> ssl.SSLContext:
    config = node.config
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=node.secrets.tls_ca.decode())
    return context


@dataclass(frozen=True, slots=True)
class HttpPorts:
    citizen: int | None
    mtls: int | None


class HttpServer:
    """The node's HTTPS listeners (none when neither address is configured)."""

    def __init__(
        self,
        node: NodeContext,
        *,
        throttle: Any = None,
        router: Any = None,
        citizen_routes: Sequence[RouteProvider] = CITIZEN_PROVIDERS,
        mtls_routes: Sequence[RouteProvider] = MTLS_PROVIDERS,
        addresses: tuple[str, str] | None = None,
    ) -> None:
        listen = node.config.listen
        self.node = node
        # ``[listen] http_citizen`` and ``http_mtls`` unless given (an in-process node)
        self.addresses = addresses or (listen.http_citizen, listen.http_mtls)
        self.auth = Auth(node.config, node.identity, node.callers, node.now_s)
        self.context = HttpContext(
            node,
            self.auth,
            listen.http_max_body_bytes,
            extras={**collaborators(node, throttle, router), "access": AccessLog(node.metrics)},
        )
        self._providers = (citizen_routes, mtls_routes)
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self.ports = HttpPorts(None, None)

    async def _listen(
        self, app: web.Application, address: str, tls: ssl.SSLContext, connections: int
    ) -> int:
        host, _, port = address.rpartition(":")
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        assert runner.server is not None  # set up above
        server = await asyncio.get_running_loop().create_server(
            CappedConnections(runner.server, connections),
            host.strip("[]"), int(port), ssl=tls, backlog=256,
        )  # fmt: skip
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def start(self) -> HttpPorts:
        citizen_address, mtls_address = self.addresses
        if not citizen_address and not mtls_address:
            return self.ports
        citizen_app, mtls_app = build_apps(self.context, *self._providers)
        citizen = mtls = None
        try:
            # the gRPC twin's connection limit (descriptors of this process)
            caps = connection_limits(self.node.config.listen, raise_descriptor_limit())
            if citizen_address:
                tls = _tls(self.node, client_certificates=False)
                citizen = await self._listen(citizen_app, citizen_address, tls, caps.citizen)
            if mtls_address:
                tls = _tls(self.node, client_certificates=True)
                mtls = await self._listen(mtls_app, mtls_address, tls, caps.peer)
        except OSError as exc:
            await self.stop()
            raise HttpListenError(str(exc)) from None
        self.ports = HttpPorts(citizen, mtls)
        log_event("http listening", region=self.node.config.region, citizen=citizen, mtls=mtls)
        return self.ports

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        access: AccessLog = self.context.extras["access"]
        access.flush()


class _Refused(asyncio.Protocol):
    """A connection over the listener's cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class CappedConnections:
    """A protocol factory that serves at most ``limit`` connections at once (aiohttp's
    server counts the open ones); one more is closed at once, as gRPC's
    ``max_allowed_incoming_connections`` refuses it."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit

    def __call__(self) -> asyncio.Protocol:
        if len(self.server.connections) >= self.limit:
            return _Refused()
        return self.server()


class HttpListenError(Exception):
    """An HTTPS listen address that cannot be bound."""
