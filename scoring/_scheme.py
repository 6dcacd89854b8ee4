"""Score schemes as data: the model, TOML loading and validation.

Invariants of a loaded :class:`Scheme` (checked by :func:`parse_scheme`, which
names the offending field on failure):

* tiers are listed best first, each ``min_score <= max_score``, strictly
  descending, contiguous (no gaps, no overlaps) and together cover exactly
  ``[score_min, score_max]``;
* ``base_score`` and every tier bound lie in the range; the incentive tier exists;
* every category referenced anywhere (exclusions, eligibility) exists; every
  category has a polarity, non-negative points, a validity, and honours'
  level multipliers / negatives' severity bands are well formed;
* no category id is on the forbidden list (H7);
* a category that ``requires_legal_document`` (H10 responsible-individual
  deductions) is negative and accepts a non-empty subset
  ``legal_document_kinds`` of :data:`~scoring.LEGAL_DOCUMENT_KINDS` (all of
  them by default); no other category names document kinds;
* positive-point caps (``cap`` on a category, ``[families.*]``) and the
  validity ceiling (``[validity_cap]``) hold the invariants stated in
  :mod:`scoring._caps` and :mod:`scoring._validity`;
* ``valid_until``, when set, is not before ``effective``: a scheme with an
  expiry (Hainan's measures are valid for three years, N12) scores nothing
  after it (the engine raises ``SCHEME_EXPIRED``).

Caching (issue 17): :func:`load_scheme` parses each shipped scheme file once per
process and hands every caller the same :class:`Scheme`.  That is sound because
the shipped files are package data that do not change while the process runs, and
a :class:`Scheme` is immutable: a frozen dataclass of tuples, frozensets, dates,
strings and frozen dataclasses; its ``Mapping`` fields are read-only by contract
(typed ``Mapping``, so strict mypy rejects item assignment) and its cached
properties are derived once from those fields.  No caller mutates a loaded scheme.
Text handed in by a caller (:func:`parse_scheme_toml`, e.g. a candidate file named
on the command line) is parsed on every call and never cached.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, cached_property
from importlib import resources
from typing import Any

from ._caps import CapKind, Family, PointCap, parse_cap, parse_families
from ._errors import SchemeError
from ._incentives import Incentive, parse_incentives
from ._legal import LEGAL_DOCUMENT_KINDS
from ._validity import ValidityCap, parse_validity_cap

__all__ = [
    "FORBIDDEN_CATEGORIES",
    "RECORD_FLAGS",
    "Category",
    "Eligibility",
    "Polarity",
    "Provenance",
    "ResidenceRule",
    "Scheme",
    "SeverityBand",
    "Tier",
    "add_months",
    "list_schemes",
    "load_scheme",
    "parse_scheme",
    "parse_scheme_toml",
]

#: Categories no scheme may define and no source may submit (H7, N10): beliefs,
#: biometrics and other private, non-credit data.
FORBIDDEN_CATEGORIES = frozenset(
    {
        "religion",
        "religious_belief",
        "biometrics",
        "biometric",
        "fingerprint",
        "face_image",
        "dna",
        "genetic",
        "health",
        "medical_history",
        "ethnicity",
        "political_opinion",
        "sexual_orientation",
        "private_communication",
        "location_trace",
    }
)

#: The catalogue of flags a record may carry (H7: collection follows a published
#: catalogue).  A flag matters only where a scheme category lists it in
#: ``excluded_flags`` (N6: simple-procedure penalties, minor violations corrected
#: promptly); a record with any other flag is refused (``UNKNOWN_FLAG``), and a
#: scheme naming another flag does not load.  No flag contains ``,`` (stored
#: comma-joined).
RECORD_FLAGS = frozenset({"simple_procedure", "minor_corrected_promptly"})


class Polarity(enum.StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class Provenance(enum.StrEnum):
    """Where a record comes from (N5): public, market, or the person's own upload, verified."""

    PUBLIC = "public"
    MARKET = "market"
    PERSONAL_VERIFIED = "personal_verified"


@dataclass(frozen=True)
class Tier:
    """A grade band, inclusive on both ends."""

    id: str
    label: str
    min_score: int
    max_score: int

    def contains(self, score: int) -> bool:
        return self.min_score <= score <= self.max_score


@dataclass(frozen=True)
class SeverityBand:
    """A negative category's points and validity for one severity."""

    points: int
    validity_months: int


@dataclass(frozen=True)
class Category:
    """One entry of a scheme's category catalogue.

    ``points`` is a magnitude; the polarity gives its sign.  Honours scale by
    ``level_multipliers`` (the record's ``level``); negatives with
    ``severities`` take points and validity from the record's ``severity``.
    ``extended_validity_months`` gives per-level validity overrides (H7:
    national and international honours may run longer).  ``cap`` limits what
    the category's records add within one calendar period (positive
    categories only, ADR 0003).
    """

    id: str
    name: str
    polarity: Polarity
    points: int
    validity_months: int
    provenances: frozenset[Provenance] = frozenset({Provenance.PUBLIC})
    level_multipliers: Mapping[str, float] = field(default_factory=dict)
    extended_validity_months: Mapping[str, int] = field(default_factory=dict)
    severities: Mapping[str, SeverityBand] = field(default_factory=dict)
    requires_legal_document: bool = False
    legal_document_kinds: frozenset[str] = frozenset()  # empty unless requires_legal_document
    excluded_flags: frozenset[str] = frozenset()
    caps_grade: str | None = None
    cap: PointCap | None = None


@dataclass(frozen=True)
class ResidenceRule:
    """A residence basis that makes a person a subject, held for at least ``min_years``."""

    kind: str
    min_years: int = 0


@dataclass(frozen=True)
class Eligibility:
    min_age: int
    residence: tuple[ResidenceRule, ...]
    note: str = ""


@dataclass(frozen=True)
class Scheme:
    id: str
    name: str
    version: str
    region: str
    effective: date
    score_min: int
    score_max: int
    base_score: int
    tiers: tuple[Tier, ...]
    incentive_tier: str
    categories: Mapping[str, Category]
    eligibility: Eligibility
    objection_deadlines: tuple[tuple[str, int], ...]
    dishonesty_categories: frozenset[str] = frozenset()
    incentives: tuple[Incentive, ...] = ()
    illustrative: tuple[str, ...] = ()
    source: str = ""
    families: Mapping[str, Family] = field(default_factory=dict)
    validity_cap: ValidityCap | None = None
    valid_until: date | None = None  # last day the scheme may score (None: no expiry)

    # -- caps ---------------------------------------------------------------
    @cached_property
    def category_caps(self) -> Mapping[str, PointCap]:
        """Category id -> its own cap, for capped categories only."""
        return {cid: c.cap for cid, c in self.categories.items() if c.cap is not None}

    @cached_property
    def family_caps(self) -> Mapping[str, PointCap]:
        """Category id -> its family's cap, for categories in a family only."""
        return {cid: f.cap for f in self.families.values() for cid in f.categories}

    @cached_property
    def capped_categories(self) -> frozenset[str]:
        return frozenset(self.category_caps) | frozenset(self.family_caps)

    def expired_on(self, day: date) -> bool:
        """True when ``day`` is after the scheme's last valid day."""
        return self.valid_until is not None and day > self.valid_until

    # -- grades -----------------------------------------------------------
    def tier_for(self, score: int) -> Tier:
        """The tier containing ``score`` (which must lie in the range)."""
        for tier in self.tiers:
            if score >= tier.min_score:
                return tier
        return self.tiers[-1]

    def grade_for(self, score: int) -> str:
        return self.tier_for(score).id

    def tier(self, grade: str) -> Tier:
        for tier in self.tiers:
            if tier.id == grade:
                return tier
        raise SchemeError(
            "grade", f"scheme {self.id!r} has no grade {grade!r}", code="UNKNOWN_GRADE"
        )

    def rank(self, grade: str) -> int:
        """0 for the worst grade, ``len(tiers) - 1`` for the best."""
        return len(self.tiers) - 1 - self.tiers.index(self.tier(grade))

    @property
    def grades(self) -> tuple[str, ...]:
        """Grade ids, best first."""
        return tuple(t.id for t in self.tiers)

    @property
    def base_grade(self) -> str:
        """The clean-record grade: the tier of the base score."""
        return self.grade_for(self.base_score)

    def is_incentive_grade(self, grade: str) -> bool:
        return self.rank(grade) >= self.rank(self.incentive_tier)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


# -- loading ---------------------------------------------------------------


def _req(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if key not in table:
        raise SchemeError(f"{path}{key}", "is required")
    value = table[key]
    if isinstance(value, bool) and kind is not bool:
        raise SchemeError(f"{path}{key}", f"must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise SchemeError(f"{path}{key}", f"must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        int: "an integer",
        str: "a string",
        float: "a number",
        list: "a list",
        dict: "a table",
        bool: "a boolean",
        date: "a date",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _months(years: float) -> int:
    return round(years * 12)


def add_months(start: date, months: int) -> date:
    """``start`` plus whole calendar months; the day is clamped to the month's end."""
    y, m = divmod(start.month - 1 + months, 12)
    year, month = start.year + y, m + 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _parse_category(cid: str, raw: Any, path: str) -> Category:
    if not isinstance(raw, dict):
        raise SchemeError(path.rstrip("."), "must be a table")
    if cid in FORBIDDEN_CATEGORIES:
        raise SchemeError(path.rstrip("."), "is a forbidden category (H7)")
    polarity_raw = _req(raw, "polarity", str, path)
    try:
        polarity = Polarity(polarity_raw)
    except ValueError:
        raise SchemeError(f"{path}polarity", "must be 'positive' or 'negative'") from None
    points = _req(raw, "points", int, path)
    if points < 0:
        raise SchemeError(f"{path}points", "must be >= 0 (polarity gives the sign)")
    validity_years = _req(raw, "validity_years", (int, float), path)
    if validity_years <= 0:
        raise SchemeError(f"{path}validity_years", "must be > 0")
    provenances_raw = raw.get("provenance", ["public"])
    try:
        provenances = frozenset(Provenance(p) for p in provenances_raw)
    except (ValueError, TypeError):
        raise SchemeError(
            f"{path}provenance", "entries must be public, market or personal_verified"
        ) from None
    multipliers = raw.get("level_multipliers", {})
    if not isinstance(multipliers, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        for v in multipliers.values()
    ):
        raise SchemeError(f"{path}level_multipliers", "must map levels to positive numbers")
    if multipliers and polarity is not Polarity.POSITIVE:
        raise SchemeError(f"{path}level_multipliers", "only positive categories have levels")
    extended = raw.get("extended_validity_years", {})
    if not isinstance(extended, dict):
        raise SchemeError(f"{path}extended_validity_years", "must be a table")
    for level, years in extended.items():
        if level not in multipliers:
            raise SchemeError(f"{path}extended_validity_years.{level}", "is not a known level")
        if not isinstance(years, int | float) or years <= validity_years:
            raise SchemeError(
                f"{path}extended_validity_years.{level}", "must be longer than validity_years"
            )
    severities: dict[str, SeverityBand] = {}
    sev_raw = raw.get("severities", {})
    if not isinstance(sev_raw, dict):
        raise SchemeError(f"{path}severities", "must be a table")
    if sev_raw and polarity is not Polarity.NEGATIVE:
        raise SchemeError(f"{path}severities", "only negative categories have severities")
    for sev, band in sev_raw.items():
        bpath = f"{path}severities.{sev}."
        if not isinstance(band, dict):
            raise SchemeError(bpath.rstrip("."), "must be a table")
        bpoints = _req(band, "points", int, bpath)
        byears = _req(band, "validity_years", (int, float), bpath)
        if bpoints < 0 or byears <= 0:
            raise SchemeError(bpath.rstrip("."), "points must be >= 0 and validity_years > 0")
        severities[sev] = SeverityBand(bpoints, _months(byears))
    flags = raw.get("excluded_flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise SchemeError(f"{path}excluded_flags", "must be a list of strings")
    if unknown := sorted(set(flags) - RECORD_FLAGS):
        raise SchemeError(
            f"{path}excluded_flags",
            f"{unknown} not in the record flag catalogue {sorted(RECORD_FLAGS)}",
        )
    name = _req(raw, "name", str, path)
    requires_document, document_kinds = _legal_document_rule(raw, polarity, path)
    cap = None
    if "cap" in raw:
        if polarity is not Polarity.POSITIVE:
            raise SchemeError(f"{path}cap", "caps limit positive points only")
        cap = parse_cap(raw["cap"], f"{path}cap", CapKind.CATEGORY, cid, name)
    return Category(
        id=cid,
        name=name,
        polarity=polarity,
        points=points,
        validity_months=_months(validity_years),
        provenances=provenances,
        level_multipliers=dict(multipliers),
        extended_validity_months={k: _months(v) for k, v in extended.items()},
        severities=severities,
        requires_legal_document=requires_document,
        legal_document_kinds=document_kinds,
        excluded_flags=frozenset(flags),
        caps_grade=raw.get("caps_grade"),
        cap=cap,
    )


def _legal_document_rule(
    raw: Mapping[str, Any], polarity: Polarity, path: str
) -> tuple[bool, frozenset[str]]:
    """(``requires_legal_document``, the document kinds it accepts) of a category (H10)."""
    requires = raw.get("requires_legal_document", False)
    if not isinstance(requires, bool):
        raise SchemeError(f"{path}requires_legal_document", "must be a boolean")
    kinds_raw = raw.get("legal_document_kinds")
    if not requires:
        if kinds_raw is not None:
            raise SchemeError(
                f"{path}legal_document_kinds", "only with requires_legal_document = true"
            )
        return False, frozenset()
    if polarity is not Polarity.NEGATIVE:
        raise SchemeError(
            f"{path}requires_legal_document", "only a deduction rests on a legal document (H10)"
        )
    if kinds_raw is None:
        return True, frozenset(LEGAL_DOCUMENT_KINDS)
    if (
        not isinstance(kinds_raw, list)
        or not kinds_raw
        or not all(isinstance(k, str) for k in kinds_raw)
    ):
        raise SchemeError(f"{path}legal_document_kinds", "must be a non-empty list of kinds")
    if unknown := sorted(set(kinds_raw) - set(LEGAL_DOCUMENT_KINDS)):
        raise SchemeError(
            f"{path}legal_document_kinds",
            f"{unknown} not in the document kind catalogue {sorted(LEGAL_DOCUMENT_KINDS)}",
        )
    return True, frozenset(kinds_raw)


def _parse_tiers(raw: Any, score_min: int, score_max: int) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise SchemeError("tiers", "must be a non-empty list, best tier first")
    tiers: list[Tier] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        path = f"tiers[{i}]."
        if not isinstance(entry, dict):
            raise SchemeError(f"tiers[{i}]", "must be a table")
        tid = _req(entry, "id", str, path)
        if tid in seen:
            raise SchemeError(f"{path}id", f"duplicate tier {tid!r}")
        seen.add(tid)
        lo = _req(entry, "min", int, path)
        hi = _req(entry, "max", int, path)
        if lo > hi:
            raise SchemeError(f"{path}min", f"min {lo} is above max {hi}")
        if tiers and hi != tiers[-1].min_score - 1:
            prev = tiers[-1]
            problem = "overlaps" if hi >= prev.min_score else "leaves a gap below"
            raise SchemeError(
                f"{path}max",
                f"tier {tid!r} (max {hi}) {problem} tier {prev.id!r} (min {prev.min_score}); "
                "tiers must be contiguous, best first",
            )
        tiers.append(Tier(tid, _req(entry, "label", str, path), lo, hi))
    if tiers[0].max_score != score_max:
        raise SchemeError("tiers[0].max", f"best tier must end at score_max {score_max}")
    if tiers[-1].min_score != score_min:
        raise SchemeError(
            f"tiers[{len(tiers) - 1}].min", f"worst tier must start at score_min {score_min}"
        )
    return tuple(tiers)


def parse_scheme(data: Mapping[str, Any]) -> Scheme:
    """Build a validated :class:`Scheme` from parsed TOML (or an equivalent mapping)."""
    sid = _req(data, "id", str, "")
    if not sid or not sid.replace("_", "").replace("-", "").isalnum() or not sid.isascii():
        raise SchemeError("id", "must be a non-empty ASCII identifier")
    score_min = _req(data, "score_min", int, "")
    score_max = _req(data, "score_max", int, "")
    if score_min >= score_max:
        raise SchemeError("score_min", "must be below score_max")
    base = _req(data, "base_score", int, "")
    if not score_min <= base <= score_max:
        raise SchemeError("base_score", f"{base} is outside [{score_min}, {score_max}]")
    tiers = _parse_tiers(data.get("tiers"), score_min, score_max)
    incentive = _req(data, "incentive_tier", str, "")
    if incentive not in {t.id for t in tiers}:
        raise SchemeError("incentive_tier", f"{incentive!r} is not one of the tiers")
    effective = _req(data, "effective", date, "")
    cats_raw = _req(data, "categories", dict, "")
    if not cats_raw:
        raise SchemeError("categories", "must define at least one category")
    categories = {
        cid: _parse_category(cid, raw, f"categories.{cid}.") for cid, raw in cats_raw.items()
    }
    tier_ids = {t.id for t in tiers}
    for cid, cat in categories.items():
        if cat.caps_grade is not None and cat.caps_grade not in tier_ids:
            raise SchemeError(f"categories.{cid}.caps_grade", f"{cat.caps_grade!r} is not a tier")
    for i, cid in enumerate(data.get("dishonesty_categories", [])):
        if cid not in categories:
            raise SchemeError(f"dishonesty_categories[{i}]", f"unknown category {cid!r}")
        if categories[cid].polarity is not Polarity.NEGATIVE:
            raise SchemeError(f"dishonesty_categories[{i}]", f"{cid!r} is not negative")
    elig_raw = _req(data, "eligibility", dict, "")
    min_age = _req(elig_raw, "min_age", int, "eligibility.")
    residence_raw = _req(elig_raw, "residence", list, "eligibility.")
    if not residence_raw:
        raise SchemeError("eligibility.residence", "must list at least one residence basis")
    residence: list[ResidenceRule] = []
    for i, rule in enumerate(residence_raw):
        rpath = f"eligibility.residence[{i}]."
        if not isinstance(rule, dict):
            raise SchemeError(rpath.rstrip("."), "must be a table")
        residence.append(
            ResidenceRule(_req(rule, "kind", str, rpath), int(rule.get("min_years", 0)))
        )
    deadlines_raw = _req(data, "objection_deadlines", dict, "")
    deadlines: list[tuple[str, int]] = []
    for step, days in deadlines_raw.items():
        if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
            raise SchemeError(
                f"objection_deadlines.{step}", "must be a positive number of working days"
            )
        deadlines.append((step, days))
    if not deadlines:
        raise SchemeError("objection_deadlines", "must define at least one step")
    illustrative = data.get("illustrative", [])
    if not isinstance(illustrative, list):
        raise SchemeError("illustrative", "must be a list of field names")
    valid_until = data.get("valid_until")
    if valid_until is not None:
        if not isinstance(valid_until, date) or isinstance(valid_until, datetime):
            raise SchemeError("valid_until", "must be a date")
        if valid_until < effective:
            raise SchemeError(
                "valid_until", f"{valid_until} is before the effective date {effective}"
            )
    positive = frozenset(c for c, cat in categories.items() if cat.polarity is Polarity.POSITIVE)
    families = parse_families(
        data.get("families"),
        positive,
        frozenset(categories) - positive,
        {cid: cat.cap for cid, cat in categories.items() if cat.cap is not None},
    )
    validity_cap = parse_validity_cap(data.get("validity_cap"), categories)
    return Scheme(
        id=sid,
        name=_req(data, "name", str, ""),
        version=_req(data, "version", str, ""),
        region=_req(data, "region", str, ""),
        effective=effective,
        score_min=score_min,
        score_max=score_max,
        base_score=base,
        tiers=tiers,
        incentive_tier=incentive,
        categories=categories,
        eligibility=Eligibility(min_age, tuple(residence), str(elig_raw.get("note", ""))),
        objection_deadlines=tuple(deadlines),
        dishonesty_categories=frozenset(data.get("dishonesty_categories", [])),
        incentives=parse_incentives(data.get("incentives"), [t.id for t in tiers], incentive),
        illustrative=tuple(str(x) for x in illustrative),
        source=str(data.get("source", "")),
        families=families,
        validity_cap=validity_cap,
        valid_until=valid_until,
    )


def parse_scheme_toml(text: str) -> Scheme:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemeError("toml", f"not valid TOML: {exc}") from None
    return parse_scheme(data)


def list_schemes() -> tuple[str, ...]:
    """Ids of the schemes shipped in the package."""
    pkg = resources.files("scoring.schemes")
    return tuple(sorted(p.name[:-5] for p in pkg.iterdir() if p.name.endswith(".toml")))


@cache  # once per id and process: shipped files are immutable package data (module doc)
def load_scheme(scheme_id: str) -> Scheme:
    """Load a shipped scheme by id; raises ``SchemeError`` (code ``UNKNOWN_SCHEME``).

    Every call with one id returns the same object; a failure is not cached (it
    raises again on the next call)."""
    if scheme_id not in list_schemes():
        raise SchemeError("scheme", f"unknown scheme {scheme_id!r}", code="UNKNOWN_SCHEME")
    text = resources.files("scoring.schemes").joinpath(f"{scheme_id}.toml").read_text("utf-8")
    scheme = parse_scheme_toml(text)
    if scheme.id != scheme_id:
        raise SchemeError("id", f"file {scheme_id}.toml declares id {scheme.id!r}")
    return scheme
