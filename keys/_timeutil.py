"""Time conversion at the wire boundary: Unix seconds (int) <-> aware datetimes.

Invariant: every time on the wire is whole Unix seconds, UTC; callers pass
``now`` in (a datetime, or Unix seconds), nothing here reads the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["DEFAULT_SKEW_SECONDS", "Instant", "from_epoch", "to_epoch"]

Instant = datetime | int

#: How far in the future a signed time may lie and still be accepted (clock skew
#: between issuer and verifier); attestations, checkpoints, status and trust lists.
DEFAULT_SKEW_SECONDS = 300


def to_epoch(value: Instant, *, field: str = "now") -> int:
    """Unix seconds of an aware datetime (or an int passed through)."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: must be a datetime or int")
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{field}: datetime must be timezone-aware")
    return int(value.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
