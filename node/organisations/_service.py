"""``SourceService.SubmitOrganisationListings``: a source files organisations' listings.

Invariants: the caller is an allowed source (checked by the servicer); the
batch id is bounded and holds no ID number; a batch holds
1..:data:`LISTINGS_MAX` events (``MISSING_FIELD`` / ``BATCH_TOO_LARGE``); every
event is validated first (:func:`validate_listings`) and any problem refuses
the whole batch with INVALID_ARGUMENT ``BATCH_REJECTED`` and the bounded
per-event list in ``huxin-batch-rejection-bin`` (index = the event), nothing
written; the answer is sent after COMMIT.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from node.core._bounds import ID_MAX, check_text
from node.core._errors import InvalidArgumentError
from node.organisations._intake import store_listings
from node.organisations._listings import LISTINGS_MAX, validate_listings
from node.pb.v1 import node_pb2
from node.store._records import batch_rejection

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["submit_listings"]


async def submit_listings(
    ctx: NodeContext, who: str, request: node_pb2.SubmitOrganisationListingsRequest
) -> node_pb2.SubmitRecordsResponse:
    """Validate and store one listing batch from ``who`` (its certificate identity)."""
    check_text("batch_id", request.batch_id, ID_MAX, required=True)
    if not request.listings:
        raise InvalidArgumentError("MISSING_FIELD", "a batch needs listings", field="listings")
    if len(request.listings) > LISTINGS_MAX:
        raise InvalidArgumentError(
            "BATCH_TOO_LARGE", f"at most {LISTINGS_MAX} listings per batch", field="listings"
        )
    listings, problems = validate_listings(request.listings, ctx.today())
    if problems:
        raise batch_rejection(request.batch_id, problems)
    sha = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    result = await store_listings(
        ctx.db, request.batch_id, who, listings, content_sha256=sha, now_iso=ctx.now_iso()
    )
    return node_pb2.SubmitRecordsResponse(
        batch_id=result.batch_id,
        accepted=result.accepted,
        replayed=result.replayed,
        batch_sha256=result.sha256,
    )
