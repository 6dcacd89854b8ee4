"""The review report from a node database: queries by requester/purpose, flags, late sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.exchange._review import review
from node.store import connect
from node.store._translog import LogWrite

KEY = b"\x05" * 32


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    conn = connect(tmp_path / "n.db")
    conn.execute(
        "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at) "
        "VALUES (?, '1985-01-01', x'00', '2026-09-29')",
        (KEY,),
    )
    conn.execute(
        "INSERT INTO consents (consent_id, subject_key, audience, purpose, scope, not_before, "
        "not_after, max_uses, uses, binding, grant_payload, grant_sha256, granted_at) "
        "VALUES ('c1', ?, 'bank', 'heihe/credit-loans', 1, 0, 99, 5, 0, ?, x'00', x'00', 0)",
        (KEY, b"\x00" * 32),
    )
    yield conn
    conn.close()


def _log(conn, *writes: LogWrite) -> None:  # type: ignore[no-untyped-def]
    (first,) = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM log_entries").fetchone()
    for i, w in enumerate(writes):
        conn.execute(
            "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at) VALUES (?, ?, ?, ?, ?)",
            (first + i, w.subject_key, w.kind, w.entry(), w.timestamp),
        )


@pytest.mark.parametrize(
    ("write", "flag"),
    [
        pytest.param(
            LogWrite(
                "request_refused",
                5,
                KEY,
                "c1",
                "bank",
                "heihe/transit-discount",
                "CONSENT_WRONG_PURPOSE",
            ),
            "purpose outside the consent",
            id="refused-wrong-purpose",
        ),
        pytest.param(
            LogWrite("attestation_issued", 5, KEY, "c1", "bank", "heihe/media-recognition"),
            "purpose outside the consent",
            id="issued-but-purpose-differs",
        ),
        pytest.param(
            LogWrite(
                "request_refused",
                5,
                KEY,
                "c1",
                "shop",
                "heihe/credit-loans",
                "CONSENT_WRONG_AUDIENCE",
            ),
            "requester not named in the consent",
            id="wrong-requester",
        ),
        pytest.param(
            LogWrite("attestation_issued", 5, KEY, "c1", "bank", "heihe/credit-loans"),
            None,
            id="ok",
        ),
        pytest.param(
            LogWrite(
                "request_refused", 5, KEY, "c1", "bank", "heihe/credit-loans", "CONSENT_EXPIRED"
            ),
            None,
            id="refused-in-purpose",
        ),
    ],
)
def test_each_query_is_counted_and_out_of_consent_ones_flagged(
    db,
    write: LogWrite,
    flag: str | None,  # type: ignore[no-untyped-def]
) -> None:
    """REQ: H16 N23 — every query registered with requester, purpose and consent is
    reviewed; a purpose (or requester) outside the consent is flagged."""
    _log(db, write, LogWrite("consent_granted", 1, KEY, "c1", "bank", "heihe/credit-loans"))
    report = review(db).as_dict()
    assert report["total_queries"] == 1  # grants are not queries
    (row,) = report["queries"]
    assert (row["requester"], row["purpose"]) == (write.requester, write.purpose)
    assert [f["flag"] for f in report["flagged"]] == ([flag] if flag else [])
    assert KEY.hex() not in json.dumps(report)


def test_late_sources_list_late_records_and_missed_objection_deadlines(db) -> None:  # type: ignore[no-untyped-def]
    """REQ: N7 H15 — late sharing and missed objection deadlines are listed per source."""
    db.execute(
        "INSERT INTO source_batches (batch_id, submitted_by, records, sha256, committed_at) "
        "VALUES ('b1', 'heihe-tax', 2, x'00', 'now')"
    )
    for rid, due in (("r1", "2026-09-28"), ("r2", None)):
        db.execute(
            "INSERT INTO records (subject_key, record_id, source, category, polarity, act_id, "
            "recognised_on, batch_id, submitted_at, share_due, submitted_by) "
            "VALUES (?, ?, 'tax', 'honour', 'positive', ?, '2026-09-07', 'b1', 'now', ?, "
            "'heihe-tax')",
            (KEY, rid, rid, due),
        )
    db.execute(
        "INSERT INTO objections (objection_id, subject_key, record_id, source, state, waiting_for, "
        "state_json, filed_at, updated_at) VALUES ('o1', ?, 'r2', 'heihe-court', 'answered', "
        "'reply', ?, 'now', 'now')",
        (KEY, json.dumps({"history": [["t", "forwarded", ""], ["t", "deemed_accepted", ""]]})),
    )
    report = review(db)
    assert [
        (s.source, s.late_records, s.missed_objection_deadlines) for s in report.late_sources
    ] == [
        ("heihe-court", 0, 1),
        ("heihe-tax", 1, 0),
    ]
    text = report.render()
    assert "heihe-tax: 1 record(s) shared after 15 working days" in text
    assert report.objections == {"answered": 1}
    assert report.overdue == []  # no due date stored on that row


def test_overdue_objection_steps_are_listed_for_the_operator(db) -> None:  # type: ignore[no-untyped-def]
    """REQ: H15 N21 — steps past their working-day deadline are listed (no subject)."""
    for oid, state, due in (("o1", "forwarded", "2026-10-15"), ("o2", "replied", "2026-10-01")):
        db.execute(
            "INSERT INTO objections (objection_id, subject_key, record_id, source, state, "
            "waiting_for, due, state_json, filed_at, updated_at) "
            "VALUES (?, ?, 'r', 'heihe-court', ?, 'source', ?, '{}', 'now', 'now')",
            (oid, KEY, state, due),
        )
    assert review(db, "2026-10-15").overdue == []
    (o,) = review(db, "2026-10-16").overdue
    assert (o.objection_id, o.source, o.waiting_for, o.due) == (
        "o1",
        "heihe-court",
        "source",
        "2026-10-15",
    )
    assert (
        "overdue: o1 waits for source (heihe-court) since 2026-10-15"
        in review(db, "2026-10-16").render()
    )
