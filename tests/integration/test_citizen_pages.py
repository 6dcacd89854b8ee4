"""The citizen's pages in a real browser against a real node (issue 19, "The citizen's
pages"; H3, H12, H14, H15, H16, N3, N4, N21-N23).

One region node (real mutual-TLS gRPC ports, real SQLite) with its citizen HTTPS
listener (node.http, the pages of node.web), as ``huxin serve`` runs them, on the
clock of today (the browser checks the node's certificate on its own clock).  Debian's
chromium, through Playwright (tests/support/browser.py), trusts exactly the test
CA, on a phone's viewport.  Each test signs in its own person through the
development identity provider, so the tests share the node but not their data.
The relying party ("the bank") is the peer ``hainan`` on the gRPC peer port, using
exactly the text the page hands over.  Screenshots of every page go to
test-artifacts/screenshots/ (``citizen-*``).
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Response, Route, expect

from keys import Status, StatusList
from keys.pb.v1 import attestation_pb2
from node.cli._init import init_region
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    approved_tables_toml,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.http._app import HttpServer
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rights._objections import advance
from node.web import CONTENT_SECURITY_POLICY, PAGES
from tests.support.browser import BROWSER_TESTS, SCREENSHOTS, Browsers, screenshot
from tests.support.refusals import expect_refused
from tests.support.rights_region import penalty

pytestmark = BROWSER_TESTS

NOW = datetime.now(UTC).replace(microsecond=0)
REGION, SCHEME, BANK = "heihe", "heihe", "hainan"
SCENARIO = "heihe/credit-loans"  # tier A; its consents may disclose the grade (H14)
#: well inside a finished month, whichever month the node publishes today (H3)
RECOGNISED = (NOW - timedelta(days=62)).date().isoformat()
ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE = (make_id_number(n) for n in range(401, 408))
PEOPLE = (ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE)
HANDOVER = re.compile(r"HUXIN-CONSENT-1:([A-Za-z0-9_-]+)")


@dataclass
class World:
    bed: Testbed
    node: RunningNode
    http: HttpServer
    origin: str
    bank: node_pb2_grpc.PeerServiceStub
    citizen: node_pb2_grpc.CitizenServiceStub
    ca_pem: bytes

    def me(self, idn: str) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(idn)

    async def status_of(self, signed: bytes) -> Status:
        """The attestation's entry in the node's signed status list, as a verifier reads it."""
        env = attestation_pb2.SignedAttestation.FromString(signed).envelope
        index = attestation_pb2.Attestation.FromString(env.payload).status.index
        listed = await self.bank.GetStatusList(node_pb2.GetStatusListRequest())
        m = attestation_pb2.StatusList.FromString(listed.payload)
        bits = zlib.decompress(m.bits)
        return StatusList(m.issuer_region, m.list_id, m.size, raw=bits).get(index)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """Heihe with six people at tier A (600 + 30 + 2 x 60 honours - 80 penalty = 670),
    its citizen HTTPS listener with the development sign-in, and the bank."""
    tmp = tmp_path_factory.mktemp("citizen-pages")
    bed = Testbed(tmp, now=NOW)
    assert bed.ca is not None
    directory = tmp / REGION
    init_region(
        directory, REGION, SCHEME, bed.ca, NOW, peers=(BANK,), sources=("heihe-court",),
        extra_toml=approved_tables_toml(directory, SCHEME, bed.authority, NOW),
        http_listen=("127.0.0.1:0", ""), dev_sign_in=True,
    )  # fmt: skip
    node = await bed.start_node(
        REGION, SCHEME, peers=(BANK,), sources=("heihe-court",), clock=ManualClock(NOW)
    )
    source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court")))
    records = []
    for i, idn in enumerate(PEOPLE):
        for n, level in enumerate(("city", "national", "national")):
            honour = honour_record(f"h-{i}-{n}", idn, recognised_on=RECOGNISED)
            honour.level = level
            records.append(honour)
        fine = penalty(f"p-{i}", idn)
        fine.recognised_on = RECOGNISED
        records.append(fine)
    await source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=records, subjects=[resident(p) for p in PEOPLE]
        )
    )
    server = node.server
    http = HttpServer(server.ctx, throttle=server.throttle, router=server.router)
    ports = await http.start()
    world = World(
        bed,
        node,
        http,
        f"https://127.0.0.1:{ports.citizen}",
        node_pb2_grpc.PeerServiceStub(bed.peer_channel(node, bed.cert(BANK))),
        bed.citizen_stub(node),
        bed.ca.cert_pem,
    )
    try:
        yield world
    finally:
        await http.stop()
        await bed.close()


@dataclass
class Visit:
    """A browser context of one person, with what its pages complained about."""

    ctx: BrowserContext
    page: Page
    errors: list[str]


@pytest_asyncio.fixture(loop_scope="session")
async def phone(browsers: Browsers, world: World) -> AsyncIterator[Visit]:
    ctx = await browsers.context(world.ca_pem, phone=True)
    page = await ctx.new_page()
    errors: list[str] = []

    def console(m: ConsoleMessage) -> None:
        # a refused API call is logged by chromium as a failed load: the page handles
        # it (the tests assert what it shows); a page's own file failing is checked below
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            errors.append(m.text)

    def response(r: Response) -> None:
        path = urlsplit(r.url).path
        if r.status >= 400 and not path.startswith(("/api/", "/auth/")):
            errors.append(f"{r.status} {path}")

    page.on("console", console)
    page.on("response", response)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield Visit(ctx, page, errors)
        # nothing from the internet, no script error, no CSP violation on any page
        assert browsers.outside_requests(ctx) == []
        assert errors == []
    finally:
        await ctx.close()


async def ready(page: Page) -> None:
    """The page's script finished its first drawing (``body[data-ready]``)."""
    await page.wait_for_selector("body[data-ready='true']")


async def open_page(world: World, page: Page, path: str) -> None:
    await page.goto(world.origin + path)
    await ready(page)


async def sign_in(world: World, page: Page, id_number: str, target: str = "/") -> None:
    """Through the sign-in page and the development identity provider's form (the only
    page where an ID number is typed: the provider's, not the node's pages)."""
    await page.goto(f"{world.origin}/signin?next={quote(target)}")
    await ready(page)
    await page.click("#provider")
    await page.fill("#id_number", id_number)
    await page.click("button[type=submit]")
    await page.wait_for_url(world.origin + target)
    await ready(page)


async def no_id_number(page: Page, *ids: str) -> None:
    html = await page.content()
    for idn in ids:
        assert idn not in html


#: WCAG 2 contrast of every visible text against the background it is drawn on
#: (the first opaque background among its ancestors): how many texts were measured,
#: and those below 4.5:1
LOW_CONTRAST = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const bg = (n) => {
    for (; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c;
    }
    return [255, 255, 255];
  };
  const low = [];
  let measured = 0;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walk.nextNode(); t; t = walk.nextNode()) {
    const n = t.parentElement;
    if (!t.textContent.trim() || !n.offsetParent || n.closest("[hidden], .sr-only, .skip")) continue;
    const a = lum(rgb(getComputedStyle(n).color)), b = lum(bg(n));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    measured += 1;
    if (!(ratio >= 4.5)) low.push(t.textContent.trim().slice(0, 30) + " " + ratio.toFixed(2));
  }
  return [measured, low];
}"""


def handover_token(text: str) -> node_pb2.ConsentToken:
    m = HANDOVER.fullmatch(text.strip())
    assert m is not None, text[:40]
    raw = base64.urlsafe_b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4))
    return node_pb2.ConsentToken.FromString(raw)


# ------------------------------------------------------------------------------ tests


async def test_sign_in_score_consent_queries_and_withdrawal(world: World, phone: Visit) -> None:
    """Issue 19: a citizen signs in, sees the score with every point's reason (H12),
    grants a consent after a preview of exactly what the bank sees, hands it over as a
    QR code and text; the bank's request with that text is answered; the query appears
    with its inclusion proof checked in the browser (H16, N23); the citizen withdraws
    and the bank's next request is refused."""
    page = phone.page
    await page.goto(world.origin + "/")
    await page.wait_for_url(re.compile(r".*/signin\?next=%2F$"))  # signed out: sent to sign in
    await ready(page)
    await screenshot(page, "citizen-01-signin")
    await sign_in(world, page, ALICE)

    mine = await world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=world.me(ALICE))
    assert await page.inner_text("#score-value") == str(mine.result.score)
    assert await page.inner_text("#grade-value") == mine.result.grade == "A"
    rows = page.locator("#records tbody tr")
    assert await rows.count() == len(mine.result.contributions) == 4
    for c in mine.result.contributions:  # every point with its reason
        row = page.locator("#records tbody tr", has_text=c.record_id)
        assert c.reason in await row.inner_text()
    assert re.fullmatch(r"[0-9a-f]{16}", await page.inner_text("#whoami code"))
    await no_id_number(page, ALICE)
    await screenshot(page, "citizen-02-score")

    # the consent: preview first (nothing stored), then the grant
    await open_page(world, page, "/consent?scenario=" + quote(SCENARIO))
    assert await page.input_value("#purpose") == SCENARIO
    await page.fill("#audience", BANK)
    await page.select_option("#scope", "grade")
    await page.fill("#max_uses", "3")
    await page.click("#preview-btn")
    await page.wait_for_selector("#preview:not([hidden])")
    assert await page.inner_text("#preview-audience") == BANK
    assert "以及您的信用等级；不会得知您的分数" in await page.inner_text("#preview-statement")
    assert "信用等级" in await page.inner_text("#disclosed")  # the grade, and
    assert "信用分数" in await page.inner_text("#withheld")  # never the score
    listed = await world.citizen.ListConsents(
        node_pb2.ListConsentsRequest(), metadata=world.me(ALICE)
    )
    assert list(listed.consents) == []  # a preview grants nothing
    await page.click("#grant-btn")
    await page.wait_for_selector("#qr-svg path")
    assert await page.locator("#qr-svg").get_attribute("role") == "img"
    text = await page.input_value("#token-text")
    token = handover_token(text)
    assert token.token.payload and len(token.binding_salt) >= 16
    await no_id_number(page, ALICE)
    await screenshot(page, "citizen-03-consent-granted")

    # the bank asks with exactly what was handed over, and is answered
    answer = await world.bank.RequestAttestation(attestation_request(token, ALICE, SCENARIO))
    assert answer.signed_attestation

    await open_page(world, page, "/consents")
    item = page.locator(f"li[data-consent-id='{token.consent_id}']")
    assert "有效" in await item.inner_text()
    assert "也会被撤销" in await page.inner_text("main > p.muted")
    await screenshot(page, "citizen-04-consents")

    await open_page(world, page, "/queries")
    proofs = page.locator("[data-proof]")
    kinds = await page.inner_text("#log-table")
    assert "被查询并出具证明" in kinds and BANK in kinds
    assert await proofs.count() >= 2  # the grant and the attestation
    assert set(await proofs.evaluate_all("ns => ns.map(n => n.dataset.proof)")) == {"checked"}
    await screenshot(page, "citizen-05-queries")

    # withdraw: the dialog says what happens; the bank's next request is refused
    await open_page(world, page, "/consents")
    await item.get_by_role("button").click()
    dialog = page.locator("dialog.confirm")
    assert BANK in await dialog.inner_text()
    await screenshot(page, "citizen-06-withdraw-confirm")
    await dialog.locator("button[type=submit]").click()
    await page.wait_for_selector(f"li[data-consent-id='{token.consent_id}'].state-withdrawn")
    await expect_refused(
        world.bank.RequestAttestation(attestation_request(token, ALICE, SCENARIO)),
        reason="CONSENT_WITHDRAWN",
    )
    # as the page said: what was issued with it is revoked too
    assert await world.status_of(answer.signed_attestation) is Status.REVOKED


async def test_objection_shows_each_steps_deadline(world: World, phone: Visit) -> None:
    """Issue 19, H15, N21: an objection filed on the page against a record of the report
    (prefilled from the report's link) shows each step's deadline as the node set it.
    The record's number and department never enter a URL (browser history is kept on
    shared phones): every page the tab visits is recorded and none holds them."""
    page = phone.page
    visited: list[str] = []
    page.on("framenavigated", lambda f: visited.append(f.url) if f == page.main_frame else None)
    await sign_in(world, page, BOB)
    row = page.locator("#records tbody tr", has_text="p-1")
    source = (await row.locator("td").first.inner_text()).strip()
    await row.get_by_role("link", name="异议").click()
    await ready(page)
    assert page.url == world.origin + "/objections"
    assert "p-1" in await page.locator("#target option:checked").inner_text()
    # read once: a reload opens the form without a chosen record
    assert await page.evaluate("sessionStorage.length") == 0
    await page.fill("#reason", "处罚决定已被撤销")
    await page.click("#file-btn")
    await page.wait_for_selector("li.objection")
    mine = await world.citizen.ListMyObjections(
        node_pb2.ListObjectionsRequest(), metadata=world.me(BOB)
    )
    (objection,) = mine.objections
    assert objection.deadlines  # the node set them; the page shows every one
    shown = await page.locator("li.objection ol.steps time").evaluate_all(
        "ts => ts.map(t => t.getAttribute('datetime'))"
    )
    assert shown == [d.due for d in objection.deadlines]
    assert objection.due in await page.inner_text("li.objection .due")
    assert "已受理" in await page.inner_text("#alert")
    await screenshot(page, "citizen-07-objection-filed")
    assert visited and source
    for url in visited:
        assert "p-1" not in url and source not in url and "record" not in url, url


async def test_an_answered_objection_says_who_answered(world: World, phone: Visit) -> None:
    """Issue 19, H15, N21: the operator answers an objection to a published score, the
    source department one to a record's facts; each answered objection's badge, its
    history and its handler name the one who answered, in Chinese and in English."""
    me, ctx = world.me, world.node.server.ctx
    period = (await world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=me(GRACE))).period
    score = await world.citizen.FileObjection(
        node_pb2.FileObjectionRequest(about_score=True, period=period, reason="分数算错了"),
        metadata=me(GRACE),
    )
    record = await world.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-6", reason="不是我的罚款"), metadata=me(GRACE)
    )
    await advance(ctx)  # the node forwards the record's objection to the court
    bed, node = world.bed, world.node
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court")))
    operator = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert(REGION)))
    done = await operator.ResolveObjection(
        node_pb2.AnswerObjectionRequest(objection_id=score.objection_id, outcome="upheld")
    )
    answered = await court.AnswerObjection(
        node_pb2.AnswerObjectionRequest(objection_id=record.objection_id, outcome="upheld")
    )
    assert done.state == answered.state == "answered"  # the same state, told apart below

    page = phone.page
    await sign_in(world, page, GRACE, "/objections")
    by_operator = page.locator(f"li.objection[data-objection-id='{score.objection_id}']")
    by_court = page.locator(f"li.objection[data-objection-id='{record.objection_id}']")
    await screenshot(page, "citizen-07-objections-answered")
    words = {
        "zh": ("运营方已答复", "来源部门已答复", "运营方"),
        "en": ("answered by the operator", "answered by the source department", "the operator"),
    }
    for lang in ("zh", "en"):
        if lang == "en":
            await page.click("#lang-switch")  # the page draws itself again in English
        operator_word, court_word, handler = words[lang]
        # expect(): waits for the drawing the switch started
        await expect(by_operator.locator(".badge")).to_have_text(operator_word)
        await expect(by_court.locator(".badge")).to_have_text(court_word)
        await expect(by_operator.locator("dl.facts dd").nth(1)).to_have_text(handler)
        await expect(by_court.locator("dl.facts dd").nth(1)).to_have_text("heihe-court")
        for due in (by_operator.locator(".due"), by_court.locator(".due")):  # on one line
            assert await due.evaluate("e => e.getClientRects().length") == 1
        # the history's step too: the operator's objection never names the department
        assert operator_word in (await by_operator.locator("details").text_content() or "")
        assert court_word not in (await by_operator.text_content() or "")


async def test_bad_input_is_shown_at_its_field(world: World, phone: Visit) -> None:
    """A refused grant (an audience the trust list does not know) keeps the form, says
    the reason and marks the field the node named; nothing is granted."""
    page = phone.page
    await sign_in(world, page, ERIN, "/consent")
    await page.fill("#audience", "no-such-bank")
    await page.click("#preview-btn")
    alert = page.locator("#alert.error")
    await alert.wait_for()
    assert await page.get_attribute("#audience", "aria-invalid") == "true"
    assert await page.input_value("#audience") == "no-such-bank"
    assert "AUDIENCE_NOT_TRUSTED · audience" in await alert.inner_text()
    listed = await world.citizen.ListConsents(
        node_pb2.ListConsentsRequest(), metadata=world.me(ERIN)
    )
    assert list(listed.consents) == []
    await screenshot(page, "citizen-08-refused-audience")


async def test_opt_out_and_deregistration_say_what_happens(world: World, phone: Visit) -> None:
    """Issue 19, N3, N4: opting out and deregistering each ask first, saying what
    happens; a cancelled dialog changes nothing; deregistration needs the word typed;
    each done action says what it ended or deleted, as the node counted it."""
    page = phone.page
    me = world.me
    await world.citizen.GrantConsent(
        node_pb2.GrantConsentRequest(audience=BANK, purpose=SCENARIO), metadata=me(FRANK)
    )
    await sign_in(world, page, FRANK, "/account")
    dialog = page.locator("dialog.confirm")

    await page.click("#optout-btn")
    assert "授权立即终止" in await dialog.inner_text()
    await dialog.get_by_role("button", name="取消").click()
    assert not (
        await world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=me(FRANK))
    ).opted_out
    await page.click("#optout-btn")
    await dialog.locator("button[type=submit]").click()
    await page.wait_for_selector("#optin-btn:not([hidden])")
    assert "终止授权 1 项" in await page.inner_text("#alert")
    assert (await world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=me(FRANK))).opted_out
    await screenshot(page, "citizen-21-opted-out")
    await page.click("#optin-btn")
    await page.wait_for_selector("#optout-btn:not([hidden])")

    await page.click("#dereg-btn")
    assert "不可恢复" in await dialog.inner_text()
    await page.fill("#confirm-word", "好")
    await dialog.locator("button[type=submit]").click()  # the wrong word: still asking
    assert await page.get_attribute("#confirm-word", "aria-invalid") == "true"
    await screenshot(page, "citizen-22-deregister-confirm")
    await page.fill("#confirm-word", "注销")
    await dialog.locator("button[type=submit]").click()
    await page.wait_for_selector("#dereg-result:has-text('已注销')")
    assert "删除记录 4 条" in await page.inner_text("#dereg-result")
    await expect_refused(world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=me(FRANK)))
    # deregistration ended every session of FRANK (nothing of the person stays in the
    # node): registering again signs in first and comes back to the same button
    await page.click("#register-btn")
    await page.wait_for_url(f"{world.origin}/signin?next=%2Faccount%3Fagain%3D1")
    await ready(page)
    await page.click("#provider")
    await page.fill("#id_number", FRANK)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{world.origin}/account?again=1")
    await ready(page)
    await page.click("#register-btn")  # records about FRANK are accepted again
    await page.wait_for_selector("#alert.ok:has-text('已重新登记')")


async def test_credit_report_prints_to_pdf(world: World, phone: Visit, tmp_path: Path) -> None:
    """Issue 19: the printable 信用报告 (basic information by pseudonym, score and grade,
    records by category, objection notes, query records) prints to a PDF."""
    page = phone.page
    await sign_in(world, page, CAROL, "/report")
    mine = await world.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=world.me(CAROL))
    assert await page.inner_text("#report-score") == str(mine.result.score)
    assert await page.inner_text("#report-grade") == mine.result.grade
    report = await page.inner_text("#credit-report")
    for heading in ("基本信息", "信用评分与等级", "信用记录", "异议标注", "查询记录"):
        assert heading in report
    for c in mine.result.contributions:
        assert c.record_id in report
    await no_id_number(page, CAROL)
    await screenshot(page, "citizen-09-report")
    pdf = await page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 1
    out = SCREENSHOTS.parent / "citizen-report.pdf"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pdf)


def _flip_last_byte(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64 + "=" * (-len(b64) % 4), altchars=b"-_"))
    raw[-1] ^= 0x01  # the envelope's last field is its signature's last byte
    return base64.b64encode(bytes(raw)).decode("ascii")


async def _checked(page: Page) -> tuple[str, set[str]]:
    sig = await page.get_attribute("#checkpoint-signature", "data-checkpoint")
    proofs = await page.locator("[data-proof]").evaluate_all("ns => ns.map(n => n.dataset.proof)")
    return sig or "", set(proofs)


@pytest.mark.parametrize(
    "tampered",
    [
        pytest.param("/api/v1/me/query-log", id="checkpoint-signature"),
        pytest.param("/trust/key-set.bin", id="key-set-signature"),
    ],
)
async def test_query_log_checks_the_checkpoint_signature_in_the_browser(
    world: World, phone: Visit, tampered: str
) -> None:
    """Issue 19, H16, N23: "checked" means the checkpoint's Ed25519
    signature verified in the browser with a key of the region's key set (itself signed
    by its root key), not only the inclusion proofs. One flipped signature bit in the
    served checkpoint, or in the key set, turns every entry to "failed" although each
    inclusion proof still leads to the checkpoint's root."""
    page = phone.page
    await world.citizen.GrantConsent(
        node_pb2.GrantConsentRequest(audience=BANK, purpose=SCENARIO), metadata=world.me(DAVE)
    )
    await sign_in(world, page, DAVE, "/queries")
    sig, proofs = await _checked(page)
    assert (sig, proofs) == ("checked", {"checked"})
    seen = await page.evaluate("Object.keys(localStorage)")
    assert any(k.startswith("huxin.log-seen:") for k in seen)
    assert any(k.startswith("huxin.root-key:") for k in seen)

    async def flip(route: Route) -> None:
        resp = await route.fetch()
        if tampered.endswith(".bin"):
            body = bytearray(await resp.body())
            body[-1] ^= 0x01
            await route.fulfill(response=resp, body=bytes(body))
            return
        doc = await resp.json()
        cp = doc["checkpoint"]
        if isinstance(cp, str):
            doc["checkpoint"] = _flip_last_byte(cp)
        else:
            cp["signatures"][0]["sig"] = _flip_last_byte(cp["signatures"][0]["sig"])
        await route.fulfill(response=resp, json=doc)

    await page.route(f"**{tampered}*", flip)
    await page.reload()
    await ready(page)
    sig, proofs = await _checked(page)
    assert sig == "failed" and proofs == {"failed"}
    assert "失败" in await page.inner_text("#proof-summary")
    if tampered.endswith(".bin"):
        await screenshot(page, "citizen-05b-queries-tampered")


async def test_keyboard_alone_reaches_every_action(world: World, phone: Visit) -> None:
    """Accessibility: from the top of the main page, Tab alone reaches every link and
    button in order (none is mouse-only), the skip link jumps to the content, every
    control of the forms has a label, and focus is visible."""
    page = phone.page
    await sign_in(world, page, DAVE)
    wanted = set(
        await page.evaluate(
            """() => [...document.querySelectorAll('a[href], button, input, select, textarea')]
                 .filter(n => !n.disabled && n.offsetParent !== null)
                 .map(n => n.id || n.getAttribute('href') || n.textContent.trim())"""
        )
    )
    reached: list[str] = []
    for _ in range(len(wanted) + 10):
        await page.keyboard.press("Tab")
        who = await page.evaluate(
            "() => { const n = document.activeElement;"
            " return n.id || n.getAttribute('href') || n.textContent.trim(); }"
        )
        if who in reached:
            break
        reached.append(who)
    assert wanted <= set(reached), wanted - set(reached)
    assert reached[0] == "#main"  # the skip link comes first
    await open_page(world, page, "/")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"
    for path in ("/consent", "/objections", "/repair", "/supplements"):
        await open_page(world, page, path)
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('main input, main select, main textarea')]
                 .filter(n => n.labels.length === 0 && !n.getAttribute('aria-label'))
                 .map(n => n.id)"""
        )
        assert unlabelled == [], path


async def test_every_page_served_locally_with_its_policy(world: World, phone: Visit) -> None:
    """Every page: served with the Content-Security-Policy (nothing from another
    origin), no ID number anywhere, every text at 4.5:1 contrast or more (WCAG AA), a
    screenshot in Chinese, and the English switch."""
    page = phone.page
    await sign_in(world, page, ERIN)
    # something on most pages: a consent used by the bank, an objection, a repair
    # application (through the gRPC citizen port); Heihe's scheme takes no personal
    # uploads (PROVENANCE_NOT_ALLOWED), so its supplements page shows the form only
    me = world.me
    token = await world.citizen.GrantConsent(
        node_pb2.GrantConsentRequest(audience=BANK, purpose=SCENARIO), metadata=me(ERIN)
    )
    await world.bank.RequestAttestation(attestation_request(token, ERIN, SCENARIO))
    await world.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="h-4-0", reason="级别应为省级"), metadata=me(ERIN)
    )
    await world.citizen.ApplyForRepair(
        node_pb2.RepairApplicationRequest(
            record_id="p-4", route="commitment", statement="已缴纳罚款并作出信用承诺"
        ),
        metadata=me(ERIN),
    )
    for n, p in enumerate(PAGES, start=10):
        if p.name == "signin":
            continue
        response = await page.goto(world.origin + p.path)
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        await ready(page)
        assert await page.inner_text("main h1") == p.zh
        await no_id_number(page, ERIN)
        measured, low = await page.evaluate(LOW_CONTRAST)
        assert measured > 10 and low == [], p.path
        # a checkbox is a box beside its label's first line, not as tall as a text field
        boxes = await page.locator(".field.check input").evaluate_all(
            "bs => bs.map(b => { const r = b.getBoundingClientRect(); return [r.width, r.height]; })"
        )
        assert all(w == h for w, h in boxes), (p.path, boxes)
        if p.name == "account":  # the node words its notices in English: marked so
            assert await page.locator("ul.notices li .message[lang='en']").count() >= 2
            assert await page.locator("ul.notices li .message:not([lang='en'])").count() == 0
        await screenshot(page, f"citizen-{n}-{p.name}")
    # the incentives: mine here, and through recognition where a table maps my grade
    mine = await world.citizen.GetMyIncentives(node_pb2.MyIncentivesRequest(), metadata=me(ERIN))
    await open_page(world, page, "/incentives")
    home = {s.ref for s in mine.regions[0].scenarios}
    assert SCENARIO in home
    shown = await page.locator("#own li.incentive.yes a.button").evaluate_all(
        "as => as.map(a => decodeURIComponent(a.getAttribute('href').split('=')[1]))"
    )
    assert set(shown) == home
    for region in mine.regions[1:]:
        box = page.locator(f"#others section[data-region='{region.region}']")
        assert await box.locator("li.incentive").count() == len(region.scenarios)

    await open_page(world, page, "/")
    await page.click("#lang-switch")
    assert await page.inner_text("main h1") == "My score"
    assert await page.get_attribute("html", "lang") == "en"
    await page.wait_for_selector("#score-box .label >> text=Score")
    await screenshot(page, "citizen-30-score-en")
    await open_page(world, page, "/report")  # the choice holds on the next page
    assert await page.inner_text("main h1") == "Credit report"
    assert await page.inner_text("#r1") == "1. Basic information"
    await screenshot(page, "citizen-31-report-en")
    await page.click("#lang-switch")
    assert await page.inner_text("main h1") == "信用报告"
