"""CLI: ``huxin init region|federation``, ``huxin serve --config FILE``.

``init region`` creates (or reuses, with ``--ca DIR``) the federation CA, then a node
directory (see :mod:`node.cli._init`); ``init federation`` lays out a CA, hub(s) and
regions with a signed trust list (see :mod:`node.demo._federation`); ``huxin status``
is :mod:`node.cli._status`.  ``serve`` loads the TOML, starts the node
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
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.cli._init import (
    InitError,
    check_region_arguments,
    init_region,
    issue_client_cert,
    load_or_create_ca,
)
from node.cli._main import CliError, SubParsers, subgroup
from node.cli._status import iso_time, serve_file
from node.core._config import ConfigError, NodeConfig, load_config
from node.core._observe import configure_logging, log_event, reopen_log_files
from node.federation._clients import REGISTRY_FILE
from node.rpc._workers import (
    PrimaryLock,
    WorkerInfo,
    WorkerSupervisor,
    config_digest,
    die_with_parent,
)

if TYPE_CHECKING:
    from node.federation._tlscert import CertInfo

__all__ = ["register"]


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(sub: SubParsers) -> None:
    init = subgroup(sub, "init", "write node directories: one region, or a whole federation")
    p = init.add_parser("region", help="write one node's config, keys and certificates")
    p.add_argument("--region", required=True, metavar="ID")
    p.add_argument("--scheme", required=True, metavar="ID")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--ca", type=Path, metavar="DIR", help="federation CA directory (default: OUT/../ca)"
    )
    p.add_argument(
        "--peers", type=_csv, default=[], help="standalone node: regions allowed to request (a,b)"
    )
    p.add_argument("--sources", type=_csv, default=[], help="source identities (a,b)")
    p.add_argument(
        "--population",
        type=_csv,
        default=[],
        help="population authorities: residence facts without records (a,b; docs/adr/0508)",
    )
    p.add_argument(
        "--source-certs",
        action="store_true",
        help="also issue client certs for --sources and --population",
    )
    p.add_argument(
        "--require-registry",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse records about people the population registry does not hold (H7)",
    )
    p.add_argument("--peer-listen", default="127.0.0.1:7443", metavar="HOST:PORT")
    p.add_argument("--citizen-listen", default="127.0.0.1:7444", metavar="HOST:PORT")
    p.add_argument("--metrics-listen", default="", metavar="HOST:PORT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_init)

    p = init.add_parser("federation", help="lay out a CA, hub(s) and regions with a trust list")
    p.add_argument("--regions", required=True, type=_csv, metavar="ID,ID")
    p.add_argument("--hub", required=True, metavar="ID", help="the provincial hub")
    p.add_argument(
        "--hub-peers",
        action="append",
        default=[],
        metavar="HUB=REGION+REGION",
        help="another province's hub and the regions it serves (repeatable)",
    )
    p.add_argument(
        "--scheme", action="append", default=[], metavar="REGION=SCHEME", help="default: same id"
    )
    p.add_argument(
        "--clients", type=_csv, default=[], metavar="ID,ID", help="integrator certs (hainan.bank)"
    )
    p.add_argument(
        "--sources",
        type=_csv,
        default=[],
        metavar="ORG,ORG",
        help="source departments per region: REGION.ORG may submit records (court,bank)",
    )
    p.add_argument(
        "--population",
        type=_csv,
        default=[],
        metavar="ORG,ORG",
        help="population authorities per region: REGION.ORG files residence facts (hukou)",
    )
    p.add_argument(
        "--require-registry",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="regions refuse records about people their population registry does not hold",
    )
    p.add_argument("--route", choices=("hub", "auto", "direct"), default="hub")
    p.add_argument(
        "--base-port", type=int, default=0, help="consecutive ports from N (default: free)"
    )
    p.add_argument("--sync-interval", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--push-interval", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_init_federation)

    p = sub.add_parser("serve", help="run a node from its TOML config")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--ready-file", type=Path, help="write the bound ports here as JSON")
    # internal: how the primary starts its peer-port workers (docs/adr/0312)
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--peer-port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--expect", default="", help=argparse.SUPPRESS)
    p.set_defaults(func=_serve)


def _init(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    ca_dir = args.ca or (args.out.resolve().parent / "ca")
    try:
        check_region_arguments(  # before the CA is created
            args.region, args.peers, sources=[*args.sources, *args.population],
            peer_listen=args.peer_listen,
            citizen_listen=args.citizen_listen, metrics_listen=args.metrics_listen,
        )  # fmt: skip
        ca = load_or_create_ca(ca_dir, now)
        result = init_region(
            args.out,
            args.region,
            args.scheme,
            ca,
            now,
            peers=args.peers,
            sources=args.sources,
            population=args.population,
            require_registry=args.require_registry,
            peer_listen=args.peer_listen,
            citizen_listen=args.citizen_listen,
            metrics_listen=args.metrics_listen,
        )
        certs = []
        if args.source_certs:
            for source in (*args.sources, *args.population):
                cert, _key = issue_client_cert(
                    ca, source, args.out / "clients", now, registry=args.out / REGISTRY_FILE
                )
                certs.append(str(cert))
    except InitError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(json.dumps({"config": str(result.config), "ca": str(ca_dir), "client_certs": certs}))
    else:
        print(f"wrote {result.config} (CA in {ca_dir})")
    return 0


def _init_federation(args: argparse.Namespace) -> int:
    from node.demo._federation import init_federation

    schemes: dict[str, str] = {}
    for spec in args.scheme:
        region, sep, scheme = spec.partition("=")
        if not sep or not region or not scheme:
            raise CliError("INVALID_ARGUMENT", f"--scheme {spec!r}: expected REGION=SCHEME")
        schemes[region] = scheme
    try:
        layout = init_federation(
            args.out,
            args.regions,
            args.hub,
            datetime.now(UTC),
            schemes=schemes,
            hub_peers=args.hub_peers,
            clients=args.clients,
            sources=args.sources,
            population=args.population,
            require_registry=args.require_registry,
            base_port=args.base_port,
            route=args.route,
            sync_interval=args.sync_interval,
            push_interval=args.push_interval,
        )
    except InitError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.json:
        print(layout.summary.read_text(encoding="utf-8"), end="")
        return 0
    print(f"federation in {args.out} ({layout.summary.name}):")
    print(f"  {'node':<16} {'role':<7} {'hub':<16} {'scheme':<8} {'peer port':>9} {'citizen':>8}")
    for n in layout.nodes.values():
        print(
            f"  {n.id:<16} {n.role:<7} {n.hub:<16} {n.scheme:<8} {n.peer_port:>9} {n.citizen_port:>8}"
        )
    for c, (cert, _key) in layout.clients.items():
        print(f"  client {c}: {cert}")
    print("start each node with: huxin serve --config DIR/<node>/node.toml")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    if args.worker:
        if not 0 < args.worker < config.listen.peer_workers or not args.peer_port:
            raise CliError("USAGE", "--worker is started by the primary 'huxin serve' only")
        if not args.parent or not args.expect:
            raise CliError("USAGE", "--worker needs --parent and --expect (set by the primary)")
        die_with_parent(args.parent)
        if _digest(config, args.config) != args.expect:
            raise CliError(
                "WORKER_CONFIG_CHANGED",
                "the config or key files changed since the primary started: restart the node",
            )
    configure_logging(str(config.log_file) if config.log_file else None)
    passphrase = os.environ.get("HUXIN_KEY_PASSPHRASE")
    role = (args.worker, args.peer_port, args.parent)
    return asyncio.run(
        _run(
            config, args.config, args.ready_file, passphrase.encode() if passphrase else None, role
        )
    )


def _digest(config: Any, config_path: Path) -> str:
    """What a worker must share with its primary: the config and every key file."""
    k, t = config.keys, config.tls
    files = [k.root, k.signing, k.key_set, k.storage_secret, k.seal, t.cert, t.key, t.ca]
    return config_digest(config_path.resolve(), files)


def _write_ready(ready_file: Path, doc: dict[str, Any]) -> None:
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(ready_file)


async def _run(
    config: object,
    config_path: Path,
    ready_file: Path | None,
    passphrase: bytes | None,
    role: tuple[int, int, int] = (0, 0, 0),
) -> int:
    from node.core._secrets import load_secrets

    assert isinstance(config, NodeConfig)
    try:
        secrets = load_secrets(config, passphrase)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    cert = _check_tls_certificate(secrets.tls_cert, secrets.tls_key, datetime.now(UTC))
    problem = secrets.signing_problem_at(int(time.time()))
    if problem is not None:  # it could sign nothing anyone accepts
        raise CliError(
            "NODE_KEY_EXPIRED",
            f"keys.signing: {problem} per the key set; run 'huxin keys rotate' first",
        )
    primary = None
    if not role[0]:  # the primary (workers share the node it locked)
        try:
            primary = PrimaryLock(config.database)
        except RuntimeError as exc:
            raise CliError("NODE_RUNNING", str(exc)) from None
    watch = asyncio.ensure_future(_watch_certificate(cert)) if not role[0] else None
    try:
        return await _serve_until_stopped(config, config_path, ready_file, secrets, role)
    finally:
        if watch is not None:
            watch.cancel()
        if primary is not None:
            primary.close()


# ---------------------------------------------------------------- TLS certificate


def _check_tls_certificate(cert_pem: bytes, key_pem: bytes, now: datetime) -> CertInfo:
    """Refuse to serve with an expired / not yet valid certificate or a key of another."""
    from node.federation._tlscert import (
        CertError,
        check_certificate,
        check_key_pair,
        read_certificate,
    )

    try:
        info = read_certificate(cert_pem)
        check_certificate(info, now)
        check_key_pair(cert_pem, key_pem)
    except CertError as exc:
        raise CliError(exc.code, str(exc)) from None
    return info


def _export_certificate_expiry(node: Any, cert_pem: bytes) -> None:
    from node.federation._tlscert import export_expiry, read_certificate

    export_expiry(node.ctx.metrics.registry, read_certificate(cert_pem))


async def _watch_certificate(info: CertInfo) -> None:
    """Log "tls certificate expires soon" at start and once a day while fewer than
    WARN_DAYS days are left (a node may run for months without a restart)."""
    from node.federation._tlscert import expiry_warning

    while True:
        now = datetime.now(UTC)
        fields = expiry_warning(info, now)
        if fields is not None:
            expired = now > info.not_after
            msg = "tls certificate expired" if expired else "tls certificate expires soon"
            log_event(msg, 40 if expired else 30, **fields)
        await asyncio.sleep(86_400)


def _serving_line(config: Any, doc: dict[str, Any]) -> str:
    """One line on stdout once the node serves: ports, metrics, workers."""
    host = str(config.listen.peer).rpartition(":")[0]
    parts = [f"peer {host}:{doc['peer']}", f"citizen {doc['citizen']}"]
    if doc.get("metrics"):
        parts.append(f"metrics {doc['metrics']}")
    for name in ("http_citizen", "http_mtls"):
        if doc.get(name):
            parts.append(f"{name.replace('_', ' ')} https://{host}:{doc[name]}")
    if doc.get("workers"):
        parts.append(f"{len(doc['workers']) + 1} processes (pid {doc['pid']} + workers)")
    return f"{config.role} {config.region} serving: " + ", ".join(parts) + " (SIGTERM to stop)"


async def _serve_until_stopped(
    config: Any,
    config_path: Path,
    ready_file: Path | None,
    secrets: Any,
    role: tuple[int, int, int],
) -> int:
    from node.rpc._server import ListenError, NodeServer

    worker, peer_port, parent = role
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor: WorkerSupervisor | None = None

    def reopen_logs() -> None:  # SIGHUP (logrotate's postrotate): reopen, forward to workers
        reopen_log_files()
        workers = supervisor.signal_all(signal.SIGHUP) if supervisor is not None else 0
        log_event("log file reopened (SIGHUP)", workers_signalled=workers)

    loop.add_signal_handler(signal.SIGHUP, reopen_logs)
    try:
        node = await NodeServer.create(config, secrets=secrets)
    except ConfigError as exc:  # e.g. a [mapping] table that does not verify (C3, H13)
        raise CliError(exc.code, str(exc)) from None
    _export_certificate_expiry(node, secrets.tls_cert)  # the expiry gauge
    try:
        ports = await (node.start_worker(worker, peer_port, parent) if worker else node.start())
    except BaseException as exc:
        await node.stop(0)  # closes what started, and the database (its threads)
        if isinstance(exc, ListenError):
            raise CliError("LISTEN_FAILED", str(exc)) from None
        raise
    if worker:
        if ready_file is not None:
            _write_ready(
                ready_file, {"pid": os.getpid(), "peer": ports.peer, "metrics": ports.metrics}
            )
        await stop.wait()
        await node.stop()
        return 0
    from node.http._app import HttpListenError, HttpServer

    # the HTTPS listeners beside gRPC, on this loop (docs/adr/0800; off unless configured)
    http = HttpServer(node.ctx, throttle=node.throttle, router=node.router)
    try:
        http_ports = await http.start()
    except HttpListenError as exc:
        await node.stop(0)
        raise CliError("LISTEN_FAILED", f"listen.http: {exc}") from None
    doc: dict[str, Any] = {"peer": ports.peer, "citizen": ports.citizen, "metrics": ports.metrics}
    doc.update(http_citizen=http_ports.citizen, http_mtls=http_ports.mtls)

    run_file = serve_file(config.database)  # what `huxin status` shows of the process
    run_file.parent.mkdir(parents=True, exist_ok=True)
    doc.update(pid=os.getpid(), started_at=iso_time(int(time.time())))

    def announce(workers: list[WorkerInfo]) -> None:
        doc["workers"] = [{"pid": w.pid, "metrics": w.metrics} for w in workers]
        _write_ready(run_file, doc)
        if ready_file is not None:
            _write_ready(ready_file, doc)

    if config.listen.peer_workers > 1:
        supervisor = WorkerSupervisor(
            config_path.resolve(),
            config.listen.peer_workers,
            ports.peer,
            Path(f"{config.database}.run"),
            expect=_digest(config, config_path),
            on_change=announce,
        )
        try:
            announce(await supervisor.start())
        except RuntimeError as exc:
            await http.stop()
            await node.stop()
            raise CliError("WORKER_FAILED", str(exc)) from None
    else:
        announce([])
    print(_serving_line(config, doc), flush=True)  # the ports, when port 0 was asked for
    try:
        await stop.wait()
        await http.stop()  # HTTP callers first: their calls use the database node.stop closes
        if supervisor is not None:  # workers finish their calls while the primary finishes
            await asyncio.gather(supervisor.stop(config.grace_seconds), node.stop())
        else:
            await node.stop()
    finally:
        run_file.unlink(missing_ok=True)
    return 0
