"""Mapping: grade mapping tables between score schemes, with their invariants (pure).

A :class:`MappingTable` maps every grade of one scheme to a grade of another
(or, in an *incentive-tier* table, leaves the grades below the source's
incentive tier *not recognised*); it is made by a signed bilateral agreement
(:func:`agreement_table`), by anchored alignment of the two scheme files
(:func:`anchored_table`) or by equipercentile linking of signed aggregate
histograms (:func:`equipercentile_table`), and must pass every invariant in
:data:`INVARIANTS` — clean-record parity included — (:func:`check_table`,
:func:`require_valid`) before it is signed or used.  :func:`incentive_reach`
measures how many of the source's incentive-eligible residents a table keeps
eligible, and :func:`require_reach` refuses a table below a floor;
:func:`approval_for` builds the approval record (批准或备案, H13) of a table
that passes both.  Tables are
cited by :attr:`MappingTable.content_hash`.  :func:`most_conservative`
combines direct and pivot routes; :func:`map_score` maps a disclosed score.
No I/O beyond reading the published tables shipped in ``mapping.tables``.
Errors derive from :class:`MappingError` and carry a stable ``code``.
"""

from ._agreement import RegionKeys, agreement_table, sign_table, verify_table
from ._anchored import (
    REFERENCE,
    ReferenceScale,
    ScoreMapping,
    anchored_bound,
    anchored_grades,
    anchored_table,
    anchors,
    map_score,
    score_map,
)
from ._approval import DECISIONS, approval_for, day_start
from ._canonical import canonical, content_hash, strict_loads
from ._compose import Recognition, Route, compose, find_routes, most_conservative
from ._equipercentile import (
    DEFAULT_MIN_POPULATION,
    GradeHistogram,
    check_histogram,
    equipercentile_bound,
    equipercentile_table,
    histogram_from_json,
)
from ._errors import (
    HistogramError,
    InvariantError,
    MappingError,
    NotRecognisedError,
    ReachError,
    SignatureError,
    TableError,
    ValidityError,
    Violation,
)
from ._fair import PARITY
from ._invariants import (
    INVARIANTS,
    check_set,
    check_table,
    reference_bound,
    require_valid,
    reverse_bound,
)
from ._published import (
    build_published,
    load_schemes,
    published_file_name,
    published_table,
    published_tables,
)
from ._reach import (
    DEFAULT_MIN_REACH,
    IncentiveReach,
    ReferencePopulation,
    incentive_reach,
    parse_floor,
    reference_population,
    require_reach,
)
from ._signing import HISTOGRAM_TYPE, TABLE_TYPE, Signature, key_id, pae, sign_bytes
from ._table import (
    FORMAT,
    INCENTIVE_TIER_SCOPE,
    MappingTable,
    Method,
    SchemeRef,
    check_validity,
    table_from_content,
    table_from_document,
)

__all__ = [
    "DECISIONS",
    "DEFAULT_MIN_POPULATION",
    "DEFAULT_MIN_REACH",
    "FORMAT",
    "HISTOGRAM_TYPE",
    "INCENTIVE_TIER_SCOPE",
    "INVARIANTS",
    "PARITY",
    "REFERENCE",
    "TABLE_TYPE",
    "GradeHistogram",
    "HistogramError",
    "IncentiveReach",
    "InvariantError",
    "MappingError",
    "MappingTable",
    "Method",
    "NotRecognisedError",
    "ReachError",
    "Recognition",
    "ReferencePopulation",
    "ReferenceScale",
    "RegionKeys",
    "Route",
    "SchemeRef",
    "ScoreMapping",
    "Signature",
    "SignatureError",
    "TableError",
    "ValidityError",
    "Violation",
    "agreement_table",
    "anchored_bound",
    "anchored_grades",
    "anchored_table",
    "anchors",
    "approval_for",
    "build_published",
    "canonical",
    "check_histogram",
    "check_set",
    "check_table",
    "check_validity",
    "compose",
    "content_hash",
    "day_start",
    "equipercentile_bound",
    "equipercentile_table",
    "find_routes",
    "histogram_from_json",
    "incentive_reach",
    "key_id",
    "load_schemes",
    "map_score",
    "most_conservative",
    "pae",
    "parse_floor",
    "published_file_name",
    "published_table",
    "published_tables",
    "reference_bound",
    "reference_population",
    "require_reach",
    "require_valid",
    "reverse_bound",
    "score_map",
    "sign_bytes",
    "sign_table",
    "strict_loads",
    "table_from_content",
    "table_from_document",
    "verify_table",
]
