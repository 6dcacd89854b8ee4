"""CLI: ``huxin backup create|verify|restore`` — a node database's backups.

On a PostgreSQL node (``[storage] url``, issue 18) ``create`` and ``restore``
print how to back up with the database's own tools (``pg_dump``, base backups)
and what to keep beside it, and exit 2 having written nothing; ``verify`` also
checks a ``pg_dump`` archive against Huxin's schema
(:mod:`node.store._pg_dump`).

``create`` copies the database of a node (running or not) to a new file with a
manifest; ``verify`` checks a backup against its manifest and SQLite's own
checks; ``restore`` puts a verified backup of the same node in place of a
stopped node's database, keeping the replaced one aside, and fails closed on
what the backup cannot know (open consents withdrawn, later status indexes
revoked).  See
:mod:`node.store._backup` for the guarantees, README "Operating a node" for the
runbook.  Exit codes: 0 done, 1 a backup that fails verification, 2 bad input
(or a node that is still running).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from node.cli._main import CliError, SubParsers, subgroup
from node.core._config import ConfigError, NodeConfig, load_config
from node.core._secrets import read_hex
from node.store._backup import (
    STATUS_GAP,
    BackupError,
    Manifest,
    create_backup,
    restore_backup,
    verify_backup,
)
from node.store._pg_dump import DumpError, dump_format, verify_dump

__all__ = ["register"]

_FAILED_CHECKS = {
    "BACKUP_CORRUPT",
    "BACKUP_DIGEST_MISMATCH",
    "BACKUP_MANIFEST_INVALID",
    "BACKUP_SCHEMA_MISMATCH",
    "BACKUP_SCHEMA_TOO_NEW",
}


def register(sub: SubParsers) -> None:
    group = subgroup(sub, "backup", "back up, verify and restore a node's database")
    p = group.add_parser("create", help="copy a node's database (it may be serving) to FILE")
    p.add_argument("--config", required=True, type=Path, metavar="TOML")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_create)
    p = group.add_parser(
        "verify", help="check a backup against its manifest, or a pg_dump against the schema"
    )
    p.add_argument("backup", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify)
    p = group.add_parser("restore", help="replace a STOPPED node's database with a backup")
    p.add_argument("--config", required=True, type=Path, metavar="TOML")
    p.add_argument("--from", dest="source", required=True, type=Path, metavar="FILE")
    p.add_argument(
        "--status-gap",
        type=int,
        default=STATUS_GAP,
        metavar="N",
        help="status indexes to revoke past the backup's when the replaced database "
        f"cannot be read (default {STATUS_GAP:,})",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_restore)


def _config(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _storage_secret(config: NodeConfig) -> bytes:
    """The node's storage secret: restore needs it to carry later deregistrations."""
    try:
        return read_hex(config.keys.storage_secret, "keys.storage_secret", 32)
    except ConfigError as exc:
        raise CliError(exc.code, str(exc)) from None


def _failed(exc: BackupError) -> CliError:
    return CliError(exc.code, str(exc), 1 if exc.code in _FAILED_CHECKS else 2)


def _summary(m: Manifest) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(m.counts.items()))
    return (
        f"{m.role} {m.region}, schema {m.schema_version}, taken {m.taken_at}, "
        f"{m.size:,} bytes, sha256 {m.sha256[:16]}…\n  rows: {counts}"
    )


#: what ``create`` and ``restore`` say on a PostgreSQL node (README "Backups on PostgreSQL")
PG_BACKUPS = """\
This node keeps its state in PostgreSQL ({where}): back it up with the database's own
tools, which Huxin does not replace:

  * a logical dump:      pg_dump -Fc -f FILE "<the [storage] url>"
                         then `huxin backup verify FILE` checks it against Huxin's schema;
  * continuous backups:  pg_basebackup plus WAL archiving (point-in-time recovery),
                         or the platform's managed backups;
  * restore:             pg_restore -d <an empty database> FILE (or a point-in-time
                         recovery), then point [storage] url at it and start the node.

Back up beside the database what lives in files next to node.toml: the keys (keys/:
root, attestation, province, storage secret; as secret as the keys themselves), the
TLS certificates and CA, node.toml itself, the trust bundles and mapping files.
Nothing was written."""


def _on_postgres(config: NodeConfig) -> bool:
    """On PostgreSQL: print what to do instead (stderr) and say so."""
    if config.storage.dialect != "postgresql":
        return False
    parts = urlsplit(config.storage.url)
    where = f"database {parts.path.lstrip('/') or '?'} on {parts.hostname or 'a local socket'}"
    print(PG_BACKUPS.format(where=where), file=sys.stderr)
    return True


def _create(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if _on_postgres(config):
        return 2
    try:
        m = create_backup(
            config.database, args.out, region=config.region, role=config.role, now=datetime.now(UTC)
        )
    except BackupError as exc:
        raise _failed(exc) from None
    doc = {"backup": str(args.out), **json.loads(m.to_json())}
    print(json.dumps(doc, sort_keys=True) if args.json else f"backup {args.out}: {_summary(m)}")
    return 0


def _verify_dump(path: Path, fmt: str, as_json: bool) -> int:
    """A pg_dump (PostgreSQL node): complete, Huxin's tables and columns, data, schema."""
    try:
        check = verify_dump(path)
    except DumpError as exc:
        raise CliError(exc.code, str(exc), 1 if exc.code in _FAILED_CHECKS else 2) from None
    if as_json:
        doc = {"backup": str(path), "ok": True, "format": f"pg_dump-{fmt}",
               "schema_version": check.schema_version, "tables": check.tables,
               "extra_tables": check.extra_tables}  # fmt: skip
        print(json.dumps(doc, sort_keys=True))
    else:
        print(
            f"ok {path}: pg_dump ({fmt}), schema {check.schema_version}, all {check.tables}"
            f" of Huxin's tables with their columns and data"
            + (f"; {len(check.extra_tables)} more (partitions)" if check.extra_tables else "")
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    fmt = dump_format(args.backup)
    if fmt is not None:
        return _verify_dump(args.backup, fmt, args.json)
    try:
        m = verify_backup(args.backup)
    except BackupError as exc:
        raise _failed(exc) from None
    doc = {"backup": str(args.backup), "ok": True, **json.loads(m.to_json())}
    print(json.dumps(doc, sort_keys=True) if args.json else f"ok {args.backup}: {_summary(m)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if _on_postgres(config):
        return 2
    try:
        r = restore_backup(
            config.database,
            args.source,
            region=config.region,
            role=config.role,
            now=datetime.now(UTC),
            status_gap=args.status_gap,
            storage_secret=_storage_secret(config),
        )
    except BackupError as exc:
        raise _failed(exc) from None
    aside = str(r.moved_aside) if r.moved_aside else None
    gap = [r.status_revoked.start, r.status_revoked.stop]
    if args.json:
        doc = {"restored": str(r.database), "moved_aside": aside,
               "consents_withdrawn": r.consents_withdrawn, "status_revoked": gap,
               "deregistrations_carried": r.deregistrations_carried}  # fmt: skip
        print(json.dumps(doc, sort_keys=True))
    else:
        print(f"restored {r.database} from {args.source}: {_summary(r.manifest)}")
        print(f"  the replaced database is kept as {aside}" if aside else "  (there was none)")
        revoked = (
            f"status indexes {gap[0]}-{gap[1] - 1} revoked (may have been issued after it)"
            if gap[1] > gap[0]
            else "no status index needed revoking"
        )
        if r.deregistrations_carried:
            print(f"  {r.deregistrations_carried} person(s) deregistered after the backup: erased")
        print(
            f"  {r.consents_withdrawn} consent(s) open in the backup withdrawn "
            f"(reason BACKUP_RESTORED; citizens grant again); {revoked}"
        )
    return 0
