"""The published grade of a person (H3) and its corrections (H16), on a real SQLite file.

REQ: H3 — what leaves the node is the grade of the last finished month as its run
stored it, never a live score; no finished month: SCORE_NOT_PUBLISHED.  REQ: H16 — a
rights event appends a correction of the published month at once; the run's row
stays (audit).  Issue 15 §3; docs/adr/0514.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.core._errors import FailedPreconditionError
from node.exchange._mapping import Mapper
from node.monthly import LATE, correct_published, published_grade
from node.monthly._batch import run_month
from node.store import connect
from scoring import load_scheme

HEIHE = load_scheme("heihe")
AT = datetime(2026, 10, 15, 3, 0, tzinfo=UTC)  # mid-October: September is published
ALICE, BOB, LATECOMER = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def _person(
    conn: sqlite3.Connection, key: bytes, registered: str = "2026-01-01", capacity: int = 1
) -> None:
    conn.execute(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at,"
        " full_civil_capacity) VALUES (?, '1980-01-01', x'00', ?, ?)",
        (key, registered, capacity),
    )
    conn.execute(
        "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'hukou', '2000-01-01')",
        (key,),
    )


def _penalty(conn: sqlite3.Connection, key: bytes, rid: str, on: str, submitted: str) -> None:
    conn.execute(
        "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id,"
        " recognised_on, severity, batch_id, submitted_at, submitted_by)"
        " VALUES (?, ?, 'court', 'admin_penalty', 'negative', ?, ?, 'serious', 'b', ?, 'court')",
        (key, rid, f"act-{rid}", on, submitted),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "n.db"
    conn = connect(path)
    _person(conn, ALICE)
    _person(conn, BOB)
    _penalty(conn, BOB, "p-1", "2026-09-10", "2026-09-12T08:00:00+00:00")
    conn.close()
    return path


def _grade(conn: sqlite3.Connection, key: bytes) -> tuple[str, int | None, object, str]:
    return published_grade(conn, key, scheme=HEIHE, mapper=Mapper(HEIHE), target="", at=AT)


def _corrections(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM published_corrections").fetchone()[0])


@pytest.mark.parametrize("runs", [(), ("2026-10",)], ids=["no-run", "only-the-month-under-way"])
def test_no_finished_month_is_refused_and_nothing_is_written(db: Path, runs: tuple[str]) -> None:
    """REQ: H3 — issue 15 §3: before the node's first run, and with only a run of the month
    under way (which a library call can make), there is no published grade:
    FAILED_PRECONDITION SCORE_NOT_PUBLISHED, never a live score; nothing is written."""
    for period in runs:
        run_month(db, HEIHE, period, workers=1)
    conn = connect(db)
    with pytest.raises(FailedPreconditionError) as err:
        _grade(conn, ALICE)
    assert err.value.code == "SCORE_NOT_PUBLISHED"
    assert _corrections(conn) == 0
    conn.close()


def test_the_runs_row_is_served_with_its_month_and_a_later_record_waits(db: Path) -> None:
    """REQ: H3 — issue 15 §3: the grade and period are the run's; a record filed after the
    run, even one dated inside the month, changes nothing until the next run."""
    run_month(db, HEIHE, "2026-09", workers=1, records_through="2026-10-01T01:59:59+00:00")
    conn = connect(db)
    assert _grade(conn, BOB) == ("B", 520, None, "2026-09")
    assert _grade(conn, ALICE) == ("A", 600, None, "2026-09")
    _penalty(conn, ALICE, "p-2", "2026-09-20", "2026-10-05T08:00:00+00:00")
    assert _grade(conn, ALICE) == ("A", 600, None, "2026-09")
    assert _corrections(conn) == 0  # served from the run's own row
    conn.close()


def test_a_correction_is_the_newest_entry_and_the_original_stays(db: Path) -> None:
    """REQ: H16 — issue 15 §3: a rights event corrects the published month at once; the
    run's row is kept, each correction is appended with its cause."""
    run_month(db, HEIHE, "2026-09", workers=1, records_through="2026-10-01T01:59:59+00:00")
    conn = connect(db)
    conn.execute("UPDATE records SET status = 'masked' WHERE record_id = 'p-1'")
    fixed = correct_published(conn, BOB, HEIHE, "objection o-1 (record masked)", AT.isoformat())
    assert fixed is not None
    assert (fixed.period, fixed.prior, fixed.after.grade) == ("2026-09", "B", "A")
    assert _grade(conn, BOB) == ("A", 600, None, "2026-09")
    conn.execute("UPDATE records SET status = 'active' WHERE record_id = 'p-1'")
    again = correct_published(conn, BOB, HEIHE, "objection o-1 (mask lifted)", AT.isoformat())
    assert again is not None and (again.prior, again.after.grade) == ("A", "B")
    assert _grade(conn, BOB) == ("B", 520, None, "2026-09")
    assert conn.execute(
        "SELECT grade FROM snapshots JOIN snapshot_runs USING (run_id) WHERE period = '2026-09'"
        " AND subject_key = ?",
        (BOB,),
    ).fetchone() == ("B",)  # the month's original
    assert [r[0] for r in conn.execute(
        "SELECT cause FROM published_corrections WHERE subject_key = ? ORDER BY id", (BOB,)
    )] == ["objection o-1 (record masked)", "objection o-1 (mask lifted)"]  # fmt: skip
    conn.close()


def test_nothing_published_yet_corrects_nothing(db: Path) -> None:
    """REQ: H16 — with no month published, a rights event has nothing to correct; the
    next run reads the changed records."""
    conn = connect(db)
    assert correct_published(conn, BOB, HEIHE, "repair", AT.isoformat()) is None
    assert _corrections(conn) == 0
    conn.close()


def test_a_person_the_run_did_not_score_is_published_once(db: Path) -> None:
    """REQ: H3, H8 — issue 15 §3: a resident the node learned of after the month's end is
    published once, as of that month's last day on the facts dated up to it (a clean
    resident: the base, A); a record filed afterwards waits for the next run."""
    run_month(db, HEIHE, "2026-09", workers=1, records_through="2026-10-01T01:59:59+00:00")
    conn = connect(db)
    _person(conn, LATECOMER, registered="2026-10-10")
    assert _grade(conn, LATECOMER) == ("A", 600, None, "2026-09")
    _penalty(conn, LATECOMER, "p-3", "2026-09-05", "2026-10-12T08:00:00+00:00")
    assert _grade(conn, LATECOMER) == ("A", 600, None, "2026-09")
    assert conn.execute(
        "SELECT count(*), min(cause) FROM published_corrections WHERE subject_key = ?",
        (LATECOMER,),
    ).fetchone() == (1, LATE)
    conn.close()


def test_a_person_unknown_or_not_eligible_is_refused_by_name(db: Path) -> None:
    """REQ: H1, H3 — nobody to publish: SUBJECT_UNKNOWN; a person the month found not
    eligible has no grade: SUBJECT_NOT_ELIGIBLE (both FAILED_PRECONDITION)."""
    run_month(db, HEIHE, "2026-09", workers=1)
    conn = connect(db)
    _person(conn, LATECOMER, registered="2026-10-10", capacity=0)
    for key, code in ((b"\x09" * 32, "SUBJECT_UNKNOWN"), (LATECOMER, "SUBJECT_NOT_ELIGIBLE")):
        with pytest.raises(FailedPreconditionError) as err:
            _grade(conn, key)
        assert err.value.code == code
    conn.close()


def test_a_month_published_before_anyone_was_filed_is_run_again(tmp_path: Path) -> None:
    """REQ: H3 — issue 15 §3 (docs/adr/0514): a fresh node's scheduler publishes the last
    month before the population authority has filed anyone; the month run again (e.g.
    `huxin score publish`) then scores the people, instead of keeping the empty run, and
    a month that scored people is not recomputed."""
    db = tmp_path / "fresh.db"
    connect(db).close()
    empty = run_month(db, HEIHE, "2026-09", workers=1)
    assert (empty.subjects, empty.already_complete) == (0, False)
    conn = connect(db)
    _person(conn, ALICE, registered="2026-10-03")
    conn.close()
    again = run_month(db, HEIHE, "2026-09", workers=1)
    assert (again.subjects, again.eligible, again.already_complete) == (1, 1, False)
    kept = run_month(db, HEIHE, "2026-09", workers=1)
    assert (kept.run_id, kept.subjects, kept.already_complete) == (again.run_id, 1, True)


def test_a_correction_reads_only_the_records_the_run_read(db: Path) -> None:
    """REQ: H3, H16 — issue 15 §3: September is published; a penalty dated in September
    but filed in October waits for the next run, so a rights event in October (the
    masked record here stands for a court revoking a decision) corrects September from
    the records the run read and never pulls the October-filed penalty in."""
    run_month(db, HEIHE, "2026-09", workers=1, records_through="2026-10-01T01:59:59+00:00")
    conn = connect(db)
    _penalty(conn, BOB, "p-2", "2026-09-20", "2026-10-05T08:00:00+00:00")
    conn.execute("UPDATE records SET status = 'masked' WHERE record_id = 'p-1'")
    fixed = correct_published(conn, BOB, HEIHE, "court revoked p-1", AT.isoformat())
    assert fixed is not None
    assert (fixed.prior, fixed.after.grade, fixed.after.score) == ("B", "A", 600)
    assert _grade(conn, BOB) == ("A", 600, None, "2026-09")
    conn.close()


def _consent(conn: sqlite3.Connection, cid: str, key: bytes, not_after: int) -> None:
    conn.execute(
        "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before,"
        " not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at)"
        " VALUES (?, ?, 'hainan', 'heihe/credit-loans', 1, 0, ?, 5, 0, ?, x'00', x'00', 0)",
        (cid, key, not_after, b"\x01" * 32),
    )


def test_publishing_a_month_ends_the_consents_its_grades_no_longer_meet(db: Path) -> None:
    """REQ: H3 H14 N14 — issue 15 §2: where a month's grades are published (the unit that
    finishes the run calls this), every active consent whose person's published grade
    is short of the scenario's tier ends as a withdrawal (reason SCENARIO_NOT_MET, one
    consent_ended entry for the person's log); a consent that is met, an expired one and
    a person without a published entry are left alone."""
    from node.disclosure import end_unmet_consents

    now = int(AT.timestamp())
    run_month(db, HEIHE, "2026-09", workers=1, records_through="2026-10-01T01:59:59+00:00")
    conn = connect(db)
    _person(conn, LATECOMER)
    for cid, key, not_after in (
        ("alice", ALICE, now + 99),  # A: meets tier A
        ("bob", BOB, now + 99),  # B: short of it
        ("bob-expired", BOB, now - 1),
        ("late", LATECOMER, now + 99),  # not in the run, nothing published yet
    ):
        _consent(conn, cid, key, not_after)
    ended = end_unmet_consents(conn, home=HEIHE, mapper=Mapper(HEIHE), today=AT.date(), now=now)
    assert [(w.kind, w.consent_id, w.subject_key) for w in ended] == [("consent_ended", "bob", BOB)]
    rows = conn.execute(
        "SELECT consent_id, withdrawn_reason FROM consents ORDER BY consent_id"
    ).fetchall()
    assert rows == [
        ("alice", None), ("bob", "SCENARIO_NOT_MET"), ("bob-expired", None), ("late", None)
    ]  # fmt: skip
    assert _corrections(conn) == 0  # deciding published nothing
    again = end_unmet_consents(conn, home=HEIHE, mapper=Mapper(HEIHE), today=AT.date(), now=now)
    assert again == []  # an ended consent is not ended twice
    conn.close()
