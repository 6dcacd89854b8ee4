"""The approval record of a mapping table (批准或备案, H13), built from the table (pure).

:func:`approval_for` is the only way this project fills a
``MappingApproval`` (``proto/node/pb/v1/attestation.proto``): it refuses a
table failing any invariant (:func:`require_valid`, ``INVARIANT_*``) or whose
incentive reach is below ``min_reach`` (:func:`require_reach`,
``INCENTIVE_REACH_TOO_LOW`` with the figure), and copies the table's identity,
its content hash, both scheme versions, its validity dates and the reach
measured on the reference population into the record.  Signing is the
authority's act (``keys.sign_approval``); nothing here holds a key.

Reach counts: ``reach_eligible`` and ``reach_kept`` are the sums of the
reference population's integer weights (people, or parts per million of them)
over the eligible and the kept grades, so ``reach_ppm`` = kept/eligible in
parts per million rounded down equals :attr:`IncentiveReach.reach_ppm` exactly
(docs/mapping.md, "Incentive reach").
"""

from __future__ import annotations

from calendar import timegm
from datetime import date
from fractions import Fraction

from node.pb.v1 import attestation_pb2 as pb
from scoring import Scheme

from ._errors import TableError
from ._invariants import require_valid
from ._reach import ReferencePopulation, incentive_reach, reference_population, require_reach
from ._table import MappingTable

__all__ = ["DECISIONS", "approval_for", "day_start"]

#: The two acts the plan names (批准或备案); either puts a table in force.
DECISIONS = ("approved", "filed")
_HASH_PREFIX = "sha256:"


def day_start(day: date) -> int:
    """Unix seconds of 00:00 UTC on ``day``."""
    return timegm(day.timetuple())


def _hash_bytes(table: MappingTable) -> bytes:
    return bytes.fromhex(table.content_hash.removeprefix(_HASH_PREFIX))


def approval_for(
    table: MappingTable,
    source: Scheme,
    target: Scheme,
    *,
    authority: str,
    decision: str,
    issued_at: int,
    min_reach: Fraction | int | str | None = None,
    reference: ReferencePopulation | None = None,
    effective_from: date | None = None,
) -> pb.MappingApproval:
    """The approval record of ``table`` (unsigned), after the checks of the module docstring.

    ``effective_from`` (default: the table's own) may only be later than the table's,
    never earlier: an approval cannot put a table in force before it exists.  The
    approval expires when the table does.  ``BAD_DECISION`` for a decision other than
    :data:`DECISIONS`; ``SCHEME_MISMATCH`` when the schemes are not the table's sides.
    """
    if decision not in DECISIONS:
        raise TableError(
            "decision", "must be 'approved' (批准) or 'filed' (备案)", code="BAD_DECISION"
        )
    if (table.source.scheme, table.source.version) != (source.id, source.version) or (
        table.target.scheme,
        table.target.version,
    ) != (target.id, target.version):
        raise TableError(
            "table",
            f"table {table.id!r} maps {table.source.key} → {table.target.key}, "
            f"not {source.key} → {target.key}",
            code="SCHEME_MISMATCH",
        )
    require_valid(table, source, target)
    ref = reference if reference is not None else reference_population(source)
    if min_reach is not None:
        reach = require_reach(table, source, target, floor=min_reach, reference=ref)
    else:
        reach = incentive_reach(table, source, target, ref)
    start = effective_from or table.effective_from
    if start < table.effective_from:
        raise TableError(
            "effective_from",
            f"table {table.id!r} is effective from {table.effective_from}, not {start}",
            code="BAD_EFFECTIVE_FROM",
        )
    if table.expires is not None and start >= table.expires:
        raise TableError(
            "effective_from",
            f"table {table.id!r} expires on {table.expires}, not after {start}",
            code="BAD_EFFECTIVE_FROM",
        )
    total = sum(w for _, w in ref.weights)
    eligible = reach.eligible * total
    kept = reach.kept * total
    # the shares are weight sums over the total, so both products are integers
    assert eligible.denominator == 1
    assert kept.denominator == 1
    return pb.MappingApproval(
        mapping_sha256=_hash_bytes(table),
        mapping_id=table.id,
        mapping_version=table.version,
        method=table.method.value,
        source_scheme_id=source.id,
        source_scheme_version=source.version,
        source_region=table.source.region,
        target_scheme_id=target.id,
        target_scheme_version=target.version,
        target_region=table.target.region,
        effective_from=day_start(start),
        expires=day_start(table.expires) if table.expires is not None else 0,
        decision=decision,
        authority=authority,
        reach_eligible=int(eligible),
        reach_kept=int(kept),
        reach_ppm=reach.reach_ppm,
        issued_at=issued_at,
    )
