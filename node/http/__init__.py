"""The HTTP/JSON channel: two HTTPS listeners beside gRPC, on the node's own event loop.

* the **citizen listener** (server TLS, ``[listen] http_citizen``): the citizen
  JSON API under ``/api/v1/me/...`` (the identity assertion in ``Authorization``,
  or the web session of a sign-in), the citizen pages, the public trust material
  under ``/trust/...`` and ``/openapi.json``;
* the **mutual-TLS listener** (``[listen] http_mtls``): the integrator's
  attestation request, and the operator console; the client certificate is the
  caller exactly as on the gRPC peer port (docs/adr/0415).

Handlers decode JSON into typed request dataclasses, call the SAME domain
functions the gRPC servicers call, and encode the answer; every refusal is one
body ``{"code", "reason", "field", "message"}`` whose status is derived from the
one table of :mod:`node.rpc._status` (reason -> gRPC code -> HTTP status), so a
reason cannot map differently on the two channels.  docs/adr/0800.

Modules: ``_status`` (gRPC code -> HTTP status, the error body), ``_context``
(:class:`HttpContext`, :data:`RouteProvider`, static files), ``_auth`` (assertion,
sessions, sign-in, client certificates, the operator role), ``_codec`` (request
dataclasses and protobuf answers as JSON and JSON Schema), ``_api`` (the citizen
and integrator routes), ``_trust`` (public trust material with ETag), ``_openapi``
(the document derived from the routes), ``_app`` (the app factory and listeners).

May import every product room and ``node.rpc`` (the status table, the identity
verifier, the node context); imported by ``node.cli`` (``huxin serve``), the
citizen pages (``node.web``) and the console (``node.console``).
"""

from node.http._context import (
    HttpContext,
    RouteProvider,
    cached_response,
    json_error,
    json_response,
    static_route,
)

__all__ = [
    "HttpContext",
    "RouteProvider",
    "cached_response",
    "json_error",
    "json_response",
    "static_route",
]
