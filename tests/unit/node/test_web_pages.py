"""The citizen pages' files and routes, without a browser (issue 19, docs/adr/0801).

What the browser tests cannot see from one run: that every file a page names exists
and ships as package data, that nothing in the static files points at another
origin or writes markup from data, and how a page answers a revalidation.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.web import CONTENT_SECURITY_POLICY, PAGES, STATIC_DIR, Page
from node.web._pages import DEV_PROVIDER, REAL_PROVIDER, page_routes

ROOT = Path(__file__).resolve().parents[3]
LAYOUT = (STATIC_DIR / "layout.html").read_text(encoding="utf-8")


def _static_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def test_every_static_file_ships_as_package_data() -> None:
    """pyproject's package-data patterns for node.web cover every file under static/."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["node.web"]
    base = STATIC_DIR.parent
    missing = [
        str(p.relative_to(base))
        for p in _static_files()
        if not any(fnmatch(str(p.relative_to(base)), pat) for pat in patterns)
    ]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_a_page_names_only_files_that_exist(page: Page) -> None:
    """The fragment and script of every page exist; so does each extra file it loads."""
    assert (STATIC_DIR / "pages" / f"{page.name}.html").is_file()
    assert (STATIC_DIR / "pages" / f"{page.name}.js").is_file()
    for extra in (*page.extra_css, *page.extra_js):
        assert (STATIC_DIR / extra).is_file(), extra
    for linked in re.findall(r'(?:href|src)="/static/([^"]+)"', LAYOUT):
        assert (STATIC_DIR / linked).is_file(), linked


OUR_FILES = [p for p in _static_files() if "vendor" not in p.parts]


@pytest.mark.parametrize("path", OUR_FILES, ids=[p.name for p in OUR_FILES])
def test_nothing_from_another_origin_and_no_markup_from_data(path: Path) -> None:
    """No URL of another origin, no inline script or style attribute, and no script
    that assigns markup (innerHTML/outerHTML/insertAdjacentHTML/document.write)."""
    text = path.read_text(encoding="utf-8")
    # the SVG namespace is a name, never fetched
    assert set(re.findall(r"https?://[^\s\"'`)]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", text)
    if path.suffix == ".html":
        assert "<script>" not in text and not re.search(r"<script(?![^>]*\bsrc=)", text)
        assert not re.search(r"\sstyle=|\son[a-z]+=", text)


def test_the_vendored_qr_library_carries_its_licence() -> None:
    licence = (STATIC_DIR / "vendor" / "qrcode.LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Kazuhiko Arase" in licence
    assert "Licensed under the MIT license" in (STATIC_DIR / "vendor" / "qrcode.js").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(("dev", "way_in"), [(True, DEV_PROVIDER), (False, REAL_PROVIDER)])
async def test_pages_answer_with_policy_etag_and_304(dev: bool, way_in: str) -> None:
    """Every page: 200 with the CSP and a strong ETag; the same ETag revalidates to 304
    with no body; the menu marks the current page; the sign-in names the way in."""
    app = web.Application()
    app.add_routes(page_routes(dev))
    async with TestClient(TestServer(app)) as client:
        for page in PAGES:
            first = await client.get(page.path)
            assert first.status == 200
            assert first.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert first.headers["Referrer-Policy"] == "same-origin"
            body = await first.text()
            assert f'<h1 data-en="{page.en}">{page.zh}</h1>' in body
            assert "{{" not in body
            if page.in_menu:
                assert f'<a href="{page.path}" aria-current="page"' in body
            etag = first.headers["ETag"]
            assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
            again = await client.get(page.path, headers={"If-None-Match": etag})
            assert again.status == 304
            assert await again.read() == b""
        signin = await (await client.get("/signin")).text()
        assert way_in in signin
