"""The attestation hot path's storage steps (docs/adr/0310).

REQ: H5, H12, N15 — a use is counted only when every consent check holds (the
consent rules, once, in node.exchange._consent; issue 17), in the same transaction as the status index and the log entry; a refusal after the
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
from node.exchange._consent import refusal_of
from node.store._consents import (
    add_status_entry,
    count_use,
    get_consent,
    release_use,
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


def _refusal(conn: sqlite3.Connection, **over: object) -> str | None:
    """The consent rules' verdict on the stored row: None (usable) or the reason."""
    args: dict[str, object] = {
        "audience": "hainan",
        "purpose": "heihe/credit-loans",
        "binding": BINDING,
        "now": NOW,
    }
    args.update(over)
    row = get_consent(conn, "c1")
    assert row is not None
    refused = refusal_of(row, **args)  # type: ignore[arg-type]
    return None if refused is None else refused.code


def _use(conn: sqlite3.Connection) -> bool:
    """What the request's unit does: the rules decide on the row read, then one use counts."""
    if _refusal(conn) is not None:
        return False
    count_use(conn, "c1")
    return True


def _uses(conn: sqlite3.Connection) -> int:
    row = get_consent(conn, "c1")
    assert row is not None
    return row.uses


async def test_a_usable_consent_is_counted_once(tmp_path: Path) -> None:
    """REQ: H5, N15 -- issue 17: the rules pass on the row, and count_use counts one use."""
    db = await _db(tmp_path)

    def unit(conn: sqlite3.Connection) -> tuple[bool, int]:
        return _use(conn), _uses(conn)

    assert await db.write_unit(unit) == (True, 1)
    await db.close()


REFUSALS = [
    pytest.param({"audience": "guangdong"}, "CONSENT_WRONG_AUDIENCE", id="wrong-audience"),
    pytest.param(
        {"purpose": "heihe/deposit-free-rental"}, "CONSENT_WRONG_PURPOSE", id="wrong-purpose"
    ),
    pytest.param({"binding": b"\x09" * 32}, "SUBJECT_BINDING_MISMATCH", id="wrong-binding"),
    # not_after is exclusive
    pytest.param({"now": NOW + 100}, "CONSENT_EXPIRED", id="expired"),
    pytest.param({"now": NOW - 11}, "CONSENT_NOT_YET_VALID", id="not-yet-valid"),
    # the order of ADR 0301: audience before purpose before state before binding
    pytest.param(
        {"audience": "guangdong", "purpose": "x/y", "now": NOW + 100},
        "CONSENT_WRONG_AUDIENCE",
        id="audience-first",
    ),
    pytest.param(
        {"now": NOW + 100, "binding": b"\x09" * 32}, "CONSENT_EXPIRED", id="state-before-binding"
    ),
]


@pytest.mark.parametrize(("over", "reason"), REFUSALS)
async def test_the_rules_name_the_refusal(
    tmp_path: Path, over: dict[str, object], reason: str
) -> None:
    """REQ: H5, N15 -- issue 17: the consent rules (node.exchange._consent, the only
    copy) name the reason in the order of ADR 0301, and reading writes nothing."""
    db = await _db(tmp_path)

    def unit(conn: sqlite3.Connection) -> tuple[str | None, int]:
        return _refusal(conn, **over), _uses(conn)

    assert await db.write_unit(unit) == (reason, 0)
    await db.close()


async def test_withdrawn_and_exhausted_are_refused(tmp_path: Path) -> None:
    """REQ: H5, N15 -- issue 17: a consent with no uses left is exhausted; a withdrawn one
    is withdrawn, whatever its uses."""
    db = await _db(tmp_path)

    def twice_then_third(conn: sqlite3.Connection) -> list[object]:
        return [_use(conn) for _ in range(3)] + [_refusal(conn)]

    assert await db.write_unit(twice_then_third) == [True, True, False, "CONSENT_EXHAUSTED"]

    def withdrawn(conn: sqlite3.Connection) -> object:
        conn.execute("UPDATE consents SET withdrawn_at = ? WHERE consent_id = 'c1'", (1,))
        return _refusal(conn)

    assert await db.write_unit(withdrawn) == "CONSENT_WITHDRAWN"
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


# (consent id, not_before, not_after, max_uses, uses, withdrawn_at) next to c1
OTHER_ROWS = [
    ("withdrawn", NOW - 10, NOW + 100, 2, 0, NOW - 5),
    ("expired", NOW - 100, NOW, 2, 0, None),
    ("exhausted", NOW - 10, NOW + 100, 2, 2, None),
    ("later", NOW + 50, NOW + 500, 1, 0, None),
]


@pytest.mark.parametrize("now", [NOW - 20, NOW, NOW + 60, NOW + 100, NOW + 600])
async def test_the_grant_limits_count_of_active_consents_agrees_with_the_rules(
    tmp_path: Path, now: int
) -> None:
    """REQ: H5 -- issue 17: the grant limit counts active consents in SQL (a count the
    database does best); it agrees row by row with state_of, the rules' one copy."""
    from node.exchange._consent import state_of
    from node.pb.v1 import node_pb2
    from node.store._consents import ConsentsRepository, grant_history_in

    db = await _db(tmp_path)

    def _unit(tx: sqlite3.Connection) -> None:
        for cid, nb, na, most, uses, withdrawn in OTHER_ROWS:
            tx.execute(
                "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, "
                "not_before, not_after, max_uses, uses, binding, grant_payload, grant_sha256, "
                "granted_at, withdrawn_at) VALUES (?, ?, 'hainan', 'heihe/credit-loans', 1, ?, ?, "
                "?, ?, ?, x'00', ?, ?, ?)",
                (cid, SUBJECT, nb, na, most, uses, BINDING, b"\x02" * 32, NOW - 10, withdrawn),
            )

    await db.write_unit(_unit)
    rows = await ConsentsRepository(db).of_subject(SUBJECT)
    assert len(rows) == 1 + len(OTHER_ROWS)
    by_rules = sum(state_of(r, now) == node_pb2.CONSENT_STATE_ACTIVE for r in rows)
    counted = await db.read_unit(lambda c: grant_history_in(c, SUBJECT, since=0, now=now).active)
    assert counted == by_rules
    await db.close()
