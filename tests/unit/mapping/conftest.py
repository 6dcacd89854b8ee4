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


def is_regular(scheme: Scheme) -> bool:
    """Incentive threshold strictly inside the range and the base not above the incentive
    tier: the shape every shipped scheme has, for which a fair anchored table always exists
    (docs/mapping.md, "Why the invariants hold")."""
    threshold = scheme.tier(scheme.incentive_tier).min_score
    return scheme.score_min < threshold < scheme.score_max and scheme.rank(
        scheme.base_grade
    ) <= scheme.rank(scheme.incentive_tier)


@st.composite
def regular_schemes(draw: st.DrawFn, sid: str = "x") -> Scheme:
    """A regular scheme (:func:`is_regular`): 2-9 tiers, any range, base anywhere up to the
    top of the incentive tier, tier bounds and the floor included."""
    score_min = draw(st.integers(-50, 600))
    width = draw(st.integers(2, 1500))
    score_max = score_min + width
    n = draw(st.integers(2, min(9, width)))
    cuts = sorted(
        draw(st.sets(st.integers(score_min + 1, score_max - 1), min_size=n - 1, max_size=n - 1))
    )
    incentive = draw(st.integers(1, n - 1))
    top = ([c - 1 for c in cuts] + [score_max])[incentive]
    base = draw(
        st.one_of(
            st.integers(score_min, top),
            st.sampled_from([v for v in (score_min, *cuts, top) if v <= top]),
        )
    )
    scheme = parse_scheme(scheme_dict(sid, cuts, score_min, score_max, base, incentive))
    assert is_regular(scheme)
    return scheme


def plain_refusal(source: Scheme, target: Scheme) -> str | None:
    """For regular schemes: why no fair table can recognise every grade (None: one can).

    The source does not reward its clean record but the target does (parity and incentive
    safety conflict), or the target has no grade below its clean record for the source's
    below-clean grades.
    """
    c_a, c_b = source.rank(source.base_grade), target.rank(target.base_grade)
    if c_a < source.rank(source.incentive_tier) and c_b >= target.rank(target.incentive_tier):
        return "INVARIANT_CLEAN_RECORD_PARITY"
    if c_b == 0 and c_a > 0:
        return "INVARIANT_CONSERVATIVE"
    return None
