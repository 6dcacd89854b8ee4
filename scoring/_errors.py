"""The scoring package's error tree: one base, one class per boundary.

Every error names the offending field and carries a stable ``code`` that the
node maps to a gRPC status and the CLI prints; messages are for people.
Messages never contain a citizen ID number.
"""

from __future__ import annotations

__all__ = ["CatalogueError", "RecordError", "SchemeError", "ScoringError"]


class ScoringError(Exception):
    """Base of every error raised by :mod:`scoring`."""

    code: str = "SCORING_ERROR"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        self.field = field
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}")
        self.message = message


class SchemeError(ScoringError):
    """A scheme file is malformed or inconsistent; ``field`` is its dotted path."""

    code = "INVALID_SCHEME"


class RecordError(ScoringError):
    """A credit record is refused at intake; nothing of it is stored.

    ``code`` is one of: ``MISSING_FIELD``, ``INVALID_FIELD``, ``INVALID_ID_NUMBER``,
    ``UNKNOWN_CATEGORY``, ``FORBIDDEN_CATEGORY``, ``POLARITY_MISMATCH``,
    ``FUTURE_RECOGNITION``, ``INVALID_VALIDITY``, ``UNKNOWN_LEVEL``,
    ``UNKNOWN_SEVERITY``, ``PROVENANCE_NOT_ALLOWED``, ``UNKNOWN_FLAG``,
    ``TOO_MANY_ITEMS``; for H10 legal-document references
    ``LEGAL_DOCUMENT_REQUIRED``, ``LEGAL_DOCUMENT_UNSTRUCTURED``,
    ``LEGAL_DOCUMENT_NOT_APPLICABLE``, ``UNKNOWN_DOCUMENT_KIND``,
    ``INVALID_DOCUMENT_NUMBER``, ``FUTURE_DOCUMENT_DATE``,
    ``DOCUMENT_AFTER_RECOGNITION``, ``INVALID_ORGANISATION_CODE``.
    """

    code = "INVALID_RECORD"

    def __init__(self, field: str, message: str, *, code: str, index: int | None = None) -> None:
        super().__init__(field, message, code=code)
        self.index = index


class CatalogueError(ScoringError):
    """A catalogue publication (its version, date or application guide) is refused;
    ``field`` is the dotted path inside the guide or the publication."""

    code = "INVALID_CATALOGUE"
