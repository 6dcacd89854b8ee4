"""The extension point of the HTTP channel: :class:`HttpContext` and :data:`RouteProvider`.

Other rooms (the citizen pages ``node.web``, the operator console ``node.console``)
add routes to a listener by a provider: a callable that receives the
:class:`HttpContext` once, when the app is built, and returns aiohttp route
definitions.  A handler authenticates with ``await hc.require_citizen(request)``
(the citizen of the call: the ``Authorization`` assertion, or the web session
with its CSRF header) or ``hc.require_operator(request)`` (the client certificate
of a registered operator, mutual-TLS listener only); both raise the node's own
errors, which the app's middleware turns into the one error body.

Invariants: static files are read once, served with a strong ``ETag`` (SHA-256 of
the bytes) and ``Cache-Control``, and a matching ``If-None-Match`` is ``304`` with
no body; a static path never leaves its directory (``..``, absolute names and
symbolic links out of it are 404).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from aiohttp import web

from node.core._clock import Clock
from node.core._errors import InvalidArgumentError
from node.http._status import refusal_of
from node.rpc._context import NodeContext
from node.rpc._identity import AuthenticatedCitizen

if TYPE_CHECKING:
    from node.http._auth import Auth

__all__ = [
    "IF_NONE_MATCH_MAX",
    "HttpContext",
    "RouteProvider",
    "cached_response",
    "json_error",
    "json_response",
    "static_route",
]

STATIC_CACHE = "public, max-age=300, must-revalidate"
#: characters of an If-None-Match header read (a few tags; longer is refused)
IF_NONE_MATCH_MAX = 1024


@dataclass
class HttpContext:
    """What a route provider's handlers need: the node, its clock and the helpers."""

    node: NodeContext
    auth: Auth
    max_body_bytes: int
    extras: dict[str, Any] = field(default_factory=dict)  # collaborators of the node server

    @property
    def clock(self) -> Clock:
        return self.node.clock

    @property
    def sign_in_path(self) -> str | None:
        """Where the pages send a citizen to sign in: the development provider's form
        when ``[identity] dev_provider_key`` is set, else None (a real provider's
        redirect, docs/adr/0800)."""
        return "/auth/dev/sign-in" if self.auth.dev is not None else None

    async def require_citizen(self, request: web.Request) -> AuthenticatedCitizen:
        """The citizen of this request (assertion or session + CSRF header), or 401."""
        return await self.auth.citizen(request)

    def require_operator(self, request: web.Request) -> str:
        """The operator's certificate identity (mutual-TLS listener), or 401/403."""
        return self.auth.operator(request)

    def require_caller(self, request: web.Request) -> str:
        """The registered client certificate's identity (mutual-TLS listener), or 401/403."""
        return self.auth.caller(request)


RouteProvider: TypeAlias = Callable[[HttpContext], Iterable[web.AbstractRouteDef]]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(
    value: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON as UTF-8 (Chinese text as itself, not ``\\u`` escapes)."""
    return web.json_response(value, status=status, headers=headers, dumps=_dumps)


def json_error(exc: BaseException) -> web.Response:
    """The one error body ``{"code", "reason", "field", "message"}`` for ``exc``."""
    refusal = refusal_of(exc)
    return json_response(refusal.body, status=refusal.status, headers=refusal.headers)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def _matches(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    if len(header) > IF_NONE_MATCH_MAX:
        raise InvalidArgumentError(
            "INVALID_FIELD", f"at most {IF_NONE_MATCH_MAX} characters", field="if-none-match"
        )
    tags = {t.strip() for t in header.split(",")}
    return etag in tags or "*" in tags


def cached_response(
    request: web.Request,
    body: bytes,
    content_type: str,
    *,
    cache_control: str = STATIC_CACHE,
    etag: str | None = None,
) -> web.Response:
    """``body`` with a strong ETag and Cache-Control; 304 when If-None-Match matches."""
    tag = etag or etag_of(body)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if _matches(request, tag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, headers=headers)


def static_route(
    prefix: str, package_dir: str | Path, *, cache_control: str = STATIC_CACHE
) -> web.AbstractRouteDef:
    """GET ``{prefix}/{name}``: the files under ``package_dir`` (see the invariants)."""
    root = Path(package_dir).resolve()
    files: dict[str, tuple[bytes, str, str]] = {}

    def load(name: str) -> tuple[bytes, str, str] | None:
        if name in files:
            return files[name]
        path = (root / name).resolve()
        if not name or not path.is_relative_to(root) or not path.is_file():
            return None
        body = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files[name] = (body, kind, etag_of(body))
        return files[name]

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        found = load(name) if len(name) <= 256 else None
        if found is None:
            raise web.HTTPNotFound()
        body, kind, tag = found
        charset = "utf-8" if kind.startswith("text/") or kind.endswith("javascript") else None
        response = cached_response(request, body, kind, cache_control=cache_control, etag=tag)
        if charset and response.status == 200:
            response.charset = charset
        return response

    return web.get(prefix.rstrip("/") + "/{name:.+}", serve)


Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]
