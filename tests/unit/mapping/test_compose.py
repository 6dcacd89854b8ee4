"""Composition through pivots and the most conservative route.

REQ: C3, H13, N20 — Heihe → pivot → Hainan when no direct table exists.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from mapping import (
    TableError,
    compose,
    find_routes,
    most_conservative,
    published_table,
    published_tables,
)
from scoring import Scheme


def test_compose_follows_each_hop() -> None:
    route = compose(published_table("heihe", "wendeng"), published_table("wendeng", "hainan"))
    assert route.path == ("heihe", "wendeng", "hainan")
    assert route.map("AAA") == published_table("wendeng", "hainan").map(
        published_table("heihe", "wendeng").map("AAA")
    )
    assert [c[0] for c in route.cite()] == ["heihe-wendeng-anchored", "wendeng-hainan-anchored"]


def test_compose_refuses_a_broken_chain() -> None:
    with pytest.raises(TableError) as err:
        compose(published_table("heihe", "wendeng"), published_table("fuzhou", "hainan"))
    assert err.value.code == "SCHEME_MISMATCH"
    with pytest.raises(TableError) as err:
        compose()
    assert err.value.code == "NO_ROUTE"


def test_without_a_direct_table_the_most_conservative_pivot_wins(
    schemes: dict[str, Scheme],
) -> None:
    """REQ: C3 — per grade, the lowest target grade over all pivot routes."""
    tables = [
        t
        for t in published_tables()
        if not (t.source.scheme == "heihe" and t.target.scheme == "hainan")
    ]
    rec = most_conservative(schemes["heihe"], schemes["hainan"], tables)
    routes = find_routes("heihe", "hainan", tables)
    assert routes and all(len(r.tables) >= 2 for r in routes)
    hainan = schemes["hainan"]
    for grade in schemes["heihe"].grades:
        lowest = min((r.map(grade) for r in routes), key=hainan.rank)
        assert rec.map(grade) == lowest
    # never above the direct anchored table (pivot_not_above_direct)
    direct = published_table("heihe", "hainan")
    for grade in schemes["heihe"].grades:
        assert hainan.rank(rec.map(grade)) <= hainan.rank(direct.map(grade))


def test_direct_table_preferred_unless_all_routes_asked(schemes: dict[str, Scheme]) -> None:
    tables = published_tables()
    rec = most_conservative(schemes["heihe"], schemes["hainan"], tables)
    assert rec.route_entry("AAA")[2].path == ("heihe", "hainan")
    assert rec.map("AAA") == "AA"
    strict = most_conservative(schemes["heihe"], schemes["hainan"], tables, prefer_direct=False)
    assert strict.map("AAA") == "A"  # via Wendeng: the stricter route
    assert len(strict.route_entry("AAA")[2].tables) == 2


def test_max_pivots_bounds_the_search() -> None:
    tables = [
        t
        for t in published_tables()
        if (t.source.scheme, t.target.scheme)
        in {("heihe", "fuzhou"), ("fuzhou", "wendeng"), ("wendeng", "hainan")}
    ]
    assert find_routes("heihe", "hainan", tables, max_pivots=1) == []
    (route,) = find_routes("heihe", "hainan", tables, max_pivots=2)
    assert route.path == ("heihe", "fuzhou", "wendeng", "hainan")


def test_no_route_is_named(schemes: dict[str, Scheme]) -> None:
    with pytest.raises(TableError) as err:
        most_conservative(
            schemes["heihe"], schemes["hainan"], [published_table("fuzhou", "wendeng")]
        )
    assert err.value.code == "NO_ROUTE"


def test_expired_and_future_tables_are_skipped(schemes: dict[str, Scheme]) -> None:
    direct = replace(published_table("heihe", "hainan"), expires=date(2026, 1, 1))
    pivots = [published_table("heihe", "fuzhou"), published_table("fuzhou", "hainan")]
    rec = most_conservative(
        schemes["heihe"], schemes["hainan"], [direct, *pivots], today=date(2026, 6, 1)
    )
    assert rec.route_entry("A")[2].path == ("heihe", "fuzhou", "hainan")
    future = replace(published_table("heihe", "hainan"), effective_from=date(2030, 1, 1))
    with pytest.raises(TableError) as err:
        most_conservative(schemes["heihe"], schemes["hainan"], [future], today=date(2026, 6, 1))
    assert err.value.code == "NO_ROUTE"


def test_tables_for_other_scheme_versions_are_not_used(schemes: dict[str, Scheme]) -> None:
    newer = replace(schemes["hainan"], version="2026.1")
    with pytest.raises(TableError) as err:
        most_conservative(schemes["heihe"], newer, published_tables())
    assert err.value.code == "NO_ROUTE"
