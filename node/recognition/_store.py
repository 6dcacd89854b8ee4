"""Storage of the mapping tables installed on the node and their approvals (migration 0014).

Every function takes an open ``sqlite3`` connection; writes run inside the
caller's transaction (a unit of work of :class:`node.store._db.Database`, or the CLI's
own ``BEGIN IMMEDIATE``).  Nothing here verifies or decides anything: rows are
written only after :mod:`node.recognition._verify` accepted them, and read rows
are verified again before use.

Invariants: rows are never deleted (a retired table keeps its row, content and
approval for audit); every install or retire adds 1 to ``mapping_generation``
in the same transaction, so a running node re-reads the tables exactly when
they changed (:func:`generation`); at most :data:`MAX_INSTALLED` rows are read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "MAX_INSTALLED",
    "InstalledRow",
    "generation",
    "install_row",
    "installed_rows",
    "retire_rows",
]

#: Installed tables a node reads (retired included); more is refused at install.
MAX_INSTALLED = 256

_COLUMNS = (
    "table_sha256, mapping_id, mapping_version, method, source_scheme, target_scheme,"
    " content, approval, origin, installed_at, retired_at"
)


@dataclass(frozen=True, slots=True)
class InstalledRow:
    table_sha256: bytes
    mapping_id: str
    mapping_version: str
    method: str
    source_scheme: str  # id@version
    target_scheme: str  # id@version
    content: bytes  # the table document as verified at install
    approval: bytes | None  # serialized Envelope of a MappingApproval; None = not approved
    origin: str  # "file" | "peer:<region>"
    installed_at: str
    retired_at: str | None = None


def _row(r: sqlite3.Row | tuple[object, ...]) -> InstalledRow:
    return InstalledRow(
        bytes(r[0]),  # type: ignore[arg-type]
        str(r[1]),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        bytes(r[6]),  # type: ignore[arg-type]
        None if r[7] is None else bytes(r[7]),  # type: ignore[arg-type]
        str(r[8]),
        str(r[9]),
        None if r[10] is None else str(r[10]),
    )


def _bump(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE mapping_generation SET generation = generation + 1 WHERE id = 1")
    return generation(conn)


def generation(conn: sqlite3.Connection) -> int:
    """The number of installs and retirements made so far (0 on a fresh database)."""
    row = conn.execute("SELECT generation FROM mapping_generation WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def installed_rows(conn: sqlite3.Connection, *, retired: bool = False) -> list[InstalledRow]:
    """Installed tables, oldest first; retired ones only with ``retired``."""
    where = "" if retired else " WHERE retired_at IS NULL"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM mapping_tables{where} ORDER BY installed_at, table_sha256 LIMIT ?",
        (MAX_INSTALLED,),
    ).fetchall()
    return [_row(r) for r in rows]


def install_row(conn: sqlite3.Connection, row: InstalledRow) -> int:
    """Insert ``row`` (or put a retired or re-approved table of the same hash back in use,
    with the new approval when one is given); returns the new generation.

    ``TOO_MANY_TABLES`` (ValueError) when :data:`MAX_INSTALLED` rows exist already."""
    known = conn.execute(
        "SELECT approval FROM mapping_tables WHERE table_sha256 = ?", (row.table_sha256,)
    ).fetchone()
    if known is None:
        (count,) = conn.execute("SELECT count(*) FROM mapping_tables").fetchone()
        if count >= MAX_INSTALLED:
            raise ValueError(f"TOO_MANY_TABLES: at most {MAX_INSTALLED} tables are installed")
        conn.execute(
            f"INSERT INTO mapping_tables ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                row.table_sha256,
                row.mapping_id,
                row.mapping_version,
                row.method,
                row.source_scheme,
                row.target_scheme,
                row.content,
                row.approval,
                row.origin,
                row.installed_at,
            ),
        )
    else:
        conn.execute(
            "UPDATE mapping_tables SET approval = coalesce(?, approval), origin = ?,"
            " installed_at = ?, retired_at = NULL WHERE table_sha256 = ?",
            (row.approval, row.origin, row.installed_at, row.table_sha256),
        )
    return _bump(conn)


def retire_rows(conn: sqlite3.Connection, hash_or_id: bytes | str, now_iso: str) -> list[str]:
    """Retire the tables in use with this content hash (32 bytes) or mapping id; returns
    the ``id@version`` of each retired one (empty: nothing matched, generation kept)."""
    column = "table_sha256" if isinstance(hash_or_id, bytes) else "mapping_id"
    hits = conn.execute(
        f"SELECT mapping_id, mapping_version FROM mapping_tables"
        f" WHERE {column} = ? AND retired_at IS NULL",
        (hash_or_id,),
    ).fetchall()
    if not hits:
        return []
    conn.execute(
        f"UPDATE mapping_tables SET retired_at = ? WHERE {column} = ? AND retired_at IS NULL",
        (now_iso, hash_or_id),
    )
    _bump(conn)
    return [f"{h[0]}@{h[1]}" for h in hits]
