"""Hub ingest of a monthly snapshot push vs the bare batched gRPC transport of the same bytes.

Target: the Heilongjiang hub (``huxin serve`` with ``role = "hub"`` in its own
process, SQLite in WAL mode) receiving a Heihe monthly snapshot — N persons in
signed Merkle batches of 10,000 attestations — over loopback mutual TLS through
``HubService/Push`` (client streams of 10 batches).  For each batch the hub
checks the checkpoint signature (key certified by Heihe's root in the
registry), recomputes the RFC 9162 root over every leaf, parses and checks
every attestation (issuer, audience, period, scheme, pseudonym), then stores
the batch, its leaves (indexed by province pseudonym), a signed receipt and the
cursor advance in one transaction.  Baseline: a bare grpc.aio server in its
own process with the same mTLS credentials consuming the SAME serialised
stream messages (no parsing, no storage), measured in the same run.

Goal (issue 6): ≥ 50,000 attestations verified and stored per second.

The same push is measured in the same run against the hub on PostgreSQL (issue 18:
a throwaway local server, :mod:`bench._pg`; each batch's leaves go in with one
binary COPY and are indexed by pseudonym); target ≥ 100,000 verified attestations/s.
``python -m bench.sync sink CERT KEY CA PORTFILE`` runs the bare sink server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from bench import _pg
from keys import decode_private_key, issue_batch
from keys.pb.v1 import attestation_pb2
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main as huxin
from node.pb.v1 import hub_pb2
from node.rpc._client import peer_channel
from scoring import load_scheme

HUB = "heilongjiang"
BATCH = 10_000
PER_STREAM = 10
MAX_BYTES = 8 * 1024 * 1024
PUSH = "/huxin.v1.HubService/Push"
SINK = "/bench.Sink/Push"


async def _sink_main(cert: Path, key: Path, ca: Path, port_file: Path) -> None:
    async def push(requests: AsyncIterator[bytes], context: Any) -> bytes:
        n = 0
        async for _ in requests:
            n += 1
        return b"\x08" + bytes([n])

    handler = grpc.method_handlers_generic_handler(
        "bench.Sink", {"Push": grpc.stream_unary_rpc_method_handler(push)}
    )
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_BYTES),
            ("grpc.max_send_message_length", MAX_BYTES),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    port_file.write_text(json.dumps({"peer": port}))
    await server.wait_for_termination()


def _spawn(args: list[str], ready: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{args[0]} did not start (exit {proc.returncode})")
        time.sleep(0.05)
    time.sleep(0.05)
    return proc


def _items(region_dir: Path, people: int) -> list[bytes]:
    """The month's push: serialised PushItems of signed batches (built once, sent twice)."""
    signing = decode_private_key((region_dir / "keys/signing.key").read_bytes())
    scheme = load_scheme("heihe")
    now = int(time.time())
    template = attestation_pb2.Attestation(
        issuer_region="heihe", scheme_id=scheme.id, scheme_version=scheme.version,
        period="2026-10", model_version=scheme.key, issued_at=now, expires_at=now + 62 * 86_400,
        audience=HUB, purpose="provincial-push", disclosure="statutory",
    )  # fmt: skip
    grades = [t.id for t in scheme.tiers]
    items: list[bytes] = []
    m = attestation_pb2.Attestation()
    for number, start in enumerate(range(0, people, BATCH)):
        batch_id = f"heihe/2026-10/{scheme.key}/r1/b{number:05d}"
        payloads = []
        for i in range(start, min(people, start + BATCH)):
            m.CopyFrom(template)
            m.attestation_id = f"{batch_id}/{i - start}"
            m.grade = grades[i % len(grades)]
            m.score = 600 + i % 300
            m.subject_binding = os.urandom(32)
            payloads.append(m.SerializeToString(deterministic=True))
        batch = issue_batch(payloads, signing, "heihe", now)
        item = hub_pb2.PushItem(seq=number + 1, event_id=batch_id, kind="snapshot_batch")
        b = item.snapshot_batch
        b.batch_id, b.period, b.payload_type = batch_id, "2026-10", batch.payload_type
        b.scheme_id, b.scheme_version = scheme.id, scheme.version
        b.payloads.extend(payloads)
        b.checkpoint.CopyFrom(batch.checkpoint.to_proto())
        items.append(item.SerializeToString())
    return items


async def _push_all(channel: aio.Channel, method: str, items: list[bytes]) -> float:
    call = channel.stream_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    started = time.perf_counter()
    for i in range(0, len(items), PER_STREAM):
        chunk = items[i : i + PER_STREAM]

        async def gen(chunk: list[bytes] = chunk) -> AsyncIterator[bytes]:
            for x in chunk:
                yield x

        await call(gen(), timeout=600)
    return time.perf_counter() - started


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(hub_dir: Path, url: str | None) -> tuple[int, int]:
    """(leaves held, events) at the hub, read with the backend's own driver."""
    query = (
        "SELECT (SELECT coalesce(sum(present), 0) FROM hub_batches),"
        " (SELECT count(*) FROM hub_events)"
    )
    if url is None:
        import sqlite3

        conn = sqlite3.connect(hub_dir / "node.db")
        row = conn.execute(query).fetchone()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as pconn:
            row = pconn.execute(query).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _measure(root: Path, people: int, pg: Any = None) -> dict[str, float]:
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    init_region(root / "heihe", "heihe", "heihe", ca, now)
    hub_dir = root / HUB
    init_region(hub_dir, HUB, "heihe", ca, now, role="hub")
    cfg = hub_dir / "node.toml"
    text = cfg.read_text().replace(
        "max_message_bytes = 4194304", f"max_message_bytes = {MAX_BYTES}"
    )
    url = _pg.fresh_database(pg, "hub") if pg is not None else None
    storage = _pg.storage_toml(url) if url else ""
    cfg.write_text(text + f"\n[hub]\nmax_items_per_push = {PER_STREAM}\n" + storage)
    huxin(["hub", "register", "--config", str(cfg), "--region-dir", str(root / "heihe")])
    t0 = time.perf_counter()
    items = _items(root / "heihe", people)
    build = time.perf_counter() - t0
    size = sum(len(x) for x in items)
    cert, key, ca_pem = (root / "heihe/tls/node.pem", root / "heihe/tls/node.key",
                         root / "heihe/tls/ca.pem")  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_spawn(["node", "serve", "--config", str(cfg), "--ready-file",
                             str(root / "hub.ready")], root / "hub.ready"))  # fmt: skip
        procs.append(_spawn(["bench.sync", "sink", str(cert), str(key), str(ca_pem),
                             str(root / "sink.ready")], root / "sink.ready"))  # fmt: skip
        hub_port = json.loads((root / "hub.ready").read_text())["peer"]
        sink_port = json.loads((root / "sink.ready").read_text())["peer"]
        creds = (ca.cert_pem, cert.read_bytes(), key.read_bytes())
        bare_ch = peer_channel(f"127.0.0.1:{sink_port}", *creds, max_bytes=MAX_BYTES)
        hub_ch = peer_channel(f"127.0.0.1:{hub_port}", *creds, max_bytes=MAX_BYTES)
        await _push_all(bare_ch, SINK, items[:1])  # warm both connections
        bare = await _push_all(bare_ch, SINK, items)
        hub_cpu0 = _proc_cpu(procs[0].pid)
        db_cpu0 = _pg.server_cpu(pg) if pg is not None else 0.0
        hub_s = await _push_all(hub_ch, PUSH, items)
        hub_cpu = _proc_cpu(procs[0].pid) - hub_cpu0
        db_cpu = _pg.server_cpu(pg) - db_cpu0 if pg is not None else 0.0
        await bare_ch.close(None)
        await hub_ch.close(None)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
    stored, receipts = _stored(hub_dir, url)
    if stored != people or receipts != len(items):
        raise RuntimeError(f"hub stored {stored} leaves / {receipts} receipts, expected {people}")
    return {"people": people, "batches": len(items), "bytes": size, "bare": bare, "hub": hub_s,
            "build": build, "hub_cpu": hub_cpu, "db_cpu": db_cpu}  # fmt: skip


def run(args: argparse.Namespace) -> str:
    people = 50_000 if getattr(args, "quick", False) else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(_measure(Path(tmp), people))
    pg_row = ""
    if not getattr(args, "sqlite_only", False):
        with tempfile.TemporaryDirectory() as tmp, _pg.pg_server() as pg:
            p = asyncio.run(_measure(Path(tmp), people, pg))
        pg_rate = p["people"] / p["hub"]
        sqlite_rate = r["people"] / r["hub"]
        pg_row = (
            f"| hub Push on PostgreSQL: verified + stored | {p['hub']:.2f} | {pg_rate:,.0f}"
            f" | {pg_rate / (p['people'] / p['bare']):.0%} |"
            f" ≥ 100,000/s (issue 18): {'met' if pg_rate >= 100_000 else 'not met'};"
            f" {pg_rate / sqlite_rate:.2f}x SQLite's |"
        )
        cpu_rows = [
            "",
            "| CPU per 1,000 attestations | hub process | database server |",
            "| --- | ---: | ---: |",
            f"| SQLite | {r['hub_cpu'] / r['people'] * 1000 * 1000:.0f} ms | (in the hub) |",
            f"| PostgreSQL | {p['hub_cpu'] / p['people'] * 1000 * 1000:.0f} ms"
            f" | {p['db_cpu'] / p['people'] * 1000 * 1000:.0f} ms |",
        ]
    bare_rate, hub_rate = r["people"] / r["bare"], r["people"] / r["hub"]
    goal = "met" if hub_rate >= 50_000 else "not met"
    lines = [
        "## Sync: hub ingest of a monthly snapshot push vs bare batched gRPC transport",
        "",
        f"Loopback, mutual TLS; {int(r['people']):,} attestations in {int(r['batches'])} signed "
        f"Merkle batches of {BATCH:,} ({r['bytes'] / 1e6:,.0f} MB of serialised PushItems, "
        f"built and signed once in {r['build']:.1f} s), pushed as client streams of "
        f"{PER_STREAM} batches. Hub: `huxin serve` (role hub) in its own process verifies each "
        "batch (checkpoint signature by a registry-certified key, RFC 9162 root over every "
        "leaf, every attestation parsed and checked) and stores batch + leaves + signed "
        "receipt + cursor in one SQLite transaction. Bare: a grpc.aio sink in its own process "
        "reading the same messages.",
        "",
        "| transport | seconds | attestations/s | ratio | goal ≥ 50,000/s |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| bare gRPC stream (same bytes) | {r['bare']:.2f} | {bare_rate:,.0f} | 100% | |",
        f"| hub Push: verified + stored | {r['hub']:.2f} | {hub_rate:,.0f} "
        f"| {hub_rate / bare_rate:.0%} | {goal} |",
        *([pg_row, *cpu_rows] if pg_row else []),
        "",
        f"1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "sink":
        _c, _k, _ca, _pf = sys.argv[2:]
        asyncio.run(_sink_main(Path(_c), Path(_k), Path(_ca), Path(_pf)))
    else:
        print(run(argparse.Namespace(quick="--quick" in sys.argv)))
