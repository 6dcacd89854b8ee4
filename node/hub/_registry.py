"""The hub's region registry and its signed trust list (DESIGN.md, "Keys and trust").

Invariants:

* a region is registered with its root public key (weak keys refused) and a
  KeySet envelope that verifies under that root key for that region id; a
  re-registration may only keep the root key (a new root is a new region
  identity, refused with ``ROOT_KEY_CHANGED``) and never lowers the key set's
  version (``KEY_SET_ROLLBACK``);
* :func:`registry_trust` builds the :class:`keys.Trust` the hub verifies
  pushes with: exactly the registered regions (H17: others are refused);
* the trust list is a :class:`keys.TrustList` signed by the hub ROOT key,
  with a version one above the last one published, an expiry
  ``trust_list_ttl_seconds`` after issue; :func:`publish_if_due` signs a new
  one when none exists, when the registry changed (content hash) or when
  ``trust_list_refresh_seconds`` have passed since the last one — well
  before it expires (refresh <= ttl / 2, checked in the config).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from keys import (
    Envelope,
    KeyPair,
    KeysError,
    RegionTrust,
    Trust,
    TrustedRegion,
    TrustList,
    check_public_key,
    verify_key_set,
)
from node.core._errors import CodedNodeError
from node.store import Connection
from node.store import _hub as store
from node.store._dense import lock_dense_indexes

__all__ = [
    "RegistryError",
    "TrustListRow",
    "current_trust_list",
    "publish_if_due",
    "register_region",
    "registered_regions",
    "registry_trust",
]


class RegistryError(CodedNodeError):
    """A registration that cannot be accepted; ``code`` is stable."""


@dataclass(frozen=True, slots=True)
class TrustListRow:
    version: int
    envelope: bytes
    issued_at: int
    expires_at: int


def _csv(items: Sequence[str]) -> str:
    for x in items:
        if "," in x or not x:
            raise RegistryError("INVALID_REGISTRATION", f"bad list item {x!r}")
    return ",".join(items)


def register_region(
    conn: Connection,
    *,
    region: str,
    root_public_key: bytes,
    key_set: bytes,
    now: int,
    schemes: Sequence[str] = (),
    endpoints: Sequence[str] = (),
    tls_sha256: Sequence[bytes] = (),
    name: str = "",
    domestic: bool = True,
) -> int:
    """Add or update a region (in the caller's transaction); returns its key-set version."""
    if not region:
        raise RegistryError("INVALID_REGISTRATION", "region id is empty")
    try:
        check_public_key(root_public_key, field="root_public_key")
        ks = verify_key_set(key_set, root_public_key, region)
    except KeysError as exc:
        raise RegistryError(exc.code, f"region {region}: {exc}") from None
    if any(len(h) != 32 for h in tls_sha256):
        raise RegistryError("INVALID_REGISTRATION", "tls_sha256 entries must be 32 bytes")
    row = store.region_keys(conn, region)
    if row is not None:
        if row[0] != root_public_key:
            raise RegistryError("ROOT_KEY_CHANGED", f"region {region} has another root key")
        old = verify_key_set(row[1], root_public_key, region)
        if ks.version < old.version:
            raise RegistryError("KEY_SET_ROLLBACK", f"key set version {ks.version} < {old.version}")
    store.upsert_region(conn, region, name, root_public_key, key_set, _csv(schemes),
                        _csv(endpoints), b"".join(tls_sha256), domestic, now)  # fmt: skip
    return ks.version


def registered_regions(conn: Connection) -> list[TrustedRegion]:
    out = []
    for region, name, root, ks, schemes, endpoints, tls, domestic in store.region_rows(conn):
        tls = bytes(tls)
        out.append(
            TrustedRegion(
                region=region,
                root_public_key=bytes(root),
                key_set=Envelope.from_bytes(bytes(ks)),
                name=name,
                schemes=tuple(x for x in schemes.split(",") if x),
                endpoints=tuple(x for x in endpoints.split(",") if x),
                tls_sha256=tuple(tls[i : i + 32] for i in range(0, len(tls), 32)),
                domestic=bool(domestic),
            )
        )
    return out


def registry_trust(regions: Sequence[TrustedRegion], issuer: str, version: int = 0) -> Trust:
    """The Trust the hub verifies pushes with: the registered domestic regions only."""
    verified: dict[str, RegionTrust] = {}
    for r in regions:
        if not r.domestic:
            continue  # H17: score data never comes from, or goes to, abroad
        ks = verify_key_set(r.key_set, r.root_public_key, r.region)
        verified[r.region] = RegionTrust(
            region=r.region,
            root_public_key=r.root_public_key,
            keys=ks,
            schemes=frozenset(r.schemes),
            endpoints=r.endpoints,
            tls_sha256=frozenset(r.tls_sha256),
            domestic=True,
        )
    return Trust(issuer=issuer, version=version, expires_at=2**62, regions=verified)


def _registry_hash(regions: Sequence[TrustedRegion]) -> bytes:
    h = hashlib.sha256()
    for r in regions:
        for part in (r.region.encode(), r.root_public_key, r.key_set.to_bytes(), r.name.encode(),
                     ",".join(r.schemes).encode(), ",".join(r.endpoints).encode(),
                     b"".join(r.tls_sha256), b"%d" % r.domestic):  # fmt: skip
            h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def current_trust_list(conn: Connection) -> TrustListRow | None:
    row = store.latest_trust_list(conn)
    return None if row is None else TrustListRow(*row)


def publish_if_due(
    conn: Connection,
    *,
    hub_id: str,
    hub_root: KeyPair,
    own: TrustedRegion | None,
    now: int,
    ttl: int,
    refresh: int,
    force: bool = False,
) -> TrustListRow | None:
    """Sign and store a new trust list version if due (see the module docstring).

    ``own`` is the hub's own entry (its root key and key set), listed so that
    receipts and co-signatures verify with the same trust list.  Returns the
    new row, or None when the current list is still fresh.

    On PostgreSQL the decision is taken under the dense-index lock (held to COMMIT):
    hub replicas starting or refreshing at once sign one version ``n + 1``, not two
    (docs/adr/0702).
    """
    lock_dense_indexes(conn)
    regions = [r for r in registered_regions(conn) if own is None or r.region != own.region]
    if own is not None:
        regions.append(own)
    regions.sort(key=lambda r: r.region)
    digest = _registry_hash(regions)
    cur = current_trust_list(conn)
    if (
        cur is not None
        and not force
        and store.trust_list_hash(conn, cur.version) == digest
        and now < cur.issued_at + refresh
    ):
        return None
    version = 1 if cur is None else cur.version + 1
    env = TrustList(
        issuer=hub_id, version=version, issued_at=now, expires_at=now + ttl, regions=tuple(regions)
    ).sign(hub_root)
    blob = env.to_bytes()
    store.add_trust_list(conn, version, blob, now, now + ttl, digest)
    return TrustListRow(version, blob, now, now + ttl)
