"""The attestation hot path's storage steps (docs/adr/0310).

REQ: H5, H12, N15 — a use is counted only when every consent check holds, in the
same transaction as the status index and the log entry; a refusal after the
count gives the use back; the log's indexes stay dense; a memoised grade is
exactly the engine's and never survives a change of its inputs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from keys import KeyPair
from node._db import Database
from node._errors import FailedPreconditionError, NodeError
from node._mapping import Mapper
from node._repo_consents import (
    add_status_entry,
    get_consent,
    release_use,
    use_active_consent,
)
from node._repo_records import StoredRecord, records_of_rows, subject_of_rows
from node._svc_peer import _Grades
from node._translog import LogWrite, TransparencyLog
from scoring import Residence, Subject, load_scheme, score

SUBJECT = b"\x07" * 32
BINDING = b"\x01" * 32
NOW = 1_800_000_000


async def _db(tmp_path: Path) -> Database:
    db = await Database.open(tmp_path / "n.db")
    async with db.write() as tx:
        await tx.run(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )
        await tx.run(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before, "
            "not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at, "
            "withdrawn_at) VALUES ('c1', ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, 2, 0, ?, x'00', ?, ?, "
            "NULL)",
            (SUBJECT, NOW - 10, NOW + 100, BINDING, b"\x02" * 32, NOW - 10),
        )
    return db


def _use(conn: sqlite3.Connection, **over: object) -> object:
    args: dict[str, object] = {
        "audience": "hainan",
        "purpose": "heihe/credit-loans",
        "binding": BINDING,
        "now": NOW,
    }
    args.update(over)
    return use_active_consent(conn, "c1", **args)  # type: ignore[arg-type]


def _uses(conn: sqlite3.Connection) -> int:
    row = get_consent(conn, "c1")
    assert row is not None
    return row.uses


async def test_use_counts_and_returns_the_row(tmp_path: Path) -> None:
    db = await _db(tmp_path)

    def unit(conn: sqlite3.Connection) -> tuple[object, int]:
        return _use(conn), _uses(conn)

    used, uses = await db.write_unit(unit)
    assert used == (SUBJECT, 1, NOW + 100, BINDING, b"\x02" * 32)
    assert uses == 1
    await db.close()


@pytest.mark.parametrize(
    "over",
    [
        {"audience": "guangdong"},
        {"purpose": "heihe/deposit-free-rental"},
        {"binding": b"\x09" * 32},
        {"now": NOW + 100},  # expired (not_after is exclusive)
        {"now": NOW - 11},  # not yet valid
    ],
    ids=["wrong-audience", "wrong-purpose", "wrong-binding", "expired", "not-yet-valid"],
)
async def test_use_refused_writes_nothing(tmp_path: Path, over: dict[str, object]) -> None:
    db = await _db(tmp_path)

    def unit(conn: sqlite3.Connection) -> tuple[object, int]:
        return _use(conn, **over), _uses(conn)

    assert await db.write_unit(unit) == (None, 0)
    await db.close()


async def test_withdrawn_and_exhausted_are_refused(tmp_path: Path) -> None:
    db = await _db(tmp_path)

    def twice_then_third(conn: sqlite3.Connection) -> list[object]:
        return [_use(conn) is not None for _ in range(3)]

    assert await db.write_unit(twice_then_third) == [True, True, False]  # max_uses = 2

    def withdrawn(conn: sqlite3.Connection) -> object:
        conn.execute("UPDATE consents SET uses = 0, withdrawn_at = ? WHERE consent_id = 'c1'", (1,))
        return _use(conn)

    assert await db.write_unit(withdrawn) is None
    await db.close()


async def test_release_gives_the_use_back_and_status_index_is_allocated(tmp_path: Path) -> None:
    db = await _db(tmp_path)

    def unit(conn: sqlite3.Connection) -> tuple[int, int, int]:
        _use(conn)
        release_use(conn, "c1")
        after_release = _uses(conn)
        _use(conn)
        a = add_status_entry(
            conn, "a1", subject_key=SUBJECT, consent_id="c1", issued_at=NOW, expires_at=NOW + 9
        )
        b = add_status_entry(
            conn, "a2", subject_key=SUBJECT, consent_id="c1", issued_at=NOW, expires_at=NOW + 9
        )
        return after_release, a, b

    after_release, a, b = await db.write_unit(unit)
    assert after_release == 0
    assert b == a + 1
    row = await db.fetchone("SELECT uses FROM consents WHERE consent_id = 'c1'")
    assert row[0] == 1
    await db.close()


async def test_log_indexes_stay_dense_across_a_group_with_a_failing_unit(tmp_path: Path) -> None:
    """Group commit: a unit that raises is rolled back alone; the others' log entries take
    0, 1, … with no gap, and the in-memory tree mirrors exactly the committed rows."""
    import asyncio

    db = await _db(tmp_path)
    log = TransparencyLog(db, "heihe", KeyPair.generate())
    await log.load()

    def ok(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
        return log.append_sync(conn, [LogWrite("request_refused", NOW, None, reason="X")])

    def bad(conn: sqlite3.Connection) -> tuple[int, list[bytes]]:
        log.append_sync(conn, [LogWrite("request_refused", NOW, None, reason="Y")])
        raise FailedPreconditionError("BOOM", "fails after writing")

    def mirror(r: tuple[int, list[bytes]]) -> None:
        log.mirror(*r)

    results = await asyncio.gather(
        db.write_unit(ok, mirror),
        db.write_unit(bad, mirror),
        db.write_unit(ok, mirror),
        return_exceptions=True,
    )
    assert [r[0] if isinstance(r, tuple) else type(r).__name__ for r in results] == [
        0,
        "FailedPreconditionError",
        1,
    ]
    rows = await db.fetchall("SELECT idx FROM log_entries ORDER BY idx")
    assert [r[0] for r in rows] == [0, 1]
    assert log.size == 2
    # alone in its group (no SAVEPOINT): still rolled back, nothing half-written
    with pytest.raises(FailedPreconditionError):
        await db.write_unit(bad, mirror)
    assert (await db.fetchone("SELECT count(*) FROM log_entries"))[0] == 2
    assert log.size == 2
    await db.close()


def _record(rid: str, recognised: date, category: str = "honour") -> StoredRecord:
    return StoredRecord(
        record_id=rid,
        source="court",
        category=category,
        act_id=f"act-{rid}",
        recognised_on=recognised,
        valid_until=None,
        level="city",
        severity=None,
        legal_document="",
        status="active",
        flags=frozenset(),
        provenance="public",
    )


def _subject_rows(subject: Subject | None) -> tuple[tuple[Any, ...], ...]:
    """The rows ``subject_rows`` would read for ``subject`` (inverse of subject_of_rows)."""
    if subject is None:
        return ()
    base = (subject.birth_date.isoformat(), int(subject.full_civil_capacity))
    if not subject.residence:
        return ((*base, None, None),)
    return tuple((*base, r.kind, r.since.isoformat()) for r in subject.residence)


def _record_rows(records: list[StoredRecord]) -> tuple[tuple[Any, ...], ...]:
    """The rows ``record_rows`` would read (inverse of records_of_rows)."""
    return tuple(
        (
            r.record_id, r.source, str(r.category), r.act_id, r.recognised_on.isoformat(),
            r.valid_until.isoformat() if r.valid_until else None, r.level, r.severity,
            r.legal_document, r.status, ",".join(sorted(r.flags)), r.provenance,
        )
        for r in records
    )  # fmt: skip


class _ByObjects:
    """``_Grades.grade_rows`` called with engine objects (converted to their rows)."""

    def __init__(self) -> None:
        self.memo = _Grades()

    def grade(
        self, subject: Subject | None, *, records: list[StoredRecord], **kw: Any
    ) -> tuple[str, int | None, Any]:
        return self.memo.grade_rows(_subject_rows(subject), _record_rows(records), **kw)


def test_rows_round_trip_to_the_same_engine_inputs() -> None:
    subject = Subject(date(1985, 3, 12), (Residence("hukou", date(1990, 1, 1)),), True)
    records = [_record("r1", date(2026, 1, 5))]
    assert subject_of_rows(_subject_rows(subject)) == subject
    assert records_of_rows(_record_rows(records)) == records


def test_memoised_grade_equals_the_engine_and_follows_its_inputs() -> None:
    scheme = load_scheme("heihe")
    mapper = Mapper(scheme.id)
    subject = Subject(date(1985, 3, 12), (Residence("hukou", date(1990, 1, 1)),), True)
    today = date(2026, 11, 23)
    grades = _ByObjects()
    records = [_record("r1", date(2026, 1, 5))]
    try:
        expected = score(subject, records, scheme, today, explain=False)
    except Exception as exc:  # pragma: no cover - fixture must score
        pytest.fail(f"fixture does not score: {exc}")
    if not expected.eligible:
        pytest.skip("fixture subject not eligible in this scheme")
    got = grades.grade(
        subject, records=records, scheme=scheme, mapper=mapper, target="", today=today
    )
    assert got == (expected.grade, expected.score, None)
    assert (
        grades.grade(subject, records=records, scheme=scheme, mapper=mapper, target="", today=today)
        is got
    )
    revoked = [replace(records[0], status="revoked")]
    again = score(subject, revoked, scheme, today, explain=False)
    if again.eligible:
        assert grades.grade(
            subject, records=revoked, scheme=scheme, mapper=mapper, target="", today=today
        ) == (again.grade, again.score, None)
    mapped = grades.grade(
        subject, records=records, scheme=scheme, mapper=mapper, target="hainan", today=today
    )
    assert mapped[2] == mapper.map(expected.grade or "", "hainan", today)


def _row(rid: str, recognised: str, status: str = "active") -> tuple[object, ...]:
    """A records row as record_rows reads it (see _RECORD_ROWS' column order)."""
    return (
        rid,
        "court",
        "honour",
        f"act-{rid}",
        recognised,
        None,
        "city",
        None,
        "",
        status,
        "",
        "public",
    )


SUBJECT_ROWS = (("1985-03-12", 1, "hukou", "1990-01-01"),)


def test_grade_rows_is_grade_of_the_rows_and_follows_them() -> None:
    """REQ: H12 — memoised on the rows as read: same rows, same (cached) answer;
    a changed row (revoked record, new record) is scored afresh."""
    scheme = load_scheme("heihe")
    mapper = Mapper(scheme.id)
    today = date(2026, 11, 23)
    rows = (_row("r1", "2026-01-05"),)
    subject = Subject(date(1985, 3, 12), (Residence("hukou", date(1990, 1, 1)),), True)
    records = [_record("r1", date(2026, 1, 5))]
    kw = {"scheme": scheme, "mapper": mapper, "target": "hainan", "today": today}
    expected = _Grades._compute(subject, records, **kw)  # type: ignore[arg-type]
    grades = _Grades()
    got = grades.grade_rows(SUBJECT_ROWS, rows, **kw)  # type: ignore[arg-type]
    assert got == expected
    assert grades.grade_rows(SUBJECT_ROWS, rows, **kw) is got  # type: ignore[arg-type]
    revoked = (_row("r1", "2026-01-05", status="revoked"),)
    more = (*rows, _row("r2", "2026-02-05"))
    for changed, as_objects in (
        (revoked, [replace(records[0], status="revoked")]),
        (more, [*records, _record("r2", date(2026, 2, 5))]),
    ):
        assert _outcome(lambda c=changed: grades.grade_rows(SUBJECT_ROWS, c, **kw)) == _outcome(  # type: ignore[misc]
            lambda o=as_objects: _Grades._compute(subject, o, **kw)  # type: ignore[misc]
        )


def _outcome(fn: Callable[[], object]) -> object:
    """The result, or the refusal's code."""
    try:
        return fn()
    except NodeError as exc:
        return exc.code


@pytest.mark.parametrize(
    ("subject_rows", "target", "code"),
    [
        ((), "", "SUBJECT_UNKNOWN"),
        ((("1985-03-12", 1, None, None),), "nowhere", "MAPPING_UNAVAILABLE"),
    ],
    ids=["no-subject", "no-residence-no-mapping"],
)
def test_grade_rows_refusals_raise_every_time(
    subject_rows: tuple[tuple[object, ...], ...], target: str, code: str
) -> None:
    scheme = load_scheme("heihe")
    grades = _Grades()
    for _ in range(2):
        with pytest.raises(NodeError) as err:
            grades.grade_rows(
                subject_rows,  # type: ignore[arg-type]
                (_row("r1", "2026-01-05"),),
                scheme=scheme,
                mapper=Mapper(scheme.id),
                target=target,
                today=date(2026, 11, 23),
            )
        assert err.value.code in {code, "SUBJECT_NOT_ELIGIBLE"}


async def test_withdrawal_revokes_only_that_consents_attestations(tmp_path: Path) -> None:
    """REQ: H5 N15 — withdrawing one consent revokes the attestations issued under it and
    no others of the same subject (found through the subject's index, ADR 0316)."""
    from node._repo_consents import STATUS_REVOKED, STATUS_VALID, ConsentsRepository

    db = await _db(tmp_path)
    async with db.write() as tx:
        await tx.run(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, "
            "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
            "granted_at, withdrawn_at) SELECT 'c2', subject_key, audience, purpose, scope, "
            "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
            "granted_at, withdrawn_at FROM consents WHERE consent_id = 'c1'"
        )

    def issue(conn: sqlite3.Connection) -> list[int]:
        return [
            add_status_entry(
                conn, f"a{i}", subject_key=SUBJECT, consent_id=c, issued_at=NOW, expires_at=NOW
            )
            for i, c in enumerate(["c1", "c2", "c1", "c2"])
        ]

    idx = await db.write_unit(issue, quick=True)
    async with db.write() as tx:
        revoked = await ConsentsRepository(db).withdraw(tx, "c1", NOW)
    assert revoked == 2
    rows = dict(await db.fetchall("SELECT idx, status FROM status_entries"))
    assert [rows[i] for i in idx] == [STATUS_REVOKED, STATUS_VALID, STATUS_REVOKED, STATUS_VALID]
    async with db.write() as tx:  # a second withdrawal changes nothing
        assert await ConsentsRepository(db).withdraw(tx, "c1", NOW + 1) == 0
    await db.close()


async def test_withdrawal_without_a_consent_row_still_revokes(tmp_path: Path) -> None:
    """REQ: H5 N15 — if a consent row is missing, withdrawal revokes its
    entries by consent id alone (fails closed) instead of silently revoking nothing."""
    from node._repo_consents import STATUS_REVOKED, STATUS_VALID, ConsentsRepository

    db = await _db(tmp_path)

    def issue(conn: sqlite3.Connection) -> list[int]:
        return [
            add_status_entry(
                conn, f"a{i}", subject_key=SUBJECT, consent_id=c, issued_at=NOW, expires_at=NOW
            )
            for i, c in enumerate(["gone", "c1", "gone"])
        ]

    idx = await db.write_unit(issue, quick=True)
    async with db.write() as tx:
        assert await ConsentsRepository(db).withdraw(tx, "gone", NOW) == 2
    rows = dict(await db.fetchall("SELECT idx, status FROM status_entries"))
    assert [rows[i] for i in idx] == [STATUS_REVOKED, STATUS_VALID, STATUS_REVOKED]
    await db.close()
