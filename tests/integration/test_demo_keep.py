"""``huxin demo --keep``: the demo federation keeps serving its pages until interrupted
(issue 19, "Done when": ``make demo`` prints the URLs of the citizen pages and the
console with a sign-in that works on this machine, and keeps them up with --keep).

The real command in a child process; what it prints is all the test knows: the
citizen URL and the owner-only file of the resident to sign in as, the console URL
with the operator's PKCS#12 file and password, the federation CA.  Debian's chromium
(tests/support/browser.py) signs in through the development provider and opens the
console with that certificate; then SIGTERM stops the nodes and removes the
temporary directory.
"""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.support.browser import BROWSER_TESTS, Browsers, ClientCertificate, screenshot

pytestmark = BROWSER_TESTS

#: only bounds a broken demo on a busy machine, never a claim about speed
START_BOUND = 900.0
SERVING = "Serving until interrupted"


def _read_until_serving(proc: subprocess.Popen[str]) -> str:
    """The demo's output up to the serving line (a reader thread: readline blocks)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_BOUND
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=5)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("the demo ended before serving:\n" + "".join(seen[-40:]))
        seen.append(line)
        if SERVING in line:
            return "".join(seen)
    raise AssertionError("the demo did not start serving:\n" + "".join(seen[-40:]))


def _found(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m is not None, pattern
    return m.group(1)


async def test_demo_keep_serves_pages_with_a_working_sign_in(browsers: Browsers) -> None:
    """Issue 19: the printed URLs work in a real browser while the demo keeps serving;
    SIGTERM ends it cleanly (exit 0) and nothing of the federation is left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "demo", "--keep", "--people", "100", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = await asyncio.to_thread(_read_until_serving, proc)
        tail = out[out.index("The federation keeps serving") :]
        citizen = _found(r"Citizen pages[^:]*:\s+(https://127\.0\.0\.1:\d+/)", tail)
        subject = Path(_found(r"as the ID number in (\S+) ", tail))
        console = _found(r"Operator console:\s+(https://127\.0\.0\.1:\d+/console/)", tail)
        p12 = Path(_found(r"client certificate (\S+\.p12) ", tail))
        password = _found(r"\(password (\S+)\)", tail)
        ca = Path(_found(r"trust the federation CA (\S+) ", tail))
        workdir = Path(_found(r"(\S+)/federation/ca/ca\.pem", str(ca)))
        id_number = subject.read_text().strip()
        assert id_number not in out  # the demo points to the file, never prints the number
        assert subject.stat().st_mode & 0o077 == 0

        ctx = await browsers.context(ca.read_bytes(), phone=True)
        try:
            page = await ctx.new_page()
            await page.goto(citizen + "auth/dev/sign-in")
            await page.fill("#id_number", id_number)
            await page.click("button[type=submit]")
            await page.wait_for_url(citizen)
            await page.wait_for_selector("body[data-ready='true']")
            assert (await page.inner_text("#grade-value")).strip()
            await screenshot(page, "demo-keep-citizen-signed-in")
            assert browsers.outside_requests(ctx) == []
        finally:
            await ctx.close()

        key, cert, _cas = pkcs12.load_key_and_certificates(p12.read_bytes(), password.encode())
        assert key is not None and cert is not None
        operator = ClientCertificate(
            console.removesuffix("/console/"),
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        ctx = await browsers.context(ca.read_bytes(), client=operator)
        try:
            page = await ctx.new_page()
            response = await page.goto(console)
            assert response is not None and response.status == 200
            await page.wait_for_selector("body[data-ready='1']")
            await screenshot(page, "demo-keep-console")
        finally:
            await ctx.close()
        assert proc.poll() is None  # still serving
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 120)
    assert code == 0
    assert not workdir.exists()
