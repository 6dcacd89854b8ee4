"""Which of the node's tables a new scheme version leaves without coverage (C3, H11, H13).

A table maps FROM one exact version of the node's scheme (``node.exchange._mapping``):
once a rollout puts a new version in force, a table from the old version is no
longer used, and a request into its target scheme is refused
``SCHEME_VERSION_MISMATCH`` unless a table from the new version into that
target exists.  ``huxin model rollout`` prints :func:`uncovered` before the
activation, so the operator installs the new tables (and has them approved)
first.  Only an approved table from the new version covers its target: the mapper
never issues with an unapproved one (``MAPPING_NOT_APPROVED``), so such a table is
listed too, as "not approved".

Invariants: the node's tables are those of ``[mapping]`` (parsed, content hash
checked) and the installed ones not retired; a file that does not parse is
skipped here (the node would not start with it, and says why); nothing is
written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mapping import MappingError, table_from_document
from node.core._config import NodeConfig
from node.recognition._load import authorities_of, read_file
from node.recognition._verify import (
    MAX_APPROVAL_BYTES,
    MAX_TABLE_BYTES,
    TableRefused,
    open_approval_bytes,
    table_sha256,
)
from node.store import Connection, OperationalError
from node.store._mapping_tables import installed_rows

__all__ = ["TableRef", "node_tables", "uncovered"]


@dataclass(frozen=True, slots=True)
class TableRef:
    id: str
    version: str
    source: str  # id@version
    target: str  # id@version
    origin: str
    approved: bool = True  # an approval record opening under the node's authorities
    note: str = ""  # why :func:`uncovered` lists it ("" : its version leaves force)

    def to_json(self) -> dict[str, str | bool]:
        return {
            "id": self.id,
            "version": self.version,
            "source": self.source,
            "target": self.target,
            "origin": self.origin,
            "approved": self.approved,
            "note": self.note,
        }


def _approved_hashes(data: list[bytes | None], config: NodeConfig) -> set[bytes]:
    """Hashes of the tables the records in ``data`` approve, for those that open under the
    node's authorities (one that does not approves nothing)."""
    authorities = authorities_of(config)
    out: set[bytes] = set()
    for d in data:
        if d is None:
            continue
        try:
            out.add(bytes(open_approval_bytes(d, authorities).mapping_sha256))
        except TableRefused:
            continue
    return out


def node_tables(config: NodeConfig, conn: Connection) -> list[TableRef]:
    """The tables of ``[mapping]`` and the installed ones in use."""
    out: list[TableRef] = []
    records: list[bytes | None] = []
    for path in config.mapping.approvals:
        try:
            records.append(read_file(path, MAX_APPROVAL_BYTES))
        except TableRefused:
            continue
    from_config = _approved_hashes(records, config)
    for path in config.mapping.tables:
        try:
            t = table_from_document(read_file(path, MAX_TABLE_BYTES))
        except (MappingError, TableRefused):
            continue
        ok = table_sha256(t) in from_config
        out.append(TableRef(t.id, t.version, t.source.key, t.target.key, "config", ok))
    try:
        rows = installed_rows(conn)
    except OperationalError:  # a database older than migration 0014
        rows = []
    for r in rows:
        ok = bytes(r.table_sha256) in _approved_hashes([r.approval], config)
        out.append(
            TableRef(
                r.mapping_id, r.mapping_version, r.source_scheme, r.target_scheme, r.origin, ok
            )
        )
    return out


def uncovered(tables: list[TableRef], current: str, candidate: str) -> list[TableRef]:
    """Tables from ``current`` (``id@version``) into a target scheme no APPROVED table from
    ``candidate`` maps into (requests into those targets are refused once it is in force),
    then the unapproved tables from ``candidate``, noted "not approved" (they cover nothing
    until approved)."""
    covered = {t.target.partition("@")[0] for t in tables if t.source == candidate and t.approved}
    gaps = [t for t in tables if t.source == current and t.target.partition("@")[0] not in covered]
    pending = [
        replace(t, note="not approved") for t in tables if t.source == candidate and not t.approved
    ]
    return gaps + pending
