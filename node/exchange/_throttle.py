"""Per-requester rate limit for third-party queries (N23, H16: review of every query).

A token bucket per requester (certificate identity): ``rate`` queries per
minute (``[rights] per_requester_per_minute``, else ``queries_per_minute``;
0 — the default — means no limit), bursts of at most ``min(query_burst, rate)``.  A query over the limit is
refused with RESOURCE_EXHAUSTED, reason ``QUERY_RATE_EXCEEDED`` and a retry
hint: trailing metadata ``retry-after`` = whole seconds until one token is
back (at least 1).

Invariants: time comes from the node's clock (passed in as ``now``), so a
test with a manual clock is deterministic; only the methods in
:data:`THROTTLED_METHODS` are limited (a citizen's own queries are free and
unlimited, H12); refused queries write nothing to the database (a flood
cannot fill the disk) but are counted in metrics and in :attr:`refused`.

Where the buckets live (docs/adr/0314):

* ``QueryThrottle(config, now)`` keeps them in a dict of this process
  (tests, single-process nodes);
* ``QueryThrottle.shared(config, now, path)`` keeps them in a small
  fixed-size file mapped into every worker process of one node
  (:class:`SharedBuckets`), so N workers sharing the peer port still give a
  requester its rate once, not N times.  Every read-modify-write of a bucket
  happens under an exclusive ``flock`` on that file, and the clock is read
  inside it (a time read before waiting for the lock may be older than the
  bucket's and would refill the same interval twice).  The table is keyed by
  a 128-bit keyed BLAKE2b digest of the requester id (the key is a random
  salt in the file header), never by the id itself: the file holds no
  requester names and no citizen data at all.  Two requesters sharing a
  digest would share a bucket (p <= n**2 / 2**129 for n requesters).  The
  table is 16-way set associative; a newcomer takes an empty slot of its
  set, else the least recently used slot whose bucket is full again
  (evicting it loses nothing); if every slot of the set still holds a partly
  used bucket, the newcomer is refused (``QUERY_RATE_EXCEEDED``, retry-after
  = until the first of them is full; at most 60 s since burst <= rate per
  minute) — fail closed: nobody gets more than its limit because the table
  is small.  A file with a bad header, checksum, version or size is
  re-initialised (every bucket full again, once), never trusted; a bucket
  with impossible values (NaN, negative, infinite) counts as empty (fail
  closed).  A forked child reopens the file (it would share the parent's
  lock otherwise).  :attr:`refused` counts this process's refusals (metrics
  are per process).
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import secrets
import struct
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from node.core._config import RightsConfig
from node.core._errors import ResourceExhaustedError

__all__ = [
    "DEFAULT_SLOTS",
    "RETRY_AFTER_KEY",
    "THROTTLED_METHODS",
    "Buckets",
    "MemoryBuckets",
    "QueryThrottle",
    "SharedBuckets",
]

RETRY_AFTER_KEY = "retry-after"
THROTTLED_METHODS = frozenset({"RequestAttestation"})


class Buckets(Protocol):
    """Where the token buckets live; :meth:`take` is atomic for its store."""

    def take(self, requester: str, rate: float, burst: float, clock: Callable[[], float]) -> float:
        """Take one token: 0.0 if taken, else the seconds until one is back (> 0).

        ``clock`` is read inside the store's critical section: with several
        processes, a time read before waiting for the lock could be older
        than the bucket's and would refill the same interval twice.
        """
        ...

    def close(self) -> None: ...


class MemoryBuckets:
    """Buckets in a dict of this process (one process, one event loop thread)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # requester -> (tokens, at)

    def take(self, requester: str, rate: float, burst: float, clock: Callable[[], float]) -> float:
        now = clock()
        tokens, at = self._buckets.get(requester, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens >= 1.0:
            self._buckets[requester] = (tokens - 1.0, now)
            return 0.0
        self._buckets[requester] = (tokens, now)
        return (1.0 - tokens) / rate

    def close(self) -> None:
        self._buckets.clear()


class QueryThrottle:
    def __init__(
        self,
        config: RightsConfig,
        now: Callable[[], float],
        *,
        buckets: Buckets | None = None,
    ) -> None:
        self._config = config
        self._now = now
        self._buckets: Buckets = buckets if buckets is not None else MemoryBuckets()
        self.refused: Counter[str] = Counter()

    @classmethod
    def shared(
        cls,
        config: RightsConfig,
        now: Callable[[], float],
        path: str | os.PathLike[str],
        *,
        slots: int | None = None,
    ) -> QueryThrottle:
        """A throttle whose buckets are shared by every process opening ``path``."""
        return cls(config, now, buckets=SharedBuckets(path, slots=slots))

    def applies_to(self, method: str) -> bool:
        return method in THROTTLED_METHODS

    def check(self, requester: str) -> None:
        per_minute = self._config.rate_for(requester)
        if per_minute == 0:  # no limit configured for this requester
            return
        rate = per_minute / 60.0  # tokens per second
        burst = float(min(self._config.query_burst, per_minute))
        wait = self._buckets.take(requester, rate, burst, self._now)
        if wait <= 0.0:
            return
        self.refused[requester] += 1
        seconds = max(1, math.ceil(wait))
        raise ResourceExhaustedError(
            "QUERY_RATE_EXCEEDED",
            f"query rate for this requester exceeded; retry after {seconds} s",
            details=((RETRY_AFTER_KEY, str(seconds)),),
        )

    def close(self) -> None:
        """Release the shared file (a no-op for in-process buckets' callers)."""
        self._buckets.close()


# ------------------------------------------------------------------ shared table
#
# File layout (little endian):
#   0   header: magic (8) | version u32 | slots u32 | salt (16) | BLAKE2b-8 of the 32 bytes before
#   64  keys:   slots x 16-byte digests (all zero = empty slot)
#   ..  values: slots x (tokens f64, at f64, full_at f64); at = last use (LRU),
#               full_at = when the bucket is full again (then evicting it loses nothing)

MAGIC = b"HXQTHR\x00\x01"
VERSION = 1
WAYS = 16  # slots per set
DEFAULT_SLOTS = 16_384  # 1024 sets; a 640 KiB file
MAX_SLOTS = 1 << 20
_HEAD = struct.Struct("<8sII16s")
_HEAD_BYTES = _HEAD.size + 8  # + checksum
_DATA = 64  # keys start here
_KEY = 16
_VALUE = struct.Struct("<ddd")
_SET_VALUES = struct.Struct(f"<{3 * WAYS}d")
_EMPTY = bytes(_KEY)
_REFILL_MAX = 60.0  # burst <= rate per minute: any bucket is full again within 60 s
_CACHE_MAX = 65_536  # requester -> digest cache entries before it is cleared

_OPEN: weakref.WeakSet[SharedBuckets] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child shares the parent's open file description, hence its
    # flock: it must open the file again before it may take a token.  A thread
    # lock held by another thread at fork time would never be released here.
    for table in list(_OPEN):
        table._forked = True
        table._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _file_size(slots: int) -> int:
    return _DATA + slots * (_KEY + _VALUE.size)


def _header(slots: int, salt: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, slots, salt)
    return head + hashlib.blake2b(head, digest_size=8).digest()


def _parse_header(raw: bytes, size: int) -> tuple[int, bytes] | None:
    """``(slots, salt)`` of a well-formed header for a file of ``size`` bytes, else None."""
    if len(raw) < _HEAD_BYTES:
        return None
    magic, version, slots, salt = _HEAD.unpack_from(raw)
    if magic != MAGIC or version != VERSION or raw[:_HEAD_BYTES] != _header(slots, salt):
        return None
    if not WAYS <= slots <= MAX_SLOTS or slots % WAYS or size != _file_size(slots):
        return None
    return slots, salt


class SharedBuckets:
    """Token buckets in a mapped file shared by the worker processes of one node.

    ``slots`` (a multiple of 16) only matters when this call creates or
    re-initialises the file; a valid existing file keeps its own size.
    """

    def __init__(self, path: str | os.PathLike[str], *, slots: int | None = None) -> None:
        want = DEFAULT_SLOTS if slots is None else slots
        if not WAYS <= want <= MAX_SLOTS or want % WAYS:
            raise ValueError(f"slots must be a multiple of {WAYS} in {WAYS}..{MAX_SLOTS}")
        self.path = Path(path)
        self._want = want
        self._lock = threading.Lock()  # threads of this process share one flock
        self._fd = -1
        self._mm: mmap.mmap | None = None
        self._head = b""
        self._salt = b""
        self._sets = 0
        self._values = 0  # offset of the values region
        self._cache: dict[str, tuple[bytes, int, int]] = {}  # requester -> (digest, set, slot)
        self._forked = False
        self.reinitialised = 0  # times this process found the file damaged and reset it
        self._open()
        _OPEN.add(self)

    # -------------------------------------------------------------- file handling

    def _open(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._fd = fd
                self._adopt()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            self._fd = -1
            os.close(fd)
            raise

    def _adopt(self) -> None:
        """Under the lock: map the file as its header says, re-initialising it if invalid."""
        size = found = os.fstat(self._fd).st_size
        parsed = _parse_header(os.pread(self._fd, _HEAD_BYTES, 0), size)
        if parsed is None:
            slots, salt = self._want, secrets.token_bytes(16)
            size = _file_size(slots)
            os.ftruncate(self._fd, size)
            os.pwrite(self._fd, _header(slots, salt).ljust(size, b"\0"), 0)
            self.reinitialised += found > 0  # an empty file is new, not damaged
        else:
            slots, salt = parsed
        if self._mm is None or len(self._mm) != size:
            if self._mm is not None:
                self._mm.close()
            self._mm = mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._head = _header(slots, salt)
        self._sets = slots // WAYS
        self._values = _DATA + slots * _KEY
        if salt != self._salt:
            self._cache.clear()
        self._salt = salt

    def _reopen_after_fork(self) -> None:
        old_mm, old_fd = self._mm, self._fd
        self._mm, self._fd = None, -1
        if old_mm is not None:
            old_mm.close()
        if old_fd >= 0:
            os.close(old_fd)  # the parent keeps its own descriptor and lock
        self._forked = False
        self._open()

    def close(self) -> None:
        with self._lock:
            if self._mm is not None:
                self._mm.close()
                self._mm = None
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            _OPEN.discard(self)

    # -------------------------------------------------------------- buckets

    def holds(self, requester: str) -> bool:
        """Whether the table has a bucket for ``requester`` now (tests, status)."""
        with self._lock:
            mm = self._mm
            if mm is None:
                raise ValueError("shared query throttle is closed")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if mm[:_HEAD_BYTES] != self._head:
                    return False
                digest, set_index, _ = self._cache.get(requester) or self._remember(requester)
                first = _DATA + set_index * WAYS * _KEY
                keys = mm[first : first + WAYS * _KEY]
                return any(keys[w * _KEY : (w + 1) * _KEY] == digest for w in range(WAYS))
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self, requester: str, rate: float, burst: float, clock: Callable[[], float]) -> float:
        with self._lock:
            if self._forked:
                self._reopen_after_fork()
            mm = self._mm
            if mm is None:
                raise ValueError("shared query throttle is closed")
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if mm[:_HEAD_BYTES] != self._head:  # re-initialised or damaged meanwhile
                    self._adopt()
                    mm = self._mm
                    assert mm is not None
                return self._take(mm, requester, rate, burst, clock())
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _take(self, mm: mmap.mmap, requester: str, rate: float, burst: float, now: float) -> float:
        cached = self._cache.get(requester)
        if cached is None:
            cached = self._remember(requester)
        digest, set_index, slot = cached
        key_at = _DATA + slot * _KEY
        fresh = False
        if slot < 0 or mm[key_at : key_at + _KEY] != digest:  # first use here, or evicted
            slot, fresh, wait = self._place(mm, digest, set_index, now)
            if slot < 0:
                return wait  # every slot of the set holds a partly used bucket
            self._cache[requester] = (digest, set_index, slot)
        value_at = self._values + slot * _VALUE.size
        if fresh:
            tokens, at = burst, now
        else:
            tokens, at, _ = _VALUE.unpack_from(mm, value_at)
            if not (0.0 <= tokens < math.inf and -math.inf < at < math.inf):
                tokens, at = 0.0, now  # impossible values: an empty bucket (fail closed)
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / rate
        _VALUE.pack_into(mm, value_at, tokens, now, now + max(0.0, burst - tokens) / rate)
        return wait

    def _remember(self, requester: str) -> tuple[bytes, int, int]:
        digest = hashlib.blake2b(
            requester.encode("utf-8", "surrogatepass"), digest_size=_KEY, key=self._salt
        ).digest()
        if digest == _EMPTY:  # (p = 2**-128) the all-zero key marks an empty slot
            digest = b"\x01" + digest[1:]
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        cached = self._cache[requester] = (
            digest,
            int.from_bytes(digest[8:], "little") % self._sets,
            -1,
        )
        return cached

    def _place(
        self, mm: mmap.mmap, digest: bytes, set_index: int, now: float
    ) -> tuple[int, bool, float]:
        """``(slot, fresh, 0)`` for ``digest`` in its set: its slot, else a claimed empty or
        evictable one (``fresh``); ``(-1, False, wait)`` when no slot may be taken."""
        first = set_index * WAYS
        keys = mm[_DATA + first * _KEY : _DATA + (first + WAYS) * _KEY]
        empty = -1
        for way in range(WAYS):
            key = keys[way * _KEY : (way + 1) * _KEY]
            if key == digest:
                return first + way, False, 0.0
            if empty < 0 and key == _EMPTY:
                empty = way
        if empty < 0:
            values = _SET_VALUES.unpack_from(mm, self._values + first * _VALUE.size)
            oldest, soonest = math.inf, math.inf
            for way in range(WAYS):
                at, full_at = values[3 * way + 1], values[3 * way + 2]
                if now < full_at <= now + _REFILL_MAX:  # partly used: keep it (fail closed)
                    soonest = min(soonest, full_at)
                    continue
                # full again, or an impossible value (NaN, beyond any refill): nothing to lose
                used = -math.inf if math.isnan(at) else at
                if empty < 0 or used < oldest:
                    empty, oldest = way, used
            if empty < 0:
                return -1, False, soonest - now
        key_at = _DATA + (first + empty) * _KEY
        mm[key_at : key_at + _KEY] = digest
        return first + empty, True, 0.0
