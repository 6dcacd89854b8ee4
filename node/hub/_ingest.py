"""The hub's ingest of pushed outbox events: verify, store in ONE transaction, sign a receipt.

Invariants:

* only a region in the registry may push (H17): anything else is refused with
  ``REGION_NOT_REGISTERED``, logged and counted;
* per region the hub's cursor is the highest ``seq`` stored; an event with
  ``seq <= cursor`` is a duplicate: nothing is applied again and the stored
  receipt is returned (unless its content differs: ``EVENT_CONFLICT``); an
  event with ``seq > cursor + 1`` is refused (``SEQUENCE_GAP``);
* a snapshot batch is verified BEFORE anything is written: the checkpoint's
  signature by a key certified by the pushing region's root (registry), its
  origin equal to the caller, the RFC 9162 root over every leaf
  (:func:`keys.verify_batch_payloads`, or the given leaf hash for a leaf the
  region deleted), then every payload: an Attestation of the caller, for
  this hub, of the batch's period and scheme, with a 32-byte pseudonym.  Any
  failure refuses the whole event and stores nothing;
* the event's rows, its receipt and the cursor advance commit in ONE write
  unit; the receipt (signed by the hub's signing key) is returned only after
  COMMIT;
* a batch is stored as one row (docs/adr/0401); a deregistration deletes that
  region's leaves under the pseudonym (H2), redacting them in place;
* a status list must be signed by a key of the caller usable at its
  ``issued_at`` and not revoked by ``now``, with ``issued_at <= now + skew``;
  a list older than the one stored under its id is refused
  (``STATUS_LIST_STALE``), never silently dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter

from keys import (
    ATTESTATION_TYPE,
    CHECKPOINT_TYPE,
    STATUSLIST_TYPE,
    Checkpoint,
    Envelope,
    KeyPair,
    Trust,
    TrustedRegion,
    VerificationError,
    leaf_hash,
    pae,
    root_of_leaf_hashes,
    sign,
    verified_signer,
    verify_batch_payloads,
    verify_status_list,
)
from keys.pb.v1 import attestation_pb2
from node.core._config import HubConfig
from node.core._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from node.core._observe import log_event
from node.federation._witness import SKEW_SECONDS, WitnessOutcome, check_signing_time, witness_sync
from node.hub._registry import (
    TrustListRow,
    current_trust_list,
    publish_if_due,
    registered_regions,
    registry_trust,
)
from node.pb.v1 import hub_pb2
from node.store import Connection
from node.store import _hub as store
from node.store._db import Database

__all__ = [
    "RECEIPT_TYPE",
    "Hub",
    "HubMetrics",
    "forget_sync",
    "own_entry",
    "verify_snapshot_batch",
]

RECEIPT_TYPE = "application/vnd.huxin.receipt.v1+proto"
EVENT_KINDS = ("snapshot_batch", "status_list", "deregistration")
_SKEW = SKEW_SECONDS
_ZERO = bytes(32)


class HubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "huxin_hub_events", "pushed events by kind and result", ["kind", "result"],
            registry=registry,
        )  # fmt: skip
        self.leaves = Counter(
            "huxin_hub_leaves", "attestations verified and stored", registry=registry
        )
        self.refused_regions = Counter(
            "huxin_hub_refused_regions", "pushes refused: region not registered (H17)",
            ["region"], registry=registry,
        )  # fmt: skip
        self.split_views = Counter(
            "huxin_witness_inconsistent", "inconsistent log checkpoints (split views)",
            ["region", "reason"], registry=registry,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    checkpoint: Checkpoint
    pseudonyms: bytes  # 32 bytes per leaf in leaf order, zeros at a redacted leaf
    present: int  # leaves held (not redacted)
    blob: bytes  # the serialised SnapshotBatch as verified
    content_sha256: bytes


@dataclass(slots=True)
class Prepared:
    """A checked and verified event waiting for its write unit."""

    region: str
    item: hub_pb2.PushItem
    kind: str
    content: bytes
    now: int
    stored: bytes | None  # the receipt of an event already stored (a duplicate)
    verified: VerifiedBatch | None = None
    status_meta: tuple[str, int] | None = None


def _fail(code: str, message: str, field: str = "snapshot_batch") -> InvalidArgumentError:
    return InvalidArgumentError(code, message, field=field)


def _authenticate_redacted(
    b: hub_pb2.SnapshotBatch, trust: Trust, region: str, now: int
) -> Checkpoint:
    """Checkpoint signature + root when some leaves only travel as hashes."""
    payload, kid = verified_signer(b.checkpoint, trust.region_keys(region), CHECKPOINT_TYPE)
    cp = Checkpoint.from_bytes(payload)
    check_signing_time(trust, kid, cp.timestamp, now, "checkpoint")
    if cp.tree_size != len(b.payloads):
        raise VerificationError(
            "BAD_PROOF", "batch size differs from the checkpoint", field="payloads"
        )
    given = {r.index: bytes(r.leaf_hash) for r in b.redacted}
    hashes = []
    for i, p in enumerate(b.payloads):
        h = given.get(i)
        if h is None or len(h) != 32:
            h = leaf_hash(pae(b.payload_type, p))
        hashes.append(h)
    if not hmac.compare_digest(root_of_leaf_hashes(hashes), cp.root_hash):
        raise VerificationError(
            "BAD_PROOF", "payloads do not hash to the signed root", field="payloads"
        )
    return cp


def verify_snapshot_batch(  # noqa: PLR0917
    b: hub_pb2.SnapshotBatch, region: str, hub_id: str, trust: Trust, now: int, max_leaves: int
) -> VerifiedBatch:
    """Verify a pushed batch completely (module docstring); raises, never partial."""
    n = len(b.payloads)
    if n == 0:
        raise _fail("EMPTY_BATCH", "a snapshot batch must hold at least one leaf", "payloads")
    if n > max_leaves:
        raise ResourceExhaustedError(
            "BATCH_TOO_LARGE", f"batch must hold 1..{max_leaves} leaves", field="payloads"
        )
    if b.payload_type != ATTESTATION_TYPE:
        raise _fail("WRONG_PAYLOAD_TYPE", "snapshot leaves must be attestations")
    if region not in trust.regions:
        raise PermissionDeniedError("REGION_NOT_REGISTERED", "region not in the registry (H17)")
    if b.redacted:
        cp = _authenticate_redacted(b, trust, region, now)
    else:
        cp = verify_batch_payloads(list(b.payloads), b.checkpoint, trust, now, skew=_SKEW)
    if cp.origin != region or cp.kind != "batch":
        raise VerificationError(
            "ISSUER_MISMATCH", "checkpoint of another region", field="checkpoint"
        )
    redacted = {r.index for r in b.redacted}
    schemes = trust.regions[region].schemes
    scheme = f"{b.scheme_id}@{b.scheme_version}"
    if schemes and scheme not in schemes:
        raise VerificationError(
            "SCHEME_NOT_TRUSTED", "scheme not listed for the region", field="scheme"
        )
    pseudonyms: list[bytes] = []
    m = attestation_pb2.Attestation()
    for i, p in enumerate(b.payloads):
        if i in redacted:
            pseudonyms.append(_ZERO)
            continue
        try:
            m.ParseFromString(p)
        except Exception:
            raise _fail("MALFORMED", f"leaf {i} is not an Attestation", "payloads") from None
        if (
            m.issuer_region != region
            or m.audience != hub_id
            or m.period != b.period
            or m.scheme_id != b.scheme_id
            or m.scheme_version != b.scheme_version
            or len(m.subject_binding) != 32
        ):
            raise _fail("LEAF_MISMATCH", f"leaf {i} does not belong to this batch", "payloads")
        if m.subject_binding == _ZERO:
            raise _fail("LEAF_MISMATCH", f"leaf {i} has an all-zero pseudonym", "payloads")
        pseudonyms.append(m.subject_binding)
    content = hashlib.sha256(b.checkpoint.payload).digest()
    return VerifiedBatch(
        cp, b"".join(pseudonyms), n - len(redacted), b.SerializeToString(), content
    )


def _positions(pseudonyms: bytes, pseudonym: bytes) -> list[int]:
    """Leaf indexes holding ``pseudonym`` in a concatenated pseudonym blob."""
    out, at = [], pseudonyms.find(pseudonym)
    while at >= 0:
        if at % 32 == 0:
            out.append(at // 32)
        at = pseudonyms.find(pseudonym, at + 1)
    return out


def forget_sync(conn: Connection, region: str, pseudonym: bytes) -> int:
    """Redact in place (delete) every leaf of ``region`` under ``pseudonym``; returns the count.

    The leaf's payload is replaced by its RFC 9162 leaf hash, so the stored batch still
    matches its signed root; its pseudonym bytes become zeros.
    """
    deleted = 0
    for bid, blob in store.region_with_leaves(conn, region, pseudonym):
        found = _positions(bytes(blob), pseudonym)
        if not found:
            continue
        batch = hub_pb2.SnapshotBatch.FromString(store.batch_blob(conn, bid))
        names = bytearray(blob)
        for idx in found:
            batch.redacted.add(
                index=idx, leaf_hash=leaf_hash(pae(batch.payload_type, batch.payloads[idx]))
            )
            batch.payloads[idx] = b""
            names[idx * 32 : idx * 32 + 32] = _ZERO
        store.rewrite_batch(conn, bid, batch.SerializeToString(), bytes(names), len(found))
        deleted += len(found)
    return deleted


def own_entry(
    hub_id: str,
    root_public_key: bytes,
    key_set: Envelope,
    endpoints: tuple[str, ...] = (),
    *,
    tls_sha256: tuple[bytes, ...] = (),
) -> TrustedRegion:
    """The hub's own trust-list entry (receipts and co-signatures verify with the list;
    ``tls_sha256`` pins its certificates: peers refuse the hub with any other)."""
    return TrustedRegion(
        region=hub_id,
        root_public_key=root_public_key,
        key_set=key_set,
        name="provincial hub",
        endpoints=endpoints,
        tls_sha256=tls_sha256,
    )


class Hub:
    """The hub role's state: registry trust, trust list, ingest and witnessing."""

    def __init__(  # noqa: PLR0917
        self,
        db: Database,
        hub_id: str,
        signing: KeyPair,
        root: KeyPair,
        own_key_set: Envelope,
        config: HubConfig,
        metrics: CollectorRegistry,
        endpoints: tuple[str, ...] = (),
        tls_pins: Callable[[], tuple[bytes, ...]] = tuple,
    ) -> None:
        self._db = db
        self.hub_id = hub_id
        self._signing = signing
        self._root = root
        self._config = config
        self.metrics = HubMetrics(metrics)
        self._tls_pins = tls_pins  # re-read at each signing: a staged next certificate
        self.own = own_entry(hub_id, root.public_key, own_key_set, endpoints)
        self.trust = registry_trust([], hub_id)
        self._reloaded = 0.0

    # -- registry and trust list ---------------------------------------------------
    async def reload(self) -> None:
        regions = await self._db.read_unit(registered_regions)
        self.trust = registry_trust(regions, self.hub_id)

    async def refresh_trust_list(self, now: int, *, force: bool = False) -> TrustListRow | None:
        """Re-read the registry; sign a new trust list version if due."""
        await self.reload()
        c = self._config
        own = replace(self.own, tls_sha256=self._tls_pins())
        row = await self._db.write_unit(
            lambda conn: publish_if_due(
                conn, hub_id=self.hub_id, hub_root=self._root, own=own, now=now,
                ttl=c.trust_list_ttl_seconds, refresh=c.trust_list_refresh_seconds, force=force,
            )
        )  # fmt: skip
        if row is not None:
            log_event("trust list signed", hub=self.hub_id, version=row.version,
                      expires_at=row.expires_at)  # fmt: skip
        return row

    async def trust_list(self, now: int) -> bytes:
        row = await self._db.read_unit(current_trust_list)
        if row is None or now >= row.expires_at:
            await self.refresh_trust_list(now, force=row is not None)
            row = await self._db.read_unit(current_trust_list)
        assert row is not None
        return row.envelope

    def check_region(self, region: str) -> None:
        """H17: only registered domestic regions may push."""
        if region not in self.trust.regions:
            self.metrics.refused_regions.labels(region).inc()
            log_event("push refused", 30, region=region, reason="REGION_NOT_REGISTERED")
            raise PermissionDeniedError(
                "REGION_NOT_REGISTERED",
                "this region is not in the hub's registry; score data stays domestic (H17)",
            )

    async def admit(self, region: str) -> None:
        """:meth:`check_region`, re-reading the registry first when the region is unknown
        (a region registered while the hub runs is admitted at once; at most one
        re-read per second, so unknown callers cannot make the hub hammer its DB)."""
        if region not in self.trust.regions and time.monotonic() - self._reloaded >= 1.0:
            self._reloaded = time.monotonic()
            await self.reload()
        self.check_region(region)

    # -- cursors and receipts --------------------------------------------------------
    async def cursor(self, region: str) -> hub_pb2.GetCursorResponse:
        def read(conn: Connection) -> hub_pb2.GetCursorResponse:
            row = store.cursor_row(conn, region)
            out = hub_pb2.GetCursorResponse(region=region)
            if row is None:
                return out
            out.cursor, out.witnessed_log_size = int(row[0]), int(row[1])
            out.witnessed_log_root = bytes(row[2] or b"")
            last = store.receipt_at(conn, region, row[0])
            if last is not None:
                out.last_receipt.ParseFromString(last)
            return out

        return await self._db.read_unit(read)

    async def receipts(self, region: str, from_seq: int, limit: int) -> list[bytes]:
        n = max(1, min(limit or 100, 1000))
        return await self._db.read_unit(lambda conn: store.receipts_from(conn, region, from_seq, n))

    def _receipt(  # noqa: PLR0917
        self, region: str, seq: int, event_id: str, kind: str, leaves: int, content: bytes, now: int
    ) -> bytes:
        body = hub_pb2.Receipt(
            hub=self.hub_id, region=region, seq=seq, event_id=event_id, kind=kind,
            leaves=leaves, content_sha256=content, received_at=now,
        ).SerializeToString(deterministic=True)  # fmt: skip
        return sign(RECEIPT_TYPE, body, self._signing).to_bytes()

    # -- ingest ------------------------------------------------------------------------
    @staticmethod
    def _content(item: hub_pb2.PushItem) -> bytes:
        body = item.WhichOneof("body")
        if body == "snapshot_batch":
            return hashlib.sha256(item.snapshot_batch.checkpoint.payload).digest()
        if body == "status_list":
            return hashlib.sha256(item.status_list.payload).digest()
        if body == "deregistration":
            return hashlib.sha256(
                item.deregistration.SerializeToString(deterministic=True)
            ).digest()
        raise _fail("EMPTY_EVENT", "push item has no body", "body")

    @staticmethod
    def _duplicate(
        conn: Connection, region: str, item: hub_pb2.PushItem, content: bytes
    ) -> bytes | None:
        """The stored receipt of an already applied event; raises on conflict or gap."""
        cursor = store.cursor_of(conn, region)
        by_id = store.event_seq(conn, region, item.event_id)
        if item.seq <= cursor:
            row = store.event_at(conn, region, item.seq)
            if row is None or row[0] != item.event_id or bytes(row[1]) != content:
                raise FailedPreconditionError(
                    "EVENT_CONFLICT", f"event {item.seq} was stored with other content", field="seq"
                )
            return bytes(row[2])
        if by_id is not None:
            raise FailedPreconditionError(
                "EVENT_CONFLICT", "this event id was stored under another seq", field="event_id"
            )
        if item.seq != cursor + 1:
            raise FailedPreconditionError(
                "SEQUENCE_GAP", f"expected seq {cursor + 1}, got {item.seq}", field="seq"
            )
        return None

    async def ingest(self, region: str, item: hub_pb2.PushItem, now: int) -> bytes:
        """Verify and store one outbox event; returns the serialised receipt Envelope."""
        return await self.commit(await self.prepare(region, item, now))

    async def prepare(self, region: str, item: hub_pb2.PushItem, now: int) -> Prepared:
        """Checks and verification (no write): may run while the previous event commits."""
        self.check_region(region)
        kind = item.WhichOneof("body") or ""
        if kind not in EVENT_KINDS or item.kind != kind or item.seq < 1 or not item.event_id:
            raise _fail(
                "INVALID_EVENT", "push item kind/body/seq/event_id are inconsistent", "kind"
            )
        content = self._content(item)
        try:
            stored = await self._db.read_unit(lambda c: self._duplicate(c, region, item, content))
        except FailedPreconditionError as exc:
            if exc.code != "SEQUENCE_GAP":  # the previous event may still be committing
                raise
            stored = None
        prepared = Prepared(region, item, kind, content, now, stored)
        if stored is not None:
            return prepared
        try:
            if kind == "snapshot_batch":
                prepared.verified = await asyncio.to_thread(
                    verify_snapshot_batch, item.snapshot_batch, region, self.hub_id, self.trust,
                    now, self._config.max_leaves_per_batch,
                )  # fmt: skip
            elif kind == "status_list":
                prepared.status_meta = _verify_status(item.status_list, region, self.trust, now)
            elif len(item.deregistration.province_pseudonym) != 32:
                raise _fail(
                    "INVALID_PSEUDONYM", "province pseudonym must be 32 bytes", "deregistration"
                )
        except Exception as exc:
            self.metrics.events.labels(kind, getattr(exc, "code", "error")).inc()
            raise
        return prepared

    async def commit(self, prepared: Prepared) -> bytes:
        """Store a prepared event in ONE write unit (re-checking seq inside it)."""
        kind = prepared.kind
        if prepared.stored is not None:
            self.metrics.events.labels(kind, "duplicate").inc()
            return prepared.stored
        try:
            receipt, leaves = await self._apply(prepared)
        except Exception as exc:
            self.metrics.events.labels(kind, getattr(exc, "code", "error")).inc()
            raise
        self.metrics.events.labels(kind, "stored").inc()
        if kind == "snapshot_batch":
            self.metrics.leaves.inc(leaves)
        return receipt

    async def _apply(self, prepared: Prepared) -> tuple[bytes, int]:
        region, item, kind = prepared.region, prepared.item, prepared.kind
        content, now = prepared.content, prepared.now
        verified, status_meta = prepared.verified, prepared.status_meta

        def unit(conn: Connection) -> tuple[bytes, int]:
            stored = self._duplicate(conn, region, item, content)
            if stored is not None:  # a concurrent stream stored it first
                return stored, 0
            leaves = 0
            if verified is not None:
                b = item.snapshot_batch
                store.insert_batch(
                    conn,
                    (region, b.batch_id or item.event_id, b.period, b.scheme_id, b.scheme_version,
                     b.payload_type, len(b.payloads), verified.present,
                     verified.checkpoint.root_hash, b.checkpoint.SerializeToString(),
                     verified.pseudonyms, verified.blob, now),
                )  # fmt: skip
                leaves = verified.present
            elif status_meta is not None:
                _refuse_stale_status(conn, region, *status_meta)
                store.upsert_status_list(
                    conn, region, status_meta[0], status_meta[1],
                    item.status_list.SerializeToString(),
                )  # fmt: skip
            else:
                leaves = forget_sync(conn, region, item.deregistration.province_pseudonym)
            receipt = self._receipt(region, item.seq, item.event_id, kind, leaves, content, now)
            store.append_event(
                conn, region, item.seq, item.event_id, kind, content, leaves, receipt, now
            )
            store.move_cursor(conn, region, item.seq, now)
            return receipt, leaves

        return await self._db.write_unit(unit)

    # -- witnessing ----------------------------------------------------------------------
    async def witness(self, region: str, lc: hub_pb2.LogCheckpoint, now: int) -> bytes:
        """Check a log checkpoint for consistency; co-sign it, or record the split view."""
        self.check_region(region)
        trust, key = self.trust, self._signing
        outcome: WitnessOutcome = await self._db.write_unit(
            lambda conn: witness_sync(conn, region, trust, lc, key, now)
        )
        if outcome.evidence_reason:
            self.metrics.split_views.labels(region, outcome.evidence_reason).inc()
            log_event("log inconsistency", 40, region=region, reason=outcome.evidence_reason,
                      evidence_id=outcome.evidence_id)  # fmt: skip
            raise FailedPreconditionError(
                "LOG_INCONSISTENT",
                f"checkpoint is not consistent with the one witnessed before "
                f"({outcome.evidence_reason}); evidence {outcome.evidence_id} recorded",
                field="log_checkpoint",
            )
        assert outcome.cosigned is not None
        return outcome.cosigned


def _verify_status(
    env: attestation_pb2.Envelope, region: str, trust: Trust, now: int
) -> tuple[str, int]:
    """A pushed status list (it may arrive after it expired, so expiry is judged at its
    issue time) — but never dated beyond ``now`` + skew, and never signed by a key that
    is revoked by ``now`` or was unusable at its issue time (H3 review)."""
    unverified = attestation_pb2.StatusList()
    try:
        unverified.ParseFromString(env.payload)
    except Exception:
        raise _fail("MALFORMED", "not a StatusList", "status_list") from None
    if unverified.issued_at > now + _SKEW:
        raise VerificationError(
            "NOT_YET_VALID", "status list issued in the future", field="issued_at"
        )
    sl = verify_status_list(env, trust, unverified.issued_at)
    if sl.issuer_region != region:
        raise VerificationError("ISSUER_MISMATCH", "status list of another region", field="status")
    _payload, kid = verified_signer(env, trust.region_keys(region), STATUSLIST_TYPE)
    check_signing_time(trust, kid, sl.issued_at, now, "issued_at")
    owner = trust.signing_key(kid)
    assert owner is not None  # checked just above
    revoked_at = owner[1].revoked_at
    if revoked_at and now >= revoked_at:
        raise VerificationError("KEY_REVOKED", "status list signing key is revoked", field="key_id")
    return sl.list_id, sl.issued_at


def _refuse_stale_status(conn: Connection, region: str, list_id: str, issued: int) -> None:
    """Inside the write unit: a list older than the stored one is refused, not ignored."""
    stored = store.status_issued_at(conn, region, list_id)
    if stored is not None and stored > issued:
        raise FailedPreconditionError(
            "STATUS_LIST_STALE",
            f"status list issued at {issued} is older than the stored one ({stored})",
            field="issued_at",
        )
