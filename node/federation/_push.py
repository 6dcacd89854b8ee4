"""The region's push client: outbox events to the provincial hub (H13), resumable.

One push cycle (:meth:`Pusher.push_once`):

1. ask the hub for its cursor (``GetCursor``) — the highest seq it stored for us —
   and fetch any receipts we lack up to it (``GetReceipts``: a previous stream
   may have been cut after the hub committed but before it answered);
2. open a ``Push`` stream with at most ``max_items_per_push`` events with
   ``seq > cursor``; repeat while more events wait; the LAST stream of the cycle
   ends with our log checkpoint, signed now, with the RFC 9162 consistency proof
   from the size the hub witnessed — last, so a log the hub finds inconsistent
   never holds back the data (H13).

Invariants: nothing is ever skipped — events go out strictly in seq order
starting at the hub's own cursor, so a crash, restart or partition on either
side resumes exactly where the hub stopped, and the hub's duplicate check makes
a resent event harmless; the pusher refuses to run without a pinned hub root
key (``HUB_KEY_REQUIRED``); a receipt is stored — and its event counted as
acknowledged — only if it verifies under the hub's key set and names our region,
the hub, the event's seq, id and kind, its content hash and leaf count
(:func:`check_receipt`), else ``BAD_RECEIPT`` naming the field; backoff is per hub (exponential, capped, reset on success); an
outbox BEHIND the hub's cursor (a restored database) is an error, never silently
"caught up".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from grpc import aio

from keys import (
    KeyPair,
    MerkleTree,
    VerificationError,
    sign_checkpoint,
    verified_signer,
    verify_key_set,
)
from keys.pb.v1 import attestation_pb2
from node.core._config import NodeConfig
from node.core._errors import CodedNodeError
from node.core._observe import log_event
from node.core._secrets import NodeSecrets
from node.hub._ingest import RECEIPT_TYPE, Hub
from node.pb.v1 import hub_pb2, hub_pb2_grpc
from node.rpc._client import peer_channel, reason_of
from node.store import Connection
from node.store import _push as push_store
from node.store import _snapshot_batches as batches
from node.store._db import Database
from node.store._outbox import OutboxEvent, event_at_sync, last_seq_sync, read_after_sync
from node.store._translog import leaves_from

__all__ = ["HubTarget", "PushError", "PushResult", "Pusher", "check_receipt", "hub_target"]


class PushError(CodedNodeError):
    """A push that cannot proceed; ``code`` is stable, ``field`` names what is wrong."""


@dataclass(frozen=True, slots=True)
class HubTarget:
    hub_id: str
    endpoint: str
    hub_key: bytes  # pinned hub root public key; b"" = not configured (Pusher refuses)
    server_name: str


def hub_target(config: NodeConfig) -> HubTarget:
    """``[hub]`` settings, falling back to ``[federation]``'s hub, endpoint and key."""
    h = config.hub
    fed = getattr(config, "federation", None)
    hub_id = h.hub_id or (getattr(fed, "hub", "") if fed else "")
    endpoint = h.endpoint or (getattr(fed, "hub_endpoint", "") if fed else "")
    key = h.hub_key or (getattr(fed, "hub_key", b"") if fed else b"")
    if not hub_id or not endpoint:
        raise PushError("PUSH_NOT_CONFIGURED", "no hub id/endpoint in [hub] or [federation]")
    return HubTarget(hub_id, endpoint, bytes(key), h.server_name)


@dataclass(frozen=True, slots=True)
class PushResult:
    hub: str
    cursor: int
    events: int  # events acknowledged in this cycle
    receipts: int  # receipts stored in this cycle (including fetched ones)
    witnessed_size: int


def _item(conn: Connection, ev: OutboxEvent) -> hub_pb2.PushItem:
    item = hub_pb2.PushItem(seq=ev.seq, event_id=ev.event_id, kind=ev.kind)
    if ev.kind == "snapshot_batch":
        meta = batches.batch_meta(conn, ev.event_id)
        if meta is None:
            raise PushError("BATCH_MISSING", f"snapshot batch {ev.event_id} is not stored")
        b = item.snapshot_batch
        b.batch_id = ev.event_id
        b.period, b.scheme_id, b.scheme_version, b.payload_type = (str(x) for x in meta)
        b.checkpoint.ParseFromString(ev.payload)
        payloads = []
        for idx, payload, leaf in batches.batch_payloads(conn, ev.event_id):
            if payload is None:
                b.redacted.add(index=idx, leaf_hash=bytes(leaf))
                payloads.append(b"")
            else:
                payloads.append(bytes(payload))
        b.payloads.extend(payloads)
    elif ev.kind == "status_list":
        item.status_list.ParseFromString(ev.payload)
    else:
        item.deregistration.ParseFromString(ev.payload)
    return item


def _leaf_counts(item: hub_pb2.PushItem) -> tuple[int, int]:
    b = item.snapshot_batch
    return len(b.payloads) - len(b.redacted), len(b.payloads)


def check_receipt(
    conn: Connection, receipt: hub_pb2.Receipt, sent: hub_pb2.PushItem | None
) -> None:
    """Compare a verified receipt with the outbox event of its seq (and, when this
    stream sent it, with the exact item): event id, kind, content hash and leaf count.

    A snapshot batch's receipt must count exactly the leaves sent; a receipt fetched
    later (``GetReceipts``) may count leaves the region has since deleted (H2), so it
    must lie between what the region still holds and the batch's size.  A status list
    stores no leaves; a deregistration's count is the hub's own (not checked)."""
    seq = receipt.seq
    row = event_at_sync(conn, seq)
    if row is None or row[0] != receipt.event_id:
        raise PushError(
            "BAD_RECEIPT", f"receipt for seq {seq} names another event", field="event_id"
        )
    kind, payload = str(row[1]), bytes(row[2]) if row[2] is not None else b""
    if receipt.kind != kind:
        raise PushError("BAD_RECEIPT", f"receipt for seq {seq} names kind {receipt.kind!r}",
                        field="kind")  # fmt: skip
    expected = hub_pb2.PushItem(kind=kind)
    if kind == "snapshot_batch":
        expected.snapshot_batch.checkpoint.ParseFromString(payload)
    elif kind == "status_list":
        expected.status_list.ParseFromString(payload)
    else:
        expected.deregistration.ParseFromString(payload)
    if not hmac.compare_digest(Hub._content(expected), bytes(receipt.content_sha256)):
        raise PushError(
            "BAD_RECEIPT", f"receipt for seq {seq}: content differs from the event sent",
            field="content_sha256",
        )  # fmt: skip
    if kind == "snapshot_batch":
        if sent is not None:
            low, _n = _leaf_counts(sent)
            high = low
        else:
            low, high = batches.batch_leaf_counts(conn, receipt.event_id)
        ok = int(low) <= receipt.leaves <= int(high)
    else:
        ok = kind == "deregistration" or receipt.leaves == 0
    if not ok:
        raise PushError(
            "BAD_RECEIPT", f"receipt for seq {seq} counts {receipt.leaves} leaves",
            field="leaves",
        )  # fmt: skip


class Pusher:
    """Pushes one node's outbox to its hub (background loop or one shot)."""

    def __init__(
        self, db: Database, config: NodeConfig, secrets: NodeSecrets, *, now: object = None
    ) -> None:
        self._db = db
        self._config = config
        self._secrets = secrets
        self.target = hub_target(config)
        if not self.target.hub_key:
            raise PushError(
                "HUB_KEY_REQUIRED",
                "no pinned hub root key ([hub] or [federation] hub_key): receipts could"
                " not be verified",
                field="hub.hub_key",
            )
        self._tree = MerkleTree()
        self._hub_keys: dict[str, bytes] | None = None
        self._failures = 0
        self._stop = asyncio.Event()

    def _channel(self) -> aio.Channel:
        s = self._secrets
        return peer_channel(
            self.target.endpoint, s.tls_ca, s.tls_cert, s.tls_key,
            server_name=self.target.server_name or None,
            max_bytes=self._config.limits.max_message_bytes,
        )  # fmt: skip

    # -- local state -------------------------------------------------------------------
    def _log_checkpoint(
        self, conn: Connection, witnessed: int, now: int
    ) -> hub_pb2.PushItem | None:
        tree = self._tree
        for leaf in leaves_from(conn, tree.size):
            tree.append(leaf)
        if tree.size == 0:
            return None
        signing: KeyPair = self._secrets.signing
        env = sign_checkpoint(
            signing, f"{self._config.region}/log", tree.size, tree.root(), now, kind="log"
        )
        first = witnessed if 0 < witnessed <= tree.size else 0
        item = hub_pb2.PushItem(kind="log_checkpoint")
        item.log_checkpoint.checkpoint.CopyFrom(env.to_proto())
        item.log_checkpoint.proof.first_size = first
        item.log_checkpoint.proof.second_size = tree.size
        item.log_checkpoint.proof.hashes.extend(tree.consistency_proof(first) if first else [])
        return item

    async def _verify_receipt(
        self, stub: hub_pb2_grpc.HubServiceAsyncStub, env: attestation_pb2.Envelope
    ) -> tuple[hub_pb2.Receipt, bool]:
        if self._hub_keys is None:
            ks = verify_key_set(await stub.GetHubKeySet(hub_pb2.GetHubKeySetRequest()),
                                self.target.hub_key, self.target.hub_id)  # fmt: skip
            self._hub_keys = {k.key_id: k.public_key for k in ks.keys}
        try:
            payload, _ = verified_signer(env, self._hub_keys, RECEIPT_TYPE)
        except VerificationError:
            self._hub_keys = None  # the hub may have rotated: re-fetch next time
            raise PushError(
                "BAD_RECEIPT", "a receipt does not verify under the hub's keys"
            ) from None
        return hub_pb2.Receipt.FromString(payload), True

    async def _store_receipts(
        self,
        stub: hub_pb2_grpc.HubServiceAsyncStub,
        envs: list[attestation_pb2.Envelope],
        sent: dict[int, hub_pb2.PushItem] | None = None,
    ) -> int:
        """Verify receipts and store them — each only if it matches the outbox event it
        acknowledges (event id, kind, content hash, leaf count); else ``BAD_RECEIPT``
        naming the field, and nothing of this batch of receipts is stored."""
        rows = []
        for env in envs:
            receipt, verified = await self._verify_receipt(stub, env)
            if receipt.region != self._config.region:
                raise PushError("BAD_RECEIPT", "a receipt names another region", field="region")
            if receipt.hub != self.target.hub_id:
                raise PushError("BAD_RECEIPT", "a receipt names another hub", field="hub")
            rows.append((receipt, env.SerializeToString(), int(verified)))
        if sent is not None and sorted(r.seq for r, _, _ in rows) != sorted(sent):
            raise PushError(
                "BAD_RECEIPT", "the receipts do not answer the events sent", field="receipts"
            )
        hub = self.target.hub_id

        def unit(conn: Connection) -> int:
            for receipt, blob, ok in rows:
                seq, event_id = receipt.seq, receipt.event_id
                check_receipt(conn, receipt, None if sent is None else sent.get(seq))
                push_store.add_push_receipt(conn, hub, seq, event_id, blob, ok)
            return len(rows)

        return await self._db.write_unit(unit) if rows else 0

    async def _record(
        self, cursor: int | None, error: str, now: int, witnessed: bytes | None = None
    ) -> None:
        hub = self.target.hub_id

        def unit(conn: Connection) -> None:
            if cursor is not None:
                push_store.push_succeeded(conn, hub, cursor, now)
            else:
                push_store.push_failed(conn, hub, error)
            if witnessed:
                push_store.push_witnessed(conn, hub, witnessed)

        await self._db.write_unit(unit)

    def _next(
        self,
        conn: Connection,
        *,
        cursor: int,
        log: bool,
        witnessed: int,
        now: int,
        limit: int,
    ) -> tuple[list[hub_pb2.PushItem], hub_pb2.PushItem | None]:
        evs = read_after_sync(conn, cursor, limit) if limit > 0 else []
        lc = self._log_checkpoint(conn, witnessed, now) if log else None
        return [_item(conn, e) for e in evs], lc

    # -- one cycle -----------------------------------------------------------------------
    async def push_once(
        self, now: int, *, timeout: float = 60.0, max_events: int | None = None
    ) -> PushResult:
        """Push what the hub lacks (at most ``max_events`` events; None = all);
        raises :class:`PushError` or an RPC error."""
        max_items = self._config.hub.max_items_per_push
        channel = self._channel()
        events = receipts = 0
        try:
            stub = hub_pb2_grpc.HubServiceStub(channel)
            cur = await stub.GetCursor(hub_pb2.GetCursorRequest(), timeout=timeout)
            cursor, witnessed = cur.cursor, cur.witnessed_log_size
            local_last = await self._db.read_unit(last_seq_sync)
            if local_last < cursor:
                raise PushError(
                    "OUTBOX_BEHIND_HUB",
                    f"the hub holds seq {cursor} but the outbox ends at {local_last}",
                )
            receipts += await self._fetch_missing(stub, cursor, timeout)
            log_sent = False
            while True:
                limit = max_items if max_events is None else min(max_items, max_events - events)
                items, lc = await self._db.read_unit(
                    functools.partial(
                        self._next, cursor=cursor, log=not log_sent, witnessed=witnessed,
                        now=now, limit=limit,
                    )
                )  # fmt: skip
                last = len(items) < limit or (
                    max_events is not None and events + len(items) >= max_events
                )
                if not last:
                    lc = None  # more events follow: the checkpoint goes in the last stream
                if not items and lc is None:
                    break
                stream = items + ([lc] if lc is not None else [])  # events first (ADR 0402)

                async def gen(
                    stream: list[hub_pb2.PushItem] = stream,
                ) -> AsyncIterator[hub_pb2.PushItem]:
                    for it in stream:
                        yield it

                resp = await stub.Push(gen(), timeout=timeout)
                log_sent = log_sent or lc is not None
                receipts += await self._store_receipts(
                    stub, list(resp.receipts), {it.seq: it for it in items}
                )
                if lc is not None and resp.HasField("witnessed"):
                    witnessed = lc.log_checkpoint.proof.second_size
                    await self._record(resp.cursor, "", now, resp.witnessed.SerializeToString())
                events += len(items)
                if resp.cursor < cursor + len(items):
                    raise PushError("HUB_CURSOR_STUCK", "the hub did not acknowledge the events")
                cursor = resp.cursor
                await self._record(cursor, "", now)
                if len(items) < max_items or (max_events is not None and events >= max_events):
                    break
            await self._record(cursor, "", now)
            self._failures = 0
            return PushResult(self.target.hub_id, cursor, events, receipts, witnessed)
        finally:
            await channel.close(None)

    async def _fetch_missing(
        self, stub: hub_pb2_grpc.HubServiceAsyncStub, cursor: int, timeout: float
    ) -> int:
        hub = self.target.hub_id
        have = await self._db.read_unit(lambda c: push_store.push_receipts_through(c, hub))
        stored = 0
        while have < cursor:
            resp = await stub.GetReceipts(
                hub_pb2.GetReceiptsRequest(from_seq=have + 1, limit=500), timeout=timeout
            )
            if not resp.receipts:
                break
            stored += await self._store_receipts(stub, list(resp.receipts))
            have = max(hub_pb2.Receipt.FromString(e.payload).seq for e in resp.receipts)
        return stored

    # -- background loop -----------------------------------------------------------------
    def backoff(self) -> float:
        h = self._config.hub
        delay: float = min(
            h.backoff_max_seconds, h.backoff_base_seconds * 2 ** min(self._failures, 30)
        )
        return delay * (0.5 + random.random() / 2)

    async def run(
        self, clock_now: object, before: Callable[[int], Awaitable[object]] | None = None
    ) -> None:
        """Push every ``push_interval_seconds`` until :meth:`stop`; back off on failure.

        ``before(now)`` runs first in each cycle (``huxin serve`` queues a changed
        status list there)."""
        interval = self._config.hub.push_interval_seconds
        now_fn = clock_now if callable(clock_now) else None
        while not self._stop.is_set():
            delay = interval
            now = int(now_fn()) if now_fn is not None else 0
            try:
                if before is not None:
                    await before(now)
                result = await self.push_once(now)
                if result.events:
                    log_event("pushed", hub=result.hub, events=result.events, cursor=result.cursor)
            except Exception as exc:  # keep the loop alive; the error is recorded
                self._failures += 1
                reason = getattr(exc, "code", "") or reason_of(exc) or type(exc).__name__
                if not isinstance(reason, str):
                    reason = type(exc).__name__
                log_event("push failed", 30, hub=self.target.hub_id, reason=reason,
                          failures=self._failures)  # fmt: skip
                with contextlib.suppress(Exception):
                    await self._record(None, reason, now)
                delay = self.backoff()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def stop(self) -> None:
        self._stop.set()
