"""Outbox: append-only, gap-free, idempotent by event id, inside the caller's unit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keys import Sealer, province_pseudonym, subject_key
from node.demo._testbed import make_id_number
from node.pb.v1 import hub_pb2
from node.store._db import Database
from node.store._outbox import (
    Outbox,
    OutboxError,
    append_sync,
    deregistration_payload,
    read_after_sync,
)

SECRET = b"s" * 32
PROVINCE = b"p" * 32
SEAL = Sealer({"k1": b"k" * 32}, "k1")
ALICE = make_id_number(301)


async def _db(tmp_path: Path) -> Database:
    return await Database.open(tmp_path / "n.db")


def _add_subject(conn: sqlite3.Connection, idn: str) -> bytes:
    k = subject_key(SECRET, idn)
    conn.execute(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
        " VALUES (?, '1985-03-12', ?, '2026-01-01')",
        (k, SEAL.seal(idn.encode("ascii"), k)),
    )
    return k


async def test_sequence_is_dense_and_ordered(tmp_path: Path) -> None:
    """REQ: H13 — events get seq 1, 2, 3 … in commit order; readers page by seq."""
    db = await _db(tmp_path)
    box = Outbox(db, SEAL, PROVINCE)
    seqs = [await box.append("status_list", f"e{i}", b"x%d" % i, 100 + i) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    events = await box.after(2, limit=2)
    assert [(e.seq, e.event_id, e.payload) for e in events] == [(3, "e2", b"x2"), (4, "e3", b"x3")]
    assert await box.after(5) == []
    await db.close()


async def test_rolled_back_unit_leaves_no_event_and_no_gap(tmp_path: Path) -> None:
    """REQ: H13 — the event commits or rolls back with the caller's change; no gap."""
    db = await _db(tmp_path)

    def failing(conn: sqlite3.Connection) -> None:
        append_sync(conn, "status_list", "doomed", b"x", 1)
        raise RuntimeError("the caller's change failed")

    with pytest.raises(RuntimeError):
        await db.write_unit(failing)
    seq = await db.write_unit(lambda c: append_sync(c, "status_list", "kept", b"y", 2))
    assert seq == 1
    rows = await db.read_unit(lambda c: read_after_sync(c, 0, 10))
    assert [e.event_id for e in rows] == ["kept"]
    await db.close()


async def test_idempotent_by_event_id(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    box = Outbox(db, SEAL, PROVINCE)
    assert await box.append("status_list", "same", b"x", 1) == 1
    assert await box.append("status_list", "same", b"x", 9) == 1
    with pytest.raises(OutboxError) as err:
        await box.append("status_list", "same", b"other", 1)
    assert err.value.code == "EVENT_CONFLICT"
    await db.close()


@pytest.mark.parametrize(
    ("kind", "event_id", "code"),
    [
        ("snapshot", "e", "UNKNOWN_EVENT_KIND"),
        ("status_list", "", "INVALID_EVENT_ID"),
        ("status_list", "x" * 201, "INVALID_EVENT_ID"),
    ],
    ids=["unknown-kind", "empty-id", "long-id"],
)
async def test_bad_events_refused(tmp_path: Path, kind: str, event_id: str, code: str) -> None:
    db = await _db(tmp_path)
    with pytest.raises(OutboxError) as err:
        await db.write_unit(lambda c: append_sync(c, kind, event_id, b"x", 1))
    assert err.value.code == code
    await db.close()


@pytest.mark.parametrize(
    "sql",
    ["UPDATE outbox SET payload = x'00'", "DELETE FROM outbox"],
    ids=["update", "delete"],
)
async def test_rows_cannot_be_changed(tmp_path: Path, sql: str) -> None:
    """Append-only is enforced by the database itself."""
    db = await _db(tmp_path)
    await db.write_unit(lambda c: append_sync(c, "status_list", "e", b"x", 1))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.write_unit(lambda c: c.execute(sql))
    await db.close()


async def test_deregistration_queues_province_pseudonym_only(tmp_path: Path) -> None:
    """REQ: H2, H13 — the event carries HMAC(province key, ID), never the ID."""
    db = await _db(tmp_path)
    box = Outbox(db, SEAL, PROVINCE)
    k = await db.write_unit(lambda c: _add_subject(c, ALICE))
    seq = await db.write_unit(lambda c: box.deregistration_sync(c, k, 1234))
    assert seq == 1
    (event,) = await box.after(0)
    assert event.kind == "deregistration"
    msg = hub_pb2.Deregistration.FromString(event.payload)
    assert msg.province_pseudonym == province_pseudonym(PROVINCE, ALICE)
    assert msg.deregistered_at == 1234
    assert ALICE.encode() not in event.payload and ALICE not in event.event_id
    await db.close()


async def test_deregistration_without_province_key_is_not_queued(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    box = Outbox(db, SEAL, None)
    k = await db.write_unit(lambda c: _add_subject(c, ALICE))
    assert await db.write_unit(lambda c: box.deregistration_sync(c, k, 1)) is None
    assert await box.after(0) == []
    await db.close()


def test_deregistration_payload_checks_length() -> None:
    with pytest.raises(OutboxError) as err:
        deregistration_payload(b"short", 1)
    assert err.value.code == "INVALID_PAYLOAD"
