"""CLI: ``huxin init cert --config node.toml [--ca DIR] [--days N]`` (review5 M7).

Re-issues the node's TLS certificate (a new key, the same region id) from the
federation CA kept in ``DIR`` (``ca.pem`` + ``ca.key``; default: the ``ca``
directory next to the node directory, where ``huxin init region`` put it).
Never creates a CA: a missing one is ``CA_NOT_FOUND``.  Prints the new expiry;
a running node uses the new certificate from its next restart (see
:mod:`node._tlscert` for what is refused and how the files are written).
A federated node's certificate fingerprint is pinned in the hub's trust list
(routed calls check it, ``node._route``): the output says so and gives the new
fingerprint, for ``huxin hub register`` and a new trust list.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from keys import CertificateAuthority, KeysError, certificate_fingerprint

from ._cli import CliError, SubParsers, subgroup
from ._config import ConfigError, load_config
from ._init import CERT_DAYS
from ._tlscert import CertError, renew_certificate

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
    ca = load_ca(ca_dir)
    now = datetime.now(UTC)
    try:
        info = renew_certificate(config, ca, now, args.days)
    except CertError as exc:
        raise CliError(exc.code, str(exc)) from None
    doc = {
        "region": config.region,
        "cert": str(config.tls.cert),
        "key": str(config.tls.key),
        "ca": str(ca_dir),
        "tls_sha256": certificate_fingerprint(config.tls.cert.read_bytes()).hex(),
        **info.as_dict(now),
        "federated": config.federation is not None,
    }
    if args.json:
        print(json.dumps(doc))
        return 0
    print(
        f"renewed {config.tls.cert} for {config.region}: valid until {doc['not_after']}"
        f" ({args.days} days); restart the node to use it"
    )
    if config.federation is not None:  # routed calls check the listed fingerprint
        print(
            f"federated: the trust list pins the old certificate (sha256 {doc['tls_sha256']}"
            " is new); have the hub re-register this region (huxin hub register) and sign"
            " a new trust list, then restart"
        )
    return 0
