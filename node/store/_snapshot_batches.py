"""Storage of a monthly run's signed Merkle batches: ``snapshot_batches`` and their leaves.

Every function takes an autocommit ``sqlite3`` connection (:func:`node.store.connect`);
:mod:`node.monthly._snapshots` builds and signs the batches, this module only reads and
writes rows.

Invariants:

* a batch row, its leaves and its ``snapshot_batch`` outbox event (none for a
  standalone region) commit in ONE transaction (:func:`store_batch`), so an
  interrupted signing holds complete batches only;
* batch ``number`` counts from 0 per run, so the stored count is the next number;
* leaves are read in ``subject_key`` order (:func:`eligible_page`), which is the
  order batches are cut in, so resuming at an offset continues where it stopped.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.store._outbox import append_sync
from node.store._pg_bulk import copy_rows, pg_of

__all__ = [
    "BatchRow",
    "batch_leaf_counts",
    "batch_leaf_hashes",
    "batch_meta",
    "batch_payloads",
    "count_eligible",
    "eligible_page",
    "latest_run",
    "newest_leaf",
    "run_of",
    "signed_so_far",
    "store_batch",
]

#: (batch_id, run_id, period, scheme_id, scheme_version, number, payload_type, leaves,
#: root_hash, checkpoint, signed_at): one ``snapshot_batches`` row
BatchRow = tuple[str, int, str, str, str, int, str, int, bytes, bytes, int]


def run_of(conn: sqlite3.Connection, run_id: int) -> tuple[str, str, str, str | None] | None:
    """(period, scheme_id, scheme_version, finished_at) of run ``run_id``, or None."""
    row = conn.execute(
        "SELECT period, scheme_id, scheme_version, finished_at FROM snapshot_runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]), row[3])


def latest_run(conn: sqlite3.Connection, period: str, scheme_id: str) -> int | None:
    """The newest run of ``scheme_id`` (any version) for ``period``, or None."""
    row = conn.execute(
        "SELECT run_id FROM snapshot_runs WHERE period = ? AND scheme_id = ?"
        " ORDER BY run_id DESC LIMIT 1",
        (period, scheme_id),
    ).fetchone()
    return None if row is None else int(row[0])


def count_eligible(conn: sqlite3.Connection, run_id: int) -> int:
    """The run's eligible people (one leaf each)."""
    (eligible,) = conn.execute(
        "SELECT count(*) FROM snapshots WHERE run_id = ? AND eligible = 1", (run_id,)
    ).fetchone()
    return int(eligible)


def signed_so_far(conn: sqlite3.Connection, run_id: int) -> tuple[int, int]:
    """(batches, leaves) of the run stored so far."""
    done_n, done_leaves = conn.execute(
        "SELECT count(*), coalesce(sum(leaves), 0) FROM snapshot_batches WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return int(done_n), int(done_leaves)


def eligible_page(conn: sqlite3.Connection, run_id: int, size: int, offset: int) -> list[Any]:
    """(subject_key, score, grade, id_sealed) of up to ``size`` eligible people of the
    run from ``offset``, in ``subject_key`` order."""
    return conn.execute(
        "SELECT s.subject_key, s.score, s.grade, sub.id_sealed FROM snapshots AS s"
        " JOIN subjects AS sub USING (subject_key)"
        " WHERE s.run_id = ? AND s.eligible = 1 ORDER BY s.subject_key LIMIT ? OFFSET ?",
        (run_id, size, offset),
    ).fetchall()


def store_batch(
    conn: sqlite3.Connection,
    batch: BatchRow,
    leaves: list[tuple[str, int, bytes, bytes, bytes]],
    *,
    outbox: bool,
) -> None:
    """The batch row, its ``leaves`` (batch_id, idx, subject_key, leaf_hash, payload),
    in bulk, and when ``outbox`` its ``snapshot_batch`` outbox event, in ONE
    transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO snapshot_batches (batch_id, run_id, period, scheme_id,"
            " scheme_version, number, payload_type, leaves, root_hash, checkpoint, signed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        raw = pg_of(conn)
        if raw is None:
            conn.executemany(
                "INSERT INTO snapshot_leaves (batch_id, idx, subject_key, leaf_hash, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                leaves,
            )
        else:  # one COPY, each leaf with its batch's period (the partition key)
            copy_rows(
                raw,
                "snapshot_leaves",
                ("batch_id", "idx", "subject_key", "leaf_hash", "payload", "period"),
                ((*leaf, batch[2]) for leaf in leaves),
            )
        if outbox:
            append_sync(conn, "snapshot_batch", batch[0], batch[9], batch[10])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def newest_leaf(conn: sqlite3.Connection, subject_key: bytes, period: str) -> Any:
    """(batch_id, idx, payload, checkpoint, payload_type) of the person's leaf in the
    newest signed batch of ``period``, or None."""
    return conn.execute(
        "SELECT l.batch_id, l.idx, l.payload, b.checkpoint, b.payload_type"
        " FROM snapshot_leaves AS l JOIN snapshot_batches AS b USING (batch_id)"
        " WHERE l.subject_key = ? AND b.period = ? ORDER BY b.signed_at DESC LIMIT 1",
        (subject_key, period),
    ).fetchone()


def batch_meta(conn: sqlite3.Connection, batch_id: str) -> Any:
    """(period, scheme_id, scheme_version, payload_type) of a stored batch, or None."""
    return conn.execute(
        "SELECT period, scheme_id, scheme_version, payload_type FROM snapshot_batches"
        " WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()


def batch_payloads(conn: sqlite3.Connection, batch_id: str) -> Any:
    """(idx, payload, leaf_hash) of the batch's leaves in leaf order; payload None at a
    leaf deleted since (the hash stays, so the batch still matches its root)."""
    return conn.execute(
        "SELECT idx, payload, leaf_hash FROM snapshot_leaves WHERE batch_id = ? ORDER BY idx",
        (batch_id,),
    )


def batch_leaf_counts(conn: sqlite3.Connection, batch_id: str) -> tuple[int, int]:
    """(leaves still held, leaves) of a batch."""
    low, high = conn.execute(
        "SELECT count(payload), count(*) FROM snapshot_leaves WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()
    return int(low), int(high)


def batch_leaf_hashes(conn: sqlite3.Connection, batch_id: str) -> list[bytes]:
    """The batch's leaf hashes in leaf order."""
    return [
        bytes(h)
        for (h,) in conn.execute(
            "SELECT leaf_hash FROM snapshot_leaves WHERE batch_id = ? ORDER BY idx", (batch_id,)
        )
    ]
