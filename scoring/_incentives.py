"""Incentive catalogues (H12, H14, N14, N16, N17): which grades qualify for which scenario.

The score is for incentives only.  A catalogue entry (a *scenario*) grants a
benefit to grades at or above ``min_grade``, never below the scheme's
incentive tier; it can never deny, restrict or surcharge, and never gates a
basic public service or a legal right — a basic public service may only be
made faster for high grades (``fast_lane``), never withheld from low ones, and
it learns no more than that the tier is met (``threshold``).

:func:`parse_incentives` refuses, naming the entry and field:

* a field the catalogue does not know, a missing or over-long string (the
  bounds below), an unknown effect, sector, domain or disclosure, a
  non-boolean ``basic_public_service``, a duplicate or malformed id;
* wording that reads as a punishment or a restriction, in English or Chinese
  (:data:`PUNITIVE_WORDS_EN`, :data:`PUNITIVE_WORDS_ZH`), in the id, titles,
  provider or effect: the score must never serve punishment (H14, N14);
* a basic public service whose effect is not ``fast_lane`` or whose
  disclosure is more than ``threshold``;
* a ``min_grade`` that is not a grade of the scheme or is below its incentive
  tier.

What a relying party may see follows from ``disclosure`` alone
(:attr:`Disclosure.sees_zh`, :attr:`Disclosure.sees_en`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import SchemeError

__all__ = [
    "BASIC_SERVICE_EFFECTS",
    "BASIC_SERVICE_SECTORS",
    "INCENTIVES_MAX",
    "PROVIDER_MAX",
    "PUNITIVE_WORDS_EN",
    "PUNITIVE_WORDS_ZH",
    "SCENARIO_REF_MAX",
    "TITLE_EN_MAX",
    "TITLE_MAX",
    "Disclosure",
    "Incentive",
    "IncentiveEffect",
    "Sector",
    "parse_incentives",
    "parse_scenario_ref",
    "punitive_word",
    "scenario_ref",
]


class IncentiveEffect(enum.StrEnum):
    FAST_LANE = "fast_lane"  # 绿色通道, 容缺受理, 先治疗后付费
    PRIORITY = "priority"  # 同等条件下优先
    DISCOUNT = "discount"  # 减免, 折扣
    DEPOSIT_WAIVER = "deposit_waiver"  # 免押金
    CREDIT_TERMS = "credit_terms"  # 信用贷款, 利率优惠
    RECOGNITION = "recognition"  # 媒体推介, 荣誉
    CONVENIENCE = "convenience"  # 延长租借时间, 延迟退房


class Sector(enum.StrEnum):
    """Who a relying party is, for looking scenarios up; labels are the catalogue's."""

    GOVERNMENT_SERVICES = "government_services"  # 政务服务
    PUBLIC_FUNDING = "public_funding"  # 财政补贴、项目扶持
    EMPLOYMENT = "employment"  # 招聘录用、职务晋升、评先评优
    HONOURS = "honours"  # 荣誉评选
    MEDIA = "media"  # 媒体推介
    TRANSPORT = "transport"  # 交通出行
    FINANCE = "finance"  # 信贷
    INSURANCE = "insurance"  # 保险
    TOURISM = "tourism"  # 旅游
    HEALTHCARE = "healthcare"  # 医疗
    RENTAL = "rental"  # 租借
    HOSPITALITY = "hospitality"  # 住宿
    VEHICLES = "vehicles"  # 机动车服务
    ENTREPRENEURSHIP = "entrepreneurship"  # 招商引资、孵化、创业
    COMMERCE = "commerce"  # 经营主体的惠民优惠

    @property
    def label(self) -> str:
        return _SECTOR_LABELS[self]


_SECTOR_LABELS = {
    Sector.GOVERNMENT_SERVICES: "政务服务",
    Sector.PUBLIC_FUNDING: "财政扶持",
    Sector.EMPLOYMENT: "人事",
    Sector.HONOURS: "荣誉表彰",
    Sector.MEDIA: "媒体宣传",
    Sector.TRANSPORT: "交通出行",
    Sector.FINANCE: "金融信贷",
    Sector.INSURANCE: "保险",
    Sector.TOURISM: "旅游",
    Sector.HEALTHCARE: "医疗",
    Sector.RENTAL: "租借",
    Sector.HOSPITALITY: "住宿",
    Sector.VEHICLES: "机动车服务",
    Sector.ENTREPRENEURSHIP: "招商创业",
    Sector.COMMERCE: "商户惠民",
}


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

    @property
    def sees_zh(self) -> str:
        """What the relying party sees, as the application guide says it."""
        return _SEES[self][0]

    @property
    def sees_en(self) -> str:
        return _SEES[self][1]


_DISCLOSURE_ORDER = (Disclosure.THRESHOLD, Disclosure.GRADE, Disclosure.GRADE_AND_SCORE)
_SEES = {
    Disclosure.THRESHOLD: (
        "仅见经签名的“符合本场景等级要求”证明，不见等级和分数；未达要求的，不签发、不记录，对方无从知晓",
        "only a signed statement that the person meets the scenario's tier — no grade, no "
        "score; a person who falls short is told so, and nothing is issued or logged to the "
        "relying party",
    ),
    Disclosure.GRADE: (
        "经本人授权，可见信用等级（不见分数）",
        "with the person's consent, the grade (not the score)",
    ),
    Disclosure.GRADE_AND_SCORE: (
        "经本人授权，可见信用等级和分数（H12：原则上仅可查询等级和分数）",
        "with the person's consent, the grade and the score (H12: in principle only these)",
    ),
}

#: A scenario reference, as a consent's purpose names it: ``<scheme id>/<scenario id>``.
SCENARIO_REF_MAX = 96
_REF = re.compile(r"^([a-z][a-z0-9_-]{0,31})/([a-z][a-z0-9-]{0,62})$")
_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

#: Bounds of a catalogue (characters; a scenario id is 1-63 of ``[a-z0-9-]``).
INCENTIVES_MAX = 64
TITLE_MAX = 64
TITLE_EN_MAX = 160
PROVIDER_MAX = 120


def scenario_ref(scheme_id: str, scenario_id: str) -> str:
    """The purpose string naming ``scenario_id`` of ``scheme_id``'s catalogue."""
    return f"{scheme_id}/{scenario_id}"


def parse_scenario_ref(ref: str) -> tuple[str, str] | None:
    """``(scheme id, scenario id)`` of a well-formed reference, else ``None``."""
    if len(ref) > SCENARIO_REF_MAX:
        return None
    m = _REF.match(ref)
    return None if m is None else (m.group(1), m.group(2))


#: Effects a catalogue may offer on a basic public service: faster, nothing else.
BASIC_SERVICE_EFFECTS = frozenset({IncentiveEffect.FAST_LANE})

#: English words (matched at the start of a word, case-insensitive) that mark a
#: punishment or a restriction rather than an incentive.
PUNITIVE_WORDS_EN = (
    "deny", "denie", "denial", "refus", "reject", "restrict", "surcharg", "exclud", "exclusion",
    "blacklist", "block", "ban", "bans", "banned", "banning", "limit", "penal", "punish",
    "sanction", "revok", "revocation", "suspend", "suspension", "withhold", "disqualif",
    "forbid", "prohibit", "dishonest", "debar", "evict", "declin", "downgrad", "freez",
    "forfeit", "confiscat", "expel", "expuls",
)  # fmt: skip
#: Chinese words (matched anywhere) that mark a punishment or a restriction: 限制、禁止、
#: 拒绝、不予、取消、惩戒、黑名单、失信、处罚、扣减、限高、冻结 and their kin.
PUNITIVE_WORDS_ZH = (
    "限制", "禁止", "禁入", "拒绝", "拒不", "不予", "不得", "不准", "取消", "暂停", "停止",
    "停发", "惩戒", "惩罚", "制裁", "黑名单", "失信", "处罚", "扣减", "扣分", "剥夺", "加收",
    "加价", "从严", "降级", "限高", "限贷", "限乘", "拒贷", "冻结", "排除", "吊销",
)  # fmt: skip
# A word ends where the next character is not a letter: "ban" is refused, "urban" and
# "bank" are not. Stems take any ending ("deny" → "denying", "debar" → "debarment"), except
# the endings listed, which make an ordinary word ("blockchain" is not a block-list;
# "exclusive" is not matched because only "exclud"/"exclusion" are listed).
_STEMS = {"deny", "refus", "reject", "restrict", "surcharg", "exclud", "penal", "punish",
          "sanction", "revok", "suspend", "withhold", "disqualif", "forbid", "prohibit",
          "limit", "denie", "blacklist", "dishonest", "block", "debar", "evict", "declin",
          "downgrad", "freez", "forfeit", "confiscat", "expel", "expuls"}  # fmt: skip
_NOT_ENDINGS = {"block": "chain"}
_PUNITIVE_EN = re.compile(
    r"(?<![a-z])(?:"
    + "|".join(
        re.escape(w)
        + (f"(?!{_NOT_ENDINGS[w]})" if w in _NOT_ENDINGS else "")
        + ("[a-z]*" if w in _STEMS else "(?![a-z])")
        for w in sorted(PUNITIVE_WORDS_EN, key=len, reverse=True)
    )
    + ")"
)
#: Sectors whose scenarios are basic public services (政务服务, 医疗): each entry in them
#: must say ``basic_public_service = true`` and so be a ``fast_lane`` told only the
#: threshold (H14, N14) — the flag follows the sector, it is not the author's choice.
BASIC_SERVICE_SECTORS = frozenset({Sector.GOVERNMENT_SERVICES, Sector.HEALTHCARE})
#: The fields of an entry checked for punitive wording, in this order.
_WORDED = ("id", "title", "title_en", "provider", "effect")
_FIELDS = frozenset({
    "id", "title", "title_en", "domain", "sector", "effect", "min_grade", "disclosure",
    "basic_public_service", "provider",
})  # fmt: skip
_DOMAINS = ("public_service", "market", "other")


def punitive_word(text: str) -> str | None:
    """The first punitive word in ``text`` (English or Chinese), or None."""
    m = _PUNITIVE_EN.search(text.lower())
    if m is not None:
        return m.group(0)
    return next((w for w in PUNITIVE_WORDS_ZH if w in text), None)


@dataclass(frozen=True)
class Incentive:
    """One scenario of a catalogue; ``ref(scheme_id)`` is what a consent's purpose names."""

    id: str
    title: str  # Chinese, as the operator publishes it
    title_en: str
    domain: str  # public_service | market | other
    sector: Sector
    effect: IncentiveEffect
    min_grade: str
    provider: str  # who provides the benefit (the relying party's kind)
    basic_public_service: bool = False
    #: the most a consent for this scenario may disclose; threshold unless the
    #: catalogue says otherwise
    disclosure: Disclosure = Disclosure.THRESHOLD

    def ref(self, scheme_id: str) -> str:
        return scenario_ref(scheme_id, self.id)

    def qualifying(self, grades: Sequence[str]) -> tuple[str, ...]:
        """The grades (best first) that meet this scenario."""
        return tuple(grades[: list(grades).index(self.min_grade) + 1])


def _text(entry: Mapping[str, Any], key: str, path: str, most: int) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SchemeError(f"{path}.{key}", "is required (a non-empty string)")
    if len(value) > most:
        raise SchemeError(f"{path}.{key}", f"must be at most {most} characters")
    return value


def _choice(entry: Mapping[str, Any], key: str, path: str, kind: Any, default: Any) -> Any:
    raw = entry.get(key, default)
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise SchemeError(f"{path}.{key}", f"must be one of {allowed}") from None


def _entry(
    entry: Mapping[str, Any], path: str, grades: Sequence[str], incentive_tier: str
) -> Incentive:
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise SchemeError(f"{path}.{unknown[0]}", "is not a field of a catalogue entry")
    iid = entry.get("id")
    if not isinstance(iid, str) or not _ID.match(iid):
        raise SchemeError(f"{path}.id", "must be 1-63 lower-case letters, digits and '-'")
    title = _text(entry, "title", path, TITLE_MAX)
    title_en = _text(entry, "title_en", path, TITLE_EN_MAX)
    provider = _text(entry, "provider", path, PROVIDER_MAX)
    for key in _WORDED:
        value = entry.get(key)
        word = punitive_word(value) if isinstance(value, str) else None
        if word is not None:
            raise SchemeError(
                f"{path}.{key}",
                f"{word!r} reads as a punishment or restriction; the score is for "
                "incentives only (H14, N14)",
            )
    effect = _choice(entry, "effect", path, IncentiveEffect, "")
    sector = _choice(entry, "sector", path, Sector, "")
    domain = entry.get("domain", "other")
    if domain not in _DOMAINS:
        raise SchemeError(f"{path}.domain", f"must be one of {', '.join(_DOMAINS)}")
    disclosure = _choice(entry, "disclosure", path, Disclosure, Disclosure.THRESHOLD.value)
    basic = entry.get("basic_public_service", False)
    if not isinstance(basic, bool):
        raise SchemeError(f"{path}.basic_public_service", "must be true or false")
    if sector in BASIC_SERVICE_SECTORS and not basic:
        raise SchemeError(
            f"{path}.basic_public_service",
            f"must be true: {sector.value} is a basic public service, only ever made "
            "faster (fast_lane) and told only the threshold (H14, N14)",
        )
    if basic and effect not in BASIC_SERVICE_EFFECTS:
        raise SchemeError(
            f"{path}.effect",
            "a basic public service may only be made faster for high grades (fast_lane), "
            "never conditioned on a grade (H14, N14)",
        )
    if basic and disclosure is not Disclosure.THRESHOLD:
        raise SchemeError(
            f"{path}.disclosure",
            "a basic public service learns only that the tier is met (threshold) (H12, H14)",
        )
    grade = entry.get("min_grade")
    if not isinstance(grade, str) or grade not in grades:
        raise SchemeError(f"{path}.min_grade", f"{grade!r} is not a grade of this scheme")
    if grades.index(grade) > grades.index(incentive_tier):
        raise SchemeError(
            f"{path}.min_grade", f"{grade} is below the incentive tier {incentive_tier} (H14)"
        )
    return Incentive(
        id=iid,
        title=title,
        title_en=title_en,
        domain=domain,
        sector=sector,
        effect=effect,
        min_grade=grade,
        provider=provider,
        basic_public_service=basic,
        disclosure=disclosure,
    )


def parse_incentives(raw: Any, grades: Sequence[str], incentive_tier: str) -> tuple[Incentive, ...]:
    """Validate ``[[incentives]]`` entries (module docstring); ``grades`` are best first."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SchemeError("incentives", "must be a list of tables")
    if len(raw) > INCENTIVES_MAX:
        raise SchemeError("incentives", f"must list at most {INCENTIVES_MAX} scenarios")
    grades = list(grades)
    out: list[Incentive] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        path = f"incentives[{i}]"
        if not isinstance(entry, dict):
            raise SchemeError(path, "must be a table")
        incentive = _entry(entry, path, grades, incentive_tier)
        if incentive.id in seen:
            raise SchemeError(f"{path}.id", f"{incentive.id!r} is listed twice")
        seen.add(incentive.id)
        out.append(incentive)
    return tuple(out)
