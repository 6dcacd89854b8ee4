"""Personal supplementary information (N5, N9): uploaded by the person, verified before use.

Invariants:

* an upload names a category that accepts ``personal_verified`` records in
  the node's scheme, a positive polarity, a proof hash (32 bytes), the source
  department that is to verify it (one of ``sources.allowed``) and the
  person's authorisation of that verification; its strings are bounded and its
  act id and description hold no ID number (:mod:`node.core._bounds`, docs/bounds.md);
  anything else is refused with the field named, nothing cut silently;
* nothing uploaded counts until the named department verifies it: then ONE
  unit inserts a ``personal_verified`` record (source = that department),
  recomputes the grade at once and tells the citizen; a rejection must give
  a reason, which the citizen is told (notification and their upload list);
* a citizen uploads at most ``[rights] supplements_per_hour`` in any rolling hour
  and holds at most ``max_pending_supplements`` undecided (RESOURCE_EXHAUSTED
  ``SUPPLEMENT_RATE_EXCEEDED`` / ``TOO_MANY_PENDING_SUPPLEMENTS``), counted in the
  upload's own write unit; a refused upload writes nothing (no row, no log leaf);
* only the named department sees and decides an upload; another's is
  NOT_FOUND; a decided upload cannot be decided again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from node.core._bounds import ID_MAX, NAME_MAX, NOTE_MAX, check_length, check_text
from node.core._errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from node.exchange._throttle import RETRY_AFTER_KEY
from node.pb.v1 import node_pb2
from node.rights._events import RightsTx, run_rights_unit
from node.store import Connection
from node.store import _supplements as store
from scoring import Polarity, Provenance

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = [
    "SUPPLEMENT_RATE_EXCEEDED",
    "TOO_MANY_PENDING_SUPPLEMENTS",
    "decide",
    "list_for_subject",
    "list_for_verifier",
    "refuse_upload_over_limits",
    "upload",
]

SUPPLEMENT_RATE_EXCEEDED = "SUPPLEMENT_RATE_EXCEEDED"
TOO_MANY_PENDING_SUPPLEMENTS = "TOO_MANY_PENDING_SUPPLEMENTS"
_HOUR = 3_600


def _info(r: Sequence[Any]) -> node_pb2.SupplementInfo:
    return node_pb2.SupplementInfo(
        supplement_id=r[0],
        category=r[1],
        level=r[2] or "",
        act_id=r[3],
        recognised_on=r[4],
        verifier=r[5],
        proof_sha256=bytes(r[6]),
        description=r[7],
        state=r[8],
        reason=r[9],
        record_id=r[10] or "",
        submitted_at=r[11],
    )


def _validate(ctx: NodeContext, req: node_pb2.UploadSupplementRequest) -> date:
    check_length("category", req.category, NAME_MAX, required=True)
    check_length("level", req.level, NAME_MAX)
    check_length("verifier", req.verifier, NAME_MAX, required=True)
    # stored, and the act id copied into records on verification (H6: no ID numbers)
    check_text("act_id", req.act_id, ID_MAX, required=True)
    check_text("description", req.description, NOTE_MAX)
    scheme = ctx.scheme
    cat = scheme.categories.get(req.category)
    if cat is None:
        raise InvalidArgumentError(
            "UNKNOWN_CATEGORY", f"not in scheme {scheme.key}'s catalogue", field="category"
        )
    if cat.polarity is not Polarity.POSITIVE:
        raise InvalidArgumentError(
            "POLARITY_MISMATCH", "only honours and contributions may be uploaded", field="category"
        )
    if Provenance.PERSONAL_VERIFIED not in cat.provenances:
        raise InvalidArgumentError(
            "PROVENANCE_NOT_ALLOWED",
            f"scheme {scheme.key} does not accept personal uploads for this category",
            field="category",
        )
    if cat.level_multipliers and req.level not in cat.level_multipliers:
        raise InvalidArgumentError(
            "UNKNOWN_LEVEL", f"must be one of {sorted(cat.level_multipliers)}", field="level"
        )
    if not cat.level_multipliers and req.level:
        raise InvalidArgumentError("UNKNOWN_LEVEL", "this category has no levels", field="level")
    try:
        recognised = date.fromisoformat(req.recognised_on)
    except ValueError:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be a date YYYY-MM-DD", field="recognised_on"
        ) from None
    if recognised > ctx.today():
        raise InvalidArgumentError("FUTURE_RECOGNITION", "is in the future", field="recognised_on")
    if len(req.proof_sha256) != 32:
        raise InvalidArgumentError(
            "INVALID_FIELD", "must be the 32-byte SHA-256 of the proof", field="proof_sha256"
        )
    if req.verifier not in ctx.config.sources:
        raise InvalidArgumentError(
            "UNKNOWN_VERIFIER", "must be a source department of this node", field="verifier"
        )
    if not req.authorise_verification:
        raise InvalidArgumentError(
            "VERIFICATION_NOT_AUTHORISED",
            "the person must authorise the named department to verify the upload (N9)",
            field="authorise_verification",
        )
    return recognised


def refuse_upload_over_limits(
    conn: Connection, key: bytes, per_hour: int, max_pending: int, now_s: int
) -> None:
    """RESOURCE_EXHAUSTED if one more upload by ``key`` at ``now_s`` would exceed
    ``per_hour`` uploads in the rolling hour (checked first: a decision does not help
    there) or ``max_pending`` undecided ones.  Read in the upload's own write unit, so
    concurrent uploads of every process are counted (as consent grants, ADR 0324)."""
    recent = store.nth_latest_upload_at(conn, key, per_hour)
    if recent is not None:
        at = int(datetime.fromisoformat(recent).timestamp())
        if at > now_s - _HOUR:
            seconds = max(1, at + _HOUR - now_s)
            raise ResourceExhaustedError(
                SUPPLEMENT_RATE_EXCEEDED,
                f"at most {per_hour} uploads per hour; retry after {seconds} s",
                details=((RETRY_AFTER_KEY, str(seconds)),),
            )
    pending = store.count_pending(conn, key)
    if pending >= max_pending:
        raise ResourceExhaustedError(
            TOO_MANY_PENDING_SUPPLEMENTS,
            f"at most {max_pending} uploads may await a decision; wait for one",
        )


async def upload(
    ctx: NodeContext, key: bytes, req: node_pb2.UploadSupplementRequest
) -> node_pb2.SupplementInfo:
    recognised = _validate(ctx, req)
    supplement_id = os.urandom(8).hex()
    limits = ctx.config.rights

    def fn(rtx: RightsTx) -> node_pb2.SupplementInfo:
        if rtx.score_of(key) is None:
            raise NotFoundError("SUBJECT_UNKNOWN", "no records are held for this person")
        refuse_upload_over_limits(  # before anything is written: no row, no log leaf
            rtx.conn, key, limits.supplements_per_hour, limits.max_pending_supplements, rtx.now_s
        )
        store.insert_upload(
            rtx.conn,
            supplement_id,
            key,
            category=req.category,
            level=req.level or None,
            act_id=req.act_id,
            recognised_on=recognised.isoformat(),
            verifier=req.verifier,
            proof_sha256=bytes(req.proof_sha256),
            description=req.description,
            at_iso=rtx.now_iso,
        )
        rtx.log("supplement_uploaded", key, requester=req.verifier, reason=supplement_id)
        row = store.by_id(rtx.conn, supplement_id)
        return _info(row)

    return await run_rights_unit(ctx, fn)


async def decide(
    ctx: NodeContext, verifier: str, supplement_id: str, accept: bool, reason: str
) -> node_pb2.SupplementInfo:
    if not accept and not reason.strip():
        raise InvalidArgumentError(
            "MISSING_FIELD", "a rejection must tell the person why (N9)", field="reason"
        )

    def fn(rtx: RightsTx) -> node_pb2.SupplementInfo:
        row = store.by_id_with_key(rtx.conn, supplement_id)
        if row is None or row[5] != verifier:
            raise NotFoundError("SUPPLEMENT_NOT_FOUND", "no such upload", field="supplement_id")
        if row[8] != "pending":
            raise FailedPreconditionError(
                "SUPPLEMENT_DECIDED", f"already {row[8]}", field="supplement_id"
            )
        key = bytes(row[12])
        if accept:
            record_id = f"supp-{supplement_id}"
            store.insert_record(
                rtx.conn,
                key,
                record_id,
                verifier,
                category=row[1],
                act_id=row[3],
                recognised_on=row[4],
                level=row[2],
                at_iso=rtx.now_iso,
            )
            store.set_verified(rtx.conn, supplement_id, record_id, rtx.now_iso)
            rtx.notify(key, "supplement", f"your upload {supplement_id} was verified and counts")
            rtx.log("supplement_verified", key, requester=verifier, reason=supplement_id)
            rtx.rescore(key, f"verified upload {supplement_id}")
        else:
            store.set_rejected(rtx.conn, supplement_id, reason, rtx.now_iso)
            rtx.notify(key, "supplement", f"your upload {supplement_id} was not verified: {reason}")
            rtx.log("supplement_rejected", key, requester=verifier, reason=supplement_id)
        out = store.by_id(rtx.conn, supplement_id)
        return _info(out)

    return await run_rights_unit(ctx, fn)


async def list_for_verifier(
    ctx: NodeContext, verifier: str, pending_only: bool
) -> node_pb2.ListSupplementsResponse:
    rows = await store.list_for_verifier(ctx.db, verifier, pending_only)
    return node_pb2.ListSupplementsResponse(supplements=[_info(r) for r in rows])


async def list_for_subject(
    ctx: NodeContext, key: bytes, pending_only: bool
) -> node_pb2.ListSupplementsResponse:
    rows = await store.list_for_subject(ctx.db, key, pending_only)
    return node_pb2.ListSupplementsResponse(supplements=[_info(r) for r in rows])
