"""Per-requester rate limit for third-party queries (N23, H16: review of every query).

A token bucket per requester (certificate identity): ``rate`` queries per
minute (``[rights] per_requester_per_minute``, else ``queries_per_minute``;
0 — the default — means no limit), bursts of at most ``min(query_burst, rate)``.  A query over the limit is
refused with RESOURCE_EXHAUSTED, reason ``QUERY_RATE_EXCEEDED`` and a retry
hint: trailing metadata ``retry-after`` = whole seconds until one token is
back (at least 1).

Invariants: time comes from the node's clock (passed in as ``now``), so a
test with a manual clock is deterministic; only the methods in
:data:`THROTTLED_METHODS` are limited (a citizen's own queries are free and
unlimited, H12); refused queries write nothing to the database (a flood
cannot fill the disk) but are counted in metrics and in :attr:`refused`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from ._config import RightsConfig
from ._errors import ResourceExhaustedError

__all__ = ["RETRY_AFTER_KEY", "THROTTLED_METHODS", "QueryThrottle"]

RETRY_AFTER_KEY = "retry-after"
THROTTLED_METHODS = frozenset({"RequestAttestation"})


class QueryThrottle:
    def __init__(self, config: RightsConfig, now: Callable[[], float]) -> None:
        self._config = config
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # requester -> (tokens, at)
        self.refused: Counter[str] = Counter()

    def applies_to(self, method: str) -> bool:
        return method in THROTTLED_METHODS

    def check(self, requester: str) -> None:
        if self._config.rate_for(requester) == 0:  # no limit configured for this requester
            return
        rate = self._config.rate_for(requester) / 60.0  # tokens per second
        burst = float(min(self._config.query_burst, self._config.rate_for(requester)))
        now = self._now()
        tokens, at = self._buckets.get(requester, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens >= 1.0:
            self._buckets[requester] = (tokens - 1.0, now)
            return
        self._buckets[requester] = (tokens, now)
        self.refused[requester] += 1
        wait = max(1, math.ceil((1.0 - tokens) / rate))
        raise ResourceExhaustedError(
            "QUERY_RATE_EXCEEDED",
            f"query rate for this requester exceeded; retry after {wait} s",
            details=((RETRY_AFTER_KEY, str(wait)),),
        )
