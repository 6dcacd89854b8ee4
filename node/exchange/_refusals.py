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
  successful attestations never touch the table;
* every refusal of an attestation request is registered here and nowhere else:
  one naming a consent row of ours through :func:`register_refusal` (inside a
  write unit, then :meth:`Refusals.counted` after COMMIT), one naming no consent
  of ours through :meth:`Refusals.unlogged` (the refusals metric and at most one
  structured line per caller and second), so no caller can grow the
  append-only log without a citizen's consent behind it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Final

from node.core._errors import NodeError
from node.core._observe import Metrics, log_event
from node.exchange._consent import ended_at
from node.store import Connection
from node.store import _refusals as store
from node.store._consents import ConsentRow
from node.store._translog import LogWrite, TransparencyLog

__all__ = [
    "INTERVAL",
    "QUIET_AFTER_END",
    "UNLOGGED_CALLERS",
    "Refusals",
    "log_refusal",
    "register_refusal",
]

INTERVAL: Final = 3600  # at most one leaf per key and hour after the first
QUIET_AFTER_END: Final = 86_400  # a day after the consent ended, repeats get no leaf
UNLOGGED_CALLERS: Final = 1024  # callers remembered for the unlogged line's rate limit


def log_refusal(
    conn: Connection, log: TransparencyLog, write: LogWrite, *, ended_at: int
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


def register_refusal(
    conn: Connection,
    log: TransparencyLog,
    row: ConsentRow,
    *,
    requester: str,
    purpose: str,
    reason: str,
    now: int,
) -> tuple[int, list[bytes]]:
    """Inside a write unit: register a refusal of a request for the consent ``row``,
    bounded by :func:`log_refusal`; ``(first index, leaves)`` for the log's mirror."""
    write = LogWrite(
        "request_refused",
        now,
        row.subject_key,
        consent_id=row.consent_id,
        requester=requester,
        purpose=purpose,
        reason=reason,
    )
    return log_refusal(conn, log, write, ended_at=ended_at(row))


class Refusals:
    """What every refusal costs outside the database: the refusals metric, and for
    a refusal naming no consent of ours a structured line per caller and second."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._unlogged_at: dict[str, int] = {}  # caller -> second of its last line

    def counted(self, exc: NodeError) -> None:
        """A refusal registered for its citizen: the metric only (its leaf is committed)."""
        self._metrics.refusals.labels(exc.code).inc()

    def unlogged(self, exc: NodeError, requester: str, purpose: str) -> None:
        """A refusal naming no consent of ours: metric always, one line per caller and second."""
        self._metrics.refusals.labels(exc.code).inc()
        second = int(time.monotonic())
        if self._unlogged_at.get(requester) == second:
            return
        if len(self._unlogged_at) >= UNLOGGED_CALLERS:
            self._unlogged_at.clear()
        self._unlogged_at[requester] = second
        log_event(
            "attestation request refused (no consent of ours; not in the transparency log)",
            requester=requester[:64],
            purpose=purpose[:64],
            reason=exc.code,
        )
