"""The page table, the shared layout and the routes of the citizen's pages.

Each page is a body fragment in ``static/pages/<name>.html`` set into
``static/layout.html`` (head, skip link, header with the language switch, the
menu, the alert region) once, when the routes are built: a page is then fixed
bytes with a strong ETag, served with the security headers below.  The
fragments, scripts and styles are package data (``pyproject.toml``), so an
installed node serves the same pages as a checkout.

Invariants: a page's bytes depend only on the installed files (never on the
request or the citizen), so ``If-None-Match`` answers 304 and a CDN may keep
them; every page response carries :data:`CONTENT_SECURITY_POLICY`; the menu
marks the current page with ``aria-current="page"``.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from node.http import HttpContext, static_route

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "STATIC_DIR", "Page", "citizen_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"

#: Nothing from another origin, no inline script or style, no plugin, no framing.
#: ``img-src data:`` is absent: the QR code is drawn as SVG elements by script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # same-origin: a POST of these pages then carries its Origin (the CSRF check), and
    # no other site learns which page linked to it
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # the shell is the same for everyone; revalidated each time so a new release shows
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its path, its fragment and script (``name``), its titles."""

    name: str
    path: str
    zh: str
    en: str
    in_menu: bool = True
    extra_css: tuple[str, ...] = ()
    extra_js: tuple[str, ...] = ()


PAGES: tuple[Page, ...] = (
    Page("signin", "/signin", "登录", "Sign in", in_menu=False),
    Page("home", "/", "我的信用", "My score"),
    Page("incentives", "/incentives", "守信激励", "Incentives"),
    Page(
        "grant",
        "/consent",
        "授权查询",
        "Grant a consent",
        extra_js=("proofs.js", "vendor/qrcode.js"),
    ),
    Page("consents", "/consents", "我的授权", "My consents"),
    Page("queries", "/queries", "查询记录", "Who queried me", extra_js=("proofs.js",)),
    Page("objections", "/objections", "异议申请", "Objections"),
    Page("repair", "/repair", "信用修复", "Credit repair"),
    Page("supplements", "/supplements", "补充信息", "Supplements"),
    Page("account", "/account", "通知与账户", "Notices and account"),
    Page(
        "report",
        "/report",
        "信用报告",
        "Credit report",
        extra_css=("report.css",),
        extra_js=("proofs.js",),
    ),
)


def _menu(current: Page) -> str:
    items = []
    for p in PAGES:
        if not p.in_menu:
            continue
        here = ' aria-current="page"' if p is current else ""
        items.append(
            f'<li><a href="{p.path}"{here} data-en="{html.escape(p.en)}">{html.escape(p.zh)}</a></li>'
        )
    return (
        '<nav class="menu" aria-label="主菜单" data-en-aria-label="Main menu"><ul>\n'
        + "\n".join(items)
        + "\n</ul></nav>"
    )


#: The way in when the node runs the development identity provider (the demo).
DEV_PROVIDER = (
    '<p><a id="provider" class="button" href="/auth/dev/sign-in" '
    'data-en="Sign in (development identity provider)">登录（开发用身份提供方）</a></p>'
)
#: The way in with a real provider: its app posts the signed assertion to /auth/callback.
REAL_PROVIDER = (
    '<p id="provider-note" data-en="Open these pages from your region\'s government services '
    'app: its identity service signs you in and brings you back here.">'
    "请从本地区政务服务应用进入本页面：由其身份认证服务为您登录并返回本页。</p>"
)


def compose(page: Page, layout: str, fragment: str, provider: str = REAL_PROVIDER) -> bytes:
    """The page's bytes: ``fragment`` set into ``layout`` (``provider``: the sign-in's way in)."""
    css = "".join(f'<link rel="stylesheet" href="{STATIC_PREFIX}{c}">' for c in page.extra_css)
    scripts = "".join(
        f'<script src="{STATIC_PREFIX}{s}" defer></script>'
        for s in (*page.extra_js, f"pages/{page.name}.js")
    )
    parts = {
        "{{name}}": page.name,
        "{{title_zh}}": html.escape(page.zh),
        "{{title_en}}": html.escape(page.en),
        "{{css}}": css,
        "{{scripts}}": scripts,
        "{{menu}}": _menu(page) if page.in_menu else "",
        "{{content}}": fragment.replace("{{provider}}", provider),
    }
    out = layout
    for key, value in parts.items():
        out = out.replace(key, value)
    return out.encode()


def _handler(body: bytes) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    async def serve(request: web.Request) -> web.StreamResponse:
        headers = {**_HEADERS, "ETag": etag}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)

    return serve


def page_routes(dev_provider: bool) -> list[web.AbstractRouteDef]:
    """One GET route per page of :data:`PAGES`."""
    layout = (STATIC_DIR / "layout.html").read_text(encoding="utf-8")
    provider = DEV_PROVIDER if dev_provider else REAL_PROVIDER
    routes: list[web.AbstractRouteDef] = []
    for page in PAGES:
        fragment = (STATIC_DIR / "pages" / f"{page.name}.html").read_text(encoding="utf-8")
        routes.append(web.get(page.path, _handler(compose(page, layout, fragment, provider))))
    return routes


def citizen_routes(hc: HttpContext) -> Iterable[web.AbstractRouteDef]:
    """The routes of the pages and of their static files (a ``node.http.RouteProvider``)."""
    return [*page_routes(hc.auth.dev is not None), static_route(STATIC_PREFIX, STATIC_DIR)]
