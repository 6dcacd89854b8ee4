"""Scoring: score schemes as data and the pure scoring engine.

No I/O beyond reading the scheme files shipped in this package; no network, no
database (enforced by ``tools/check_imports.py``).  Errors derive from
:class:`ScoringError` and name the offending field.
"""

from ._engine import (
    Contribution,
    ContributionStatus,
    RecordLike,
    ScoreResult,
    eligibility_problem,
    score,
)
from ._errors import RecordError, SchemeError, ScoringError
from ._idnumber import birth_date, check_character, normalise_id_number
from ._records import (
    CreditRecord,
    RecordStatus,
    Residence,
    Subject,
    validate_batch,
    validate_record,
)
from ._scheme import (
    FORBIDDEN_CATEGORIES,
    Category,
    Eligibility,
    Polarity,
    Provenance,
    ResidenceRule,
    Scheme,
    SeverityBand,
    Tier,
    add_months,
    list_schemes,
    load_scheme,
    parse_scheme,
    parse_scheme_toml,
)

__all__ = [
    "FORBIDDEN_CATEGORIES",
    "Category",
    "Contribution",
    "ContributionStatus",
    "CreditRecord",
    "Eligibility",
    "Polarity",
    "Provenance",
    "RecordError",
    "RecordLike",
    "RecordStatus",
    "Residence",
    "ResidenceRule",
    "Scheme",
    "SchemeError",
    "ScoreResult",
    "ScoringError",
    "SeverityBand",
    "Subject",
    "Tier",
    "add_months",
    "birth_date",
    "check_character",
    "eligibility_problem",
    "list_schemes",
    "load_scheme",
    "normalise_id_number",
    "parse_scheme",
    "parse_scheme_toml",
    "score",
    "validate_batch",
    "validate_record",
]
