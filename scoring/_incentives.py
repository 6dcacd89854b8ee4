"""Incentive catalogues (H14, N14, N16, N17): which grades qualify for which measures.

The score is for incentives only.  A catalogue entry grants a benefit to
grades at or above ``min_grade`` (never below the scheme's incentive
threshold); it can never deny, restrict or surcharge, and never gates a basic
public service or a legal right — a basic public service may only be made
faster or more convenient for high grades, never withheld from low ones.
Entries that break this are refused when the scheme loads, naming the entry.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import SchemeError

__all__ = ["Incentive", "IncentiveEffect", "parse_incentives"]


class IncentiveEffect(enum.StrEnum):
    FAST_LANE = "fast_lane"  # 绿色通道, 容缺受理
    PRIORITY = "priority"  # 同等条件下优先
    DISCOUNT = "discount"
    DEPOSIT_WAIVER = "deposit_waiver"  # 免押金
    CREDIT_TERMS = "credit_terms"  # 信用贷款, 利率优惠
    RECOGNITION = "recognition"  # 媒体推介, 荣誉


#: Effects a catalogue may offer on a basic public service: convenience only.
BASIC_SERVICE_EFFECTS = frozenset({IncentiveEffect.FAST_LANE})
#: Words that mark a punishment rather than an incentive.
_PUNITIVE = ("deny", "refus", "restrict", "surcharge", "exclu", "blacklist", "ban", "limit")


@dataclass(frozen=True)
class Incentive:
    id: str
    title: str
    domain: str  # public_service | market | other
    effect: IncentiveEffect
    min_grade: str
    basic_public_service: bool = False


def parse_incentives(raw: Any, grades: Sequence[str], incentive_tier: str) -> tuple[Incentive, ...]:
    """Validate ``[[incentives]]`` entries; ``grades`` are best first."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SchemeError("incentives", "must be a list of tables")
    threshold = grades.index(incentive_tier)
    out: list[Incentive] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        path = f"incentives[{i}]"
        if not isinstance(entry, dict):
            raise SchemeError(path, "must be a table")
        iid, title = entry.get("id"), entry.get("title")
        if not isinstance(iid, str) or not iid or iid in seen:
            raise SchemeError(f"{path}.id", "must be a unique non-empty string")
        seen.add(iid)
        if not isinstance(title, str) or not title:
            raise SchemeError(f"{path}.title", "is required")
        effect_raw = str(entry.get("effect", ""))
        if any(word in effect_raw.lower() for word in _PUNITIVE):
            raise SchemeError(
                f"{path}.effect",
                f"{effect_raw!r} is a punishment; the score is for incentives only (H14, N14)",
            )
        try:
            effect = IncentiveEffect(effect_raw)
        except ValueError:
            allowed = ", ".join(e.value for e in IncentiveEffect)
            raise SchemeError(f"{path}.effect", f"must be one of {allowed}") from None
        grade = str(entry.get("min_grade"))
        if grade not in grades:
            raise SchemeError(f"{path}.min_grade", f"{grade!r} is not a grade of this scheme")
        if grades.index(grade) > threshold:
            raise SchemeError(
                f"{path}.min_grade",
                f"{grade} is below the incentive threshold {incentive_tier} (H14)",
            )
        basic = bool(entry.get("basic_public_service", False))
        if basic and effect not in BASIC_SERVICE_EFFECTS:
            raise SchemeError(
                f"{path}.effect",
                "a basic public service may only be made faster for high grades, "
                "never conditioned on a grade (H14, N14)",
            )
        domain = entry.get("domain", "other")
        if domain not in {"public_service", "market", "other"}:
            raise SchemeError(f"{path}.domain", "must be public_service, market or other")
        out.append(Incentive(iid, title, domain, effect, grade, basic))
    return tuple(out)
