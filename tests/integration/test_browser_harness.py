"""The browser harness itself (issue 19, tests/support/browser.py): Debian's chromium
trusts exactly the test CA, presents a client certificate when given one, records
requests that leave loopback, and writes screenshots where the summary says.

Served by a real aiohttp HTTPS server on loopback port 0 with a certificate of a
CA made here; nothing is mocked.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Error as PlaywrightError

from keys import CertificateAuthority
from tests.support import browser
from tests.support.browser import (
    BROWSER_TESTS,
    SCREENSHOTS,
    Browsers,
    ClientCertificate,
    screenshot,
)

pytestmark = BROWSER_TESTS

NOW = datetime.now(UTC)


@dataclass
class Site:
    ca: CertificateAuthority
    origin: str


async def _hello(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    who = "anonymous"
    if peer:
        who = dict(x[0] for x in peer["subject"])["commonName"]
    return web.Response(
        text=f"<!doctype html><html lang=zh><title>t</title><h1>你好 {who}</h1>"
        '<img alt="outside" src="https://example.invalid/x.png"></html>',
        content_type="text/html",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """An HTTPS server with a certificate of a fresh CA; asks for (not requires) a
    client certificate of that CA, as the operator's console port does."""
    ca = CertificateAuthority.create("harness-ca", NOW)
    server = ca.issue("heihe", NOW)
    (tmp_path / "s.pem").write_bytes(server.cert_pem)
    (tmp_path / "s.key").write_bytes(server.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "s.pem", tmp_path / "s.key")
    ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        yield Site(ca, f"https://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def test_trusts_the_test_ca_and_screenshots(browsers: Browsers, site: Site) -> None:
    """The page loads over TLS checked against the test CA (no ignored errors); the
    screenshot lands in test-artifacts/screenshots; the outside image is recorded."""
    ctx = await browsers.context(site.ca.cert_pem, phone=True)
    try:
        page = await ctx.new_page()
        await page.goto(site.origin + "/")
        assert await page.inner_text("h1") == "你好 anonymous"
        path = await screenshot(page, "harness-trusted")
        assert path == SCREENSHOTS / "harness-trusted.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert browsers.outside_requests(ctx) == ["https://example.invalid/x.png"]
    finally:
        await ctx.close()


async def test_a_node_of_another_ca_is_refused(browsers: Browsers, site: Site) -> None:
    """A browser that trusts another CA refuses the node: trust is real, not waived."""
    other = CertificateAuthority.create("other-ca", NOW)
    ctx = await browsers.context(other.cert_pem)
    try:
        page = await ctx.new_page()
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(site.origin + "/")
    finally:
        await ctx.close()


async def test_presents_the_client_certificate(browsers: Browsers, site: Site) -> None:
    """With ``client``, the node sees that certificate (an operator's, issue 19)."""
    operator = site.ca.issue("heihe.ops", NOW)
    ctx = await browsers.context(
        site.ca.cert_pem,
        client=ClientCertificate(site.origin, operator.cert_pem, operator.key_pem),
    )
    try:
        page = await ctx.new_page()
        await page.goto(site.origin + "/")
        assert await page.inner_text("h1") == "你好 heihe.ops"
    finally:
        await ctx.close()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../escape", id="parent-directory"),
        pytest.param("a/b", id="slash"),
        pytest.param("Upper", id="upper-case"),
        pytest.param("", id="empty"),
        pytest.param("x" * 81, id="too-long"),
    ],
)
async def test_screenshot_names_are_slugs(browsers: Browsers, site: Site, name: str) -> None:
    ctx = await browsers.context(site.ca.cert_pem)
    try:
        page = await ctx.new_page()
        with pytest.raises(ValueError, match="screenshot name"):
            await screenshot(page, name)
    finally:
        await ctx.close()


async def test_a_missing_chromium_fails_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a skip: a CI machine without the browser must not pass the browser tests."""
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        browser._require_tools()


async def test_a_missing_certutil_fails_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without certutil the CA cannot be trusted: a failure naming the package."""
    monkeypatch.setattr(browser.shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install libnss3-tools"):
        browser._require_tools()
