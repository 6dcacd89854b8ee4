"""Peer sync: trust lists, key sets, status lists, schemes, mapping tables, catalogues.

A background task of ``huxin serve`` (:meth:`PeerSync.start_for`) that
fetches trust material from the node's hub and from every peer the trust
list names with an endpoint.  See docs/adr/0412.

Invariants:

* **no rollback**: for every (region, item) the highest version seen is
  kept (table ``peer_material``); an older version is refused and reported
  (``*_ROLLBACK``), the same version with different bytes too
  (``*_EQUIVOCATION``); trust lists go through
  :meth:`node.federation._trust.TrustState.offer` (same rule, persisted);
* **nothing is stored unverified** (a refusal is reported per item as
  ``item:CODE`` and the item is not stored):

  - the trust list under the pinned hub key;
  - a key set under the root key the trust list names for that region;
  - a status list under that region's certified signing keys, issued by it;
  - a scheme descriptor only for the peer's OWN region (other regions'
    schemes a peer lists are ignored: their region is the source), and only
    if ``id@version`` is listed for that region in the trust list, or it is
    exactly a scheme file shipped with this node (id, version, region,
    name), else ``SCHEME_NOT_LISTED``;
  - a mapping table only if its document's content hash holds, the
    descriptor (id, version, schemes, method, sha256) matches the content,
    one side is the peer's own region (a hub in the trust list may serve
    any region's tables), both schemes are ones this node
    ships (same version), every ``mapping`` invariant holds and its
    signatures verify (:func:`mapping.verify_table`) under the regions' keys
    in the trust list;
  - a signed scenario catalogue (N20) under the peer's verified key set, of
    a scheme version the trust list lists for it, within a size bound
    (:func:`node.catalogue.verify_peer_catalogue`); equivocation is judged on
    its payload, so a re-signature with a rotated key is the same catalogue;

  so a peer cannot plant an unverifiable "version 999999" that would block
  genuine versions as ``ROLLBACK``;
* **what is used**: trust lists decide who may call; a newer verified key
  set extends the trust list's copy at once.  Status lists, schemes and
  mapping tables are kept as verified, versioned records (shown by
  ``huxin status``); they are not consulted when this node verifies or maps
  (it maps with the tables it ships); a peer's catalogue says which of its
  incentive scenarios a recognised grade unlocks (``huxin mapping grade``);
* **one slow peer never blocks the others**: each peer is synced by its own
  task with its own deadline (``sync_timeout_seconds``); the supervisor loop
  never awaits a peer;
* **backoff per peer**: after ``n`` consecutive failures the next attempt is
  ``min(max, base * 2**(n-1))`` seconds away with equal jitter (half fixed,
  half random, from the ``rng`` passed in); a success resets it to the
  regular interval.  ANY exception while syncing a peer (not just network
  errors) is that peer's failure (``INTERNAL_<type>``), recorded with
  backoff, so a peer is never retried in a tight loop;
* time is read only from the clock passed in; a peer's results are written
  in one transaction (``sync_peers`` + ``peer_material``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from keys import (
    KeysError,
    KeySet,
    RegionTrust,
    Trust,
    VerificationError,
    verify_key_set,
    verify_status_list,
)
from mapping import MappingError, MappingTable, require_valid, table_from_document, verify_table
from mapping import key_id as table_key_id
from node.catalogue import ITEM as CATALOGUE_ITEM
from node.catalogue import CatalogueRefused, verify_peer_catalogue
from node.core._clock import Clock
from node.core._errors import NodeError
from node.core._observe import log_event
from node.federation._trust import TrustState, compare_versions
from node.pb.v1 import hub_pb2, hub_pb2_grpc, node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import peer_channel
from node.store import Connection
from node.store import _peers as peers
from scoring import ScoringError, list_schemes, load_scheme

__all__ = [
    "GrpcPeerClient",
    "MaterialRefused",
    "PeerClient",
    "PeerResult",
    "PeerSync",
    "SyncPolicy",
    "backoff_delay",
    "verify_mapping",
    "verify_scheme",
]

_ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,95}$")  # ids we name in items, logs, refusals


class PeerClient(Protocol):
    """What sync fetches from one peer (a region node or a hub)."""

    async def trust_list(self) -> bytes | None: ...  # hubs only; None: not offered
    async def key_set(self) -> bytes: ...
    async def status_list(self) -> bytes: ...
    async def schemes(self) -> list[tuple[str, str, bytes]]: ...  # (id, version, body)
    async def mappings(self) -> list[tuple[str, str, bytes]]: ...  # (id, version, body)
    async def catalogue(self) -> bytes | None: ...  # a signed catalogue; None: not served
    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    interval: float = 30.0
    timeout: float = 5.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0


def backoff_delay(failures: int, policy: SyncPolicy, rng: random.Random) -> float:
    """Seconds until the next attempt after ``failures`` consecutive failures."""
    if failures <= 0:
        return policy.interval
    cap = min(policy.backoff_max, policy.backoff_base * 2 ** min(failures - 1, 30))
    return float(cap / 2 + rng.random() * cap / 2)


@dataclass(slots=True)
class PeerResult:
    peer: str
    ok: bool
    updated: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # item:REASON of material not taken
    error: str = ""
    next_at: float = 0.0


@dataclass(slots=True)
class _PeerState:
    failures: int = 0
    next_at: float = 0.0
    task: asyncio.Task[PeerResult] | None = None


class MaterialRefused(NodeError):
    """A peer's scheme or mapping descriptor that does not verify (``code`` says why)."""


_REFUSABLE = (MaterialRefused, KeysError, MappingError, ScoringError, DecodeError)


def _refuse(code: str, message: str, field: str) -> MaterialRefused:
    return MaterialRefused(code, message, field=field)


def _shipped_scheme(scheme_id: str, version: str) -> Any:
    """The scheme file this node ships for ``scheme_id`` at ``version`` (None otherwise)."""
    if scheme_id not in list_schemes():
        return None
    shipped = load_scheme(scheme_id)
    return shipped if shipped.version == version else None


def verify_scheme(peer: str, scheme_id: str, version: str, body: bytes, trust: Trust) -> bool:
    """True: a scheme descriptor of ``peer``'s own region that may be stored; False: another
    region's scheme (ignored).  Raises :class:`MaterialRefused` when it does not verify."""
    s = scoring_pb2.Scheme.FromString(body)
    if (s.id, s.version) != (scheme_id, version):
        raise _refuse("DESCRIPTOR_MISMATCH", "id/version differ from the descriptor", "schemes")
    if s.region != peer:
        return False
    listed = trust.regions.get(peer)
    if listed is not None and f"{scheme_id}@{version}" in listed.schemes:
        return True
    shipped = _shipped_scheme(scheme_id, version)
    if shipped is not None and (shipped.region, shipped.name) == (s.region, s.name):
        return True
    raise _refuse(
        "SCHEME_NOT_LISTED",
        "neither listed for the region in the trust list nor a shipped scheme file",
        "schemes",
    )


def _region_keys(trust: Trust) -> dict[str, dict[str, bytes]]:
    """region -> (mapping key id -> public key), from the verified trust list."""
    return {
        region: {table_key_id(k.public_key): k.public_key for k in r.keys.keys}
        for region, r in trust.regions.items()
    }


def verify_mapping(
    peer: str, table_id: str, version: str, body: bytes, trust: Trust, *, hub: bool = False
) -> MappingTable:
    """The verified mapping table in a peer's descriptor (see the module invariants)."""
    blob = node_pb2.MappingTableBlob.FromString(body)
    table = table_from_document(blob.content)  # content hash checked before anything else
    if bytes(blob.sha256).hex() != table.content_hash.removeprefix("sha256:"):
        raise _refuse("HASH_MISMATCH", "sha256 differs from the content hash", "tables.sha256")
    described = (table_id, version, blob.id, blob.version, blob.source_scheme, blob.target_scheme,
                 blob.method)  # fmt: skip
    actual = (table.id, table.version, table.id, table.version, table.source.key,
              table.target.key, table.method.value)  # fmt: skip
    if described != actual:
        raise _refuse("DESCRIPTOR_MISMATCH", "the descriptor differs from the content", "tables")
    if not hub and peer not in (table.source.region, table.target.region):
        raise _refuse("NOT_PEERS_TABLE", "neither side is the peer's region", "tables")
    schemes = []
    for side in (table.source, table.target):
        shipped = _shipped_scheme(side.scheme, side.version)
        if shipped is None or shipped.region != side.region:
            raise _refuse("SCHEME_UNKNOWN", f"{side.key} is not a scheme this node ships", "tables")
        schemes.append(shipped)
    require_valid(table, schemes[0], schemes[1])
    verify_table(table, _region_keys(trust), source=schemes[0], target=schemes[1])
    return table


def keep_highest(  # noqa: PLR0917 - one row's worth of fields
    conn: Connection,
    region: str,
    item: str,
    version: str,
    body: bytes,
    now: int,
    source: str,
    digest: bytes | None = None,
) -> str:
    """Store ``body`` if its version is higher than what is held: updated|same|ROLLBACK|EQUIVOCATION.

    ``digest`` is what "the same" is judged on (default: sha256 of ``body``)."""
    digest = digest or hashlib.sha256(body).digest()
    row = peers.material_version(conn, region, item)
    if row is not None:
        order = compare_versions(version, str(row[0]))
        if order < 0:
            return "ROLLBACK"
        if order == 0:
            return "same" if bytes(row[1]) == digest else "EQUIVOCATION"
    peers.replace_material(conn, region, item, version, digest, body, now, source)
    return "updated"


class PeerSync:
    """The sync supervisor of one node (see the module invariants)."""

    def __init__(
        self,
        *,
        region: str,
        trust: TrustState,
        db: Any,
        connect: Callable[[str, str], PeerClient],
        clock: Clock,
        policy: SyncPolicy = SyncPolicy(),
        rng: random.Random | None = None,
        hub: str = "",
        hub_target: str = "",
        local_trust: Callable[[int], Awaitable[bytes]] | None = None,
    ) -> None:
        self.region = region
        self.trust = trust
        self.db = db
        self._connect = connect
        self.clock = clock
        self.policy = policy
        self.rng = rng or random.Random()
        self.hub, self.hub_target = hub, hub_target
        self._local_trust = local_trust  # a hub's own signer of trust lists
        self.endpoints: Any = None  # node.federation._route.EndpointCheck in `huxin serve`
        self._peers: dict[str, _PeerState] = {}
        self._clients: dict[str, PeerClient] = {}
        self._runner: asyncio.Task[None] | None = None
        # (peer, trust list version, sha256) of mapping descriptors already verified
        self._verified_tables: set[tuple[str, int, bytes]] = set()
        self._stop = asyncio.Event()

    # -- targets -------------------------------------------------------------
    def targets(self) -> dict[str, str]:
        """peer id -> host:port: the hub and every listed peer with an endpoint."""
        out: dict[str, str] = {}
        if self.hub and self.hub_target and self.hub != self.region:
            out[self.hub] = self.hub_target
        for peer in self.trust.peers():
            target = self.trust.endpoint(peer)
            if target and peer != self.region:
                out.setdefault(peer, target)
        return out

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _client(self, peer: str, target: str) -> PeerClient:
        key = f"{peer}@{target}"
        client = self._clients.get(key)
        if client is None:
            client = self._connect(peer, target)
            self._clients[key] = client
        return client

    # -- one peer ------------------------------------------------------------
    async def _fetch(self, peer: str, client: PeerClient) -> dict[str, Any]:
        got: dict[str, Any] = {}
        if peer == self.hub:
            got["trust_list"] = await client.trust_list()
        got["key_set"] = await client.key_set()
        got["status_list"] = await client.status_list()
        got["schemes"] = await client.schemes()
        got["mappings"] = await client.mappings()
        try:  # a peer that serves no catalogue still syncs everything else
            got["catalogue"] = await client.catalogue()
        except aio.AioRpcError as err:
            got["catalogue_error"] = f"RPC_{err.code().name}"
        return got

    async def _checked_fetch(self, peer: str, target: str) -> dict[str, Any]:
        if self.endpoints is not None:  # the endpoint must present the listed certificate
            await self.endpoints.check(peer, target)
        return await self._fetch(peer, self._client(peer, target))

    async def _apply(self, peer: str, got: dict[str, Any], result: PeerResult) -> None:
        now = int(self._now())
        if got.get("trust_list"):
            decision = await self.trust.offer(self.db, got["trust_list"], now, peer)
            if decision.outcome == "accepted":
                result.updated.append(f"trust_list:v{decision.version}")
            elif decision.outcome == "refused":
                result.refused.append(f"trust_list:{decision.reason}")
        trust = self.trust.trust
        listed = self.trust.regions().get(peer)
        rows: list[tuple[str, str, bytes, bytes | None]] = []
        ks: KeySet | None = None
        if listed is not None and got.get("key_set"):
            try:
                ks = verify_key_set(got["key_set"], listed.root_public_key, peer)
                rows.append(("key_set", str(ks.version), got["key_set"], None))
            except (VerificationError, KeysError) as exc:
                result.refused.append(f"key_set:{exc.code}")
        if trust is not None and got.get("status_list"):
            try:
                sl = verify_status_list(got["status_list"], trust, now)
                if sl.issuer_region != peer:
                    raise VerificationError("ISSUER_MISMATCH", "status list of another region")
                rows.append(("status_list", str(sl.issued_at), got["status_list"], None))
            except (VerificationError, KeysError) as exc:
                result.refused.append(f"status_list:{exc.code}")
        if trust is not None:
            rows += [
                (i, v, b, None) for i, v, b in self._verified_descriptors(peer, got, trust, result)
            ]
        if listed is not None:
            rows += self._verified_catalogue(
                peer, got, listed=listed, ks=ks, now=now, result=result
            )

        def unit(conn: Connection) -> list[tuple[str, str]]:
            return [
                (item, keep_highest(conn, peer, item, v, b, now, peer, digest))
                for item, v, b, digest in rows
            ]

        for item, outcome in await self.db.write_unit(unit):
            if outcome == "updated":
                result.updated.append(item)
                if item == "key_set" and ks is not None:
                    self.trust.overlay_key_set(ks)  # newer than the trust list's copy
            elif outcome != "same":
                result.refused.append(f"{item}:{outcome}")

    @staticmethod
    def _verified_catalogue(
        peer: str,
        got: dict[str, Any],
        *,
        listed: RegionTrust,
        ks: KeySet | None,
        now: int,
        result: PeerResult,
    ) -> list[tuple[str, str, bytes, bytes | None]]:
        """The peer's catalogue as a row to store, if it verifies (else refused, named)."""
        if got.get("catalogue_error"):
            if got["catalogue_error"] != "RPC_UNIMPLEMENTED":
                result.refused.append(f"{CATALOGUE_ITEM}:{got['catalogue_error']}")
            return []
        body = got.get("catalogue")
        if not body:
            return []
        keys = ks if ks is not None and ks.version > listed.keys.version else listed.keys
        try:
            taken = verify_peer_catalogue(peer, body, keys, listed, now)
        except (CatalogueRefused, VerificationError, KeysError) as exc:
            result.refused.append(f"{CATALOGUE_ITEM}:{exc.code}")
            return []
        return [(CATALOGUE_ITEM, taken.version, body, taken.payload_sha256)]

    def _verified_descriptors(
        self, peer: str, got: dict[str, Any], trust: Trust, result: PeerResult
    ) -> list[tuple[str, str, bytes]]:
        rows: list[tuple[str, str, bytes]] = []
        for kind, items in (
            ("scheme", got.get("schemes") or []),
            ("mapping", got.get("mappings") or []),
        ):
            for ident, version, body in items:
                item = f"{kind}:{ident}" if _ITEM_ID.match(ident) else f"{kind}:?"
                try:
                    if not _ITEM_ID.match(ident) or not _ITEM_ID.match(version):
                        raise _refuse("MALFORMED", "id or version is not a plain name", kind)
                    if kind == "scheme":
                        if not verify_scheme(peer, ident, version, body, trust):
                            continue
                    elif (
                        seen := (peer, self.trust.version, hashlib.sha256(body).digest())
                    ) not in self._verified_tables:
                        hub = peer in self.trust.hubs()
                        verify_mapping(peer, ident, version, body, trust, hub=hub)
                        self._verified_tables.add(seen)
                except _REFUSABLE as exc:
                    code = getattr(exc, "code", "") or "MALFORMED"
                    result.refused.append(f"{item}:{code}")
                    continue
                rows.append((item, version, body))
        return rows

    async def sync_peer(self, peer: str, target: str) -> PeerResult:
        """Fetch and apply everything from one peer within the policy's deadline."""
        result = PeerResult(peer, ok=False)
        try:
            got = await asyncio.wait_for(self._checked_fetch(peer, target), self.policy.timeout)
            await self._apply(peer, got, result)
            result.ok = not any(r.startswith("trust_list:") for r in result.refused)
            if not result.ok:
                result.error = result.refused[0].split(":", 1)[1]
        except TimeoutError:
            result.error = "DEADLINE_EXCEEDED"
        except aio.AioRpcError as err:
            result.error = f"RPC_{err.code().name}"
        except (ConnectionError, OSError) as exc:
            result.error = f"UNREACHABLE_{type(exc).__name__}"
        except NodeError as exc:  # the endpoint does not present the listed certificate
            result.error = exc.code
        except Exception as exc:  # anything else is this peer's failure too: backoff, no loop
            result.error = f"INTERNAL_{type(exc).__name__}"
        return result

    async def _record(self, result: PeerResult) -> None:
        state = self._peers.setdefault(result.peer, _PeerState())
        now = self._now()
        state.failures = 0 if result.ok else state.failures + 1
        state.next_at = now + backoff_delay(state.failures, self.policy, self.rng)
        result.next_at = state.next_at
        t = int(now)

        def unit(conn: Connection) -> None:
            peers.sync_attempt(
                conn,
                (
                    result.peer,
                    t,
                    t if result.ok else 0,
                    state.failures,
                    int(state.next_at),
                    result.error or ";".join(result.refused),
                    len(result.updated),
                ),
            )

        await self.db.write_unit(unit)
        level = 20 if result.ok else 30
        log_event(
            "peer synced" if result.ok else "peer sync failed",
            level,
            peer=result.peer,
            updated=",".join(result.updated),
            refused=",".join(result.refused),
            error=result.error,
            failures=state.failures,
        )

    async def _attempt(self, peer: str, target: str) -> PeerResult:
        result = await self.sync_peer(peer, target)
        try:
            await self._record(result)  # the backoff is set before the write
        except Exception as exc:
            log_event("sync state not recorded", 40, peer=peer, exc=type(exc).__name__)
        return result

    # -- rounds ----------------------------------------------------------------
    def _due(self) -> dict[str, str]:
        now = self._now()
        return {
            p: t
            for p, t in self.targets().items()
            if self._peers.setdefault(p, _PeerState()).next_at <= now
            and (self._peers[p].task is None or self._peers[p].task.done())  # type: ignore[union-attr]
        }

    async def run_once(self) -> dict[str, PeerResult]:
        """Sync every due peer concurrently; each bounded by its own deadline."""
        due = self._due()
        tasks = {p: asyncio.ensure_future(self._attempt(p, t)) for p, t in due.items()}
        for p, task in tasks.items():
            self._peers[p].task = task
        if not tasks:
            return {}
        await asyncio.wait(tasks.values())
        return {p: t.result() for p, t in tasks.items()}

    async def adopt_local(self) -> None:
        """A hub adopts the lists it signs itself (they never come over the wire)."""
        if self._local_trust is None:
            return
        now = int(self._now())
        try:
            data = await self._local_trust(now)
        except Exception as exc:  # the hub's own schedule logs its failures
            log_event("local trust list unavailable", 30, exc=type(exc).__name__)
            return
        await self.trust.offer(self.db, data, now, "self")

    async def run(self, tick: float = 0.5) -> None:
        """Supervisor: start a task for each due peer; never wait for one."""
        last_local = -1e18
        while not self._stop.is_set():
            if self._now() - last_local >= self.policy.interval:
                last_local = self._now()
                await self.adopt_local()
            for peer, target in self._due().items():
                self._peers[peer].task = asyncio.ensure_future(self._attempt(peer, target))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), tick)

    def state(self, peer: str) -> tuple[int, float]:
        s = self._peers.get(peer, _PeerState())
        return s.failures, s.next_at

    async def stop(self) -> None:
        self._stop.set()
        tasks: list[Awaitable[Any]] = [s.task for s in self._peers.values() if s.task]
        if self._runner is not None:
            tasks.append(self._runner)
        for t in tasks:
            if isinstance(t, asyncio.Task) and not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in self._clients.values():
            await c.close()
        self._clients.clear()

    # -- wiring ------------------------------------------------------------------
    @classmethod
    def start_for(
        cls, ctx: Any, *, local_trust: Callable[[int], Awaitable[bytes]] | None = None
    ) -> PeerSync | None:
        """Start the background sync of a served node (None: standalone or sync off)."""
        fed = ctx.config.federation
        if fed is None or not fed.sync:
            return None
        secrets = ctx.secrets

        def connect(peer: str, target: str) -> PeerClient:
            return GrpcPeerClient(target, secrets.tls_ca, secrets.tls_cert, secrets.tls_key)

        sync = cls(
            region=ctx.config.region,
            trust=ctx.trust,
            db=ctx.db,
            connect=connect,
            clock=ctx.clock,
            policy=SyncPolicy(
                fed.sync_interval_seconds,
                fed.sync_timeout_seconds,
                fed.backoff_base_seconds,
                fed.backoff_max_seconds,
            ),
            hub=fed.hub,
            hub_target=fed.hub_endpoint,
            local_trust=local_trust,
        )
        from node.federation._route import EndpointCheck

        sync.endpoints = EndpointCheck(ctx.trust, ctx.config.tls)
        sync._runner = asyncio.ensure_future(sync.run())
        return sync


class GrpcPeerClient:
    """:class:`PeerClient` over mutual TLS (PeerService; HubService for trust lists)."""

    def __init__(self, target: str, ca: bytes, cert: bytes, key: bytes) -> None:
        self._channel = peer_channel(target, ca, cert, key)
        self._peer = node_pb2_grpc.PeerServiceStub(self._channel)
        self._hub = hub_pb2_grpc.HubServiceStub(self._channel)

    async def trust_list(self) -> bytes | None:
        try:
            env = await self._hub.GetTrustList(hub_pb2.GetTrustListRequest())
        except aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        return bytes(env.SerializeToString())

    async def key_set(self) -> bytes:
        env = await self._peer.GetKeySet(node_pb2.GetKeySetRequest())
        return bytes(env.SerializeToString())

    async def status_list(self) -> bytes:
        env = await self._peer.GetStatusList(node_pb2.GetStatusListRequest())
        return bytes(env.SerializeToString())

    async def schemes(self) -> list[tuple[str, str, bytes]]:
        resp = await self._peer.ListSchemes(node_pb2.ListSchemesRequest())
        return [(s.id, s.version, s.SerializeToString()) for s in resp.schemes]

    async def mappings(self) -> list[tuple[str, str, bytes]]:
        resp = await self._peer.ListMappings(node_pb2.ListMappingsRequest())
        return [(t.id, t.version, t.SerializeToString()) for t in resp.tables]

    async def catalogue(self) -> bytes | None:
        env = await self._peer.GetSignedCatalogue(node_pb2.GetIncentiveCatalogueRequest())
        return bytes(env.SerializeToString())

    async def close(self) -> None:
        await self._channel.close(None)
