"""The node's transparency log: an append-only Merkle log with signed checkpoints.

Every consent grant, withdrawal, attestation use and refusal is appended as a
pseudonymous :class:`~node.pb.v1.node_pb2.LogEntry` (no ID number, no subject
key: only ``subject_ref = SHA-256("huxin-log-subject" || subject_key)``).

Invariants: the leaf is the exact serialised entry (hashed with RFC 9162's
``0x00`` prefix by ``keys.MerkleTree``); entries are appended inside the
caller's write transaction, each taking the next dense index (0, 1, 2, …),
and mirrored into the in-memory tree only after COMMIT, so the tree is always
a *prefix* of the committed rows.  The index is allocated by the database in
the writing transaction: on SQLite one writer at a time (the writer lock)
makes ``max(idx) + 1`` dense; on PostgreSQL the transaction holds the
dense-index lock (:mod:`node.store._dense`, held to COMMIT or ROLLBACK), so
replicas writing one database produce one dense log and a rolled-back entry
leaves no gap (docs/adr/0702).  When several processes write one database
(peer-port workers, docs/adr/0312; replicas, docs/adr/0702) a process's tree
can fall behind the rows others committed; a mirror that would leave a gap is
deferred, and :meth:`sync` appends the missing rows, in index order, from the
last committed state before any root, checkpoint or proof is served.  Checkpoints are signed by the node's signing key over ``Checkpoint``
bytes (kind ``log``, origin ``<region>/log``).

A citizen reads their entries a page at a time (:meth:`TransparencyLog.page_for`):
at most ``PAGE_MAX`` entries in log-index order from a start index, every
inclusion proof of a page against the one signed checkpoint returned with it,
so a response stays far below gRPC's message limit however long the log grows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from keys import CHECKPOINT_TYPE, Envelope, KeyPair, MerkleTree, sign
from keys.pb.v1 import attestation_pb2
from node.core._errors import InvalidArgumentError, own_data
from node.pb.v1 import node_pb2
from node.store._db import Database
from node.store._dense import DENSE_INDEXES, lock_dense_indexes, on_postgresql

__all__ = [
    "DENSE_INDEXES",
    "PAGE_DEFAULT",
    "PAGE_MAX",
    "LogPage",
    "LogWrite",
    "TransparencyLog",
    "append_rows",
    "leaves_from",
    "lock_dense_indexes",
    "on_postgresql",
    "subject_ref",
]

PAGE_DEFAULT: Final = 500  # entries per QueryLog page when the caller says 0
PAGE_MAX: Final = 1000  # at most ~1 MB of entries and proofs: far below the 4 MB limit


_APPEND = (
    "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at) "
    "VALUES ((SELECT coalesce(max(idx) + 1, 0) FROM log_entries), ?, ?, ?, ?)"
)


_APPEND_AT = (
    "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at) VALUES (?, ?, ?, ?, ?)"
)


def append_rows(conn: sqlite3.Connection, writes: Sequence[LogWrite]) -> tuple[int, list[bytes]]:
    """Insert entries inside the caller's transaction, each at the next dense index;
    returns (first index, leaves).  Callers outside a serving node (e.g. a restore)
    use it directly; the node's in-memory tree is rebuilt from the rows at start."""
    leaves = [w.entry() for w in writes]
    if not leaves:
        return -1, leaves
    if on_postgresql(conn):
        lock_dense_indexes(conn)
        first = int(conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM log_entries").fetchone()[0])
        conn.executemany(
            _APPEND_AT,
            [
                (first + i, w.subject_key, w.kind, leaf, w.timestamp)
                for i, (w, leaf) in enumerate(zip(writes, leaves, strict=True))
            ],
        )
        return first, leaves
    first = -1
    for w, leaf in zip(writes, leaves, strict=True):
        cur = conn.execute(_APPEND, (w.subject_key, w.kind, leaf, w.timestamp))
        if first < 0:
            first = int(cur.lastrowid or 0)
    return first, leaves


def leaves_from(conn: sqlite3.Connection, first: int) -> Iterator[bytes]:
    """The stored leaves from index ``first`` on, in index order (read lazily)."""
    for (leaf,) in conn.execute(
        "SELECT leaf FROM log_entries WHERE idx >= ? ORDER BY idx", (first,)
    ):
        yield bytes(leaf)


@lru_cache(maxsize=4096)
def subject_ref(subject_key: bytes) -> bytes:
    return hashlib.sha256(b"huxin-log-subject" + subject_key).digest()


@dataclass(frozen=True, slots=True)
class LogWrite:
    kind: str
    timestamp: int
    subject_key: bytes | None = None
    consent_id: str = ""
    requester: str = ""
    purpose: str = ""
    reason: str = ""
    attestation_id: str = ""
    count: int = 0  # request_refused: refusals the entry stands for (0 and 1: just this one)

    def entry(self) -> bytes:
        return node_pb2.LogEntry(
            kind=self.kind,
            timestamp=self.timestamp,
            consent_id=self.consent_id,
            requester=self.requester,
            purpose=self.purpose,
            reason=self.reason,
            subject_ref=subject_ref(self.subject_key) if self.subject_key else b"",
            attestation_id=self.attestation_id,
            count=self.count if self.count > 1 else 0,  # older leaves' bytes are unchanged
        ).SerializeToString(deterministic=True)


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of a subject's entries; every proof is against ``checkpoint``.

    ``next_start`` is where the next page starts: one past the last entry here,
    or the checkpoint's tree size when the subject has nothing more below it
    (``more`` is then false)."""

    entries: list[node_pb2.LoggedEntry]
    checkpoint: Envelope
    next_start: int
    more: bool


class TransparencyLog:
    """Appends entries in a transaction; serves proofs and signed checkpoints."""

    def __init__(self, db: Database, region: str, signing: KeyPair) -> None:
        self._db = db
        self._origin = f"{region}/log"
        self._signing = signing
        self._tree = MerkleTree()
        self._checkpoint: tuple[int, Envelope] | None = None

    async def load(self) -> None:
        """Rebuild the in-memory tree from the committed rows (at start)."""
        rows = await self._db.fetchall("SELECT idx, leaf FROM log_entries ORDER BY idx")
        tree = MerkleTree()
        for idx, leaf in rows:
            if idx != tree.size:
                raise RuntimeError("transparency log has a gap")  # corrupt database
            tree.append(bytes(leaf))
        self._tree = tree

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def append_sync(
        self, conn: sqlite3.Connection, writes: Sequence[LogWrite]
    ) -> tuple[int, list[bytes]]:
        """Inside a write unit: insert entries; returns (first index, leaves) for
        :meth:`mirror`, which the unit's ``after`` hook calls after COMMIT.

        Each row takes the next dense index in the statement that inserts it
        (``idx`` is the rowid, so ``lastrowid`` is that index)."""
        return append_rows(conn, writes)

    def mirror(self, first: int, leaves: Sequence[bytes]) -> None:
        """Append committed leaves ``first, first+1, …`` to the in-memory tree.

        Leaves the tree already has (a :meth:`sync` got there first) are
        skipped; leaves past a gap (another process committed the indexes in
        between) are left for :meth:`sync`, which reads them back in order."""
        tree = self._tree
        for i, leaf in enumerate(leaves):
            idx = first + i
            if idx < tree.size:
                continue
            if idx > tree.size:
                return
            tree.append(leaf)

    async def sync(self) -> int:
        """Append every committed row the tree lacks (other processes' entries); size."""
        tree = self._tree
        rows = await self._db.fetchall(
            "SELECT idx, leaf FROM log_entries WHERE idx >= ? ORDER BY idx", (tree.size,)
        )
        for idx, leaf in rows:  # the tree may have grown while we read: skip, stop at a gap
            if idx == tree.size:
                tree.append(bytes(leaf))
            elif idx > tree.size:
                raise RuntimeError("transparency log has a gap")  # corrupt database
        return tree.size

    async def current_checkpoint(self, now: int) -> tuple[int, Envelope]:
        """A signed checkpoint covering every entry committed so far (any process)."""
        await self.sync()
        return self.checkpoint(now)

    async def record(self, writes: Sequence[LogWrite]) -> list[int]:
        """Append entries in their own (group-committed) transaction."""
        first, leaves = await self._db.write_unit(
            lambda conn: self.append_sync(conn, writes),
            lambda r: self.mirror(r[0], r[1]),
        )
        return [first + i for i in range(len(leaves))]

    def checkpoint(self, now: int) -> tuple[int, Envelope]:
        """A signed checkpoint of the current tree (cached per size)."""
        size = self._tree.size
        if self._checkpoint is not None and self._checkpoint[0] == size:
            return self._checkpoint
        payload = attestation_pb2.Checkpoint(
            origin=self._origin,
            tree_size=size,
            root_hash=self._tree.root(size),
            timestamp=now,
            kind="log",
        ).SerializeToString(deterministic=True)
        with own_data("the log checkpoint"):
            env = sign(CHECKPOINT_TYPE, payload, self._signing)
        self._checkpoint = (size, env)
        return self._checkpoint

    def _proved(self, rows: Sequence[Any], size: int) -> list[node_pb2.LoggedEntry]:
        """``(idx, leaf)`` rows as entries with inclusion proofs in the tree of ``size``."""
        return [
            node_pb2.LoggedEntry(
                entry=bytes(leaf),
                proof=attestation_pb2.InclusionProof(
                    leaf_index=idx,
                    tree_size=size,
                    hashes=self._tree.inclusion_proof(idx, size),
                ),
            )
            for idx, leaf in rows
        ]

    async def page_for(
        self, subject_key: bytes, now: int, *, start: int = 0, limit: int = PAGE_DEFAULT
    ) -> LogPage:
        """Up to ``limit`` (1..``PAGE_MAX``) of the subject's entries with index >=
        ``start``, in index order, with inclusion proofs against one signed checkpoint.

        ``start`` past the checkpoint's tree size is ``INVALID_ARGUMENT`` (field
        ``start_index``): no page of this log starts there."""
        if not 1 <= limit <= PAGE_MAX:
            raise InvalidArgumentError(
                "INVALID_FIELD", f"must be 0-{PAGE_MAX} (0: {PAGE_DEFAULT})", field="page_size"
            )
        size, env = await self.current_checkpoint(now)
        if start > size:
            raise InvalidArgumentError(
                "INVALID_FIELD",
                f"is past the end of the log (tree size {size})",
                field="start_index",
            )
        rows = await self._db.fetchall(
            "SELECT idx, leaf FROM log_entries "
            "WHERE subject_key = ? AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?",
            (subject_key, start, size, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        out = self._proved(rows, size)
        next_start = int(rows[-1][0]) + 1 if more else size
        return LogPage(out, env, next_start, more)

    async def entries_for(
        self, subject_key: bytes, now: int
    ) -> tuple[list[node_pb2.LoggedEntry], Envelope]:
        """ALL the subject's entries with inclusion proofs against one signed checkpoint,
        in one list: for tools and tests only; a service pages (:meth:`page_for`)."""
        size, env = await self.current_checkpoint(now)
        rows = await self._db.fetchall(
            "SELECT idx, leaf FROM log_entries WHERE subject_key = ? AND idx < ? ORDER BY idx",
            (subject_key, size),
        )
        out = self._proved(rows, size)
        return out, env
