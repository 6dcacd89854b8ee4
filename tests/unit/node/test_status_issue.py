"""Status-list issue times (node/store/_status_list.py): never two different lists with one
``issued_at``, never a later list dated earlier — across the processes of one
node (docs/adr/0312) and across restarts, because the last issue is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.store._db import Database
from node.store._status_list import _render, next_issue_time

A, B = b"a" * 32, b"b" * 32


@pytest.mark.parametrize(
    ("last", "now", "digest", "expected"),
    [
        pytest.param(None, 100, A, 100, id="first"),
        pytest.param((100, A), 100, A, 100, id="same-second-same-list"),
        pytest.param((100, A), 100, B, 101, id="same-second-changed"),
        pytest.param((105, A), 100, B, 106, id="clock-behind-changed"),
        pytest.param((105, A), 100, A, 105, id="clock-behind-same"),
        pytest.param((100, A), 101, B, 101, id="later-second"),
    ],
)
def test_next_issue_time(
    last: tuple[int, bytes] | None, now: int, digest: bytes, expected: int
) -> None:
    assert next_issue_time(last, now, digest) == expected


async def _revoke_one(db: Database, idx: int) -> None:
    await db.write_unit(
        lambda c: c.execute(
            "INSERT INTO status_entries (idx, attestation_id, subject_key, consent_id, status, "
            "issued_at, expires_at) VALUES (?, ?, x'01', 'c', 1, 0, 10)",
            (idx, f"a{idx}"),
        )
    )


async def test_two_processes_date_changed_lists_apart(tmp_path: Path) -> None:
    first = await Database.open(tmp_path / "n.db")
    second = await Database.open(tmp_path / "n.db")  # another process's handle
    try:
        r1 = await first.write_unit(lambda c: _render(c, 0, 1000))
        await _revoke_one(second, 0)
        r2 = await second.write_unit(lambda c: _render(c, 0, 1000))  # same second, changed
        r3 = await first.write_unit(lambda c: _render(c, 0, 999))  # a clock behind
        assert (r1.issued, r2.issued, r3.issued) == (1000, 1001, 1001)
        assert r2.entries == r3.entries == [(0, 1)] and r1.entries == []
    finally:
        await first.close()
        await second.close()
    reopened = await Database.open(tmp_path / "n.db")  # a restart remembers the last issue
    try:
        await _revoke_one(reopened, 1)
        r4 = await reopened.write_unit(lambda c: _render(c, 0, 1000))
        assert r4.issued == 1002
    finally:
        await reopened.close()
