"""The attestation hot path's storage steps (docs/adr/0310).

REQ: H5, H12, N15 — a use is counted only when every consent check holds, in the
same transaction as the status index and the log entry; a refusal after the
count gives the use back; the log's indexes stay dense.  (The grade the path
reads is the published one: tests/unit/node/test_published_grades.py.)
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from keys import KeyPair
from node.core._errors import FailedPreconditionError
from node.store._consents import (
    add_status_entry,
    get_consent,
    release_use,
    use_active_consent,
)
from node.store._db import Database
from node.store._records import StoredRecord, records_of_rows, subject_of_rows
from node.store._translog import LogWrite, TransparencyLog
from scoring import Residence, Subject

SUBJECT = b"\x07" * 32
BINDING = b"\x01" * 32
NOW = 1_800_000_000


async def _db(tmp_path: Path) -> Database:
    db = await Database.open(tmp_path / "n.db")

    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
            "VALUES (?, '1980-01-01', x'00', '2026-01-01')",
            (SUBJECT,),
        )
        tx.execute(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before, "
            "not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at, "
            "withdrawn_at) VALUES ('c1', ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, 2, 0, ?, x'00', ?, ?, "
            "NULL)",
            (SUBJECT, NOW - 10, NOW + 100, BINDING, b"\x02" * 32, NOW - 10),
        )

    await db.write_unit(_unit)
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


def test_rows_round_trip_to_the_same_engine_inputs() -> None:
    subject = Subject(date(1985, 3, 12), (Residence("hukou", date(1990, 1, 1)),), True)
    records = [_record("r1", date(2026, 1, 5))]
    assert subject_of_rows(_subject_rows(subject)) == subject
    assert records_of_rows(_record_rows(records)) == records


async def test_withdrawal_revokes_only_that_consents_attestations(tmp_path: Path) -> None:
    """REQ: H5 N15 — withdrawing one consent revokes the attestations issued under it and
    no others of the same subject (found through the subject's index, ADR 0316)."""
    from node.store._consents import STATUS_REVOKED, STATUS_VALID, withdraw_consent

    db = await _db(tmp_path)

    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, "
            "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
            "granted_at, withdrawn_at) SELECT 'c2', subject_key, audience, purpose, scope, "
            "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
            "granted_at, withdrawn_at FROM consents WHERE consent_id = 'c1'"
        )

    await db.write_unit(_unit)

    def issue(conn: sqlite3.Connection) -> list[int]:
        return [
            add_status_entry(
                conn, f"a{i}", subject_key=SUBJECT, consent_id=c, issued_at=NOW, expires_at=NOW
            )
            for i, c in enumerate(["c1", "c2", "c1", "c2"])
        ]

    idx = await db.write_unit(issue, quick=True)
    revoked = await db.write_unit(lambda c: withdraw_consent(c, "c1", NOW))
    assert revoked == 2
    rows = dict(await db.fetchall("SELECT idx, status FROM status_entries"))
    assert [rows[i] for i in idx] == [STATUS_REVOKED, STATUS_VALID, STATUS_REVOKED, STATUS_VALID]
    # a second withdrawal changes nothing
    assert await db.write_unit(lambda c: withdraw_consent(c, "c1", NOW + 1)) == 0
    await db.close()


async def test_withdrawal_without_a_consent_row_still_revokes(tmp_path: Path) -> None:
    """REQ: H5 N15 — if a consent row is missing, withdrawal revokes its
    entries by consent id alone (fails closed) instead of silently revoking nothing."""
    from node.store._consents import STATUS_REVOKED, STATUS_VALID, withdraw_consent

    db = await _db(tmp_path)

    def issue(conn: sqlite3.Connection) -> list[int]:
        return [
            add_status_entry(
                conn, f"a{i}", subject_key=SUBJECT, consent_id=c, issued_at=NOW, expires_at=NOW
            )
            for i, c in enumerate(["gone", "c1", "gone"])
        ]

    idx = await db.write_unit(issue, quick=True)
    assert await db.write_unit(lambda c: withdraw_consent(c, "gone", NOW)) == 2
    rows = dict(await db.fetchall("SELECT idx, status FROM status_entries"))
    assert [rows[i] for i in idx] == [STATUS_REVOKED, STATUS_VALID, STATUS_REVOKED]
    await db.close()
