"""Online backup, verification and restore of a node's SQLite database.

A node's database is its whole state (records, scores, consents, status list,
transparency log, outbox, hub registry); its keys live in files next to the
config and are backed up with them (DESIGN "Keys"), not here.

Invariants:

* a backup is a consistent snapshot taken while the node serves: SQLite's
  online backup API copies every page in ONE step, i.e. inside one read
  transaction of a separate connection (WAL: the node's writers are never
  blocked; commits after that snapshot are simply not in the copy);
* a backup is never visible half-written: it is written to
  ``<out>.partial``, switched to a self-contained rollback-journal file,
  checked (``integrity_check``, ``foreign_key_check``, schema version),
  fsynced and renamed; its manifest ``<out>.manifest.json`` (SHA-256, size,
  region, role, schema version, row counts, time) is written the same way,
  last, so a manifest always describes a complete file;
* verification fails closed: a missing or malformed manifest, a digest or
  size that does not match, a failed SQLite check or a schema newer than this
  build is an error, never a warning;
* restore never runs against a live node (the database's primary lock and
  writer lock are both taken, non-blocking, for the whole restore), never
  restores a backup that fails verification or names another region or
  role, and never deletes the current database: it is moved aside (with its
  ``-wal`` and ``-shm``) to ``<db>.before-restore-<UTC time>`` first;
* a restored node fails closed on what the backup cannot know (docs/adr/0318):
  in the same step, under the same locks, every consent still open in the
  backup is withdrawn (reason ``BACKUP_RESTORED`` in its transparency-log
  entry; the citizen grants again), since a withdrawal made after the backup
  would otherwise come back to life; and the status-list indexes that may
  have been handed out after the backup are filled with REVOKED entries, so
  no new attestation reuses one and no lost revocation reads as valid (up to
  the replaced database's own high-water mark when it can be read, else
  ``status_gap`` entries past the backup's);
* no ID number: the copy is the database (sealed identities only) and the
  manifest holds counts and hashes only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from node.core._errors import HuxinError
from node.store import SCHEMA_VERSION, StorageError, connect
from node.store._consents import STATUS_REVOKED
from node.store._erase import erase_subject_sync
from node.store._records import tombstone
from node.store._translog import LogWrite, append_rows

__all__ = [
    "MANIFEST_FORMAT",
    "BackupError",
    "Manifest",
    "Restored",
    "create_backup",
    "manifest_path",
    "restore_backup",
    "verify_backup",
]

MANIFEST_FORMAT = "huxin-backup/1"
MANIFEST_MAX_BYTES = 64 * 1024  # a manifest is a few hundred bytes; refuse anything huge
# Tables whose row counts go into the manifest (those present in the database).
COUNTED = (
    "subjects",
    "records",
    "consents",
    "status_entries",
    "log_entries",
    "outbox",
    "hub_regions",
    "hub_events",
)
_CHUNK = 1 << 20
STATUS_GAP = (
    131_072  # status entries revoked past the backup's when the old high-water mark is unknown
)
RESTORED_REASON = "BACKUP_RESTORED"
_GAP_ROWS = (
    "WITH RECURSIVE g(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM g WHERE i + 1 < ?) "
    "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, status, "
    "issued_at, expires_at) SELECT i, 'restore-gap', x'', '', ?, ?, ? FROM g"
)


class BackupError(HuxinError):
    """A backup that cannot be made, verified or restored; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Manifest:
    """What ``<backup>.manifest.json`` says about the backup file next to it."""

    format: str
    region: str
    role: str
    schema_version: int
    taken_at: str  # ISO-8601 UTC
    size: int
    sha256: str
    counts: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse and type-check a manifest; any deviation is ``BACKUP_MANIFEST_INVALID``."""
        if len(data) > MANIFEST_MAX_BYTES:
            raise BackupError("BACKUP_MANIFEST_INVALID", "the manifest is too large")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackupError("BACKUP_MANIFEST_INVALID", f"manifest is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise BackupError(
                "BACKUP_MANIFEST_INVALID", f"manifest field 'format' must be {MANIFEST_FORMAT!r}"
            )
        types = {"region": str, "role": str, "schema_version": int, "taken_at": str,
                 "size": int, "sha256": str, "counts": dict}  # fmt: skip
        for name, kind in types.items():
            value = doc.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BackupError(
                    "BACKUP_MANIFEST_INVALID", f"manifest field {name!r} must be a {kind.__name__}"
                )
        counts = doc["counts"]
        if not all(isinstance(k, str) and type(v) is int for k, v in counts.items()):
            raise BackupError(
                "BACKUP_MANIFEST_INVALID", "manifest field 'counts' must map names to integers"
            )
        return cls(MANIFEST_FORMAT, doc["region"], doc["role"], doc["schema_version"],
                   doc["taken_at"], doc["size"], doc["sha256"], dict(counts))  # fmt: skip


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    database: Path
    moved_aside: Path | None  # where the replaced database went (None: there was none)
    consents_withdrawn: int  # consents open in the backup, withdrawn on restore
    status_revoked: range  # status-list indexes filled with REVOKED entries
    deregistrations_carried: int = 0  # people deregistered after the backup, erased again


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".manifest.json")


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    _fsync_dir(path.parent)


def _check(conn: sqlite3.Connection, what: str) -> tuple[int, dict[str, int]]:
    """SQLite's own checks and the schema version; the manifest's row counts."""
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError("BACKUP_CORRUPT", f"{what} fails integrity_check: {problems[0]}")
        if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
            raise BackupError("BACKUP_CORRUPT", f"{what} fails foreign_key_check")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError("BACKUP_CORRUPT", f"{what} is not a readable database: {exc}") from None
    if version < 1 or "node_meta" not in tables:
        raise BackupError("BACKUP_CORRUPT", f"{what} is not a Huxin node database")
    if version > SCHEMA_VERSION:
        raise BackupError(
            "BACKUP_SCHEMA_TOO_NEW",
            f"{what} has schema version {version}; this build knows up to {SCHEMA_VERSION}",
        )
    counts = {
        t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # names from COUNTED
        for t in COUNTED
        if t in tables
    }
    return version, counts


def create_backup(database: Path, out: Path, *, region: str, role: str, now: datetime) -> Manifest:
    """Copy ``database`` (served or not) to ``out`` and write its manifest."""
    if not database.is_file():
        raise BackupError("BACKUP_SOURCE_MISSING", f"database {str(database)!r} does not exist")
    if out.exists() or manifest_path(out).exists():
        raise BackupError("BACKUP_EXISTS", f"{str(out)!r} exists; backups are never overwritten")
    if not out.parent.is_dir():
        raise BackupError("BACKUP_OUT_DIR", f"directory {str(out.parent)!r} does not exist")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        # mode=rw: never create a database that is not there; the source is only read.
        src = sqlite3.connect(_uri(database, "rw"), uri=True, isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout = 10000")
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: one step, one read transaction (a snapshot)
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                version, counts = _check(dst, "the copy")
            finally:
                dst.close()
        finally:
            src.close()
        os.chmod(partial, 0o600)
        with partial.open("rb+") as f:
            os.fsync(f.fileno())
        sha, size = _sha256(partial)
        os.replace(partial, out)
        _fsync_dir(out.parent)
    except sqlite3.Error as exc:
        raise BackupError("BACKUP_FAILED", f"copying {str(database)!r} failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    manifest = Manifest(MANIFEST_FORMAT, region, role, version,
                        now.strftime("%Y-%m-%dT%H:%M:%SZ"), size, sha, counts)  # fmt: skip
    _write_durably(manifest_path(out), manifest.to_json().encode())
    return manifest


def verify_backup(backup: Path) -> Manifest:
    """The backup's manifest, after its digest, size and SQLite checks all pass."""
    if not backup.is_file():
        raise BackupError("BACKUP_MISSING", f"backup {str(backup)!r} does not exist")
    try:
        data = manifest_path(backup).read_bytes()
    except FileNotFoundError:
        raise BackupError(
            "BACKUP_MANIFEST_MISSING", f"no manifest {manifest_path(backup).name!r} next to it"
        ) from None
    manifest = Manifest.parse(data)
    sha, size = _sha256(backup)
    if (sha, size) != (manifest.sha256, manifest.size):
        raise BackupError(
            "BACKUP_DIGEST_MISMATCH",
            f"the file does not match its manifest (size {size} vs {manifest.size}, sha256)",
        )
    # Read-only and immutable: checking a backup never changes (or journals) it.
    conn = sqlite3.connect(_uri(backup, "ro") + "&immutable=1", uri=True)
    try:
        version, _counts = _check(conn, "the backup")
    finally:
        conn.close()
    if version != manifest.schema_version:
        raise BackupError("BACKUP_MANIFEST_INVALID", "manifest schema_version is not the file's")
    return manifest


@contextlib.contextmanager
def _node_stopped(database: Path) -> Iterator[None]:
    """Hold the database's primary and writer locks (non-blocking) for the block."""
    fds: list[int] = []
    try:
        for suffix in (".primary-lock", ".writer-lock", ".job-lock"):
            fd = os.open(f"{database}{suffix}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BackupError(
                    "NODE_RUNNING",
                    f"a node or an offline job (score run) holds {database.name}{suffix}:"
                    " stop it first",
                ) from None
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _fold_wal(database: Path) -> None:
    """Checkpoint the (stopped) database's WAL into its main file and truncate it,
    so the main file moved aside is complete on its own.  A database too damaged
    to open is moved aside as it is (its -wal with it)."""
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(_uri(database, "rw"), uri=True, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()


def restore_backup(
    database: Path,
    backup: Path,
    *,
    region: str,
    role: str,
    now: datetime,
    status_gap: int = STATUS_GAP,
    storage_secret: bytes | None = None,
) -> Restored:
    """Replace a stopped node's database with a verified backup of the same region.
    ``storage_secret`` (the node's) lets deregistrations the replaced database holds
    and the backup does not be carried into it (H2)."""
    if not 0 <= status_gap <= 16 * STATUS_GAP:
        raise BackupError("BACKUP_STATUS_GAP", f"status_gap must be 0-{16 * STATUS_GAP}")
    manifest = verify_backup(backup)
    if (manifest.region, manifest.role) != (region, role):
        raise BackupError(
            "BACKUP_OTHER_NODE",
            f"the backup is of {manifest.role} {manifest.region!r}, "
            f"this config is {role} {region!r}",
        )
    if not database.parent.is_dir():
        raise BackupError("BACKUP_OUT_DIR", f"directory {str(database.parent)!r} does not exist")
    with _node_stopped(database):
        staged = database.with_name(database.name + ".restoring")
        staged.unlink(missing_ok=True)
        try:
            with backup.open("rb") as src, staged.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(staged, 0o600)
            if _sha256(staged) != (manifest.sha256, manifest.size):
                raise BackupError("BACKUP_DIGEST_MISMATCH", "the staged copy does not match")
            aside: Path | None = None
            old_next: int | None = None
            leftovers = [p for p in _sidecars(database) if p.exists()]
            if database.exists() or leftovers:
                aside = database.with_name(
                    f"{database.name}.before-restore-{now.strftime('%Y%m%dT%H%M%SZ')}"
                )
                if any(Path(f"{aside}{x}").exists() for x in ("", *_SIDECARS)):
                    raise BackupError("BACKUP_EXISTS", f"{str(aside)!r} exists")
            stones: dict[bytes, str] = {}
            if database.exists():
                _fold_wal(database)
                old_next = _next_status_index(database)
                stones = _tombstones(database)
            # the staged copy is made safe BEFORE it replaces anything
            try:
                gap_if_unknown = status_gap if role == "region" else 0  # hubs issue none
                later = (stones, storage_secret) if storage_secret else None
                withdrawn, gap, erased = _fail_closed(
                    staged, manifest, old_next, gap_if_unknown, now, later=later
                )
            except (sqlite3.Error, StorageError) as exc:
                raise BackupError(
                    "BACKUP_FAILED", f"preparing the restored copy failed: {exc}"
                ) from None
            if aside is not None:
                # The old main file is hard-linked aside and then atomically REPLACED, so
                # a crash leaves a database in place (old or restored), never none.
                # Its -wal/-shm/-journal go aside first, whether or not a main file
                # exists: SQLite would replay a stale WAL into the restored file; after
                # _fold_wal it is empty anyway.
                for part in _sidecars(database):
                    if part.exists():
                        os.replace(part, Path(f"{aside}{part.name[len(database.name) :]}"))
                if database.exists():
                    os.link(database, aside)
                _fsync_dir(database.parent)
            os.replace(staged, database)
            _fsync_dir(database.parent)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{staged}{suffix}").unlink(missing_ok=True)
    return Restored(manifest, database, aside, withdrawn, gap, erased)


_SIDECARS = ("-wal", "-shm", "-journal")


def _sidecars(database: Path) -> list[Path]:
    return [Path(f"{database}{x}") for x in _SIDECARS]


def _uri(path: Path, mode: str) -> str:
    """A SQLite URI for ``path`` (escaped: '#' or '?' in a directory name)."""
    return f"{path.resolve().as_uri()}?mode={mode}"


def _next_status_index(database: Path) -> int | None:
    """The replaced database's next status index, or None if it cannot be read."""
    try:
        conn = sqlite3.connect(_uri(database, "ro"), uri=True)
        try:
            return int(
                conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM status_entries").fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _tombstones(database: Path) -> dict[bytes, str]:
    """The replaced database's deregistrations (tombstone -> when), {} if unreadable."""
    try:
        conn = sqlite3.connect(_uri(database, "ro"), uri=True)
        try:
            rows = conn.execute("SELECT tombstone, deregistered_at FROM deregistrations")
            return {bytes(t): str(at) for t, at in rows}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def _carry_deregistrations(
    conn: sqlite3.Connection, stones: dict[bytes, str], secret: bytes, t: int
) -> int:
    """Erase again everyone the replaced database had deregistered after the backup."""
    have = {bytes(r[0]) for r in conn.execute("SELECT tombstone FROM deregistrations")}
    keys = [bytes(r[0]) for r in conn.execute("SELECT subject_key FROM subjects")]
    erased = 0
    for key in keys:
        stone = tombstone(secret, key)
        if stone not in stones or stone in have:
            continue
        erase_subject_sync(conn, key, stone, stones[stone])
        entry = LogWrite("deregistered", t, key, reason=RESTORED_REASON)
        append_rows(conn, [entry])
        conn.execute("UPDATE log_entries SET subject_key = NULL WHERE subject_key = ?", (key,))
        erased += 1
    return erased


def _fail_closed(
    database: Path,
    manifest: Manifest,
    old_next: int | None,
    status_gap: int,
    now: datetime,
    *,
    later: tuple[dict[bytes, str], bytes] | None = None,
) -> tuple[int, range, int]:
    """In one transaction on the staged copy (migrated to this build's schema):
    withdraw the consents still open, revoke the status indexes that may have been
    issued after the backup, and note the restore in ``node_meta``."""
    t = int(now.timestamp())
    conn = connect(database)
    try:
        conn.execute("BEGIN IMMEDIATE")
        erased = _carry_deregistrations(conn, later[0], later[1], t) if later else 0
        open_consents = conn.execute(
            "SELECT consent_id, subject_key, audience, purpose FROM consents "
            "WHERE withdrawn_at IS NULL AND not_after > ? ORDER BY consent_id",
            (t,),
        ).fetchall()
        for consent_id, subject_key, audience, purpose in open_consents:
            conn.execute(
                "UPDATE consents SET withdrawn_at = ? WHERE consent_id = ?", (t, consent_id)
            )
            conn.execute(
                "UPDATE status_entries SET status = ? WHERE subject_key = ? AND consent_id = ? "
                "AND status = 0",
                (STATUS_REVOKED, subject_key, consent_id),
            )
            entry = LogWrite("consent_withdrawn", t, bytes(subject_key), consent_id=consent_id,
                             requester=audience, purpose=purpose, reason=RESTORED_REASON)  # fmt: skip
            append_rows(conn, [entry])
        first = int(
            conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM status_entries").fetchone()[0]
        )
        end = max(old_next, first) if old_next is not None else first + status_gap
        if end > first:
            conn.execute(_GAP_ROWS, (first, end, STATUS_REVOKED, t, t))
        conn.execute(
            "INSERT INTO node_meta (key, value) VALUES ('backup.restored', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (
                json.dumps(
                    {
                        "restored_at": t,
                        "taken_at": manifest.taken_at,
                        "sha256": manifest.sha256,
                        "status_revoked": [first, end],
                    }
                ),
            ),
        )
        conn.execute("COMMIT")
        # one self-contained file again, synced, before it is renamed into place
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        conn.execute("PRAGMA journal_mode = DELETE").fetchone()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    with database.open("rb+") as f:
        os.fsync(f.fileno())
    return len(open_consents), range(first, end), erased
