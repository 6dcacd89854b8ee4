"""The query throttle's behaviour, the same for in-process and shared buckets (N23, H16).

Every test here runs twice: ``memory`` (``QueryThrottle(config, now)``, a dict
in this process) and ``shared`` (``QueryThrottle.shared(config, now, path)``,
the mapped file used by the worker processes of one node).  A differential
property checks both give the same answers, hint for hint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core._config import RightsConfig
from node.core._errors import ResourceExhaustedError, map_error
from node.exchange._throttle import RETRY_AFTER_KEY, QueryThrottle

Make = Callable[[RightsConfig, Callable[[], float]], QueryThrottle]


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["memory", "shared"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    made: list[QueryThrottle] = []

    def build(config: RightsConfig, now: Callable[[], float]) -> QueryThrottle:
        if request.param == "memory":
            t = QueryThrottle(config, now)
        else:
            t = QueryThrottle.shared(config, now, tmp_path / f"t{len(made)}.throttle")
        made.append(t)
        return t

    yield build
    for t in made:
        t.close()


def _hint(t: QueryThrottle, requester: str) -> int | None:
    """None if admitted, else the retry-after hint (whole seconds)."""
    try:
        t.check(requester)
    except ResourceExhaustedError as exc:
        refused = exc
    else:
        return None
    assert refused.code == "QUERY_RATE_EXCEEDED"
    return int(dict(refused.details)[RETRY_AFTER_KEY])


def test_bursts_refills_and_hints(make: Make) -> None:
    """REQ: N23 — over the rate: RESOURCE_EXHAUSTED, reason and a retry-after hint."""
    clock = _Clock()
    t = make(RightsConfig(queries_per_minute=6, query_burst=2), clock)
    t.check("bank")
    t.check("bank")
    with pytest.raises(ResourceExhaustedError) as info:
        t.check("bank")
    mapped = map_error(info.value)
    assert mapped.status is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(mapped.metadata)[RETRY_AFTER_KEY] == "10"  # 6/min: a token every 10 s
    assert dict(mapped.metadata)["huxin-reason"] == "QUERY_RATE_EXCEEDED"
    t.check("insurer")  # buckets are per requester
    clock.t += 4
    assert _hint(t, "bank") == 6
    clock.t += 6
    t.check("bank")
    assert t.refused == {"bank": 2}
    assert t.applies_to("RequestAttestation")
    assert not t.applies_to("GetMyScore")


def test_no_limit_unless_configured(make: Make) -> None:
    """REQ: N23 — the default is no limit; a requester's own rate applies even then."""
    t = make(RightsConfig(per_requester_per_minute={"bank": 1}), _Clock())
    for _ in range(1000):
        t.check("hainan")
    t.check("bank")
    assert _hint(t, "bank") == 60
    assert t.refused == {"bank": 1}


def test_override_zero_means_unlimited_for_that_requester(make: Make) -> None:
    """REQ: N23 — a per-requester 0 lifts the default limit for that requester only."""
    t = make(RightsConfig(queries_per_minute=1, per_requester_per_minute={"hub": 0}), _Clock())
    for _ in range(500):
        t.check("hub")
    t.check("bank")
    assert _hint(t, "bank") == 60


@pytest.mark.parametrize(
    ("rate", "allowed", "hint"),
    [
        pytest.param(1, 1, 60, id="rate-1-burst-1"),
        pytest.param(3, 3, 20, id="rate-3-burst-3"),
        pytest.param(600, 60, 1, id="rate-600-burst-60"),
    ],
)
def test_burst_is_capped_by_the_rate(make: Make, rate: int, allowed: int, hint: int) -> None:
    """REQ: N23 — at most min(query_burst, rate) at once."""
    t = make(RightsConfig(per_requester_per_minute={"x": rate}, query_burst=60), _Clock())
    for _ in range(allowed):
        t.check("x")
    assert _hint(t, "x") == hint


@pytest.mark.parametrize(
    ("rate", "burst", "gap", "hint"),
    [
        pytest.param(60, 1, 0.0, 1, id="one-per-second-no-wait"),
        pytest.param(60, 1, 0.5, 1, id="half-a-token-rounds-up-to-1"),
        pytest.param(6, 1, 0.0, 10, id="six-per-minute"),
        pytest.param(6, 1, 9.5, 1, id="almost-back"),
        pytest.param(1, 5, 0.0, 60, id="one-per-minute"),
        pytest.param(7, 1, 0.0, 9, id="fraction-rounds-up"),
    ],
)
def test_retry_after_is_whole_seconds_until_a_token(
    make: Make, rate: int, burst: int, gap: float, hint: int
) -> None:
    """REQ: N23 — retry-after = ceil(seconds until one token), at least 1."""
    clock = _Clock()
    t = make(RightsConfig(queries_per_minute=rate, query_burst=burst), clock)
    for _ in range(min(rate, burst)):
        t.check("x")
    clock.t += gap
    assert _hint(t, "x") == hint


def test_clock_going_back_refills_nothing(make: Make) -> None:
    """REQ: N23 — time from the node clock; a step back gives no tokens."""
    clock = _Clock()
    t = make(RightsConfig(queries_per_minute=6, query_burst=1), clock)
    t.check("x")
    clock.t -= 100
    assert _hint(t, "x") == 10
    clock.t += 10
    t.check("x")


def test_refused_queries_do_not_use_tokens(make: Make) -> None:
    """REQ: N23 — hammering while refused does not push the next token further away."""
    clock = _Clock()
    t = make(RightsConfig(queries_per_minute=6, query_burst=1), clock)
    t.check("x")
    for _ in range(50):
        assert _hint(t, "x") is not None
    clock.t += 10
    t.check("x")
    assert t.refused == {"x": 50}


_STEP = st.tuples(st.sampled_from(["bank", "insurer", "hub", "x"]), st.floats(0, 20))


@settings(max_examples=40, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=120),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(_STEP, min_size=1, max_size=60),
)
def test_shared_answers_exactly_like_memory(
    rate: int, burst: int, steps: list[tuple[str, float]]
) -> None:
    """REQ: N23 — the shared table is the in-process throttle, answer for answer."""
    config = RightsConfig(
        queries_per_minute=rate, query_burst=burst, per_requester_per_minute={"bank": 2}
    )
    clock = _Clock()
    memory = QueryThrottle(config, clock)
    with tempfile.TemporaryDirectory() as tmp:
        shared = QueryThrottle.shared(config, clock, Path(tmp) / "t.throttle")
        try:
            for requester, gap in steps:
                clock.t += gap
                assert _hint(shared, requester) == _hint(memory, requester)
            assert shared.refused == memory.refused
        finally:
            shared.close()


@settings(max_examples=40, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=120),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=60),
)
def test_shared_never_admits_more_than_burst_plus_refill(
    rate: int, burst: int, gaps: list[float]
) -> None:
    """REQ: N23 — over any window, admitted queries ≤ burst + rate × window."""
    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:
        t = QueryThrottle.shared(
            RightsConfig(queries_per_minute=rate, query_burst=burst),
            clock,
            Path(tmp) / "t.throttle",
            slots=16,
        )
        start, admitted = clock.t, 0
        try:
            for gap in gaps:
                clock.t += gap
                hint = _hint(t, "x")
                assert hint is None or hint >= 1
                admitted += hint is None
        finally:
            t.close()
    assert admitted <= min(burst, rate) + rate * (clock.t - start) / 60.0 + 1e-9
