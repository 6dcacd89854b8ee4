"""Records repository: whole batches or nothing, idempotent batch ids, H7/N4 consent."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from keys import Sealer
from node.core._errors import AlreadyExistsError, InvalidArgumentError
from node.demo._testbed import make_id_number
from node.pb.v1 import node_pb2
from node.store._db import Database
from node.store._records import (
    MAX_LISTED_REJECTIONS,
    MAX_REJECTION_BYTES,
    MAX_SUMMARY_GROUPS,
    REJECTION_KEY,
    RecordsRepository,
    SubjectFacts,
    batch_rejection,
    load_records,
    load_subject,
    record_rows,
    records_of_rows,
    subject_of_rows,
    subject_rows,
)
from scoring import Residence, load_scheme, validate_batch

SCHEME = load_scheme("heihe")
TODAY = date(2026, 11, 23)
ALICE, BOB = make_id_number(1), make_id_number(2)
Problem = tuple[int, str, str, str, str]


def _records(*raws: dict[str, object]) -> list:  # type: ignore[type-arg]
    records, errors = validate_batch(list(raws), SCHEME, TODAY)
    assert not errors
    return records


def _honour(rid: str, who: str, **kw: object) -> dict[str, object]:
    return {
        "record_id": rid,
        "subject_id": who,
        "source": "court",
        "category": "honour",
        "act_id": f"a-{rid}",
        "recognised_on": "2025-01-01",
        "level": "city",
        **kw,
    }


def _market(rid: str, who: str) -> dict[str, object]:
    return {
        "record_id": rid,
        "subject_id": who,
        "source": "power",
        "category": "utility_paid",
        "act_id": f"a-{rid}",
        "recognised_on": "2025-01-01",
        "provenance": "market",
    }


@pytest.fixture
async def repo(tmp_path: Path) -> RecordsRepository:
    db = await Database.open(tmp_path / "n.db")
    return RecordsRepository(db, b"k" * 32, Sealer({"s": b"\x01" * 32}, "s"))


async def _submit(
    repo: RecordsRepository,
    bid: str,
    recs: list,  # type: ignore[type-arg]
    sha: bytes = b"h",
    by: str = "court",
) -> object:
    return await repo.submit_batch(
        bid,
        by,
        recs,
        [SubjectFacts(ALICE, (Residence("hukou", date(2000, 1, 1)),))],
        content_sha256=sha,
        now_iso="2026-11-23T00:00:00",
    )


async def test_batch_stored_and_sealed(repo: RecordsRepository, tmp_path: Path) -> None:
    res = await _submit(repo, "b1", _records(_honour("r1", ALICE), _honour("r2", BOB)))
    assert res.accepted == 2 and not res.replayed  # type: ignore[attr-defined]
    subject = await repo.subject(repo.key_of(ALICE))
    assert subject is not None
    assert subject.residence == (Residence("hukou", date(2000, 1, 1)),)
    assert [r.record_id for r in await repo.records_of(repo.key_of(ALICE))] == ["r1"]
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("n.db"))
    assert ALICE.encode() not in data and BOB.encode() not in data


async def test_replay_and_reuse(repo: RecordsRepository) -> None:
    recs = _records(_honour("r1", ALICE))
    await _submit(repo, "b1", recs, b"h1")
    again = await _submit(repo, "b1", recs, b"h1")
    assert again.replayed and again.accepted == 1  # type: ignore[attr-defined]
    with pytest.raises(AlreadyExistsError) as info:
        await _submit(repo, "b1", recs, b"h2")
    assert info.value.code == "BATCH_ID_REUSED"


@pytest.mark.parametrize(
    ("second", "code"),
    [
        pytest.param([_honour("r1", BOB)], "RECORD_EXISTS", id="record-id-taken"),
        pytest.param([_market("m1", BOB)], "COLLECTION_CONSENT_MISSING", id="market-no-consent"),
    ],
)
async def test_refused_batch_writes_nothing(
    repo: RecordsRepository, second: list[dict[str, object]], code: str
) -> None:
    await _submit(repo, "b1", _records(_honour("r1", ALICE)))
    batch = _records(_honour("ok-1", BOB), *second)
    with pytest.raises(InvalidArgumentError) as info:
        await _submit(repo, "b2", batch)
    assert info.value.code == "BATCH_REJECTED"
    rejection = node_pb2.BatchRejection.FromString(dict(info.value.details)[REJECTION_KEY])
    assert [(r.index, r.code) for r in rejection.rejections] == [(1, code)]
    assert await repo.records_of(repo.key_of(BOB)) == []


async def test_market_record_accepted_with_collection_consent(repo: RecordsRepository) -> None:
    """REQ: H7 N4 — a market record counts only the consent its submitter recorded."""
    await repo.record_collection_consent(
        BOB,
        "power",
        stated_use="score",
        document_sha256=b"\x02" * 32,
        signed_on=date(2026, 1, 1),
        recorded_by="power",
        now_iso="2026-11-23T00:00:00",
    )
    res = await _submit(repo, "b3", _records(_market("m1", BOB)), by="power")
    assert res.accepted == 1  # type: ignore[attr-defined]
    other = _records(_market("m2", BOB) | {"source": "other"})
    with pytest.raises(InvalidArgumentError):  # consent was to "power", not "other"
        await _submit(repo, "b4", other, by="other")
    with pytest.raises(InvalidArgumentError) as info:  # power's consent, another submitter
        await _submit(repo, "b5", _records(_market("m3", BOB)), by="court")
    rejection = node_pb2.BatchRejection.FromString(dict(info.value.details)[REJECTION_KEY])
    assert [r.code for r in rejection.rejections] == ["COLLECTION_CONSENT_MISSING"]
    assert {r.record_id for r in await repo.records_of(repo.key_of(BOB))} == {"m1"}


# name, who recorded the consent, its collector, who submits the market record (source "power")
FOREIGN_CONSENTS = [
    ("recorded-by-another-for-the-submitter", "court", "power", "power"),
    ("recorded-by-the-submitter-for-another", "power", "bank", "power"),
    ("recorded-by-another-for-itself", "bank", "bank", "power"),
]


@pytest.mark.parametrize(
    ("name", "recorded_by", "collector", "submitter"),
    FOREIGN_CONSENTS,
    ids=[c[0] for c in FOREIGN_CONSENTS],
)
async def test_market_gate_keys_on_the_submitter(
    repo: RecordsRepository, name: str, recorded_by: str, collector: str, submitter: str
) -> None:
    """REQ: H7 N4 — a consent row that another department recorded (a database may
    hold such rows from a release that did not bind collectors to the caller) or that names another
    collector admits no record: COLLECTION_CONSENT_MISSING and nothing written."""
    await repo.record_collection_consent(
        BOB,
        collector,
        stated_use="score",
        document_sha256=b"\x03" * 32,
        signed_on=date(2026, 1, 1),
        recorded_by=recorded_by,
        now_iso="2026-11-23T00:00:00",
    )
    with pytest.raises(InvalidArgumentError) as info:
        await _submit(repo, f"g-{name}", _records(_market("g1", BOB)), by=submitter)
    rejection = node_pb2.BatchRejection.FromString(dict(info.value.details)[REJECTION_KEY])
    assert [(r.index, r.code) for r in rejection.rejections] == [(0, "COLLECTION_CONSENT_MISSING")]
    assert await repo.records_of(repo.key_of(BOB)) == []


async def test_rows_give_exactly_what_the_loaders_give(repo: RecordsRepository) -> None:
    """REQ: H6 — the hot path's raw rows (one statement for the subject and its
    residences) build the same subject and records as load_subject / load_records;
    unknown and deregistered subjects have no rows."""
    await repo.submit_batch(
        "b1",
        "court",
        _records(_honour("r1", ALICE), _honour("r2", ALICE, level="province"), _honour("r3", BOB)),
        [
            SubjectFacts(
                ALICE,
                (
                    Residence("residence_permit", date(2010, 5, 1)),
                    Residence("hukou", date(2000, 1, 1)),
                ),
            ),
            SubjectFacts(BOB),
        ],
        content_sha256=b"h",
        now_iso="2026-11-23T00:00:00",
    )
    db = repo._db

    def both(key: bytes) -> Callable[[sqlite3.Connection], tuple[object, ...]]:
        def read(conn: sqlite3.Connection) -> tuple[object, ...]:
            srows, rrows = subject_rows(conn, key), record_rows(conn, key)
            return (
                subject_of_rows(srows),
                load_subject(conn, key),
                records_of_rows(rrows),
                load_records(conn, key),
                srows,
            )

        return read

    for who, n_res in ((ALICE, 2), (BOB, 0)):
        got, expected, recs, expected_recs, _ = await db.read_unit(both(repo.key_of(who)))
        assert got == expected
        assert got is not None and len(got.residence) == n_res  # type: ignore[attr-defined]
        assert sorted(recs, key=lambda r: r.record_id) == sorted(  # type: ignore[attr-defined]
            expected_recs,  # type: ignore[arg-type]
            key=lambda r: r.record_id,
        )
    unknown = await db.read_unit(both(b"\xee" * 32))
    assert unknown == (None, None, [], [], ())

    def _unit(tx: sqlite3.Connection) -> None:
        tx.execute(
            "UPDATE subjects SET deregistered_at = '2026-11-23' WHERE subject_key = ?",
            (repo.key_of(BOB),),
        )

    await db.write_unit(_unit)
    gone = await db.read_unit(both(repo.key_of(BOB)))
    assert gone[0] is None and gone[1] is None and gone[4] == ()
    await db.close()


# ------------------------------------------------------------------ ids per department


async def test_ids_are_per_department(repo: RecordsRepository) -> None:
    """REQ: H4 — the bank's batch "b1" and record "r1" are its own although
    the court used both ids: stored, not replayed, not refused; each department's replay
    is its own; one department still cannot store a record id twice."""
    recs = _records(_honour("r1", ALICE))
    court = await _submit(repo, "b1", recs, b"court", by="heihe-court")
    bank = await _submit(repo, "b1", recs, b"bank", by="heihe-bank")
    assert not court.replayed and not bank.replayed  # type: ignore[attr-defined]
    assert (await _submit(repo, "b1", recs, b"bank", by="heihe-bank")).replayed  # type: ignore[attr-defined]
    assert [r.record_id for r in await repo.records_of(repo.key_of(ALICE))] == ["r1", "r1"]
    with pytest.raises(InvalidArgumentError) as info:
        await _submit(repo, "b2", recs, b"court-2", by="heihe-court")
    rejection = node_pb2.BatchRejection.FromString(dict(info.value.details)[REJECTION_KEY])
    assert [(r.index, r.code) for r in rejection.rejections] == [(0, "RECORD_EXISTS")]


# ------------------------------------------------------------------ bounded refusal


def _problems(n: int, rid: str = "r", message: str = "bad", codes: int = 1) -> list[Problem]:
    return [(i, f"{rid}{i}", f"f{i % codes}", f"C{i % codes}", message) for i in range(n)]


# name, problems, listed, truncated, summary groups
BOUNDS = [
    ("one", _problems(1), 1, False, 1),
    ("small-batch-whole", _problems(40), 40, False, 1),
    ("count-bound", _problems(10_000), MAX_LISTED_REJECTIONS, True, 1),
    ("byte-bound-long-ids", _problems(300, rid="x" * 5000), None, True, 1),
    ("byte-bound-long-messages", _problems(300, message="m" * 5000), None, True, 1),
    ("many-groups", _problems(10_000, codes=500), None, True, MAX_SUMMARY_GROUPS),
]


@pytest.mark.parametrize(
    ("name", "problems", "listed", "truncated", "groups"), BOUNDS, ids=[c[0] for c in BOUNDS]
)
def test_rejection_trailer_is_bounded(
    name: str,
    problems: list[Problem],
    listed: int | None,
    truncated: bool,
    groups: int,
) -> None:
    """REQ: H4, N6 — at most 100 problems and 6 KiB, the first in order,
    long ids and messages cut; totals, ``truncated`` and the (field, code) counts always."""
    err = batch_rejection("b", problems)
    assert err.code == "BATCH_REJECTED"
    raw = dict(err.details)[REJECTION_KEY]
    assert isinstance(raw, bytes) and len(raw) <= MAX_REJECTION_BYTES
    msg = node_pb2.BatchRejection.FromString(raw)
    assert (msg.rejected_total, msg.records_refused, msg.truncated) == (
        len(problems),
        len(problems),
        truncated,
    )
    if listed is not None:
        assert len(msg.rejections) == listed
    assert [r.index for r in msg.rejections] == list(range(len(msg.rejections)))
    assert all(len(r.record_id) <= 128 and len(r.message) <= 256 for r in msg.rejections)
    assert len(msg.summary) == groups
    if groups == 1:
        assert [(s.field, s.code, s.count) for s in msg.summary] == [("f0", "C0", len(problems))]
    assert f"{len(problems)} problem(s)" in str(err)
