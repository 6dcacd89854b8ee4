"""The HTTP/JSON API against a real ``huxin serve`` (issue 19, "HTTP/JSON API").

One region process with both HTTPS listeners (real TLS on loopback, SQLite files):
the citizen's operations over JSON with the same identity assertion as gRPC and
with the development sign-in's session; the integrator's attestation request over
mutual TLS; the named bad inputs of the gRPC table (tests/support/bad_inputs.py)
with the same reasons and nothing stored; the one error body; public trust
material with strong ETags and 304.

REQ: H12 (explained report), H16/N23 (query log with proofs), H17 (security:
identities, bounds, errors that disclose nothing), N3, H2.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from keys import CHECKPOINT_TYPE, subject_binding, verify_envelope, verify_inclusion, verify_key_set
from keys.pb.v1 import attestation_pb2
from node.http._api import API_ROUTES
from node.http._trust import RENDER_SECONDS
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import field_of, peer_channel, reason_of
from tests.support.bad_inputs import (
    ATTESTATION_BAD_INPUTS,
    CITIZEN_BAD_INPUTS,
    JSON_BAD_BODIES,
    SEED_RECORD,
    BadBody,
    BadInput,
    attestation_json,
)
from tests.support.http import CITIZEN, HttpRegion, http_region, seed

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROUTES = {r.operation: r for r in API_ROUTES}
PURPOSE = "heihe/credit-loans"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpRegion]:
    with http_region(tmp_path_factory.mktemp("http")) as r:
        yield r


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def seeded(region: HttpRegion) -> AsyncIterator[HttpRegion]:
    await seed(region)
    yield region


async def _call(
    s: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with s.request(method, url, **kw) as resp:
        body = await resp.read()
        kind = resp.headers.get("Content-Type", "")
        return resp.status, (await resp.json() if "json" in kind and body else body), resp


def _refusal(body: Any) -> tuple[str, str]:
    assert set(body) == {"code", "reason", "field", "message"}, body
    return body["reason"], body["field"]


def _attestation_body(token: dict[str, Any], id_number: str) -> dict[str, Any]:
    """The requester's JSON: the token as the citizen handed it over (one base64 string)."""
    salt = base64.b64decode(token["binding_salt"])
    return {
        "consent_token": token["token"],
        "subject_binding": base64.b64encode(subject_binding(salt, id_number)).decode(),
        "nonce": base64.b64encode(os.urandom(16)).decode(),
        "purpose": PURPOSE,
    }


async def test_citizen_grants_bank_requests_citizen_sees_proof_and_withdraws(
    seeded: HttpRegion,
) -> None:
    """Issue 19 (H12, H16, N20, N23): score with its explained report; the incentives
    the grade qualifies for; a grant; the
    requester's attestation over mutual TLS; the query in the citizen's log with an
    inclusion proof that verifies against the signed checkpoint and the key set
    fetched from /trust; after withdrawal the next request is refused with the gRPC
    reason (CONSENT_WITHDRAWN)."""
    r = seeded
    async with r.client() as s, r.client("hainan") as bank:
        status, score, _ = await _call(
            s, "GET", f"{r.citizen_url}/api/v1/me/score", headers=r.bearer()
        )
        assert status == 200, score
        assert SEED_RECORD in {c["record_id"] for c in score["result"]["contributions"]}
        assert score["result"]["grade"]
        status, offers, _ = await _call(
            s, "GET", f"{r.citizen_url}/api/v1/me/incentives", headers=r.bearer()
        )
        assert status == 200, offers
        assert offers["grade"] == score["result"]["grade"]
        home = offers["regions"][0]
        assert (home["region"], home["origin"], home["grade"]) == ("heihe", "own", offers["grade"])
        assert PURPOSE in {x["ref"] for x in home["scenarios"]}

        status, token, _ = await _call(
            s, "POST", f"{r.citizen_url}/api/v1/me/consents", headers=r.bearer(),
            json={"audience": "hainan", "purpose": PURPOSE, "scope": "grade"},
        )  # fmt: skip
        assert status == 200, token
        status, listed, _ = await _call(
            s, "GET", f"{r.citizen_url}/api/v1/me/consents", headers=r.bearer()
        )
        assert [c["grant"]["consent_id"] for c in listed["consents"]] == [token["consent_id"]]

        status, answer, _ = await _call(
            bank,
            "POST",
            f"{r.mtls_url}/api/v1/attestations",
            json=_attestation_body(token, CITIZEN),
        )
        assert status == 200, answer
        assert base64.b64decode(answer["signed_attestation"])

        status, log, _ = await _call(
            s, "GET", f"{r.citizen_url}/api/v1/me/query-log", headers=r.bearer()
        )
        assert status == 200, log
        status, key_set_bytes, _ = await _call(s, "GET", f"{r.citizen_url}/trust/key-set.bin")
        root = attestation_pb2.KeySet.FromString(
            attestation_pb2.Envelope.FromString(key_set_bytes).payload
        ).root_public_key
        keys = {k.key_id: k.public_key for k in verify_key_set(key_set_bytes, root, "heihe").keys}
        checkpoint = attestation_pb2.Checkpoint.FromString(
            verify_envelope(base64.b64decode(log["checkpoint"]), keys, CHECKPOINT_TYPE)
        )
        assert log["entries"]
        for e in log["entries"]:
            proof = e["proof"]
            assert verify_inclusion(
                base64.b64decode(e["entry"]), proof["leaf_index"], proof["tree_size"],
                [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root_hash,
            )  # fmt: skip

        status, withdrawn, _ = await _call(
            s, "POST", f"{r.citizen_url}/api/v1/me/consents/withdraw", headers=r.bearer(),
            json={"consent_id": token["consent_id"]},
        )  # fmt: skip
        assert status == 200 and withdrawn["state"] != "CONSENT_STATE_ACTIVE", withdrawn
        status, refused, _ = await _call(
            bank,
            "POST",
            f"{r.mtls_url}/api/v1/attestations",
            json=_attestation_body(token, CITIZEN),
        )
        assert (status, refused["code"], _refusal(refused)[0]) == (
            409,
            "FAILED_PRECONDITION",
            "CONSENT_WITHDRAWN",
        ), refused


def _bad_request(case: BadInput) -> tuple[str, str, dict[str, Any]]:
    route = ROUTES[case.operation]
    if route.in_query:
        return route.method, route.path, {"params": {k: str(v) for k, v in case.fields.items()}}
    return route.method, route.path, {"json": case.fields}


@pytest.mark.parametrize("case", CITIZEN_BAD_INPUTS, ids=[c.name for c in CITIZEN_BAD_INPUTS])
async def test_the_grpc_bad_inputs_are_refused_alike_over_http(
    seeded: HttpRegion, case: BadInput
) -> None:
    """Issue 19 "HTTP bad inputs" (H7, H17): the gRPC table's named case, as JSON, is 400
    with the same reason and field; nothing stored."""
    before = seeded.counts()
    method, path, kw = _bad_request(case)
    async with seeded.client() as s:
        status, body, _ = await _call(
            s, method, seeded.citizen_url + path, headers=seeded.bearer(), **kw
        )
    assert (status, body["code"], _refusal(body)) == (
        400,
        "INVALID_ARGUMENT",
        (case.reason, case.field),
    )
    assert seeded.counts() == before


@pytest.mark.parametrize("case", JSON_BAD_BODIES, ids=[c.name for c in JSON_BAD_BODIES])
async def test_the_json_only_bad_inputs_are_refused_not_internal(
    seeded: HttpRegion, case: BadBody
) -> None:
    """Issue 19 "HTTP bad inputs" (H7, H17): a lone UTF-16
    surrogate is INVALID_FIELD naming its field, nesting past the parser's depth is
    MALFORMED_REQUEST: 400 with the stable reason, never 500 INTERNAL; nothing stored."""
    before = seeded.counts()
    route = ROUTES[case.operation]
    async with seeded.client() as s:
        status, body, _ = await _call(
            s, route.method, seeded.citizen_url + route.path, data=case.raw,
            headers={**seeded.bearer(), "Content-Type": "application/json"},
        )  # fmt: skip
    assert (status, body["code"], _refusal(body)) == (
        400,
        "INVALID_ARGUMENT",
        (case.reason, case.field),
    )
    assert seeded.counts() == before


@pytest.mark.parametrize(
    "case", ATTESTATION_BAD_INPUTS, ids=[c.name for c in ATTESTATION_BAD_INPUTS]
)
async def test_a_bad_attestation_request_gets_one_reason_on_both_channels(
    seeded: HttpRegion, case: BadInput
) -> None:
    """Issue 19 "HTTP bad inputs" (H17, N23): the same bad request,
    as JSON over the mutual-TLS listener and as PeerService.RequestAttestation over
    gRPC, is refused INVALID_ARGUMENT with the same reason and field; nothing stored."""
    before = seeded.counts()
    async with seeded.client("hainan") as bank:
        status, body, _ = await _call(
            bank, "POST", f"{seeded.mtls_url}/api/v1/attestations", json=attestation_json(case)
        )
    channel = peer_channel(
        f"127.0.0.1:{seeded.proc.ports['peer']}", seeded.ca.cert_pem,
        seeded.certs["hainan"].cert_pem, seeded.certs["hainan"].key_pem,
    )  # fmt: skip
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await node_pb2_grpc.PeerServiceStub(channel).RequestAttestation(
                node_pb2.AttestationRequest(**case.fields)
            )
    finally:
        await channel.close(None)
    over_grpc = (refused.value.code().name, reason_of(refused.value), field_of(refused.value))
    assert (status, body["code"], *_refusal(body)) == (400, *over_grpc)
    assert over_grpc == ("INVALID_ARGUMENT", case.reason, case.field)
    assert seeded.counts() == before


MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("corrupt", b"\xff\xff\xff\xff", "MALFORMED_REQUEST", "request"),
    ("truncated", b'{"consent_id": "ab', "MALFORMED_REQUEST", "request"),
    ("not-an-object", b'["consent_id"]', "MALFORMED_REQUEST", "request"),
    ("unknown-member", b'{"consent_id": "x", "admin": true}', "INVALID_FIELD", "request"),
    ("wrong-type", b'{"consent_id": 7}', "INVALID_FIELD", "consent_id"),
]


@pytest.mark.parametrize(
    ("name", "raw", "reason", "field"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
async def test_a_body_that_is_not_the_request_is_refused(
    seeded: HttpRegion, name: str, raw: bytes, reason: str, field: str
) -> None:
    """Issue 19 (as issue 14 item 12 on gRPC): bytes that are not the request's JSON are
    400 with a stable reason, never a Python class name; nothing stored."""
    before = seeded.counts()
    async with seeded.client() as s:
        status, body, _ = await _call(
            s, "POST", f"{seeded.citizen_url}/api/v1/me/consents/withdraw", data=raw,
            headers={**seeded.bearer(), "Content-Type": "application/json"},
        )  # fmt: skip
    assert (status, _refusal(body)) == (400, (reason, field)), body
    assert not any(w in body["message"] for w in ("Error", "Exception", "Traceback", "json."))
    assert seeded.counts() == before


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(seeded: HttpRegion) -> None:
    """Issue 19: ``[listen] http_max_body_bytes`` (1 MiB default): MESSAGE_TOO_LARGE as on
    gRPC (RESOURCE_EXHAUSTED), with HTTP's own status for it, 413."""
    async with seeded.client() as s:
        status, body, _ = await _call(
            s, "POST", f"{seeded.citizen_url}/api/v1/me/objections", headers=seeded.bearer(),
            data=b'{"reason": "' + b"x" * (1024 * 1024 + 10) + b'"}',
        )  # fmt: skip
    assert (status, body["code"], _refusal(body)) == (
        413,
        "RESOURCE_EXHAUSTED",
        ("MESSAGE_TOO_LARGE", "request"),
    )


async def test_a_method_the_path_does_not_take_is_405_with_allow(seeded: HttpRegion) -> None:
    """Issue 19 (RFC 9110 15.5.6): a known path with another method
    is 405 naming the methods it takes in ``Allow``; the reason stays METHOD_NOT_ALLOWED."""
    async with seeded.client() as s:
        status, body, resp = await _call(
            s, "DELETE", f"{seeded.citizen_url}/api/v1/me/consents", headers=seeded.bearer()
        )
    assert (status, _refusal(body)[0]) == (405, "METHOD_NOT_ALLOWED")
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


AUTH_CASES: list[tuple[str, dict[str, str], int, str]] = [
    ("no-credentials", {}, 401, "IDENTITY_MISSING"),
    ("not-bearer", {"Authorization": "Basic abc"}, 401, "IDENTITY_MISSING"),
    ("not-base64", {"Authorization": "Bearer ***"}, 401, "IDENTITY_INVALID"),
    ("garbage-envelope", {"Authorization": "Bearer " + base64.b64encode(b"x" * 40).decode()}, 401,
     "IDENTITY_INVALID"),
    ("unknown-session", {"Cookie": "huxin_session=nope"}, 401, "SESSION_INVALID"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "headers", "status", "reason"), AUTH_CASES, ids=[a[0] for a in AUTH_CASES]
)
async def test_a_citizen_operation_without_a_valid_identity_is_refused(
    seeded: HttpRegion, name: str, headers: dict[str, str], status: int, reason: str
) -> None:
    """Issue 19 (H17): the same reasons as the gRPC guard's, in the one error body."""
    async with seeded.client() as s:
        got, body, _ = await _call(
            s, "GET", f"{seeded.citizen_url}/api/v1/me/consents", headers=headers
        )
    assert (got, _refusal(body)[0]) == (status, reason)


async def test_an_assertion_is_accepted_once(seeded: HttpRegion) -> None:
    """Issue 19, ADR 0416: the HTTP API shares the node's replay cache."""
    header = seeded.bearer()
    async with seeded.client() as s:
        first, _b, _ = await _call(
            s, "GET", f"{seeded.citizen_url}/api/v1/me/consents", headers=header
        )
        again, body, _ = await _call(
            s, "GET", f"{seeded.citizen_url}/api/v1/me/consents", headers=header
        )
    assert (first, again, _refusal(body)[0]) == (200, 401, "IDENTITY_REPLAYED")


async def test_the_session_of_a_sign_in_needs_its_csrf_header_and_ends_at_sign_out(
    seeded: HttpRegion,
) -> None:
    """Issue 19: the development sign-in opens an HttpOnly SameSite=Strict session;
    the API needs the session's X-CSRF-Token too; a cross-site Origin is refused;
    after sign-out the cookie opens nothing."""
    r = seeded
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=r.tls()), cookie_jar=jar
    ) as s:
        status, _b, resp = await _call(
            s, "POST", f"{r.citizen_url}/auth/dev/sign-in", data={"id_number": CITIZEN},
            allow_redirects=False,
        )  # fmt: skip
        assert status == 303
        cookie = next(
            c for c in resp.headers.getall("Set-Cookie") if c.startswith("huxin_session=")
        )
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Max-Age=1800", "Path=/"):
            assert attribute in cookie
        assert CITIZEN not in "".join(resp.headers.getall("Set-Cookie"))
        status, session, _ = await _call(s, "GET", f"{r.citizen_url}/auth/session")
        csrf = session["csrf_token"]
        me = f"{r.citizen_url}/api/v1/me/consents"
        status, body, _ = await _call(s, "GET", me)
        assert (status, _refusal(body)[0]) == (403, "CSRF_TOKEN_MISSING")
        status, body, _ = await _call(s, "GET", me, headers={"X-CSRF-Token": csrf})
        assert status == 200, body
        status, body, _ = await _call(
            s, "POST", f"{me}/withdraw", json={"consent_id": "x"},
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )  # fmt: skip
        assert (status, _refusal(body)[0]) == (403, "CSRF_ORIGIN")
        status, _b, _ = await _call(
            s, "POST", f"{r.citizen_url}/auth/sign-out", allow_redirects=False
        )
        assert status == 303
        s.cookie_jar.update_cookies({"huxin_session": cookie.split(";")[0].split("=", 1)[1]})
        status, body, _ = await _call(s, "GET", me, headers={"X-CSRF-Token": csrf})
        assert (status, _refusal(body)[0]) == (401, "SESSION_INVALID")
    # privacy: the ID number typed into the sign-in form reached no log line
    assert CITIZEN not in (r.directory / "node.log").read_text(encoding="utf-8")


async def test_the_integrator_listener_needs_a_registered_certificate(seeded: HttpRegion) -> None:
    """Issue 19, ADR 0415: on the mutual-TLS listener the caller is its certificate:
    none completes no handshake; an unregistered client of this region is
    CLIENT_UNKNOWN; the citizen listener serves no attestation request."""
    r = seeded
    async with r.client() as s:
        with pytest.raises(aiohttp.ClientError):
            await _call(s, "POST", f"{r.mtls_url}/api/v1/attestations", json={})
        status, body, _ = await _call(s, "POST", f"{r.citizen_url}/api/v1/attestations", json={})
        assert (status, _refusal(body)[0]) == (404, "ROUTE_NOT_FOUND")
    async with r.client("heihe.stranger") as s:
        status, body, _ = await _call(s, "POST", f"{r.mtls_url}/api/v1/attestations", json={})
    assert (status, _refusal(body)[0]) == (401, "CLIENT_UNKNOWN")


TRUST_FILES = [
    "/trust/key-set.bin",
    "/trust/status-list.bin",
    "/trust/checkpoint.bin",
    "/trust/catalogue.bin",
    "/trust/mapping-tables.json",
    "/trust/index.json",
    "/openapi.json",
]


@pytest.mark.parametrize("path", TRUST_FILES)
async def test_trust_material_is_public_cacheable_and_revalidates_with_304(
    seeded: HttpRegion, path: str
) -> None:
    """Issue 19: no credentials; a strong ETag and Cache-Control; If-None-Match with it
    is 304 without a body; the same bytes twice (a cache keeps them)."""
    async with seeded.client() as s:
        status, body, resp = await _call(s, "GET", seeded.citizen_url + path)
        assert status == 200
        etag = resp.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert "max-age" in resp.headers["Cache-Control"]
        _again, body2, _ = await _call(s, "GET", seeded.citizen_url + path)
        assert body2 == body
        status, empty, resp = await _call(
            s, "GET", seeded.citizen_url + path, headers={"If-None-Match": etag}
        )
        assert (status, empty, resp.headers["ETag"]) == (304, b"", etag)


async def test_an_unchanged_status_list_keeps_its_bytes_across_renders(
    seeded: HttpRegion,
) -> None:
    """Issue 19: the node renders the status list again after
    RENDER_SECONDS; while no status changed it serves the same signed bytes (the same
    issue time, the same ETag), so caches revalidate with 304 instead of refetching.
    The wait only lets the node render again; nothing asserts how long anything took."""
    url = f"{seeded.citizen_url}/trust/status-list.bin"
    async with seeded.client() as s:
        _st, first, resp = await _call(s, "GET", url)
        etag = resp.headers["ETag"]
        await asyncio.sleep(RENDER_SECONDS + 1)  # past the render cache: a new rendering
        _st, again, resp = await _call(s, "GET", url)
        status, _empty, _r = await _call(s, "GET", url, headers={"If-None-Match": etag})
    assert (resp.headers["ETag"], again, status) == (etag, first, 304)
    issued = attestation_pb2.StatusList.FromString(
        attestation_pb2.Envelope.FromString(first).payload
    ).issued_at
    assert issued <= int(time.time())


async def test_an_unfederated_node_has_no_trust_list_to_serve(seeded: HttpRegion) -> None:
    """Issue 19: a standalone node holds no hub-signed list: 404 with a reason."""
    async with seeded.client() as s:
        status, body, _ = await _call(s, "GET", f"{seeded.citizen_url}/trust/trust-list.bin")
    assert (status, _refusal(body)[0]) == (404, "TRUST_LIST_NOT_HELD")


async def test_answers_carry_the_security_headers(seeded: HttpRegion) -> None:
    """Issue 19 (accessibility and safety of the pages): nothing from another origin."""
    async with seeded.client() as s:
        _s, _b, resp = await _call(s, "GET", f"{seeded.citizen_url}/api/v1/catalogue")
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
