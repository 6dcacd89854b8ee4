"""Grade mapping for attestations: native grade → a target scheme's grade.

Invariants: only tables that ``mapping`` loaded and hash-checked are used
(the published set shipped with the project, plus any configured later); a
table must be in force on the day of issue (``mapping.check_validity``); the
attestation cites the table's id, version, content hash and method, and the
native grade always travels next to the mapped one.  No table → the request
is refused (``MAPPING_UNAVAILABLE``), never answered with a guess; the error
echoes at most ``ECHO_MAX`` characters of the caller's target scheme.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from keys import MappedGrade
from mapping import MappingError, MappingTable, check_validity, published_tables
from node.core._errors import FailedPreconditionError, NotFoundError
from node.pb.v1 import node_pb2

__all__ = ["Mapper", "table_blob"]

HASH_PREFIX = "sha256:"
ECHO_MAX = 64  # characters of a caller-supplied scheme id shown in an error


def _hash_bytes(table: MappingTable) -> bytes:
    h = table.content_hash
    return bytes.fromhex(h[len(HASH_PREFIX) :] if h.startswith(HASH_PREFIX) else h)


def table_blob(table: MappingTable) -> node_pb2.MappingTableBlob:
    return node_pb2.MappingTableBlob(
        id=table.id,
        version=table.version,
        source_scheme=table.source.key,
        target_scheme=table.target.key,
        method=table.method.value,
        content=table.to_json_bytes(),
        sha256=_hash_bytes(table),
    )


def _unusable(exc: MappingError) -> FailedPreconditionError:
    return FailedPreconditionError(
        "MAPPING_UNAVAILABLE", f"mapping table not usable ({exc.code})", field="target_scheme"
    )


class Mapper:
    """Tables from one source scheme, indexed by target scheme id."""

    def __init__(self, source_scheme: str, tables: Iterable[MappingTable] | None = None) -> None:
        self._source = source_scheme
        self._tables: dict[str, MappingTable] | None = (
            None if tables is None else self._index(tables)
        )

    def _index(self, tables: Iterable[MappingTable]) -> dict[str, MappingTable]:
        return {t.target.scheme: t for t in tables if t.source.scheme == self._source}

    def tables(self) -> list[MappingTable]:
        if self._tables is None:
            self._tables = self._index(published_tables())
        return list(self._tables.values())

    def usable(self, target_scheme: str, today: date) -> MappingTable:
        """The table into ``target_scheme`` in force on ``today``; ``MAPPING_UNAVAILABLE``
        otherwise.  Decided from the table alone, never from a person's grade."""
        self.tables()
        assert self._tables is not None
        table = self._tables.get(target_scheme)
        if table is None:
            # The target is the caller's string: echo at most ECHO_MAX characters of it.
            shown = target_scheme[:ECHO_MAX] + ("..." if len(target_scheme) > ECHO_MAX else "")
            raise NotFoundError(
                "MAPPING_UNAVAILABLE",
                f"no mapping table from {self._source!r} to {shown!r}",
                field="target_scheme",
            )
        try:
            check_validity(table, today)
        except MappingError as exc:
            raise _unusable(exc) from None
        return table

    def map(self, grade: str, target_scheme: str, today: date) -> MappedGrade:
        table = self.usable(target_scheme, today)
        try:
            mapped = table.map(grade)
        except MappingError as exc:
            raise _unusable(exc) from None
        return MappedGrade(
            grade=mapped,
            scheme_id=table.target.scheme,
            scheme_version=table.target.version,
            mapping_id=table.id,
            mapping_version=table.version,
            mapping_sha256=_hash_bytes(table),
            method=table.method.value,
        )
