"""Consented attestation exchange vs the REST+JWT gateway a team would build, and a bare echo.

Target: a real Heihe node (``huxin serve`` in its own process, SQLite file in
WAL mode) holding a city of ``PEOPLE`` residents (filed by the population
authority through ``huxin source submit``, the month published over all of them
with ``huxin score publish``), answering ``RequestAttestation`` from a
Hainan-certified requester — consent token verified, checks, the published
grade read, mapped to Hainan's scheme, use + status index + log entry
committed, attestation signed.  Consents are granted to residents drawn at
random, in a setup phase outside the timed part (``GRANT_CONCURRENCY`` grants
in flight), and used at most ``REUSES`` times:

* **fresh** tokens: every request carries a consent never seen before (the
  node's verified-token cache never hits, each consent row is touched once);
* **reused** tokens: every consent is used ``REUSES`` times, the uses in a
  random order over the run.

Baselines, each in its own process with the same mutual TLS certificates,
measured in the same run in ``ROUNDS`` interleaved rounds (every server a slice
per round, rotating order):

* ``REST+JWT``: :mod:`bench.rest_gateway` — FastAPI on uvicorn, PyJWT EdDSA
  consent verified, the use counted in SQLite (WAL, a commit per request), an
  EdDSA-signed JWT returned; driven by :class:`bench.rest_gateway.Client`
  (asyncio streams, pre-encoded HTTP/1.1 requests), one connection per requester;
* ``echo``: a bare grpc.aio server answering a request of the node's request
  size with a response of its response size.

The figure that does not depend on the client library is the **server CPU per
request** (all threads of the server process, from /proc).  Target (issue 17):
node / REST+JWT ≤ 0.8x on the fresh-token rows.

The same node on PostgreSQL (issue 18) is a fourth server of the same rounds: the same
city filed into a node whose ``[storage] url`` names a fresh database of a throwaway
local PostgreSQL (:mod:`bench._pg`); its server CPU per request is the node process's
plus the database server's (every PostgreSQL process, reaped backends included), the
figure to hold against the SQLite node's (target: <= 1.3x).  ``--sqlite-only`` leaves
it out.

``python -m bench.exchange echo CERT KEY CA SIZE PORTFILE PORT`` runs the echo
server; ``python -m bench.exchange [--quick] [--profile OUT]`` runs the bench
alone; ``--profile`` instead attaches py-spy (raw collapsed stacks, all
threads, to OUT) to the node during fresh-token requests at 32 requesters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from grpc import aio

from bench import _pg, rest_gateway
from bench.population import DEPARTMENT, residents, source_toml, write_csv
from keys import KeyPair, decode_private_key
from node.cli._init import init_region, load_or_create_ca
from node.demo._testbed import (
    approved_tables_toml,
    attestation_request,
    register_clients,
    requester_channel,
)
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import identity_metadata
from node.rpc._identity import DevIdentityProvider

PEOPLE = 100_000  # residents filed into the node; consents go to residents drawn at random
REUSES = 5  # uses of each consent on the reused-token rows
PURPOSE = "heihe/credit-loans"
GRANT_CONCURRENCY = 16  # grants in flight during setup
ROUNDS = 5  # each server measured in 5 interleaved slices (machine drift hits all alike)
WARM = 100  # requests per server before each row's timed rounds (connect, caches)
SIZES = {1: 1_000, 32: 4_000}  # timed requests per server per row (fresh and reused alike)
QUICK_SIZES = {1: 100, 32: 500}
WORKLOADS = ("fresh", "reused")
SERVERS = ("echo", "REST+JWT", "node")
PG_SERVER = "node (PostgreSQL)"

Call = Callable[[int], Awaitable[object]]  # one request by requester number w
#: what a slice charges a server with: its pids' CPU, or a reader of CPU seconds so far
Cpu = list[int] | Callable[[], float]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(call: Call, total: int, concurrency: int) -> tuple[float, list[float]]:
    """``total`` calls by ``concurrency`` requesters in a closed loop; requester ``w``
    always calls with its own number, so it keeps to its own connection."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(w: int) -> None:
        for _ in counter:
            t0 = time.perf_counter()
            await call(w)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
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


def _spawn(args: list[str], ready: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
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


def _huxin(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "node", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"huxin {args[0]} {args[1]} exited {out.returncode}: {out.stderr}")
    return out.stdout


def _steps_ended(database: Path, url: str | None) -> int:
    query = "SELECT count(*) FROM monthly_runs WHERE state != 'running'"
    if url is not None:
        import psycopg

        try:
            with psycopg.connect(url) as pconn:
                row = pconn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:  # not migrated yet
            return 0
        return int(row[0]) if row else 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            (done,) = conn.execute(query).fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    return int(done)


def _month_step_ended(database: Path, timeout: float = 120.0, url: str | None = None) -> None:
    """Wait for the node's first monthly step (it runs in the background once the node
    serves, docs/adr/0514); the city is filed after it, so that step scores nobody."""
    deadline = time.monotonic() + timeout
    while True:
        done = _steps_ended(database, url)
        if done:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the node ended no monthly step")
        time.sleep(0.05)


class _Node:
    """One ``huxin serve`` holding the city, its peer port and the requests for each row."""

    def __init__(self, proc: subprocess.Popen[bytes], ports: dict[str, Any]) -> None:
        self.proc, self.ports = proc, ports
        self.requests: dict[str, list[node_pb2.AttestationRequest]] = {}
        self.url: str | None = None  # the PostgreSQL database, when not SQLite

    def pids(self) -> list[int]:
        return [self.proc.pid, *(w["pid"] for w in self.ports.get("workers", []))]


async def _grant_all(
    citizens: Sequence[Any],
    idp: DevIdentityProvider,
    people: Sequence[str],
    max_uses: int,
) -> list[node_pb2.ConsentToken]:
    """One consent for each of ``people`` (each a different resident, so no citizen meets
    the grant limits of docs/adr/0324), ``GRANT_CONCURRENCY`` grants in flight spread over
    the connections of ``citizens`` (a citizen connection takes 16 calls at once)."""
    tokens: list[node_pb2.ConsentToken | None] = [None] * len(people)
    todo = iter(range(len(people)))

    async def worker(w: int) -> None:
        for i in todo:
            md = identity_metadata(idp.assertion(people[i], "heihe", int(time.time())))
            tokens[i] = await citizens[w % len(citizens)].GrantConsent(
                node_pb2.GrantConsentRequest(
                    audience="hainan",
                    purpose=PURPOSE,
                    scope=node_pb2.CONSENT_SCOPE_GRADE,
                    max_uses=max_uses,
                ),
                metadata=md,
            )

    await asyncio.gather(*(worker(w) for w in range(GRANT_CONCURRENCY)))
    return [t for t in tokens if t is not None]


def _uses(n_consents: int, reuses: int, rng: random.Random) -> list[int]:
    """Which consent each request uses: each of ``n_consents`` ``reuses`` times, shuffled."""
    order = [c for c in range(n_consents) for _ in range(reuses)]
    rng.shuffle(order)
    return order


async def _start_node(
    root: Path,
    ca: Any,
    people: int,
    needed: dict[str, int],
    rng: random.Random,
    url: str | None = None,
) -> tuple[_Node, dict[str, Any]]:
    """A Heihe node with ``people`` residents, the month published over them, and
    ``needed[workload]`` attestation requests (+1 for the check) per workload; on the
    PostgreSQL database ``url`` when given."""
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    setup: dict[str, Any] = {}
    directory = root / "heihe"
    # the shipped heihe tables, approved by an authority of this bench (ADR 0207: a node
    # maps only with governed tables)
    mapping = approved_tables_toml(directory, "heihe", KeyPair.generate(), now)
    init_region(
        directory, "heihe", "heihe", ca, now, peers=("hainan",), population=(DEPARTMENT,),
        extra_toml=mapping,
    )  # fmt: skip
    toml = directory / "node.toml"
    if url is not None:
        toml.write_text(toml.read_text(encoding="utf-8") + _pg.storage_toml(url), encoding="utf-8")
    dept = ca.issue(DEPARTMENT, now)
    register_clients(toml, dept)
    (root / "ca.pem").write_bytes(ca.cert_pem)
    (root / "dept.pem").write_bytes(dept.cert_pem)
    (root / "dept.key").write_bytes(dept.key_pem)
    write_csv(root / "residents.csv", people)
    ready = root / "heihe.ready"
    proc, ports = _spawn(
        ["node", "serve", "--config", str(toml), "--ready-file", str(ready)], ready
    )
    node = _Node(proc, ports)
    node.url = url
    try:
        await _fill(node, root, ca, people, needed, rng, setup, now)
    except BaseException:  # a node whose setup failed is not left serving
        proc.terminate()
        proc.wait(timeout=30)
        raise
    return node, setup


async def _fill(
    node: _Node,
    root: Path,
    ca: Any,
    people: int,
    needed: dict[str, int],
    rng: random.Random,
    setup: dict[str, Any],
    now: datetime,
) -> None:
    """The city filed, its month published, the consents granted and the requests built."""
    directory, ports = root / "heihe", node.ports
    toml = directory / "node.toml"
    _month_step_ended(directory / "node.db", url=node.url)
    t0 = time.perf_counter()
    _huxin(
        "source", "submit", "--config", str(source_toml(root, ports["peer"])),
        "--file", str(root / "residents.csv"), "--kind", "residence",
        "--rejects", str(root / "rejects.csv"), "--no-progress",
    )  # fmt: skip
    setup["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    period = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    published = json.loads(
        _huxin(
            "score", "run", "--config", str(toml), "--period", period,
            "--workers", "2", "--force", "--json",
        )
    )  # fmt: skip
    if published["subjects"] != people:
        raise RuntimeError(f"the month scored {published['subjects']} of {people} residents")
    setup["publish"] = time.perf_counter() - t0

    city = residents(people)
    fresh = needed["fresh"] + 1
    reused = -(-needed["reused"] // REUSES)
    chosen = rng.sample(city, fresh + reused)
    idp = DevIdentityProvider(decode_private_key((directory / "keys/dev-idp.key").read_bytes()))
    # connections of their own (a local subchannel pool each): 4 grants in flight on each
    cchs = [
        aio.secure_channel(
            f"127.0.0.1:{ports['citizen']}",
            grpc.ssl_channel_credentials(root_certificates=ca.cert_pem),
            options=[("grpc.use_local_subchannel_pool", 1)],
        )
        for _ in range(GRANT_CONCURRENCY // 4)
    ]
    try:
        t0 = time.perf_counter()
        citizens = [node_pb2_grpc.CitizenServiceStub(c) for c in cchs]
        once = await _grant_all(citizens, idp, chosen[:fresh], 1)
        multi = await _grant_all(citizens, idp, chosen[fresh:], REUSES)
        setup["grants"] = fresh + reused
        setup["grant_seconds"] = time.perf_counter() - t0
    finally:
        for c in cchs:
            await c.close(None)
    node.requests["fresh"] = [
        attestation_request(tok, who, PURPOSE, target_scheme="hainan")
        for tok, who in zip(once, chosen[:fresh], strict=True)
    ]
    node.requests["reused"] = [
        attestation_request(multi[c], chosen[fresh + c], PURPOSE, target_scheme="hainan")
        for c in _uses(len(multi), REUSES, rng)
    ][: needed["reused"]]


class _Rest:
    """The REST+JWT gateway process and the consent-carrying bodies for each row."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc, self.port = proc, port
        self.bodies: dict[str, list[bytes]] = {}


def _start_rest(root: Path, needed: dict[str, int], rng: random.Random) -> _Rest:
    """The gateway on the requester's certificate (as the echo), its consents signed by a
    region key of its own; bodies for ``needed[workload]`` requests per workload."""
    region, signer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pub = region.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    (root / "rest-consent.pub").write_bytes(pub)
    (root / "rest-sign.key").write_bytes(signer.private_bytes_raw())
    ready = root / "rest.ready"
    proc, ports = _spawn(
        [
            "bench.rest_gateway",
            str(root / "echo.cert"),
            str(root / "echo.key"),
            str(root / "ca/ca.pem"),
            str(root / "rest-consent.pub"),
            str(root / "rest-sign.key"),
            str(root / "rest.db"),
            str(ready),
        ],
        ready,
    )
    rest = _Rest(proc, ports["peer"])

    def consent(i: int, max_uses: int) -> tuple[str, bytes]:
        binding = os.urandom(32)
        return rest_gateway.consent_jwt(region, f"c{i}", binding, PURPOSE, max_uses), binding

    once = [consent(i, 1) for i in range(needed["fresh"])]
    multi = [consent(len(once) + i, REUSES) for i in range(-(-needed["reused"] // REUSES))]
    rest.bodies["fresh"] = [rest_gateway.attest_body(c, b, PURPOSE) for c, b in once]
    rest.bodies["reused"] = [
        rest_gateway.attest_body(*multi[c], PURPOSE) for c in _uses(len(multi), REUSES, rng)
    ][: needed["reused"]]
    return rest


class _Tally:
    """One server in one row, summed over the rounds."""

    def __init__(self) -> None:
        self.elapsed, self.calls, self.srv_cpu, self.req_cpu = 0.0, 0, 0.0, 0.0
        self.latencies: list[float] = []
        self.rates: list[float] = []  # req/s of each round


def _with_database(pids: list[int], pg: Any) -> Callable[[], float]:
    """CPU seconds of a node on PostgreSQL: its processes' and the database server's."""

    def read() -> float:
        return sum(_cpu_seconds(p) for p in pids) + _pg.server_cpu(pg)

    return read


def _server_seconds(cpu: Cpu) -> float:
    return cpu() if callable(cpu) else sum(_cpu_seconds(p) for p in cpu)


async def _slice(fn: Call, pids: Cpu, conc: int, total: int, tally: _Tally) -> None:
    """``total`` calls by ``conc`` requesters; CPU of the server and of this process."""
    cpu0 = (_server_seconds(pids), time.process_time())
    elapsed, lat = await _drive(fn, total, conc)
    cpu1 = (_server_seconds(pids), time.process_time())
    tally.elapsed += elapsed
    tally.calls += total
    tally.srv_cpu += cpu1[0] - cpu0[0]
    tally.req_cpu += cpu1[1] - cpu0[1]
    tally.latencies += lat
    tally.rates.append(total / elapsed)


class _Figures:
    """One server in one row: req/s, p50/p99 ms, server and requester µs CPU per request,
    lowest and highest round rate."""

    def __init__(self, t: _Tally) -> None:
        self.calls = t.calls
        self.rate = t.calls / t.elapsed
        self.p50 = statistics.median(t.latencies) * 1000
        self.p99 = _pct(t.latencies, 0.99) * 1000
        self.srv_us = t.srv_cpu / t.calls * 1e6
        self.req_us = t.req_cpu / t.calls * 1e6
        self.spread = (min(t.rates), max(t.rates))


async def _timed_rounds(
    targets: list[tuple[str, Call, Cpu]], conc: int, total: int
) -> dict[str, _Figures]:
    """Warm every server up, then ``ROUNDS`` rounds of ``total / ROUNDS`` calls each,
    the servers in a rotating order; pooled figures per server."""
    tallies = {name: _Tally() for name, _, _ in targets}
    for _, fn, _ in targets:
        await _drive(fn, WARM, conc)
    per_round, rest = divmod(total, ROUNDS)
    assert rest == 0, f"{total} calls do not split into {ROUNDS} equal rounds"
    for r in range(ROUNDS):
        for name, fn, pids in targets[r % len(targets) :] + targets[: r % len(targets)]:
            await _slice(fn, pids, conc, per_round, tallies[name])
    return {name: _Figures(t) for name, t in tallies.items()}


def _node_driver(stubs: list[Any], pool: list[Any]) -> Call:
    async def attest(w: int) -> object:
        return await stubs[w].RequestAttestation(pool.pop())

    return attest


def _rest_driver(clients: list[rest_gateway.Client], pool: list[bytes]) -> Call:
    async def attest(w: int) -> object:
        status, body = await clients[w].post(pool.pop())
        if status != 200:
            raise RuntimeError(f"REST+JWT gateway: {status} {body[:200]!r}")
        return body

    return attest


def _echo_driver(calls: list[Any], payload: bytes) -> Call:
    async def echo(w: int) -> object:
        return await calls[w](payload)

    return echo


Results = dict[tuple[str, int], dict[str, _Figures]]  # (workload, concurrency) -> server


async def _measure(
    root: Path,
    people: int,
    sizes: dict[int, int],
    profile: Path | None,
    pg: Any = None,
) -> tuple[Results, dict[str, Any]]:
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    requester = ca.issue("hainan", now)
    for fname, data in (("cert", requester.cert_pem), ("key", requester.key_pem)):
        (root / f"echo.{fname}").write_bytes(data)
    per_workload = sum(sizes.values()) + WARM * len(sizes)
    needed = {"fresh": per_workload, "reused": per_workload}
    if profile is not None:  # fresh tokens at 32 requesters only
        needed = {"fresh": sizes[32] + WARM, "reused": 0}
    rng = random.Random(17)
    procs: list[subprocess.Popen[bytes]] = []
    chans: list[aio.Channel] = []
    clients: list[rest_gateway.Client] = []
    try:
        node, info = await _start_node(root, ca, people, needed, rng)
        procs.append(node.proc)
        pg_node: _Node | None = None
        if pg is not None and profile is None:
            pg_node, pg_info = await _start_node(
                root / "pg", ca, people, needed, rng, _pg.fresh_database(pg, "exchange")
            )
            procs.append(pg_node.proc)
            info["pg"] = pg_info
        probe = requester_channel(node.ports["peer"], requester, ca.cert_pem, -1)
        chans.append(probe)
        # one request checked end to end before timing: the reply is a signed attestation
        first = node.requests["fresh"].pop()
        sample = await node_pb2_grpc.PeerServiceStub(probe).RequestAttestation(first)
        if not sample.signed_attestation:
            raise RuntimeError("the node returned no attestation")
        info |= {"req_size": first.ByteSize(), "resp_size": sample.ByteSize()}
        if profile is not None:
            await _profile(node, requester, ca.cert_pem, sizes[32], profile)
            return {}, info

        rest = _start_rest(root, needed, rng)
        procs.append(rest.proc)
        ready = root / "echo.ready"
        echo, _ = _spawn(
            [
                "bench.exchange", "echo", str(root / "echo.cert"), str(root / "echo.key"),
                str(root / "ca/ca.pem"), str(info["resp_size"]), str(ready), "0",
            ],
            ready,
        )  # fmt: skip
        procs.append(echo)
        echo_port = json.loads(ready.read_text())["peer"]
        payload = os.urandom(info["req_size"])

        results: Results = {}
        for workload in WORKLOADS:
            for conc, total in sizes.items():
                # every requester has its own connection, for every server alike
                def conns(port: int, n: int = conc) -> list[aio.Channel]:
                    out = [requester_channel(port, requester, ca.cert_pem, i) for i in range(n)]
                    chans.extend(out)
                    return out

                calls = [c.unary_unary("/bench.Echo/Call", None, None) for c in conns(echo_port)]
                row_clients = [
                    rest_gateway.Client(
                        rest.port, root / "echo.cert", root / "echo.key", root / "ca/ca.pem"
                    )
                    for _ in range(conc)
                ]
                clients += row_clients
                stubs = [node_pb2_grpc.PeerServiceStub(c) for c in conns(node.ports["peer"])]
                targets: list[tuple[str, Call, Cpu]] = [
                    ("echo", _echo_driver(calls, payload), [echo.pid]),
                    ("REST+JWT", _rest_driver(row_clients, rest.bodies[workload]), [rest.proc.pid]),
                    ("node", _node_driver(stubs, node.requests[workload]), node.pids()),
                ]
                if pg_node is not None:
                    pg_stubs = [
                        node_pb2_grpc.PeerServiceStub(c) for c in conns(pg_node.ports["peer"])
                    ]
                    targets.append(
                        (
                            PG_SERVER,
                            _node_driver(pg_stubs, pg_node.requests[workload]),
                            _with_database(pg_node.pids(), pg),
                        )
                    )
                results[(workload, conc)] = await _timed_rounds(targets, conc, total)
        return results, info
    finally:
        for client in clients:
            await client.close()
        for c in chans:
            await c.close(None)
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


async def _profile(node: _Node, requester: Any, ca_pem: bytes, total: int, out: Path) -> None:
    """py-spy (all threads, samples of running threads only, raw collapsed stacks) attached to the node
    while 32 requesters send ``total`` fresh-token requests; not interleaved, not timed."""
    chans = [requester_channel(node.ports["peer"], requester, ca_pem, i) for i in range(32)]
    stubs = [node_pb2_grpc.PeerServiceStub(c) for c in chans]
    fn = _node_driver(stubs, node.requests["fresh"])
    await _drive(fn, WARM, 32)
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(node.proc.pid),
            "--threads", "--rate", "250", "--format", "raw", "--output", str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(1.0)  # py-spy attaches
    cpu0 = _cpu_seconds(node.proc.pid)
    elapsed, _ = await _drive(fn, total, 32)
    cpu = _cpu_seconds(node.proc.pid) - cpu0
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    for c in chans:
        await c.close(None)
    print(
        f"profiled {total} fresh-token requests at 32: {total / elapsed:,.0f} req/s, "
        f"node CPU {cpu / total * 1e6:,.0f} µs/req (with py-spy attached) -> {out}"
    )


def _section(results: Results, info: dict[str, Any], people: int) -> str:
    lines = [
        "## Exchange: consented attestation requests vs a REST+JWT gateway and a bare echo",
        "",
        f"Loopback, mutual TLS (P-256 certificates from the federation CA). The node holds "
        f"{people:,} residents (filed by the population authority with `huxin source submit` "
        f"in {info['load']:.0f} s, the month published over all of them with `huxin score "
        f"publish` in {info['publish']:.0f} s); {info['grants']:,} consents were granted to "
        f"residents drawn at random in a setup phase outside the timed part "
        f"({GRANT_CONCURRENCY} grants in flight, {info['grant_seconds']:.0f} s, "
        f"{info['grants'] / info['grant_seconds']:,.0f} grants/s). Rows: **fresh** — every "
        f"request carries a consent never used before (each consent used once); **reused** "
        f"— each consent used {REUSES} times, its uses at random points of the run. Each "
        "attestation: consent token checked, the published grade read, mapped to Hainan's "
        "scheme, use + status index + transparency-log entry committed to SQLite (WAL), "
        "then Ed25519-signed.",
        "",
        "Three servers, each in one process, measured in one run in "
        f"{ROUNDS} interleaved rounds (every server takes a slice of the requests per round, "
        "in a rotating order, so the machine's drift reaches all alike): `huxin serve` "
        "(node, `peer_workers = 1`); the **REST+JWT** gateway a team would otherwise build "
        "(`bench/rest_gateway.py`: FastAPI on uvicorn with uvloop and httptools, mutual TLS "
        "with the same certificates, PyJWT EdDSA consent verified, the use counted in "
        "SQLite — a file, WAL, a commit per request — and an EdDSA-signed JWT returned; "
        "driven over HTTP/1.1 keep-alive by a minimal asyncio-streams client with pre-encoded "
        "requests, so that the gateway and not its client sets the pace); a bare grpc.aio "
        "**echo** (request "
        f"{info['req_size']} B, response {info['resp_size']} B, the node's sizes). Every "
        "requester has its own connection to every server.",
        "",
        "**Server CPU per request** (all threads of the server process, from /proc, same "
        "runs) is the figure that does not depend on the client library. Target (issue 17): node / REST+JWT ≤ 0.8x on "
        "the fresh rows.",
        "",
        "| tokens | concurrency | requests per server | echo µs/req | REST+JWT µs/req "
        "| node µs/req | **node / REST+JWT** | node / echo | target ≤ 0.8x |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (workload, conc), f in results.items():
        e, r, n = (f[s] for s in SERVERS)
        ratio = n.srv_us / r.srv_us
        target = ("met" if ratio <= 0.8 else "not met") if workload == "fresh" else ""
        lines.append(
            f"| {workload} | {conc} | {n.calls:,} | {e.srv_us:,.0f} | {r.srv_us:,.0f} "
            f"| {n.srv_us:,.0f} | **{ratio:.2f}x** | {n.srv_us / e.srv_us:.2f}x | {target} |"
        )
    lines += [
        "",
        "Throughput, latency and the requester's CPU (this process: grpc.aio for echo and "
        "node, the minimal HTTP/1.1 client for REST+JWT), same runs; throughput of each round (lowest – highest) "
        "shows the noise.",
        "",
        "| tokens | concurrency | req/s: echo · REST+JWT · node | p50 / p99 ms: echo · "
        "REST+JWT · node | requester µs/req: echo · REST+JWT · node | round req/s: echo · "
        "REST+JWT · node |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for (workload, conc), f in results.items():
        figs = [f[s] for s in SERVERS]
        lines.append(
            f"| {workload} | {conc} | "
            + " · ".join(f"{x.rate:,.0f}" for x in figs)
            + " | "
            + " · ".join(f"{x.p50:.2f} / {x.p99:.2f}" for x in figs)
            + " | "
            + " · ".join(f"{x.req_us:,.0f}" for x in figs)
            + " | "
            + " · ".join(f"{x.spread[0]:,.0f} – {x.spread[1]:,.0f}" for x in figs)
            + " |"
        )
    if any(PG_SERVER in f for f in results.values()):
        lines += _pg_rows(results, info)
    load = os.getloadavg()
    lines += [
        "",
        f"Load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 "
        f"min) on {os.cpu_count()} cores. See docs/adr/0325 for the profile and what was tried.",
    ]
    return "\n".join(lines)


def _pg_rows(results: Results, info: dict[str, Any]) -> list[str]:
    """The node on PostgreSQL next to the node on SQLite, same rounds (issue 18)."""
    pg_info = info["pg"]
    lines = [
        "",
        "### The node on PostgreSQL (issue 18)",
        "",
        "The same city in a node whose `[storage] url` names a fresh database of a throwaway"
        " local PostgreSQL 15 (unix socket, 512 MB shared buffers, default durability: every"
        " commit flushed, stricter than the SQLite node's WAL with `synchronous = NORMAL`),"
        " measured as a fourth server in the same interleaved rounds. Its server CPU is the"
        " node process's plus every PostgreSQL process's (reaped backends included); the"
        f" SQLite node's includes SQLite. Setup on PostgreSQL: filed in {pg_info['load']:.0f} s,"
        f" published in {pg_info['publish']:.0f} s, {pg_info['grants']:,} grants in"
        f" {pg_info['grant_seconds']:.0f} s.",
        "",
        "| tokens | concurrency | node (SQLite) µs/req | node (PostgreSQL) µs/req"
        " | **PostgreSQL / SQLite** | target ≤ 1.3x | req/s: SQLite · PostgreSQL"
        " | p50 / p99 ms: SQLite · PostgreSQL |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for (workload, conc), f in results.items():
        n, p = f["node"], f[PG_SERVER]
        ratio = p.srv_us / n.srv_us
        target = ("met" if ratio <= 1.3 else "not met") if workload == "fresh" else ""
        lines.append(
            f"| {workload} | {conc} | {n.srv_us:,.0f} | {p.srv_us:,.0f} | **{ratio:.2f}x**"
            f" | {target} | {n.rate:,.0f} · {p.rate:,.0f}"
            f" | {n.p50:.2f} / {n.p99:.2f} · {p.p50:.2f} / {p.p99:.2f} |"
        )
    return lines


def run(args: argparse.Namespace) -> str:
    quick = bool(getattr(args, "quick", False))
    people = 5_000 if quick else PEOPLE
    profile = getattr(args, "profile", None)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="huxin-bench-exchange-"))
        sqlite_only = getattr(args, "sqlite_only", False) or profile is not None
        pg = None if sqlite_only else stack.enter_context(_pg.pg_server())
        results, info = asyncio.run(
            _measure(Path(tmp), people, QUICK_SIZES if quick else SIZES, profile, pg)
        )
    if profile is not None:
        return f"profile written to {profile}"
    return _section(results, info, people)


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "echo":
        _c, _k, _ca, _size, _pf, _port = sys.argv[2:]
        asyncio.run(_echo_main(Path(_c), Path(_k), Path(_ca), int(_size), Path(_pf), int(_port)))
    else:
        parser = argparse.ArgumentParser(prog="python -m bench.exchange")
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--sqlite-only", action="store_true", help="no PostgreSQL rows")
        parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the node to PATH")
        print(run(parser.parse_args()))
