"""Migration 0009: batch and record ids become per department.

REQ: H4, N7, N22 — a version-8 database keeps every record (same values, its
owner taken from its batch), every batch, every repair mark and every
late-sharing date; afterwards two departments may use one batch id and one
record id, while one department still may not use a record id twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.store import SCHEMA_VERSION, connect
from node.store._migrate import _script, migrations

K1, K2 = b"\x01" * 32, b"\x02" * 32
OLD_RECORD_COLUMNS = (
    "subject_key, record_id, source, category, polarity, act_id, recognised_on, valid_until, "
    "level, severity, legal_document, status, provenance, flags, batch_id, submitted_at, share_due"
)
# subject, record id, source, ..., batch id, submitted at, share_due
OLD_RECORDS = [
    (K1, "r1", "court", "honour", "positive", "a1", "2025-06-01", None, "city", None, None,
     "active", "public", "", "b1", "t1", None),
    (K1, "r2", "court", "fraud", "negative", "a2", "2025-06-02", "2027-01-01", None,
     "serious", "doc", "revoked", "public", "x,y", "b1", "t1", "2025-06-20"),
    (K2, "r3", "bank", "tax_paid", "positive", "a3", "2025-06-03", None, None, None, None,
     "masked", "market", "", "b2", "t2", None),
    (K2, "supp-9", "heihe-power", "volunteer", "positive", "a4", "2025-06-04", None, "city",
     None, None, "active", "personal_verified", "", "supp-9", "t3", None),
]  # fmt: skip


def _version_8(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    for mig in migrations()[:8]:
        raw.executescript(_script(mig))
    for k in (K1, K2):
        raw.execute("INSERT INTO subjects VALUES (?, '1990-01-01', 1, x'00', 't0', NULL)", (k,))
    raw.executemany(
        "INSERT INTO source_batches (batch_id, submitted_by, records, sha256, committed_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [("b1", "heihe-court", 2, b"\x11" * 32, "t1"), ("b2", "heihe-bank", 1, b"\x22" * 32, "t2")],
    )
    marks = ",".join("?" * len(OLD_RECORDS[0]))
    raw.executemany(f"INSERT INTO records ({OLD_RECORD_COLUMNS}) VALUES ({marks})", OLD_RECORDS)
    raw.execute(
        "INSERT INTO record_marks (record_id, status, repair_route, note, marked_by, marked_at) "
        "VALUES ('r2', 'revoked', '', 'error', 'heihe-court', 't5')"
    )
    raw.close()


def test_0009_keeps_every_row_and_names_each_records_department(tmp_path: Path) -> None:
    """REQ: H4, N7, N22 — every record keeps its values; its department is its batch's
    submitter (a verified supplement without a batch row: its source); batches and
    marks are kept and name the department."""
    _version_8(tmp_path / "old.db")
    conn = connect(tmp_path / "old.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    rows = conn.execute(f"SELECT {OLD_RECORD_COLUMNS} FROM records ORDER BY record_id").fetchall()
    assert rows == sorted(OLD_RECORDS, key=lambda r: str(r[1]))
    owners = dict(conn.execute("SELECT record_id, submitted_by FROM records").fetchall())
    assert owners == {
        "r1": "heihe-court",
        "r2": "heihe-court",
        "r3": "heihe-bank",
        "supp-9": "heihe-power",
    }
    batches = conn.execute(
        "SELECT submitted_by, batch_id, records, sha256, committed_at FROM source_batches "
        "ORDER BY batch_id"
    ).fetchall()
    assert batches == [
        ("heihe-court", "b1", 2, b"\x11" * 32, "t1"),
        ("heihe-bank", "b2", 1, b"\x22" * 32, "t2"),
    ]
    assert conn.execute("SELECT submitted_by, record_id, note FROM record_marks").fetchall() == [
        ("heihe-court", "r2", "error")
    ]
    conn.close()


# name, department, record id, batch id: what a migrated database accepts or refuses
AFTER_0009 = [
    ("other-department-same-record-id", "heihe-bank", "r1", "b9", None),
    ("other-department-same-batch-id", "heihe-bank", "r9", "b1", None),
    ("same-department-same-record-id", "heihe-court", "r1", "b9", "records.submitted_by"),
    ("same-department-same-batch-id", "heihe-court", "r9", "b1", "source_batches"),
]


@pytest.mark.parametrize(
    ("name", "owner", "record_id", "batch_id", "clash"),
    AFTER_0009,
    ids=[c[0] for c in AFTER_0009],
)
def test_0009_ids_are_unique_per_department(
    tmp_path: Path, name: str, owner: str, record_id: str, batch_id: str, clash: str | None
) -> None:
    """REQ: H4 — (department, record id) and (department, batch id) are unique; the same
    ids from another department are other rows."""
    _version_8(tmp_path / "old.db")
    conn = connect(tmp_path / "old.db")
    before = conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def write() -> None:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO records (subject_key, record_id, submitted_by, source, category, "
            "polarity, act_id, recognised_on, batch_id, submitted_at) "
            "VALUES (?, ?, ?, 'x', 'honour', 'positive', 'a9', '2025-06-09', ?, 't9')",
            (K1, record_id, owner, batch_id),
        )
        conn.execute(
            "INSERT INTO source_batches (submitted_by, batch_id, records, sha256, committed_at) "
            "VALUES (?, ?, 1, x'33', 't9')",
            (owner, batch_id),
        )
        conn.execute("COMMIT")

    if clash is None:
        write()
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == before + 1
    else:
        with pytest.raises(sqlite3.IntegrityError, match=clash):
            write()
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == before
    conn.close()
