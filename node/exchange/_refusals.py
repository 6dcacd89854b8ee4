"""Bounded refusal logging: which refusals on a real consent get a log leaf (ADR 0319).

A refusal that concerns a real consent of ours is registered for its citizen
(H16, N23), but a caller's retries must not grow the append-only log without
bound.  The key of a refusal is ``(consent id, requester, reason)``; the state
of each key is one ``refusal_marks`` row (migration 0008).

Invariants:

* the first refusal of a key always appends a ``request_refused`` leaf;
* a later one appends a leaf only if the key's last leaf is at least
  ``INTERVAL`` seconds old AND the consent ended (withdrawn or past
  ``not_after``) less than ``QUIET_AFTER_END`` seconds ago; that leaf's
  ``count`` is this refusal plus every refusal of the key that got no leaf
  since the key's previous leaf;
* any other refusal only increments the key's ``unlogged`` counter (it is in
  the next leaf of the key, if one comes, and always in the refusals metric);
  the marks' SQL is :mod:`node.store._refusals`;
* so the leaves of one key number at most ``1 + (consent's life + 1 day) /
  1 hour``, bounded by the citizen's grant, not by how often anyone retries;
* :func:`log_refusal` runs inside the refusing write unit (``BEGIN
  IMMEDIATE`` under the cross-process writer lock), so processes serving one
  database (ADR 0312) read and update the same mark in turn, never racing;
  successful attestations never touch the table.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Final

from node.store import _refusals as store
from node.store._translog import LogWrite, TransparencyLog

__all__ = ["INTERVAL", "QUIET_AFTER_END", "log_refusal"]

INTERVAL: Final = 3600  # at most one leaf per key and hour after the first
QUIET_AFTER_END: Final = 86_400  # a day after the consent ended, repeats get no leaf


def log_refusal(
    conn: sqlite3.Connection, log: TransparencyLog, write: LogWrite, *, ended_at: int
) -> tuple[int, list[bytes]]:
    """Inside a write unit: append ``write`` (a ``request_refused`` entry naming a
    consent row that exists) if the rule above allows, else count it on its mark.

    ``ended_at`` is when the consent stopped being usable: its withdrawal time,
    else its ``not_after``.  Returns ``(first index, leaves)`` for
    :meth:`TransparencyLog.mirror` — no leaves when nothing was appended."""
    key = (write.consent_id, write.requester, write.reason)
    now = write.timestamp
    mark = store.mark_of(conn, key)
    if mark is None:
        store.insert_mark(conn, key, now)
        return log.append_sync(conn, [write])
    logged_at, unlogged = mark
    if now - logged_at < INTERVAL or now - ended_at >= QUIET_AFTER_END:
        store.count_unlogged(conn, key)
        return -1, []
    store.set_logged(conn, key, now)
    return log.append_sync(conn, [replace(write, count=unlogged + 1)])
