"""Bilateral agreement tables and signature checks for every kind of table.

An agreement is written by two regions and must carry a valid signature by a
key of *each* region (the source scheme's and the target scheme's) before it
is used; a table signed by one party only is refused with
``MISSING_PARTY_SIGNATURE``.  Signatures cover ``PAE(TABLE_TYPE,
canonical(content))``; any signature by a known key that does not verify is
refused outright (``BAD_SIGNATURE``), never skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from fractions import Fraction

from scoring import Scheme

from ._equipercentile import check_histogram, histograms_of
from ._errors import SignatureError
from ._invariants import require_valid
from ._reach import ReferencePopulation, require_reach
from ._signing import TABLE_TYPE, SigningKeyLike, verify_signatures
from ._table import MappingTable, Method, SchemeRef

__all__ = ["RegionKeys", "agreement_table", "sign_table", "verify_table"]

#: region id → (key id → raw 32-byte Ed25519 public key)
RegionKeys = Mapping[str, Mapping[str, bytes]]


def agreement_table(
    source: Scheme,
    target: Scheme,
    grades: Mapping[str, str | None],
    *,
    effective_from: date,
    expires: date | None = None,
    version: str = "1",
    table_id: str | None = None,
    note: str = "",
    incentive_tier: bool = False,
) -> MappingTable:
    """A draft agreement (unsigned), refused unless it passes every invariant.

    With ``incentive_tier`` the agreement recognises only grades at or above
    the source's incentive tier: grades below it may be omitted (they become
    *not recognised*).  Each region then adds its signature with
    :meth:`MappingTable.signed`.
    """
    if incentive_tier:
        below = {g: None for g in source.grades if not source.is_incentive_grade(g)}
        grades = {**below, **grades}
    order = [g for g in source.grades if g in grades] + [
        g for g in grades if g not in source.grades
    ]
    table = MappingTable(
        id=table_id or f"{source.id}-{target.id}-agreement",
        version=version,
        method=Method.AGREEMENT,
        source=SchemeRef.of(source),
        target=SchemeRef.of(target),
        effective_from=effective_from,
        expires=expires,
        grades=tuple((g, grades[g]) for g in order),
        parameters={"note": note} if note else {},
        incentive_tier=incentive_tier,
    )
    require_valid(table, source, target)
    return table


def sign_table(
    table: MappingTable,
    source: Scheme,
    target: Scheme,
    key: SigningKeyLike,
    *,
    min_reach: Fraction | int | str | None = None,
    reference: ReferencePopulation | None = None,
) -> MappingTable:
    """Check every invariant, then add ``key``'s signature (a table is never signed unchecked).

    With ``min_reach`` the table must also keep at least that share of the
    source's incentive-eligible residents eligible (``INCENTIVE_REACH_TOO_LOW``),
    measured on ``reference`` (default: the shipped reference population).
    """
    require_valid(table, source, target)
    if min_reach is not None:
        require_reach(table, source, target, floor=min_reach, reference=reference)
    return table.signed(key)


def verify_table(
    table: MappingTable,
    keys: RegionKeys,
    *,
    source: Scheme | None = None,
    target: Scheme | None = None,
) -> frozenset[str]:
    """Verify the signatures a table needs; return the regions whose signatures verified.

    * agreement: a valid signature by the source region and by the target region;
    * equipercentile: each embedded histogram signed by its own region (needs
      ``source``/``target`` to check the histograms against the schemes);
    * anchored: reproducible from the scheme files, no signature required, but
      every signature present by a known key must verify.
    """
    signed_by: set[str] = set()
    for region, region_keys in keys.items():
        if verify_signatures(TABLE_TYPE, table.content_bytes, table.signatures, region_keys):
            signed_by.add(region)
    if table.method is Method.AGREEMENT:
        for side in (table.source, table.target):
            if side.region not in signed_by:
                raise SignatureError(
                    "signatures",
                    f"agreement {table.id!r} is not signed by region {side.region!r}",
                    code="MISSING_PARTY_SIGNATURE",
                )
    elif table.method is Method.EQUIPERCENTILE:
        hs, ht, min_pop = histograms_of(table)
        for hist, scheme, field in ((hs, source, "source"), (ht, target, "target")):
            if scheme is None:
                raise SignatureError(
                    f"{field}_histogram", "the scheme is needed to verify the histogram"
                )
            check_histogram(
                hist,
                scheme,
                min_population=min_pop,
                keys=keys.get(hist.region, {}),
                field=f"{field}_histogram",
            )
    return frozenset(signed_by)
