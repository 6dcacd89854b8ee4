"""CLI: ``huxin init region|federation``, ``huxin serve --config FILE``, ``huxin status``.

``init region`` creates (or reuses, with ``--ca DIR``) the federation CA, then a node
directory (see :mod:`node._init`); ``init federation`` lays out a CA, hub(s) and
regions with a signed trust list (see :mod:`node._federation`); ``status``
reads a node's database and prints its peers, sync state, push cursor and
trust list (see :mod:`node._node_status`).  ``serve`` loads the TOML, starts the node
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
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cli import CliError, SubParsers, subgroup
from ._config import ConfigError, NodeConfig, load_config
from ._init import (
    InitError,
    check_region_arguments,
    init_region,
    issue_client_cert,
    load_or_create_ca,
)
from ._observe import configure_logging, log_event, reopen_log_files
from ._workers import (
    PrimaryLock,
    WorkerInfo,
    WorkerSupervisor,
    config_digest,
    die_with_parent,
)

if TYPE_CHECKING:
    from ._tlscert import CertInfo

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
        "--source-certs", action="store_true", help="also issue client certs for --sources"
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

    p = sub.add_parser("status", help="a node's peers, sync state, push cursor and trust list")
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)


def _init(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    ca_dir = args.ca or (args.out.resolve().parent / "ca")
    try:
        check_region_arguments(  # before the CA is created (review5 L1)
            args.region, args.peers, sources=args.sources, peer_listen=args.peer_listen,
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


def _init_federation(args: argparse.Namespace) -> int:
    from ._federation import init_federation

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


def _iso(t: int | None) -> str:
    return "-" if not t else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Rows of ``sql``, or none if the table does not exist (yet)."""
    try:
        return list(conn.execute(sql, params).fetchall())
    except sqlite3.OperationalError:
        return []


def _key_material(config: NodeConfig, now: int) -> dict[str, Any]:
    """``tls``: the node certificate's validity; ``signing_key``: the configured signing
    key's validity as certified by the key set (verified under the root key), or
    ``error`` when the files cannot be read (an encrypted key without
    ``HUXIN_KEY_PASSPHRASE``, ...) — review5 M7."""
    from ._secrets import load_secrets
    from ._tlscert import CertError, read_certificate

    at = datetime.fromtimestamp(now, UTC)
    out: dict[str, Any] = {}
    try:
        out["tls"] = {"cert": str(config.tls.cert), **read_certificate(
            config.tls.cert.read_bytes()).as_dict(at)}  # fmt: skip
    except (OSError, CertError) as exc:
        out["tls"] = {"cert": str(config.tls.cert), "error": getattr(exc, "code", "UNREADABLE")}
    passphrase = os.environ.get("HUXIN_KEY_PASSPHRASE")
    try:
        secrets = load_secrets(config, passphrase.encode() if passphrase else None)
    except (ConfigError, OSError) as exc:
        out["signing_key"] = {"error": f"{getattr(exc, 'field', 'keys')}: {type(exc).__name__}"}
        return out
    info = secrets.key_set.find(secrets.signing.key_id)
    assert info is not None  # load_secrets checked that the key set certifies it
    problem = info.problem_at(now)
    out["signing_key"] = {
        "key_id": info.key_id,
        "key_set_version": secrets.key_set.version,
        "not_before": _iso(info.not_before),
        "not_after": _iso(info.not_after),
        "days_left": (info.not_after - now) // 86_400,
        "state": {"KEY_REVOKED": "REVOKED", "KEY_NOT_VALID": "NOT VALID"}.get(
            problem or "", "valid"
        ),
    }
    return out


def serve_file(database: Path) -> Path:
    """Where a running ``huxin serve`` primary describes itself (pid, ports, workers)."""
    return Path(f"{database}.run") / "serve.json"


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"serve" in cmdline


def _process(config: NodeConfig) -> dict[str, Any]:
    """The serving process as it described itself, if it is still alive (review5 L5)."""
    try:
        doc = json.loads(serve_file(config.database).read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"running": False}
    if not _alive(pid):
        return {"running": False, "stale_pid": pid}
    workers = [w for w in doc.get("workers", []) if isinstance(w, dict)]
    return {
        "running": True,
        "pid": pid,
        "started_at": doc.get("started_at", ""),
        "peer": doc.get("peer"),
        "citizen": doc.get("citizen"),
        "metrics": doc.get("metrics"),
        "workers": [
            {"pid": w.get("pid"), "alive": _alive(int(w.get("pid") or 0))} for w in workers
        ],
    }


def node_status(config: NodeConfig, now: int) -> dict[str, Any]:
    """What ``huxin status`` shows, read from the node's database (read-only)."""
    from keys import KeysError, VerificationError, load_trust

    from ._storage import StorageError, connect

    fed = config.federation
    doc: dict[str, Any] = {
        "region": config.region,
        "role": config.role,
        "hub": fed.hub if fed else "",
        "hub_endpoint": fed.hub_endpoint if fed else "",
        "route": fed.route if fed else "static",
        "trust_list": None,
        "peers": [],
        "push": [],
        "hub_regions": [],
        "trust_refusals": [],
        "process": _process(config),
        **_key_material(config, now),
    }
    try:
        conn = connect(config.database, readonly=True)
    except StorageError:
        doc["error"] = "DB_NOT_FOUND"
        return doc
    try:
        tl = _rows(
            conn,
            "SELECT issuer, version, expires_at, accepted_at, source, envelope FROM trust_lists"
            " ORDER BY version DESC LIMIT 1",
        )
        regions: dict[str, Any] = {}
        if tl:
            issuer, version, expires, accepted, source, env = tl[0]
            doc["trust_list"] = {
                "issuer": issuer,
                "version": version,
                "expires_at": _iso(expires),
                "expired": now >= expires,
                "accepted_at": _iso(accepted),
                "source": source,
            }
            if fed is not None:
                try:
                    regions = dict(
                        load_trust(bytes(env), fed.hub_key, now, allow_stale=True).regions
                    )
                except (VerificationError, KeysError):
                    doc["trust_list"]["verifies"] = False
        elif fed is None:
            doc["trust_list"] = {"static_peers": list(config.peers)}
        doc["trust_refusals"] = [
            {"at": _iso(at), "source": src, "version": v, "reason": why}
            for at, src, v, why in _rows(
                conn,
                "SELECT at, source, version, reason FROM trust_refusals ORDER BY id DESC LIMIT 5",
            )
        ]
        sync = {
            r[0]: r[1:]
            for r in _rows(
                conn,
                "SELECT peer, last_attempt, last_success, failures, next_attempt, last_error"
                " FROM sync_peers",
            )
        }
        material: dict[str, dict[str, str]] = {}
        for region, item, version in _rows(conn, "SELECT region, item, version FROM peer_material"):
            material.setdefault(region, {})[item] = version
        names = sorted(set(regions) | set(sync) | ({fed.hub} if fed and fed.hub else set()))
        for name in names:
            if name == config.region:
                continue
            r = regions.get(name)
            s = sync.get(name)
            doc["peers"].append(
                {
                    "peer": name,
                    "listed": r is not None,
                    "endpoints": list(r.endpoints) if r else [],
                    "key_set_version": material.get(name, {}).get(
                        "key_set", str(r.keys.version) if r else "-"
                    ),
                    "status_list": _iso(int(material.get(name, {}).get("status_list", 0))),
                    "last_sync": _iso(s[1]) if s else "-",
                    "failures": s[2] if s else 0,
                    "next_attempt": _iso(s[3]) if s else "-",
                    "last_error": s[4] if s else "",
                }
            )
        seq = _rows(conn, "SELECT COALESCE(MAX(seq), 0) FROM outbox")
        for hub, cursor, last, error, failures in _rows(
            conn, "SELECT hub, cursor, last_push_at, last_error, failures FROM push_state"
        ):
            doc["push"].append(
                {
                    "hub": hub,
                    "cursor": cursor,
                    "outbox_seq": seq[0][0] if seq else 0,
                    "last_push": _iso(last),
                    "failures": failures,
                    "last_error": error,
                }
            )
        if not doc["push"] and seq and config.role != "hub":
            doc["push"].append(
                {
                    "hub": doc["hub"],
                    "cursor": 0,
                    "outbox_seq": seq[0][0],
                    "last_push": "-",
                    "failures": 0,
                    "last_error": "",
                }
            )
        doc["hub_regions"] = [
            {"region": r, "cursor": c, "last_push": _iso(t), "witnessed_size": w}
            for r, c, t, w in _rows(
                conn,
                "SELECT region, cursor, last_push_at, witnessed_size FROM hub_cursors ORDER BY region",
            )
        ]
    finally:
        conn.close()
    return doc


def render_status(doc: dict[str, Any]) -> str:
    lines = [
        f"node {doc['region']} (role {doc['role']}, hub {doc['hub'] or '-'}, route {doc['route']})"
    ]
    proc = doc.get("process", {})
    if proc.get("running"):
        alive = [w for w in proc["workers"] if w["alive"]]
        lines.append(
            f"serving: pid {proc['pid']} since {proc['started_at']}, peer port {proc['peer']},"
            f" citizen port {proc['citizen']}, metrics {proc['metrics'] or '-'}, workers"
            f" {len(alive)}/{len(proc['workers'])} alive"
        )
    else:
        lines.append("serving: not running")
    tl = doc["trust_list"]
    if tl is None:
        lines.append("trust list: NONE — every peer is refused until one is fetched")
    elif "static_peers" in tl:
        lines.append(
            f"trust list: none (standalone; static peers {', '.join(tl['static_peers']) or '-'})"
        )
    else:
        state = "EXPIRED" if tl["expired"] else "valid"
        lines.append(
            f"trust list: {tl['issuer']} v{tl['version']}, expires {tl['expires_at']} ({state}),"
            f" accepted {tl['accepted_at']} from {tl['source']}"
        )
    for r in doc["trust_refusals"]:
        lines.append(
            f"  refused list v{r['version']} from {r['source']} at {r['at']}: {r['reason']}"
        )
    tls, sk = doc.get("tls", {}), doc.get("signing_key", {})
    if "error" in tls:
        lines.append(f"tls certificate: {tls['cert']}: {tls['error']}")
    elif tls:
        hint = "" if tls["state"] == "valid" else "; renew: huxin init cert --config FILE"
        lines.append(
            f"tls certificate: valid until {tls['not_after']} ({tls['state']},"
            f" {tls['days_left']} days left){hint}"
        )
    if "error" in sk:
        lines.append(f"signing key: cannot read ({sk['error']})")
    elif sk:
        lines.append(
            f"signing key: {sk['key_id']} (key set v{sk['key_set_version']}), valid"
            f" {sk['not_before']} to {sk['not_after']} ({sk['state']}, {sk['days_left']} days left)"
        )
    lines.append("")
    lines.append(f"{'peer':<16} {'listed':<6} {'key set':>7} {'last sync':<25} {'fail':>4} error")
    for p in doc["peers"]:
        lines.append(
            f"{p['peer']:<16} {'yes' if p['listed'] else 'NO':<6} {p['key_set_version']:>7}"
            f" {p['last_sync']:<25} {p['failures']:>4} {p['last_error'] or '-'}"
        )
    if doc["push"]:
        lines.append("")
        lines.append(f"{'push to':<16} {'cursor':>6} {'outbox':>6} {'last push':<25} error")
        for p in doc["push"]:
            lines.append(
                f"{p['hub']:<16} {p['cursor']:>6} {p['outbox_seq']:>6} {p['last_push']:<25}"
                f" {p['last_error'] or '-'}"
            )
    if doc["hub_regions"]:
        lines.append("")
        lines.append(f"{'region (hub)':<16} {'cursor':>6} {'witnessed':>9} last push")
        for r in doc["hub_regions"]:
            lines.append(
                f"{r['region']:<16} {r['cursor']:>6} {r['witnessed_size']:>9} {r['last_push']}"
            )
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    doc = node_status(config, int(datetime.now(UTC).timestamp()))
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render_status(doc), end="\n")
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
    from ._config import NodeConfig
    from ._secrets import load_secrets

    assert isinstance(config, NodeConfig)
    try:
        secrets = load_secrets(config, passphrase)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    cert = _check_tls_certificate(secrets.tls_cert, secrets.tls_key, datetime.now(UTC))  # M7
    problem = secrets.signing_problem_at(int(time.time()))
    if problem is not None:  # it could sign nothing anyone accepts (review5 M10)
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


# ---------------------------------------------------------------- TLS certificate (review5 M7)


def _check_tls_certificate(cert_pem: bytes, key_pem: bytes, now: datetime) -> CertInfo:
    """Refuse to serve with an expired / not yet valid certificate or a key of another."""
    from ._tlscert import CertError, check_certificate, check_key_pair, read_certificate

    try:
        info = read_certificate(cert_pem)
        check_certificate(info, now)
        check_key_pair(cert_pem, key_pem)
    except CertError as exc:
        raise CliError(exc.code, str(exc)) from None
    return info


def _export_certificate_expiry(node: Any, cert_pem: bytes) -> None:
    from ._tlscert import export_expiry, read_certificate

    export_expiry(node.ctx.metrics.registry, read_certificate(cert_pem))


async def _watch_certificate(info: CertInfo) -> None:
    """Log "tls certificate expires soon" at start and once a day while fewer than
    WARN_DAYS days are left (a node may run for months without a restart)."""
    from ._tlscert import expiry_warning

    while True:
        now = datetime.now(UTC)
        fields = expiry_warning(info, now)
        if fields is not None:
            expired = now > info.not_after
            msg = "tls certificate expired" if expired else "tls certificate expires soon"
            log_event(msg, 40 if expired else 30, **fields)
        await asyncio.sleep(86_400)


def _serving_line(config: Any, doc: dict[str, Any]) -> str:
    """One line on stdout once the node serves (review5 L5): ports, metrics, workers."""
    host = str(config.listen.peer).rpartition(":")[0]
    parts = [f"peer {host}:{doc['peer']}", f"citizen {doc['citizen']}"]
    if doc.get("metrics"):
        parts.append(f"metrics {doc['metrics']}")
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
    from ._server import ListenError, NodeServer

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
    node = await NodeServer.create(config, secrets=secrets)
    _export_certificate_expiry(node, secrets.tls_cert)  # review5 M7: the expiry gauge
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
    doc: dict[str, Any] = {"peer": ports.peer, "citizen": ports.citizen, "metrics": ports.metrics}

    run_file = serve_file(config.database)  # what `huxin status` shows of the process
    run_file.parent.mkdir(parents=True, exist_ok=True)
    doc.update(pid=os.getpid(), started_at=_iso(int(time.time())))

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
            await node.stop()
            raise CliError("WORKER_FAILED", str(exc)) from None
    else:
        announce([])
    print(_serving_line(config, doc), flush=True)  # the ports, when port 0 was asked for
    try:
        await stop.wait()
        if supervisor is not None:  # workers finish their calls while the primary finishes
            await asyncio.gather(supervisor.stop(config.grace_seconds), node.stop())
        else:
            await node.stop()
    finally:
        run_file.unlink(missing_ok=True)
    return 0
