"""The ``source_batches`` row of a department's batch (records, facts or listings).

Invariant: one row per (``submitted_by``, ``batch_id``), written in the same
unit as the batch's rows, so a batch is stored whole or not at all and its id
namespace is shared by every kind of batch a department sends.
"""

from __future__ import annotations

import sqlite3

__all__ = ["insert_batch"]


def insert_batch(
    conn: sqlite3.Connection,
    batch_id: str,
    submitted_by: str,
    *,
    count: int,
    sha256: bytes,
    at_iso: str,
) -> None:
    """Store the batch's row (inside the caller's unit; the caller checked for a replay)."""
    conn.execute(
        "INSERT INTO source_batches (batch_id, submitted_by, records, sha256, committed_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (batch_id, submitted_by, count, sha256, at_iso),
    )
