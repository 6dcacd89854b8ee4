"""Monthly recomputation: correctness against the engine, chunked transactions, idempotence."""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from node.monthly._batch import BatchError, chunk_bounds, load_subject, period_as_of, run_month
from node.store import StorageError, connect
from node.synthetic._population import read_spec
from scoring import (
    CreditRecord,
    Residence,
    Subject,
    load_scheme,
    score,
    validate_record,
)

from ._population_fixtures import Populations, copy_of

HEIHE = load_scheme("heihe")
PERIOD = "2026-11"


@pytest.mark.parametrize(
    ("period", "last_day"),
    [
        pytest.param("2026-11", date(2026, 11, 30), id="november"),
        pytest.param("2026-12", date(2026, 12, 31), id="december"),
        pytest.param("2024-02", date(2024, 2, 29), id="leap-february"),
        pytest.param("2025-02", date(2025, 2, 28), id="february"),
    ],
)
def test_period_ends_on_its_last_day(period: str, last_day: date) -> None:
    assert period_as_of(period) == last_day


@pytest.mark.parametrize(
    "period",
    ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "2026-11-01", "1899-12", "abcd-ef"],
    ids=[
        "month-13",
        "month-0",
        "one-digit",
        "short-year",
        "slash",
        "empty",
        "a-date",
        "too-old",
        "letters",
    ],
)
def test_bad_periods_are_refused(period: str) -> None:
    with pytest.raises(BatchError) as err:
        period_as_of(period)
    assert err.value.code == "INVALID_PERIOD"


def test_chunks_cover_the_key_space_contiguously() -> None:
    chunks = chunk_bounds(7)
    assert chunks[0].lo == b"\x00" * 8
    assert chunks[-1].hi is None
    for a, b in itertools.pairwise(chunks):
        assert a.hi == b.lo
        assert a.lo < b.lo


def _snapshots(db: Path, period: str = PERIOD) -> dict[bytes, tuple[int, int | None, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT subject_key, eligible, score, grade FROM monthly_snapshots"
                " WHERE period = ? AND scheme_id = 'heihe'",
                (period,),
            )
        }
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, populations: Populations) -> Path:
    db = copy_of(populations.db(), tmp_path_factory.mktemp("scored"))
    run_month(db, HEIHE, PERIOD, workers=2, chunk_subjects=300)
    return db


def _through_intake(raw: dict[str, Any], as_of: date) -> CreditRecord:
    """A stored row validated as intake would; a stored H10 reference ("<kind> <number>")
    is filed as its structured form, and a generated deduction without one (which intake
    refuses, issue 15 §3) is kept as stored, without a reference, for the engine to exclude."""
    stored = raw.pop("legal_document", None)
    if raw["category"] != "responsible_individual":
        return validate_record(raw, HEIHE, as_of)
    kind, _, number = (stored or "ruling （2026）黑11执1号").partition(" ")
    raw["legal_document"] = {"kind": kind, "number": number, "issuing_body": "黑河市中级人民法院",
                             "issued_on": raw["recognised_on"],
                             "organisation_code": "91350100M000100Y43"}  # fmt: skip
    rec = validate_record(raw, HEIHE, as_of)
    return rec if stored else replace(rec, legal_document=None, legal_reference=None)


def test_snapshots_match_the_engine_for_a_sample(scored: Path) -> None:
    """REQ: H8, H9, H10 — the batch stores exactly what scoring.score computes.

    Rebuilds each sampled person from the ID number (Subject.from_id_number)
    and full CreditRecords through intake validation, independently of the
    batch reader.
    """
    conn = sqlite3.connect(scored)
    conn.row_factory = sqlite3.Row
    spec = read_spec(conn)
    assert spec is not None
    secrets = spec.secrets()
    snaps = _snapshots(scored)
    as_of = period_as_of(PERIOD)
    checked = eligible = 0
    for index in range(0, spec.people, 7):
        id_number = spec.id_number(index)
        key = secrets.subject_key(id_number)
        subj = conn.execute("SELECT * FROM subjects WHERE subject_key = ?", (key,)).fetchone()
        if subj["deregistered_at"] is not None:
            assert key not in snaps
            continue
        residences = tuple(
            Residence(r["kind"], date.fromisoformat(r["since"]))
            for r in conn.execute("SELECT * FROM residences WHERE subject_key = ?", (key,))
        )
        subject = Subject.from_id_number(
            id_number, residences, full_civil_capacity=bool(subj["full_civil_capacity"])
        )
        records: list[CreditRecord] = []
        for r in conn.execute("SELECT * FROM records WHERE subject_key = ?", (key,)):
            raw = {k: r[k] for k in r.keys() if r[k] is not None}  # noqa: SIM118 - sqlite3.Row iterates values
            raw["subject_id"] = id_number
            raw["flags"] = [f for f in r["flags"].split(",") if f]
            records.append(_through_intake(raw, as_of))
        expected = score(subject, records, HEIHE, as_of, explain=False)
        assert snaps[key] == (int(expected.eligible), expected.score, expected.grade)
        checked += 1
        eligible += expected.eligible
    conn.close()
    assert checked > 150
    assert 0 < eligible < checked


def test_everyone_registered_is_scored_once(scored: Path) -> None:
    conn = sqlite3.connect(scored)
    registered = conn.execute(
        "SELECT count(*) FROM subjects WHERE registered_at < '2026-12-01'"
        " AND (deregistered_at IS NULL OR deregistered_at >= '2026-12-01')"
    ).fetchone()[0]
    (total,) = conn.execute("SELECT count(*) FROM subjects").fetchone()
    run = conn.execute(
        "SELECT run_id, chunks, finished_at FROM snapshot_runs WHERE period = ?", (PERIOD,)
    ).fetchone()
    chunk_sum = conn.execute(
        "SELECT sum(subjects), count(*) FROM snapshot_run_chunks WHERE run_id = ?", (run[0],)
    ).fetchone()
    conn.close()
    snaps = _snapshots(scored)
    assert len(snaps) == registered == chunk_sum[0]
    assert total > registered  # deregistered people are not scored
    assert chunk_sum[1] == run[1] and run[2] is not None
    ineligible = [v for v in snaps.values() if v[0] == 0]
    assert ineligible and all(v[1] is None and v[2] is None for v in ineligible)


def test_one_worker_and_two_workers_store_the_same(
    scored: Path, tmp_path: Path, populations: Populations
) -> None:
    db = copy_of(populations.db(), tmp_path)
    summary = run_month(db, HEIHE, PERIOD, workers=1, chunk_subjects=1000)
    assert summary.chunks == 2
    assert _snapshots(db) == _snapshots(scored)


def test_a_finished_run_is_not_recomputed(scored: Path) -> None:
    before = _snapshots(scored)
    again = run_month(scored, HEIHE, PERIOD, workers=1)
    assert again.already_complete
    assert again.chunks_computed == 0
    assert _snapshots(scored) == before
    assert sum(again.grades.values()) == again.eligible


def test_force_replaces_a_run_with_the_same_result(tmp_path: Path, scored: Path) -> None:
    db = copy_of(scored, tmp_path)
    summary = run_month(db, HEIHE, PERIOD, workers=1, force=True)
    assert not summary.already_complete
    assert summary.chunks_computed == summary.chunks
    assert _snapshots(db) == _snapshots(scored)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM snapshot_runs").fetchone()[0] == 1
    conn.close()


def test_another_period_is_a_separate_run(tmp_path: Path, populations: Populations) -> None:
    db = copy_of(populations.db(), tmp_path)
    nov = run_month(db, HEIHE, "2026-11", workers=1)
    oct_ = run_month(db, HEIHE, "2026-10", workers=1)
    assert nov.run_id != oct_.run_id
    assert oct_.as_of == date(2026, 10, 31)
    assert _snapshots(db, "2026-10") != _snapshots(db, "2026-11")


def test_failure_mid_run_leaves_complete_chunks_only_and_resumes(
    tmp_path: Path, populations: Populations
) -> None:
    """A chunk's snapshots and its chunk row commit together; a rerun finishes the month."""
    (tmp_path / "fresh").mkdir()
    fresh = copy_of(populations.db(), tmp_path / "fresh")
    run_month(fresh, HEIHE, PERIOD, workers=1, chunk_subjects=200)
    db = copy_of(populations.db(), tmp_path)
    conn = connect(db)
    keys_sorted = [r[0] for r in conn.execute("SELECT subject_key FROM subjects ORDER BY 1")]
    poisoned = keys_sorted[len(keys_sorted) * 3 // 5]
    conn.execute(
        "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id,"
        " recognised_on, batch_id, submitted_at, submitted_by) VALUES (?, 'poison', 'test',"
        " 'no_such_category', 'positive', 'poison-act', '2026-01-01', 'test',"
        " '2026-01-01T00:00:00Z', 'test')",
        (poisoned,),
    )
    conn.close()
    with pytest.raises(BatchError) as err:
        run_month(db, HEIHE, PERIOD, workers=1, chunk_subjects=200)
    assert err.value.code == "UNKNOWN_CATEGORY"
    conn = connect(db)
    run_id, chunks, finished = conn.execute(
        "SELECT run_id, chunks, finished_at FROM snapshot_runs"
    ).fetchone()
    assert finished is None
    done = dict(
        conn.execute(
            "SELECT chunk, subjects FROM snapshot_run_chunks WHERE run_id = ?", (run_id,)
        ).fetchall()
    )
    assert 0 < len(done) < chunks
    bounds = chunk_bounds(chunks)
    stored = [r[0] for r in conn.execute("SELECT subject_key FROM snapshots")]
    assert len(stored) == sum(done.values())
    for key in stored:
        chunk = next(c for c in reversed(bounds) if key >= c.lo)
        assert chunk.number in done  # no row of an uncommitted chunk
    conn.execute("DELETE FROM records WHERE record_id = 'poison'")
    conn.close()
    resumed = run_month(db, HEIHE, PERIOD, workers=1, chunk_subjects=999)
    assert resumed.chunks == chunks  # the run keeps its own chunking
    assert resumed.chunks_computed == chunks - len(done)
    assert _snapshots(db) == _snapshots(fresh)


def test_unknown_category_under_another_scheme(tmp_path: Path, populations: Populations) -> None:
    db = copy_of(populations.db(), tmp_path)
    with pytest.raises(BatchError) as err:
        run_month(db, load_scheme("fuzhou"), PERIOD, workers=1)
    assert err.value.code == "UNKNOWN_CATEGORY"
    assert "fuzhou" in str(err.value)


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as err:
        run_month(tmp_path / "nope.db", HEIHE, PERIOD)
    assert err.value.code == "DB_NOT_FOUND"
    assert not (tmp_path / "nope.db").exists()


def test_load_subject_finds_exactly_one(scored: Path) -> None:
    conn = connect(scored, readonly=True)
    spec = read_spec(conn)
    assert spec is not None
    key = spec.secrets().subject_key(spec.id_number(3))
    loaded = load_subject(conn, key, period_as_of(PERIOD))
    n = conn.execute("SELECT count(*) FROM records WHERE subject_key = ?", (key,)).fetchone()[0]
    assert load_subject(conn, b"\xff" * 32, period_as_of(PERIOD)) is None
    conn.close()
    if loaded is not None:
        assert len(loaded[1]) == n


def test_the_monthly_run_writes_under_the_nodes_writer_lock(
    tmp_path: Path, populations: Populations
) -> None:
    """REQ: H3 — a monthly run against a serving node's database queues on the same
    writer lock as the node's own writers (ADR 0312/0315): it writes nothing while
    another holder has the lock, and finishes once it is free."""
    import threading

    from node.store._locks import WriterLock

    db = copy_of(populations.db(), tmp_path)
    other = WriterLock(db)  # as a serving node mid-commit
    other.acquire()
    out: list[object] = []
    runner = threading.Thread(target=lambda: out.append(run_month(db, HEIHE, "2026-10")))
    runner.start()
    runner.join(0.5)
    assert runner.is_alive()  # waiting for the lock, not writing
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM snapshot_runs").fetchone() == (0,)
    finally:
        conn.close()
    other.release()
    runner.join(60)
    assert not runner.is_alive() and len(out) == 1
    assert _snapshots(db, "2026-10")
    other.close()
