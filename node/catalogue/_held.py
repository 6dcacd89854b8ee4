"""What the node holds for the catalogue commands: its hub's trust list, peers' catalogues.

``huxin catalogue fetch`` may run while the node serves: the reads
(:mod:`node.store._catalogue`) open the node's database read-only, never write,
and treat a missing SQLite file as holding nothing.  The database is a storage
target (``config.storage``: a SQLite file or PostgreSQL; issue 18).  Peers' catalogues are stored
by the peer sync (:mod:`node.catalogue._peers`), verified before they are
written; they are read here as stored.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from keys import Envelope, KeysError
from keys.pb.v1 import catalogue_pb2
from node.catalogue._peers import ITEM
from node.store._backend import Target
from node.store._catalogue import newest_trust_list, peer_material

__all__ = ["held_catalogue", "persisted_trust_lists"]

#: At most this many peer catalogues are read (one per region of the trust list).
MAX_HELD_CATALOGUES = 256


def persisted_trust_lists(database: Target, hub: str) -> list[bytes]:
    """The newest trust-list envelope the node persisted from ``hub`` (``[]``: none)."""
    envelope = newest_trust_list(database, hub)
    return [] if envelope is None else [envelope]


def held_catalogue(database: Target, scheme_id: str) -> catalogue_pb2.Catalogue | None:
    """The newest peer catalogue the sync stored for ``scheme_id`` (None: none held).

    Rows are verified when stored; a row that does not decode is skipped."""
    bodies = peer_material(database, ITEM, MAX_HELD_CATALOGUES)
    if bodies is None:
        return None
    for body in bodies:
        try:
            cat = catalogue_pb2.Catalogue.FromString(Envelope.from_bytes(body).payload)
        except (KeysError, DecodeError):
            continue
        if cat.scheme_id == scheme_id:
            return cat
    return None
