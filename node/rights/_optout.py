"""Voluntariness (N3, N4): a resident asks not to be scored, and may opt back in.

Opting out is NOT deregistration (ADR 0502): deregistration erases everything
held about the person and is final for those data; opting out keeps every
record (the departments' data must be kept as the law requires) and is
reversible.  While a person is opted out:

* nothing is computed or published for them: the rights unit's rescore skips
  them (:class:`node.rights._events.RightsTx`), their ``current_grades`` row is
  deleted, and the monthly run leaves them out (it selects subjects with
  :data:`OPTED_OUT_SUBJECTS` excluded);
* every active consent ends (withdrawn at the opt-out instant) and their issued
  attestations are revoked on the status list, in the same unit;
* a relying party is refused with FAILED_PRECONDITION ``SUBJECT_OPTED_OUT``
  (:func:`refuse_if_opted_out`) and learns nothing else; a new consent is
  refused alike; ``GetMyScore`` says "opted out" and computes nothing;
* the opt-out and the opt-in are written to the transparency log and told to
  the person; opting in again scores them at once (ADR 0501).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.core._errors import FailedPreconditionError, NotFoundError
from node.pb.v1 import node_pb2
from node.rights._events import RightsTx, run_rights_unit
from node.store import Connection
from node.store import _optout as store
from node.store._optout import OPTED_OUT_SUBJECTS
from node.store._rights import revoke_attestations, subject_exists

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["OPTED_OUT_SUBJECTS", "is_opted_out_sync", "opt_in", "opt_out", "refuse_if_opted_out"]


def is_opted_out_sync(conn: Connection, key: bytes) -> str | None:
    """When the person opted out (ISO time), or None."""
    return store.opted_out_at(conn, key)


def refuse_if_opted_out(conn: Connection, key: bytes | None) -> None:
    """FAILED_PRECONDITION ``SUBJECT_OPTED_OUT`` when the person asked not to be scored."""
    if key and is_opted_out_sync(conn, key) is not None:
        raise FailedPreconditionError(
            "SUBJECT_OPTED_OUT", "the person is not scored at their own request"
        )


async def opt_out(ctx: NodeContext, key: bytes) -> node_pb2.OptOutResponse:
    now_s = ctx.now_s()

    def fn(rtx: RightsTx) -> node_pb2.OptOutResponse:
        conn = rtx.conn
        if not subject_exists(conn, key):
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        since = is_opted_out_sync(conn, key)
        if since is not None:  # idempotent: nothing more to end
            return node_pb2.OptOutResponse(opted_out_at=since)
        store.insert_opt_out(conn, key, rtx.now_iso)
        ended = store.end_active_consents(conn, key, now_s)
        revoked = revoke_attestations(conn, key)
        store.delete_current_grade(conn, key)
        rtx.log("opted_out", key, reason="N3: not scored at own request; records kept")
        rtx.notify(
            key,
            "opt_out",
            f"you are not scored from now on; {ended} consent(s) ended, {revoked} attestation(s) "
            "revoked; your records are kept and you may opt in again at any time",
        )
        return node_pb2.OptOutResponse(
            consents_ended=ended, attestations_revoked=revoked, opted_out_at=rtx.now_iso
        )

    return await run_rights_unit(ctx, fn)


async def opt_in(ctx: NodeContext, key: bytes) -> node_pb2.OptInResponse:
    def fn(rtx: RightsTx) -> node_pb2.OptInResponse:
        gone = store.delete_opt_out(rtx.conn, key)
        if gone:
            rtx.log("opted_in", key, reason="N3: scored again at own request")
            rtx.notify(key, "opt_out", "you are scored again")
            rtx.rescore(key, "opting in")
        return node_pb2.OptInResponse(was_opted_out=bool(gone))

    return await run_rights_unit(ctx, fn)
