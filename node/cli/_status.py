"""CLI: ``huxin status --config FILE`` — what an operator checks on a node.

Read-only: the node's database (trust list, peers and sync state, push cursor,
hub registry, the monthly run's schedule and progress, H3), its certificate and
signing key's validity, and the serving
process as the primary described itself in ``<db>.run/serve.json`` (written when
``huxin serve`` serves, removed when it stops; a dead pid reads as not running).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.cli._main import CliError, SubParsers
from node.core._config import ConfigError, NodeConfig, load_config
from node.store import Connection

__all__ = ["iso_time", "node_status", "register", "render_status", "serve_file"]


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "status", help="whether a node serves; its keys, peers, sync state and trust list"
    )
    p.add_argument("--config", required=True, type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)


def iso_time(t: int | None) -> str:
    return "-" if not t else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _key_material(config: NodeConfig, now: int) -> dict[str, Any]:
    """``tls``: the node certificate's validity; ``signing_key``: the configured signing
    key's validity as certified by the key set (verified under the root key), or
    ``error`` when the files cannot be read (an encrypted key without
    ``HUXIN_KEY_PASSPHRASE``, ...)."""
    from node.core._secrets import load_secrets
    from node.federation._tlscert import CertError, read_certificate

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
        "not_before": iso_time(info.not_before),
        "not_after": iso_time(info.not_after),
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
    """The serving process as it described itself, if it is still alive."""
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


MONTHLY_RUNS_SHOWN = 3


def _monthly(conn: Connection, config: NodeConfig, now: int) -> dict[str, Any]:
    """H3: when the node runs its month, what it publishes, and its latest runs' progress
    (``monthly_runs`` with the chunks of each run, docs/adr/0514)."""
    from node.monthly import (
        MonthKey,
        due_period,
        monthly_runs,
        newest_published,
        next_due,
        run_progress,
    )

    sched = config.schedule
    if config.role != "region":
        return {"scheduled": False, "why": f"role {config.role} scores nobody"}
    at = datetime.fromtimestamp(now, UTC)
    following, when = next_due(at, sched.monthly_day, sched.monthly_hour)
    published = newest_published(conn, config.scheme, at.date())
    runs = []
    for r in monthly_runs(conn, MONTHLY_RUNS_SHOWN):
        done, chunks, scored = run_progress(conn, MonthKey(r.period, r.scheme_id, r.scheme_version))
        runs.append(
            {
                "period": r.period,
                "scheme": f"{r.scheme_id}@{r.scheme_version}",
                "state": r.state,
                "attempts": r.attempts,
                "people": r.people,
                "people_done": scored,
                "chunks_done": done,
                "chunks": chunks,
                "started_at": r.started_at,
                "finished_at": r.finished_at or "",
                "failed_at": r.failed_at or "",
                "error": r.error,
            }
        )
    return {
        "scheduled": True,
        "day": sched.monthly_day,
        "hour": sched.monthly_hour,
        "due_period": due_period(at, sched.monthly_day, sched.monthly_hour),
        "next_period": following,
        "next_due": when.isoformat(timespec="seconds"),
        "published": None
        if published is None
        else {"period": published[0], "scheme_version": published[1], "finished_at": published[2]},
        "runs": runs,
    }


def node_status(config: NodeConfig, now: int) -> dict[str, Any]:
    """What ``huxin status`` shows, read from the node's database (read-only)."""
    from keys import KeysError, VerificationError, load_trust
    from node.store import StorageError, connect
    from node.store import _status_report as report

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
        "monthly": None,
        "process": _process(config),
        **_key_material(config, now),
    }
    try:
        conn = connect(config.storage, readonly=True)
    except StorageError:
        doc["error"] = "DB_NOT_FOUND"
        return doc
    try:
        tl = report.newest_trust_list(conn)
        regions: dict[str, Any] = {}
        if tl:
            issuer, version, expires, accepted, source, env = tl[0]
            doc["trust_list"] = {
                "issuer": issuer,
                "version": version,
                "expires_at": iso_time(expires),
                "expired": now >= expires,
                "accepted_at": iso_time(accepted),
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
            {"at": iso_time(at), "source": src, "version": v, "reason": why}
            for at, src, v, why in report.trust_refusals(conn)
        ]
        sync = {r[0]: r[1:] for r in report.sync_peers(conn)}
        material: dict[str, dict[str, str]] = {}
        for region, item, version in report.peer_material(conn):
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
                    "status_list": iso_time(int(material.get(name, {}).get("status_list", 0))),
                    "last_sync": iso_time(s[1]) if s else "-",
                    "failures": s[2] if s else 0,
                    "next_attempt": iso_time(s[3]) if s else "-",
                    "last_error": s[4] if s else "",
                }
            )
        seq = report.outbox_seq(conn)
        for hub, cursor, last, error, failures in report.push_states(conn):
            doc["push"].append(
                {
                    "hub": hub,
                    "cursor": cursor,
                    "outbox_seq": seq[0][0] if seq else 0,
                    "last_push": iso_time(last),
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
        doc["monthly"] = _monthly(conn, config, now)
        doc["hub_regions"] = [
            {"region": r, "cursor": c, "last_push": iso_time(t), "witnessed_size": w}
            for r, c, t, w in report.hub_cursors(conn)
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
    lines += render_monthly(doc.get("monthly"), serving=bool(proc.get("running")))
    if doc["hub_regions"]:
        lines.append("")
        lines.append(f"{'region (hub)':<16} {'cursor':>6} {'witnessed':>9} last push")
        for r in doc["hub_regions"]:
            lines.append(
                f"{r['region']:<16} {r['cursor']:>6} {r['witnessed_size']:>9} {r['last_push']}"
            )
    return "\n".join(lines)


def render_monthly(m: dict[str, Any] | None, *, serving: bool) -> list[str]:
    """The monthly run's lines of ``huxin status`` (H3); a run left ``running`` by a node
    that stopped resumes at its next start."""
    if m is None:
        return []
    if not m["scheduled"]:
        return ["", f"monthly run: not scheduled ({m['why']})"]
    pub = m["published"]
    published = "nothing yet" if pub is None else f"{pub['period']} ({pub['scheme_version']})"
    lines = [
        "",
        f"monthly run: day {m['day']} at {m['hour']:02d}:00 UTC; published {published};"
        f" next {m['next_period']} due {m['next_due']}",
    ]
    for r in m["runs"]:
        progress = (
            f"{r['chunks_done']}/{r['chunks']} chunks, {r['people_done']:,} of"
            f" {r['people']:,} people"
        )
        if r["state"] == "finished":
            state = f"finished {r['finished_at']}: {progress}"
        elif r["state"] == "failed":
            state = f"FAILED {r['failed_at']}: {r['error']} ({progress})"
        elif serving:
            state = f"running since {r['started_at']}: {progress}"
        else:
            state = f"interrupted (resumes when the node serves again): {progress}"
        lines.append(f"  {r['period']} {r['scheme']} {state} (attempt {r['attempts']})")
    return lines


def _status(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None
    doc = node_status(config, int(datetime.now(UTC).timestamp()))
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else render_status(doc), end="\n")
    return 0
