"""Who is calling over HTTP: citizens (assertion or web session), clients, operators.

* **API clients of citizens** send the same signed identity assertion as on gRPC
  (:mod:`node.rpc._identity`), base64 in ``Authorization: Bearer <assertion>``;
  it is verified by the node's one :class:`~node.rpc._identity.IdentityVerifier`
  and, like on gRPC, accepted ONCE (its nonce enters the replay cache);
* **the citizen pages** sign in once: ``GET /auth/sign-in-state`` gives a random
  ``state`` and binds it to this browser by the short-lived cookie
  ``huxin_sign_in`` (``HttpOnly; Secure; SameSite=None; Path=/auth/callback``,
  :data:`STATE_SECONDS`); the identity provider's page posts its assertion with
  that ``state`` to ``POST /auth/callback`` from the provider's own origin, so the
  callback checks the state (known, unexpired, used once, equal to the cookie)
  and not ``Origin``.  The development provider's form ``/auth/dev/sign-in``
  (only when ``[identity] dev_provider_key`` is set) is this node's own page and
  keeps the ``Origin`` check.  The assertion is verified the same way and opens a
  session: a random id in the cookie ``huxin_session`` (``HttpOnly; Secure;
  SameSite=Strict``) bound to that assertion's subject, ending after
  ``[identity] session_seconds``, at ``POST /auth/sign-out``, or when the citizen
  deregisters (:meth:`Auth.close_subject`);
* CSRF: a request authenticated by the session cookie must ALSO carry the
  header ``X-CSRF-Token`` equal to the session's token (given as the readable
  cookie ``huxin_csrf`` and by ``GET /auth/session``), and a state-changing one
  whose ``Origin`` names another site is refused; a request with an
  ``Authorization`` header needs neither (no ambient credential);
* **clients** (mutual-TLS listener): the caller is the region id of the verified
  client certificate, checked by the node's :class:`~node.federation._callers.CallerCheck`
  exactly as the gRPC guard checks it (pins, client registry, docs/adr/0415);
* **operators**: a client whose identity is the node's own region (a pinned
  peer certificate) or listed in ``[operators] allowed`` AND of kind ``CLIENT``
  (so its certificate was checked against the client registry);
  ``PERMISSION_DENIED NOT_OPERATOR`` otherwise; a
  state-changing console call also needs ``X-Requested-With`` and no foreign
  ``Origin`` (a browser sends its client certificate like a cookie).

Invariants: the ID number of a session's citizen lives in this process's memory
only (a grant binds the consent to it) and never in a cookie, a log line or a
response; sessions are bounded (``[identity] max_sessions``; the oldest is
signed out when full) and so are one subject's (:data:`SESSIONS_PER_SUBJECT`;
that subject's oldest is signed out), so one person cannot sign everyone else
out; pending sign-in states are bounded by ``max_sessions`` too; after sign-in
the browser goes only to a path of this site (:data:`LOCAL_PATH`); refusals are
the node's errors (``IDENTITY_*``, ``SESSION_*``, ``CSRF_*``,
``SIGN_IN_STATE_INVALID``, ``INVALID_ID_NUMBER``, ``NOT_OPERATOR``,
``NO_CLIENT_CERTIFICATE``) mapped by the one table.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
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
from node.core._errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from node.federation._callers import CLIENT, PEER, CallerCheck
from node.rpc._identity import AuthenticatedCitizen, DevIdentityProvider, IdentityVerifier
from node.store._translog import subject_ref
from scoring import RecordError, normalise_id_number

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "OPERATOR_HEADER",
    "SESSIONS_PER_SUBJECT",
    "SESSION_COOKIE",
    "STATE_COOKIE",
    "STATE_SECONDS",
    "Auth",
    "auth_routes",
    "local_path",
]

SESSION_COOKIE = "huxin_session"
CSRF_COOKIE = "huxin_csrf"
STATE_COOKIE = "huxin_sign_in"  # binds a sign-in's state to the browser that began it
STATE_SECONDS = 600  # a sign-in at the provider takes at most this long
STATE_MAX = 64  # characters of a state (ours are 43)
SESSIONS_PER_SUBJECT = 5  # one person's browsers and devices at once
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
        # each subject's session ids, oldest first (kept in step with _sessions)
        self._by_subject: dict[bytes, list[str]] = {}
        # pending sign-ins: state -> (expires_at, where to go afterwards)
        self._states: OrderedDict[str, tuple[int, str]] = OrderedDict()
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
            self._drop(sid)
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
            self._drop(sid)
        own = self._by_subject.get(citizen.subject_key, [])
        while len(own) >= SESSIONS_PER_SUBJECT:
            self._drop(own[0])  # this subject's oldest: another person's stay
        while len(self._sessions) >= self._max:
            self._drop(next(iter(self._sessions)))  # the oldest is signed out
        sid = secrets.token_urlsafe(32)
        session = Session(citizen, now + self.session_seconds, secrets.token_urlsafe(24))
        self._sessions[sid] = session
        self._by_subject.setdefault(citizen.subject_key, []).append(sid)
        return sid, session

    def _drop(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        key = session.citizen.subject_key
        own = self._by_subject.get(key, [])
        if sid in own:
            own.remove(sid)
        if not own:
            self._by_subject.pop(key, None)

    def close_session(self, sid: str | None) -> None:
        if sid:
            self._drop(sid)

    def close_subject(self, subject_key: bytes) -> None:
        """Sign the subject out everywhere: after deregistration nothing of that
        person (their ID number above all) stays in this process."""
        for sid in list(self._by_subject.get(subject_key, [])):
            self._drop(sid)

    def sessions_of(self, subject_key: bytes) -> int:
        return len(self._by_subject.get(subject_key, []))

    # -- sign-in state (the provider's callback) -----------------------------
    def begin_sign_in(self, target: str) -> tuple[str, int]:
        """A fresh state for one sign-in at the provider, and when it ends."""
        now = self._now()
        for state in [k for k, (ends, _) in self._states.items() if ends <= now]:
            del self._states[state]
        while len(self._states) >= self._max:
            self._states.popitem(last=False)  # the oldest pending sign-in is forgotten
        state = secrets.token_urlsafe(32)
        self._states[state] = (now + STATE_SECONDS, local_path(target))
        return state, now + STATE_SECONDS

    def finish_sign_in(self, state: object, cookie: str | None) -> str:
        """Where to go after sign-in: the state must be one this node gave, unexpired,
        unused, and the one this browser's cookie holds (so another person's
        sign-in cannot be planted in this browser)."""
        if not isinstance(state, str) or not state or len(state) > STATE_MAX:
            raise PermissionDeniedError(
                "SIGN_IN_STATE_INVALID", "the sign-in carries no state of this node", field="state"
            )
        if not cookie or not hmac.compare_digest(state.encode(), cookie.encode()):
            raise PermissionDeniedError(
                "SIGN_IN_STATE_INVALID",
                "the state is not the one this browser began the sign-in with",
                field="state",
            )
        pending = self._states.pop(state, None)
        if pending is None or pending[0] <= self._now():
            raise PermissionDeniedError(
                "SIGN_IN_STATE_INVALID", "no such sign-in or it ended; sign in again", field="state"
            )
        return pending[1]

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
        if not self._operator_role(who):
            raise PermissionDeniedError(
                "NOT_OPERATOR", "this certificate does not hold the operator role"
            )
        return who

    def _operator_role(self, who: str) -> bool:
        """The node's own identity (a pinned peer certificate), or a listed operator
        whose certificate the client registry checked: a CA-signed certificate of
        any other kind is admitted by CallerCheck without a registry check."""
        if who == self._config.region:
            return self._callers is None or self._callers.kind(who) == PEER
        if who not in self._config.operators:
            return False
        return self._callers is not None and self._callers.kind(who) == CLIENT


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


#: A path of this site: one "/" then no "/" or "\\" (browsers read "//host", "/\\host"
#: as another host), only RFC 3986 path and query characters (no control
#: character, space, backslash or fragment).  Same rule in pages/signin.js.
LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
LOCAL_PATH_MAX = 256


def local_path(target: str) -> str:
    """Where to go after sign-in: a path of this site only (never another host)."""
    if len(target) > LOCAL_PATH_MAX or not LOCAL_PATH.fullmatch(target):
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
        response = web.Response(status=303, headers={"Location": local_path(target)})
        _set_session(response, auth, sid, session)
        return response

    async def sign_in_state(request: web.Request) -> web.Response:
        # the pages hand this state to the provider, which posts it back with the
        # assertion; the cookie goes along on that cross-site POST (SameSite=None)
        state, ends = auth.begin_sign_in(request.query.get("next", "/"))
        response = web.json_response(
            {"state": state, "expires_at": ends, "callback": "/auth/callback"},
            headers={"Cache-Control": "no-store"},
        )
        response.set_cookie(
            STATE_COOKIE,
            state,
            max_age=STATE_SECONDS,
            path="/auth/callback",
            secure=True,
            httponly=True,
            samesite="None",
        )
        return response

    async def callback(request: web.Request) -> web.Response:
        # posted by the provider's page from the provider's origin: the state, not
        # Origin, shows this browser began the sign-in here (docs/adr/0800)
        form = await request.post()
        target = auth.finish_sign_in(form.get("state"), request.cookies.get(STATE_COOKIE))
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not assertion:
            raise UnauthenticatedError("IDENTITY_MISSING", "no assertion", field="assertion")
        response = signed_in(request, auth.verify_assertion(assertion), target)
        response.del_cookie(STATE_COOKIE, path="/auth/callback")
        return response

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
        web.get("/auth/sign-in-state", sign_in_state),
        web.post("/auth/callback", callback),
        web.get("/auth/session", session),
        web.post("/auth/sign-out", sign_out),
    ]
    dev = auth.dev
    if dev is None:
        return routes

    async def dev_form(request: web.Request) -> web.Response:
        target = local_path(request.query.get("next", "/"))
        return web.Response(
            text=_DEV_FORM.format(next=escape(target, quote=True)), content_type="text/html"
        )

    async def dev_sign_in(request: web.Request) -> web.Response:
        form = await request.post()
        raw = form.get("id_number")
        try:  # the same rule the verifier applies to an assertion's subject_id
            id_number = normalise_id_number(
                raw if isinstance(raw, str) and len(raw) <= 64 else None, field="id_number"
            )
        except RecordError:
            raise InvalidArgumentError(
                "INVALID_ID_NUMBER",
                "an ID number of 18 characters (17 digits, then a digit or X; GB 11643)",
                field="id_number",
            ) from None
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
