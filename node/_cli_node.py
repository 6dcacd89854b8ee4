"""CLI: ``huxin init`` (config, keys, certificates) and ``huxin serve --config FILE``.

``init`` creates (or reuses, with ``--ca DIR``) the federation CA, then a node
directory (see :mod:`node._init`).  ``serve`` loads the TOML, starts the node
and stops it gracefully on SIGTERM/SIGINT (health NOT_SERVING, in-flight calls
finished within ``node.grace_seconds``).  Only this module reads flags; the
environment variable ``HUXIN_KEY_PASSPHRASE`` (optional) unlocks encrypted key
files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

from ._cli import CliError, SubParsers
from ._config import ConfigError, load_config
from ._init import InitError, init_region, issue_client_cert, load_or_create_ca
from ._observe import configure_logging

__all__ = ["register"]


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(sub: SubParsers) -> None:
    p = sub.add_parser("init", help="write a node's config, keys and certificates")
    p.add_argument("--region", required=True, metavar="ID")
    p.add_argument("--scheme", required=True, metavar="ID")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--ca", type=Path, metavar="DIR", help="federation CA directory (default: OUT/../ca)"
    )
    p.add_argument("--peers", type=_csv, default=[], help="regions allowed to request (a,b)")
    p.add_argument("--sources", type=_csv, default=[], help="source identities (a,b)")
    p.add_argument(
        "--source-certs", action="store_true", help="also issue client certs for --sources"
    )
    p.add_argument("--peer-listen", default="127.0.0.1:7443", metavar="HOST:PORT")
    p.add_argument("--citizen-listen", default="127.0.0.1:7444", metavar="HOST:PORT")
    p.add_argument("--metrics-listen", default="", metavar="HOST:PORT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_init)

    p = sub.add_parser("serve", help="run a node from its TOML config")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--ready-file", type=Path, help="write the bound ports here as JSON")
    p.set_defaults(func=_serve)


def _init(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    ca_dir = args.ca or (args.out.resolve().parent / "ca")
    try:
        ca = load_or_create_ca(ca_dir, now)
        result = init_region(
            args.out,
            args.region,
            args.scheme,
            ca,
            now,
            peers=args.peers,
            sources=args.sources,
            peer_listen=args.peer_listen,
            citizen_listen=args.citizen_listen,
            metrics_listen=args.metrics_listen,
        )
        certs = []
        if args.source_certs:
            for source in args.sources:
                cert, _key = issue_client_cert(ca, source, args.out / "clients", now)
                certs.append(str(cert))
    except InitError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(json.dumps({"config": str(result.config), "ca": str(ca_dir), "client_certs": certs}))
    else:
        print(f"wrote {result.config} (CA in {ca_dir})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    configure_logging(str(config.log_file) if config.log_file else None)
    passphrase = os.environ.get("HUXIN_KEY_PASSPHRASE")
    return asyncio.run(_run(config, args.ready_file, passphrase.encode() if passphrase else None))


async def _run(config: object, ready_file: Path | None, passphrase: bytes | None) -> int:
    from ._config import NodeConfig
    from ._secrets import load_secrets
    from ._server import NodeServer

    assert isinstance(config, NodeConfig)
    try:
        secrets = load_secrets(config, passphrase)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    node = await NodeServer.create(config, secrets=secrets)
    ports = await node.start()
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"peer": ports.peer, "citizen": ports.citizen, "metrics": ports.metrics})
        )
        tmp.replace(ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
    return 0
