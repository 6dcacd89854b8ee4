"""Caps on positive points within a calendar period (ADR 0003).

A scheme's catalogue declares two kinds of cap, both ``{ points, period_months }``:

* a **category cap** (``[categories.X] cap = …``) limits what the records of one
  category add together within one period;
* a **family cap** (``[families.Y]``, naming several categories) limits what the
  records of all its categories add together within one period, after their
  own category caps.

Invariants of parsed caps (checked by :func:`parse_cap` and
:func:`parse_families`, which name the offending field):

* ``points > 0``; ``period_months`` divides 12, so periods start on 1 January
  and nest (every 3-month period lies inside exactly one 12-month period);
* caps cover positive categories only: deductions are never capped;
* a category belongs to at most one family, and its own cap's period divides
  its family's, so a category period never straddles two family periods.

Allocation (:func:`apply_caps`) is pure and depends on the set of entries, not
their order: within one cap and one period, entries are counted from the most
valuable down (ties: earlier recognition, then record id) until the cap is
reached, so a cap never cuts a large act to make room for small ones.  The
points a cap's categories add within one period therefore never exceed the
cap, and adding a positive record never lowers the total (each bucket adds
``min(cap, sum)``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ._errors import SchemeError

__all__ = [
    "PERIOD_MONTHS",
    "CapApplication",
    "CapEntry",
    "CapKind",
    "CapOutcome",
    "Family",
    "PointCap",
    "apply_caps",
    "parse_cap",
    "parse_families",
]

#: Allowed period lengths: the divisors of a year, so periods align on 1 January.
PERIOD_MONTHS = (1, 2, 3, 4, 6, 12)
_CAP_KEYS = frozenset({"points", "period_months"})
_FAMILY_KEYS = frozenset({"name", "categories", "cap"})
_ONE_DAY = timedelta(days=1)


class CapKind(enum.StrEnum):
    CATEGORY = "category"
    FAMILY = "family"


@dataclass(frozen=True, slots=True)
class PointCap:
    """At most ``points`` positive points per calendar period of ``period_months``.

    ``owner`` is the category or family id; ``name`` is its display name.
    """

    kind: CapKind
    owner: str
    name: str
    points: int
    period_months: int

    @property
    def id(self) -> str:
        """Stable id shown in explanations: ``category:<id>`` or ``family:<id>``."""
        return f"{self.kind.value}:{self.owner}"

    def period_index(self, day: date) -> int:
        """The number of the period containing ``day`` (periods start on 1 January)."""
        return (day.year * 12 + day.month - 1) // self.period_months

    def period_bounds(self, index: int) -> tuple[date, date]:
        """First and last day of period ``index``."""
        start_year, start_month0 = divmod(index * self.period_months, 12)
        start = date(start_year, start_month0 + 1, 1)
        end_year, end_month0 = divmod(start_month0 + self.period_months, 12)
        end = date(start_year + end_year, end_month0 + 1, 1) - _ONE_DAY
        return start, end


@dataclass(frozen=True)
class Family:
    """A group of positive categories that share one cap."""

    id: str
    name: str
    categories: frozenset[str]
    cap: PointCap


def _int_field(table: Mapping[str, Any], key: str, path: str) -> int:
    if key not in table:
        raise SchemeError(f"{path}.{key}", "is required")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemeError(f"{path}.{key}", "must be an integer")
    return value


def parse_cap(raw: Any, path: str, kind: CapKind, owner: str, name: str) -> PointCap:
    """Validate a ``cap = { points = …, period_months = … }`` table found at ``path``."""
    if not isinstance(raw, dict):
        raise SchemeError(path, "must be a table { points, period_months }")
    unknown = sorted(set(raw) - _CAP_KEYS)
    if unknown:
        raise SchemeError(f"{path}.{unknown[0]}", "is not a cap field (points, period_months)")
    points = _int_field(raw, "points", path)
    if points <= 0:
        raise SchemeError(f"{path}.points", "must be > 0 (a cap of 0 would drop the category)")
    months = _int_field(raw, "period_months", path)
    if months not in PERIOD_MONTHS:
        raise SchemeError(
            f"{path}.period_months",
            f"must be one of {', '.join(map(str, PERIOD_MONTHS))} (periods align on 1 January)",
        )
    return PointCap(kind, owner, name, points, months)


def parse_families(
    raw: Any, positive: frozenset[str], negative: frozenset[str], own_caps: Mapping[str, PointCap]
) -> dict[str, Family]:
    """Validate ``[families.*]`` against the category ids of the scheme."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SchemeError("families", "must be a table of families")
    families: dict[str, Family] = {}
    member_of: dict[str, str] = {}
    for fid, entry in raw.items():
        path = f"families.{fid}"
        if not isinstance(entry, dict):
            raise SchemeError(path, "must be a table")
        unknown = sorted(set(entry) - _FAMILY_KEYS)
        if unknown:
            raise SchemeError(
                f"{path}.{unknown[0]}", "is not a family field (name, categories, cap)"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SchemeError(f"{path}.name", "is required")
        members = entry.get("categories")
        if not isinstance(members, list) or not members:
            raise SchemeError(f"{path}.categories", "must list at least one category")
        cap = parse_cap(entry.get("cap"), f"{path}.cap", CapKind.FAMILY, fid, name)
        for i, cid in enumerate(members):
            mpath = f"{path}.categories[{i}]"
            if cid in negative:
                raise SchemeError(mpath, f"{cid!r} is negative; caps limit positive points only")
            if cid not in positive:
                raise SchemeError(mpath, f"unknown category {cid!r}")
            if cid in member_of:
                raise SchemeError(mpath, f"{cid!r} is already in family {member_of[cid]!r}")
            member_of[cid] = fid
            own = own_caps.get(cid)
            if own is not None and cap.period_months % own.period_months:
                raise SchemeError(
                    mpath,
                    f"{cid!r}'s own cap period ({own.period_months} months) must divide "
                    f"the family's ({cap.period_months} months)",
                )
        families[fid] = Family(fid, name, frozenset(members), cap)
    return families


@dataclass(frozen=True, slots=True)
class CapEntry:
    """One counted positive record offered to the caps; ``key`` is the caller's handle."""

    key: int
    category: str
    points: int
    recognised_on: date
    record_id: str


@dataclass(frozen=True, slots=True)
class CapApplication:
    """A cap that cut points in one period: which cap, when, how much.

    ``period`` is an ISO 8601 interval ``YYYY-MM-DD/YYYY-MM-DD`` (both days
    included); ``requested`` is what its records asked for after any earlier
    cap, ``cut`` what the cap removed (``requested - limit``).
    """

    cap: str
    name: str
    limit: int
    period_months: int
    period: str
    requested: int
    cut: int


@dataclass(frozen=True, slots=True)
class CapOutcome:
    """``kept[key]`` for every entry a cap cut (missing keys kept all their points).

    ``cuts[key]`` lists (application index, points cut) for that entry, in the
    order the caps applied (category before family).
    """

    kept: Mapping[int, int]
    cuts: Mapping[int, tuple[tuple[int, int], ...]]
    applications: tuple[CapApplication, ...]


def _apply_one(
    cap_of: Mapping[str, PointCap],
    entries: Sequence[CapEntry],
    value: dict[int, int],
    cuts: dict[int, list[tuple[int, int]]],
    applications: list[CapApplication],
) -> None:
    buckets: dict[tuple[str, int], list[CapEntry]] = {}
    for e in entries:
        cap = cap_of.get(e.category)
        if cap is not None:
            buckets.setdefault((cap.id, cap.period_index(e.recognised_on)), []).append(e)
    for (_cap_id, index), members in sorted(buckets.items()):
        cap = cap_of[members[0].category]
        requested = sum(value[e.key] for e in members)
        if requested <= cap.points:
            continue
        start, end = cap.period_bounds(index)
        app = len(applications)
        applications.append(
            CapApplication(
                cap.id,
                cap.name,
                cap.points,
                cap.period_months,
                f"{start.isoformat()}/{end.isoformat()}",
                requested,
                requested - cap.points,
            )
        )
        allowance = cap.points
        members.sort(key=lambda e: (-value[e.key], e.recognised_on, e.record_id, e.key))
        for e in members:
            take = min(value[e.key], allowance)
            allowance -= take
            if take < value[e.key]:
                cuts.setdefault(e.key, []).append((app, value[e.key] - take))
                value[e.key] = take


def apply_caps(
    entries: Iterable[CapEntry],
    category_caps: Mapping[str, PointCap],
    family_caps: Mapping[str, PointCap],
) -> CapOutcome:
    """Cut ``entries`` to the caps: category caps first, then family caps.

    ``category_caps`` and ``family_caps`` map a category id to the cap that
    covers it.  Entries of uncapped categories pass through untouched.
    """
    listed = list(entries)
    value = {e.key: e.points for e in listed}
    cuts: dict[int, list[tuple[int, int]]] = {}
    applications: list[CapApplication] = []
    _apply_one(category_caps, listed, value, cuts, applications)
    _apply_one(family_caps, listed, value, cuts, applications)
    return CapOutcome(
        kept={k: value[k] for k in cuts},
        cuts={k: tuple(v) for k, v in cuts.items()},
        applications=tuple(applications),
    )
