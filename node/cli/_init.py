"""Lay out a working node directory (``huxin init region``) or a whole federation
(``huxin init federation``, :mod:`node.demo._federation`).

``init_region`` writes, under ``out``::

    node.toml                  the config (paths relative to it)
    tls/ca.pem                 the federation CA certificate (trust root for mTLS)
    tls/node.pem, node.key     this node's certificate (region id in the SAN) and key
    keys/root.key              region root key (key file; offline in production)
    keys/signing.key           current signing key, certified by keys/keyset.bin
    keys/keyset.bin            KeySet envelope signed by the root key
    keys/storage.secret        HMAC secret of subject keys (hex)
    keys/seal.key              AES-256 key for sealed ID numbers (hex)
    keys/dev-idp.key           development identity provider key (demo only)

Invariants: secret files are mode 0600; existing files are never overwritten
(``INIT_EXISTS``); ids and addresses are checked as the config loader checks
them, before anything is written (``INVALID_ARGUMENT`` naming the flag); the
CA is created once per federation (``ca/``) and reused for every node, so nodes
trust each other's certificates; ``now`` is passed in.  A node from ``init
region`` has no hub and no province key: its monthly run is signed all the same
(``node.monthly._snapshots.signer_from_config``, H3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from keys import CertificateAuthority, KeyPair, KeySet, encode_private_key
from node.core._config import ConfigError, check_address, check_id
from node.core._errors import HuxinError
from node.core._secrets import write_hex, write_private
from node.federation._clients import add_client, client_entry
from scoring import list_schemes

__all__ = [
    "InitError",
    "InitResult",
    "check_region_arguments",
    "init_region",
    "issue_client_cert",
    "load_or_create_ca",
]

SIGNING_KEY_DAYS = 365
CERT_DAYS = 90


class InitError(HuxinError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class InitResult:
    config: Path
    region: str
    dev_idp_key: Path


def check_region_arguments(
    region: str,
    peers: Sequence[str],
    *,
    sources: Sequence[str],
    peer_listen: str,
    citizen_listen: str,
    metrics_listen: str,
) -> None:
    """What the written config would refuse at load, refused before anything is
    written, naming the ``huxin init region`` flag."""
    try:
        check_id(region, "--region")
        for flag, ids in (("--peers", peers), ("--sources", sources)):
            for i in ids:
                check_id(i, flag)
        check_address(peer_listen, "--peer-listen")
        check_address(citizen_listen, "--citizen-listen")
        if metrics_listen:
            check_address(metrics_listen, "--metrics-listen")
    except ConfigError as exc:
        raise InitError("INVALID_ARGUMENT", str(exc)) from None


def load_or_create_ca(
    ca_dir: Path, now: datetime, name: str = "huxin-dev-ca"
) -> CertificateAuthority:
    """The federation CA kept in ``ca_dir`` (``ca.pem`` + ``ca.key``), created if absent."""
    cert, key = ca_dir / "ca.pem", ca_dir / "ca.key"
    if cert.exists() and key.exists():
        return CertificateAuthority.load(cert.read_bytes(), key.read_bytes())
    ca = CertificateAuthority.create(name, now)
    ca_dir.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(ca.cert_pem)
    write_private(key, ca.key_pem())
    return ca


def issue_client_cert(
    ca: CertificateAuthority,
    identity: str,
    out: Path,
    now: datetime,
    *,
    registry: Path | None = None,
    days: int = CERT_DAYS,
) -> tuple[Path, Path]:
    """A client certificate for a source department or requester ``identity``,
    registered in the client ``registry`` of the node that accepts it (ADR 0415)."""
    nc = ca.issue(identity, now, days=days)
    cert, key = out / f"{identity}.pem", out / f"{identity}.key"
    out.mkdir(parents=True, exist_ok=True)
    if registry is not None:  # registered first: a certificate never works unlisted
        add_client(registry, client_entry(identity, nc.cert_pem))
    cert.write_bytes(nc.cert_pem)
    write_private(key, nc.key_pem)
    return cert, key


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def init_region(
    out: Path,
    region: str,
    scheme: str,
    ca: CertificateAuthority,
    now: datetime,
    *,
    peers: Sequence[str] = (),
    sources: Sequence[str] = (),
    population: Sequence[str] = (),
    require_registry: bool = False,
    peer_listen: str = "127.0.0.1:0",
    citizen_listen: str = "127.0.0.1:0",
    metrics_listen: str = "",
    role: str = "region",
    extra_toml: str = "",
    http_listen: tuple[str, str] = ("", ""),
    dev_sign_in: bool = False,
) -> InitResult:
    """One node directory; ``extra_toml`` is appended to its config (federation sections).

    ``population`` are the population authorities (``[sources] population``);
    ``require_registry`` makes record intake refuse people the registry does not
    hold (docs/adr/0508): ``huxin init region`` turns it on for new nodes."""
    if scheme not in list_schemes():
        raise InitError("UNKNOWN_SCHEME", f"unknown scheme {scheme!r}")
    check_region_arguments(
        region, peers, sources=(*sources, *population), peer_listen=peer_listen,
        citizen_listen=citizen_listen, metrics_listen=metrics_listen,
    )  # fmt: skip
    config = out / "node.toml"
    if config.exists():
        raise InitError("INIT_EXISTS", f"{str(config)!r} already exists")
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls").mkdir(exist_ok=True)
    (out / "keys").mkdir(exist_ok=True)
    nc = ca.issue(region, now, days=CERT_DAYS)
    (out / "tls" / "ca.pem").write_bytes(ca.cert_pem)
    (out / "tls" / "node.pem").write_bytes(nc.cert_pem)
    write_private(out / "tls" / "node.key", nc.key_pem)
    root, signing, idp = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    key_set = KeySet.new(region, root.public_key, now).add_key(
        signing.public_key, now - timedelta(minutes=5), now + timedelta(days=SIGNING_KEY_DAYS)
    )
    write_private(out / "keys" / "root.key", encode_private_key(root))
    write_private(out / "keys" / "signing.key", encode_private_key(signing))
    (out / "keys" / "keyset.bin").write_bytes(key_set.sign(root, now).to_bytes())
    write_hex(out / "keys" / "storage.secret", KeyPair.generate().seed)
    write_hex(out / "keys" / "seal.key", KeyPair.generate().seed)
    write_private(out / "keys" / "dev-idp.key", encode_private_key(idp))
    config.write_text(
        f"""# Huxin node {region} (scheme {scheme}); written by `huxin init`.
[node]
region = "{region}"
scheme = "{scheme}"
role = "{role}"
database = "node.db"
log_file = "node.log"

[listen]
peer = "{peer_listen}"
citizen = "{citizen_listen}"
metrics = "{metrics_listen}"
# peer_workers = 2  # processes sharing the peer port: about one per core (docs/adr/0312)
# peer_connection_age_seconds = 600  # with workers: peer connections re-spread (0 = never)
# HTTPS (docs/adr/0800): citizen API, pages and trust material; integrators and the console
http_citizen = "{http_listen[0]}"
http_mtls = "{http_listen[1]}"

[tls]
cert = "tls/node.pem"
key = "tls/node.key"
ca = "tls/ca.pem"

[keys]
root = "keys/root.key"
signing = "keys/signing.key"
key_set = "keys/keyset.bin"
storage_secret = "keys/storage.secret"
seal = "keys/seal.key"

[identity]
issuer = "dev-idp"
# development identity provider (keys/dev-idp.key); replace with the real one
public_keys = ["{idp.public_key.hex()}"]
# the development sign-in form /auth/dev/sign-in (demo only: anyone may sign in as anyone)
{"" if dev_sign_in else "# "}dev_provider_key = "keys/dev-idp.key"

[consent]
max_validity_days = 90
default_max_uses = 10
# per citizen (docs/adr/0324): grants per rolling hour / minute, active consents
# grants_per_hour = 30
# grant_burst = 20
# max_active_consents = 100

[limits]
max_message_bytes = 4194304
max_concurrent_per_peer = 64
attestation_ttl_seconds = 600

[peers]
allowed = {_toml_list(peers)}

[sources]
allowed = {_toml_list(sources)}
# population authorities (docs/adr/0508): residence facts without records
population = {_toml_list(population)}
# records only about people the registry holds, adults in scope (H7)
require_registry = {"true" if require_registry else "false"}
"""
        + extra_toml,
        encoding="utf-8",
    )
    return InitResult(config, region, out / "keys" / "dev-idp.key")
