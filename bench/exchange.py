"""Consented attestation exchange vs a bare grpc.aio echo, loopback mutual TLS.

Target: a real Heihe node (SQLite file, WAL) answering ``RequestAttestation``
from a Hainan-certified requester — consent verified, use counted, status
index allocated, log entry appended, COMMIT, attestation signed — at 1 and 32
concurrent requesters on one channel.  Baseline: a bare grpc.aio server with
the same mutual TLS credentials echoing a response of the same size for a
request of the same size, measured in the same run and process.

Goals (issue 5): target ≥ 50% of the echo's throughput; p99 ≤ 20 ms at 32.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from node._client import peer_channel
from node._testbed import Testbed, attestation_request, honour_record, make_id_number, resident
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


async def _echo_server(
    cert: bytes, key: bytes, ca: bytes, response_size: int
) -> tuple[aio.Server, int]:
    payload = os.urandom(response_size)

    async def echo(request: bytes, context: Any) -> bytes:
        return payload

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True),
    )
    await server.start()
    return server, port


async def _measure(quick: bool) -> list[tuple[str, int, float, float, float, float]]:
    rows: list[tuple[str, int, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bed = Testbed(Path(tmp))
        heihe = await bed.start_node("heihe", "heihe", peers=("hainan",), sources=("court",))
        source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("court")))
        people = [make_id_number(n) for n in range(40)]
        await source.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="bench",
                records=[honour_record(f"r{i}", p) for i, p in enumerate(people)],
                subjects=[resident(p) for p in people],
            )
        )
        citizen = bed.citizen_stub(heihe)
        requester = bed.cert("hainan")
        peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, requester))
        sizes = {1: 300 if quick else 2000, 32: 640 if quick else 8000}
        needed = sum(sizes.values()) + 200
        tokens = []
        for i in range((needed // CONSENT_USES) + 1):
            who = people[i % len(people)]
            tok = await citizen.GrantConsent(  # type: ignore[misc]
                node_pb2.GrantConsentRequest(
                    audience="hainan",
                    purpose="loan",
                    scope=node_pb2.CONSENT_SCOPE_GRADE,
                    max_uses=CONSENT_USES,
                ),
                metadata=heihe.identity(who),
            )
            tokens.append((tok, who))
        uses = [0] * len(tokens)
        slot = [0]

        def next_request() -> node_pb2.AttestationRequest:
            while uses[slot[0]] >= CONSENT_USES:
                slot[0] += 1
            uses[slot[0]] += 1
            tok, who = tokens[slot[0]]
            return attestation_request(tok, who, "loan", target_scheme="hainan")

        sample_req = next_request()
        sample = await peer.RequestAttestation(sample_req)
        req_size, resp_size = sample_req.ByteSize(), sample.ByteSize()

        assert bed.ca is not None
        echo_server, echo_port = await _echo_server(
            requester.cert_pem, requester.key_pem, bed.ca.cert_pem, resp_size
        )
        echo_ch = peer_channel(
            f"127.0.0.1:{echo_port}", bed.ca.cert_pem, requester.cert_pem, requester.key_pem
        )
        echo_call = echo_ch.unary_unary("/bench.Echo/Call", None, None)
        echo_payload = os.urandom(req_size)
        await echo_call(echo_payload)

        prepared = [next_request() for _ in range(sum(sizes.values()) + 100)]

        async def attest(i: int) -> object:
            return await peer.RequestAttestation(prepared.pop())

        async def echo(_i: int) -> object:
            return await echo_call(echo_payload)

        for conc, total in sizes.items():
            for name, fn in (("echo", echo), ("attestation", attest)):
                await _drive(fn, min(50, total), conc)  # warm-up
                elapsed, lat = await _drive(fn, total, conc)
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
        rows.append(("sizes", req_size, float(resp_size), 0.0, 0.0, 0.0))
        await echo_ch.close(None)
        await echo_server.stop(None)
        await bed.close()
    return rows


def run(args: argparse.Namespace) -> str:
    rows = asyncio.run(_measure(bool(getattr(args, "quick", False))))
    sizes = next(r for r in rows if r[0] == "sizes")
    data = {(r[0], r[1]): r for r in rows if r[0] != "sizes"}
    lines = [
        "## Exchange: consented attestation requests vs bare grpc.aio echo",
        "",
        "Loopback, mutual TLS (P-256 certificates from the federation CA), one channel, "
        f"request {sizes[1]} B / response {int(sizes[2])} B (echo uses the same sizes). "
        "Each attestation: consent token verified, use counted + status index + log entry "
        "in one SQLite transaction (WAL), grade scored and mapped to Hainan's scheme, "
        "the attestation Ed25519-signed after COMMIT. Concurrent requests are group-committed.",
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
    return "\n".join(lines)
