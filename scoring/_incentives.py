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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import SchemeError

__all__ = [
    "SCENARIO_REF_MAX",
    "Disclosure",
    "Incentive",
    "IncentiveEffect",
    "parse_incentives",
    "parse_scenario_ref",
    "scenario_ref",
]


class IncentiveEffect(enum.StrEnum):
    FAST_LANE = "fast_lane"  # 绿色通道, 容缺受理
    PRIORITY = "priority"  # 同等条件下优先
    DISCOUNT = "discount"
    DEPOSIT_WAIVER = "deposit_waiver"  # 免押金
    CREDIT_TERMS = "credit_terms"  # 信用贷款, 利率优惠
    RECOGNITION = "recognition"  # 媒体推介, 荣誉


class Disclosure(enum.StrEnum):
    """What a relying party may see for a scenario (H12: in principle only grade and score).

    Ordered from least to most: a consent may disclose at most what its scenario
    allows, and ``THRESHOLD`` (meets the scenario's tier: yes, signed; no grade,
    no score) is every scenario's default.
    """

    THRESHOLD = "threshold"
    GRADE = "grade"
    GRADE_AND_SCORE = "grade_and_score"

    @property
    def rank(self) -> int:
        return _DISCLOSURE_ORDER.index(self)


_DISCLOSURE_ORDER = (Disclosure.THRESHOLD, Disclosure.GRADE, Disclosure.GRADE_AND_SCORE)

#: A scenario reference, as a consent's purpose names it: ``<scheme id>/<scenario id>``.
SCENARIO_REF_MAX = 96
_REF = re.compile(r"^([a-z][a-z0-9_-]{0,31})/([a-z][a-z0-9-]{0,62})$")
_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def scenario_ref(scheme_id: str, scenario_id: str) -> str:
    """The purpose string naming ``scenario_id`` of ``scheme_id``'s catalogue."""
    return f"{scheme_id}/{scenario_id}"


def parse_scenario_ref(ref: str) -> tuple[str, str] | None:
    """``(scheme id, scenario id)`` of a well-formed reference, else ``None``."""
    if len(ref) > SCENARIO_REF_MAX:
        return None
    m = _REF.match(ref)
    return None if m is None else (m.group(1), m.group(2))


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
    #: the most a consent for this scenario may disclose; threshold unless the
    #: catalogue says otherwise
    disclosure: Disclosure = Disclosure.THRESHOLD


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
        if not isinstance(iid, str) or not _ID.match(iid) or iid in seen:
            raise SchemeError(
                f"{path}.id", "must be a unique id of lower-case letters, digits and '-' (1-63)"
            )
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
        try:
            disclosure = Disclosure(entry.get("disclosure", Disclosure.THRESHOLD.value))
        except ValueError:
            allowed = ", ".join(d.value for d in Disclosure)
            raise SchemeError(f"{path}.disclosure", f"must be one of {allowed}") from None
        out.append(Incentive(iid, title, domain, effect, grade, basic, disclosure))
    return tuple(out)
