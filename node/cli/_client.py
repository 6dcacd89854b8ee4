"""CLI: ``huxin client issue|revoke|list`` — integrator and department certificates.

* ``huxin client issue ID --config node.toml [--ca DIR] [--out DIR] [--days N]``
  issues a certificate for ``ID`` from the federation CA (default: ``ca/`` next
  to the node directory, as ``huxin init federation`` lays it out) and registers
  it in the node's client registry (``[clients] registry``) BEFORE writing
  ``OUT/ID.pem`` and ``OUT/ID.key`` (default ``OUT``: ``clients/`` next to the node
  directory).  A running node (every process) accepts it at the next call.
  An existing pair in ``OUT`` is kept as ``<file>.prev``; its certificate stays
  registered until it is revoked.
* ``huxin client revoke ID --config node.toml [--sha256 HEX]`` revokes every
  certificate of ``ID`` in force (or only the one with that fingerprint); the
  running node refuses its next call (``UNAUTHENTICATED CLIENT_REVOKED``).
* ``huxin client register --config node.toml --cert FILE.pem`` registers a
  certificate the federation CA issued earlier (e.g. by ``huxin init federation
  --clients`` before the registry existed): its identity is read from the
  certificate, which must be signed by the node's CA (``[tls] ca``), valid now
  and of a client of this node; else ``CERTIFICATE_INVALID``,
  ``CERTIFICATE_NOT_FROM_CA``, ``CERTIFICATE_EXPIRED``, ``CLIENT_NOT_OURS`` or
  ``CLIENT_EXISTS``.  Upgrading a node from before the registry: register every
  client certificate in use, or issue new ones (docs/adr/0415, "Upgrading").
* ``huxin client list --config node.toml`` prints the registry.

``ID`` must be a client of that node: ``<region>.<org>`` of the node's region, or
an identity in its ``[sources] allowed`` (a department also needs that entry to
submit records), else ``CLIENT_NOT_OURS``.  Errors print ``error: CODE: message``
(exit 2); docs/adr/0415.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from keys import KeysError, region_of_certificate
from node.cli._cert import load_ca
from node.cli._init import CERT_DAYS, InitError, issue_client_cert
from node.cli._main import CliError, SubParsers, subgroup
from node.core._config import ConfigError, NodeConfig, check_id, load_config
from node.federation._clients import (
    ClientEntry,
    RegistryFileError,
    add_client,
    client_entry,
    read_registry,
    revoke_client,
)
from node.federation._tlscert import MAX_CERT_DAYS

__all__ = ["register", "register_certificate"]


def register(sub: SubParsers) -> None:
    client = subgroup(sub, "client", "integrator and department certificates of a node")
    p = client.add_parser("issue", help="issue and register a client certificate")
    p.add_argument("id", metavar="ID", help="e.g. hainan.bank or heihe.court")
    _common(p)
    p.add_argument("--ca", type=Path, metavar="DIR", help="CA directory (default CONFIG_DIR/../ca)")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where ID.pem/ID.key go (CONFIG_DIR/../clients)"
    )
    p.add_argument("--days", type=int, default=CERT_DAYS, help=f"validity (default {CERT_DAYS})")
    p.set_defaults(func=_issue)
    p = client.add_parser("revoke", help="revoke a client's certificates (at once)")
    p.add_argument("id", metavar="ID")
    _common(p)
    p.add_argument("--sha256", metavar="HEX", help="revoke only the certificate with this hash")
    p.set_defaults(func=_revoke)
    p = client.add_parser(
        "register", help="register a client certificate the federation CA issued earlier"
    )
    _common(p)
    p.add_argument("--cert", required=True, type=Path, metavar="FILE", help="PEM certificate")
    p.set_defaults(func=_register)
    p = client.add_parser("list", help="the node's client registry")
    _common(p)
    p.set_defaults(func=_list)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, metavar="FILE", help="the node's config")
    p.add_argument("--json", action="store_true")


def _config(args: argparse.Namespace) -> NodeConfig:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _ours(config: NodeConfig, identity: str) -> str:
    try:
        check_id(identity, "ID")
    except ConfigError as exc:
        raise CliError("INVALID_ARGUMENT", str(exc)) from None
    if identity not in config.sources and not identity.startswith(config.region + "."):
        raise CliError(
            "CLIENT_NOT_OURS",
            f"{identity!r} is not a client of {config.region}: use {config.region}.<org>,"
            " or an identity in its [sources] allowed",
        )
    return identity


def _issue(args: argparse.Namespace) -> int:
    config = _config(args)
    identity = _ours(config, args.id)
    if not 1 <= args.days <= MAX_CERT_DAYS:
        raise CliError("INVALID_ARGUMENT", f"--days: must be 1 to {MAX_CERT_DAYS}")
    base = args.config.resolve().parent.parent
    ca = load_ca(args.ca or base / "ca")
    out: Path = args.out or base / "clients"
    for path in (out / f"{identity}.pem", out / f"{identity}.key"):
        if path.exists():  # the pair in use stays usable until it is revoked
            os.replace(path, f"{path}.prev")
    try:
        cert, key = issue_client_cert(
            ca, identity, out, datetime.now(UTC), registry=config.clients.registry, days=args.days
        )
    except (InitError, RegistryFileError) as exc:
        raise CliError(exc.code, str(exc)) from None
    entry = client_entry(identity, cert.read_bytes())
    doc = {"cert": str(cert), "key": str(key), **entry.as_json()}
    if args.json:
        print(json.dumps(doc))
    else:
        print(
            f"issued {cert} for {identity} (sha256 {doc['sha256']}), registered with"
            f" {config.region}; the key is in {key}: hand both to the client"
        )
    return 0


def _cert_from_ca(cert_pem: bytes, ca_pem: bytes, now: datetime) -> str:
    """The identity of ``cert_pem`` once it is shown to be the CA's and valid at ``now``."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        identity = region_of_certificate(cert)
    except (ValueError, KeysError) as exc:
        raise CliError("CERTIFICATE_INVALID", f"not a client certificate: {exc}") from None
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        if cert.issuer != ca.subject:
            raise ValueError("issuer")
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CliError(
            "CERTIFICATE_NOT_FROM_CA", "the certificate was not issued by this federation's CA"
        ) from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CliError("CERTIFICATE_EXPIRED", "the certificate is outside its validity period")
    return identity


def register_certificate(config: NodeConfig, cert_pem: bytes, now: datetime) -> ClientEntry:
    """Register an existing client certificate with ``config``'s node.

    The certificate must be issued by the node's federation CA (``[tls] ca``),
    valid at ``now`` and name a client of this node; raises :class:`CliError`
    with a stable code otherwise, or ``CLIENT_EXISTS`` if it is registered."""
    try:
        ca_pem = config.tls.ca.read_bytes()
    except OSError as exc:
        raise CliError("CA_UNREADABLE", f"{config.tls.ca}: {exc.strerror}") from None
    identity = _ours(config, _cert_from_ca(cert_pem, ca_pem, now))
    entry = client_entry(identity, cert_pem)
    try:
        add_client(config.clients.registry, entry)
    except RegistryFileError as exc:
        raise CliError(exc.code, str(exc)) from None
    return entry


def _register(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        cert_pem = args.cert.read_bytes()
    except OSError as exc:
        raise CliError("CERTIFICATE_INVALID", f"{args.cert}: {exc.strerror}") from None
    entry = register_certificate(config, cert_pem, datetime.now(UTC))
    if args.json:
        print(json.dumps(entry.as_json()))
    else:
        print(
            f"registered {entry.identity} (sha256 {entry.sha256.hex()}) with {config.region};"
            " its calls are accepted from now on"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    config = _config(args)
    identity = _ours(config, args.id)
    try:
        sha = bytes.fromhex(args.sha256) if args.sha256 else None
    except ValueError:
        raise CliError("INVALID_ARGUMENT", "--sha256: must be hex") from None
    if sha is not None and len(sha) != 32:
        raise CliError("INVALID_ARGUMENT", "--sha256: must be 32 bytes")
    now = int(datetime.now(UTC).timestamp())
    try:
        done = revoke_client(config.clients.registry, identity, now, sha)
    except RegistryFileError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(json.dumps({"id": identity, "revoked": [e.as_json() for e in done]}))
    else:
        for e in done:
            print(f"revoked {identity} (sha256 {e.sha256.hex()}); its next call is refused")
    return 0


def _list(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        entries = read_registry(config.clients.registry)
    except RegistryFileError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(json.dumps({"registry": str(config.clients.registry),
                          "clients": [e.as_json() for e in entries]}))  # fmt: skip
        return 0
    for e in entries:
        state = "revoked" if e.revoked_at else "in force"
        until = datetime.fromtimestamp(e.not_after, UTC).date().isoformat()
        print(f"{e.identity:<32} {e.sha256.hex()[:16]}…  until {until}  {state}")
    return 0
