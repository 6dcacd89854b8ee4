"""Peers' signed catalogues, taken by the peer sync (N17, N20; docs/adr/0205).

The peer sync (:mod:`node.federation._sync`) fetches each peer's ``GetSignedCatalogue``
next to its key set and status list and hands the bytes to
:func:`verify_peer_catalogue`; only a catalogue that passes is stored (table
``peer_material``, item ``catalogue``, through :func:`node.federation._sync.keep_highest`:
highest version kept, rollback and equivocation refused).

Invariants (each refusal names its reason, and nothing is stored):

* at most :data:`MAX_SIGNED_CATALOGUE_BYTES` of envelope (``TOO_LARGE``),
  checked before anything is decoded;
* :func:`keys.open_catalogue`: signed by a key of the peer's verified key set
  that may sign now (``BAD_SIGNATURE``, ``UNKNOWN_KEY``, ``KEY_EXPIRED``...),
  at most ``keys.MAX_SCENARIOS`` scenarios, the peer's own region
  (``ISSUER_MISMATCH``);
* the catalogue's scheme version is one the trust list lists for the peer
  (``SCHEME_NOT_TRUSTED``, :func:`check_listed`, shared with ``huxin
  catalogue fetch``);
* its versions are plain names (``MALFORMED``); the stored version is
  ``<scheme version>-<catalogue version>``, so a rollout's catalogue supersedes
  the previous one;
* at most one catalogue per peer region is held, so the count is bounded by the
  trust list (itself bounded).

Equivocation is judged on the signed *payload*: a peer that re-signs the same
catalogue with a rotated key publishes the same catalogue.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from keys import (
    MAX_CATALOGUE_BYTES,
    Envelope,
    KeySet,
    RegionTrust,
    VerificationError,
    open_catalogue,
)
from node.core._errors import NodeError
from node.pb.v1 import catalogue_pb2

__all__ = [
    "ITEM",
    "MAX_SIGNED_CATALOGUE_BYTES",
    "CatalogueRefused",
    "PeerCatalogue",
    "check_listed",
    "verify_peer_catalogue",
]

#: The ``peer_material`` item a peer's catalogue is stored under.
ITEM = "catalogue"
#: A signed catalogue: the payload bound plus room for the envelope and its signatures.
MAX_SIGNED_CATALOGUE_BYTES = MAX_CATALOGUE_BYTES + 16 * 1024
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class CatalogueRefused(NodeError):
    """A peer's catalogue refused before it is decoded (``TOO_LARGE``)."""


@dataclass(frozen=True, slots=True)
class PeerCatalogue:
    """A verified peer catalogue, ready to store."""

    catalogue: catalogue_pb2.Catalogue
    version: str  # "<scheme version>-<catalogue version>"
    payload_sha256: bytes  # what equivocation is judged on


def check_listed(cat: catalogue_pb2.Catalogue, entry: RegionTrust, peer: str) -> None:
    """``SCHEME_NOT_TRUSTED`` unless the trust list lists the catalogue's scheme for ``peer``."""
    scheme_key = f"{cat.scheme_id}@{cat.scheme_version}"
    if entry.schemes and scheme_key not in entry.schemes:
        raise VerificationError(
            "SCHEME_NOT_TRUSTED",
            f"the trust list does not list {scheme_key} for {peer}",
            field="scheme_version",
        )


def verify_peer_catalogue(
    peer: str, body: bytes, key_set: KeySet, entry: RegionTrust, now: int
) -> PeerCatalogue:
    """The verified catalogue in ``body`` (a serialised envelope); see the module invariants.

    Raises :class:`CatalogueRefused`, :class:`keys.VerificationError` or
    :class:`keys.KeysError`, each naming the reason in ``code``."""
    if len(body) > MAX_SIGNED_CATALOGUE_BYTES:
        raise CatalogueRefused(
            "TOO_LARGE",
            f"a signed catalogue is at most {MAX_SIGNED_CATALOGUE_BYTES} bytes",
            field="catalogue",
        )
    envelope = Envelope.from_bytes(body)
    cat = open_catalogue(envelope, key_set, now).catalogue
    check_listed(cat, entry, peer)
    if not (_VERSION.match(cat.scheme_version) and _VERSION.match(cat.version)):
        raise VerificationError(
            "MALFORMED", "scheme and catalogue versions must be plain names", field="version"
        )
    digest = hashlib.sha256(envelope.payload).digest()
    return PeerCatalogue(cat, f"{cat.scheme_version}-{cat.version}", digest)
