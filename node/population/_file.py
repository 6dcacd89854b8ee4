"""A department's CSV or JSONL file as wire messages, row by row (the source CLI's input).

File formats (README "Source CLI", docs/source-files.md):

* CSV: UTF-8, a header row naming the columns, one row per fact or record;
  a column that is absent or empty is an empty field;
* JSONL: one JSON object per line with the same keys (strings; ``flags`` may
  be a list); blank lines are skipped.

Columns: residence facts :data:`FACT_COLUMNS`; records :data:`RECORD_COLUMNS`
(``flags`` separated by ``;`` in CSV; the H10 legal-document reference as the
dotted columns ``legal_document.kind`` …, or in JSONL also as one
``legal_document`` object); organisation listings :data:`LISTING_COLUMNS`.
The node validates everything; this module only refuses what cannot become a
message (an unknown column, a line that is not a JSON object, a value that is
not a string, a free-text ``legal_document``: ``LEGAL_DOCUMENT_UNSTRUCTURED``)
as a :class:`RowProblem`.

Invariants: rows are read lazily (a city's file is never held in memory);
every row keeps its 1-based line number in the file; a problem's message
never contains a cell's value (it may be an ID number).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.pb.v1 import node_pb2, scoring_pb2

__all__ = [
    "FACT_COLUMNS",
    "KINDS",
    "LEGAL_DOCUMENT_COLUMNS",
    "LISTING_COLUMNS",
    "RECORD_COLUMNS",
    "Row",
    "RowProblem",
    "count_rows",
    "read_rows",
]

FACT_COLUMNS = ("subject_id", "kind", "residence_kind", "on")
RECORD_COLUMNS = (
    "record_id",
    "subject_id",
    "source",
    "category",
    "polarity",
    "act_id",
    "recognised_on",
    "valid_until",
    "level",
    "severity",
    "status",
    "provenance",
    "flags",
)
#: The parts of an H10 reference (``scoring_pb2.LegalDocument``), as record columns.
LEGAL_PARTS = ("kind", "number", "issuing_body", "issued_on", "organisation_code")
LEGAL_DOCUMENT_COLUMNS = tuple(f"legal_document.{p}" for p in LEGAL_PARTS)
LISTING_COLUMNS = ("listing_id", "organisation_code", "list", "event", "on")
KINDS = {
    "residence": FACT_COLUMNS,
    "records": (*RECORD_COLUMNS, *LEGAL_DOCUMENT_COLUMNS),
    "listings": LISTING_COLUMNS,
}
Message = node_pb2.ResidenceFact | scoring_pb2.CreditRecord | node_pb2.OrganisationListing
_UNSTRUCTURED = (
    "free text is not a legal-document reference: use the columns "
    f"{', '.join(LEGAL_DOCUMENT_COLUMNS)} (H10)"
)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row refused before or by the node: ``line`` in the file, the field, a reason."""

    line: int
    field: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    message: Message | None  # None: refused locally (``problem``)
    problem: RowProblem | None = None


def _flatten_legal(cells: dict[str, object], line: int) -> Row | None:
    """A JSONL ``legal_document`` object as its dotted columns, in place; a problem
    Row for free text or a non-object (None when all is well)."""
    doc = cells.pop("legal_document", None)
    if doc is None or doc == "":
        return None
    if isinstance(doc, str):
        return Row(line, None, RowProblem(line, "legal_document", "LEGAL_DOCUMENT_UNSTRUCTURED",
                                          _UNSTRUCTURED))  # fmt: skip
    if not isinstance(doc, dict):
        return Row(line, None, RowProblem(line, "legal_document", "INVALID_FIELD",
                                          "must be an object of its parts"))  # fmt: skip
    for part, value in doc.items():
        cells[f"legal_document.{part}"] = value
    return None


def _message(kind: str, cells: dict[str, object], line: int) -> Row:
    columns = KINDS[kind]
    if kind == "records" and "legal_document" in cells:
        bad = _flatten_legal(cells, line)
        if bad is not None:
            return bad
    unknown = sorted(k for k in cells if k not in columns)
    if unknown:
        return Row(line, None, RowProblem(line, unknown[0][:48], "UNKNOWN_COLUMN",
                                          f"columns are {list(columns)}"))  # fmt: skip
    values: dict[str, str] = {}
    flags: list[str] = []
    for key, value in cells.items():
        if value is None or value == "":
            continue
        if key == "flags" and isinstance(value, list) and all(isinstance(f, str) for f in value):
            flags = list(value)
            continue
        if not isinstance(value, str):
            return Row(line, None, RowProblem(line, key, "INVALID_FIELD", "must be a string"))
        if key == "flags":
            flags = [f for f in value.split(";") if f]
        else:
            values[key] = value
    if kind == "residence":
        return Row(line, node_pb2.ResidenceFact(**values))
    if kind == "listings":
        return Row(line, node_pb2.OrganisationListing(**values))
    legal = {k.partition(".")[2]: values.pop(k) for k in LEGAL_DOCUMENT_COLUMNS if k in values}
    text: dict[str, Any] = values  # the record's string fields (the reference is a message)
    record = scoring_pb2.CreditRecord(**text, flags=flags)
    if legal:
        record.legal_document.CopyFrom(scoring_pb2.LegalDocument(**legal))
    return Row(line, record)


def _csv_rows(path: Path, kind: str) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for cells in reader:
            line = reader.line_num
            extra = cells.pop(None, None)
            if extra:
                yield Row(
                    line, None, RowProblem(line, "", "INVALID_ROW", "more cells than columns")
                )
                continue
            yield _message(kind, {k: v for k, v in cells.items() if k is not None}, line)


def _jsonl_rows(path: Path, kind: str) -> Iterator[Row]:
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                cells = json.loads(text)
            except ValueError:
                yield Row(line, None, RowProblem(line, "", "INVALID_ROW", "not a JSON object"))
                continue
            if not isinstance(cells, dict):
                yield Row(line, None, RowProblem(line, "", "INVALID_ROW", "not a JSON object"))
                continue
            yield _message(kind, cells, line)


def read_rows(path: Path, kind: str) -> Iterator[Row]:
    """The file's rows in order (``.jsonl``/``.ndjson``: JSONL, anything else: CSV)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _jsonl_rows(path, kind)
    return _csv_rows(path, kind)


def count_rows(path: Path) -> int:
    """Data rows in the file, for the progress bar (lines; the CSV header excluded)."""
    with path.open("rb") as f:
        lines = sum(1 for text in f if text.strip())
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    return lines if jsonl else max(lines - 1, 0)
