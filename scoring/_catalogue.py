"""The published incentive catalogue and its application guide (N17), built from a scheme.

The scenarios, their tiers and what each may disclose are the scheme's
(``[[incentives]]``, :mod:`scoring._incentives`): every node of a scheme holds the
same ones, because consents and relays check purposes against them.  What the
operator adds is the *publication*: a catalogue version, the date it was
published and an application guide (申请指南, N17: 运营主体应定期发布个人诚信积分
应用指南及激励措施汇总目录).  For each scenario the guide says who provides it
(the scheme's ``provider`` unless the guide names the local providers), how to
apply (a default derived from the scheme unless the guide says more), and what the
relying party sees — derived from the scenario's disclosure only, never written
by hand, so the guide cannot promise less than the attestation carries.

Invariants: :func:`build_catalogue` is deterministic (same scheme, region and
publication give an equal :class:`Catalogue`); scenarios keep the scheme's order;
a guide that names a scenario the scheme does not have, or reads as a punishment,
is refused (:class:`CatalogueError`) rather than ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ._errors import CatalogueError
from ._incentives import INCENTIVES_MAX, PROVIDER_MAX, Incentive, punitive_word
from ._scheme import Scheme

__all__ = [
    "CATALOGUE_STATEMENT",
    "CATALOGUE_VERSION_MAX",
    "GUIDE_APPLY_MAX",
    "GUIDE_INTRO_MAX",
    "Catalogue",
    "Guide",
    "GuideEntry",
    "Publication",
    "Scenario",
    "build_catalogue",
    "catalogue_illustrative",
    "check_catalogue_version",
    "default_publication",
    "parse_guide",
]

#: Bounds of the operator's publication (characters).
CATALOGUE_VERSION_MAX = 32
GUIDE_INTRO_MAX = 2000
GUIDE_APPLY_MAX = 1000
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")

CATALOGUE_STATEMENT = (
    "Incentives only: a grade never restricts basic public services or legal rights; "
    "below the incentive tier a person simply has no incentive (H14, N14)."
)
DEFAULT_INTRO = (
    "本目录列明本区域诚信积分的全部激励场景，"
    "积分仅用于守信激励，不用于惩戒。"
    "任何单位和个人不得以积分等级未达到某一标准为由，"
    "拒绝提供基本公共服务或限制其行使法定权利（H14、N14）。"
    "本人可随时免费查询自己的积分和等级；"
    "向提供方出示的，是本人就某一场景授权签发的证明。"
)
#: What a scheme's ``illustrative`` list says about its catalogue: these fields (or
#: any path under them) make the published tiers illustrative.
_CATALOGUE_FIELDS = ("tiers", "incentive_tier", "incentives")


@dataclass(frozen=True)
class GuideEntry:
    """The operator's guide for one scenario; empty fields take the scheme's defaults."""

    provider: str = ""
    how_to_apply: str = ""


@dataclass(frozen=True)
class Guide:
    intro: str = ""
    scenarios: Mapping[str, GuideEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class Publication:
    """The operator's publication of a catalogue: version, date and guide (N17)."""

    version: str
    published_on: date
    guide: Guide = field(default_factory=Guide)


@dataclass(frozen=True)
class Scenario:
    ref: str  # "<scheme>/<scenario>": what a consent's purpose names
    incentive: Incentive
    qualifying_grades: tuple[str, ...]
    provider: str
    how_to_apply: str
    relying_party_sees: str


@dataclass(frozen=True)
class Catalogue:
    region: str
    scheme_id: str
    scheme_version: str
    version: str
    published_on: date
    incentive_tier: str
    illustrative: tuple[str, ...]  # the scheme's illustrative fields that touch the catalogue
    statement: str
    intro: str
    scenarios: tuple[Scenario, ...]


def check_catalogue_version(value: Any, path: str) -> str:
    """A catalogue version: 1-32 of letters, digits, '.', '_', '-', starting alphanumeric."""
    if not isinstance(value, str) or not _VERSION.match(value):
        raise CatalogueError(path, "must be letters, digits, '.', '_' or '-' (a version)")
    if len(value) > CATALOGUE_VERSION_MAX:
        raise CatalogueError(path, f"must be at most {CATALOGUE_VERSION_MAX} characters")
    return value


def default_publication(scheme: Scheme) -> Publication:
    """What a node publishes when its operator configured nothing: the scheme's version
    and effective date, and the default guide."""
    return Publication(scheme.version, scheme.effective)


def _guide_text(table: Mapping[str, Any], key: str, path: str, most: int, *, worded: bool) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise CatalogueError(f"{path}.{key}", "must be a string")
    if len(value) > most:
        raise CatalogueError(f"{path}.{key}", f"must be at most {most} characters")
    word = punitive_word(value) if worded else None
    if word is not None:
        raise CatalogueError(
            f"{path}.{key}",
            f"{word!r} reads as a punishment or restriction; the score is for incentives "
            "only (H14, N14)",
        )
    return value.strip()


def parse_guide(raw: Mapping[str, Any]) -> Guide:
    """An application guide from its parsed TOML::

        intro = "..."                       # at most GUIDE_INTRO_MAX characters
        [scenarios.credit-loans]            # a scenario id of the scheme
        provider = "..."                    # at most PROVIDER_MAX
        how_to_apply = "..."                # at most GUIDE_APPLY_MAX

    Unknown keys are refused.  Whether each id is a scenario of the scheme is checked by
    :func:`build_catalogue`, against the scheme version in force."""
    unknown = sorted(k for k in raw if k not in {"intro", "scenarios"})
    if unknown:
        raise CatalogueError(unknown[0], "is not a field of an application guide")
    intro = _guide_text(raw, "intro", "guide", GUIDE_INTRO_MAX, worded=False)
    table = raw.get("scenarios", {})
    if not isinstance(table, Mapping):
        raise CatalogueError("scenarios", "must be a table of scenario ids")
    if len(table) > INCENTIVES_MAX:
        raise CatalogueError("scenarios", f"must name at most {INCENTIVES_MAX} scenarios")
    entries: dict[str, GuideEntry] = {}
    for sid, entry in table.items():
        path = f"scenarios.{sid}"
        if not isinstance(entry, Mapping):
            raise CatalogueError(path, "must be a table")
        extra = sorted(k for k in entry if k not in {"provider", "how_to_apply"})
        if extra:
            raise CatalogueError(f"{path}.{extra[0]}", "is not a field of a guide entry")
        entries[str(sid)] = GuideEntry(
            provider=_guide_text(entry, "provider", path, PROVIDER_MAX, worded=True),
            how_to_apply=_guide_text(entry, "how_to_apply", path, GUIDE_APPLY_MAX, worded=True),
        )
    return Guide(intro, entries)


def catalogue_illustrative(scheme: Scheme) -> tuple[str, ...]:
    """The scheme's illustrative fields that make its catalogue's tiers illustrative."""
    return tuple(
        f
        for f in scheme.illustrative
        if any(f == c or f.startswith(c + ".") for c in _CATALOGUE_FIELDS)
    )


def _default_how_to_apply(scheme: Scheme, incentive: Incentive, provider: str, ref: str) -> str:
    # H12: self-query first, then a consent naming this scenario, then the provider asks
    # the node; a person below the tier is told at the consent and nothing is issued.
    return (
        f"1. 完成实名认证，免费查询本人{scheme.name}等级；"
        f"2. 达到{incentive.min_grade}级及以上的，"
        f"授权{provider}查询本场景（{ref}），"
        "授权前可见对方将看到的内容；"
        "未达要求的，本人即被告知，不签发、不记录；"
        f"3. {provider}凭授权申请签名证明，核验后提供本项激励。"
    )


def build_catalogue(scheme: Scheme, region: str, publication: Publication) -> Catalogue:
    """The catalogue ``region``'s operator publishes for ``scheme`` (module docstring)."""
    check_catalogue_version(publication.version, "version")
    ids = {i.id for i in scheme.incentives}
    for sid in publication.guide.scenarios:
        if sid not in ids:
            raise CatalogueError(
                f"scenarios.{sid}", f"is not a scenario of {scheme.key}'s catalogue"
            )
    grades = scheme.grades
    scenarios = []
    for incentive in scheme.incentives:
        ref = incentive.ref(scheme.id)
        local = publication.guide.scenarios.get(incentive.id, GuideEntry())
        provider = local.provider or incentive.provider
        scenarios.append(
            Scenario(
                ref=ref,
                incentive=incentive,
                qualifying_grades=incentive.qualifying(grades),
                provider=provider,
                how_to_apply=local.how_to_apply
                or _default_how_to_apply(scheme, incentive, provider, ref),
                relying_party_sees=incentive.disclosure.sees_zh,
            )
        )
    return Catalogue(
        region=region,
        scheme_id=scheme.id,
        scheme_version=scheme.version,
        version=publication.version,
        published_on=publication.published_on,
        incentive_tier=scheme.incentive_tier,
        illustrative=catalogue_illustrative(scheme),
        statement=CATALOGUE_STATEMENT,
        intro=publication.guide.intro or DEFAULT_INTRO,
        scenarios=tuple(scenarios),
    )
