"""The exchange benchmark's REST+JWT baseline does the work it is credited with.

bench/exchange.py compares the node's CPU per request with this gateway's; the
comparison is fair only if the gateway really verifies the consent, counts
every use in its database before answering, refuses a spent or foreign consent
and signs its answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import rest_gateway

PURPOSE = "heihe/credit-loans"
JSON = {"content-type": "application/json"}  # as bench.rest_gateway.Client sends it


Gateway = tuple[httpx.AsyncClient, Ed25519PrivateKey, Ed25519PrivateKey, Path]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    region, signer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    db = tmp_path / "rest.db"
    app = rest_gateway.make_app(region.public_key(), signer, db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, region, signer, db


async def test_a_consent_is_counted_and_answered_with_a_signed_jwt(gateway: Gateway) -> None:
    client, region, signer, db = gateway
    binding = b"\x01" * 32
    consent = rest_gateway.consent_jwt(region, "c1", binding, PURPOSE, max_uses=2)
    for uses in (1, 2):
        reply = await client.post(
            "/attest", content=rest_gateway.attest_body(consent, binding, PURPOSE), headers=JSON
        )
        assert reply.status_code == 200
        claims = jwt.decode(
            reply.json()["attestation"],
            signer.public_key(),
            algorithms=["EdDSA"],
            audience=rest_gateway.AUDIENCE,
        )
        assert claims["sub"] == binding.hex()
        assert claims["consent"] == "c1"
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT uses FROM consent_uses").fetchone() == (uses,)
    spent = await client.post(
        "/attest", content=rest_gateway.attest_body(consent, binding, PURPOSE), headers=JSON
    )
    assert spent.status_code == 403
    assert "exhausted" in spent.text


async def test_a_consent_of_another_key_binding_or_purpose_is_refused(gateway: Gateway) -> None:
    client, region, _, db = gateway
    binding = b"\x02" * 32
    forged = rest_gateway.consent_jwt(Ed25519PrivateKey.generate(), "c2", binding, PURPOSE, 5)
    good = rest_gateway.consent_jwt(region, "c3", binding, PURPOSE, 5)
    for body in (
        rest_gateway.attest_body(forged, binding, PURPOSE),
        rest_gateway.attest_body(good, b"\x03" * 32, PURPOSE),
        rest_gateway.attest_body(good, binding, "heihe/other"),
    ):
        assert (await client.post("/attest", content=body, headers=JSON)).status_code == 403
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM consent_uses").fetchone() == (0,)
