"""The console's routes on the mutual-TLS HTTPS listener (issue 19, docs/adr/0802).

Pages (``/console/``, ``/console/model``, ``/console/rights``, ``/console/review``,
``/console/federation``), their JSON under ``/console/api/...`` and the static files
under ``/console/static/...`` (the script, the style sheet and Apache ECharts with its
licence).

Invariants:

* every page and every JSON endpoint calls ``hc.require_operator(request)`` first:
  a caller whose client certificate is not registered with the operator role is
  refused before anything is read (401/403 with the stable reason of the one error
  tree: the body ``{"code", "reason", "field", "message"}`` from a JSON endpoint, a
  page naming the same status and reason from a page); only the static files
  (public code and a style sheet) are served to any client of the listener;
* the one action, resolving an objection, is
  :func:`node.rights._objections.answer_objection` with ``operator=True`` — exactly
  what the gRPC ``ResolveObjection`` calls — after the same bounds
  (``objection_id`` ≤ ``REF_MAX``, ``note`` ≤ ``NOTE_MAX`` and free of ID numbers);
* an action is a POST whose body is a JSON object of at most
  :data:`ACTION_BODY_MAX` bytes with ``Content-Type: application/json`` (a form on
  another site cannot send one without a CORS preflight, which this listener never
  answers), and whose ``Origin``, when the browser sends one, is this listener's
  (the client certificate is an ambient credential, like a cookie);
* answers are ``Cache-Control: no-store``; pages carry a Content-Security-Policy
  allowing only this origin (no inline script, nothing from the internet).
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from node.console._data import (
    MONTHS_DEFAULT,
    MONTHS_MAX,
    GradeCache,
    grade_distribution,
    model_state,
    query_review,
    rights_queues,
)
from node.console._federation import federation_state
from node.core._bounds import NOTE_MAX, REF_MAX, check_length, check_text
from node.core._errors import (
    InvalidArgumentError,
    NodeError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from node.http import HttpContext, static_route
from node.http._codec import MALFORMED_REQUEST, parse_json, utf8_text
from node.http._status import refusal_of
from node.rights._objections import answer_objection

__all__ = ["ACTION_BODY_MAX", "PAGES", "console_routes"]

ACTION_BODY_MAX = 4096  # an outcome and a note of NOTE_MAX characters fit many times
#: page path -> its file under static/
PAGES = {
    "/console/": "index.html",
    "/console/model": "model.html",
    "/console/rights": "rights.html",
    "/console/review": "review.html",
    "/console/federation": "federation.html",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a POST carries "Origin: null"
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_RESOLVE_FIELDS = frozenset({"outcome", "note"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_dir() -> Any:
    return resources.files("node.console") / "static"


def _json(doc: Any) -> web.Response:
    return web.json_response(
        doc,
        dumps=lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")),
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


_REFUSED = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>拒绝访问 Access refused · 互信运营控制台</title>
<link rel="stylesheet" href="/console/static/console.css"></head>
<body><header class="top"><div class="brand"><strong>互信 运营控制台</strong>
<span lang="en">Huxin operator console</span></div></header>
<main id="main"><h1>拒绝访问 <span class="en" lang="en">Access refused</span></h1>
<section class="card"><p>控制台只对登记为运营方的客户端证书开放。
<span class="en" lang="en">The console is open only to a client certificate registered with
the operator role.</span></p>
<dl class="kv"><dt>状态 <span class="en" lang="en">status</span></dt><dd>{status} {code}</dd>
<dt>原因 <span class="en" lang="en">reason</span></dt><dd id="reason">{reason}</dd>
<dt>说明 <span class="en" lang="en">message</span></dt><dd lang="en">{message}</dd></dl>
</section></main></body></html>
"""


def _refusal_page(exc: NodeError) -> web.Response:
    """A page's refusal for a person at a browser: the same status and reason as the
    error body of the JSON endpoints, as a page."""
    refusal = refusal_of(exc)
    body = {k: html.escape(str(v)) for k, v in refusal.body.items()}
    text = _REFUSED.format(status=refusal.status, **body)
    return web.Response(
        text=text,
        status=refusal.status,
        content_type="text/html",
        charset="utf-8",
        headers=_PAGE_HEADERS,
    )


def _months(request: web.Request) -> int:
    text = request.query.get("months", str(MONTHS_DEFAULT))
    if not text.isdigit() or not 1 <= int(text) <= MONTHS_MAX:
        raise InvalidArgumentError(
            "INVALID_FIELD", f"must be a whole number from 1 to {MONTHS_MAX}", field="months"
        )
    return int(text)


async def _action_body(request: web.Request) -> dict[str, str]:
    """The JSON object of an action (see the module's invariants); the reasons are the
    HTTP channel's own (``CSRF_ORIGIN``, ``MALFORMED_REQUEST``, ``INVALID_FIELD``)."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise PermissionDeniedError(
            "CSRF_ORIGIN", "the request comes from another site", field="origin"
        )
    if request.content_type != "application/json":
        raise InvalidArgumentError(
            MALFORMED_REQUEST, "send Content-Type: application/json", field="content-type"
        )
    # whole body, bounded by the app's client_max_size ([listen] http_max_body_bytes)
    raw = await request.read()
    if len(raw) > ACTION_BODY_MAX:
        raise ResourceExhaustedError(
            "MESSAGE_TOO_LARGE", f"an action's body is at most {ACTION_BODY_MAX} bytes",
            field="request",
        )  # fmt: skip
    doc = parse_json(raw)
    if not isinstance(doc, dict):
        raise InvalidArgumentError(
            MALFORMED_REQUEST, "the request body must be a JSON object", field="request"
        )
    if set(doc) - _RESOLVE_FIELDS:
        raise InvalidArgumentError(
            "INVALID_FIELD", "the request has a member this action does not take", field="request"
        )
    for name, value in doc.items():
        if not isinstance(value, str):
            raise InvalidArgumentError("INVALID_FIELD", "must be a string", field=name)
        utf8_text(name, value)
    return doc


def console_routes(hc: HttpContext) -> list[web.AbstractRouteDef]:
    """The console's routes (a :data:`node.http.RouteProvider` for the mutual-TLS app)."""
    node = hc.node
    grades_cache = GradeCache()
    static = _static_dir()
    page_bodies = {path: (static / name).read_bytes() for path, name in PAGES.items()}

    def page(path: str) -> Handler:
        body = page_bodies[path]

        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                hc.require_operator(request)
            except NodeError as exc:
                return _refusal_page(exc)
            return web.Response(
                body=body, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
            )

        return serve

    async def to_index(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        raise web.HTTPFound("/console/")

    async def session(request: web.Request) -> web.StreamResponse:
        operator = hc.require_operator(request)
        return _json(
            {
                "operator": operator,
                "region": node.config.region,
                "role": node.config.role,
                "today": node.today().isoformat(),
                "scheme": node.scheme.key,
            }
        )

    async def grades(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        return _json(await grade_distribution(node, _months(request), grades_cache))

    async def model(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        return _json(await model_state(node))

    async def rights(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        return _json(await rights_queues(node))

    async def review(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        return _json(await query_review(node))

    async def federation(request: web.Request) -> web.StreamResponse:
        hc.require_operator(request)
        return _json(await federation_state(node))

    async def resolve(request: web.Request) -> web.StreamResponse:
        operator = hc.require_operator(request)
        objection_id = request.match_info["objection_id"]
        check_length("objection_id", objection_id, REF_MAX, required=True)
        body = await _action_body(request)
        outcome, note = body.get("outcome", ""), body.get("note", "")
        check_length("outcome", outcome, REF_MAX, required=True)
        check_text("note", note, NOTE_MAX)
        info = await answer_objection(node, operator, objection_id, outcome, note, operator=True)
        return _json(
            {
                "objection_id": info.objection_id,
                "state": info.state,
                "outcome": info.outcome,
                "waiting_for": info.waiting_for,
                "due": info.due,
                "deadlines": {d.step: d.due for d in info.deadlines},
            }
        )

    routes: list[web.AbstractRouteDef] = [
        web.get("/console", to_index),
        *(web.get(path, page(path)) for path in PAGES),
        web.get("/console/api/session", session),
        web.get("/console/api/grades", grades),
        web.get("/console/api/model", model),
        web.get("/console/api/rights", rights),
        web.get("/console/api/review", review),
        web.get("/console/api/federation", federation),
        web.post("/console/api/objections/{objection_id}/resolve", resolve),
        static_route("/console/static", str(static)),
    ]
    return routes
