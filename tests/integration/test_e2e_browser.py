"""The whole flow of issue 19 in a real browser: citizen, bank and operator on one node.

One Heihe node (real mutual-TLS gRPC ports, real SQLite) with both HTTPS listeners,
as ``huxin serve`` runs them: the citizen pages with the development sign-in, and
the mutual-TLS listener for the bank's HTTP/JSON request and the operator's console.
Debian's chromium (tests/support/browser.py) trusts exactly the test CA; the
citizen is on a phone, the operator on a desktop presenting a client certificate
registered with the operator role.  The bank is the real ``huxin request`` command
in a child process, over HTTP/JSON, with exactly the text the citizen's page hands
over.  Screenshots of every page visited: test-artifacts/screenshots/e2e-*.png.

REQ: H3 (published months in the chart), H12 (score and explained report, consent),
H15/N21 (objection with each step's deadline, answered by the operator), H16/N23
(query log with proofs checked in the browser), C1 (the bank binds the ID itself).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Response

from keys import NodeCertificate
from node.cli._init import init_region
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    approved_tables_toml,
    honour_record,
    make_id_number,
    resident,
)
from node.http._app import HttpServer
from node.pb.v1 import node_pb2, node_pb2_grpc
from tests.support.browser import BROWSER_TESTS, Browsers, ClientCertificate, screenshot
from tests.support.processes import huxin
from tests.support.rights_region import penalty

pytestmark = BROWSER_TESTS

NOW = datetime.now(UTC).replace(microsecond=0)
REGION = "heihe"
BANK, OPERATOR = "heihe.bank", "heihe.ops"
SCENARIO = "heihe/credit-loans"
#: inside a finished month, whichever month it is today (H3)
RECOGNISED = (NOW - timedelta(days=62)).date().isoformat()
#: the node's clock once the month holding the records is published: the 15th of
#: next month, past its due day whatever the holidays (H3)
PUBLISHED = (NOW.replace(day=1) + timedelta(days=45)).replace(day=15, hour=8, minute=0, second=0)
ALICE = make_id_number(901)
PEOPLE = (ALICE, make_id_number(902), make_id_number(903))


@dataclass
class World:
    bed: Testbed
    node: RunningNode
    http: HttpServer
    citizen_origin: str
    mtls_origin: str
    ca_pem: bytes
    files: Path
    operator: NodeCertificate

    def me(self, idn: str) -> tuple[tuple[str, bytes], ...]:
        return self.node.identity(idn)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """Heihe: three people with honours and a penalty, the month holding them published,
    the bank and the operator registered, both HTTPS listeners serving."""
    tmp = tmp_path_factory.mktemp("e2e")
    bed = Testbed(tmp, now=NOW)
    assert bed.ca is not None
    directory = tmp / REGION
    init_region(
        directory, REGION, REGION, bed.ca, NOW, sources=("heihe-court",),
        extra_toml=approved_tables_toml(directory, REGION, bed.authority, NOW)
        + f'\n[operators]\nallowed = ["{OPERATOR}"]\n',
        http_listen=("127.0.0.1:0", "127.0.0.1:0"), dev_sign_in=True,
    )  # fmt: skip
    clock = ManualClock(NOW)
    node = await bed.start_node(REGION, REGION, sources=("heihe-court",), clock=clock)
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court")))
    records = []
    for i, idn in enumerate(PEOPLE):
        for n, level in enumerate(("city", "national")):
            honour = honour_record(f"h-{i}-{n}", idn, recognised_on=RECOGNISED)
            honour.level = level
            records.append(honour)
        fine = penalty(f"p-{i}", idn)
        fine.recognised_on = RECOGNISED
        records.append(fine)
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=records, subjects=[resident(p) for p in PEOPLE]
        )
    )
    clock.set(PUBLISHED)
    assert node.server.monthly is not None
    await node.server.monthly.run_once()  # publishes the month holding the records
    bank, operator = bed.cert(BANK), bed.cert(OPERATOR)
    files = tmp / "bank"
    files.mkdir()
    (files / "ca.pem").write_bytes(bed.ca.cert_pem)
    (files / "bank.pem").write_bytes(bank.cert_pem)
    (files / "bank.key").write_bytes(bank.key_pem)
    (files / "applicant").write_text(ALICE + "\n")  # the bank reads it from the ID card
    server = node.server
    http = HttpServer(server.ctx, throttle=server.throttle, router=server.router)
    ports = await http.start()
    try:
        yield World(
            bed,
            node,
            http,
            f"https://127.0.0.1:{ports.citizen}",
            f"https://127.0.0.1:{ports.mtls}",
            bed.ca.cert_pem,
            files,
            operator,
        )
    finally:
        await http.stop()
        await bed.close()


@dataclass
class Visit:
    """One person's browser context and what its pages complained about."""

    ctx: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> None:
        await screenshot(self.page, f"e2e-{name}")


async def visit(browsers: Browsers, world: World, *, operator: bool = False) -> Visit:
    client = (
        ClientCertificate(world.mtls_origin, world.operator.cert_pem, world.operator.key_pem)
        if operator
        else None
    )
    ctx = await browsers.context(world.ca_pem, client=client, phone=not operator)
    v = Visit(ctx, await ctx.new_page())

    def console(m: ConsoleMessage) -> None:
        # chromium logs a refused API call as a failed load; the page shows it
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            v.errors.append(m.text)

    def response(r: Response) -> None:
        path = urlsplit(r.url).path
        if r.status >= 400 and not path.startswith(("/api/", "/auth/", "/console/api/")):
            v.errors.append(f"{r.status} {path}")

    v.page.on("console", console)
    v.page.on("response", response)
    v.page.on("pageerror", lambda e: v.errors.append(str(e)))
    return v


async def citizen_ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready='true']")


async def console_ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready='1']")


async def bank_request(world: World, handover: Path, out: Path) -> tuple[int, str, str]:
    """The bank's ``huxin request`` over HTTP/JSON (a child process)."""
    done = await asyncio.to_thread(
        huxin,
        "request", "--node", world.mtls_origin, "--ca", str(world.files / "ca.pem"),
        "--cert", str(world.files / "bank.pem"), "--key", str(world.files / "bank.key"),
        "--consent", str(handover), "--subject-id-file", str(world.files / "applicant"),
        "--out", str(out), "--json",
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


async def test_citizen_bank_and_operator(world: World, browsers: Browsers, tmp_path: Path) -> None:
    """Issue 19, the whole flow: the citizen signs in, sees the score and the explained
    report, grants a consent after its preview; the bank requests over HTTP/JSON with
    the handed-over text; the citizen sees the query with its proof checked, withdraws,
    and the bank's next request is refused; the citizen objects to the published score
    and sees each step's deadline; the operator sees the charts and answers the
    objection; the citizen sees the outcome."""
    citizen = await visit(browsers, world)
    page = citizen.page
    try:
        # --- sign in (the development identity provider: the only page with an ID)
        await page.goto(world.citizen_origin + "/")
        await page.wait_for_url(re.compile(r".*/signin\?next=%2F$"))
        await citizen_ready(page)
        await citizen.shot("01-citizen-signin")
        await page.click("#provider")
        await page.fill("#id_number", ALICE)
        await citizen.shot("02-citizen-identity-provider")
        await page.click("button[type=submit]")
        await page.wait_for_url(world.citizen_origin + "/")
        await citizen_ready(page)

        # --- the score and every point's reason (H12)
        score = await _my_score(world, ALICE)
        assert await page.inner_text("#score-value") == str(score.result.score)
        assert await page.inner_text("#grade-value") == score.result.grade
        for c in score.result.contributions:
            row = page.locator("#records tbody tr", has_text=c.record_id)
            assert c.reason in await row.inner_text()
        assert ALICE not in await page.content()
        await citizen.shot("03-citizen-score")
        await page.goto(world.citizen_origin + "/report")
        await citizen_ready(page)
        report = await page.inner_text("#credit-report")
        assert all(c.record_id in report for c in score.result.contributions)
        await citizen.shot("04-citizen-report")

        # --- the consent: the preview, then the grant handed over as QR and text
        await page.goto(world.citizen_origin + "/consent?scenario=" + quote(SCENARIO))
        await citizen_ready(page)
        await page.fill("#audience", BANK)
        await page.select_option("#scope", "grade")
        await page.fill("#max_uses", "3")  # one use would end it before the withdrawal
        await page.click("#preview-btn")
        await page.wait_for_selector("#preview:not([hidden])")
        assert await page.inner_text("#preview-audience") == BANK
        await citizen.shot("05-citizen-consent-preview")
        await page.click("#grant-btn")
        await page.wait_for_selector("#qr-svg path")
        handover = tmp_path / "handover.txt"
        handover.write_text(await page.input_value("#token-text"))
        assert handover.read_text().startswith("HUXIN-CONSENT-1:")
        await citizen.shot("06-citizen-consent-granted")

        # --- the bank asks over HTTP/JSON with exactly that text (huxin request)
        code, out, err = await bank_request(world, handover, tmp_path / "attestation.bin")
        assert code == 0, err
        asked = json.loads(out)
        assert asked["channel"] == "http" and asked["purpose"] == SCENARIO
        assert (tmp_path / "attestation.bin").stat().st_size > 0
        assert ALICE not in out + err

        # --- the query in the citizen's log, its inclusion proof checked here (H16)
        await page.goto(world.citizen_origin + "/queries")
        await citizen_ready(page)
        log = await page.inner_text("#log-table")
        assert BANK in log
        proofs = await page.locator("[data-proof]").evaluate_all(
            "ns => ns.map(n => n.dataset.proof)"
        )
        assert len(proofs) >= 2 and set(proofs) == {"checked"}  # the grant and the query
        await citizen.shot("07-citizen-queries-proofs-checked")

        # --- withdraw; the bank's next request is refused
        await page.goto(world.citizen_origin + "/consents")
        await citizen_ready(page)
        item = page.locator(f"li[data-consent-id='{asked['consent_id']}']")
        await citizen.shot("08-citizen-consents")
        await item.get_by_role("button").click()
        dialog = page.locator("dialog.confirm")
        assert BANK in await dialog.inner_text()
        await citizen.shot("09-citizen-withdraw-confirm")
        await dialog.locator("button[type=submit]").click()
        await page.wait_for_selector(f"li[data-consent-id='{asked['consent_id']}'].state-withdrawn")
        await citizen.shot("10-citizen-withdrawn")
        code, out, err = await bank_request(world, handover, tmp_path / "again.bin")
        assert code == 1, err
        assert err.startswith("error: CONSENT_WITHDRAWN: the node refused"), err
        assert not (tmp_path / "again.bin").exists()

        # --- an objection to the published score, with each step's deadline (H15)
        await page.goto(world.citizen_origin + "/objections")
        await citizen_ready(page)
        await page.select_option("#target", "__score__")
        await page.fill("#reason", "本月分数应计入新的荣誉")
        await page.click("#file-btn")
        await page.wait_for_selector("li.objection")
        (objection,) = (await _my_objections(world, ALICE)).objections
        objection_id = objection.objection_id
        assert objection.about_score
        shown = await page.locator("li.objection ol.steps time").evaluate_all(
            "ts => ts.map(t => t.getAttribute('datetime'))"
        )
        assert shown == [d.due for d in objection.deadlines] and shown
        await citizen.shot("11-citizen-objection-deadlines")
    finally:
        assert browsers.outside_requests(citizen.ctx) == []
        await citizen.ctx.close()
    assert citizen.errors == []

    # --- the operator: the charts, then the answer to the objection (H3, H15)
    operator = await visit(browsers, world, operator=True)
    page = operator.page
    try:
        for n, (name, path) in enumerate(
            (
                ("grades", "/console/"),
                ("model", "/console/model"),
                ("queries", "/console/review"),
                ("federation", "/console/federation"),
                ("rights", "/console/rights"),
            ),
            start=12,
        ):
            response = await page.goto(world.mtls_origin + path)
            assert response is not None and response.status == 200, path
            await console_ready(page)
            if name == "grades":
                drawn = await page.evaluate(
                    """() => {
                    const c = document.querySelector('#grades-chart canvas');
                    if (!c || !c.width || !c.height) return 0;
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 200 || d[i + 1] < 200)) n++;
                    return n;
                }"""
                )
                assert drawn > 1000  # the chart is drawn, not an empty canvas
                months = await page.evaluate(
                    "() => echarts.getInstanceByDom(document.getElementById('grades-chart'))"
                    ".getOption().xAxis[0].data"
                )
                assert score.period in months
            await operator.shot(f"{n}-console-{name}")
        row = page.locator("#objections-table tbody tr", has_text=objection_id)
        assert objection.due in await row.inner_text()
        await row.locator("select[name='outcome']").select_option("corrected")
        await row.locator("input[name='note']").fill("复核后更正 checked again")
        await row.locator("button[type='submit']").click()
        await page.wait_for_selector("#status.ok")
        assert objection_id in await page.locator("#status").inner_text()
        await operator.shot("18-console-objection-answered")
    finally:
        assert browsers.outside_requests(operator.ctx) == []
        await operator.ctx.close()
    assert operator.errors == []

    # --- the citizen sees the outcome of the objection
    again = await visit(browsers, world)
    page = again.page
    try:
        await page.goto(world.citizen_origin + "/signin?next=%2Fobjections")
        await citizen_ready(page)
        await page.click("#provider")
        await page.fill("#id_number", ALICE)
        await page.click("button[type=submit]")
        await page.wait_for_url(world.citizen_origin + "/objections")
        await citizen_ready(page)
        answered = page.locator(f"li.objection[data-objection-id='{objection_id}']")
        assert "结果" in await answered.inner_text()
        await again.shot("19-citizen-objection-answered")
    finally:
        await again.ctx.close()
    assert again.errors == []


async def _my_score(world: World, idn: str) -> node_pb2.MyScoreResponse:
    stub = world.bed.citizen_stub(world.node)
    answer: node_pb2.MyScoreResponse = await stub.GetMyScore(
        node_pb2.MyScoreRequest(), metadata=world.me(idn)
    )
    return answer


async def _my_objections(world: World, idn: str) -> node_pb2.ListObjectionsResponse:
    stub = world.bed.citizen_stub(world.node)
    answer: node_pb2.ListObjectionsResponse = await stub.ListMyObjections(
        node_pb2.ListObjectionsRequest(), metadata=world.me(idn)
    )
    return answer
