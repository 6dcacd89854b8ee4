"""Equipercentile linking from signed, aggregate-only grade histograms.

A :class:`GradeHistogram` is one region's count of people per grade for one
period: no personal data, signed by the region (Ed25519 over
``PAE(HISTOGRAM_TYPE, canonical(content))``).  It is refused unless it covers
exactly the scheme's grades with non-negative integer counts, names the
scheme version in use, and totals at least ``min_population`` people.

Definition: let ``a(x)`` be the share of the source population strictly below
tier ``x`` and ``b(y)`` the same for the target.  The worst person of tier
``x`` sits at percentile ``a(x)``; the bound for ``x`` is the *lowest* target
tier ``y`` whose ``b(y)`` equals ``max{b(y') : b(y') <= a(x)}`` (round down;
among tiers the evidence cannot tell apart — empty ones — take the lowest),
then adjusted by the fair rules of :mod:`mapping._fair` (parity floor, clean
cap, below-clean cap).  The table applies the incentive cap on top, or is an
incentive-tier table when only that can be fair.  Invariants: monotone (``a``,
``b`` non-decreasing), no round-trip inflation from the percentiles alone
(``b(T(x)) <= a(x)`` and the reverse picks the lowest tier among equal
shares), pivot composition never above direct from the percentiles alone —
all exact with rationals.  The parity floor lifts a clean record above what
its percentile supports; when the histograms are so different that the lifted
grade comes back above the start, or a pivot's floor lifts more than the
direct link's, the invariant check refuses the table (or the set) naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from fractions import Fraction
from typing import Any

from scoring import Scheme

from ._canonical import canonical
from ._errors import HistogramError, SignatureError
from ._fair import fair_grade, table_grades
from ._signing import HISTOGRAM_TYPE, Signature, SigningKeyLike, sign_bytes, verify_signatures
from ._table import MappingTable, Method, SchemeRef

__all__ = [
    "DEFAULT_MIN_POPULATION",
    "HISTOGRAM_FORMAT",
    "GradeHistogram",
    "equipercentile_bound",
    "equipercentile_table",
    "histogram_from_json",
]

DEFAULT_MIN_POPULATION = 1000
HISTOGRAM_FORMAT = "huxin.grade-histogram.v1"
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class GradeHistogram:
    """People per grade in one scheme for one period (YYYY-MM), aggregate only."""

    scheme: str
    scheme_version: str
    region: str
    period: str
    counts: tuple[tuple[str, int], ...]
    signatures: tuple[Signature, ...] = ()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)

    def content(self) -> dict[str, Any]:
        return {
            "format": HISTOGRAM_FORMAT,
            "scheme": self.scheme,
            "scheme_version": self.scheme_version,
            "region": self.region,
            "period": self.period,
            "counts": dict(self.counts),
        }

    @property
    def content_bytes(self) -> bytes:
        return canonical(self.content())

    def signed(self, key: SigningKeyLike) -> GradeHistogram:
        sig = sign_bytes(HISTOGRAM_TYPE, self.content_bytes, key)
        kept = tuple(s for s in self.signatures if s.key_id != sig.key_id)
        return replace(self, signatures=(*kept, sig))

    def to_json(self) -> dict[str, Any]:
        return {"content": self.content(), "signatures": [s.to_json() for s in self.signatures]}

    @classmethod
    def of(cls, scheme: Scheme, period: str, counts: Mapping[str, int]) -> GradeHistogram:
        return cls(
            scheme.id, scheme.version, scheme.region, period, tuple((g, counts[g]) for g in counts)
        )


def histogram_from_json(raw: Any, field: str = "histogram") -> GradeHistogram:
    """Parse ``{content, signatures}`` (structure only; see :func:`check_histogram`)."""
    if not isinstance(raw, dict) or set(raw) != {"content", "signatures"}:
        raise HistogramError(field, "must be an object {content, signatures}")
    c = raw["content"]
    keys = {"format", "scheme", "scheme_version", "region", "period", "counts"}
    if not isinstance(c, dict) or set(c) != keys or c.get("format") != HISTOGRAM_FORMAT:
        raise HistogramError(f"{field}.content", f"must have exactly {sorted(keys)}")
    for k in ("scheme", "scheme_version", "region", "period"):
        if not isinstance(c[k], str) or not c[k]:
            raise HistogramError(f"{field}.content.{k}", "must be a non-empty string")
    counts = c["counts"]
    if not isinstance(counts, dict):
        raise HistogramError(f"{field}.content.counts", "must map grades to counts")
    for g, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise HistogramError(f"{field}.content.counts.{g}", "must be an integer >= 0")
    sigs = raw["signatures"]
    if not isinstance(sigs, list):
        raise HistogramError(f"{field}.signatures", "must be a list")
    return GradeHistogram(
        c["scheme"],
        c["scheme_version"],
        c["region"],
        c["period"],
        tuple(counts.items()),
        tuple(Signature.from_json(s, f"{field}.signatures[{i}]") for i, s in enumerate(sigs)),
    )


def check_histogram(
    hist: GradeHistogram,
    scheme: Scheme,
    *,
    min_population: int = DEFAULT_MIN_POPULATION,
    keys: Mapping[str, bytes] | None = None,
    field: str = "histogram",
) -> None:
    """Refuse a histogram that does not fit ``scheme`` or is too small; verify its signature.

    ``keys`` (key id → raw public key) are the histogram region's keys; when
    given, a valid signature by one of them is required
    (``MISSING_PARTY_SIGNATURE`` otherwise).
    """
    if (hist.scheme, hist.scheme_version) != (scheme.id, scheme.version):
        raise HistogramError(
            f"{field}.scheme",
            f"is {hist.scheme}@{hist.scheme_version}, expected {scheme.key}",
            code="HISTOGRAM_SCHEME_MISMATCH",
        )
    if hist.region != scheme.region:
        raise HistogramError(
            f"{field}.region",
            f"is {hist.region!r}, scheme {scheme.key} belongs to {scheme.region!r}",
            code="HISTOGRAM_SCHEME_MISMATCH",
        )
    if not _PERIOD.match(hist.period):
        raise HistogramError(f"{field}.period", "must be YYYY-MM")
    grades = [g for g, _ in hist.counts]
    if len(set(grades)) != len(grades) or set(grades) != set(scheme.grades):
        missing = sorted(set(scheme.grades) - set(grades))
        extra = sorted(set(grades) - set(scheme.grades))
        raise HistogramError(
            f"{field}.counts", f"must cover exactly the grades; missing {missing}, extra {extra}"
        )
    for g, n in hist.counts:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise HistogramError(f"{field}.counts.{g}", "must be an integer >= 0")
    if hist.total < min_population:
        raise HistogramError(
            f"{field}.counts",
            f"{hist.total} people is below the minimum population {min_population}",
            code="POPULATION_TOO_SMALL",
        )
    if keys is not None and not verify_signatures(
        HISTOGRAM_TYPE, hist.content_bytes, hist.signatures, keys
    ):
        raise SignatureError(
            f"{field}.signatures",
            f"no valid signature by region {hist.region!r}",
            code="MISSING_PARTY_SIGNATURE",
        )


def _share_below(scheme: Scheme, hist: GradeHistogram) -> list[Fraction]:
    """Share of the population strictly below each tier, worst tier first (rank order)."""
    counts = dict(hist.counts)
    total = hist.total
    out: list[Fraction] = []
    running = 0
    for grade in reversed(scheme.grades):
        out.append(Fraction(running, total))
        running += counts[grade]
    return out


def percentile_grades(
    source: Scheme, target: Scheme, source_hist: GradeHistogram, target_hist: GradeHistogram
) -> dict[str, str]:
    """The target grade at each source tier's worst percentile, before the fair rules."""
    a = _share_below(source, source_hist)
    b = _share_below(target, target_hist)
    worst_first_target = list(reversed(target.grades))
    out: dict[str, str] = {}
    for rank_x, x in enumerate(reversed(source.grades)):
        p = a[rank_x]
        best_share = max(v for v in b if v <= p)  # b[0] == 0 <= p, never empty
        out[x] = worst_first_target[b.index(best_share)]  # lowest tier with that share
    return {g: out[g] for g in source.grades}


def equipercentile_bound(
    source: Scheme, target: Scheme, source_hist: GradeHistogram, target_hist: GradeHistogram
) -> dict[str, str | None]:
    """The highest target grade each source tier supports by population percentile.

    ``None``: no grade (a below-clean grade when the target's clean-record grade is its worst).
    """
    worst = percentile_grades(source, target, source_hist, target_hist)
    return {x: fair_grade(source, target, x, worst[x])[0] for x in source.grades}


def equipercentile_table(
    source: Scheme,
    target: Scheme,
    source_hist: GradeHistogram,
    target_hist: GradeHistogram,
    *,
    keys: Mapping[str, Mapping[str, bytes]],
    min_population: int = DEFAULT_MIN_POPULATION,
    version: str = "1",
    effective_from: date | None = None,
    expires: date | None = None,
    incentive_tier: bool | None = None,
) -> MappingTable:
    """Link ``source`` to ``target`` by equal percentiles, after verifying both histograms.

    ``keys`` maps region id → (key id → raw public key); each histogram must be
    signed by its own region.  ``incentive_tier`` as for
    :func:`mapping.anchored_table`.
    """
    from ._invariants import require_valid

    check_histogram(
        source_hist,
        source,
        min_population=min_population,
        keys=keys.get(source.region, {}),
        field="source_histogram",
    )
    check_histogram(
        target_hist,
        target,
        min_population=min_population,
        keys=keys.get(target.region, {}),
        field="target_histogram",
    )
    grades, scoped = table_grades(
        source,
        target,
        equipercentile_bound(source, target, source_hist, target_hist),
        incentive_tier=incentive_tier,
    )
    table = MappingTable(
        id=f"{source.id}-{target.id}-equipercentile",
        version=version,
        method=Method.EQUIPERCENTILE,
        source=SchemeRef.of(source),
        target=SchemeRef.of(target),
        effective_from=effective_from or max(source.effective, target.effective),
        expires=expires,
        grades=tuple((g, grades[g]) for g in source.grades),
        parameters={
            "min_population": min_population,
            "source_histogram": source_hist.to_json(),
            "target_histogram": target_hist.to_json(),
        },
        incentive_tier=scoped,
    )
    require_valid(table, source, target)
    return table


def histograms_of(table: MappingTable) -> tuple[GradeHistogram, GradeHistogram, int]:
    """The evidence embedded in an equipercentile table."""
    p = table.parameters
    min_pop = p.get("min_population")
    if isinstance(min_pop, bool) or not isinstance(min_pop, int) or min_pop < 1:
        raise HistogramError("parameters.min_population", "must be a positive integer")
    return (
        histogram_from_json(p.get("source_histogram"), "parameters.source_histogram"),
        histogram_from_json(p.get("target_histogram"), "parameters.target_histogram"),
        min_pop,
    )
