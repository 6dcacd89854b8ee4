"""A small in-process federation on loopback, for integration tests and benchmarks.

Real pieces only: a federation CA, node directories written by
:func:`node.cli._init.init_region`, real mutual TLS on port 0, real SQLite files.
Nothing here is used by ``huxin serve``.  :class:`FederationProcesses` runs a
federation laid out by ``huxin init federation`` as separate ``huxin serve``
processes (the demo and the federation integration tests).

Invariant: test ID numbers are generated valid GB 11643 numbers and are only
ever passed to the node over its own TLS channels (source and citizen ports).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from keys import (
    CertificateAuthority,
    KeyPair,
    NodeCertificate,
    Sealer,
    decode_private_key,
    open_approval,
    sign_approval,
    subject_binding,
)
from keys.pb.v1 import attestation_pb2
from mapping import MappingTable
from node.cli._init import init_region, load_or_create_ca
from node.core._clock import Clock, ManualClock
from node.core._config import StorageConfig, load_config
from node.core._secrets import read_hex
from node.demo._federation import FederationLayout
from node.federation._clients import add_client, client_entry, read_registry
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.recognition import Approved, GovernedSet, day_start, table_sha256
from node.recognition._files import write_approved_tables
from node.rpc._client import citizen_channel, identity_metadata, peer_channel
from node.rpc._identity import DevIdentityProvider
from node.rpc._server import NodeServer
from node.store import OperationalError, StorageError, connect
from node.store._monthly import month_steps_ended
from node.store._synthetic import replace_sealed_ids, sealed_ids
from scoring import check_character

if TYPE_CHECKING:
    from node.synthetic._population import PopulationSpec

__all__ = [
    "TESTBED_AUTHORITY",
    "FederationProcesses",
    "NodeProcess",
    "RunningNode",
    "ServeProcess",
    "Testbed",
    "approved_set",
    "approved_tables_toml",
    "attestation_request",
    "honour_record",
    "make_id_number",
    "register_clients",
    "requester_channel",
    "reseal_ids",
    "residence_fact",
    "resident",
    "spawn_serve",
    "wait_for_ready",
]


def register_clients(config: Path, *certs: NodeCertificate) -> None:
    """Register client certificates with the node of ``config`` (its ``[clients]``
    registry) without any check, for benchmarks; tests use
    :func:`node.cli._client.register_certificate`, what ``huxin client register`` runs."""
    registry = load_config(config).clients.registry
    for c in certs:
        add_client(registry, client_entry(c.region_id, c.cert_pem))


def reseal_ids(spec: PopulationSpec, node_dir: Path, db: Path) -> None:
    """Test set-up of a population generated straight into a node's database
    (:func:`node.synthetic._population.generate` with the node's storage secret): re-seal its ID
    numbers with the node's own seal key, so the node can open them (deregistration
    needs the ID for the province pseudonym).  The demo files its population through
    the population authority instead (node/demo/_intake.py)."""
    node_sealer = Sealer(
        {"seal-1": read_hex(node_dir / "keys" / "seal.key", "keys.seal", 32)}, "seal-1"
    )
    old = spec.secrets().sealer()
    conn = connect(db)
    try:
        rows = sealed_ids(conn)
        replace_sealed_ids(
            conn, [(node_sealer.seal(old.open(bytes(s), bytes(k)), bytes(k)), k) for k, s in rows]
        )
    finally:
        conn.close()


#: The approving authority of a test bed's nodes (``[mapping.authorities]``); its key is
#: made per bed, so it approves tables for that bed's nodes only.
TESTBED_AUTHORITY = "testbed-authority"


def approved_set(
    tables: Iterable[MappingTable], key: KeyPair, now: datetime, *, origin: str = "test"
) -> GovernedSet:
    """A governed set of ``tables``, each with an approval record signed by ``key`` for
    :data:`TESTBED_AUTHORITY` and opened as the node opens one (unit tests of the mapper
    that use tables no hub would approve, e.g. one into an unknown version)."""
    out, approvals = [], []
    for t in tables:
        record = attestation_pb2.MappingApproval(
            mapping_sha256=table_sha256(t), mapping_id=t.id, mapping_version=t.version,
            method=t.method.value, source_scheme_id=t.source.scheme,
            source_scheme_version=t.source.version, source_region=t.source.region,
            target_scheme_id=t.target.scheme, target_scheme_version=t.target.version,
            target_region=t.target.region, effective_from=day_start(t.effective_from),
            expires=day_start(t.expires) if t.expires else 0, decision="approved",
            authority=TESTBED_AUTHORITY, issued_at=int(now.timestamp()),
            reach_eligible=1, reach_kept=1, reach_ppm=1_000_000,  # not measured: a unit fixture
        )  # fmt: skip
        envelope = sign_approval(record, key).to_bytes()
        opened = open_approval(envelope, {TESTBED_AUTHORITY: key.public_key})
        approvals.append(Approved(opened, envelope))
        out.append((t, origin))
    return GovernedSet.of(out, approvals)


def approved_tables_toml(
    directory: Path, scheme: str, key: KeyPair, now: datetime, *, tables: bool = True
) -> str:
    """A ``[mapping]`` section giving a node of ``scheme`` the shipped tables from it, each
    approved by :data:`TESTBED_AUTHORITY` with ``key`` (files under ``directory``/mapping),
    so test nodes issue mapped grades through the real gate (C3, H13); ``tables=False``:
    the authority only, no table."""
    section = (
        write_approved_tables(directory, scheme, key, now, TESTBED_AUTHORITY)
        if tables
        else "\n[mapping]\n"
    )
    return f'{section}\n[mapping.authorities]\n{TESTBED_AUTHORITY} = "{key.public_key.hex()}"\n'


def make_id_number(n: int, area: str = "231100", born: str = "19850312") -> str:
    """A valid GB 11643 ID number (area code, birth date, sequence ``n``)."""
    first17 = f"{area}{born}{n % 1000:03d}"
    return first17 + check_character(first17)


@dataclass
class RunningNode:
    region: str
    directory: Path
    server: NodeServer
    idp: DevIdentityProvider
    clock: Clock

    @property
    def peer_target(self) -> str:
        assert self.server.ports is not None
        return f"127.0.0.1:{self.server.ports.peer}"

    @property
    def citizen_target(self) -> str:
        assert self.server.ports is not None
        return f"127.0.0.1:{self.server.ports.citizen}"

    def identity(self, id_number: str) -> tuple[tuple[str, bytes], ...]:
        now = int(self.clock.now().timestamp())
        return identity_metadata(self.idp.assertion(id_number, self.region, now))


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class
    root: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    ca: CertificateAuthority | None = None
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    authority: KeyPair = field(default_factory=KeyPair.generate)  # approves the bed's tables
    _channels: list[aio.Channel] = field(default_factory=list)
    _issued: list[NodeCertificate] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ca = load_or_create_ca(self.root / "ca", self.now)

    def cert(self, identity: str, *, register: bool = True) -> NodeCertificate:
        """A certificate of the bed's CA, registered as a client with every node of
        the bed (now and started later): nodes accept only registered client
        certificates (docs/adr/0415); for peers the entry is simply unused.

        ``register=False``: registered nowhere, so an own client presenting it is
        refused with ``UNAUTHENTICATED CLIENT_UNKNOWN`` (e.g. a certificate issued
        before the registry existed, until ``huxin client register``)."""
        assert self.ca is not None
        issued = self.ca.issue(identity, self.now)
        if not register:
            return issued
        self._issued.append(issued)
        for node in self.nodes.values():
            add_client(
                node.server.ctx.config.clients.registry, client_entry(identity, issued.cert_pem)
            )
        return issued

    async def start_node(
        self,
        region: str,
        scheme: str,
        *,
        peers: tuple[str, ...] = (),
        sources: tuple[str, ...] = (),
        population: tuple[str, ...] = (),
        require_registry: bool = False,
        clock: Clock | None = None,
        approved_tables: bool = True,
    ) -> RunningNode:
        """``population``/``require_registry``: the population registry (docs/adr/0508);
        off by default so a bed's records need no registry first.  ``approved_tables``:
        the shipped tables from ``scheme`` with approvals by the bed's authority
        (:func:`approved_tables_toml`); False: no table (the authority is still known).  Returns once the
        node's first monthly step is done: the last finished month is published, as a
        node started after its due hour does at once (H3, docs/adr/0514)."""
        assert self.ca is not None
        directory = self.root / region
        if not (directory / "node.toml").exists():
            mapping = approved_tables_toml(
                directory, scheme, self.authority, self.now, tables=approved_tables
            )
            init_region(
                directory, region, scheme, self.ca, self.now, peers=peers, sources=sources,
                population=population, require_registry=require_registry, extra_toml=mapping,
            )  # fmt: skip
        place_storage(directory / "node.toml")
        config = load_config(directory / "node.toml")
        known = {e.sha256 for e in read_registry(config.clients.registry)}
        for issued in self._issued:
            if issued.fingerprint not in known:
                add_client(config.clients.registry, client_entry(issued.region_id, issued.cert_pem))
        clock = clock or ManualClock(self.now)
        server = await NodeServer.create(config, clock=clock)
        await server.start()
        if server.monthly is not None:
            await server.monthly.run_once()  # waits for the step the start began
        idp = DevIdentityProvider(decode_private_key((directory / "keys/dev-idp.key").read_bytes()))
        node = RunningNode(region, directory, server, idp, clock)
        self.nodes[region] = node
        return node

    async def stop_node(self, region: str, grace: float = 1.0) -> None:
        node = self.nodes.pop(region)
        await node.server.stop(grace)

    def peer_channel(self, node: RunningNode, cert: NodeCertificate | None) -> aio.Channel:
        assert self.ca is not None
        ch = peer_channel(
            node.peer_target,
            self.ca.cert_pem,
            cert.cert_pem if cert else None,
            cert.key_pem if cert else None,
        )
        self._channels.append(ch)
        return ch

    def citizen_stub(self, node: RunningNode) -> node_pb2_grpc.CitizenServiceStub:
        assert self.ca is not None
        ch = citizen_channel(node.citizen_target, self.ca.cert_pem)
        self._channels.append(ch)
        return node_pb2_grpc.CitizenServiceStub(ch)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close(None)
        self._channels.clear()
        for region in list(self.nodes):
            await self.stop_node(region)


def honour_record(
    record_id: str, id_number: str, recognised_on: str = "2025-06-01"
) -> scoring_pb2.CreditRecord:
    return scoring_pb2.CreditRecord(
        record_id=record_id,
        subject_id=id_number,
        source="court",
        category="honour",
        act_id=f"act-{record_id}",
        recognised_on=recognised_on,
        level="city",
    )


def residence_fact(
    id_number: str, kind: str = "move_in", on: str = "2000-01-01", residence_kind: str = ""
) -> node_pb2.ResidenceFact:
    """One population-authority fact (``SubmitResidenceFacts``)."""
    return node_pb2.ResidenceFact(
        subject_id=id_number, kind=kind, on=on, residence_kind=residence_kind
    )


def resident(id_number: str, since: str = "2000-01-01") -> node_pb2.SubjectInfo:
    return node_pb2.SubjectInfo(
        subject_id=id_number, residence=[node_pb2.ResidenceBasis(kind="hukou", since=since)]
    )


def attestation_request(
    token: node_pb2.ConsentToken,
    id_number: str,
    purpose: str,
    *,
    target_scheme: str = "",
    nonce: bytes | None = None,
) -> node_pb2.AttestationRequest:
    return node_pb2.AttestationRequest(
        consent_token=token.token,
        subject_binding=subject_binding(token.binding_salt, id_number),
        nonce=nonce if nonce is not None else os.urandom(16),
        target_scheme=target_scheme,
        purpose=purpose,
    )


# ---------------------------------------------------------------- separate processes


def requester_channel(port: int, cert: NodeCertificate, ca_pem: bytes, i: int) -> aio.Channel:
    """Requester ``i``'s own mutual-TLS connection to a loopback port: a local
    subchannel pool, so channels never share a connection (and ``SO_REUSEPORT``
    can spread them over a node's peer-port workers)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=cert.key_pem, certificate_chain=cert.cert_pem
    )
    return aio.secure_channel(
        f"127.0.0.1:{port}",
        creds,
        options=[("grpc.use_local_subchannel_pool", 1), ("huxin.requester", i)],
    )


TEST_STORAGE_ENV = "HUXIN_TEST_STORAGE"  # "postgresql": spawned nodes use PostgreSQL
TEST_PG_ADMIN_ENV = "HUXIN_TEST_PG_ADMIN_URL"  # the test session's server (tests/support)


def place_storage(config: Path) -> None:
    """With ``HUXIN_TEST_STORAGE=postgresql`` (pytest ``--storage=postgresql``), give
    the node of ``config`` a fresh database on the test session's PostgreSQL server
    (``HUXIN_TEST_PG_ADMIN_URL``) by adding ``[storage] url`` to its file, unless the
    file names a storage already; otherwise do nothing (issue 18)."""
    if os.environ.get(TEST_STORAGE_ENV) != "postgresql":
        return
    text = config.read_text("utf-8")
    if "\n[storage]" in f"\n{text}":
        return
    admin = os.environ.get(TEST_PG_ADMIN_ENV)
    if not admin:
        raise RuntimeError(
            f"{TEST_STORAGE_ENV}=postgresql needs {TEST_PG_ADMIN_ENV} (tests/support)"
        )
    from node.store._pg_local import create_database

    url = create_database(admin, "node")
    config.write_text(f"{text.rstrip()}\n\n[storage]\nurl = {json.dumps(url)}\n", "utf-8")


def spawn_serve(
    config: Path,
    ready: Path,
    *,
    stdout: Any = subprocess.DEVNULL,
    stderr: Any = subprocess.PIPE,
    env: dict[str, str] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start ``huxin serve --config CONFIG --ready-file READY`` as a child process.

    The one way the test beds, the tests and the benchmarks start a node: a stale
    ready file is removed first, so its appearance always means *this* process
    listens.  ``env`` is added to the inherited environment."""
    ready.unlink(missing_ok=True)
    place_storage(config)
    return subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--config", str(config),
         "--ready-file", str(ready)],
        stdout=stdout, stderr=stderr, env={**os.environ, **(env or {})}, text=text,
    )  # fmt: skip


def wait_for_ready(
    proc: subprocess.Popen[Any],
    ready: Path,
    *,
    timeout: float = 60.0,
    what: str = "node",
    output: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Wait until ``proc`` wrote its ready file and return what it wrote (its ports).

    A process that exits first raises :class:`RuntimeError` with ``output()`` (what
    it printed); one still starting after ``timeout`` seconds raises
    :class:`TimeoutError`.  The bound only limits how long a broken start hangs on a
    busy machine: a healthy start returns as soon as the file is there."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: " + (output() if output else f"exit {proc.returncode}"))
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not become ready within {timeout:.0f} s")
        time.sleep(0.02)
    ports: dict[str, Any] = json.loads(ready.read_text())
    return ports


@dataclass
class NodeProcess:
    id: str
    config: Path
    proc: subprocess.Popen[bytes]
    ready: Path
    output: Path


class ServeProcess:
    """One ``huxin serve --config FILE`` child process, started and waited for.

    ``ports`` is what the node wrote to its ready file; :meth:`stop` sends a
    signal (SIGTERM: graceful; SIGKILL: crash) and reaps the process.
    ``timeout`` only bounds a start that hangs: the primary alone may wait 60 s
    for a peer-port worker on a busy machine (``START_TIMEOUT_SECONDS``).
    """

    def __init__(self, config: Path, *, timeout: float = 90.0) -> None:
        self.config = config
        ready = config.parent / "ready.json"
        self.p = spawn_serve(config, ready, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout

        def died() -> str:
            return self.p.stderr.read().decode() if self.p.stderr else "died"

        try:
            self.ports: dict[str, Any] = wait_for_ready(
                self.p, ready, timeout=timeout, what=str(config), output=died
            )
        except TimeoutError as slow:
            self.p.kill()
            raise RuntimeError(str(slow)) from slow
        self.stderr_text = ""
        self._first_month(deadline)

    def _first_month(self, deadline: float) -> None:
        """Wait until a region's first monthly step has ended (finished or failed): the
        node runs it in the background once it serves (H3, docs/adr/0514), and grades
        are refused ``SCORE_NOT_PUBLISHED`` until a month is published."""
        config = load_config(self.config)
        if config.role != "region":
            return
        while not _month_step_done(config.storage):
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.config}: no monthly step ended")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal, reap, and keep what the node wrote to stderr in :attr:`stderr_text`."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait(timeout=30)
        if self.p.stderr:
            self.stderr_text = self.p.stderr.read().decode(errors="replace")
            self.p.stderr.close()


def _month_step_done(storage: StorageConfig) -> bool:
    try:
        conn = connect(storage, readonly=True)
    except (StorageError, OperationalError):  # not created or not migrated yet
        return False
    try:
        return bool(month_steps_ended(conn))
    except OperationalError:  # a table not there yet
        return False
    finally:
        conn.close()


@dataclass
class FederationProcesses:
    """``huxin serve`` processes of a federation laid out by ``huxin init federation``.

    Each node is its own OS process with its own SQLite file and certificate;
    the harness only starts/stops them (by pid) and builds client channels.
    """

    layout: FederationLayout
    procs: dict[str, NodeProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    commands: list[tuple[str, ...]] = field(default_factory=list)  # argv of each `huxin` run

    def huxin(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a ``huxin`` command in a child process (``stdin``: text fed to it, e.g. an
        ID number for ``--subject-id-file -``, which must never be on the command line)."""
        self.commands.append(args)
        return subprocess.run(
            [sys.executable, "-m", "node", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, **self.env},
            timeout=300,
        )

    def start(self, node_id: str, *, wait: bool = True) -> NodeProcess:
        node = self.layout.nodes[node_id]
        ready = node.directory / "ready.json"
        output = node.directory / "serve.out"
        with output.open("ab") as out:
            proc = spawn_serve(
                node.config, ready, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        np = NodeProcess(node_id, node.config, proc, ready, output)
        self.procs[node_id] = np
        if wait:
            self.wait_ready(node_id)
        return np

    def wait_ready(self, node_id: str, timeout: float = 60.0) -> None:
        np = self.procs[node_id]

        def exited() -> str:
            tail = np.output.read_text(errors="replace")[-2000:]
            return f"exited with {np.proc.returncode}: {tail}"

        wait_for_ready(np.proc, np.ready, timeout=timeout, what=node_id, output=exited)

    def stop(self, node_id: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        np = self.procs.pop(node_id)
        if np.proc.poll() is None:
            np.proc.send_signal(sig)
            try:
                np.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                np.proc.kill()
                np.proc.wait()
        return int(np.proc.returncode)

    def stop_all(self) -> None:
        for node_id in list(self.procs):
            self.stop(node_id)

    def ca_pem(self) -> bytes:
        return (self.layout.root / "ca" / "ca.pem").read_bytes()

    def channel(self, node_id: str, client: str | None = None) -> grpc.Channel:
        """A mutual-TLS channel to a node's peer port as ``client`` (a clients/ cert) or,
        with ``client=None``, as the node ``node_id`` itself is not: pass a node id to use
        that node's own certificate."""
        target = self.layout.nodes[node_id].peer
        if client is None:
            raise ValueError("client identity required")
        if client in self.layout.clients:
            cert_path, key_path = self.layout.clients[client]
        else:
            d = self.layout.nodes[client].directory / "tls"
            cert_path, key_path = d / "node.pem", d / "node.key"
        creds = grpc.ssl_channel_credentials(
            self.ca_pem(), key_path.read_bytes(), cert_path.read_bytes()
        )
        return grpc.secure_channel(target, creds)

    def citizen_channel(self, node_id: str) -> grpc.Channel:
        port = self.layout.nodes[node_id].citizen_port
        creds = grpc.ssl_channel_credentials(self.ca_pem())
        return grpc.secure_channel(f"127.0.0.1:{port}", creds)

    def idp(self, node_id: str) -> DevIdentityProvider:
        key = self.layout.nodes[node_id].directory / "keys" / "dev-idp.key"
        return DevIdentityProvider(decode_private_key(key.read_bytes()))

    def identity(self, node_id: str, id_number: str) -> tuple[tuple[str, bytes], ...]:
        return identity_metadata(self.idp(node_id).assertion(id_number, node_id, int(time.time())))
