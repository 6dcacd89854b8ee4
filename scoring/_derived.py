"""Derived scenario scores (N18, N19): a scheme's scored records, re-weighted for one use.

Hainan's measures (第二十条, 第二十一条) let the operator build *derived scores*
on the integrity score for particular scenarios (a bank's credit card, N19).
A derived score is data, like a scheme: a TOML file in ``scoring/derived/``
naming its base scheme (``id@version``), a weight for categories and families
of that scheme, its own range, base, tiers and incentive tier, and its
scenarios (``[[incentives]]``, validated by :func:`scoring.parse_incentives`:
the same punitive-word, basic-service and incentive-tier rules as a
scheme's catalogue).

:func:`parse_derived` refuses, with :class:`SchemeError` naming the path:

* a missing or malformed id, name, version, base, range, base score;
* a base scheme that is not shipped (code ``UNKNOWN_SCHEME``) or whose version
  is not the declared one (code ``SCHEME_VERSION_MISMATCH``);
* a weight for a category or family the base scheme lacks, a weight that is
  not a number in ``[0, WEIGHT_MAX]`` with at most two decimals, more than
  :data:`WEIGHTS_MAX` weights;
* tiers that overlap, leave a gap or miss the range (the scheme rules);
* any catalogue rule on ``incentives``.

:func:`derive` is pure.  Invariants of a :class:`DerivedResult`:

* only the base result's COUNTED contributions are weighted (the base engine
  has already applied validity, masking, repair, deduplication and caps);
* each weighted contribution's ``points`` is ``base_points × weight``
  truncated toward zero, so a weight never turns an addition into a
  deduction and rounding never favours one sign;
* ``unclamped == base_score + sum(c.points for c in contributions)`` and
  ``score`` is ``unclamped`` clamped to ``[score_min, score_max]``;
* ``grade`` is the one tier whose range holds ``score``;
* a person the base scheme does not score is not scored here either.

A category's weight is its own if listed, else its family's (a family groups
positive categories in the base scheme), else ``default_weight``; the reason
of every contribution names which applied.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from ._engine import ContributionStatus, ScoreResult
from ._errors import SchemeError
from ._incentives import Incentive, parse_incentives
from ._scheme import Scheme, Tier, _parse_tiers, _req, load_scheme

__all__ = [
    "DERIVED_ID_MAX",
    "WEIGHTS_MAX",
    "WEIGHT_MAX",
    "DerivedContribution",
    "DerivedResult",
    "DerivedScore",
    "Weight",
    "derive",
    "list_derived",
    "load_derived",
    "parse_derived",
    "parse_derived_toml",
]

#: Bounds: an id is 1-63 of ``[a-z0-9-]``; a weight lies in ``[0, WEIGHT_MAX]`` with
#: at most two decimals; at most ``WEIGHTS_MAX`` category and family weights together.
DERIVED_ID_MAX = 63
WEIGHT_MAX = Fraction(5)
WEIGHTS_MAX = 64
NAME_MAX = 64
_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_BASE = re.compile(r"^([a-z][a-z0-9_-]{0,31})@([0-9A-Za-z._-]{1,32})$")
_FIELDS = frozenset({
    "id", "name", "version", "base", "source", "illustrative", "score_min", "score_max",
    "base_score", "incentive_tier", "default_weight", "weights", "tiers", "incentives",
})  # fmt: skip


@dataclass(frozen=True)
class Weight:
    """How much of a base category's points the derived score takes, and why."""

    value: Fraction
    source: str  # "category", "family <id>" or "default"

    def __str__(self) -> str:
        return _show(self.value)


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


@dataclass(frozen=True)
class DerivedScore:
    """A validated derived score, bound to one version of its base scheme."""

    id: str
    name: str
    version: str
    base_id: str
    base_version: str
    score_min: int
    score_max: int
    base_score: int
    tiers: tuple[Tier, ...]
    incentive_tier: str
    #: every category of the base scheme → its resolved weight
    weights: Mapping[str, Weight]
    incentives: tuple[Incentive, ...] = ()
    illustrative: tuple[str, ...] = ()
    source: str = ""

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def base_key(self) -> str:
        return f"{self.base_id}@{self.base_version}"

    @property
    def grades(self) -> tuple[str, ...]:
        """Tier ids, best first."""
        return tuple(t.id for t in self.tiers)

    def tier_for(self, score: int) -> Tier:
        for tier in self.tiers:
            if tier.contains(score):
                return tier
        raise ValueError(f"{score} is outside [{self.score_min}, {self.score_max}]")

    def grade_for(self, score: int) -> str:
        return self.tier_for(score).id

    def rank(self, grade: str) -> int:
        """0 for the worst tier."""
        return len(self.tiers) - 1 - self.grades.index(grade)


@dataclass(frozen=True, slots=True)
class DerivedContribution:
    """One counted base record's part in a derived score."""

    record_id: str
    category: str
    category_name: str
    base_points: int  # signed, as the base scheme counted it
    weight: Weight
    points: int  # signed: trunc(base_points × weight)
    reason: str


@dataclass(frozen=True, slots=True)
class DerivedResult:
    """A derived score and its explanation (module docstring: invariants)."""

    derived_key: str
    base_key: str
    as_of: date
    eligible: bool
    score: int | None
    grade: str | None
    base_score: int = 0
    unclamped: int = 0
    contributions: tuple[DerivedContribution, ...] = ()
    ineligible_reason: str | None = None


def _weight(raw: Any, path: str) -> Fraction:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise SchemeError(path, "must be a number")
    try:
        exact = Decimal(str(raw))
    except InvalidOperation:
        raise SchemeError(path, "must be a number") from None
    if not exact.is_finite() or exact != exact.quantize(Decimal("0.01")):
        raise SchemeError(path, "must have at most two decimals")
    value = Fraction(exact)
    if not 0 <= value <= WEIGHT_MAX:
        raise SchemeError(path, f"{raw} is outside [0, {_show(WEIGHT_MAX)}]")
    return value


def _resolve_weights(data: Mapping[str, Any], base: Scheme) -> dict[str, Weight]:
    default = _weight(data.get("default_weight", 0), "default_weight")
    raw = data.get("weights", {})
    if not isinstance(raw, dict):
        raise SchemeError("weights", "must be a table")
    unknown = sorted(str(k) for k in raw if k not in {"categories", "families"})
    if unknown:
        raise SchemeError(f"weights.{unknown[0]}", "is not categories or families")
    cats = raw.get("categories", {})
    fams = raw.get("families", {})
    for name, table in (("categories", cats), ("families", fams)):
        if not isinstance(table, dict):
            raise SchemeError(f"weights.{name}", "must be a table")
    if len(cats) + len(fams) > WEIGHTS_MAX:
        raise SchemeError("weights", f"must list at most {WEIGHTS_MAX} weights")
    family_weight: dict[str, Weight] = {}
    for fid, value in fams.items():
        if fid not in base.families:
            raise SchemeError(f"weights.families.{fid}", f"is not a family of {base.key}")
        family_weight[fid] = Weight(_weight(value, f"weights.families.{fid}"), f"family {fid}")
    own: dict[str, Weight] = {}
    for cid, value in cats.items():
        if cid not in base.categories:
            raise SchemeError(f"weights.categories.{cid}", f"is not a category of {base.key}")
        own[cid] = Weight(_weight(value, f"weights.categories.{cid}"), "category")
    out: dict[str, Weight] = {}
    for cid in base.categories:
        weight = own.get(cid)
        if weight is None:
            weight = next(
                (family_weight[f.id] for f in base.families.values()
                 if cid in f.categories and f.id in family_weight),
                Weight(default, "default"),
            )  # fmt: skip
        out[cid] = weight
    return out


def _base_scheme(data: Mapping[str, Any], base: Scheme | None) -> Scheme:
    ref = _req(data, "base", str, "")
    m = _BASE.match(ref)
    if m is None:
        raise SchemeError("base", "must be '<scheme id>@<version>'")
    sid, version = m.group(1), m.group(2)
    scheme = base if base is not None and base.id == sid else None
    if scheme is None:
        try:
            scheme = load_scheme(sid)
        except SchemeError:
            raise SchemeError(
                "base", f"unknown base scheme {sid!r}", code="UNKNOWN_SCHEME"
            ) from None
    if scheme.version != version:
        raise SchemeError(
            "base",
            f"declares {ref} but the base scheme is {scheme.key}",
            code="SCHEME_VERSION_MISMATCH",
        )
    return scheme


def parse_derived(data: Mapping[str, Any], base: Scheme | None = None) -> DerivedScore:
    """Validate a derived score (module docstring) against ``base`` (default: the
    shipped scheme its ``base`` names)."""
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise SchemeError(unknown[0], "is not a field of a derived score")
    did = _req(data, "id", str, "")
    if not _ID.match(did):
        raise SchemeError("id", f"must be 1-{DERIVED_ID_MAX} lower-case letters, digits and '-'")
    name = _req(data, "name", str, "")
    if not name.strip() or len(name) > NAME_MAX:
        raise SchemeError("name", f"must be 1-{NAME_MAX} characters")
    version = _req(data, "version", str, "")
    if not re.fullmatch(r"[0-9A-Za-z._-]{1,32}", version):
        raise SchemeError("version", "must be 1-32 of letters, digits, '.', '_' and '-'")
    scheme = _base_scheme(data, base)
    score_min = _req(data, "score_min", int, "")
    score_max = _req(data, "score_max", int, "")
    if score_min >= score_max:
        raise SchemeError("score_min", "must be below score_max")
    base_score = _req(data, "base_score", int, "")
    if not score_min <= base_score <= score_max:
        raise SchemeError("base_score", f"{base_score} is outside [{score_min}, {score_max}]")
    weights = _resolve_weights(data, scheme)
    tiers = _parse_tiers(data.get("tiers"), score_min, score_max)
    incentive_tier = _req(data, "incentive_tier", str, "")
    if incentive_tier not in {t.id for t in tiers}:
        raise SchemeError("incentive_tier", f"{incentive_tier!r} is not one of the tiers")
    illustrative = data.get("illustrative", [])
    if not isinstance(illustrative, list) or not all(isinstance(x, str) for x in illustrative):
        raise SchemeError("illustrative", "must be a list of field names")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise SchemeError("source", "must be a string")
    return DerivedScore(
        id=did,
        name=name,
        version=version,
        base_id=scheme.id,
        base_version=scheme.version,
        score_min=score_min,
        score_max=score_max,
        base_score=base_score,
        tiers=tiers,
        incentive_tier=incentive_tier,
        weights=weights,
        incentives=parse_incentives(data.get("incentives"), [t.id for t in tiers], incentive_tier),
        illustrative=tuple(illustrative),
        source=source,
    )


def parse_derived_toml(text: str, base: Scheme | None = None) -> DerivedScore:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemeError("toml", f"not valid TOML: {exc}") from None
    return parse_derived(data, base)


def list_derived() -> tuple[str, ...]:
    """Ids of the derived scores shipped in the package."""
    pkg = resources.files("scoring.derived")
    return tuple(sorted(p.name[:-5] for p in pkg.iterdir() if p.name.endswith(".toml")))


def load_derived(derived_id: str, base: Scheme | None = None) -> DerivedScore:
    """Load a shipped derived score by id; ``UNKNOWN_DERIVED_SCORE`` if there is none.

    Without ``base`` (validated against the shipped base scheme) every call with one
    id returns the same object: the file is parsed once per process, as
    :func:`~scoring.load_scheme` (immutable package data, a frozen
    :class:`DerivedScore` whose ``weights`` mapping is read-only by contract).  With
    ``base`` (a scheme the caller holds) it is parsed on every call."""
    if base is None:
        return _load_shipped_derived(derived_id)
    return _load_derived(derived_id, base)


@cache  # once per id and process; failures are not cached
def _load_shipped_derived(derived_id: str) -> DerivedScore:
    return _load_derived(derived_id, None)


def _load_derived(derived_id: str, base: Scheme | None) -> DerivedScore:
    if derived_id not in list_derived():
        raise SchemeError(
            "derived", f"unknown derived score {derived_id!r}", code="UNKNOWN_DERIVED_SCORE"
        )
    text = resources.files("scoring.derived").joinpath(f"{derived_id}.toml").read_text("utf-8")
    derived = parse_derived_toml(text, base)
    if derived.id != derived_id:
        raise SchemeError("id", f"file {derived_id}.toml declares id {derived.id!r}")
    return derived


def derive(derived: DerivedScore, result: ScoreResult) -> DerivedResult:
    """The derived score of one explained base result (module docstring).

    Raises :class:`SchemeError` ``SCHEME_VERSION_MISMATCH`` when ``result`` was
    scored under another scheme or version than ``derived``'s base, and
    ``EXPLANATION_REQUIRED`` when a scored result carries no contributions
    although its points moved off the base (scored with ``explain=False``).
    """
    got = f"{result.scheme_id}@{result.scheme_version}"
    if got != derived.base_key:
        raise SchemeError(
            "result",
            f"scored under {got}, but {derived.key} is derived from {derived.base_key}",
            code="SCHEME_VERSION_MISMATCH",
        )
    if not result.eligible or result.score is None:
        return DerivedResult(
            derived.key, derived.base_key, result.as_of, False, None, None,
            base_score=derived.base_score, ineligible_reason=result.ineligible_reason,
        )  # fmt: skip
    if not result.contributions and (result.added or result.deducted):
        raise SchemeError(
            "result",
            "needs the base score's contributions (score with explain=True)",
            code="EXPLANATION_REQUIRED",
        )
    parts: list[DerivedContribution] = []
    for c in result.contributions:
        if c.status is not ContributionStatus.COUNTED or c.points == 0:
            continue
        weight = derived.weights[c.category]
        points = int(c.points * weight.value)  # int() of a Fraction truncates toward zero
        reason = (
            f"{c.category} ({c.category_name}): {c.points:+d} × {weight} "
            f"({weight.source} weight) = {points:+d}"
        )
        parts.append(
            DerivedContribution(
                c.record_id, c.category, c.category_name, c.points, weight, points, reason
            )
        )
    unclamped = derived.base_score + sum(p.points for p in parts)
    clamped = min(max(unclamped, derived.score_min), derived.score_max)
    return DerivedResult(
        derived.key,
        derived.base_key,
        result.as_of,
        True,
        clamped,
        derived.grade_for(clamped),
        base_score=derived.base_score,
        unclamped=unclamped,
        contributions=tuple(parts),
    )
