"""Fixtures and Hypothesis strategies for mapping tests: shipped schemes, random
valid schemes (built through ``scoring.parse_scheme``, which validates), random
histograms and fixed Ed25519 keys per region."""

from __future__ import annotations

from datetime import date
from typing import Any

import nacl.signing
import pytest
from hypothesis import strategies as st

from mapping import GradeHistogram, load_schemes
from scoring import Scheme, parse_scheme

SHIPPED = ("fuzhou", "hainan", "heihe", "wendeng")


@pytest.fixture(scope="session")
def schemes() -> dict[str, Scheme]:
    return load_schemes()


def region_key(region: str, n: int = 0) -> nacl.signing.SigningKey:
    """A fixed test key per region (never a production key)."""
    seed = (f"huxin-test-{region}-{n}".encode() + b"\0" * 32)[:32]
    return nacl.signing.SigningKey(seed)


def public_keys(*regions: str) -> dict[str, dict[str, bytes]]:
    from mapping import key_id

    out: dict[str, dict[str, bytes]] = {}
    for r in regions:
        pub = bytes(region_key(r).verify_key)
        out[r] = {key_id(pub): pub}
    return out


def scheme_dict(
    sid: str,
    cuts: list[int],
    score_min: int,
    score_max: int,
    base: int,
    incentive_index: int,
    version: str = "1",
) -> dict[str, Any]:
    """A minimal valid scheme: tiers split ``[score_min, score_max]`` at ``cuts``.

    ``cuts`` are the tiers' lower bounds above ``score_min`` (ascending);
    ``incentive_index`` counts tiers from the worst (0 = worst tier).
    """
    lows = [score_min, *cuts]
    highs = [c - 1 for c in cuts] + [score_max]
    tiers = [
        {"id": f"T{i}", "label": f"tier {i}", "min": lo, "max": hi}
        for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))
    ]
    tiers.reverse()  # best first
    return {
        "id": sid,
        "name": sid,
        "version": version,
        "region": sid,
        "effective": date(2024, 1, 1),
        "score_min": score_min,
        "score_max": score_max,
        "base_score": base,
        "incentive_tier": f"T{incentive_index}",
        "categories": {
            "good": {"name": "good", "polarity": "positive", "points": 10, "validity_years": 1}
        },
        "eligibility": {"min_age": 18, "residence": [{"kind": "hukou"}]},
        "objection_deadlines": {"handle": 3},
        "tiers": tiers,
    }


@st.composite
def random_schemes(
    draw: st.DrawFn, sid: str = "x", *, incentive_above_worst: bool = False
) -> Scheme:
    """Any valid scheme: 1-9 tiers, any range, base anywhere, any incentive tier."""
    score_min = draw(st.integers(-50, 600))
    width = draw(st.integers(1, 1500))
    score_max = score_min + width
    n_tiers = draw(st.integers(1, min(9, width + 1)))
    cuts = sorted(
        draw(
            st.sets(
                st.integers(score_min + 1, score_max), min_size=n_tiers - 1, max_size=n_tiers - 1
            )
        )
    )
    n = len(cuts) + 1
    base = draw(
        st.one_of(
            st.integers(score_min, score_max),
            st.sampled_from([score_min, score_max, *cuts]),
        )
    )
    low = 1 if incentive_above_worst and n > 1 else 0
    incentive = draw(st.integers(low, n - 1))
    return parse_scheme(scheme_dict(sid, cuts, score_min, score_max, base, incentive))


@st.composite
def random_histograms(draw: st.DrawFn, scheme: Scheme, min_total: int = 1) -> GradeHistogram:
    """Counts per grade (zeros and empty tiers included), at least ``min_total`` people."""
    counts = {g: draw(st.one_of(st.just(0), st.integers(0, 5000))) for g in scheme.grades}
    if sum(counts.values()) < min_total:
        counts[draw(st.sampled_from(scheme.grades))] += min_total
    return GradeHistogram.of(scheme, "2026-10", counts)
