"""Equipercentile linking: signed aggregate histograms, minimum population, empty tiers.

REQ: C3, N20.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mapping import (
    GradeHistogram,
    HistogramError,
    MappingError,
    SignatureError,
    check_table,
    equipercentile_table,
    histogram_from_json,
    table_from_document,
    verify_table,
)
from scoring import Scheme

from .conftest import public_keys, region_key

HEIHE = {
    "SSS": 10,
    "SS": 40,
    "S": 100,
    "AAA": 300,
    "AA": 900,
    "A": 6000,
    "B": 1500,
    "C": 900,
    "D": 250,
}
HAINAN = {"AAA": 200, "AA": 800, "A": 2500, "B": 5000, "C": 1000, "D": 500}


def _hists(schemes: dict[str, Scheme]) -> tuple[GradeHistogram, GradeHistogram]:
    hh = GradeHistogram.of(schemes["heihe"], "2026-10", HEIHE).signed(region_key("heihe"))
    hn = GradeHistogram.of(schemes["hainan"], "2026-10", HAINAN).signed(region_key("hainan"))
    return hh, hn


def _table(schemes: dict[str, Scheme], **kw: Any):  # type: ignore[no-untyped-def]
    hh, hn = _hists(schemes)
    return equipercentile_table(
        schemes["heihe"], schemes["hainan"], hh, hn, keys=public_keys("heihe", "hainan"), **kw
    )


def test_heihe_to_hainan_by_percentile(schemes: dict[str, Scheme]) -> None:
    """Worst-percentile rule, round down.

    Shares below each tier — Heihe: D 0, C 2.5, B 11.5, A 26.5, AA 86.5, AAA 95.5,
    S 98.5, SS 99.5, SSS 99.9 %; Hainan: D 0, C 5, B 15, A 65, AA 90, AAA 98 %.
    """
    table = _table(schemes)
    assert table.grade_map == {
        "SSS": "AAA",
        "SS": "AAA",
        "S": "AAA",  # 98.5 % >= 98 %
        "AAA": "AA",  # 95.5 % → AA (90 %)
        "AA": "A",  # 86.5 % → A (65 %)
        "A": "B",
        "B": "C",
        "C": "D",
        "D": "D",
    }
    assert check_table(table, schemes["heihe"], schemes["hainan"]) == ()
    assert table.parameters["min_population"] == 1000


def test_table_embeds_histograms_and_verifies_from_document(schemes: dict[str, Scheme]) -> None:
    table = table_from_document(_table(schemes).to_json_bytes())
    regions = verify_table(
        table, public_keys("heihe", "hainan"), source=schemes["heihe"], target=schemes["hainan"]
    )
    assert regions == frozenset()  # the table itself is unsigned; its evidence is
    assert check_table(table, schemes["heihe"], schemes["hainan"]) == ()


def test_empty_target_tiers_choose_the_lowest(schemes: dict[str, Scheme]) -> None:
    """Tiers the evidence cannot tell apart (empty) resolve to the lowest of them."""
    hh, _ = _hists(schemes)
    counts = {**HAINAN, "AAA": 0, "AA": 0, "A": 0}
    hn = GradeHistogram.of(schemes["hainan"], "2026-10", counts).signed(region_key("hainan"))
    table = equipercentile_table(
        schemes["heihe"], schemes["hainan"], hh, hn, keys=public_keys("heihe", "hainan")
    )
    assert table.map("SSS") == "B"  # everyone at/above B's bottom is in B; A, AA, AAA are empty


def _bad(schemes: dict[str, Scheme], name: str) -> tuple[GradeHistogram, GradeHistogram, dict]:  # type: ignore[type-arg]
    hh, hn = _hists(schemes)
    keys = public_keys("heihe", "hainan")
    if name == "too-few-people":
        small = dict.fromkeys(HEIHE, 1)
        hh = GradeHistogram.of(schemes["heihe"], "2026-10", small).signed(region_key("heihe"))
    elif name == "missing-grade":
        hh = replace(hh, counts=hh.counts[:-1]).signed(region_key("heihe"))
    elif name == "negative-count":
        hh = replace(hh, counts=(*hh.counts[:-1], ("D", -5))).signed(region_key("heihe"))
    elif name == "other-scheme-version":
        hh = replace(hh, scheme_version="2019.1").signed(region_key("heihe"))
    elif name == "other-region":
        hh = replace(hh, region="hainan").signed(region_key("hainan"))
    elif name == "bad-period":
        hh = replace(hh, period="2026-13").signed(region_key("heihe"))
    elif name == "unsigned":
        hh = replace(hh, signatures=())
    elif name == "signed-by-other-region":
        hh = replace(hh, signatures=()).signed(region_key("hainan"))
    elif name == "tampered-counts":
        hh = replace(hh, counts=(*hh.counts[:-1], ("D", 0)))
    return hh, hn, keys


BAD_HISTOGRAMS = [
    ("too-few-people", "POPULATION_TOO_SMALL"),
    ("missing-grade", "MALFORMED_HISTOGRAM"),
    ("negative-count", "MALFORMED_HISTOGRAM"),
    ("other-scheme-version", "HISTOGRAM_SCHEME_MISMATCH"),
    ("other-region", "HISTOGRAM_SCHEME_MISMATCH"),
    ("bad-period", "MALFORMED_HISTOGRAM"),
    ("unsigned", "MISSING_PARTY_SIGNATURE"),
    ("signed-by-other-region", "MISSING_PARTY_SIGNATURE"),
    ("tampered-counts", "BAD_SIGNATURE"),
]


@pytest.mark.parametrize(("name", "code"), BAD_HISTOGRAMS, ids=[b[0] for b in BAD_HISTOGRAMS])
def test_bad_histograms_are_refused(schemes: dict[str, Scheme], name: str, code: str) -> None:
    hh, hn, keys = _bad(schemes, name)
    with pytest.raises(MappingError) as err:
        equipercentile_table(schemes["heihe"], schemes["hainan"], hh, hn, keys=keys)
    assert err.value.code == code, name
    assert isinstance(err.value, HistogramError | SignatureError)


def test_minimum_population_is_configurable(schemes: dict[str, Scheme]) -> None:
    with pytest.raises(HistogramError) as err:
        _table(schemes, min_population=20_000)
    assert err.value.code == "POPULATION_TOO_SMALL"
    assert "20000" in str(err.value)


BAD_JSON = [
    ("not-object", [], "MALFORMED_HISTOGRAM"),
    ("no-signatures", {"content": {}}, "MALFORMED_HISTOGRAM"),
    (
        "missing-field",
        {"content": {"format": "huxin.grade-histogram.v1"}, "signatures": []},
        "MALFORMED_HISTOGRAM",
    ),
]


@pytest.mark.parametrize(("name", "raw", "code"), BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_histogram_json_shape(name: str, raw: Any, code: str) -> None:
    with pytest.raises(HistogramError) as err:
        histogram_from_json(raw)
    assert err.value.code == code


def test_histogram_json_round_trip(schemes: dict[str, Scheme]) -> None:
    hh, _ = _hists(schemes)
    assert histogram_from_json(hh.to_json()) == hh
    assert hh.total == sum(HEIHE.values())
