"""Reference grade distributions for incentive reach (generated; do not edit).

Written by ``python tools/gen_reference_population.py``; each entry says where
its shares come from (``basis``).  Shares are integer parts per million.
"""

from typing import Any

__all__ = ["REFERENCE_POPULATIONS"]

REFERENCE_POPULATIONS: tuple[dict[str, Any], ...] = (
    {
        "scheme": "fuzhou",
        "version": "2018.1",
        "basis": "measured: synthetic population generator v2, seed 1, 20000 people, eligible adults graded on 2026-11-30",
        "shares_ppm": {
            "jihao": 2475,
            "youxiu": 15659,
            "lianghao": 81393,
            "yiban": 393166,
            "jiaocha": 487992,
            "jicha": 19311,
        },
    },
    {
        "scheme": "hainan",
        "version": "2025.1",
        "basis": "calibrated target shares of the synthetic population (ADR 0510)",
        "shares_ppm": {"AAA": 200, "AA": 2000, "A": 35000, "B": 840000, "C": 95000, "D": 28000},
    },
    {
        "scheme": "heihe",
        "version": "2025.1",
        "basis": "calibrated target shares of the synthetic population (ADR 0510)",
        "shares_ppm": {
            "SSS": 500,
            "SS": 500,
            "S": 1500,
            "AAA": 5000,
            "AA": 20000,
            "A": 860000,
            "B": 80000,
            "C": 22000,
            "D": 11000,
        },
    },
    {
        "scheme": "wendeng",
        "version": "2020.1",
        "basis": "measured: synthetic population generator v2, seed 1, 20000 people, eligible adults graded on 2026-11-30",
        "shares_ppm": {"AAA": 285233, "AA": 179008, "A": 475601, "B": 37185, "C": 9708, "D": 13262},
    },
)
