"""The demo's channels for people: the citizen pages and the operator's console (issue 19).

The demo lays Heihe out with its two HTTPS listeners (``[listen] http_citizen`` and
``http_mtls`` on loopback port 0: the node writes the ports it bound to its ready
file) and the development identity provider's sign-in form (``[identity]
dev_provider_key``: anyone may sign in as anyone, which is what a demo on one
machine needs and what no real node may do).  The operator ``heihe.ops`` gets a
client certificate registered with Heihe and listed in ``[operators] allowed``,
also as a PKCS#12 file a browser imports.

:func:`web_lines` says where to point a browser: the citizen pages with the way to
sign in, the console with the certificate to present, and the CA the browser must
trust.  ``huxin demo --keep`` keeps the nodes serving them until interrupted.

Invariants: nothing here prints an ID number (the sign-in form asks for one; the
demo points to the owner-only file of the resident it used); the PKCS#12 file is
owner-only and its password is printed only to the person running the demo.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from node.core._secrets import write_private
from node.demo._federation import FederationLayout

__all__ = ["OPERATOR", "WebUrls", "allow_operator", "web_lines", "web_urls"]

#: the demo's operator of Heihe: a client certificate with the operator role
OPERATOR = "heihe.ops"


@dataclass(frozen=True)
class WebUrls:
    """Where a browser reaches one region's node (from its ready file)."""

    citizen: str  # https://127.0.0.1:PORT/ — the citizen pages
    console: str  # https://127.0.0.1:PORT/console/ — the operator console (client cert)
    api: str  # https://127.0.0.1:PORT — the integrators' HTTP/JSON listener (same port)

    @property
    def sign_in(self) -> str:
        return self.citizen + "auth/dev/sign-in"


def allow_operator(layout: FederationLayout, region: str, operator: str = OPERATOR) -> Path:
    """List ``operator`` (a client certificate of ``layout``) in the region's
    ``[operators] allowed`` and write ``clients/<operator>.p12`` for a browser; returns
    that file.  The password is in ``clients/<operator>.p12.password`` (owner-only)."""
    node = layout.nodes[region]
    with node.config.open("a", encoding="utf-8") as f:
        f.write(
            f'\n[operators]\n# the operator console (docs/adr/0800)\nallowed = ["{operator}"]\n'
        )
    cert_path, key_path = layout.clients[operator]
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((layout.root / "ca" / "ca.pem").read_bytes())
    password = secrets.token_urlsafe(9)
    blob = pkcs12.serialize_key_and_certificates(
        operator.encode(),
        key,
        cert,
        [ca],
        serialization.BestAvailableEncryption(password.encode()),
    )
    p12 = cert_path.with_suffix(".p12")
    write_private(p12, blob)
    write_private(p12.with_name(p12.name + ".password"), password.encode() + b"\n")
    return p12


def web_urls(layout: FederationLayout, region: str) -> WebUrls | None:
    """The URLs of a running region node's HTTPS listeners (None: not serving them)."""
    ready = layout.nodes[region].directory / "ready.json"
    try:
        doc = json.loads(ready.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    citizen, mtls = doc.get("http_citizen"), doc.get("http_mtls")
    if not citizen or not mtls:
        return None
    return WebUrls(
        f"https://127.0.0.1:{citizen}/",
        f"https://127.0.0.1:{mtls}/console/",
        f"https://127.0.0.1:{mtls}",
    )


def web_lines(layout: FederationLayout, region: str, subject_file: Path) -> list[str]:
    """What to tell the person running the demo about the pages and the console.

    ``subject_file`` is the owner-only file holding the ID number of the resident to sign
    in as (the story's bank check writes it); the ID number itself is never printed (H6)."""
    urls = web_urls(layout, region)
    if urls is None:
        return [f"{region} serves no HTTPS listener."]
    p12 = layout.clients[OPERATOR][0].with_suffix(".p12")
    password_file = p12.with_name(p12.name + ".password")
    try:
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError:
        password = f"(in {password_file})"
    who = (
        f"the ID number in {subject_file} (a synthetic resident, owner-only file)"
        if subject_file.exists()
        else f"the ID number the story writes to {subject_file} (not written: the story"
        " stopped before the bank's check, so no resident's ID number is on this machine)"
    )
    return [
        f"Citizen pages (手机 or desktop):  {urls.citizen}",
        f"  sign in with the development identity provider at {urls.sign_in}, as {who}",
        f"Operator console:                 {urls.console}",
        f"  present the client certificate {p12} (password {password}), operator {OPERATOR}",
        f"Its integrators' HTTP/JSON API:   {urls.api}/api/v1/attestations"
        f" (`huxin request --node {urls.api}` with a client certificate {region} registered)",
        f"Your browser must trust the federation CA {layout.root / 'ca' / 'ca.pem'}"
        " (the nodes' certificates name 127.0.0.1 and localhost).",
    ]
