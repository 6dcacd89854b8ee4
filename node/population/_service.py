"""``SourceService.SubmitResidenceFacts``: a population authority files residence facts.

Invariants: only a certificate identity listed in ``[sources] population`` may
call (PERMISSION_DENIED ``POPULATION_NOT_ALLOWED``); the batch id is bounded
and holds no ID number; a batch holds 1..:data:`FACTS_MAX` facts
(``MISSING_FIELD`` / ``BATCH_TOO_LARGE``); every fact is validated first
(:func:`validate_facts`) and any problem refuses the whole batch with
INVALID_ARGUMENT ``BATCH_REJECTED`` and the bounded per-fact list in
``huxin-batch-rejection-bin`` (index = the fact's position), nothing written;
the answer is sent after COMMIT.  The content hash is over the request's
deterministic serialisation, so a replay must be byte-identical in meaning.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from node.core._bounds import ID_MAX, check_text
from node.core._errors import InvalidArgumentError, PermissionDeniedError
from node.pb.v1 import node_pb2
from node.population._facts import FACTS_MAX, validate_facts
from node.population._registry import apply_facts
from node.store._records import batch_rejection

if TYPE_CHECKING:
    from node.rpc._context import NodeContext

__all__ = ["submit_residence_facts"]


async def submit_residence_facts(
    ctx: NodeContext, who: str, request: node_pb2.SubmitResidenceFactsRequest
) -> node_pb2.SubmitRecordsResponse:
    """Validate and store one fact batch from ``who`` (its certificate identity)."""
    if who not in ctx.config.population:
        raise PermissionDeniedError(
            "POPULATION_NOT_ALLOWED",
            "this certificate is not a population authority ([sources] population)",
        )
    check_text("batch_id", request.batch_id, ID_MAX, required=True)
    if not request.facts:
        raise InvalidArgumentError("MISSING_FIELD", "a batch needs facts", field="facts")
    if len(request.facts) > FACTS_MAX:
        raise InvalidArgumentError(
            "BATCH_TOO_LARGE", f"at most {FACTS_MAX} facts per batch", field="facts"
        )
    facts, problems = validate_facts(request.facts, ctx.scheme, ctx.today())
    if problems:
        raise batch_rejection(request.batch_id, problems)
    sha = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    result = await apply_facts(ctx, request.batch_id, who, facts, content_sha256=sha)
    return node_pb2.SubmitRecordsResponse(
        batch_id=result.batch_id,
        accepted=result.accepted,
        replayed=result.replayed,
        batch_sha256=result.sha256,
    )
