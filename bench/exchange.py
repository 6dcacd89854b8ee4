"""Consented attestation exchange vs a bare grpc.aio echo, loopback mutual TLS.

Target: a real Heihe node (``huxin serve`` in its own process, SQLite file in
WAL mode) answering ``RequestAttestation`` from a Hainan-certified requester —
consent token verified, checks, score, mapping to Hainan's scheme, use +
status index + log entry committed, attestation signed — at 1 and 32
concurrent requesters on one channel.  Baseline: a bare grpc.aio server in
its own process with the same mutual TLS credentials, answering a request of
the same size with a response of the same size, measured in the same run, in
``ROUNDS`` interleaved rounds (each server a slice per round, rotating order).

Goals (issue 5): target ≥ 50% of the echo's throughput; p99 ≤ 20 ms at 32.
The table also reports CPU per request of each server process (all threads,
from /proc) and of the requester, measured over the same runs, to show where
the time goes; docs/adr/0310 explains the limits.
``python -m bench.exchange echo CERT KEY CA SIZE PORTFILE`` runs the echo server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from keys import decode_private_key
from node.cli._init import init_region, load_or_create_ca
from node.demo._testbed import (
    attestation_request,
    honour_record,
    make_id_number,
    register_clients,
    requester_channel,
    resident,
)
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import citizen_channel, identity_metadata, peer_channel
from node.rpc._identity import DevIdentityProvider

CONSENT_USES = 1000  # the node's cap per consent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(
    call: Callable[[int], Awaitable[object]], total: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


async def _echo_main(
    cert: Path, key: Path, ca: Path, size: int, port_file: Path, port: int = 0
) -> None:
    """A bare grpc.aio echo; ``port`` > 0 joins other echo processes on that port
    (grpc's default ``SO_REUSEPORT``), as the node's peer workers do."""
    payload = os.urandom(size)

    async def echo(request: bytes, context: Any) -> bytes:
        return payload

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=ca.read_bytes(),
        require_client_auth=True,
    )
    bound = server.add_secure_port(f"127.0.0.1:{port}", creds)
    await server.start()
    port_file.write_text(json.dumps({"peer": bound}))
    await server.wait_for_termination()


def _spawn(args: list[str], ready: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[0]} did not start")
        time.sleep(0.05)
    time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Node:
    """One ``huxin serve`` (primary + peer workers) with consents granted for the bench."""

    def __init__(self, proc: subprocess.Popen[bytes], ports: dict[str, Any]) -> None:
        self.proc, self.ports = proc, ports
        self.requests: list[node_pb2.AttestationRequest] = []

    def pids(self) -> list[int]:
        return [self.proc.pid, *(w["pid"] for w in self.ports.get("workers", []))]


async def _month_published(database: Path, timeout: float = 120.0) -> None:
    """Wait for the node's first monthly step: attestations carry the published month's
    grade (H3, docs/adr/0514), and the node runs it in the background after it starts."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            (done,) = conn.execute(
                "SELECT count(*) FROM monthly_runs WHERE state = 'finished'"
            ).fetchone()
        if done:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the node published no month")
        await asyncio.sleep(0.05)


async def _start_node(
    root: Path, name: str, workers: int, ca: Any, issued: dict[str, Any], needed: int
) -> _Node:
    now = datetime.now(UTC)
    init_region(root / name, "heihe", "heihe", ca, now, peers=("hainan",), sources=("court",))
    toml = root / name / "node.toml"
    text = toml.read_text().replace('metrics = ""', f'metrics = ""\npeer_workers = {workers}')
    toml.write_text(text)
    register_clients(toml, issued["court"])  # a node accepts registered client certificates
    proc, ports = _spawn(
        ["node", "serve", "--config", str(toml), "--ready-file", str(root / f"{name}.ready")],
        root / f"{name}.ready",
    )
    node = _Node(proc, ports)
    requester, court = issued["hainan"], issued["court"]
    target = f"127.0.0.1:{ports['peer']}"
    ch = peer_channel(target, ca.cert_pem, court.cert_pem, court.key_pem)
    cch = citizen_channel(f"127.0.0.1:{ports['citizen']}", ca.cert_pem)
    pch = peer_channel(target, ca.cert_pem, requester.cert_pem, requester.key_pem)
    try:
        source = node_pb2_grpc.SourceServiceStub(ch)
        citizen = node_pb2_grpc.CitizenServiceStub(cch)
        people = [make_id_number(n) for n in range(40)]
        await source.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="bench",
                records=[honour_record(f"r{i}", p) for i, p in enumerate(people)],
                subjects=[resident(p) for p in people],
            )
        )
        idp = DevIdentityProvider(
            decode_private_key((root / name / "keys/dev-idp.key").read_bytes())
        )
        for i in range(needed // CONSENT_USES + 1):
            who = people[i % len(people)]
            md = identity_metadata(idp.assertion(who, "heihe", int(time.time())))
            tok = await citizen.GrantConsent(
                node_pb2.GrantConsentRequest(
                    audience="hainan",
                    purpose="heihe/credit-loans",
                    scope=node_pb2.CONSENT_SCOPE_GRADE,
                    max_uses=CONSENT_USES,
                ),
                metadata=md,
            )
            node.requests += [
                attestation_request(tok, who, "heihe/credit-loans", target_scheme="hainan")
                for _ in range(CONSENT_USES)
            ]
        del node.requests[needed:]
        await _month_published(root / name / "node.db")
        # one request checked end to end before timing: the reply is a signed attestation
        sample = await node_pb2_grpc.PeerServiceStub(pch).RequestAttestation(node.requests.pop())
        if not sample.signed_attestation:
            raise RuntimeError("the node returned no attestation")
    finally:
        for c in (ch, cch, pch):
            await c.close(None)
    return node


Row = tuple[str, int, float, float, float, float]
Call = Callable[[int], Awaitable[object]]


def _echo_driver(calls: list[Any], payload: bytes) -> Call:
    async def echo(i: int) -> object:
        return await calls[i % len(calls)](payload)

    return echo


def _attest_driver(stubs: list[Any], node: _Node) -> Call:
    async def attest(i: int) -> object:
        return await stubs[i % len(stubs)].RequestAttestation(node.requests.pop())

    return attest


ROUNDS = 5  # each server measured in 5 interleaved slices (machine drift hits all alike)


class _Tally:
    """One server at one concurrency, summed over the rounds."""

    def __init__(self) -> None:
        self.elapsed, self.calls, self.srv_cpu, self.req_cpu = 0.0, 0, 0.0, 0.0
        self.latencies: list[float] = []
        self.rates: list[float] = []  # req/s of each round


async def _slice(fn: Call, pids: list[int], conc: int, total: int, tally: _Tally) -> None:
    """``total`` calls by ``conc`` requesters; CPU of every server pid and of this process."""
    cpu0 = (sum(_cpu_seconds(p) for p in pids), time.process_time())
    elapsed, lat = await _drive(fn, total, conc)
    cpu1 = (sum(_cpu_seconds(p) for p in pids), time.process_time())
    tally.elapsed += elapsed
    tally.calls += total
    tally.srv_cpu += cpu1[0] - cpu0[0]
    tally.req_cpu += cpu1[1] - cpu0[1]
    tally.latencies += lat
    tally.rates.append(total / elapsed)


async def _timed_rounds(
    targets: list[tuple[str, Call, list[int]]],
    conc: int,
    total: int,
    cpu: dict[tuple[str, int], tuple[float, float]],
    spread: dict[tuple[str, int], tuple[float, float]],
) -> list[Row]:
    """Warm every server up, then ``ROUNDS`` rounds of ``total / ROUNDS`` calls each,
    the servers in a rotating order; pooled throughput and latency per server."""
    tallies = {name: _Tally() for name, _, _ in targets}
    for _, fn, _ in targets:
        await _drive(fn, 100, conc)  # warm-up (and connect)
    per_round, rest = divmod(total, ROUNDS)
    assert rest == 0, f"{total} calls do not split into {ROUNDS} equal rounds"
    for r in range(ROUNDS):
        for name, fn, pids in targets[r % len(targets) :] + targets[: r % len(targets)]:
            await _slice(fn, pids, conc, per_round, tallies[name])
    rows: list[Row] = []
    for name, t in tallies.items():
        cpu[(name, conc)] = (t.srv_cpu / t.calls * 1e6, t.req_cpu / t.calls * 1e6)
        spread[(name, conc)] = (min(t.rates), max(t.rates))
        rows.append(
            (
                name,
                conc,
                t.calls / t.elapsed,
                statistics.median(t.latencies) * 1000,
                _pct(t.latencies, 0.99) * 1000,
                float(t.calls),
            )
        )
    return rows


async def _measure(
    root: Path,
    quick: bool,
    workers: int,
    cpu: dict[tuple[str, int], tuple[float, float]],
    spread: dict[tuple[str, int], tuple[float, float]],
) -> tuple[list[Row], tuple[int, int]]:
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    issued = {"hainan": ca.issue("hainan", now), "court": ca.issue("court", now)}
    requester = issued["hainan"]
    sizes = {1: 400 if quick else 3000, 32: 1000 if quick else 10000}
    needed = sum(sizes.values()) + 100 * len(sizes) + 300
    procs: list[subprocess.Popen[bytes]] = []
    chans: list[aio.Channel] = []
    try:
        nodes: dict[str, _Node] = {}
        for label, count in (("node ×1", 1), (f"node ×{workers}", workers)):
            nodes[label] = await _start_node(root, f"heihe{count}", count, ca, issued, needed)
            procs.append(nodes[label].proc)
        first = next(iter(nodes.values()))
        req_size = first.requests[0].ByteSize()
        probe = requester_channel(first.ports["peer"], requester, ca.cert_pem, -1)
        chans.append(probe)
        resp_size = (
            await node_pb2_grpc.PeerServiceStub(probe).RequestAttestation(first.requests.pop())
        ).ByteSize()

        for fname, data in (("cert", requester.cert_pem), ("key", requester.key_pem)):
            (root / f"echo.{fname}").write_bytes(data)
        echoes: dict[str, tuple[int, list[int]]] = {}  # label -> (port, pids)
        for label, count in (("echo ×1", 1), (f"echo ×{workers}", workers)):
            port, pids = 0, []
            for i in range(count):
                ready = root / f"echo-{count}-{i}.ready"
                proc, ports = _spawn(
                    [
                        "bench.exchange",
                        "echo",
                        str(root / "echo.cert"),
                        str(root / "echo.key"),
                        str(root / "ca/ca.pem"),
                        str(resp_size),
                        str(ready),
                        str(port),
                    ],
                    ready,
                )
                procs.append(proc)
                port = ports["peer"]
                pids.append(proc.pid)
            echoes[label] = (port, pids)
        echo_payload = os.urandom(req_size)

        rows: list[Row] = []
        for conc, total in sizes.items():
            # every requester has its own connection, for the echo and the node alike
            def conns(port: int, n: int = conc) -> list[aio.Channel]:
                out = [requester_channel(port, requester, ca.cert_pem, i) for i in range(n)]
                chans.extend(out)
                return out

            targets: list[tuple[str, Call, list[int]]] = []
            for label, (port, pids) in echoes.items():
                calls = [c.unary_unary("/bench.Echo/Call", None, None) for c in conns(port)]
                targets.append((label, _echo_driver(calls, echo_payload), pids))
            for label, node in nodes.items():
                stubs = [node_pb2_grpc.PeerServiceStub(c) for c in conns(node.ports["peer"])]
                targets.append((label, _attest_driver(stubs, node), node.pids()))
            rows += await _timed_rounds(targets, conc, total, cpu, spread)
        return rows, (req_size, resp_size)
    finally:
        for c in chans:
            await c.close(None)
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def default_workers() -> int:
    """Peer workers for the measured deployment: one per core (at least 2, at most 4)."""
    return max(2, min(4, os.cpu_count() or 2))


def run(args: argparse.Namespace) -> str:
    workers = int(getattr(args, "workers", 0) or default_workers())
    with tempfile.TemporaryDirectory() as tmp:
        cpu: dict[tuple[str, int], tuple[float, float]] = {}
        spread: dict[tuple[str, int], tuple[float, float]] = {}
        rows, (req_size, resp_size) = asyncio.run(
            _measure(Path(tmp), bool(getattr(args, "quick", False)), workers, cpu, spread)
        )
    data = {(r[0], r[1]): r for r in rows}
    e1, eN, n1, nN = "echo ×1", f"echo ×{workers}", "node ×1", f"node ×{workers}"
    lines = [
        "## Exchange: consented attestation requests vs bare grpc.aio echo",
        "",
        "Loopback, mutual TLS (P-256 certificates from the federation CA). Four servers, "
        f"each in its own process(es), measured in one run, in {ROUNDS} interleaved rounds "
        "(every server takes one slice of the requests per round, in a rotating order, so "
        "the machine's drift during the run reaches all four alike; throughput and "
        "latencies pooled over the rounds): a bare grpc.aio echo in one "
        f"process (echo ×1) and in {workers} processes sharing its port with SO_REUSEPORT "
        f"(echo ×{workers}); `huxin serve` with `peer_workers = 1` (node ×1) and "
        f"`peer_workers = {workers}` (node ×{workers}: the primary plus workers sharing the "
        "peer port, docs/adr/0312). The requesters run in this process, each on its own "
        f"connection, the same for every server; request {req_size} B, response "
        f"{resp_size} B for all. Each attestation: consent token checked, grade scored and "
        "mapped to Hainan's scheme, use + status index + transparency-log entry committed "
        "to SQLite (WAL, one writer at a time across processes, concurrent requests "
        "group-committed), then Ed25519-signed. Ratios compare like with like (node ×1 to "
        f"echo ×1, node ×{workers} to echo ×{workers}); the goals are judged for "
        f"node ×{workers} against the FASTER of the two echoes.",
        "",
        f"| concurrency | requests | {e1} req/s | {eN} req/s | {n1} req/s (vs {e1}) "
        f"| {nN} req/s (vs {eN}) | {nN} vs faster echo | p50 / p99 ms: {e1} · {eN} · {n1} "
        f"· {nN} | goals ({nN}) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for conc in (1, 32):
        a, b, c, d = (data[(k, conc)] for k in (e1, eN, n1, nN))
        best = max(a[2], b[2])
        ratio = d[2] / best
        goals = f"ratio ≥ 50%: {'met' if ratio >= 0.5 else 'not met'}"
        if conc == 32:
            goals += f"; p99 ≤ 20 ms: {'met' if d[4] <= 20 else 'not met'}"
        lat = " · ".join(f"{r[3]:.2f} / {r[4]:.2f}" for r in (a, b, c, d))
        lines.append(
            f"| {conc} | {int(d[5]):,} | {a[2]:,.0f} | {b[2]:,.0f} | {c[2]:,.0f} "
            f"({c[2] / a[2]:.0%}) | {d[2]:,.0f} ({d[2] / b[2]:.0%}) | {ratio:.0%} | {lat} "
            f"| {goals} |"
        )
    lines += [
        "",
        "CPU per request (all threads of all the server's processes, from /proc; same runs). "
        "The requester is the same code for every server.",
        "",
        f"| concurrency | {e1} µs/req | {eN} µs/req | {n1} µs/req | {nN} µs/req "
        f"| {n1} / {e1} | requester µs/req ({e1} · {eN} · {n1} · {nN}) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for conc in (1, 32):
        srv = [cpu[(k, conc)][0] for k in (e1, eN, n1, nN)]
        req = " · ".join(f"{cpu[(k, conc)][1]:,.0f}" for k in (e1, eN, n1, nN))
        ratio_cpu = f"{srv[2] / srv[0]:.2f}x" if srv[0] > 0 else "n/a"
        lines.append(
            f"| {conc} | {srv[0]:,.0f} | {srv[1]:,.0f} | {srv[2]:,.0f} | {srv[3]:,.0f} "
            f"| {ratio_cpu} | {req} |"
        )
    lines += [
        "",
        f"Throughput of each round (lowest – highest of the {ROUNDS}), to show the noise.",
        "",
        f"| concurrency | {e1} | {eN} | {n1} | {nN} |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for conc in (1, 32):
        cells = " | ".join(
            f"{spread[(k, conc)][0]:,.0f} – {spread[(k, conc)][1]:,.0f}" for k in (e1, eN, n1, nN)
        )
        lines.append(f"| {conc} | {cells} |")
    best32 = max(data[(e1, 32)], data[(eN, 32)], key=lambda r: r[2])
    d32 = data[(nN, 32)]
    lines += [
        "",
        "32 requesters in a closed loop: mean latency = 32 / throughput (Little's law), so "
        f"p99 ≤ 20 ms needs more than {32 / 0.020:,.0f} req/s; this run's faster echo gives "
        f"{best32[2]:,.0f} req/s at p99 {best32[4]:.1f} ms and {nN} {d32[2]:,.0f} req/s "
        f"(32 / throughput = {32 / d32[2] * 1000:.1f} ms). See docs/adr/0310 and 0312.",
    ]
    load = os.getloadavg()[0]
    lines += ["", f"1-minute load average at the end: {load:.2f} on {os.cpu_count()} cores."]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "echo":
        _c, _k, _ca, _size, _pf, _port = sys.argv[2:]
        asyncio.run(_echo_main(Path(_c), Path(_k), Path(_ca), int(_size), Path(_pf), int(_port)))
    else:
        print(run(argparse.Namespace(quick="--quick" in sys.argv)))
