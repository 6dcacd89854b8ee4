"""The node's trust state: which peers it may serve and request from (H17).

A federated node holds the hub's signed trust list (:class:`keys.TrustList`),
pinned to the hub root key named in its ``[federation]`` config.  A standalone
development node (no ``[federation]`` section) uses the static
``[peers].allowed`` list instead; the two are mutually exclusive (config
check).  See docs/adr/0410.

Invariants:

* a trust list is verified (hub signature first, then every region's key set)
  before anything in it is used;
* the version never goes back: a list older than the highest version accepted
  is refused (``TRUST_ROLLBACK``), and so is a *different* list with the same
  version (``TRUST_EQUIVOCATION``); the highest accepted list is persisted
  (table ``trust_lists``, migration 0006) and reloaded at start, so a restart
  cannot be rolled back either;
* an expired list is refused (``TRUST_EXPIRED``) unless the node's config
  says ``allow_stale = true``, and then :attr:`TrustState.stale` reports it
  (``huxin status`` shows it); with a refused or missing list the node allows
  nobody (fail closed);
* an identity is allowed when its region is listed and domestic; an
  integrator identity ``<region>.<org>`` (e.g. ``hainan.bank``) belongs to
  ``<region>``; a node always allows its own region's identities;
* only a hub listed in the trust list (its issuer, or an entry tagged
  ``role:hub``) may relay a call on behalf of another identity; a region may
  relay only for its own integrators (:meth:`TrustState.vouch`);
* every refusal of a trust list is kept as evidence (``trust_refusals``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.message import DecodeError

from keys import (
    TRUSTLIST_TYPE,
    Envelope,
    KeysError,
    KeySet,
    RegionTrust,
    Trust,
    VerificationError,
    load_trust,
)
from keys.pb.v1 import attestation_pb2
from node.core._errors import HuxinError, PermissionDeniedError
from node.core._observe import log_event
from node.store import Connection
from node.store import _trust_lists as trust_lists

__all__ = [
    "HOPS_KEY",
    "HUB_ENDPOINT_PREFIX",
    "HUB_TAG",
    "ON_BEHALF_KEY",
    "TrustDecision",
    "TrustError",
    "TrustState",
    "compare_versions",
    "open_trust",
    "region_of_identity",
    "trust_list_bytes",
]

ON_BEHALF_KEY = "huxin-on-behalf-of"  # metadata: the original requester of a relayed call
HOPS_KEY = "huxin-hops"  # metadata: how many times a call was relayed
HUB_TAG = "role:hub"  # endpoint tag of a hub entry in a trust list
HUB_ENDPOINT_PREFIX = "hub:"  # endpoint tag naming a region's home hub


class TrustError(HuxinError):
    """A trust list the node will not use; ``code`` is a stable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """Outcome of offering a trust list: ``accepted`` (new), ``current`` (same) or refused."""

    outcome: str  # accepted | current | refused
    version: int
    reason: str = ""


def region_of_identity(identity: str, listed: Mapping[str, Any] | Sequence[str]) -> str:
    """The region an identity belongs to: itself if listed, else the part before the first dot."""
    if identity in listed:
        return identity
    return identity.split(".", 1)[0]


def trust_list_bytes(data: bytes) -> bytes:
    """The TrustList envelope bytes of ``data`` (an envelope or a serialised TrustBundle)."""
    bundle = attestation_pb2.TrustBundle()
    try:
        bundle.ParseFromString(data)
    except DecodeError:
        return data
    if bundle.HasField("trust_list") and bundle.trust_list.payload_type == TRUSTLIST_TYPE:
        return bytes(bundle.trust_list.SerializeToString())
    return data


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    parts = version.replace("-", ".").split(".")
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)


class TrustState:
    """The node's current trust (hub-signed list, or the static development list)."""

    def __init__(
        self,
        region: str,
        *,
        hub: str = "",
        hub_key: bytes = b"",
        allow_stale: bool = False,
        static_peers: Sequence[str] = (),
    ) -> None:
        self.region = region
        self.hub = hub
        self.hub_key = hub_key
        self.allow_stale = allow_stale
        self.static_peers = tuple(static_peers)
        self._trust: Trust | None = None
        self._envelope: bytes = b""
        self._overlay: dict[str, KeySet] = {}
        self.accepted_at = 0

    # -- state -------------------------------------------------------------
    @property
    def federated(self) -> bool:
        return bool(self.hub_key)

    @property
    def trust(self) -> Trust | None:
        """Verified trust with any newer key sets fetched from peers overlaid."""
        t = self._trust
        if t is None or not self._overlay:
            return t
        regions = {
            name: replace(r, keys=self._overlay[name]) if name in self._overlay else r
            for name, r in t.regions.items()
        }
        return Trust(t.issuer, t.version, t.expires_at, regions, stale=t.stale)

    @property
    def version(self) -> int:
        return self._trust.version if self._trust else 0

    @property
    def expires_at(self) -> int:
        return self._trust.expires_at if self._trust else 0

    @property
    def envelope(self) -> bytes:
        return self._envelope

    def stale_at(self, now: int) -> bool:
        return self._trust is not None and now >= self._trust.expires_at

    def regions(self) -> Mapping[str, RegionTrust]:
        return self._trust.regions if self._trust else {}

    def hubs(self) -> set[str]:
        """Hubs named by the current list (its issuer and entries tagged ``role:hub``)."""
        if self._trust is None:
            return set()
        out = {self._trust.issuer}
        out.update(n for n, r in self._trust.regions.items() if HUB_TAG in r.endpoints)
        return out

    def endpoint(self, region: str) -> str | None:
        """The direct ``host:port`` of a region or hub, if the list names one."""
        r = self.regions().get(region)
        if r is None:
            return None
        for e in r.endpoints:
            if ":" in e and not e.startswith((HUB_ENDPOINT_PREFIX, "role:")):
                return e
        return None

    def home_hub(self, region: str) -> str | None:
        r = self.regions().get(region)
        if r is None:
            return None
        for e in r.endpoints:
            if e.startswith(HUB_ENDPOINT_PREFIX):
                return e[len(HUB_ENDPOINT_PREFIX) :]
        return None

    def peers(self) -> list[str]:
        """Every listed domestic region or hub other than this node (sync targets, H17)."""
        if not self.federated:
            return [p for p in self.static_peers if p != self.region]
        return sorted(r for r in self.regions() if r != self.region and self.allows(r))

    # -- who may call ------------------------------------------------------
    def allows(self, identity: str, now: int | None = None) -> bool:
        """May ``identity`` (a certificate identity) exchange score data with us (H17)?"""
        if not self.federated:
            region = region_of_identity(identity, self.static_peers)
            return region == self.region or region in self.static_peers
        t = self._trust
        if t is None or (t.stale and not self.allow_stale):
            return False
        if now is not None and now >= t.expires_at and not self.allow_stale:
            return False
        region = region_of_identity(identity, t.regions)
        entry = t.regions.get(region)
        if entry is not None:
            return entry.domestic
        return region in (self.region, t.issuer)

    def vouch(self, relay: str, on_behalf_of: str) -> str:
        """The effective identity of a relayed call, or ``PermissionDeniedError``.

        Nobody vouches for this node's own region or its organisations: they
        reach their own node directly with their own certificates.
        """
        if on_behalf_of == self.region or on_behalf_of.startswith(self.region + "."):
            raise PermissionDeniedError(
                "RELAY_NOT_TRUSTED", "no relay may act on behalf of this node's own region"
            )
        if relay in self.hubs():
            if self.allows(on_behalf_of):
                return on_behalf_of
        elif (
            self.allows(relay)
            and on_behalf_of != relay
            and region_of_identity(on_behalf_of, self.regions()) == relay
        ):
            return on_behalf_of
        raise PermissionDeniedError(
            "RELAY_NOT_TRUSTED", "this caller may not act on behalf of another identity"
        )

    # -- trust lists -------------------------------------------------------
    def _verify(self, envelope: bytes, now: int) -> Trust:
        try:
            trust = load_trust(
                envelope,
                self.hub_key,
                now,
                min_version=self.version,
                allow_stale=self.allow_stale,
            )
        except (VerificationError, KeysError) as exc:
            raise TrustError(exc.code, str(exc)) from None
        if self.hub and trust.issuer != self.hub:
            raise TrustError("TRUST_INVALID", f"trust list issued by {trust.issuer!r}")
        if (
            self._trust is not None
            and trust.version == self._trust.version
            and envelope != self._envelope
        ):
            raise TrustError(
                "TRUST_EQUIVOCATION", f"a different list with the same version {trust.version}"
            )
        return trust

    def offer_sync(self, conn: Connection, data: bytes, now: int, source: str) -> TrustDecision:
        """Verify and, if newer, adopt and persist a trust list (runs on the writer thread).

        The in-memory state changes only through :meth:`adopt` after COMMIT.
        """
        if not self.federated:
            return TrustDecision("refused", 0, "NOT_FEDERATED")
        envelope = trust_list_bytes(data)
        try:
            trust = self._verify(envelope, now)
        except TrustError as exc:
            version = _peek_version(envelope)
            trust_lists.refuse_trust_list(conn, now, source, version, exc.code)
            return TrustDecision("refused", version, exc.code)
        if self._trust is not None and trust.version == self._trust.version:
            return TrustDecision("current", trust.version)
        trust_lists.accept_trust_list(
            conn, trust.issuer, trust.version, trust.expires_at, envelope,
            hashlib.sha256(envelope).digest(), now, source,
        )  # fmt: skip
        return TrustDecision("accepted", trust.version)

    def adopt(self, envelope: bytes, now: int) -> None:
        """Install a list verified and committed by :meth:`offer_sync` (after COMMIT)."""
        trust = load_trust(envelope, self.hub_key, now, allow_stale=True)
        if trust.version < self.version:
            return
        self._trust, self._envelope, self.accepted_at = trust, envelope, now
        self._overlay = {
            k: v for k, v in self._overlay.items() if k in trust.regions and _newer(v, trust, k)
        }
        log_event("trust list adopted", issuer=trust.issuer, version=trust.version)

    async def offer(self, db: Any, data: bytes, now: int, source: str) -> TrustDecision:
        """Verify, persist and adopt a trust list offered by ``source`` (file, hub, peer)."""
        envelope = trust_list_bytes(data)
        decision: TrustDecision = await db.write_unit(
            lambda conn: self.offer_sync(conn, data, now, source)
        )
        if decision.outcome == "accepted":
            self.adopt(envelope, now)
        elif decision.outcome == "refused":
            log_event(
                "trust list refused",
                30,
                source=source,
                version=decision.version,
                reason=decision.reason,
                held=self.version,
            )
        return decision

    async def load(self, db: Any, now: int) -> None:
        """Reload the highest persisted list (at start, before any port opens)."""
        if not self.federated:
            return
        row = await trust_lists.newest_trust_envelope(db, self.hub)
        if row is None:
            return
        try:
            trust = load_trust(bytes(row[0]), self.hub_key, now, allow_stale=True)
        except (VerificationError, KeysError) as exc:
            log_event("persisted trust list does not verify", 40, reason=exc.code)
            return
        self._trust, self._envelope, self.accepted_at = trust, bytes(row[0]), now
        if trust.stale or now >= trust.expires_at:
            log_event("trust list expired", 30, version=trust.version, stale=self.allow_stale)

    async def follow(self, db: Any, now: int) -> bool:
        """Adopt a newer list another process of this node persisted (peer-port
        workers, docs/adr/0312); True if the held list changed."""
        if not self.federated:
            return False
        row = await trust_lists.newest_trust_list(db, self.hub)
        if row is None or int(row[1]) < self.version or bytes(row[0]) == self._envelope:
            return False
        try:
            self.adopt(bytes(row[0]), now)
        except (VerificationError, KeysError) as exc:
            log_event("persisted trust list does not verify", 40, reason=exc.code)
            return False
        return True

    def overlay_key_set(self, key_set: KeySet) -> bool:
        """Use a newer key set of a listed region (fetched from that region); True if newer."""
        t = self._trust
        if t is None or key_set.region not in t.regions:
            return False
        held = self._overlay.get(key_set.region) or t.regions[key_set.region].keys
        if key_set.version <= held.version:
            return False
        self._overlay[key_set.region] = key_set
        return True

    def key_set_version(self, region: str) -> int:
        held = self._overlay.get(region)
        if held is not None:
            return held.version
        r = self.regions().get(region)
        return r.keys.version if r else -1


def _newer(ks: KeySet, trust: Trust, region: str) -> bool:
    return ks.version > trust.regions[region].keys.version


def _peek_version(envelope: bytes) -> int:
    """The claimed version of an (unverified) list, for the refusal record only."""
    try:
        env = Envelope.from_bytes(envelope)
        m = attestation_pb2.TrustList()
        m.ParseFromString(env.payload)
        return int(m.version)
    except Exception:  # evidence only; never trusted
        return -1


def compare_versions(a: str, b: str) -> int:
    """-1, 0, 1 comparing dotted version strings (numeric parts numerically)."""
    ka, kb = _version_key(a), _version_key(b)
    return (ka > kb) - (ka < kb)


async def open_trust(config: Any, db: Any, now: int) -> TrustState:
    """The trust state of a node at start: persisted list, then the seed file if newer."""
    fed = config.federation
    if fed is None:
        return TrustState(config.region, static_peers=config.peers)
    state = TrustState(config.region, hub=fed.hub, hub_key=fed.hub_key, allow_stale=fed.allow_stale)
    await state.load(db, now)
    if fed.trust_list is not None and fed.trust_list.exists():
        await state.offer(db, fed.trust_list.read_bytes(), now, "file")
    if state.version == 0:
        log_event("no usable trust list: every peer is refused until one is fetched", 30)
    return state
