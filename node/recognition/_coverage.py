"""Which of the node's tables a new scheme version leaves without coverage (C3, H11, H13).

A table maps FROM one exact version of the node's scheme (``node.exchange._mapping``):
once a rollout puts a new version in force, a table from the old version is no
longer used, and a request into its target scheme is refused
``SCHEME_VERSION_MISMATCH`` unless a table from the new version into that
target exists.  ``huxin model rollout`` prints :func:`uncovered` before the
activation, so the operator installs the new tables (and has them approved)
first.

Invariants: the node's tables are those of ``[mapping]`` (parsed, content hash
checked) and the installed ones not retired; a file that does not parse is
skipped here (the node would not start with it, and says why); nothing is
written.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from mapping import MappingError, table_from_document
from node.core._config import NodeConfig
from node.recognition._load import read_file
from node.recognition._store import installed_rows
from node.recognition._verify import MAX_TABLE_BYTES, TableRefused

__all__ = ["TableRef", "node_tables", "uncovered"]


@dataclass(frozen=True, slots=True)
class TableRef:
    id: str
    version: str
    source: str  # id@version
    target: str  # id@version
    origin: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "version": self.version,
            "source": self.source,
            "target": self.target,
            "origin": self.origin,
        }


def node_tables(config: NodeConfig, conn: sqlite3.Connection) -> list[TableRef]:
    """The tables of ``[mapping]`` and the installed ones in use."""
    out: list[TableRef] = []
    for path in config.mapping.tables:
        try:
            t = table_from_document(read_file(path, MAX_TABLE_BYTES))
        except (MappingError, TableRefused):
            continue
        out.append(TableRef(t.id, t.version, t.source.key, t.target.key, "config"))
    try:
        rows = installed_rows(conn)
    except sqlite3.OperationalError:  # a database older than migration 0014
        rows = []
    out.extend(
        TableRef(r.mapping_id, r.mapping_version, r.source_scheme, r.target_scheme, r.origin)
        for r in rows
    )
    return out


def uncovered(tables: list[TableRef], current: str, candidate: str) -> list[TableRef]:
    """Tables from ``current`` (``id@version``) into a target scheme no table from
    ``candidate`` maps into: requests into those targets are refused once it is in force."""
    covered = {t.target.partition("@")[0] for t in tables if t.source == candidate}
    return [t for t in tables if t.source == current and t.target.partition("@")[0] not in covered]
