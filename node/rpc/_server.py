"""The region node server: two grpc.aio ports, health, reflection, metrics, shutdown.

* The **peer port** requires mutual TLS: a client certificate issued by the
  federation CA is verified in the handshake; the caller's identity is the
  region id in that certificate.  It serves PeerService and SourceService.
* The **citizen port** is server-authenticated TLS only (citizens have no
  certificates; they present a signed identity assertion per call).  It
  serves CitizenService.
* Both serve the standard gRPC health and reflection services (listing
  every service the port serves, HubService on a hub's peer port too); both
  pass every call through :class:`~node.rpc._guard.GuardInterceptor`, which checks
  a citizen's identity assertion on the call's headers on the citizen port.
* Each port accepts a bounded number of connections, closes those that do not
  finish TLS in time or stay idle, and advertises a stream limit per
  connection (:mod:`node.rpc._port_limits`, docs/adr/0321); the soft descriptor
  limit is raised to the hard one before the ports open.

With ``[listen] peer_workers`` > 1 the peer port is bound with SO_REUSEPORT
and :meth:`NodeServer.start_worker` serves it from further processes
(:mod:`node.rpc._workers`, docs/adr/0312); a worker serves the peer port only and
runs no background work.  Background work (monthly run, rights scheduler, peer
sync, push, a hub's trust-list schedule) runs while the process holds the node's
lease (:mod:`node.rpc._background`, docs/adr/0702): always on SQLite; on
PostgreSQL in one replica at a time, the others following what it persists.

Invariants: the database is opened and migrated, and the transparency log's
tree rebuilt from committed rows, before the ports open; on :meth:`stop` the
health status turns NOT_SERVING first, then the server stops accepting calls
and waits up to ``grace`` seconds for in-flight calls, and only then the
database is closed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from dataclasses import dataclass

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

# The public alias of the asyncio servicer; the type stubs do not list it.
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from node.core._clock import Clock, SystemClock
from node.core._config import NodeConfig
from node.core._observe import Metrics, log_event
from node.core._secrets import NodeSecrets, load_secrets
from node.exchange._mapping import Mapper
from node.exchange._throttle import QueryThrottle
from node.federation._callers import CallerCheck
from node.federation._route import Router, RoutingPeerServicer
from node.federation._sync import PeerSync
from node.federation._trust import open_trust
from node.hub._role import HubRoles, open_outbox
from node.model._rollout import SchemeInForce, active_scheme_of, follow_rollout
from node.monthly._scheduler import MonthlyScheduler
from node.pb.v1 import hub_pb2, node_pb2_grpc
from node.recognition import FOLLOW_SECONDS, TablesFollower, listed_versions
from node.rights._events import build_calendar
from node.rights._scheduler import RightsScheduler
from node.rpc._background import BackgroundGate
from node.rpc._citizen import CitizenServicer
from node.rpc._context import NodeContext
from node.rpc._guard import GuardInterceptor
from node.rpc._identity import IdentityVerifier, replay_cache
from node.rpc._port_limits import (
    ConnectionBudgetError,
    ConnectionLimits,
    connection_limits,
    port_options,
    raise_descriptor_limit,
)
from node.rpc._source import SourceServicer
from node.rpc._workers import Follower, worker_metrics_address
from node.store._consents import ConsentsRepository
from node.store._db import Database
from node.store._lease import lease_for
from node.store._partitions import PartitionKeeper
from node.store._records import RecordsRepository
from node.store._translog import TransparencyLog
from scoring import WorkingDayCalendar, load_scheme

__all__ = ["PUBLIC_CITIZEN_METHODS", "ListenError", "NodeServer", "Ports"]

_PEER_SERVICES = ("huxin.v1.PeerService", "huxin.v1.SourceService")
_HUB_SERVICES = (hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name,)  # hub role
_CITIZEN_SERVICES = ("huxin.v1.CitizenService",)
# Citizen-port methods that need no identity assertion; every other one does.
PUBLIC_CITIZEN_METHODS = frozenset({"/huxin.v1.CitizenService/GetIncentiveCatalogue"})


class ListenError(Exception):
    """A listen address that cannot be bound (in use, unresolvable, not ours)."""

    def __init__(self, field: str, address: str, reason: str) -> None:
        super().__init__(f"{field}: cannot listen on {address!r} ({reason})")
        self.field = field


def _bind(server: aio.Server, address: str, creds: grpc.ServerCredentials, field: str) -> int:
    try:
        port = server.add_secure_port(address, creds)
    except RuntimeError:  # grpc's own log line (stderr) says why: in use, no such host...
        raise ListenError(field, address, "address in use or not available") from None
    if port == 0 and not address.endswith(":0"):  # older grpc reports failure as 0
        raise ListenError(field, address, "bind failed")
    return port


def _freeze_startup_heap() -> None:
    """Move every object alive now into the collector's permanent generation.

    What a started node holds (modules, protobuf descriptors, the scheme and its
    tables, keys, the log's tree) lives as long as the process; left in the
    generations, each full collection traverses it again while requests
    allocate (docs/adr/0325: 1–23% less CPU per attestation request in three
    paired slices).  Reference counting still frees frozen objects; only a
    cycle among them waits for :meth:`NodeServer.stop`, which unfreezes, so an
    in-process node (tests) leaves the collector as it found it.
    """
    gc.freeze()


@dataclass(frozen=True, slots=True)
class Ports:
    peer: int
    citizen: int
    metrics: int | None


class NodeServer:
    """One region node: build with :meth:`create`, then :meth:`start` / :meth:`stop`."""

    def __init__(self, ctx: NodeContext, tables: TablesFollower | None = None) -> None:
        self.ctx = ctx
        self.tables = tables  # C3, H13: re-reads installed mapping tables (docs/adr/0207)
        self._peer_server: aio.Server | None = None
        self._citizen_server: aio.Server | None = None
        self._health: list[health_aio.HealthServicer] = []
        self._guards: list[GuardInterceptor] = []
        self._router: Router | None = None
        self._sync: PeerSync | None = None
        self._follower: Follower | None = None
        self._gate: BackgroundGate | None = None
        self.ports: Ports | None = None
        self._connections: ConnectionLimits | None = None
        self.hub_role = HubRoles(ctx)  # hub: HubService + trust-list schedule, or push loop
        # rights: objection timers and third-party query rate (docs/adr/0500, 0503)
        self.scheduler = RightsScheduler(ctx, ctx.config.rights.scheduler_interval_seconds)
        # H3: a region runs each finished month itself; a hub scores nobody (docs/adr/0514)
        self.monthly = MonthlyScheduler(ctx) if ctx.config.role == "region" else None
        # PostgreSQL: monthly partitions made ahead and kept to retention (issue 18)
        self.partitions = PartitionKeeper(ctx.db, ctx.config.storage.retention_months, ctx.today)
        # shared by the peer-port worker processes of this node (docs/adr/0312, 0314)
        rights, now = ctx.config.rights, lambda: ctx.clock.now().timestamp()
        self.throttle = (
            QueryThrottle.shared(rights, now, f"{ctx.config.database}.throttle")
            if ctx.config.listen.peer_workers > 1
            else QueryThrottle(rights, now)
        )

    @classmethod
    async def create(
        cls,
        config: NodeConfig,
        *,
        clock: Clock | None = None,
        secrets: NodeSecrets | None = None,
    ) -> NodeServer:
        secrets = secrets or load_secrets(config)
        calendar = build_calendar(config.rights)  # rights: working days (H15, N7)
        db = await Database.open(config.storage)
        try:
            return await cls._build(config, db, secrets, calendar, clock)
        except BaseException:
            await db.close()  # its threads would keep the process alive after the error
            raise

    @classmethod
    async def _build(
        cls,
        config: NodeConfig,
        db: Database,
        secrets: NodeSecrets,
        calendar: WorkingDayCalendar,
        clock: Clock | None,
    ) -> NodeServer:
        shipped = load_scheme(config.scheme)
        scheme = await active_scheme_of(db, shipped, (clock or SystemClock()).now().date())  # H11
        log = TransparencyLog(db, config.region, secrets.signing)
        await log.load()
        clock = clock or SystemClock()
        trust = await open_trust(config, db, int(clock.now().timestamp()))
        in_force = SchemeInForce(shipped, scheme)  # rights: switched live (H11, ADR 0507)
        # C3, H13: verified governed tables; a bad [mapping] file stops the start here
        tables = TablesFollower(config, db, trust, secrets.key_set, in_force)
        mapper = Mapper(in_force, await tables.start(), target_versions=listed_versions(trust))
        ctx = NodeContext(
            config=config,
            secrets=secrets,
            db=db,
            in_force=in_force,
            clock=clock,
            metrics=Metrics(config.region),
            identity=IdentityVerifier(
                config.region,
                config.identity.public_keys,
                secrets.storage_secret,
                config.identity.max_age_seconds,
                replay=replay_cache(config),  # each assertion once (docs/adr/0416)
            ),
            records=RecordsRepository(db, secrets.storage_secret, secrets.sealer, calendar),
            consents=ConsentsRepository(db),
            log=log,
            mapper=mapper,
            trust=trust,
            calendar=calendar,
            outbox=open_outbox(config, db, secrets),  # hub: outbox pushed to the hub (H13)
            callers=CallerCheck.for_node(config, trust, secrets.tls_cert),  # ADR 0415
        )
        return cls(ctx, tables)

    @property
    def router(self) -> Router | None:
        """The peer port's router (None before :meth:`start`): the HTTP channel routes
        an integrator's request for another region's consent through it too."""
        return self._router

    def connection_limits(self) -> ConnectionLimits:
        """Connections per port in this process (the descriptor limit raised first)."""
        if self._connections is None:
            listen = self.ctx.config.listen
            try:
                self._connections = connection_limits(listen, raise_descriptor_limit())
            except ConnectionBudgetError as exc:
                address = listen.citizen if "citizen" in exc.field else listen.peer
                raise ListenError(exc.field, address, exc.message) from None
        return self._connections

    def _server(self, *, citizen: bool, reuse_port: bool = False) -> aio.Server:
        """The peer port (mutual TLS, ``citizen`` False) or the citizen port."""
        ctx = self.ctx
        guard = GuardInterceptor(
            ctx.config.limits,
            ctx.metrics,
            require_certificate=not citizen,
            trust=ctx.trust,
            throttle=None if citizen else self.throttle,
            identity=ctx.identity if citizen else None,
            now=ctx.now_s,
            public_methods=PUBLIC_CITIZEN_METHODS if citizen else frozenset(),
            request_timeout=ctx.config.listen.request_timeout_seconds,
            max_public_calls=ctx.config.listen.citizen_max_public_calls if citizen else None,
            public_request_timeout=ctx.config.listen.public_request_timeout(),
            callers=None if citizen else ctx.callers,
        )
        self._guards.append(guard)
        return aio.server(interceptors=[guard], options=self._options(citizen, reuse_port))

    def _options(self, citizen: bool, reuse_port: bool) -> list[tuple[str, int]]:
        """gRPC server options: the port's limits (:mod:`node.rpc._port_limits`); the peer
        port of a node with workers recycles its connections (``[listen]
        peer_connection_age_seconds``) so the kernel spreads long-lived peer
        connections over the processes again."""
        config = self.ctx.config
        listen, connections = config.listen, self.connection_limits()
        # gRPC core stops only what no peer may send: the guard enforces each peer's own
        # limit with a reason (MESSAGE_TOO_LARGE), and a per-peer limit above the default
        # takes effect at all.
        largest = max(
            [config.limits.max_message_bytes, *config.limits.per_peer_message_bytes.values()]
        )
        options = [
            ("grpc.max_receive_message_length", largest),
            ("grpc.max_send_message_length", largest),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            *port_options(
                listen,
                connections=connections.citizen if citizen else connections.peer,
                streams=listen.citizen_max_streams if citizen else listen.peer_max_streams,
            ),
        ]
        age = config.listen.peer_connection_age() if reuse_port else 0
        if age > 0:
            options += [
                ("grpc.max_connection_age_ms", age * 1000),
                ("grpc.max_connection_age_grace_ms", int(config.grace_seconds * 1000)),
            ]
        return options

    async def _add_health(self, server: aio.Server, services: tuple[str, ...]) -> None:
        servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        for name in ("", *services):
            await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._health.append(servicer)
        reflection.enable_server_reflection(
            (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )

    async def _make_peer_server(self, address: str) -> tuple[aio.Server, int]:
        """The mutual-TLS peer port (shared with worker processes when configured)."""
        s = self.ctx.secrets
        peer = self._server(citizen=False, reuse_port=self.ctx.config.listen.peer_workers > 1)
        self._router = Router(self.ctx)
        node_pb2_grpc.add_PeerServiceServicer_to_server(
            RoutingPeerServicer(self.ctx, self._router), peer
        )
        node_pb2_grpc.add_SourceServiceServicer_to_server(SourceServicer(self.ctx), peer)
        await self.hub_role.add_services(peer)  # hub: HubService when role = "hub"
        if self.hub_role.servicer is not None:  # federation: RouteAttestation via the router
            self.hub_role.servicer.router = self._router.route_for_hub
        hub = _HUB_SERVICES if self.hub_role.servicer is not None else ()
        await self._add_health(peer, (*_PEER_SERVICES, *hub))
        creds = grpc.ssl_server_credentials(
            [(s.tls_key, s.tls_cert)], root_certificates=s.tls_ca, require_client_auth=True
        )
        return peer, _bind(peer, address, creds, "listen.peer")

    async def _follow_trust(self) -> None:
        """A list the primary persisted (workers, docs/adr/0312)."""
        await self.ctx.trust.follow(self.ctx.db, self.ctx.now_s())

    async def _follow_rollout(self) -> None:
        """The scheme version in force today (H11; every process, each second)."""
        await follow_rollout(self.ctx.db, self.ctx.in_force, self.ctx.today())

    async def follow_tables(self) -> bool:
        """Installed tables changed (``huxin mapping install|retire``), a new version in
        force or a new trust list: the mapper's set re-read (every process, each second)."""
        if self.tables is None:
            return False
        return await self.tables.follow(self.ctx.mapper.replace)

    async def start_worker(self, index: int, peer_port: int, parent: int) -> Ports:
        """Serve the peer port from a worker process (docs/adr/0312): no citizen
        port, no background work; trust list and scheme in force are re-read
        from the database every second."""
        cfg = self.ctx.config
        host = cfg.listen.peer.rpartition(":")[0]
        peer, port = await self._make_peer_server(f"{host}:{peer_port}")
        if port != peer_port:
            raise RuntimeError(f"worker {index} could not share peer port {peer_port}")
        await peer.start()
        self._peer_server = peer
        address = worker_metrics_address(cfg.listen.metrics, index)
        metrics_port = self._serve_metrics(address) if address else None
        self.ports = Ports(port, 0, metrics_port)

        self._follower = Follower(
            [self._follow_trust, self._follow_rollout, self.follow_tables],
            1.0,
            parent,
            lambda: os.kill(os.getpid(), signal.SIGTERM),
        )
        self._follower.start()
        log_event("peer worker started", region=cfg.region, worker=index, peer_port=port)
        _freeze_startup_heap()
        return self.ports

    async def start(self) -> Ports:
        cfg, s = self.ctx.config, self.ctx.secrets
        peer, peer_port = await self._make_peer_server(cfg.listen.peer)
        citizen = self._server(citizen=True)
        node_pb2_grpc.add_CitizenServiceServicer_to_server(CitizenServicer(self.ctx), citizen)
        await self._add_health(citizen, _CITIZEN_SERVICES)
        citizen_creds = grpc.ssl_server_credentials([(s.tls_key, s.tls_cert)])
        citizen_port = _bind(citizen, cfg.listen.citizen, citizen_creds, "listen.citizen")
        await peer.start()
        await citizen.start()
        self._peer_server, self._citizen_server = peer, citizen
        metrics_port = self._serve_metrics(cfg.listen.metrics) if cfg.listen.metrics else None
        self.ports = Ports(peer_port, citizen_port, metrics_port)
        # background work runs while this process holds the node's lease (ADR 0702)
        self._gate = BackgroundGate(
            lease_for(cfg.storage), self._begin_background, self._end_background, region=cfg.region
        )
        await self._gate.start()
        # versions switch when the workers switch (each second); tables follow in every case;
        # replicas on one PostgreSQL follow what the lease holder persisted (ADR 0702)
        shared = cfg.storage.dialect == "postgresql"
        steps = [self._follow_rollout] if cfg.listen.peer_workers > 1 or shared else []
        steps = [self._follow_trust, *steps] if shared else steps
        self._follower = Follower([*steps, self.follow_tables], FOLLOW_SECONDS, 0, lambda: None)
        self._follower.start()
        log_event(
            "node started",
            region=cfg.region,
            scheme=self.ctx.scheme.key,
            peer_port=peer_port,
            citizen_port=citizen_port,
            metrics_port=metrics_port,
            log_size=self.ctx.log.size,
            descriptors=self.connection_limits().descriptors,
            peer_connections=self.connection_limits().peer,
            citizen_connections=self.connection_limits().citizen,
            citizen_max_public_calls=cfg.listen.citizen_max_public_calls,
            public_request_timeout=cfg.listen.public_request_timeout(),
        )
        _freeze_startup_heap()
        return self.ports

    async def _begin_background(self) -> None:
        """The work only the lease holder runs (ADR 0702)."""
        self.hub_role.start()  # hub: background trust-list signing / push loop
        hub = self.hub_role.hub  # federation: background peer sync (a hub adopts its own lists)
        self._sync = PeerSync.start_for(self.ctx, local_trust=hub.trust_list if hub else None)
        self.scheduler.start()  # rights: objection timers
        self.partitions.start()  # PostgreSQL only: partitions ahead, retention
        if self.monthly is not None:
            self.monthly.start()  # H3: the monthly run, once per month

    async def _end_background(self) -> None:
        """Stop what :meth:`_begin_background` started (each part stops idempotently)."""
        await self.hub_role.stop()  # hub: stop push loop / schedules first
        sync, self._sync = self._sync, None
        if sync is not None:
            await sync.stop()
        await self.scheduler.stop()
        await self.partitions.stop()
        if self.monthly is not None:
            await self.monthly.stop()

    @property
    def background_running(self) -> bool:
        """This process holds the lease and runs the background work."""
        return self._gate is not None and self._gate.running

    def _serve_metrics(self, address: str) -> int:
        try:
            return self.ctx.metrics.serve(address)
        except (OSError, ValueError) as exc:
            raise ListenError("listen.metrics", address, str(exc)) from None

    def inflight(self) -> int:
        """Calls currently being handled (all peers, both ports)."""
        return sum(g.inflight() for g in self._guards)

    async def wait(self) -> None:
        if self._peer_server is not None:
            await self._peer_server.wait_for_termination()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful: NOT_SERVING, stop accepting, finish in-flight calls, close the DB."""
        grace = self.ctx.config.grace_seconds if grace is None else grace
        if self._gate is not None:  # the background work first, then the lease (ADR 0702)
            await self._gate.stop()
        if self._follower is not None:
            await self._follower.stop()
        for servicer in self._health:
            await servicer.enter_graceful_shutdown()
        servers = [x for x in (self._peer_server, self._citizen_server) if x is not None]
        await asyncio.gather(*(server.stop(grace) for server in servers))
        self._peer_server = self._citizen_server = None
        if self._router is not None:
            await self._router.close()
        for guard in self._guards:  # access lines still queued after the last calls
            guard.flush()
        self.ctx.metrics.stop()
        self.throttle.close()
        self.ctx.identity.close()
        await self.ctx.db.close()
        gc.unfreeze()  # what start froze is collectable again (see _freeze_startup_heap)
        log_event("node stopped", region=self.ctx.config.region)
