"""The mapping package's error tree: one base, a few subclasses, stable codes.

Every error carries a stable ``code`` (the CLI prints it, the node maps it to a
gRPC status) and names the offending field.  :class:`InvariantError` also names
the invariant that failed and the grades that break it.  Messages never carry
personal data (mapping only ever sees schemes, grades, scores and aggregate
counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HistogramError",
    "InvariantError",
    "MappingError",
    "NotRecognisedError",
    "ReachError",
    "SignatureError",
    "TableError",
    "ValidityError",
    "Violation",
]


class MappingError(Exception):
    """Base of every error raised by :mod:`mapping`."""

    code: str = "MAPPING_ERROR"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        self.field = field
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(f"{field}: {message}")


class TableError(MappingError):
    """A table or request is malformed or refers to something unknown.

    Codes: ``MALFORMED_TABLE``, ``UNKNOWN_SCHEME``, ``UNKNOWN_GRADE``,
    ``SCHEME_MISMATCH``, ``SCHEME_VERSION_MISMATCH``, ``HASH_MISMATCH``,
    ``SCORE_OUT_OF_RANGE``, ``NO_ROUTE``, ``UNKNOWN_METHOD``, ``BAD_DECISION``,
    ``BAD_EFFECTIVE_FROM`` (an approval record, ``_approval``).
    """

    code = "MALFORMED_TABLE"


class SignatureError(MappingError):
    """A signature is missing, unknown or wrong; fail closed.

    Codes: ``BAD_SIGNATURE``, ``UNKNOWN_KEY``, ``MISSING_PARTY_SIGNATURE`` (an
    agreement or histogram lacks a valid signature by a required region).
    """

    code = "BAD_SIGNATURE"


class ValidityError(MappingError):
    """A table is used outside its validity: ``TABLE_NOT_YET_EFFECTIVE``, ``TABLE_EXPIRED``."""

    code = "TABLE_EXPIRED"


class NotRecognisedError(MappingError):
    """The table (or route) carries no grade for this source grade: ``NOT_RECOGNISED``.

    Only an incentive-tier table says this, and only for grades below the
    source's incentive tier: recognition then unlocks nothing and carries no
    low grade into the target region (ADR 0203).  Not a fault of the table.
    """

    code = "NOT_RECOGNISED"


class ReachError(MappingError):
    """A table keeps too few of the source's incentive-eligible residents eligible.

    Code ``INCENTIVE_REACH_TOO_LOW``; ``reach`` is the measured
    :class:`mapping.IncentiveReach` (the figure is also in the message).  Also
    ``REFERENCE_MISMATCH`` / ``BAD_FLOOR`` for an unusable reference population or
    floor (ADR 0202).
    """

    code = "INCENTIVE_REACH_TOO_LOW"

    def __init__(
        self, field: str, message: str, *, code: str | None = None, reach: object = None
    ) -> None:
        super().__init__(field, message, code=code)
        self.reach = reach


class HistogramError(MappingError):
    """A grade histogram is unusable.

    Codes: ``MALFORMED_HISTOGRAM``, ``POPULATION_TOO_SMALL``, ``HISTOGRAM_SCHEME_MISMATCH``.
    """

    code = "MALFORMED_HISTOGRAM"


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its name, the grades involved, and why."""

    invariant: str
    grades: tuple[str, ...]
    detail: str


class InvariantError(MappingError):
    """A table fails one or more invariants; it must not be signed or used.

    ``code`` is ``INVARIANT_<NAME>`` for the first violation (e.g.
    ``INVARIANT_MONOTONE``); ``invariant`` and ``grades`` describe it and
    ``violations`` lists all of them.
    """

    code = "INVARIANT_VIOLATED"

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("InvariantError needs at least one violation")
        first = violations[0]
        self.violations = tuple(violations)
        self.invariant = first.invariant
        self.grades = first.grades
        more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(
            "grades",
            f"{first.invariant} fails for {', '.join(first.grades)}: {first.detail}{more}",
            code=f"INVARIANT_{first.invariant.upper()}",
        )
