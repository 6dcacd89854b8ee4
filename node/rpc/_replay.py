"""A bounded replay cache for citizen identity assertions, kept across restarts.

Each identity assertion (``node.rpc._identity``) is accepted once per node: the
verifier records its nonce here and refuses it the second time
(``IDENTITY_REPLAYED``).  An entry is needed only while the assertion could
still be accepted (until its ``expires_at`` or ``issued_at + max_age``,
whichever is first); after that the verifier refuses it as expired anyway, so
the entry is dropped.  See docs/adr/0416.

Invariants:

* bounded memory: at most ``capacity`` live entries; when full, a NEW
  assertion is refused (``RESOURCE_EXHAUSTED IDENTITY_REPLAY_CACHE_FULL``),
  never an unexpired entry evicted (eviction would reopen the replay window);
* the journal (``<database>.identity-replay``, owner-only) gets every accepted
  key BEFORE the call is served, with one ``write``; it is read back at the
  first use after a start, so a restart (also after SIGKILL) does not reopen
  the window.  Like the node's SQLite commits (WAL, ``synchronous = NORMAL``)
  it is not fsynced per entry: a power loss may drop the last entries;
* a journal that cannot be read or written fails closed: every assertion is
  refused (``UNAVAILABLE IDENTITY_REPLAY_UNAVAILABLE``) until it can;
* the journal is rewritten (temporary file + rename) with the live entries at
  load and whenever it holds more than twice as many records as are live, so
  it stays within a few times ``capacity`` records of 24 bytes;
* only the process serving the citizen port uses it (the primary: workers
  serve the peer port only, docs/adr/0312), and only from the event loop, so
  no lock is needed.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Protocol

from node.core._errors import ResourceExhaustedError, UnauthenticatedError, UnavailableError
from node.core._observe import log_event

__all__ = ["KEY_BYTES", "MAX_CAPACITY", "MIN_CAPACITY", "ReplayCache"]

KEY_BYTES = 16
_MAGIC = b"HXRPL001"
_RECORD = KEY_BYTES + 8  # key, then the second until which it is kept (big-endian)
MIN_CAPACITY = 1_000
MAX_CAPACITY = 10_000_000
_COMPACT_SLACK = 4_096  # records written beyond twice the live ones before a rewrite


class SharedAdmit(Protocol):
    """The replicas' common record (node/store/_replay.py): True the first time."""

    def admit(self, key: bytes, until: int, now: int) -> bool: ...

    def close(self) -> None: ...


class ReplayCache:
    """Keys of accepted assertions until they expire; ``journal`` None = memory only;
    ``shared`` (PostgreSQL, issue 18): the replicas' common table decides, so an
    assertion accepted by one replica is refused by every other."""

    def __init__(
        self, capacity: int, journal: Path | None = None, *, shared: SharedAdmit | None = None
    ) -> None:
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be 1..{MAX_CAPACITY}")
        self.capacity = capacity
        self._journal = journal
        self._until: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []
        self._fd: int | None = None
        self._records = 0  # records in the journal file
        self._loaded = journal is None
        self._shared = shared

    def __len__(self) -> int:
        return len(self._until)

    def admit(self, key: bytes, until: int, now: int) -> None:
        """Record ``key`` (kept until ``until``) or refuse it: seen before, full, or no journal."""
        if len(key) != KEY_BYTES:
            raise ValueError("replay keys are 16 bytes")
        if not self._loaded:
            self._load(now)
        self._prune(now)
        held = self._until.get(key)
        if held is not None:
            raise UnauthenticatedError(
                "IDENTITY_REPLAYED",
                "this identity assertion was already used; ask the provider for a new one",
            )
        if len(self._until) >= self.capacity:
            raise ResourceExhaustedError(
                "IDENTITY_REPLAY_CACHE_FULL",
                "too many identity assertions in their lifetime; retry later",
            )
        if self._shared is not None and not self._shared.admit(key, until, now):
            raise UnauthenticatedError(
                "IDENTITY_REPLAYED",
                "this identity assertion was already used; ask the provider for a new one",
            )
        self._append(key, until)
        self._until[key] = until
        heapq.heappush(self._heap, (until, key))
        if self._records > 2 * len(self._until) + _COMPACT_SLACK:
            self._rewrite(now)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- memory ----------------------------------------------------------------
    def _prune(self, now: int) -> None:
        heap, until = self._heap, self._until
        while heap and heap[0][0] <= now:
            t, key = heapq.heappop(heap)
            if until.get(key) == t:
                del until[key]

    # -- journal ---------------------------------------------------------------
    def _unavailable(self, what: str, exc: OSError | None = None) -> UnavailableError:
        log_event(
            "identity replay journal unusable",
            40,
            what=what,
            error=type(exc).__name__ if exc else "",
        )
        return UnavailableError(
            "IDENTITY_REPLAY_UNAVAILABLE", "citizen sign-in is unavailable; retry later"
        )

    def _load(self, now: int) -> None:
        """Read the journal once (the first use after a start), keep the live keys, rewrite it."""
        assert self._journal is not None
        try:
            data = self._journal.read_bytes()
        except FileNotFoundError:
            data = _MAGIC
        except OSError as exc:
            raise self._unavailable("read", exc) from None
        if not data.startswith(_MAGIC):
            raise self._unavailable("format")
        body = memoryview(data)[len(_MAGIC) :]
        whole = len(body) - len(body) % _RECORD  # a torn last record is dropped
        for i in range(0, whole, _RECORD):
            key = bytes(body[i : i + KEY_BYTES])
            until = int.from_bytes(body[i + KEY_BYTES : i + _RECORD], "big", signed=True)
            if until > now and self._until.get(key, until - 1) < until:
                self._until[key] = until
        self._heap = [(t, k) for k, t in self._until.items()]
        heapq.heapify(self._heap)
        self._rewrite(now)
        self._loaded = True
        log_event("identity replay journal loaded", live=len(self._until))

    def _rewrite(self, now: int) -> None:
        """Rewrite the journal with the live entries only (temporary file, fsync, rename)."""
        assert self._journal is not None
        self._prune(now)
        tmp = self._journal.with_name(f".{self._journal.name}.tmp")
        blob = _MAGIC + b"".join(
            k + t.to_bytes(8, "big", signed=True) for k, t in self._until.items()
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._journal)
            self.close()
            self._fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND, 0o600)
        except OSError as exc:
            self.close()
            raise self._unavailable("rewrite", exc) from None
        self._records = len(self._until)

    def _append(self, key: bytes, until: int) -> None:
        if self._journal is None:
            return
        record = key + until.to_bytes(8, "big", signed=True)
        try:
            if self._fd is None:
                raise OSError("journal not open")
            written = os.write(self._fd, record)
        except OSError as exc:
            self.close()
            self._loaded = False  # read it again (and reopen) at the next use
            raise self._unavailable("append", exc) from None
        if written != len(record):
            self.close()
            self._loaded = False
            raise self._unavailable("append")
        self._records += 1
