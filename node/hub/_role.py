"""Wiring of the hub helper's parts into ``huxin serve`` (:class:`node.rpc._server.NodeServer`).

* every node gets an :class:`~node.store._outbox.Outbox` (a region's province key
  from ``[hub] province_key``, if any; a hub never loads one);
* ``role = "hub"``: first :func:`refuse_province_key` (a hub holds nothing that
  computes or reverses a province pseudonym, ADR 0400), then HubService on the
  peer port (mutual TLS), the registry loaded, a trust list signed at start if
  due, and a background task that re-signs it on schedule
  (``trust_list_refresh_seconds``, well before ``trust_list_ttl_seconds``);
* ``role = "region"`` with a hub configured and ``push_interval_seconds > 0``:
  the background push loop (:class:`~node.federation._push.Pusher`), which first queues
  the signed status list whenever its entries changed (``status_list`` event).

Invariant: background tasks are stopped before the servers stop and the
database closes (``stop`` first in :meth:`NodeServer.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from grpc import aio

from keys.pb.v1 import attestation_pb2
from node.core._config import ConfigError, NodeConfig
from node.core._observe import log_event
from node.core._secrets import NodeSecrets
from node.federation._push import Pusher, PushError
from node.federation._tlscert import certificate_pins
from node.hub._ingest import Hub
from node.hub._service import HubServicer
from node.monthly._snapshots import read_province_key
from node.pb.v1 import hub_pb2_grpc
from node.rpc._context import NodeContext
from node.store import Connection
from node.store._db import Database
from node.store._outbox import Outbox, last_status_list_sync
from node.store._status_list import render_status_list

__all__ = ["PROVINCE_KEY_FILE", "HubRoles", "open_outbox", "refuse_province_key"]

PROVINCE_KEY_FILE = "province.key"  # the name `huxin init federation` gives it in regions


def _status_content(payload: bytes) -> bytes:
    m = attestation_pb2.StatusList.FromString(payload)
    return hashlib.sha256(b"%s|%d|" % (m.list_id.encode(), m.size) + m.bits).digest()


def open_outbox(config: NodeConfig, db: Database, secrets: NodeSecrets) -> Outbox:
    path = config.hub.province_key if config.role == "region" else None
    return Outbox(db, secrets.sealer, read_province_key(path) if path else None)


def refuse_province_key(config: NodeConfig) -> None:
    """Fail closed when a hub could reverse province pseudonyms: a ``province.key``
    next to its keys or its database (e.g. left by an older ``init federation``).

    ID numbers have little entropy: with the key, every pushed pseudonym is a person
    after a brute-force search.  The config loader already refuses ``[hub]
    province_key`` on a hub; this catches the file itself.  Regions are not checked."""
    if config.role != "hub":
        return
    for folder in {config.keys.root.parent, config.database.parent}:
        stray = folder / PROVINCE_KEY_FILE
        if stray.exists():
            raise ConfigError(
                "hub.province_key",
                f"{str(stray)!r}: a hub must not hold the province key (it would let the hub"
                " re-identify every pushed pseudonym); delete it, only the regions keep it",
            )


class HubRoles:
    """Hub service and schedules (hub role) or the push loop (region role)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.hub: Hub | None = None
        self.servicer: HubServicer | None = None
        self.pusher: Pusher | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def add_services(self, server: aio.Server) -> None:
        cfg, s = self.ctx.config, self.ctx.secrets
        if cfg.role != "hub":
            return
        refuse_province_key(cfg)
        hub = Hub(
            self.ctx.db, cfg.region, s.signing, s.root, s.key_set_envelope, cfg.hub,
            self.ctx.metrics.registry,
            endpoints=(cfg.hub.endpoint,) if cfg.hub.endpoint else (),
            tls_pins=lambda: certificate_pins(cfg, s.tls_cert),  # ADR 0415
        )  # fmt: skip
        await hub.refresh_trust_list(self.ctx.now_s())
        self.hub = hub
        self.servicer = HubServicer(self.ctx, hub)
        hub_pb2_grpc.add_HubServiceServicer_to_server(self.servicer, server)

    def start(self) -> None:
        cfg = self.ctx.config
        if self.hub is not None:
            self._tasks.append(asyncio.ensure_future(self._trust_schedule(self.hub)))
        elif cfg.role == "region" and cfg.hub.push_interval_seconds > 0:
            try:
                self.pusher = Pusher(self.ctx.db, cfg, self.ctx.secrets)
            except PushError as exc:  # no hub, or no pinned hub key: never push unverified
                if exc.code == "PUSH_NOT_CONFIGURED":  # a standalone region: nothing is wrong
                    log_event("push off: no provincial hub configured", reason=exc.code)
                else:
                    log_event("push disabled", 30, reason=exc.code, field=exc.field or "[hub]")
                return
            self._tasks.append(
                asyncio.ensure_future(self.pusher.run(self.ctx.now_s, self.queue_status_list))
            )

    async def queue_status_list(self, now: int) -> int | None:
        """Append a ``status_list`` event when the list's entries changed since the last one."""
        outbox = self.ctx.outbox
        if outbox is None:
            return None
        env = await render_status_list(
            self.ctx.db, self.ctx.config.region, self.ctx.secrets.signing, self.ctx.clock.now()
        )
        content = _status_content(env.payload)

        def unit(conn: Connection) -> int | None:
            last = last_status_list_sync(conn)
            if last is not None:
                prev = attestation_pb2.Envelope.FromString(last).payload
                if _status_content(prev) == content:
                    return None
            return outbox.status_list_sync(conn, env.to_bytes(), now)

        return await self.ctx.db.write_unit(unit)

    async def _trust_schedule(self, hub: Hub) -> None:
        period = max(1.0, min(60.0, self.ctx.config.hub.trust_list_refresh_seconds / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await hub.refresh_trust_list(self.ctx.now_s())
            except Exception as exc:  # keep the schedule alive; the error is logged
                log_event("trust list refresh failed", 40, exc=type(exc).__name__)

    async def stop(self) -> None:
        if self.pusher is not None:
            self.pusher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
