"""The HTTP channel's extension point, with route providers as the pages and the
console use it (issue 19, docs/adr/0800): an in-process node of the shared test bed
(real TLS on loopback, a manual clock) serves test providers on both listeners.

REQ: H17 (who may call what: citizens by assertion or session, operators by their
registered certificate), issue 19 "the operator's console ... client certificate
registered with an operator role".
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from node.core._clock import ManualClock
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.http import HttpContext, json_response, static_route
from node.http._app import HttpServer
from node.http._codec import encode
from node.pb.v1 import node_pb2, node_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

PERSON = make_id_number(821)


def citizen_pages(hc: HttpContext) -> Iterable[web.AbstractRouteDef]:
    async def hello(request: web.Request) -> web.Response:
        who = await hc.require_citizen(request)
        return json_response({"subject": who.subject_key.hex()[:8]})

    return [web.get("/pages/hello", hello), static_route("/static", hc.extras["static_dir"])]


def console(hc: HttpContext) -> Iterable[web.AbstractRouteDef]:
    async def whoami(request: web.Request) -> web.Response:
        return json_response({"operator": hc.require_operator(request)})

    async def act(request: web.Request) -> web.Response:
        return json_response({"done_by": hc.require_operator(request)})

    return [web.get("/console/whoami", whoami), web.post("/console/act", act)]


@dataclass
class World:
    bed: Testbed
    node: RunningNode
    http: HttpServer
    static: Path

    def url(self, listener: str, path: str) -> str:
        port = self.http.ports.citizen if listener == "citizen" else self.http.ports.mtls
        return f"https://127.0.0.1:{port}{path}"

    def tls(self, client: str | None = None, *, register: bool = True) -> ssl.SSLContext:
        assert self.bed.ca is not None
        context = ssl.create_default_context(cadata=self.bed.ca.cert_pem.decode())
        if client is not None:
            cert = self.bed.cert(client, register=register)
            folder = self.bed.root / "client-files"
            folder.mkdir(exist_ok=True)
            (folder / f"{client}.pem").write_bytes(cert.cert_pem)
            (folder / f"{client}.key").write_bytes(cert.key_pem)
            context.load_cert_chain(folder / f"{client}.pem", folder / f"{client}.key")
        return context


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("http-ext")
    bed = Testbed(root)
    bed.cert("heihe-court")  # registered before the node starts
    node = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))
    static = root / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "site.css").write_text("body { color: #111; }\n")
    (root / "secret.txt").write_text("not served\n")
    http = HttpServer(
        node.server.ctx,
        citizen_routes=[citizen_pages],
        mtls_routes=[console],
        addresses=("127.0.0.1:0", "127.0.0.1:0"),
    )
    http.context.extras["static_dir"] = static
    await http.start()
    yield World(bed, node, http, static)
    await http.stop()
    await bed.close()


async def _get(world: World, listener: str, path: str, *, client: str | None = None,
               register: bool = True, raw: bool = False, **kw: Any,
               ) -> tuple[int, Any, aiohttp.ClientResponse]:  # fmt: skip
    connector = aiohttp.TCPConnector(ssl=world.tls(client, register=register))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.get(world.url(listener, path), **kw) as resp,
    ):
        body = await resp.read()
        kind = resp.headers.get("Content-Type", "")
        return resp.status, (await resp.json() if "json" in kind and not raw else body), resp


async def test_a_citizen_provider_authenticates_with_the_assertion(world: World) -> None:
    """Issue 19: ``await hc.require_citizen(request)`` takes the same assertion as gRPC."""
    blob = world.node.idp.assertion(PERSON, "heihe", world.node.server.ctx.now_s())
    headers = {"Authorization": "Bearer " + base64.urlsafe_b64encode(blob).decode().rstrip("=")}
    status, body, _ = await _get(world, "citizen", "/pages/hello", headers=headers)
    assert status == 200 and len(body["subject"]) == 8
    status, body, _ = await _get(world, "citizen", "/pages/hello")
    assert (status, body["reason"]) == (401, "IDENTITY_MISSING")


OPERATOR_CASES = [
    ("own-region", "heihe", True, 200, ""),
    ("a-source-department", "heihe-court", True, 403, "NOT_OPERATOR"),
    ("an-unregistered-client", "heihe.ops", False, 401, "CLIENT_UNKNOWN"),
]


@pytest.mark.parametrize(
    ("name", "client", "register", "status", "reason"),
    OPERATOR_CASES,
    ids=[c[0] for c in OPERATOR_CASES],
)
async def test_only_an_operator_certificate_opens_the_console(
    world: World, name: str, client: str, register: bool, status: int, reason: str
) -> None:
    """Issue 19, ADR 0415: the console's caller is its registered certificate; the
    operator role is the node's own identity or ``[operators] allowed``."""
    got, body, _ = await _get(world, "mtls", "/console/whoami", client=client, register=register)
    assert got == status, body
    assert (body.get("reason", "") if got != 200 else "") == reason
    if got == 200:
        assert body == {"operator": client}


async def test_the_console_is_not_on_the_citizen_listener(world: World) -> None:
    status, body, _ = await _get(world, "citizen", "/console/whoami")
    assert (status, body["reason"]) == (404, "ROUTE_NOT_FOUND")


STATIC_CASES = [
    ("a-file", "/static/css/site.css", 200),
    ("missing", "/static/css/none.css", 404),
    ("dot-dot", "/static/../secret.txt", 404),
    ("encoded-dot-dot", "/static/%2e%2e/secret.txt", 404),
    ("a-directory", "/static/css", 404),
]


@pytest.mark.parametrize(("name", "path", "status"), STATIC_CASES, ids=[c[0] for c in STATIC_CASES])
async def test_static_files_stay_in_their_directory(
    world: World, name: str, path: str, status: int
) -> None:
    """Issue 19: ``static_route`` serves the directory's files only."""
    got, body, _ = await _get(world, "citizen", path)
    assert got == status
    if got == 200:
        assert body == b"body { color: #111; }\n"


async def test_a_static_file_has_a_strong_etag_and_revalidates(world: World) -> None:
    status, _b, resp = await _get(world, "citizen", "/static/css/site.css")
    etag = resp.headers["ETag"]
    assert status == 200 and etag.startswith('"') and "max-age" in resp.headers["Cache-Control"]
    assert resp.headers["Content-Type"].startswith("text/css")
    status, body, _ = await _get(
        world, "citizen", "/static/css/site.css", headers={"If-None-Match": etag}
    )
    assert (status, body) == (304, b"")


async def test_a_session_ends_at_its_expiry(world: World) -> None:
    """Issue 19: ``[identity] session_seconds`` (1800 by default) on the node's clock."""
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=world.tls())
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as s:
        async with s.get(world.url("citizen", "/auth/sign-in-state")) as resp:
            state = (await resp.json())["state"]  # the callback needs it (ADR 0800)
        async with s.post(
            world.url("citizen", "/auth/callback"),
            data={"state": state, "assertion": base64.b64encode(
                world.node.idp.assertion(PERSON, "heihe", world.node.server.ctx.now_s())
            ).decode()},
            allow_redirects=False,
        ) as resp:  # fmt: skip
            assert resp.status == 303
        async with s.get(world.url("citizen", "/auth/session")) as resp:
            csrf = (await resp.json())["csrf_token"]
        async with s.get(
            world.url("citizen", "/pages/hello"), headers={"X-CSRF-Token": csrf}
        ) as resp:
            assert resp.status == 200
        clock = world.node.clock
        assert isinstance(clock, ManualClock)
        clock.advance(seconds=1801)
        async with s.get(
            world.url("citizen", "/pages/hello"), headers={"X-CSRF-Token": csrf}
        ) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (401, "SESSION_EXPIRED")


async def test_the_approved_mapping_tables_are_published_with_their_approvals(
    world: World,
) -> None:
    """Issue 19 (C3, H13): every approved table in use is listed with its SHA-256; its
    canonical bytes hash to it and its approval is a signed envelope; the index lists
    them all."""
    status, listing, _ = await _get(world, "citizen", "/trust/mapping-tables.json")
    assert status == 200 and listing["tables"], listing
    _s, index, _ = await _get(world, "citizen", "/trust/index.json")
    for table in listing["tables"]:
        status, content, _ = await _get(world, "citizen", table["table"], raw=True)
        assert status == 200
        assert hashlib.sha256(content).hexdigest() == table["sha256"]
        assert index["files"][table["table"]] == table["sha256"]
        status, approval, resp = await _get(world, "citizen", table["approval"])
        assert status == 200 and resp.headers["ETag"] and approval
    status, body, _ = await _get(world, "citizen", "/trust/mapping-tables/none/1/table.json")
    assert (status, body["reason"]) == (404, "ROUTE_NOT_FOUND")


async def test_the_incentives_are_the_same_on_both_channels(world: World) -> None:
    """Issue 19 (N20): GetMyIncentives over gRPC and GET /api/v1/me/incentives answer
    alike (one domain function); with the bed's approved tables the grade is read in
    the other schemes too, my own region first."""
    court = node_pb2_grpc.SourceServiceStub(
        world.bed.peer_channel(world.node, world.bed.cert("heihe-court"))
    )
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="incentives",
            records=[honour_record("inc-0", PERSON)],
            subjects=[resident(PERSON)],
        )
    )
    over_grpc = await world.bed.citizen_stub(world.node).GetMyIncentives(
        node_pb2.MyIncentivesRequest(), metadata=world.node.identity(PERSON)
    )
    blob = world.node.idp.assertion(PERSON, "heihe", world.node.server.ctx.now_s())
    status, over_http, _ = await _get(
        world, "citizen", "/api/v1/me/incentives",
        headers={"Authorization": "Bearer " + base64.b64encode(blob).decode()},
    )  # fmt: skip
    assert status == 200
    assert over_http == encode(over_grpc)
    assert over_grpc.grade and over_grpc.regions[0].origin == "own"
    assert over_grpc.regions[0].scenarios
    assert len(over_grpc.regions) > 1, "the bed's approved tables map into other schemes"


CONSOLE_ACTIONS = [
    ("with-the-header", {"X-Requested-With": "huxin-console"}, 200, ""),
    ("without-the-header", {}, 403, "CSRF_TOKEN_MISSING"),
    ("from-another-site", {"X-Requested-With": "x", "Origin": "https://evil.example"}, 403,
     "CSRF_ORIGIN"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "headers", "status", "reason"), CONSOLE_ACTIONS, ids=[c[0] for c in CONSOLE_ACTIONS]
)
async def test_a_console_action_needs_its_header(
    world: World, name: str, headers: dict[str, str], status: int, reason: str
) -> None:
    """Issue 19: a browser presents the operator's certificate on every request, so a
    state-changing console call needs X-Requested-With and no foreign Origin."""
    connector = aiohttp.TCPConnector(ssl=world.tls("heihe"))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.post(world.url("mtls", "/console/act"), headers=headers) as resp,
    ):
        body = await resp.json()
    assert resp.status == status, body
    assert body.get("reason", "") == reason
