"""CLI: ``huxin init cert --config node.toml [--ca DIR] [--days N] [--next | --use-next]``.

Re-issues the node's TLS certificate (a new key, the same region id) from the
federation CA kept in ``DIR`` (``ca.pem`` + ``ca.key``; default: the ``ca``
directory next to the node directory, where ``huxin init region`` put it).
Never creates a CA: a missing one is ``CA_NOT_FOUND``.  Prints the new expiry;
a running node uses the new certificate from its next restart (see
:mod:`node.federation._tlscert` for what is refused and how the files are written).

A federated node's certificate fingerprint is pinned in the hub's trust list
and every peer refuses a certificate it does not pin (``CERTIFICATE_NOT_PINNED``,
docs/adr/0415).  So a federated renewal is staged: ``--next`` issues the next
pair beside the live one (``<file>.next``); ``huxin hub register`` pins both;
once the peers hold that trust list, ``--use-next`` switches to it (restart).
Without either flag the new pair is put in place at once (standalone nodes).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from keys import CertificateAuthority, KeysError, certificate_fingerprint
from node.cli._init import CERT_DAYS
from node.cli._main import CliError, SubParsers, subgroup
from node.core._config import ConfigError, load_config
from node.federation._tlscert import (
    CertError,
    next_paths,
    renew_certificate,
    stage_next_certificate,
    use_next_certificate,
)

__all__ = ["register"]


def register(sub: SubParsers) -> None:
    init = subgroup(sub, "init", "write node directories: one region, or a whole federation")
    p = init.add_parser(
        "cert", help="renew the node's TLS certificate from the federation CA (restart after)"
    )
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument(
        "--ca", type=Path, metavar="DIR", help="federation CA directory (default: CONFIG_DIR/../ca)"
    )
    p.add_argument("--days", type=int, default=CERT_DAYS, help=f"validity (default {CERT_DAYS})")
    step = p.add_mutually_exclusive_group()
    step.add_argument(
        "--next",
        action="store_true",
        help="issue the next certificate beside the live one (<file>.next) for the hub to pin",
    )
    step.add_argument(
        "--use-next", action="store_true", help="switch to the staged next certificate"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_renew)


def load_ca(ca_dir: Path) -> CertificateAuthority:
    """The existing CA in ``ca_dir`` (``CA_NOT_FOUND``, ``CA_INVALID``); never creates one."""
    cert, key = ca_dir / "ca.pem", ca_dir / "ca.key"
    if not (cert.is_file() and key.is_file()):
        raise CliError("CA_NOT_FOUND", f"--ca: no ca.pem and ca.key in {str(ca_dir)!r}")
    try:
        return CertificateAuthority.load(cert.read_bytes(), key.read_bytes())
    except KeysError as exc:
        raise CliError("CA_INVALID", f"--ca: {exc.code} in {str(ca_dir)!r}") from None


def _renew(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    ca_dir = args.ca or (args.config.resolve().parent.parent / "ca")
    now = datetime.now(UTC)
    written = next_paths(config)[0] if args.next else config.tls.cert
    try:
        if args.use_next:
            info = use_next_certificate(config)
        elif args.next:
            info = stage_next_certificate(config, load_ca(ca_dir), now, args.days)
        else:
            info = renew_certificate(config, load_ca(ca_dir), now, args.days)
    except CertError as exc:
        raise CliError(exc.code, str(exc)) from None
    doc = {
        "region": config.region,
        "cert": str(written),
        "key": str(next_paths(config)[1] if args.next else config.tls.key),
        "ca": str(ca_dir),
        "tls_sha256": certificate_fingerprint(written.read_bytes()).hex(),
        **info.as_dict(now),
        "federated": config.federation is not None,
        "staged": bool(args.next),
    }
    if args.json:
        print(json.dumps(doc))
        return 0
    print(_summary(config.region, doc, args))
    return 0


def _summary(region: str, doc: dict[str, object], args: argparse.Namespace) -> str:
    fp, until, federated = doc["tls_sha256"], doc["not_after"], doc["federated"]
    if args.next:
        return (
            f"staged the next certificate of {region} in {doc['cert']} (sha256 {fp}, valid"
            f" until {until}); have the hub pin it (huxin hub register, huxin hub trust-list"
            " --force), wait until the peers hold that list (huxin status), then run"
            " huxin init cert --use-next and restart the node"
        )
    head = f"{doc['cert']} of {region} is valid until {until} (sha256 {fp}); restart the node to use it"
    if args.use_next:
        return head + "; later drop the old pin (huxin hub register again)"
    if federated:  # peers accept only pinned certificates (CERTIFICATE_NOT_PINNED)
        head += (
            "\nfederated: peers refuse it until a trust list pins it (prefer --next): run"
            " huxin hub register and huxin hub trust-list --force on the hub, then restart"
        )
    return head
