"""A region served by a real ``huxin serve`` with its HTTPS listeners, and HTTPS clients.

:func:`http_region` initialises a region (``huxin init`` layout) with both HTTPS
listeners on loopback port 0 and the development sign-in, registers an integrator
(``heihe.bank``) and an operator (``heihe.ops``, ``[operators] allowed``) with the
client registry, starts the node as a child process and seeds one citizen's record
through the gRPC SourceService; :class:`HttpRegion` gives TLS contexts (the
federation CA, with or without a client certificate), fresh identity assertions
(each is accepted once) and row counts (nothing written by a refusal).
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from keys import CertificateAuthority, NodeCertificate, decode_private_key
from node.cli._client import register_certificate
from node.cli._init import init_region, load_or_create_ca
from node.core._config import load_config
from node.demo._testbed import ServeProcess, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import peer_channel
from node.rpc._identity import DevIdentityProvider
from tests.support.bad_inputs import SEED_RECORD

__all__ = ["CITIZEN", "TABLES", "HttpRegion", "http_region"]

CITIZEN = make_id_number(811)
TABLES = (
    "records",
    "subjects",
    "consents",
    "notifications",
    "log_entries",
    "objections",
    "supplements",
    "repair_applications",
)


@dataclass
class HttpRegion:
    root: Path
    directory: Path
    ca: CertificateAuthority
    proc: ServeProcess
    idp: DevIdentityProvider
    certs: dict[str, NodeCertificate]

    @property
    def citizen_url(self) -> str:
        return f"https://127.0.0.1:{self.proc.ports['http_citizen']}"

    @property
    def mtls_url(self) -> str:
        return f"https://127.0.0.1:{self.proc.ports['http_mtls']}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "tls" / "ca.pem"

    def tls(self, client: str | None = None) -> ssl.SSLContext:
        """Verifies the node against the federation CA; presents ``client``'s certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client is not None:
            cert = self.certs[client]
            folder = self.root / "clients"
            folder.mkdir(exist_ok=True)
            (folder / f"{client}.pem").write_bytes(cert.cert_pem)
            (folder / f"{client}.key").write_bytes(cert.key_pem)
            context.load_cert_chain(folder / f"{client}.pem", folder / f"{client}.key")
        return context

    def assertion(self, id_number: str = CITIZEN, audience: str = "heihe") -> str:
        """A fresh identity assertion, base64 (each is accepted once)."""
        blob = self.idp.assertion(id_number, audience, int(time.time()))
        return base64.b64encode(blob).decode()

    def bearer(self, id_number: str = CITIZEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.assertion(id_number)}"}

    def counts(self) -> dict[str, int]:
        db = self.directory / "node.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

    @contextlib.asynccontextmanager
    async def client(self, cert: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        connector = aiohttp.TCPConnector(ssl=self.tls(cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            yield session

    async def submit(self, batch: str, id_number: str, record_id: str) -> None:
        """A record about ``id_number`` from the court, over gRPC (the source's channel)."""
        court = self.certs["court"]
        channel = peer_channel(
            f"127.0.0.1:{self.proc.ports['peer']}", self.ca.cert_pem, court.cert_pem, court.key_pem
        )
        try:
            await node_pb2_grpc.SourceServiceStub(channel).SubmitRecords(
                node_pb2.SubmitRecordsRequest(
                    batch_id=batch,
                    records=[honour_record(record_id, id_number)],
                    subjects=[resident(id_number)],
                )
            )
        finally:
            await channel.close(None)


@contextlib.contextmanager
def http_region(root: Path, listen: str = "", limits: str = "") -> Iterator[HttpRegion]:
    """Start the region (see the module docstring); stop it at the end.  ``listen`` and
    ``limits`` are lines added to the config's ``[listen]`` and ``[limits]`` tables."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    directory = root / "heihe"
    init_region(
        directory, "heihe", "heihe", ca, now,
        peers=("hainan",), sources=("court",),
        http_listen=("127.0.0.1:0", "127.0.0.1:0"), dev_sign_in=True,
        extra_toml='\n[operators]\nallowed = ["heihe.ops"]\n',
    )  # fmt: skip
    toml = directory / "node.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace("[listen]\n", f"[listen]\n{listen}\n", 1)
    toml.write_text(text.replace("[limits]\n", f"[limits]\n{limits}\n", 1), encoding="utf-8")
    config = load_config(toml)
    certs = {
        who: ca.issue(who, now)
        for who in ("court", "hainan", "heihe.bank", "heihe.ops", "heihe.stranger")
    }
    for who in ("court", "heihe.bank", "heihe.ops"):
        register_certificate(config, certs[who].cert_pem, now)
    idp = DevIdentityProvider(decode_private_key((directory / "keys/dev-idp.key").read_bytes()))
    proc = ServeProcess(directory / "node.toml")
    try:
        yield HttpRegion(root, directory, ca, proc, idp, certs)
    finally:
        proc.stop()


def seed(region: HttpRegion) -> Any:
    """The citizen's first record (:data:`tests.support.bad_inputs.SEED_RECORD`)."""
    return region.submit("seed", CITIZEN, SEED_RECORD)
