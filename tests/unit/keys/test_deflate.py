"""Status-list compression: a canonical zlib stream, independent of the zlib build.

REQ: H17 (signed status lists reproducible byte for byte, so published test
vectors do not drift with the machine that regenerates them).
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import MIN_ENTRIES, Status, StatusList, Trust, load_trust, verify_status_list
from keys._deflate import MIN_RUN, compress

from .conftest import DAY, T0, World

GOLDEN = [
    ("empty", b"", "7801010000ffff00000001"),
    (
        "run_stored_run",
        b"\x00" * 300 + b"\x01\x02\x03" + b"\xff" * 9,
        "7801621805440300000300fcff010203fb0f03002e4b08fe",
    ),
]


@pytest.mark.parametrize(
    ("data", "hexed"), [(d, h) for _, d, h in GOLDEN], ids=[n for n, _, _ in GOLDEN]
)
def test_golden_encodings(data: bytes, hexed: str) -> None:
    """The exact bytes are fixed by docs/SPEC.md section 5, not by the local zlib."""
    assert compress(data).hex() == hexed
    assert zlib.decompress(bytes.fromhex(hexed)) == data


RUN_LENGTHS = [
    1,
    2,
    3,
    MIN_RUN - 1,
    MIN_RUN,
    258,
    259,
    260,
    261,
    262,
    518,
    519,
    520,
    2072,
    2073,
    2331,
]


@pytest.mark.parametrize("length", RUN_LENGTHS, ids=[f"run{n}" for n in RUN_LENGTHS])
def test_match_boundaries_round_trip(length: int) -> None:
    data = b"ab" + b"\x07" * length + b"c"
    assert zlib.decompress(compress(data)) == data


def test_long_stored_stretch_is_split_into_blocks() -> None:
    data = bytes(i * 7 % 251 for i in range(200_000))  # no run of MIN_RUN anywhere
    out = compress(data)
    assert zlib.decompress(out) == data
    assert len(out) == len(data) + 5 * (len(data) // 65_535 + 1) + 6  # 4 stored blocks


def test_largest_list_compresses_fast_and_small() -> None:
    data = bytes(1 << 24)
    out = compress(data)
    assert zlib.decompress(out) == data
    assert len(out) < 110_000


_chunks = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(1, 3000)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_chunks, max_size=8).map(b"".join))
def test_round_trip_and_deterministic(data: bytes) -> None:
    out = compress(data)
    assert zlib.decompress(out) == data
    assert compress(bytes(data)) == out


def test_signed_status_list_bytes_do_not_depend_on_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing never calls the local compressor (whose output varies between builds)."""
    world = World()
    before = world.status.sign(world.heihe_key, T0 - 60, T0 + DAY)

    def refuse(*_: object, **__: object) -> bytes:
        raise AssertionError("zlib.compress used")

    monkeypatch.setattr(zlib, "compress", refuse)
    again = world.status.sign(world.heihe_key, T0 - 60, T0 + DAY)
    assert again == before
    trust: Trust = load_trust(world.bundle_v2, world.hub_root.public_key, T0)
    sl = verify_status_list(again, trust, T0)
    assert [sl.get(i) for i in (3, 7, 8, 9)] == [
        Status.VALID,
        Status.REVOKED,
        Status.SUSPENDED,
        Status.SUPERSEDED,
    ]


def test_dense_list_round_trips_through_signing() -> None:
    world = World()
    sl = StatusList("heihe", "dense", MIN_ENTRIES)
    for i in range(0, MIN_ENTRIES, 3):
        sl.set(i, Status((i // 3) % 4))
    env = sl.sign(world.heihe_key, T0 - 60, T0 + DAY)
    trust = load_trust(world.bundle_v2, world.hub_root.public_key, T0)
    back = verify_status_list(env, trust, T0)
    assert all(back.get(i) == sl.get(i) for i in range(0, MIN_ENTRIES, 997))
