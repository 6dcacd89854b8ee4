"""Checking a ``pg_dump`` of a node's PostgreSQL database against Huxin's schema.

On PostgreSQL the database's own tools take the backups (``pg_dump``, or a base
backup with ``pg_basebackup`` and WAL archiving); ``huxin backup verify`` still
checks what it can of a dump (issue 18):

* the archive is complete: a plain SQL dump ends with pg_dump's ``-- PostgreSQL
  database dump complete`` line; a custom, directory or tar archive is read through
  by ``pg_restore`` (every data block decompressed, to ``/dev/null``);
* every table of Huxin's schema is in it, with every column, and with its data
  section (a schema-only dump restores no node); partitions and other extra tables
  are allowed;
* the ``schema_version`` the dump carries is this build's, or older (a restore
  migrates it); a newer one is refused, as the node itself refuses it.

The schema is this build's own: the tables and columns of a database migrated from
scratch (the PostgreSQL migrations keep the same tables and columns as SQLite's, a
unit test holds them equal), so no list is kept by hand.

Invariants: verification fails closed (a check it cannot make is an error naming
it, never a pass); it never connects to a database and never runs a dump's SQL;
it reads a plain dump line by line (a dump of tens of gigabytes is fine); no
row content is printed, only table names and counts of tables.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from node.store._migrate import SCHEMA_VERSION, StorageError, connect

__all__ = [
    "DumpCheck",
    "DumpError",
    "dump_format",
    "expected_schema",
    "pg_tool",
    "verify_dump",
]

_PLAIN_END = "-- PostgreSQL database dump complete"
_CREATE = re.compile(r'^CREATE (?:UNLOGGED )?TABLE (?:ONLY )?(?:"?[\w]+"?\.)?"?(\w+)"? \($')
_PARTITION_OF = re.compile(
    r'^CREATE TABLE (?:"?\w+"?\.)?"?(\w+)"? PARTITION OF (?:"?\w+"?\.)?"?(\w+)"?'
)
# pg_dump writes a partition as its own table, then attaches it
_ATTACH = re.compile(
    r'^ALTER TABLE ONLY (?:"?\w+"?\.)?"?(\w+)"? ATTACH PARTITION (?:"?\w+"?\.)?"?(\w+)"? '
)
_COPY = re.compile(r'^COPY (?:"?[\w]+"?\.)?"?(\w+)"? \(.*\) FROM stdin;$')
_TOC_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")
_COLUMN = re.compile(r'^\s+"?(\w+)"? ')
_NOT_COLUMNS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE"}
_TOOL_TIMEOUT_S = 3600  # reading a big archive through takes a while; a hung tool does not


class DumpError(StorageError):
    """A dump that fails a check (``BACKUP_CORRUPT``, ``BACKUP_SCHEMA_MISMATCH``,
    ``BACKUP_SCHEMA_TOO_NEW``) or that cannot be checked (``BACKUP_TOOL_MISSING``)."""


@dataclass
class DumpCheck:
    """What :func:`verify_dump` found in a dump that passed."""

    path: Path
    format: str  # plain | custom | directory | tar
    schema_version: int
    tables: int  # Huxin's tables found (all of them)
    extra_tables: list[str] = field(default_factory=list)  # partitions and others


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client tool (``pg_restore``): on ``PATH`` or in
    Debian's ``/usr/lib/postgresql/*/bin``; ``BACKUP_TOOL_MISSING`` otherwise."""
    found = shutil.which(name)
    if found:
        return found
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / name).exists():
            return str(bindir / name)
    raise DumpError(
        "BACKUP_TOOL_MISSING",
        f"{name} is needed to read this dump: install the PostgreSQL client tools",
    )


def expected_schema() -> dict[str, list[str]]:
    """Huxin's tables and their columns at :data:`SCHEMA_VERSION`: those of a database
    migrated from scratch (the PostgreSQL migrations keep the same tables and columns)."""
    with tempfile.TemporaryDirectory(prefix="huxin-schema-") as tmp:
        conn = connect(Path(tmp) / "schema.db")
        try:
            names = [
                n
                for (n,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            return {n: [r[1] for r in conn.execute(f"PRAGMA table_info({n})")] for n in names}
        finally:
            conn.close()


def _format(path: Path) -> str:
    if path.is_dir():
        if (path / "toc.dat").exists():
            return "directory"
        raise DumpError("BACKUP_CORRUPT", f"{path} is a directory without pg_dump's toc.dat")
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise DumpError("BACKUP_CORRUPT", f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(b"PGDMP"):
        return "custom"
    if head[257:262] == b"ustar":
        return "tar"
    if b"PostgreSQL database dump" in head:
        return "plain"
    raise DumpError(
        "BACKUP_CORRUPT",
        f"{path} is neither a Huxin SQLite backup nor a pg_dump archive (plain, custom,"
        " directory or tar)",
    )


def dump_format(path: Path) -> str | None:
    """``plain``/``custom``/``directory``/``tar`` when ``path`` looks like a pg_dump,
    else None (a Huxin SQLite backup, or nothing readable)."""
    try:
        return _format(path)
    except DumpError:
        return None


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=_TOOL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise DumpError("BACKUP_CORRUPT", f"{what}: pg_restore did not finish") from None
    if done.returncode != 0:
        detail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise DumpError("BACKUP_CORRUPT", f"{what}: {detail}")
    return done.stdout


def _scan(
    lines: Iterable[str],
) -> tuple[dict[str, list[str]], dict[str, str], set[str], int | None]:
    """(tables with their columns, partition -> parent, tables with data, schema
    version) of a plain SQL text; the version from the ``schema_version`` COPY block."""
    tables: dict[str, list[str]] = {}
    partitions: dict[str, str] = {}
    data: set[str] = set()
    version: int | None = None
    current: str | None = None
    copying: str | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        if copying is not None:
            if line == "\\.":
                copying = None
            elif copying == "schema_version" and line.strip().isdigit():
                version = max(version or 0, int(line.strip()))
            continue
        if current is not None:
            if line.startswith(")"):
                current = None
                continue
            m = _COLUMN.match(line)
            if m and m[1].upper() not in _NOT_COLUMNS:
                tables[current].append(m[1])
            continue
        if m := _CREATE.match(line):
            current = m[1]
            tables[current] = []
        elif (m := _PARTITION_OF.match(line)) or (m := _ATTACH.match(line)):
            child, parent = (m[1], m[2]) if line.startswith("CREATE") else (m[2], m[1])
            partitions[child] = parent
        elif m := _COPY.match(line):
            copying = m[1]
            data.add(m[1])
    return tables, partitions, data, version


def _plain_lines(path: Path, ended: list[bool]) -> Iterator[str]:
    complete = False
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if text == _PLAIN_END:
                complete = True
            elif text and text != "--" and not text.startswith("\\unrestrict "):
                # after the end line pg_dump writes only comments and (15.14+) the
                # \unrestrict that closes its \restrict guard
                complete = False
            yield line
    ended.append(complete)


def verify_dump(path: Path) -> DumpCheck:
    """Check the pg_dump at ``path`` against this build's schema; :class:`DumpError` names
    the first check that fails."""
    fmt = _format(path)
    if fmt == "plain":
        ended: list[bool] = []
        tables, partitions, data, version = _scan(_plain_lines(path, ended))
        if not ended or not ended[0]:
            raise DumpError(
                "BACKUP_CORRUPT", f"{path} is cut short: no '{_PLAIN_END}' line at its end"
            )
    else:
        restore = pg_tool("pg_restore")
        toc = _run([restore, "--list", str(path)], f"{path} table of contents")
        _run([restore, "-f", "/dev/null", str(path)], f"{path} read through")
        schema = _run([restore, "--schema-only", "-f", "-", str(path)], f"{path} schema")
        tables, partitions, _data, _v = _scan(schema.splitlines())
        data = {m[2] for line in toc.splitlines() if (m := _TOC_DATA.match(line))}
        versions = _run(
            [restore, "--data-only", "-t", "schema_version", "-f", "-", str(path)],
            f"{path} schema_version",
        )
        version = _scan(versions.splitlines())[3]
    return _compare(path, fmt, tables, partitions, data, version)


def _compare(  # noqa: PLR0917 - the scan's findings, one each
    path: Path,
    fmt: str,
    tables: dict[str, list[str]],
    partitions: dict[str, str],
    data: set[str],
    version: int | None,
) -> DumpCheck:
    if "schema_version" in tables and "schema_version" not in data:
        raise DumpError(
            "BACKUP_CORRUPT",
            f"{path} has no data for schema_version: a schema-only dump restores no node",
        )
    if version is None:
        raise DumpError(
            "BACKUP_SCHEMA_MISMATCH", f"{path} holds no schema_version row: not a Huxin database"
        )
    if version > SCHEMA_VERSION:
        raise DumpError(
            "BACKUP_SCHEMA_TOO_NEW",
            f"{path} is of schema {version}, newer than this build's {SCHEMA_VERSION}",
        )
    expected = expected_schema()
    missing = sorted(set(expected) - set(tables))
    if missing and version == SCHEMA_VERSION:
        raise DumpError(
            "BACKUP_SCHEMA_MISMATCH", f"{path} lacks Huxin's tables: {', '.join(missing[:10])}"
        )
    if version == SCHEMA_VERSION:
        for name, columns in expected.items():
            absent = [c for c in columns if c not in tables[name]]
            if absent:
                raise DumpError(
                    "BACKUP_SCHEMA_MISMATCH",
                    f"{path}: table {name} lacks columns {', '.join(absent)}",
                )
    # a partitioned table's rows are in its partitions' data sections
    parents_with_data = (set(tables) & data) | {
        parent for child, parent in partitions.items() if child in data
    }
    no_data = sorted(t for t in set(expected) & set(tables) if t not in parents_with_data)
    if no_data:
        raise DumpError(
            "BACKUP_CORRUPT",
            f"{path} has no data for {', '.join(no_data[:10])}: a schema-only dump restores"
            " no node",
        )
    extra = sorted((set(tables) | set(partitions)) - set(expected) - {"schema_version"})
    return DumpCheck(path, fmt, version, len(set(expected) & set(tables)), extra)
