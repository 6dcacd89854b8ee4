"""The operator's console on a real node (issue 19: "an operator sees the charts and answers
the objection"; H3, H11, H15, H16, N7, N21, N22, N23).

A real region node (mutual TLS, SQLite, manual clock) with three people and two
published months; the console's reads are checked against the store itself, and
(in the browser tests) a real headless Chromium presents an operator's client
certificate to the node's mutual-TLS HTTPS listener.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page

from keys import NodeCertificate
from node.console._data import (
    NOT_SCORED,
    GradeCache,
    grade_distribution,
    model_state,
    query_review,
    rights_queues,
)
from node.console._federation import federation_state
from node.demo._testbed import attestation_request
from node.http._app import HttpServer
from node.pb.v1 import node_pb2
from node.rights._objections import load_objection
from node.store._monthly import published_entry
from tests.support.browser import BROWSER_TESTS, Browsers, ClientCertificate, screenshot
from tests.support.governed_region import ALICE, BOB, CAROL, Fed, penalty, start_governed

pytestmark = BROWSER_TESTS  # the browser driver lives on the session's loop

#: Wed 14 Oct 2026, after National Day: September is published too (H3), Alice's score
#: objection to August waits for the operator, Bob's record objection for the court.
LATER = datetime(2026, 10, 14, 8, 0, tzinfo=UTC)


OPERATOR = "heihe.ops"
PAGES = {
    "grades": "/console/",
    "model": "/console/model",
    "rights": "/console/rights",
    "review": "/console/review",
    "federation": "/console/federation",
}


#: the words of the facts' values (dl.kv dd) drawn over more than one line: a long key
#: wraps anywhere, an English word only between words ("standalone, sta|tic peers")
SPLIT_WORDS = """() => {
  const split = [];
  for (const dd of document.querySelectorAll("dl.kv dd")) {
    const walk = document.createTreeWalker(dd, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      for (const m of n.textContent.matchAll(/(?<![0-9A-Za-z])[A-Za-z]{2,}(?![0-9A-Za-z])/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        if (new Set([...r.getClientRects()].map((c) => Math.round(c.top))).size > 1) split.push(m[0]);
      }
    }
  }
  return split;
}"""


@pytest_asyncio.fixture(loop_scope="session")
async def heihe(tmp_path: Path) -> AsyncIterator[Fed]:
    f = await start_governed(
        tmp_path,
        "heihe",
        "heihe",
        extra_toml=f'[operators]\nallowed = ["{OPERATOR}"]',
        http_listen=("", "127.0.0.1:0"),
        # the browser checks TLS on the wall clock, the node runs on its own (from START)
        wall=datetime.now(UTC),
    )
    # September penalties for Carol, so that September's grades differ from August's
    await f.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="september",
            records=[penalty(f"p-9{n}", CAROL, "2026-09-21") for n in range(3)],
        )
    )
    f.clock.set(LATER)
    assert f.node.server.monthly is not None
    await f.node.server.monthly.run_once()  # publishes September
    yield f
    await f.bed.close()


@dataclass
class Console:
    fed: Fed
    url: str
    tmp: Path

    def cert_files(self, cert: NodeCertificate, name: str) -> tuple[Path, Path]:
        pem, key = self.tmp / f"{name}.pem", self.tmp / f"{name}.key"
        pem.write_bytes(cert.cert_pem)
        key.write_bytes(cert.key_pem)
        return pem, key

    def tls(self, cert: NodeCertificate | None, name: str = "client") -> ssl.SSLContext:
        assert self.fed.bed.ca is not None
        context = ssl.create_default_context(cadata=self.fed.bed.ca.cert_pem.decode())
        if cert is not None:
            context.load_cert_chain(*self.cert_files(cert, name))
        return context

    async def call(
        self,
        cert: NodeCertificate | None,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        connector = aiohttp.TCPConnector(ssl=self.tls(cert))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, self.url + path, data=body, headers=headers) as resp,
        ):
            if resp.content_type == "text/html":
                return resp.status, await resp.text()
            return resp.status, await resp.json(content_type=None)


@pytest_asyncio.fixture(loop_scope="session")
async def console(heihe: Fed, tmp_path: Path) -> AsyncIterator[Console]:
    server = heihe.node.server
    http = HttpServer(server.ctx, throttle=server.throttle, router=server.router)
    ports = await http.start()
    assert ports.mtls is not None
    try:
        yield Console(heihe, f"https://127.0.0.1:{ports.mtls}", tmp_path)
    finally:
        await http.stop()


async def browser_context(browsers: Browsers, c: Console, cert: NodeCertificate) -> BrowserContext:
    """A chromium that trusts the federation CA and presents ``cert`` to the console."""
    assert c.fed.bed.ca is not None
    return await browsers.context(
        c.fed.bed.ca.cert_pem, client=ClientCertificate(c.url, cert.cert_pem, cert.key_pem)
    )


def store_grades(database: Path) -> dict[str, dict[str, int]]:
    """period -> grade -> people, straight from the snapshots (no correction exists here)."""
    conn = sqlite3.connect(database)
    try:
        out: dict[str, dict[str, int]] = {}
        for period, grade, n in conn.execute(
            "SELECT r.period, s.grade, count(*) FROM snapshots s JOIN snapshot_runs r "
            "ON r.run_id = s.run_id WHERE r.finished_at IS NOT NULL GROUP BY 1, 2"
        ):
            out.setdefault(period, {})[grade or NOT_SCORED] = n
        return out
    finally:
        conn.close()


async def file_objections(f: Fed) -> tuple[node_pb2.ObjectionInfo, node_pb2.ObjectionInfo]:
    score = await f.citizen.FileObjection(
        node_pb2.FileObjectionRequest(about_score=True, period="2026-08", reason="分数有误"),
        metadata=f.me(ALICE),
    )
    record = await f.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-1", reason="not mine"), metadata=f.me(BOB)
    )
    return score, record


async def third_party_activity(f: Fed) -> node_pb2.RepairApplicationInfo:
    """One attestation, one query outside the consent (flagged, H16) and one repair
    application (N22): what the review and the repair queue show."""
    await f.attest(ALICE)
    token = await f.token(BOB)
    with pytest.raises(grpc.aio.AioRpcError):
        await f.peer.RequestAttestation(attestation_request(token, BOB, "heihe/transit-discount"))
    return await f.citizen.ApplyForRepair(
        node_pb2.RepairApplicationRequest(
            record_id="p-2", route="commitment", statement="已履行 fulfilled"
        ),
        metadata=f.me(CAROL),
    )


async def test_console_reads_match_the_store(heihe: Fed) -> None:
    """Issue 19: the chart's numbers are the published grades of the store, month by
    month (H3); the queues list both objections with every step's due day (H15, N21)."""
    ctx = heihe.node.server.ctx
    doc = await grade_distribution(ctx, 12, GradeCache())
    expected = store_grades(ctx.config.database)
    assert [m["period"] for m in doc["months"]] == ["2026-08", "2026-09"]
    for m in doc["months"]:
        assert {g: n for g, n in m["counts"].items() if n} == expected.get(m["period"], {})
    # the node started before the seed records came in: August scored nobody (H3)
    assert [m["people"] for m in doc["months"]] == [0, 3]
    assert len([g for g, n in doc["months"][1]["counts"].items() if n]) == 2  # Carol's
    assert doc["grades"][: len(ctx.scheme.grades)] == list(ctx.scheme.grades)
    assert doc["grades"][-1] == NOT_SCORED
    score, record = await file_objections(heihe)
    queues = await rights_queues(ctx)
    by_id = {o["objection_id"]: o for o in queues["objections"]}
    assert by_id[score.objection_id]["kind"] == "score"
    assert by_id[score.objection_id]["operator_resolves"] is True
    assert by_id[score.objection_id]["due"] == score.due
    assert by_id[record.objection_id]["operator_resolves"] is False
    assert by_id[record.objection_id]["deadlines"] == {d.step: d.due for d in record.deadlines}
    assert queues["objections_total"] == 2
    model = await model_state(ctx)
    assert model["stage"] == "current_only" and model["version_in_force"] == ctx.scheme.version
    assert [r["period"] for r in model["runs"]][:2] == ["2026-09", "2026-08"]
    review = await query_review(ctx)
    assert {s["source"] for s in review["sources"]} == {"heihe-court"}
    fed = await federation_state(ctx)
    assert fed["certificate"]["state"] == "valid"
    assert fed["signing_key"]["state"] in {"valid", "expires soon"}


async def test_grade_counts_follow_corrections(heihe: Fed) -> None:
    """Issue 19 (grades "from the published monthly grades"), H16, ADR 0501: when the court
    revokes Carol's September penalties her published grade is corrected at once, and the
    chart counts what the node now publishes (``published_entry``: the newest correction,
    else the snapshot), not the month's first snapshot."""
    ctx = heihe.node.server.ctx
    cache = GradeCache()
    first = (await grade_distribution(ctx, 12, cache))["months"][-1]["counts"]
    for n in range(3):
        await heihe.source.MarkRecord(
            node_pb2.MarkRecordRequest(record_id=f"p-9{n}", status="revoked", note="wrong person")
        )
    then = (await grade_distribution(ctx, 12, cache))["months"][-1]
    assert then["counts"] != first

    def published(conn: sqlite3.Connection) -> dict[str, int]:
        out: dict[str, int] = {}
        for (key,) in conn.execute(
            "SELECT subject_key FROM snapshots WHERE run_id = ?", (then["run_id"],)
        ):
            entry = published_entry(conn, then["run_id"], bytes(key))
            assert entry is not None
            grade = entry.grade or NOT_SCORED
            out[grade] = out.get(grade, 0) + 1
        return out

    expected = await ctx.db.read_unit(published)
    assert {g: n for g, n in then["counts"].items() if n} == expected == {"A": 3}


async def test_overdue_objections_come_first(heihe: Fed) -> None:
    """Issue 19 ("deadline status, overdue first"), H15: once the operator's handle step is
    past its day, the score objection is listed first and marked overdue."""
    score, record = await file_objections(heihe)
    heihe.clock.set(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    queues = await rights_queues(heihe.node.server.ctx)
    first = queues["objections"][0]
    assert first["overdue"] is True and first["days_left"] < 0
    assert all(o["overdue"] for o in queues["objections"])  # both steps are long past
    assert {o["objection_id"] for o in queues["objections"]} == {
        score.objection_id,
        record.objection_id,
    }


async def test_operator_sees_charts_and_resolves_an_objection(
    console: Console, browsers: Browsers
) -> None:
    """Issue 19 ("an operator sees the charts and answers the objection"), H3, H15, N21:
    a registered operator's certificate in a real Chromium; the grade chart's canvas is
    drawn from data equal to the store's; Alice's score objection is listed with its
    deadline, resolved through the console, and the resolution is stored."""
    fed = console.fed
    score, record = await file_objections(fed)
    repair = await third_party_activity(fed)
    context = await browser_context(browsers, console, fed.bed.cert(OPERATOR))
    page = await context.new_page()
    try:
        for name, path in PAGES.items():
            response = await page.goto(console.url + path)
            assert response is not None and response.status == 200, name
            await page.wait_for_selector("body[data-ready='1']")
            assert await page.evaluate(SPLIT_WORDS) == [], name
            await screenshot(page, f"console-{name}")
            if name == "grades":
                await check_grade_chart(page, fed)
        await page.goto(console.url + "/console/rights")
        await page.wait_for_selector("body[data-ready='1']")
        row = page.locator("#objections-table tbody tr", has_text=score.objection_id)
        assert score.due in await row.inner_text()
        other = page.locator("#objections-table tbody tr", has_text=record.objection_id)
        assert await other.locator("form").count() == 0  # the court answers that one
        assert (
            repair.due
            in await page.locator("#repairs", has_text=repair.application_id).inner_text()
        )
        await row.locator("select[name='outcome']").select_option("corrected")
        await row.locator("input[name='note']").fill("复核后更正 checked again")
        await row.locator("button[type='submit']").click()
        await page.wait_for_selector("#status.ok")
        assert score.objection_id in await page.locator("#status").inner_text()
        await screenshot(page, "console-rights-resolved")
        assert browsers.outside_requests(context) == []  # nothing from the internet
    finally:
        await context.close()
    stored = await fed.node.server.ctx.db.fetchone(
        "SELECT state, state_json FROM objections WHERE objection_id = ?", (score.objection_id,)
    )
    assert stored[0] == "answered"
    assert load_objection(stored[1]).outcome is not None
    assert load_objection(stored[1]).outcome.value == "corrected"
    assert any("checked again" in n for n in await fed.notes(ALICE))


async def check_grade_chart(page: Page, fed: Fed) -> None:
    """The canvas is drawn (pixels that are not background) and the series behind it are
    the store's published counts, month by month."""
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
    assert drawn > 1000
    option = await page.evaluate(
        """() => {
        const o = echarts.getInstanceByDom(document.getElementById('grades-chart')).getOption();
        return {months: o.xAxis[0].data, series: o.series.map(s => [s.id, s.data])};
    }"""
    )
    expected = store_grades(fed.node.server.ctx.config.database)
    for i, month in enumerate(option["months"]):
        shown = {grade: data[i] for grade, data in option["series"] if data[i]}
        assert shown == expected.get(month, {}), month
    assert option["months"] == ["2026-08", "2026-09"]


async def test_a_client_without_the_operator_role_is_refused(
    console: Console, browsers: Browsers
) -> None:
    """Issue 19 ("every action operator-only"), ADR 0415: the court's registered
    certificate gets 403 NOT_OPERATOR for every page and every JSON endpoint, and its
    resolution changes nothing; an unregistered certificate is 401 CLIENT_UNKNOWN."""
    fed = console.fed
    score, _ = await file_objections(fed)
    court = fed.bed.cert("heihe-court")
    context = await browser_context(browsers, console, court)
    page = await context.new_page()
    try:
        response = await page.goto(console.url + "/console/")
        assert response is not None and response.status == 403
        assert await page.locator("#reason").inner_text() == "NOT_OPERATOR"
        await screenshot(page, "console-refused")
    finally:
        await context.close()
    paths = [*PAGES.values(), "/console/api/session", "/console/api/grades", "/console/api/model"]
    paths += ["/console/api/rights", "/console/api/review", "/console/api/federation"]
    for path in paths:
        status, body = await console.call(court, "GET", path)
        if path.startswith("/console/api/"):
            assert (status, body["reason"]) == (403, "NOT_OPERATOR"), path
        else:
            assert (status, "NOT_OPERATOR" in body) == (403, True), path
    action = f"/console/api/objections/{score.objection_id}/resolve"
    status, body = await console.call(
        court, "POST", action, body=b'{"outcome":"corrected"}', headers=JSON
    )
    assert (status, body["reason"]) == (403, "NOT_OPERATOR")
    stranger = fed.bed.cert("heihe.stranger", register=False)
    status, body = await console.call(stranger, "GET", "/console/api/rights")
    assert (status, body["reason"]) == (401, "CLIENT_UNKNOWN")
    row = await fed.node.server.ctx.db.fetchone(
        "SELECT state FROM objections WHERE objection_id = ?", (score.objection_id,)
    )
    assert row[0] == "received"


JSON = {"Content-Type": "application/json", "X-Requested-With": "fetch"}  # a console action
#: (name, path suffix or query, body, headers, status, reason, field) — "{score}" and
#: "{record}" stand for the objections filed by the test
BAD_ACTIONS = [
    ("outcome_unknown", "{score}", b'{"outcome":"maybe"}', JSON, 400, "INVALID_FIELD", "outcome"),
    ("outcome_missing", "{score}", b"{}", JSON, 400, "MISSING_FIELD", "outcome"),
    ("outcome_not_text", "{score}", b'{"outcome":1}', JSON, 400, "INVALID_FIELD", "outcome"),
    ("note_too_long", "{score}",
     json.dumps({"outcome": "upheld", "note": "x" * 513}).encode(), JSON,
     400, "INVALID_FIELD", "note"),
    ("note_id_number", "{score}",
     json.dumps({"outcome": "upheld", "note": f"for {ALICE}"}).encode(), JSON,
     400, "ID_NUMBER_IN_FIELD", "note"),
    ("member_unknown", "{score}", b'{"outcome":"upheld","grade":"A"}', JSON,
     400, "INVALID_FIELD", "request"),
    ("body_not_json", "{score}", b"outcome=upheld", JSON, 400, "MALFORMED_REQUEST", "request"),
    ("body_not_object", "{score}", b'["upheld"]', JSON, 400, "MALFORMED_REQUEST", "request"),
    ("form_content_type", "{score}", b'{"outcome":"upheld"}',
     {**JSON, "Content-Type": "text/plain"}, 400, "MALFORMED_REQUEST", "content-type"),
    ("other_origin", "{score}", b'{"outcome":"upheld"}',
     {**JSON, "Origin": "https://elsewhere.example"}, 403, "CSRF_ORIGIN", "origin"),
    ("origin_null", "{score}", b'{"outcome":"upheld"}',
     {**JSON, "Origin": "null"}, 403, "CSRF_ORIGIN", "origin"),
    ("body_too_large", "{score}",
     json.dumps({"outcome": "upheld", "note": "x" * 5000}).encode(), JSON,
     413, "MESSAGE_TOO_LARGE", "request"),
    ("note_lone_surrogate", "{score}", b'{"outcome":"upheld","note":"\\ud800"}', JSON,
     400, "INVALID_FIELD", "note"),
    ("body_nested_1500", "{score}", b"[" * 1500, JSON, 400, "MALFORMED_REQUEST", "request"),
    ("id_unknown", "0123456789abcdef", b'{"outcome":"upheld"}', JSON,
     404, "OBJECTION_NOT_FOUND", "objection_id"),
    ("id_too_long", "x" * 65, b'{"outcome":"upheld"}', JSON, 400, "INVALID_FIELD", "objection_id"),
    ("source_data_objection", "{record}", b'{"outcome":"upheld"}', JSON,
     403, "NOT_OPERATOR_OBJECTION", "objection_id"),
]  # fmt: skip
BAD_QUERIES = [
    ("months_zero", "/console/api/grades?months=0", 400, "INVALID_FIELD", "months"),
    ("months_over", "/console/api/grades?months=37", 400, "INVALID_FIELD", "months"),
    ("months_text", "/console/api/grades?months=twelve", 400, "INVALID_FIELD", "months"),
    ("months_negative", "/console/api/grades?months=-1", 400, "INVALID_FIELD", "months"),
    ("no_such_page", "/console/api/nothing", 404, "ROUTE_NOT_FOUND", ""),
]


@pytest.mark.parametrize(
    ("target", "body", "headers", "status", "reason", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ACTIONS],
)
async def test_bad_resolutions_are_refused_and_change_nothing(
    console: Console,
    target: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
    field: str,
) -> None:
    """Issue 19 (bad input: the right status, a stable reason naming the field, nothing
    lost), H15: each malformed resolution by the operator is refused before anything is
    written; both objections stay as filed."""
    fed = console.fed
    score, record = await file_objections(fed)
    ops = fed.bed.cert(OPERATOR)
    oid = target.format(score=score.objection_id, record=record.objection_id)
    got, doc = await console.call(
        ops, "POST", f"/console/api/objections/{oid}/resolve", body=body, headers=headers
    )
    assert (got, doc["reason"], doc["field"]) == (status, reason, field)
    assert set(doc) == {"code", "reason", "field", "message"}
    rows = await fed.node.server.ctx.db.fetchall("SELECT state FROM objections ORDER BY 1")
    assert [r[0] for r in rows] == ["forwarded", "received"] or [r[0] for r in rows] == [
        "received",
        "received",
    ]


@pytest.mark.parametrize(
    ("path", "status", "reason", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_QUERIES],
)
async def test_bad_queries_are_refused(
    console: Console, path: str, status: int, reason: str, field: str
) -> None:
    """Issue 19: a query out of its documented bound (``months`` 1 to 36) is refused."""
    got, doc = await console.call(console.fed.bed.cert(OPERATOR), "GET", path)
    assert (got, doc["reason"], doc["field"]) == (status, reason, field)


async def test_echarts_is_served_locally_with_its_licence(console: Console) -> None:
    """Issue 19 ("served locally with its licence"; no resource from the internet): the
    vendored ECharts and its licence come from the node, cacheable by ETag."""
    court = console.fed.bed.cert("heihe-court")
    connector = aiohttp.TCPConnector(ssl=console.tls(court))
    async with aiohttp.ClientSession(connector=connector) as session:
        base = console.url + "/console/static/vendor/echarts/"
        async with session.get(base + "LICENSE") as resp:
            assert resp.status == 200 and "Apache License" in await resp.text()
        async with session.get(base + "echarts.min.js") as resp:
            assert resp.status == 200 and resp.headers["ETag"]
            tag = resp.headers["ETag"]
        async with session.get(base + "echarts.min.js", headers={"If-None-Match": tag}) as resp:
            assert resp.status == 304
        async with session.get(base + "../../console.js") as resp:
            assert resp.status == 200  # inside the static directory
        async with session.get(console.url + "/console/static/%2e%2e/_routes.py") as resp:
            assert resp.status == 404  # never outside it
