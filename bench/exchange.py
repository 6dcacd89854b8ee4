"""Consented attestation exchange vs a bare grpc.aio echo, loopback mutual TLS.

Target: a real Heihe node (``huxin serve`` in its own process, SQLite file in
WAL mode) answering ``RequestAttestation`` from a Hainan-certified requester —
consent token verified, checks, score, mapping to Hainan's scheme, use +
status index + log entry committed, attestation signed — at 1 and 32
concurrent requesters on one channel.  Baseline: a bare grpc.aio server in
its own process with the same mutual TLS credentials, answering a request of
the same size with a response of the same size, measured in the same run.

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
from node._client import citizen_channel, identity_metadata, peer_channel
from node._identity import DevIdentityProvider
from node._init import init_region, load_or_create_ca
from node._testbed import attestation_request, honour_record, make_id_number, resident
from node.pb.v1 import node_pb2, node_pb2_grpc

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


async def _echo_main(cert: Path, key: Path, ca: Path, size: int, port_file: Path) -> None:
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
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    port_file.write_text(json.dumps({"peer": port}))
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


async def _measure(
    root: Path, quick: bool, cpu: dict[tuple[str, int], tuple[float, float]]
) -> list[tuple[str, int, float, float, float, float]]:
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    init_region(root / "heihe", "heihe", "heihe", ca, now, peers=("hainan",), sources=("court",))
    requester, court = ca.issue("hainan", now), ca.issue("court", now)
    node_proc, ports = _spawn(
        [
            "node",
            "serve",
            "--config",
            str(root / "heihe/node.toml"),
            "--ready-file",
            str(root / "node.ready"),
        ],
        root / "node.ready",
    )
    procs = [node_proc]
    chans: list[aio.Channel] = []
    try:
        target = f"127.0.0.1:{ports['peer']}"
        ch = peer_channel(target, ca.cert_pem, court.cert_pem, court.key_pem)
        pch = peer_channel(target, ca.cert_pem, requester.cert_pem, requester.key_pem)
        cch = citizen_channel(f"127.0.0.1:{ports['citizen']}", ca.cert_pem)
        chans += [ch, pch, cch]
        source, peer = node_pb2_grpc.SourceServiceStub(ch), node_pb2_grpc.PeerServiceStub(pch)
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
            decode_private_key((root / "heihe/keys/dev-idp.key").read_bytes())
        )
        sizes = {1: 400 if quick else 3000, 32: 1000 if quick else 10000}
        needed = sum(sizes.values()) + 300
        requests: list[node_pb2.AttestationRequest] = []
        for i in range(needed // CONSENT_USES + 1):
            who = people[i % len(people)]
            md = identity_metadata(idp.assertion(who, "heihe", int(time.time())))
            tok = await citizen.GrantConsent(
                node_pb2.GrantConsentRequest(
                    audience="hainan",
                    purpose="loan",
                    scope=node_pb2.CONSENT_SCOPE_GRADE,
                    max_uses=CONSENT_USES,
                ),
                metadata=md,
            )
            requests += [
                attestation_request(tok, who, "loan", target_scheme="hainan")
                for _ in range(CONSENT_USES)
            ]
        requests = requests[:needed]
        sample = await peer.RequestAttestation(requests.pop())
        req_size, resp_size = requests[0].ByteSize(), sample.ByteSize()

        for name, data in (("cert", requester.cert_pem), ("key", requester.key_pem)):
            (root / f"echo.{name}").write_bytes(data)
        echo_proc, echo_ports = _spawn(
            [
                "bench.exchange",
                "echo",
                str(root / "echo.cert"),
                str(root / "echo.key"),
                str(root / "heihe/tls/ca.pem"),
                str(resp_size),
                str(root / "echo.ready"),
            ],
            root / "echo.ready",
        )
        procs.append(echo_proc)
        ech = peer_channel(
            f"127.0.0.1:{echo_ports['peer']}", ca.cert_pem, requester.cert_pem, requester.key_pem
        )
        chans.append(ech)
        echo_call = ech.unary_unary("/bench.Echo/Call", None, None)
        echo_payload = os.urandom(req_size)

        async def attest(_i: int) -> object:
            return await peer.RequestAttestation(requests.pop())

        async def echo(_i: int) -> object:
            return await echo_call(echo_payload)

        rows: list[tuple[str, int, float, float, float, float]] = []
        for conc, total in sizes.items():
            for name, fn, server in (("echo", echo, echo_proc), ("attestation", attest, node_proc)):
                await _drive(fn, 100, conc)  # warm-up
                cpu0 = (_cpu_seconds(server.pid), time.process_time())
                elapsed, lat = await _drive(fn, total, conc)
                cpu1 = (_cpu_seconds(server.pid), time.process_time())
                rows.append(
                    (
                        name,
                        conc,
                        total / elapsed,
                        statistics.median(lat) * 1000,
                        _pct(lat, 0.99) * 1000,
                        float(total),
                    )
                )
                cpu[(name, conc)] = (
                    (cpu1[0] - cpu0[0]) / total * 1e6,
                    (cpu1[1] - cpu0[1]) / total * 1e6,
                )
        rows.append(("sizes", req_size, float(resp_size), 0.0, 0.0, 0.0))
        return rows
    finally:
        for c in chans:
            await c.close(None)
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cpu: dict[tuple[str, int], tuple[float, float]] = {}
        rows = asyncio.run(_measure(Path(tmp), bool(getattr(args, "quick", False)), cpu))
    sizes = next(r for r in rows if r[0] == "sizes")
    data = {(r[0], r[1]): r for r in rows if r[0] != "sizes"}
    lines = [
        "## Exchange: consented attestation requests vs bare grpc.aio echo",
        "",
        "Loopback, mutual TLS (P-256 certificates from the federation CA); servers in their "
        "own processes (`huxin serve`, and a bare grpc.aio echo), the requester in this "
        f"process on one channel; request {sizes[1]} B, response {int(sizes[2])} B for both. "
        "Each attestation: consent token checked, grade scored and mapped to Hainan's "
        "scheme, use + status index + transparency-log entry committed to SQLite (WAL, "
        "concurrent requests group-committed), then the attestation Ed25519-signed.",
        "",
        "| concurrency | requests | echo req/s | attestation req/s | ratio | echo p50 / p99 ms "
        "| attestation p50 / p99 ms | goals |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for conc in (1, 32):
        e, a = data[("echo", conc)], data[("attestation", conc)]
        ratio = a[2] / e[2]
        goals = f"ratio ≥ 50%: {'met' if ratio >= 0.5 else 'not met'}"
        if conc == 32:
            goals += f"; p99 ≤ 20 ms: {'met' if a[4] <= 20 else 'not met'}"
        lines.append(
            f"| {conc} | {int(a[5]):,} | {e[2]:,.0f} | {a[2]:,.0f} | {ratio:.0%} "
            f"| {e[3]:.2f} / {e[4]:.2f} | {a[3]:.2f} / {a[4]:.2f} | {goals} |"
        )
    lines += [
        "",
        "Where the time goes (CPU per request, all threads of the process, same runs): "
        "the server needs the GIL for most of its work, so its CPU per request bounds its "
        "throughput on one core; the requester is the same code for both servers.",
        "",
        "| concurrency | echo server µs/req | node µs/req | node / echo | requester µs/req "
        "(echo run / attestation run) |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for conc in (1, 32):
        (es, ec), (ns, nc) = cpu[("echo", conc)], cpu[("attestation", conc)]
        ratio_cpu = f"{ns / es:.2f}x" if es > 0 else "n/a"
        lines.append(f"| {conc} | {es:,.0f} | {ns:,.0f} | {ratio_cpu} | {ec:,.0f} / {nc:,.0f} |")
    e32, a32 = data[("echo", 32)], data[("attestation", 32)]
    lines += [
        "",
        "32 requesters in a closed loop: mean latency = 32 / throughput (Little's law), so "
        f"p99 ≤ 20 ms needs more than {32 / 0.020:,.0f} req/s; this run's echo gives "
        f"{e32[2]:,.0f} req/s at p99 {e32[4]:.1f} ms and the node {a32[2]:,.0f} req/s "
        f"(32 / throughput = {32 / a32[2] * 1000:.1f} ms). See docs/adr/0310.",
    ]
    load = os.getloadavg()[0]
    lines += ["", f"1-minute load average at the end: {load:.2f} on {os.cpu_count()} cores."]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "echo":
        _c, _k, _ca, _size, _pf = sys.argv[2:]
        asyncio.run(_echo_main(Path(_c), Path(_k), Path(_ca), int(_size), Path(_pf)))
    else:
        print(run(argparse.Namespace(quick="--quick" in sys.argv)))
