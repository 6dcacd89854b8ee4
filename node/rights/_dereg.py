"""Deregistration (H2): delete everything the node holds about a person, in one unit.

Invariants:

* one write unit: the person's attestations are revoked on the status list,
  a ``deregistration`` event is queued in the outbox (when the node pushes to
  a hub: the event carries only the province pseudonym, see
  :mod:`node.store._outbox`), every row keyed by their ``subject_key`` in EVERY
  table is deleted (found through ``sqlite_master``, so tables added by later
  migrations are covered), and the transparency log gets a ``deregistered``
  tombstone entry — all commit together or not at all;
* rows that must outlive the person lose the link instead of being deleted:
  status-list entries keep their index and REVOKED state with an empty
  subject key; transparency-log rows keep their leaf (the Merkle log is
  append-only; a leaf holds only the pseudonymous ``subject_ref``) and lose
  the ``subject_key`` column; snapshot leaves keep their hash only;
* a ``source_batches`` row (batch id, submitter, content hash) that references
  no record of anyone once the person's records are gone is deleted in the
  same unit (a batch id a department chose may hold an ID number, H2, H17).
  Rows still referencing another person's record are kept: they decide who
  owns those records and make replays idempotent.  A replay of a deleted
  batch is then new work, not a replay: it is refused
  (``SUBJECT_DEREGISTERED``) while the tombstone stands, or stored again after
  the person registered again, as a new batch would be;
* what remains is a tombstone HMAC(region secret, subject key): records a
  source submits later for the person are refused (``SUBJECT_DEREGISTERED``)
  and nobody is rescored until the person registers again
  (:func:`register`, which removes the tombstone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.core._errors import NotFoundError
from node.pb.v1 import node_pb2
from node.rights._events import RightsTx, run_rights_unit, tombstone
from node.store import _rights as store
from node.store._erase import erase_subject_sync

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["deregister", "register"]


async def deregister(ctx: NodeContext, key: bytes) -> node_pb2.DeregisterResponse:
    secret = ctx.secrets.storage_secret
    outbox: Any = getattr(ctx, "outbox", None)  # node.store._outbox.Outbox when the hub is wired

    def fn(rtx: RightsTx) -> node_pb2.DeregisterResponse:
        conn = rtx.conn
        if not store.subject_exists(conn, key):
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        records = store.count_records(conn, key)
        consents = store.count_consents(conn, key)
        queued = None
        if outbox is not None:  # before the subject row (and its sealed ID) is deleted
            queued = outbox.deregistration_sync(conn, key, rtx.now_s)
        stone = tombstone(secret, key)
        revoked = erase_subject_sync(conn, key, stone, rtx.now_iso)
        rtx.log("deregistered", key, reason="H2: all records, snapshots and consents deleted")
        rtx.after_log.append(lambda c: store.unlink_log_entries(c, key))
        return node_pb2.DeregisterResponse(
            records_deleted=int(records),
            consents_deleted=int(consents),
            attestations_revoked=revoked,
            tombstone=stone,
            hub_notified=queued is not None,
        )

    return await run_rights_unit(ctx, fn)


async def register(ctx: NodeContext, key: bytes) -> node_pb2.RegisterResponse:
    """Register again after deregistering: sources may submit records again."""
    stone = tombstone(ctx.secrets.storage_secret, key)

    def fn(rtx: RightsTx) -> node_pb2.RegisterResponse:
        gone = store.delete_tombstone(rtx.conn, stone)
        if gone:
            rtx.log("registered", None, reason="a deregistered person registered again")
        return node_pb2.RegisterResponse(was_deregistered=bool(gone))

    return await run_rights_unit(ctx, fn)
