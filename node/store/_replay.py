"""Accepted identity assertions in the database, shared by a node's replicas (issue 18).

On PostgreSQL several replicas serve one node (docs/adr/0702); a per-process replay
journal would accept a one-time identity assertion once per replica.  The
``identity_replay`` table (migration 0015) is the one record they share.

Invariants:

* :meth:`SharedReplay.admit` is one ``INSERT … ON CONFLICT DO NOTHING``: the row
  count says whether this call was the first, so two replicas admitting the same
  key at once accept it exactly once (the primary key decides);
* rows whose ``until_at`` has passed are deleted by the admission itself (the
  assertion expired, so it is refused as too old anyway);
* one dedicated connection, used under a lock (the gRPC interceptor may call from
  the event loop and the HTTP side from a thread); a lost connection raises
  :class:`~node.store.StorageUnavailable` and admits nothing.
"""

from __future__ import annotations

import threading

from node.store._backend import Target
from node.store._migrate import connect

__all__ = ["SharedReplay"]


class SharedReplay:
    """``admit(key, until, now)`` → True the first time ``key`` is seen (until it expires)."""

    def __init__(self, target: Target) -> None:
        self._conn = connect(target)
        self._lock = threading.Lock()

    def admit(self, key: bytes, until: int, now: int) -> bool:
        with self._lock:
            self._conn.execute("DELETE FROM identity_replay WHERE until_at <= ?", (now,))
            cur = self._conn.execute(
                "INSERT INTO identity_replay (replay_key, until_at) VALUES (?, ?)"
                " ON CONFLICT (replay_key) DO NOTHING",
                (key, until),
            )
            return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()
