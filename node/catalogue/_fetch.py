"""Fetching a peer's signed catalogue and verifying it against the trust material (N17).

``huxin catalogue fetch --config node.toml --peer REGION`` runs
:func:`fetch_catalogue` with the node's own certificate:

1. the trust material is the newest hub-signed trust list the node holds (the
   one its database persisted, or its seed file ``[federation] trust_list``),
   verified under the pinned hub key; an expired one only with ``[federation]
   allow_stale``; a standalone node has none (``NOT_FEDERATED``);
2. the peer must be a domestic region of that list with a direct endpoint
   (``PEER_NOT_TRUSTED``, ``NO_ROUTE``);
3. over mutual TLS the peer's key set (``GetKeySet``) is verified under the root
   key the trust list names for it, and the newer of the two key sets is used
   (a peer that rotated its signing key since the list was signed still
   verifies, docs/adr/0412);
4. ``GetSignedCatalogue``: :func:`keys.open_catalogue` (signature, key validity
   now, canonical bytes, region), then the catalogue's scheme version must be
   one the trust list lists for the peer (``SCHEME_NOT_TRUSTED``).

Trust rests on the signatures, not on the channel: the catalogue is public
material any CA certificate may read (docs/adr/0415, 0511).
"""

from __future__ import annotations

from dataclasses import dataclass

from keys import (
    Envelope,
    KeysError,
    KeySet,
    RegionTrust,
    Trust,
    VerificationError,
    load_trust,
    open_catalogue,
    verify_key_set,
)
from keys.pb.v1 import catalogue_pb2
from node.catalogue._held import persisted_trust_lists
from node.catalogue._peers import check_listed
from node.core._config import NodeConfig
from node.core._errors import FailedPreconditionError, PermissionDeniedError, UnavailableError
from node.federation._trust import HUB_ENDPOINT_PREFIX, trust_list_bytes
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import peer_channel

__all__ = ["FetchedCatalogue", "fetch_catalogue", "held_trust", "peer_endpoint"]

#: A signed catalogue is at most keys.MAX_CATALOGUE_BYTES; the channel allows a little more.
_MAX_RESPONSE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FetchedCatalogue:
    catalogue: catalogue_pb2.Catalogue
    envelope: Envelope  # exactly as received: write it out, verify it again later
    key_id: str  # the peer's signing key that verified
    key_set_version: int


def held_trust(config: NodeConfig, now: int) -> Trust:
    """The newest trust list this node holds that verifies (module docstring, step 1)."""
    fed = config.federation
    if fed is None:
        raise FailedPreconditionError(
            "NOT_FEDERATED", "a standalone node holds no trust list to verify a peer with"
        )
    candidates = persisted_trust_lists(config.storage, fed.hub)
    if fed.trust_list is not None and fed.trust_list.exists():
        candidates.append(trust_list_bytes(fed.trust_list.read_bytes()))
    best: Trust | None = None
    refused: VerificationError | KeysError | None = None
    for envelope in candidates:
        try:
            trust = load_trust(envelope, fed.hub_key, now, allow_stale=fed.allow_stale)
        except (VerificationError, KeysError) as exc:
            refused = refused or exc
            continue
        if fed.hub and trust.issuer != fed.hub:
            continue
        if best is None or trust.version > best.version:
            best = trust
    if best is not None:
        return best
    if refused is not None:
        raise refused
    raise FailedPreconditionError("NO_TRUST_LIST", "this node holds no trust list yet")


def peer_endpoint(entry: RegionTrust) -> str:
    """The direct ``host:port`` the trust list names for a region."""
    for e in entry.endpoints:
        if ":" in e and not e.startswith((HUB_ENDPOINT_PREFIX, "role:")):
            return e
    raise UnavailableError("NO_ROUTE", f"the trust list names no endpoint of {entry.region}")


def _newer(held: KeySet, fetched: KeySet) -> KeySet:
    return fetched if fetched.version > held.version else held


async def fetch_catalogue(
    config: NodeConfig, peer: str, now: int, *, timeout: float = 15.0
) -> FetchedCatalogue:
    """``peer``'s catalogue, verified (module docstring); gRPC failures propagate."""
    trust = held_trust(config, now)
    entry = trust.regions.get(peer)
    if entry is None or not entry.domestic:
        raise PermissionDeniedError(
            "PEER_NOT_TRUSTED", f"{peer!r} is not a domestic region of the trust list (H17)"
        )
    target = peer_endpoint(entry)
    tls = config.tls
    channel = peer_channel(
        target,
        tls.ca.read_bytes(),
        tls.cert.read_bytes(),
        tls.key.read_bytes(),
        max_bytes=_MAX_RESPONSE,
    )
    try:
        stub = node_pb2_grpc.PeerServiceStub(channel)
        key_set_env = await stub.GetKeySet(node_pb2.GetKeySetRequest(), timeout=timeout)
        key_set = _newer(entry.keys, verify_key_set(key_set_env, entry.root_public_key, peer))
        signed = await stub.GetSignedCatalogue(
            node_pb2.GetIncentiveCatalogueRequest(), timeout=timeout
        )
    finally:
        await channel.close(None)
    envelope = Envelope.from_proto(signed)
    opened = open_catalogue(envelope, key_set, now)
    cat = opened.catalogue
    check_listed(cat, entry, peer)
    return FetchedCatalogue(cat, envelope, opened.key_id, key_set.version)
