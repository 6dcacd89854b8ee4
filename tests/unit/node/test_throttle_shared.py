"""The shared query throttle file: processes, a full table, damage (N23, docs/adr/0314).

The behaviour itself (rates, bursts, hints) is in test_throttle.py for both
kinds of buckets; here: several real processes share one budget, a full
table fails closed, and a damaged file is re-initialised, never trusted.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.core._config import RightsConfig
from node.core._errors import ResourceExhaustedError
from node.exchange._throttle import (
    DEFAULT_SLOTS,
    RETRY_AFTER_KEY,
    WAYS,
    QueryThrottle,
    SharedBuckets,
    _file_size,
    _header,
)

_HEAD = 40  # header bytes (magic, version, slots, salt, checksum)


class _Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _hint(t: QueryThrottle, requester: str) -> int | None:
    """None if admitted, else the retry-after hint (whole seconds)."""
    try:
        t.check(requester)
    except ResourceExhaustedError as exc:
        refused = exc
    else:
        return None
    assert refused.code == "QUERY_RATE_EXCEEDED"
    return int(dict(refused.details)[RETRY_AFTER_KEY])


def _exhaust(t: QueryThrottle, requester: str) -> int:
    admitted = 0
    while _hint(t, requester) is None:
        admitted += 1
    return admitted


# ------------------------------------------------------------------ several processes


def _hammer(folder: str, barrier: Any, results: Any, calls: int) -> None:
    """Child process: open each table right after a barrier (racing the others), then hammer.

    First a frozen clock on a new file (no refill: the total is exactly the
    burst), then the real clock on another new file.
    """
    config = RightsConfig(queries_per_minute=6000, query_burst=40)  # 100 per second
    out: list[tuple[int, float, float, int]] = []
    clocks: list[tuple[str, Callable[[], float]]] = [
        ("frozen", _Clock(5_000.0)),
        ("running", time.time),
    ]
    for name, now in clocks:
        barrier.wait()
        t = QueryThrottle.shared(config, now, Path(folder) / f"{name}.throttle")
        admitted, first = 0, now()
        for _ in range(calls):
            admitted += _hint(t, "bank") is None
        out.append((admitted, first, now(), t.refused["bank"]))
        t.close()
    results.put(out)


def test_worker_processes_share_one_budget(tmp_path: Path) -> None:
    """REQ: N23 — 3 spawned processes, one requester: together one budget, not 3.

    The files do not exist yet; every process creates/opens them at the same
    moment.  Frozen clock: exactly the burst is admitted over all processes.
    Real clock: admitted ≤ burst + rate × elapsed.
    """
    processes, calls = 3, 2000
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    children = [
        ctx.Process(target=_hammer, args=(str(tmp_path), barrier, results, calls))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        outs = [results.get(timeout=60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * processes
    frozen = [out[0] for out in outs]
    assert sum(admitted for admitted, *_ in frozen) == 40
    assert sum(refused for *_, refused in frozen) == processes * calls - 40
    running = [out[1] for out in outs]
    admitted = sum(a for a, *_ in running)
    start, end = min(r[1] for r in running), max(r[2] for r in running)
    assert admitted <= 40 + 100 * (end - start) + 1e-6
    assert sum(refused for *_, refused in running) > 0  # the limit was reached


def test_two_tables_on_one_file_in_one_process_share_too(tmp_path: Path) -> None:
    clock = _Clock()
    config = RightsConfig(queries_per_minute=60, query_burst=5)
    a = QueryThrottle.shared(config, clock, tmp_path / "t")
    b = QueryThrottle.shared(config, clock, tmp_path / "t")
    try:
        assert _exhaust(a, "bank") + _exhaust(b, "bank") == 5
        assert (a.refused["bank"], b.refused["bank"]) == (1, 1)  # refusals are per process
        clock.t += 1
        assert _hint(b, "bank") is None
        assert _hint(a, "bank") == 1
    finally:
        a.close()
        b.close()


def test_a_forked_child_opens_its_own_lock_and_shares_the_budget(tmp_path: Path) -> None:
    clock = _Clock()
    t = QueryThrottle.shared(
        RightsConfig(queries_per_minute=60, query_burst=3), clock, tmp_path / "t"
    )
    try:
        t.check("bank")
        pid = os.fork()
        if pid == 0:  # child: two tokens left
            code = 1
            try:
                code = 100 + _exhaust(t, "bank")
                t.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 102
        assert _hint(t, "bank") == 1
    finally:
        t.close()


def test_state_survives_closing_and_reopening(tmp_path: Path) -> None:
    """A worker restarting does not hand its requesters a new burst."""
    clock = _Clock()
    config = RightsConfig(queries_per_minute=6, query_burst=2)
    t = QueryThrottle.shared(config, clock, tmp_path / "t")
    assert _exhaust(t, "bank") == 2
    t.close()
    t = QueryThrottle.shared(config, clock, tmp_path / "t")
    try:
        assert _hint(t, "bank") == 10
    finally:
        t.close()


# ------------------------------------------------------------------ a full table


def test_a_full_set_refuses_newcomers_until_a_bucket_is_full_again(tmp_path: Path) -> None:
    """REQ: N23 — eviction never hands out a new burst: a newcomer waits (fail closed)."""
    clock = _Clock(0.0)
    buckets = SharedBuckets(tmp_path / "t", slots=WAYS)  # one set
    t = QueryThrottle(RightsConfig(queries_per_minute=1, query_burst=1), clock, buckets=buckets)
    try:
        for i in range(WAYS):  # r0 at t=0, r1 at t=1, ..., each bucket empty
            clock.t = float(i)
            t.check(f"r{i}")
        clock.t = 30.0
        assert _hint(t, "late") == 30  # r0 is full again at t=60
        assert _hint(t, "r0") == 30  # and nobody was evicted
        assert all(buckets.holds(f"r{i}") for i in range(WAYS))
        assert not buckets.holds("late")
        clock.t = 59.5
        assert _hint(t, "late") == 1
        clock.t = 100.0  # all full again; r0 was used last at 30 (refused), r1 at 1
        t.check("late")  # evicts the least recently used: r1
        assert buckets.holds("late")
        assert not buckets.holds("r1")
        assert buckets.holds("r0")
        assert _hint(t, "late") == 60  # its own bucket, used
        for i in range(WAYS):
            if i != 1:
                t.check(f"r{i}")
        assert _hint(t, "r1") == 60  # every slot holds a used bucket again: r1 waits
    finally:
        t.close()


def test_unlimited_requesters_take_no_slot(tmp_path: Path) -> None:
    """REQ: N23 — 0 = no limit: nothing is stored, the table stays for the limited ones."""
    limited = {f"r{i}": 1 for i in range(WAYS)}
    config = RightsConfig(queries_per_minute=0, per_requester_per_minute=limited)
    buckets = SharedBuckets(tmp_path / "t", slots=WAYS)
    t = QueryThrottle(config, _Clock(), buckets=buckets)
    try:
        for i in range(200):
            t.check(f"free{i}")
        for name in limited:
            t.check(name)
        assert not buckets.holds("free0")
    finally:
        t.close()


def test_the_file_holds_no_requester_names_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "t"
    t = QueryThrottle.shared(RightsConfig(queries_per_minute=60), _Clock(), path)
    try:
        t.check("guangdong-bank")
        raw = path.read_bytes()
    finally:
        t.close()
    assert b"guangdong" not in raw
    assert "guangdong".encode("utf-16-le") not in raw
    assert len(raw) == _file_size(DEFAULT_SLOTS)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_bytes(b"keep me")
    (tmp_path / "t").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        SharedBuckets(tmp_path / "t")
    assert (tmp_path / "elsewhere").read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "slots",
    [
        pytest.param(0, id="zero"),
        pytest.param(WAYS - 1, id="under-one-set"),
        pytest.param(WAYS + 8, id="not-whole-sets"),
        pytest.param(1 << 21, id="too-many"),
    ],
)
def test_table_size_must_be_whole_sets(tmp_path: Path, slots: int) -> None:
    with pytest.raises(ValueError, match="slots"):
        SharedBuckets(tmp_path / "t", slots=slots)
    assert not (tmp_path / "t").exists()


def test_a_closed_table_refuses_to_answer(tmp_path: Path) -> None:
    t = QueryThrottle.shared(RightsConfig(queries_per_minute=60), _Clock(), tmp_path / "t")
    t.close()
    t.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        t.check("bank")


# ------------------------------------------------------------------ damage


def _salt_of(path: Path) -> bytes:
    return path.read_bytes()[16:32]


def _truncate(n: int) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        os.truncate(path, n)

    return damage


def _overwrite(at: int, data: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with path.open("r+b") as f:
            f.seek(at)
            f.write(data)

    return damage


def _extend(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"\0" * 64)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(_file_size(64)))


def _valid_header(slots: int) -> Callable[[Path], None]:
    """A header with a correct checksum but an impossible table size."""

    def damage(path: Path) -> None:
        _overwrite(0, _header(slots, _salt_of(path)))(path)

    return damage


_empty = _truncate(0)

DAMAGE = [
    pytest.param(_empty, id="empty"),
    pytest.param(_truncate(20), id="header-cut"),
    pytest.param(_truncate(_file_size(64) - 24), id="table-cut"),
    pytest.param(_extend, id="longer-than-its-header-says"),
    pytest.param(_overwrite(0, b"NOTHUXIN"), id="bad-magic"),
    pytest.param(_overwrite(8, struct.pack("<I", 2)), id="other-version"),
    pytest.param(_overwrite(38, b"\xff\xff"), id="bad-checksum"),
    pytest.param(_overwrite(20, b"\x00"), id="salt-changed-checksum-not"),
    pytest.param(_garbage, id="random-bytes"),
    pytest.param(_valid_header(WAYS + 8), id="slots-not-whole-sets"),
    pytest.param(_valid_header(128), id="slots-disagree-with-size"),
    pytest.param(_valid_header(1 << 21), id="slots-too-many"),
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_reinitialised_on_open(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "t"
    config = RightsConfig(queries_per_minute=6, query_burst=2)
    t = QueryThrottle.shared(config, _Clock(), path, slots=64)
    assert _exhaust(t, "bank") == 2
    t.close()
    damage(path)
    buckets = SharedBuckets(path, slots=64)
    t = QueryThrottle(config, _Clock(), buckets=buckets)
    try:
        assert buckets.reinitialised == (0 if damage is _empty else 1)  # empty: new, not damaged
        assert path.stat().st_size == _file_size(64)
        assert _exhaust(t, "bank") == 2  # a fresh table: everyone full again, once
    finally:
        t.close()
    again = SharedBuckets(path)  # now valid: adopted as it is, other size asked or not
    try:
        assert again.reinitialised == 0
        assert again.holds("bank")
    finally:
        again.close()


def test_a_file_damaged_while_open_is_reinitialised_once(tmp_path: Path) -> None:
    """Every process notices at its next check; one re-initialises, the others adopt."""
    path = tmp_path / "t"
    clock = _Clock()
    config = RightsConfig(queries_per_minute=6, query_burst=2)
    a_buckets, b_buckets = SharedBuckets(path, slots=64), SharedBuckets(path, slots=64)
    a = QueryThrottle(config, clock, buckets=a_buckets)
    b = QueryThrottle(config, clock, buckets=b_buckets)
    try:
        assert _exhaust(a, "bank") == 2
        _overwrite(0, os.urandom(_HEAD))(path)
        assert _hint(a, "bank") is None  # re-initialised: full again
        assert _hint(b, "bank") is None  # b adopts a's fresh table
        assert _hint(b, "bank") == 10
        assert (a_buckets.reinitialised, b_buckets.reinitialised) == (1, 0)
    finally:
        a.close()
        b.close()


def test_a_file_of_another_valid_size_is_adopted_not_reset(tmp_path: Path) -> None:
    """Processes asking for different sizes never fight: the file's own header wins."""
    path = tmp_path / "t"
    config = RightsConfig(queries_per_minute=6, query_burst=2)
    small = QueryThrottle.shared(config, _Clock(), path, slots=16)
    big = QueryThrottle.shared(config, _Clock(), path, slots=4096)
    try:
        assert _exhaust(small, "bank") == 2
        assert _hint(big, "bank") == 10
        assert path.stat().st_size == _file_size(16)
    finally:
        small.close()
        big.close()


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        pytest.param(b"\xff" * 8, 10, id="nan-tokens"),
        pytest.param(struct.pack("<d", -5.0), 10, id="negative-tokens"),
        pytest.param(struct.pack("<d", math.inf), 10, id="infinite-tokens"),
    ],
)
def test_impossible_bucket_values_count_as_empty(tmp_path: Path, value: bytes, hint: int) -> None:
    """REQ: N23 — fail closed: a bucket that cannot be read gives no tokens."""
    path = tmp_path / "t"
    clock = _Clock()
    t = QueryThrottle.shared(
        RightsConfig(queries_per_minute=6, query_burst=2), clock, path, slots=WAYS
    )
    try:
        t.check("bank")  # one token left
        values = 64 + WAYS * 16
        raw = path.read_bytes()
        used = [i for i in range(WAYS) if raw[64 + 16 * i : 80 + 16 * i] != bytes(16)]
        assert len(used) == 1
        _overwrite(values + 24 * used[0], value)(path)
        assert _hint(t, "bank") == hint
        clock.t += 10
        t.check("bank")  # and it heals as the bucket refills
    finally:
        t.close()
