"""Who is calling over HTTP: citizens (assertion or web session), clients, operators.

* **API clients of citizens** send the same signed identity assertion as on gRPC
  (:mod:`node.rpc._identity`), base64 in ``Authorization: Bearer <assertion>``;
  it is verified by the node's one :class:`~node.rpc._identity.IdentityVerifier`
  and, like on gRPC, accepted ONCE (its nonce enters the replay cache);
* **the citizen pages** sign in once: the identity provider's assertion reaches
  ``POST /auth/callback`` (the development provider's form ``/auth/dev/sign-in``
  mints one when ``[identity] dev_provider_key`` is set, and only then), is
  verified the same way, and opens a session: a random id in the cookie
  ``huxin_session`` (``HttpOnly; Secure; SameSite=Strict``) bound to that
  assertion's subject, ending after ``[identity] session_seconds`` or at
  ``POST /auth/sign-out``;
* CSRF: a request authenticated by the session cookie must ALSO carry the
  header ``X-CSRF-Token`` equal to the session's token (given as the readable
  cookie ``huxin_csrf`` and by ``GET /auth/session``), and a state-changing one
  whose ``Origin`` names another site is refused; a request with an
  ``Authorization`` header needs neither (no ambient credential);
* **clients** (mutual-TLS listener): the caller is the region id of the verified
  client certificate, checked by the node's :class:`~node.federation._callers.CallerCheck`
  exactly as the gRPC guard checks it (pins, client registry, docs/adr/0415);
* **operators**: a client whose identity is the node's own region or listed in
  ``[operators] allowed`` (``PERMISSION_DENIED NOT_OPERATOR`` otherwise); a
  state-changing console call also needs ``X-Requested-With`` and no foreign
  ``Origin`` (a browser sends its client certificate like a cookie).

Invariants: the ID number of a session's citizen lives in this process's memory
only (a grant binds the consent to it) and never in a cookie, a log line or a
response; sessions are bounded (``[identity] max_sessions``; the oldest is
signed out when full); refusals are the node's errors (``IDENTITY_*``,
``SESSION_*``, ``CSRF_*``, ``NO_CLIENT_CERTIFICATE``) mapped by the one table.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

from keys import KeysError, decode_private_key, region_of_certificate
from node.core._config import NodeConfig
from node.core._errors import PermissionDeniedError, UnauthenticatedError
from node.federation._callers import CallerCheck
from node.rpc._identity import AuthenticatedCitizen, DevIdentityProvider, IdentityVerifier
from node.store._translog import subject_ref

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "OPERATOR_HEADER",
    "SESSION_COOKIE",
    "Auth",
    "auth_routes",
]

SESSION_COOKIE = "huxin_session"
CSRF_COOKIE = "huxin_csrf"
CSRF_HEADER = "X-CSRF-Token"
OPERATOR_HEADER = "X-Requested-With"  # a console action's custom header (see Auth.operator)
ASSERTION_MAX = 8192  # characters of a base64 assertion (an envelope is < 1 KiB)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    citizen: AuthenticatedCitizen
    expires_at: int
    csrf: str


class Auth:
    """The node's HTTP authentication (one per node process)."""

    def __init__(
        self,
        config: NodeConfig,
        verifier: IdentityVerifier,
        callers: CallerCheck | None,
        now: Callable[[], int],
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._callers = callers
        self._now = now
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._max = config.identity.max_sessions
        self.session_seconds = config.identity.session_seconds
        key = config.identity.dev_provider_key
        self.dev: DevIdentityProvider | None = None
        if key is not None:
            self.dev = DevIdentityProvider(decode_private_key(key.read_bytes()))

    # -- citizens ------------------------------------------------------------
    def verify_assertion(self, text: str) -> AuthenticatedCitizen:
        """A base64 (standard or URL-safe) assertion, verified and accepted once."""
        if len(text) > ASSERTION_MAX:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", f"assertion longer than {ASSERTION_MAX}", field="authorization"
            )
        try:  # standard or URL-safe alphabet, padding optional; nothing else
            blob = base64.b64decode(
                text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
            )
        except (binascii.Error, ValueError):
            raise UnauthenticatedError(
                "IDENTITY_INVALID", "the assertion is not base64", field="authorization"
            ) from None
        if not blob:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", "the assertion is empty", field="authorization"
            )
        return self._verifier.verify(blob, self._now())

    async def citizen(self, request: web.Request) -> AuthenticatedCitizen:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise UnauthenticatedError(
                    "IDENTITY_MISSING", "expected 'Bearer <assertion>'", field="authorization"
                )
            return self.verify_assertion(value.strip())
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            raise UnauthenticatedError(
                "IDENTITY_MISSING", "no identity assertion and no session", field="authorization"
            )
        session = self.session_of(sid)
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise PermissionDeniedError(
                "CSRF_TOKEN_MISSING",
                f"a request with the session cookie needs the {CSRF_HEADER} header",
                field=CSRF_HEADER.lower(),
            )
        self._check_origin(request)
        return session.citizen

    def session_of(self, sid: str) -> Session:
        """The live session of a cookie value (401 SESSION_INVALID / SESSION_EXPIRED)."""
        session = self._sessions.get(sid) if len(sid) <= 64 else None
        if session is None:
            raise UnauthenticatedError(
                "SESSION_INVALID", "no such session; sign in again", field=SESSION_COOKIE
            )
        if session.expires_at <= self._now():
            del self._sessions[sid]
            raise UnauthenticatedError(
                "SESSION_EXPIRED", "the session ended; sign in again", field=SESSION_COOKIE
            )
        return session

    @staticmethod
    def _check_origin(request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if request.method in _SAFE_METHODS or origin is None:
            return
        if urlsplit(origin).netloc != request.host:
            raise PermissionDeniedError(
                "CSRF_ORIGIN", "the request comes from another site", field="origin"
            )

    def open_session(self, citizen: AuthenticatedCitizen) -> tuple[str, Session]:
        now = self._now()
        for sid in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)  # the oldest is signed out
        sid = secrets.token_urlsafe(32)
        session = Session(citizen, now + self.session_seconds, secrets.token_urlsafe(24))
        self._sessions[sid] = session
        return sid, session

    def close_session(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def sessions(self) -> int:
        return len(self._sessions)

    # -- clients and operators (mutual-TLS listener) ---------------------------
    def caller(self, request: web.Request) -> str:
        """The identity of the verified client certificate, admitted as on gRPC."""
        pem = client_certificate(request)
        if pem is None:
            raise UnauthenticatedError("NO_CLIENT_CERTIFICATE", "a client certificate is required")
        try:
            identity = region_of_certificate(pem)
        except KeysError:
            raise UnauthenticatedError(
                "NO_CLIENT_CERTIFICATE", "a certificate with a region id is required"
            ) from None
        if self._callers is not None:
            self._callers.admit_certificate(identity, pem)  # pins, client registry (ADR 0415)
        return identity

    def operator(self, request: web.Request) -> str:
        """An operator's call.  A browser presents its client certificate on every
        request, like a cookie: a state-changing call must also carry
        ``X-Requested-With`` (which another site cannot make a browser send without a
        CORS preflight this node never answers) and no foreign ``Origin``."""
        who = self.caller(request)
        if request.method not in _SAFE_METHODS:
            if not request.headers.get(OPERATOR_HEADER):
                raise PermissionDeniedError(
                    "CSRF_TOKEN_MISSING",
                    f"a console action needs the {OPERATOR_HEADER} header",
                    field=OPERATOR_HEADER.lower(),
                )
            self._check_origin(request)
        if who != self._config.region and who not in self._config.operators:
            raise PermissionDeniedError(
                "NOT_OPERATOR", "this certificate does not hold the operator role"
            )
        return who


def client_certificate(request: web.Request) -> bytes | None:
    """The PEM of the client certificate the TLS handshake verified (None without)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der).encode() if der else None


# ---------------------------------------------------------------- sign-in routes


def _set_session(response: web.StreamResponse, auth: Auth, sid: str, session: Session) -> None:
    age = auth.session_seconds
    response.set_cookie(
        SESSION_COOKIE, sid, max_age=age, path="/", secure=True, httponly=True, samesite="Strict"
    )
    # readable by the pages' script, which echoes it in X-CSRF-Token (double submit)
    response.set_cookie(
        CSRF_COOKIE, session.csrf, max_age=age, path="/", secure=True, samesite="Strict"
    )


def _local_path(target: str) -> str:
    """Where to go after sign-in: a path of this site only (never another host)."""
    if not target.startswith("/") or target.startswith("//") or len(target) > 256:
        return "/"
    return target


_DEV_FORM = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>开发用登录 Development sign-in</title></head>
<body><main>
<h1>开发用身份提供方 <span lang="en">Development identity provider</span></h1>
<p>仅用于演示。<span lang="en">For the demo only: a real node signs in through the
configured identity provider.</span></p>
<form method="post" action="/auth/dev/sign-in">
<label for="id_number">身份证号码 <span lang="en">ID number</span></label>
<input id="id_number" name="id_number" autocomplete="off" required maxlength="18">
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 <span lang="en">Sign in</span></button>
</form></main></body></html>
"""


def auth_routes(auth: Auth, region: str, now: Callable[[], int]) -> list[web.AbstractRouteDef]:
    """``/auth/...``: the callback of a provider, the session, sign-out, and the
    development provider's form when configured."""

    def signed_in(request: web.Request, citizen: AuthenticatedCitizen, target: str) -> web.Response:
        sid, session = auth.open_session(citizen)
        response = web.Response(status=303, headers={"Location": _local_path(target)})
        _set_session(response, auth, sid, session)
        return response

    async def callback(request: web.Request) -> web.Response:
        form = await request.post()
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not assertion:
            raise UnauthenticatedError("IDENTITY_MISSING", "no assertion", field="assertion")
        Auth._check_origin(request)
        next_page = form.get("next")
        return signed_in(
            request,
            auth.verify_assertion(assertion),
            next_page if isinstance(next_page, str) else "/",
        )

    async def session(request: web.Request) -> web.Response:
        current = auth.session_of(request.cookies.get(SESSION_COOKIE, ""))
        # the pages name the citizen by the log's pseudonym (its subject_ref), never the ID
        pseudonym = subject_ref(current.citizen.subject_key).hex()[:16]
        return web.json_response(
            {
                "signed_in": True,
                "expires_at": current.expires_at,
                "csrf_token": current.csrf,
                "pseudonym": pseudonym,
                "region": region,
            }
        )

    async def sign_out(request: web.Request) -> web.Response:
        Auth._check_origin(request)
        auth.close_session(request.cookies.get(SESSION_COOKIE))
        response = web.Response(status=303, headers={"Location": "/"})
        response.del_cookie(SESSION_COOKIE, path="/")
        response.del_cookie(CSRF_COOKIE, path="/")
        return response

    routes: list[web.AbstractRouteDef] = [
        web.post("/auth/callback", callback),
        web.get("/auth/session", session),
        web.post("/auth/sign-out", sign_out),
    ]
    dev = auth.dev
    if dev is None:
        return routes

    async def dev_form(request: web.Request) -> web.Response:
        target = _local_path(request.query.get("next", "/"))
        return web.Response(
            text=_DEV_FORM.format(next=escape(target, quote=True)), content_type="text/html"
        )

    async def dev_sign_in(request: web.Request) -> web.Response:
        form = await request.post()
        id_number = form.get("id_number")
        if not isinstance(id_number, str) or not 1 <= len(id_number) <= 18:
            raise UnauthenticatedError(
                "IDENTITY_INVALID", "an ID number of 18 characters", field="id_number"
            )
        Auth._check_origin(request)
        # the provider's part: an assertion for this node, verified below like any other
        blob = dev.assertion(id_number, region, now())
        citizen = auth.verify_assertion(base64.urlsafe_b64encode(blob).decode())
        next_page = form.get("next")
        return signed_in(request, citizen, next_page if isinstance(next_page, str) else "/")

    return [
        *routes,
        web.get("/auth/dev/sign-in", dev_form),
        web.post("/auth/dev/sign-in", dev_sign_in),
    ]
