"""Who is calling over HTTP (issue 19, docs/adr/0800): the defects a read-only
reviewer found in ``node/http/_auth.py`` (findings 1, 2, 3, 5, 9, 19 of issue 19's
review), each with the case that showed it.

An in-process node of the shared test bed serves the real HTTPS listeners (real TLS
on loopback port 0, a manual clock) with the development sign-in on and an
``[operators] allowed`` list that also names a certificate of another region (the
config refuses that; the node must refuse it anyway).

REQ: H17 (who may call what; a sign-in cannot be planted or redirected elsewhere),
H2 (deregistration leaves nothing of the citizen behind, in memory included), N3.
"""

from __future__ import annotations

import base64
import dataclasses
import re
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
from node.http import HttpContext, json_response
from node.http._app import MTLS_PROVIDERS, HttpServer
from node.http._auth import LOCAL_PATH, SESSIONS_PER_SUBJECT, STATE_SECONDS
from node.pb.v1 import node_pb2, node_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
FOREIGN_OPERATOR = "zhejiang.ops"  # CA-signed, of no region this node knows: kind OTHER


def whoami(hc: HttpContext) -> Iterable[web.AbstractRouteDef]:
    async def handler(request: web.Request) -> web.Response:
        return json_response({"operator": hc.require_operator(request)})

    return [web.get("/test/whoami", handler)]


@dataclass
class World:
    bed: Testbed
    node: RunningNode
    http: HttpServer

    def url(self, path: str, listener: str = "citizen") -> str:
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

    def browser(self) -> aiohttp.ClientSession:
        """One browser: its own cookie jar (the node is addressed by IP)."""
        connector = aiohttp.TCPConnector(ssl=self.tls())
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))

    def assertion(self, id_number: str) -> str:
        blob = self.node.idp.assertion(id_number, "heihe", self.node.server.ctx.now_s())
        return base64.b64encode(blob).decode()

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.node.clock, ManualClock)
        return self.node.clock


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    bed = Testbed(tmp_path_factory.mktemp("http-auth"))
    bed.cert("heihe-court")
    bed.cert("heihe.ops")  # registered before the node starts
    node = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("heihe-court",))
    ctx = node.server.ctx
    # what parse_config refuses (test_config_validation: operator-foreign), set directly:
    # the node itself must still refuse a certificate the client registry never checked
    config = dataclasses.replace(
        ctx.config,
        operators=("heihe.ops", FOREIGN_OPERATOR),
        identity=dataclasses.replace(
            ctx.config.identity, dev_provider_key=node.directory / "keys" / "dev-idp.key"
        ),
    )
    http = HttpServer(
        dataclasses.replace(ctx, config=config),
        mtls_routes=[*MTLS_PROVIDERS, whoami],
        addresses=("127.0.0.1:0", "127.0.0.1:0"),
    )
    await http.start()
    yield World(bed, node, http)
    await http.stop()
    await bed.close()


async def _read(resp: aiohttp.ClientResponse) -> Any:
    body = await resp.read()
    return await resp.json() if "json" in resp.headers.get("Content-Type", "") else body


async def _dev_sign_in(
    world: World, s: aiohttp.ClientSession, id_number: str, **form: str
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with s.post(
        world.url("/auth/dev/sign-in"),
        data={"id_number": id_number, **form},
        allow_redirects=False,
    ) as resp:
        return resp.status, await _read(resp), resp


async def _session(world: World, s: aiohttp.ClientSession) -> tuple[int, Any]:
    async with s.get(world.url("/auth/session")) as resp:
        return resp.status, await _read(resp)


# ---------------------------------------------------------------- redirects

REDIRECT_CASES = [
    # (name, next, where the browser goes)
    ("a-page", "/consents", "/consents"),
    ("a-page-with-query", "/grant?audience=heihe.bank&x=%2F", "/grant?audience=heihe.bank&x=%2F"),
    ("percent-encoded-backslash-stays-a-path", "/%5Cevil.example", "/%5Cevil.example"),
    ("backslash-host", "/\\evil.example/x", "/"),
    ("tab-then-slash", "/\t/evil.example", "/"),
    ("newline-then-slash", "/\n/evil.example", "/"),
    ("double-slash", "//evil.example/x", "/"),
    ("absolute-url", "https://evil.example/", "/"),
    ("no-leading-slash", "evil.example", "/"),
    ("backslash-inside", "/a\\b", "/"),
    ("space", "/a b", "/"),
    ("fragment", "/a#b", "/"),
    ("non-ascii", "/页面", "/"),
    ("too-long", "/" + "a" * 256, "/"),
]


@pytest.mark.parametrize(
    ("name", "target", "location"), REDIRECT_CASES, ids=[c[0] for c in REDIRECT_CASES]
)
async def test_sign_in_returns_only_to_a_path_of_this_site(
    world: World, name: str, target: str, location: str
) -> None:
    """Issue 19 (H17): ``next`` after sign-in is a path of this site;
    ``/\\host`` and ``/<TAB>/host`` are read by browsers as another host."""
    async with world.browser() as s:
        status, _b, resp = await _dev_sign_in(world, s, make_id_number(901), next=target)
        assert (status, resp.headers["Location"]) == (303, location)
        async with s.get(world.url("/auth/dev/sign-in"), params={"next": target}) as form:
            page = (await form.read()).decode()
        hidden = re.search(r'name="next" value="([^"]*)"', page)
        assert hidden is not None and hidden.group(1) == location.replace("&", "&amp;")
        async with s.get(world.url("/auth/sign-in-state"), params={"next": target}) as begun:
            state = (await begun.json())["state"]
        async with s.post(
            world.url("/auth/callback"),
            data={"assertion": world.assertion(make_id_number(902)), "state": state},
            allow_redirects=False,
        ) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, location)


async def test_the_sign_in_page_applies_the_same_rule() -> None:
    """Issue 19: pages/signin.js carries the same pattern as the node."""
    script = (ROOT / "node/web/static/pages/signin.js").read_text()
    found = re.search(r"const LOCAL_PATH = /\^(.*)\$/;", script)
    assert found is not None
    assert found.group(1).replace("\\/", "/") == LOCAL_PATH.pattern
    assert "next.length <= 256" in script


# ---------------------------------------------------------------- the callback

PROVIDER_ORIGIN = "https://idp.gov.example"


async def _begin(world: World, s: aiohttp.ClientSession, target: str = "/consents") -> str:
    async with s.get(world.url("/auth/sign-in-state"), params={"next": target}) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        cookie = resp.headers["Set-Cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=None", "Path=/auth/callback"):
            assert attribute.lower() in cookie.lower(), cookie
        body = await resp.json()
    assert body["callback"] == "/auth/callback"
    assert body["expires_at"] == world.node.server.ctx.now_s() + STATE_SECONDS
    return str(body["state"])


async def _callback(
    world: World, s: aiohttp.ClientSession, assertion: str, state: str | None
) -> tuple[int, Any, aiohttp.ClientResponse]:
    form = {"assertion": assertion} | ({} if state is None else {"state": state})
    async with s.post(
        world.url("/auth/callback"),
        data=form,
        headers={"Origin": PROVIDER_ORIGIN},
        allow_redirects=False,
    ) as resp:
        return resp.status, await _read(resp), resp


async def test_the_provider_posts_from_its_own_origin_with_the_state(world: World) -> None:
    """Issue 19 (ADR 0800): a real provider's page posts the assertion
    cross-origin; the state this browser began with admits it, and once only."""
    async with world.browser() as s:
        state = await _begin(world, s, "/grant")
        status, body, resp = await _callback(world, s, world.assertion(make_id_number(903)), state)
        assert (status, resp.headers["Location"]) == (303, "/grant"), body
        assert (await _session(world, s))[0] == 200
        # the state is spent: the same post again is refused (a replay of the form)
        status, body, _ = await _callback(world, s, world.assertion(make_id_number(903)), state)
        assert (status, body["reason"], body["field"]) == (403, "SIGN_IN_STATE_INVALID", "state")


CALLBACK_REFUSALS = [
    # (name, what is posted as state: "none" / "wrong" / "other-browser's" / "expired")
    ("no-state", "none"),
    ("empty-state", "empty"),
    ("wrong-state", "wrong"),
    ("too-long-state", "long"),
    ("another-browser's-state", "other"),
    ("expired-state", "expired"),
]


@pytest.mark.parametrize(("name", "kind"), CALLBACK_REFUSALS, ids=[c[0] for c in CALLBACK_REFUSALS])
async def test_a_callback_without_this_browsers_state_is_refused(
    world: World, name: str, kind: str
) -> None:
    """Issue 19 (H17): without the state this browser began with, the
    callback opens no session (another person's sign-in cannot be planted); the
    assertion is not spent and signs in with the right state afterwards."""
    person = make_id_number(904)
    assertion = world.assertion(person)
    async with world.browser() as s, world.browser() as other:
        state = await _begin(world, s)
        posted: str | None = {
            "none": None,
            "empty": "",
            "wrong": state[:-4] + "AAAA",
            "long": "A" * 65,
            "other": await _begin(world, other),
            "expired": state,
        }[kind]
        if kind == "expired":
            world.clock.advance(seconds=STATE_SECONDS)
            assertion = world.assertion(person)
        status, body, resp = await _callback(world, s, assertion, posted)
        assert (status, body["reason"], body["field"]) == (403, "SIGN_IN_STATE_INVALID", "state")
        assert "huxin_session" not in resp.cookies
        assert (await _session(world, s))[0] == 401
        if kind != "expired":
            status, _b, _r = await _callback(world, s, assertion, state)
            assert status == 303 and (await _session(world, s))[0] == 200


# ---------------------------------------------------------------- operators

OPERATOR_CASES = [
    ("own-region", "heihe", True, 200, ""),
    ("registered-operator", "heihe.ops", True, 200, ""),
    ("listed-foreign-ca-signed", FOREIGN_OPERATOR, False, 403, "NOT_OPERATOR"),
    ("registered-client-not-listed", "heihe.teller", True, 403, "NOT_OPERATOR"),
]


@pytest.mark.parametrize(
    ("name", "client", "register", "status", "reason"),
    OPERATOR_CASES,
    ids=[c[0] for c in OPERATOR_CASES],
)
async def test_an_operator_certificate_is_one_the_registry_checked(
    world: World, name: str, client: str, register: bool, status: int, reason: str
) -> None:
    """Issue 19 (H17, ADR 0415): an identity of kind OTHER passes the
    CA and nothing else, so being listed in ``[operators] allowed`` does not make it an
    operator; the own region (pinned) and registered clients of this region do."""
    connector = aiohttp.TCPConnector(ssl=world.tls(client, register=register))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.get(world.url("/test/whoami", "mtls")) as resp,
    ):
        body = await _read(resp)
    assert resp.status == status, body
    if status == 200:
        assert body == {"operator": client}
    else:
        assert body["reason"] == reason


# ---------------------------------------------------------------- session caps


async def test_one_person_cannot_sign_everyone_else_out(world: World) -> None:
    """Issue 19 (H17): one subject holds at most
    SESSIONS_PER_SUBJECT sessions; the next sign-in ends that subject's oldest, and
    nobody else's."""
    someone_else, busy = make_id_number(905), make_id_number(906)
    browsers = [world.browser() for _ in range(SESSIONS_PER_SUBJECT + 2)]
    try:
        assert (await _dev_sign_in(world, browsers[0], someone_else))[0] == 303
        for b in browsers[1:]:
            assert (await _dev_sign_in(world, b, busy))[0] == 303
        status, body = await _session(world, browsers[1])
        assert (status, body["reason"]) == (401, "SESSION_INVALID")
        for b in [browsers[0], *browsers[2:]]:
            assert (await _session(world, b))[0] == 200
    finally:
        for b in browsers:
            await b.close()


# ---------------------------------------------------------------- deregistration


@pytest.mark.parametrize(
    ("name", "path", "ends"),
    [("deregister", "deregister", True), ("opt-out", "opt-out", False)],
)
async def test_leaving_ends_every_session_of_the_citizen(
    world: World, name: str, path: str, ends: bool
) -> None:
    """Issue 19 (H2, N3, N4): after Deregister succeeds no session of that citizen stays
    open (a session holds the ID number in memory, and nothing of the person is kept);
    OptOut keeps them signed in, since an opted-out citizen still sees their page and
    may opt in again from it."""
    person = make_id_number(907 if name == "deregister" else 908)
    court = node_pb2_grpc.SourceServiceStub(
        world.bed.peer_channel(world.node, world.bed.cert("heihe-court"))
    )
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id=f"leave-{name}",
            records=[honour_record(f"leave-{name}", person)],
            subjects=[resident(person)],
        )
    )
    async with world.browser() as s, world.browser() as phone, world.browser() as other:
        for b in (s, phone):
            assert (await _dev_sign_in(world, b, person))[0] == 303
        assert (await _dev_sign_in(world, other, make_id_number(909)))[0] == 303
        csrf = (await _session(world, s))[1]["csrf_token"]
        async with s.post(
            world.url(f"/api/v1/me/{path}"), json={"confirm": True}, headers={"X-CSRF-Token": csrf}
        ) as resp:
            assert resp.status == 200, await _read(resp)
        for b in (s, phone):
            status, body = await _session(world, b)
            if ends:
                assert (status, body["reason"]) == (401, "SESSION_INVALID")
            else:
                assert status == 200, body
        assert (await _session(world, other))[0] == 200
        # a refused request (not confirmed) ends nothing
        assert (await _dev_sign_in(world, s, person))[0] == 303
        csrf = (await _session(world, s))[1]["csrf_token"]
        async with s.post(
            world.url(f"/api/v1/me/{path}"), json={"confirm": False}, headers={"X-CSRF-Token": csrf}
        ) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (400, "NOT_CONFIRMED")
        assert (await _session(world, s))[0] == 200


# ---------------------------------------------------------------- dev sign-in

GOOD = make_id_number(910)
DEV_ID_CASES = [
    ("empty", ""),
    ("one-character", "1"),
    ("seventeen", GOOD[:17]),
    ("nineteen", GOOD + "1"),
    ("letters", "A" * 18),
    ("leading-zero", "0" + GOOD[1:]),
    ("wrong-check-character", GOOD[:17] + ("1" if GOOD[17] != "1" else "2")),
    ("far-too-long", "1" * 10_000),
    ("full-width-digits", "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in GOOD)),
]


@pytest.mark.parametrize(("name", "value"), DEV_ID_CASES, ids=[c[0] for c in DEV_ID_CASES])
async def test_the_development_sign_in_refuses_what_is_no_id_number(
    world: World, name: str, value: str
) -> None:
    """Issue 19: the form's check is the verifier's own rule
    (GB 11643, 18 characters), named by the form's field ``id_number``."""
    async with world.browser() as s:
        status, body, _ = await _dev_sign_in(world, s, value)
        assert (status, body["reason"], body["field"]) == (400, "INVALID_ID_NUMBER", "id_number")
        assert (await _session(world, s))[0] == 401


async def test_the_development_sign_in_takes_a_valid_number_in_any_case(world: World) -> None:
    """Issue 19: a lower-case check character ``x`` is the same
    number (normalise_id_number)."""
    person = next(
        make_id_number(n) for n in range(1000) if make_id_number(n).endswith("X")
    )  # a number whose check character is X
    async with world.browser() as s:
        status, _b, _r = await _dev_sign_in(world, s, " " + person.lower() + " ")
        assert status == 303 and (await _session(world, s))[0] == 200
