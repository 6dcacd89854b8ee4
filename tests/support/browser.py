"""The browser tests' harness: Debian's chromium driven by Playwright (issue 19).

A pytest plugin (``tests/conftest.py`` lists it in ``pytest_plugins``) giving:

* the session fixture :func:`browsers` (a :class:`Browsers`): contexts of a real
  headless chromium (``/usr/bin/chromium``, never a downloaded browser) that trust
  exactly the CA of the federation under test, optionally presenting a client
  certificate (Playwright's ``client_certificates``);
* :func:`screenshot` — a full-page PNG in ``test-artifacts/screenshots/``
  (gitignored), the directory named in the session's summary;
* :data:`BROWSER_TESTS` — the mark a browser test module sets as ``pytestmark``:
  the Playwright driver lives on the session's event loop, so its tests run there.

How the CA is trusted (``ignore_https_errors`` is never set):

* chromium checks the node's certificate itself against an NSS database in a
  home directory of its own (``$HOME/.pki/nssdb``, where chromium on Linux reads
  locally added roots) holding the test CA as the only added root (``certutil``
  from Debian's ``libnss3-tools``; ``.ci/run`` installs it with chromium);
* a context with a client certificate talks TLS to the node through Playwright's
  driver (Node.js), which checks the node against ``NODE_EXTRA_CA_CERTS`` = the
  test CA, read once when the driver starts.

So each CA gets its own driver and chromium, started at its first context and
kept for the session (a test module builds one federation, so one CA).  A test
that sees ``ERR_CERT_AUTHORITY_INVALID`` talks to a node of another CA.

Invariants: a missing chromium or ``certutil`` FAILS the test that asks for a
browser (a skip would turn a broken CI machine green); every request a page makes
to a host other than loopback is recorded (:meth:`Browsers.outside_requests`),
because the pages must load nothing from the internet; a screenshot name is a
short slug, so it cannot leave the artifacts directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    async_playwright,
)

from tests._waiting import WAIT_S

__all__ = [
    "BROWSER_TESTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "SCREENSHOTS",
    "Browsers",
    "ClientCertificate",
    "browsers",
    "screenshot",
]

#: Debian's chromium package; Playwright's own browser builds are never downloaded
CHROMIUM = Path("/usr/bin/chromium")
#: headless on a shared CI machine as root: no sandbox (root cannot have one), no
#: GPU, and none of the browser's own traffic (updates, sync, first-run pages)
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: where :func:`screenshot` writes (the repository's ``test-artifacts/``, gitignored)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
#: the tests of a browser module run on the session's loop, where the driver lives
BROWSER_TESTS = pytest.mark.asyncio(loop_scope="session")

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: a phone (the citizen pages are mobile-first): the viewport of a common handset
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate a context presents to ``origin`` (``https://host:port``)."""

    origin: str
    cert_pem: bytes
    key_pem: bytes


@dataclass
class _Trusting:
    """One driver and one chromium that trust one CA."""

    playwright: Playwright
    browser: Browser


@dataclass
class Browsers:
    """The session's browsers, one per CA trusted (module docstring)."""

    workdir: Path
    _by_ca: dict[bytes, _Trusting] = field(default_factory=dict)
    _outside: dict[int, list[str]] = field(default_factory=dict)

    async def context(
        self,
        ca_pem: bytes,
        *,
        client: ClientCertificate | None = None,
        phone: bool = False,
        locale: str = "zh-CN",
    ) -> BrowserContext:
        """A new context (its own cookies) of the chromium that trusts ``ca_pem``;
        ``client``: presented to its origin when the node asks; ``phone``: a handset's
        viewport and touch.  Close it when done (the browser stays for the session)."""
        trusting = await self._trusting(ca_pem)
        options: dict[str, Any] = {"locale": locale, **(PHONE if phone else {})}
        if client is not None:
            options["client_certificates"] = [
                {"origin": client.origin, "cert": client.cert_pem, "key": client.key_pem}
            ]
        ctx = await trusting.browser.new_context(**options)
        # Playwright's 30 s default is a claim about speed a busy CI machine breaks;
        # this bound only limits how long a broken page hangs (tests/_waiting.py)
        ctx.set_default_timeout(WAIT_S * 1000)
        ctx.set_default_navigation_timeout(WAIT_S * 1000)
        outside: list[str] = []
        self._outside[id(ctx)] = outside

        def record(request: Request) -> None:
            host = urlsplit(request.url).hostname or ""
            if request.url.startswith(("http:", "https:", "ws:", "wss:")) and (
                host not in _LOOPBACK
            ):
                outside.append(request.url)

        ctx.on("request", record)
        return ctx

    def outside_requests(self, ctx: BrowserContext) -> list[str]:
        """Every URL the context's pages asked for on a host other than loopback."""
        return list(self._outside.get(id(ctx), ()))

    async def _trusting(self, ca_pem: bytes) -> _Trusting:
        found = self._by_ca.get(ca_pem)
        if found is not None:
            return found
        _require_tools()
        n = len(self._by_ca)
        ca_file = self.workdir / f"ca-{n}.pem"
        ca_file.write_bytes(ca_pem)
        home = self.workdir / f"home-{n}"
        _nss_trusting(home, ca_file)
        # the driver reads NODE_EXTRA_CA_CERTS once, from the environment it is
        # started with (a copy of os.environ): set it for that moment only
        saved = os.environ.get("NODE_EXTRA_CA_CERTS")
        os.environ["NODE_EXTRA_CA_CERTS"] = str(ca_file)
        try:
            playwright = await async_playwright().start()
        finally:
            if saved is None:
                os.environ.pop("NODE_EXTRA_CA_CERTS", None)
            else:
                os.environ["NODE_EXTRA_CA_CERTS"] = saved
        try:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=list(CHROMIUM_ARGS),
                env={**os.environ, "HOME": str(home)},
            )
        except BaseException:
            await playwright.stop()
            raise
        found = self._by_ca[ca_pem] = _Trusting(playwright, browser)
        return found

    async def close(self) -> None:
        for trusting in self._by_ca.values():
            await trusting.browser.close()
            await trusting.playwright.stop()
        self._by_ca.clear()


def _require_tools() -> None:
    """Fail (never skip) when the machine lacks what a browser test needs."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium "
            "(apt-get install chromium; .ci/run installs it when missing)",
            pytrace=False,
        )
    if shutil.which("certutil") is None:
        pytest.fail(
            "certutil is missing: the browser trusts the test CA through an NSS database "
            "(apt-get install libnss3-tools; .ci/run installs it when missing)",
            pytrace=False,
        )


def _nss_trusting(home: Path, ca_file: Path) -> None:
    """A home directory whose NSS database trusts ``ca_file`` for TLS servers only."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for argv in (
        ["certutil", "-N", "-d", f"sql:{db}", "--empty-password"],
        ["certutil", "-A", "-d", f"sql:{db}", "-n", "huxin-test-ca", "-t", "C,,", "-i",
         str(ca_file)],
    ):  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=60)


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``test-artifacts/screenshots/NAME.png`` and return the path.

    ``name`` is a slug (``[a-z0-9][a-z0-9._-]{0,79}``), e.g. ``e2e-03-consent-granted``."""
    if not _SLUG.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: use [a-z0-9][a-z0-9._-]{{0,79}}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    path.chmod(0o600)  # written by the driver with its umask; owner-only, as all the suite writes
    return path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browsers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browsers]:
    """The session's :class:`Browsers`; each is closed at the end of the session."""
    harness = Browsers(tmp_path_factory.mktemp("browsers"))
    try:
        yield harness
    finally:
        await harness.close()


# ------------------------------------------------------------ session summary

_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the screenshots directory when this session wrote to it (with pytest-xdist
    the workers write, the controller reports: it looks at the files' times)."""
    if not SCREENSHOTS.is_dir():
        return
    fresh = [p for p in SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _STARTED]
    if fresh:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"{len(fresh)} screenshots in {SCREENSHOTS}")
