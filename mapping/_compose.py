"""Composition through pivot schemes and the most conservative recognition.

A :class:`Route` chains tables ``A→P₁→…→B`` (each table's target is the next
one's source, versions included).  :func:`most_conservative` uses the direct
table when one is usable (every table passed ``pivot_not_above_direct``, so no
pivot route can give more than it; ADR 0201); otherwise, or with
``prefer_direct=False``, it considers every route through at most
``max_pivots`` pivots and takes, grade by grade, the *lowest* target grade any
route gives (ties: the shortest route).  *Not recognised* (``None``: a hop's
incentive-tier table carries no grade) ranks below every grade, so a route
that does not recognise a grade ends the search for it with ``None``.  The
result is monotone, conservative, incentive-safe, clean-record fair and free
of round-trip inflation whenever each route's tables are, since a pointwise
minimum of such maps keeps every one of those properties.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from scoring import Scheme

from ._errors import NotRecognisedError, TableError, ValidityError
from ._fair import rank_of
from ._table import MappingTable, check_validity

__all__ = ["Recognition", "Route", "compose", "find_routes", "most_conservative"]


@dataclass(frozen=True)
class Route:
    """A chain of tables; ``map`` follows every hop."""

    tables: tuple[MappingTable, ...]

    @property
    def path(self) -> tuple[str, ...]:
        return (self.tables[0].source.scheme, *(t.target.scheme for t in self.tables))

    def recognise(self, grade: str) -> str | None:
        """The grade after every hop, or ``None`` when a hop does not recognise it."""
        current: str | None = grade
        for table in self.tables:
            if current is None:
                return None
            current = table.recognise(current)
        return current

    def map(self, grade: str) -> str:
        """The grade after every hop; ``NOT_RECOGNISED`` when a hop carries none."""
        for table in self.tables:
            grade = table.map(grade)
        return grade

    def cite(self) -> tuple[tuple[str, str, str, str], ...]:
        """(table id, version, content hash, method) for each hop, for an attestation."""
        return tuple((t.id, t.version, t.content_hash, t.method.value) for t in self.tables)


def compose(*tables: MappingTable) -> Route:
    """Chain tables; refuses ``SCHEME_MISMATCH`` when a hop does not meet the next."""
    if not tables:
        raise TableError("tables", "need at least one table", code="NO_ROUTE")
    for left, right in itertools.pairwise(tables):
        if left.target != right.source:
            raise TableError(
                "tables",
                f"{left.id!r} ends in {left.target.key} but {right.id!r} starts from "
                f"{right.source.key}",
                code="SCHEME_MISMATCH",
            )
    return Route(tuple(tables))


def find_routes(
    source: str, target: str, tables: Iterable[MappingTable], *, max_pivots: int = 2
) -> list[Route]:
    """Every simple route from ``source`` to ``target`` with at most ``max_pivots`` pivots."""
    pool = list(tables)
    out: list[Route] = []

    def walk(chain: list[MappingTable], seen: set[str]) -> None:
        here = chain[-1].target
        if here.scheme == target:
            out.append(Route(tuple(chain)))
            return
        if len(chain) > max_pivots:
            return
        for nxt in pool:
            if nxt.source == here and nxt.target.scheme not in seen:
                walk([*chain, nxt], seen | {nxt.target.scheme})

    for first in pool:
        if first.source.scheme == source and first.target.scheme != source:
            walk([first], {source, first.target.scheme})
    out.sort(key=lambda r: (len(r.tables), r.path))
    return out


@dataclass(frozen=True)
class Recognition:
    """For each source grade (best first): the target grade (``None``: not recognised)
    and the route that gave it."""

    source: str
    target: str
    entries: tuple[tuple[str, str | None, Route], ...]

    def recognise(self, grade: str) -> str | None:
        return self.route_entry(grade)[1]

    def map(self, grade: str) -> str:
        """The target grade; ``NOT_RECOGNISED`` when the chosen route carries none."""
        mapped = self.recognise(grade)
        if mapped is None:
            raise NotRecognisedError(
                "grade", f"{self.source} grade {grade!r} is not recognised in {self.target}"
            )
        return mapped

    def route_entry(self, grade: str) -> tuple[str, str | None, Route]:
        for entry in self.entries:
            if entry[0] == grade:
                return entry
        raise TableError("grade", f"{self.source} has no grade {grade!r}", code="UNKNOWN_GRADE")


def most_conservative(
    source: Scheme,
    target: Scheme,
    tables: Iterable[MappingTable],
    *,
    max_pivots: int = 2,
    today: date | None = None,
    prefer_direct: bool = True,
) -> Recognition:
    """Per source grade, the lowest grade over the candidate routes.

    Candidates: the direct table alone if one is usable and ``prefer_direct``;
    else the direct table and every pivot route.  Only tables usable on
    ``today`` (when given) and matching the versions of the end schemes take
    part.  Raises ``NO_ROUTE`` when none connects.
    """
    usable: list[MappingTable] = []
    for table in tables:
        if today is not None:
            try:
                check_validity(table, today)
            except ValidityError:
                continue
        usable.append(table)
    routes = [
        r
        for r in find_routes(source.id, target.id, usable, max_pivots=max_pivots)
        if r.tables[0].source.version == source.version
        and r.tables[-1].target.version == target.version
    ]
    if prefer_direct and routes and len(routes[0].tables) == 1:
        routes = [r for r in routes if len(r.tables) == 1]
    if not routes:
        raise TableError(
            "route",
            f"no usable table or pivot route from {source.key} to {target.key}",
            code="NO_ROUTE",
        )
    entries: list[tuple[str, str | None, Route]] = []
    for grade in source.grades:
        best: tuple[str | None, Route] | None = None
        for route in routes:
            mapped = route.recognise(grade)
            if best is None or rank_of(target, mapped) < rank_of(target, best[0]):
                best = (mapped, route)
        assert best is not None
        entries.append((grade, best[0], best[1]))
    return Recognition(source.key, target.key, tuple(entries))
