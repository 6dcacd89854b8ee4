"""Opted-out residents leave the monthly run (N3) — the selection in node.monthly._batch."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from node.core._errors import NodeError
from node.monthly._batch import chunk_bounds, read_chunk
from node.rights import OPTED_OUT_SUBJECTS, is_opted_out_sync, refuse_if_opted_out
from node.store import connect


def _subject(conn: sqlite3.Connection, n: int) -> bytes:
    key = bytes([n]) * 32
    conn.execute(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
        "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
        (key,),
    )
    return key


def test_monthly_selection_leaves_out_opted_out_residents(tmp_path: Path) -> None:
    """REQ: N3, N4 — while opted out no score is computed for the person: the monthly
    run's subject selection skips them; opting back in brings them back."""
    conn = connect(tmp_path / "n.db")
    a, b = _subject(conn, 1), _subject(conn, 2)
    conn.execute("INSERT INTO opt_outs (subject_key, opted_out_at) VALUES (?, 'x')", (a,))
    (chunk,) = chunk_bounds(1)
    assert [k for k, _s, _r in read_chunk(conn, chunk, date(2026, 9, 1))] == [b]
    assert [bytes(r[0]) for r in conn.execute(OPTED_OUT_SUBJECTS)] == [a]
    assert is_opted_out_sync(conn, a) == "x" and is_opted_out_sync(conn, b) is None
    with pytest.raises(NodeError) as info:
        refuse_if_opted_out(conn, a)
    assert info.value.code == "SUBJECT_OPTED_OUT"
    refuse_if_opted_out(conn, b)
    conn.execute("DELETE FROM opt_outs WHERE subject_key = ?", (a,))
    assert [k for k, _s, _r in read_chunk(conn, chunk, date(2026, 9, 1))] == [a, b]
