"""The exchange's baseline: the REST+JWT consent gateway a team would otherwise build.

FastAPI on uvicorn (``uvicorn[standard]``: uvloop and httptools, as FastAPI's
own install recommends), mutual TLS with the federation's certificates (the
client certificate is required and checked against the CA by the TLS layer),
one endpoint ``POST /attest``:

1. the body names a consent JWT, the subject binding, a nonce and the purpose;
2. the consent JWT is verified with PyJWT (EdDSA, Ed25519 key of the issuing
   region; ``exp``, ``aud`` = the requester, purpose and binding compared);
3. the use is counted in SQLite (a real file, WAL, ``synchronous = NORMAL`` as
   the node's; one conditional upsert per request, committed before answering),
   refused when the consent's ``max_uses`` are spent;
4. the answer is an EdDSA-signed JWT (subject binding, grade, nonce, consent id).

It does less than the node (no score lookup, no mapping, no status index, no
transparency log); it is the floor a hand-built gateway would stand on.  uvicorn
does not hand the peer certificate to the app, so the audience is the one
requester identity this process serves (the TLS layer already refuses clients
without a certificate from the CA).

``python -m bench.rest_gateway CERT KEY CA PUBKEY SIGNKEY DB PORTFILE`` runs the
server on a free loopback port and writes ``{"peer": port, "pid": pid}`` to
PORTFILE once it listens.  :func:`consent_jwt`, :func:`attest_body` and
:class:`Client` are what the benchmark uses on its side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import ssl
import sys
import time
from pathlib import Path

import jwt
import uvicorn
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

AUDIENCE = "hainan"  # the requester identity the bench's client certificate carries
ISSUER = "heihe"


class AttestRequest(BaseModel):
    consent: str
    subject_binding: str  # hex
    nonce: str  # hex
    purpose: str


class AttestResponse(BaseModel):
    attestation: str


def consent_jwt(
    key: Ed25519PrivateKey, consent_id: str, binding: bytes, purpose: str, max_uses: int
) -> str:
    """The consent a citizen grants, as the baseline's region would sign it."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": consent_id,
        "sub": binding.hex(),
        "purpose": purpose,
        "scope": "grade",
        "max_uses": max_uses,
        "iat": now,
        "nbf": now - 60,
        "exp": now + 86_400,
    }
    return jwt.encode(claims, key, algorithm="EdDSA")


def _database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS consent_uses ("
        " consent_id TEXT PRIMARY KEY, uses INTEGER NOT NULL, last_used_at INTEGER NOT NULL)"
    )
    return conn


def make_app(verify_key: Ed25519PublicKey, sign_key: Ed25519PrivateKey, db: Path) -> FastAPI:
    """The gateway; every request commits its use before the signed answer is built."""
    app = FastAPI()
    conn = _database(db)

    @app.post("/attest")
    async def attest(req: AttestRequest) -> AttestResponse:
        try:
            claims = jwt.decode(
                req.consent,
                verify_key,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "jti", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise HTTPException(status_code=403, detail=f"consent invalid: {exc}") from exc
        if claims["purpose"] != req.purpose or claims["sub"] != req.subject_binding:
            raise HTTPException(status_code=403, detail="consent does not cover this request")
        now = int(time.time())
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "INSERT INTO consent_uses (consent_id, uses, last_used_at) VALUES (?, 1, ?)"
                " ON CONFLICT (consent_id) DO UPDATE SET uses = uses + 1, last_used_at = ?"
                " WHERE uses < ? RETURNING uses",
                (claims["jti"], now, now, int(claims["max_uses"])),
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row is None:
            raise HTTPException(status_code=403, detail="consent exhausted")
        token = jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": req.subject_binding,
                "grade": "A",
                "nonce": req.nonce,
                "consent": claims["jti"],
                "iat": now,
            },
            sign_key,
            algorithm="EdDSA",
        )
        return AttestResponse(attestation=token)

    return app


def _load_ed25519_private(path: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(path.read_bytes())


def _load_ed25519_public(path: Path) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(path.read_bytes())


def serve(
    cert: Path, key: Path, ca: Path, pubkey: Path, signkey: Path, db: Path, port_file: Path
) -> None:
    """Serve on a free loopback port (bound here, handed to uvicorn) until terminated."""
    app = make_app(_load_ed25519_public(pubkey), _load_ed25519_private(signkey), db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        log_level="warning",  # uvicorn's access line stays on, as a deployed gateway keeps it
        access_log=True,
        # idle connections kept as long as the node keeps its peers' ([listen]
        # idle_timeout_seconds): the bench's connections wait while other servers run
        timeout_keep_alive=300,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
                return
            await asyncio.sleep(0.01)
        port_file.write_text(json.dumps({"peer": sock.getsockname()[1], "pid": os.getpid()}))
        await task

    # uvloop, as ``uvicorn.run`` picks it when installed (uvicorn[standard])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


class Client:
    """One requester's keep-alive HTTP/1.1 connection with mutual TLS, requests pre-encoded.

    The cheapest client Python offers (asyncio streams, one write per request, the
    response read by its ``Content-Length``), so that on a 2-core machine the
    gateway and not its client sets the pace: httpx needed 3–5 ms of CPU per call,
    which left the gateway idle between requests.  Connects on the first request.
    """

    def __init__(self, port: int, cert: Path, key: Path, ca: Path) -> None:
        self._port = port
        self._ctx = ssl.create_default_context(cafile=str(ca))
        self._ctx.load_cert_chain(str(cert), str(key))
        self._ctx.check_hostname = False  # the certificate names the requester, not 127.0.0.1
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """``POST /attest`` with a JSON ``body``: the status code and the response body."""
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port, ssl=self._ctx)
        reader, writer = self._streams
        writer.write(
            b"POST /attest HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(head[9:12]), await reader.readexactly(length)

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def attest_body(consent: str, binding: bytes, purpose: str) -> bytes:
    """The JSON body of one request (a fresh nonce)."""
    return json.dumps(
        {
            "consent": consent,
            "subject_binding": binding.hex(),
            "nonce": os.urandom(16).hex(),
            "purpose": purpose,
        }
    ).encode()


if __name__ == "__main__":
    if len(sys.argv) != 8:
        raise SystemExit(__doc__)
    serve(*(Path(a) for a in sys.argv[1:8]))
