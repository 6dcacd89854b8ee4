"""A scheme's ceiling on how long any record may count (H7; ADR 0003).

Heihe: 积分计算信用信息一般不超过3年（国际、国家表彰可延长）— information used
for scoring counts for at most 3 years, except international and national
honours.  A scheme declares this as::

    [validity_cap]
    years = 3
    exempt = { honour = ["national", "international"] }

Invariants of a parsed :class:`ValidityCap` (checked by
:func:`parse_validity_cap`, which names the offending field):

* ``months > 0``;
* every exempt category exists and every exempt level is one of its levels;
* no default validity of a non-exempt (category, level or severity) exceeds
  the cap, so only a source's own ``valid_until`` can ever be cut.

The cap is applied by the engine, never at intake: a stored record keeps the
date its source gave (records are never silently modified, H7); the score
counts it only up to the cap and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._errors import SchemeError

__all__ = ["ValidityCap", "parse_validity_cap"]

_KEYS = frozenset({"years", "exempt"})


class _CategoryShape(Protocol):
    """What the validity cap checks of a category."""

    @property
    def validity_months(self) -> int: ...
    @property
    def level_multipliers(self) -> Mapping[str, float]: ...
    @property
    def extended_validity_months(self) -> Mapping[str, int]: ...
    @property
    def severities(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ValidityCap:
    """No record counts more than ``months`` after recognition, unless exempt."""

    months: int
    exempt: Mapping[str, frozenset[str]]  # category id -> exempt levels

    def applies_to(self, category: str, level: str | None) -> bool:
        levels = self.exempt.get(category)
        return levels is None or level is None or level not in levels


def _years_to_months(years: float) -> int:
    return round(years * 12)


def parse_validity_cap(raw: Any, categories: Mapping[str, _CategoryShape]) -> ValidityCap | None:
    """Validate ``[validity_cap]`` against the scheme's categories (None when absent)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SchemeError("validity_cap", "must be a table { years, exempt }")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise SchemeError(
            f"validity_cap.{unknown[0]}", "is not a validity_cap field (years, exempt)"
        )
    years = raw.get("years")
    if years is None:
        raise SchemeError("validity_cap.years", "is required")
    if isinstance(years, bool) or not isinstance(years, int | float) or years <= 0:
        raise SchemeError("validity_cap.years", "must be a number of years > 0")
    months = _years_to_months(years)
    exempt_raw = raw.get("exempt", {})
    if not isinstance(exempt_raw, dict):
        raise SchemeError("validity_cap.exempt", "must map categories to lists of levels")
    exempt: dict[str, frozenset[str]] = {}
    for cid, levels in exempt_raw.items():
        path = f"validity_cap.exempt.{cid}"
        if cid not in categories:
            raise SchemeError(path, f"unknown category {cid!r}")
        if not isinstance(levels, list) or not levels:
            raise SchemeError(path, "must list at least one level")
        known = categories[cid].level_multipliers
        for i, level in enumerate(levels):
            if level not in known:
                raise SchemeError(f"{path}[{i}]", f"{level!r} is not a level of {cid!r}")
        exempt[cid] = frozenset(levels)
    for cid, cat in categories.items():
        exempt_levels = exempt.get(cid, frozenset())
        defaults = [(f"categories.{cid}.validity_years", cat.validity_months)]
        defaults += [
            (f"categories.{cid}.extended_validity_years.{lvl}", m)
            for lvl, m in cat.extended_validity_months.items()
            if lvl not in exempt_levels
        ]
        defaults += [
            (f"categories.{cid}.severities.{sev}.validity_years", band.validity_months)
            for sev, band in cat.severities.items()
        ]
        for path, value in defaults:
            if value > months:
                raise SchemeError(
                    path,
                    f"{value} months is longer than the scheme's validity cap of {months} months",
                )
    return ValidityCap(months, exempt)
