"""Repair, deregistration, query review and throttling, uploads, catalogue, rollout.

Real nodes (mutual TLS on loopback, SQLite files, manual clocks).  Each test
starts its own small federation so tests do not share clocks or people.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

import node.cli._main as cli
from keys import (
    ScenarioCatalogue,
    Status,
    Trust,
    VerificationError,
    province_pseudonym,
    verify_attestation,
    verify_status_list,
)
from keys.pb.v1 import attestation_pb2
from node.core._clock import ManualClock
from node.demo._testbed import (
    attestation_request,
    honour_record,
    resident,
)
from node.disclosure import trusted_scenarios
from node.exchange._throttle import RETRY_AFTER_KEY
from node.pb.v1 import hub_pb2, node_pb2, node_pb2_grpc
from tests.support.governed_region import (
    ALICE,
    BOB,
    CAROL,
    START,
    Fed,
    huxin_json,
    start_governed,
)
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture
async def heihe(tmp_path: Path) -> AsyncIterator[Fed]:
    f = await start_governed(tmp_path, "heihe", "heihe")
    yield f
    await f.bed.close()


@pytest_asyncio.fixture
async def hainan(tmp_path: Path) -> AsyncIterator[Fed]:
    f = await start_governed(tmp_path, "hainan", "hainan")
    yield f
    await f.bed.close()


# ------------------------------------------------------------------ repair (H16, N22)


async def test_repair_recomputes_grade_at_once_and_supersedes_old_attestation(
    heihe: Fed,
) -> None:
    """REQ: H16 N22 — a repaired negative record stops counting; the grade is recomputed
    immediately; the attestation that carried the old grade is SUPERSEDED; the person
    is told."""
    f = heihe
    assert await f.grade(ALICE) == "A"  # 600 + 170 - 80
    _, old = await f.attest(ALICE)
    assert await f.status_of(old) is Status.VALID
    resp = await f.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="p-0", status="repaired", repair_route="charity")
    )
    assert (resp.grade.grade_before, resp.grade.grade_after, resp.grade.changed) == (
        "A",
        "AA",
        True,
    )
    assert resp.attestations_superseded == 1
    assert await f.status_of(old) is Status.SUPERSEDED
    assert await f.grade(ALICE) == "AA"
    assert any("A -> AA" in n for n in await f.notes(ALICE))
    _, fresh = await f.attest(ALICE)
    env = attestation_pb2.SignedAttestation.FromString(fresh).envelope
    assert attestation_pb2.Attestation.FromString(env.payload).grade == "AA"


@pytest.mark.parametrize(
    ("record_id", "route", "by_other", "status", "reason"),
    [
        ("h-1", "commitment", False, grpc.StatusCode.INVALID_ARGUMENT, "NOT_NEGATIVE"),
        ("p-1", "prayer", False, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
        ("p-1", "commitment", True, grpc.StatusCode.NOT_FOUND, "RECORD_NOT_FOUND"),
        ("nope", "commitment", False, grpc.StatusCode.NOT_FOUND, "RECORD_NOT_FOUND"),
    ],
    ids=["positive_record", "unknown_route", "other_department", "unknown_record"],
)
async def test_repair_refusals(
    heihe: Fed, record_id: str, route: str, by_other: bool, status: grpc.StatusCode, reason: str
) -> None:
    """REQ: N22 — only the submitting department repairs, only negative records, by a
    named route; a refusal changes nothing."""
    stub = heihe.other_source if by_other else heihe.source
    await expect_refused(
        stub.MarkRecord(
            node_pb2.MarkRecordRequest(record_id=record_id, status="repaired", repair_route=route)
        ),
        status,
        reason,
    )
    assert await heihe.grade(BOB) == "A"


# ------------------------------------------------------------------ deregistration (H2)


def _all_values(db: Path) -> list[tuple[str, object]]:
    conn = sqlite3.connect(db)
    try:
        out: list[tuple[str, object]] = []
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        assert {"records", "subjects", "consents", "objections", "notifications"} <= set(tables)
        for t in tables:
            for row in conn.execute(f'SELECT * FROM "{t}"'):
                out.extend((t, v) for v in row)
        return out
    finally:
        conn.close()


def _holds(value: object, needle: bytes) -> bool:
    if isinstance(value, bytes):
        return needle in value
    if isinstance(value, str):
        return needle in value.encode() or needle.hex() in value
    return False


async def test_deregistration_deletes_everything_revokes_and_refuses(heihe: Fed) -> None:
    """REQ: H2 H5 — after deregistration no table holds the person's subject key,
    ID number or consent binding; the log keeps only a pseudonymous tombstone; the old
    attestation verifies as REVOKED; a fresh query, a new consent and new records are
    refused until the person registers again."""
    f = heihe
    ctx = f.node.server.ctx
    key = ctx.records.key_of(ALICE)
    token, old = await f.attest(ALICE)
    await f.citizen.FileObjection(
        node_pb2.FileObjectionRequest(record_id="p-0"), metadata=f.me(ALICE)
    )
    await f.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="h-0", status="revoked", note="test")
    )
    conn = sqlite3.connect(ctx.config.database)
    (binding,) = conn.execute(
        "SELECT binding FROM consents WHERE subject_key = ?", (key,)
    ).fetchone()
    (sealed,) = conn.execute(
        "SELECT id_sealed FROM subjects WHERE subject_key = ?", (key,)
    ).fetchone()
    conn.close()

    resp = await f.citizen.Deregister(
        node_pb2.DeregisterRequest(confirm=True), metadata=f.me(ALICE)
    )
    assert resp.records_deleted == 4
    assert resp.consents_deleted == 1
    assert resp.attestations_revoked == 1
    assert len(resp.tombstone) == 32
    assert not resp.hub_notified  # no province key on this node: nothing was pushed

    from node.store._translog import subject_ref

    ref = subject_ref(key)
    for table, value in _all_values(ctx.config.database):
        for needle in (
            key,
            bytes(binding),
            bytes(sealed),
            ALICE.encode(),
            ALICE.encode("utf-16-le"),
        ):
            assert not _holds(value, needle), table
        if _holds(value, ref):
            assert table == "log_entries", table  # only pseudonymous log leaves
    assert sum(1 for _t, v in _all_values(ctx.config.database) if v == "p-0") == 0
    # The tombstone entry is in the log (pseudonymous leaf, no subject key column).
    tomb = [
        node_pb2.LogEntry.FromString(bytes(leaf))
        for (leaf,) in sqlite3.connect(ctx.config.database).execute(
            "SELECT leaf FROM log_entries WHERE kind = 'deregistered'"
        )
    ]
    assert len(tomb) == 1 and tomb[0].subject_ref == ref

    # The old attestation verifies as revoked with the node's signed status list.
    now = ctx.now_s()
    shipped = ScenarioCatalogue.of("local", now, trusted_scenarios())  # the verifier's scenarios
    trust = Trust.from_key_sets([ctx.secrets.key_set]).with_scenarios(shipped)
    status = verify_status_list(await f.status_list(), trust, now)
    with pytest.raises(VerificationError) as info:
        verify_attestation(old, trust, now, "hainan", status=status)
    assert info.value.code == "STATUS_REVOKED"

    # A fresh query with the old token, a new consent, the self query, new records: refused.
    await expect_refused(
        f.peer.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans")),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_INVALID",
    )
    await expect_refused(f.token(ALICE), grpc.StatusCode.NOT_FOUND, "SUBJECT_UNKNOWN")
    await expect_refused(
        f.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=f.me(ALICE)),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_UNKNOWN",
    )
    await expect_refused(
        f.source.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="after", records=[honour_record("again-1", ALICE, "2026-09-28")]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_REJECTED",
    )
    await expect_refused(
        f.citizen.Deregister(node_pb2.DeregisterRequest(confirm=True), metadata=f.me(ALICE)),
        grpc.StatusCode.NOT_FOUND,
        "SUBJECT_UNKNOWN",
    )
    # Others are untouched.
    assert await f.grade(BOB) == "A"
    # Registering again lets sources submit again; a new score starts from scratch.
    again = await f.citizen.Register(node_pb2.RegisterRequest(), metadata=f.me(ALICE))
    assert again.was_deregistered
    await f.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="after-2",
            records=[honour_record("again-2", ALICE, "2026-09-28")],
            subjects=[resident(ALICE)],
        )
    )
    assert await f.grade(ALICE) == "A"


async def test_deregistration_is_queued_for_the_hub_under_the_province_pseudonym(
    tmp_path: Path,
) -> None:
    """REQ: H2 H13 — the deregistration is appended to the node's outbox in the same unit
    as the deletion, carrying only the province pseudonym, so the hub deletes its copy."""
    province_key = os.urandom(32)
    (tmp_path / "heihe").mkdir()
    (tmp_path / "province.key").write_text(province_key.hex())
    f = await start_governed(
        tmp_path, "heihe", "heihe", extra_toml='[hub]\nprovince_key = "../province.key"'
    )
    try:
        db = f.node.server.ctx.config.database
        before = sqlite3.connect(db).execute("SELECT count(*) FROM outbox").fetchone()[0]
        resp = await f.citizen.Deregister(
            node_pb2.DeregisterRequest(confirm=True), metadata=f.me(CAROL)
        )
        assert resp.hub_notified
        rows = (
            sqlite3.connect(db).execute("SELECT kind, payload FROM outbox ORDER BY seq").fetchall()
        )
        assert len(rows) == before + 1
        kind, payload = rows[-1]
        assert kind == "deregistration"
        event = hub_pb2.Deregistration.FromString(bytes(payload))
        assert event.province_pseudonym == province_pseudonym(province_key, CAROL)
        assert event.deregistered_at == f.node.server.ctx.now_s()
        assert CAROL.encode() not in bytes(payload)
    finally:
        await f.bed.close()


async def test_deregistration_needs_confirmation(heihe: Fed) -> None:
    """REQ: H2 — nothing is deleted without an explicit confirmation."""
    await expect_refused(
        heihe.citizen.Deregister(node_pb2.DeregisterRequest(), metadata=heihe.me(BOB)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NOT_CONFIRMED",
    )
    assert await heihe.grade(BOB) == "A"


# ------------------------------------------------------------------ review and throttling (N23)


async def test_review_report_flags_purpose_outside_consent_and_late_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H16 N23 N7 — every query is registered with requester, purpose and consent;
    the report groups them, flags a purpose outside the consent, and lists a source
    that shared a record more than 15 working days after it was formed."""
    f = await start_governed(tmp_path, "heihe", "heihe", seed_month="2026-09")  # shared on time
    try:
        await _review_report(f, capsys)
    finally:
        await f.bed.close()


async def _review_report(f: Fed, capsys: pytest.CaptureFixture[str]) -> None:
    token, _ = await f.attest(BOB)
    await expect_refused(
        f.peer.RequestAttestation(attestation_request(token, BOB, "heihe/transit-discount")),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_WRONG_PURPOSE",
    )
    # N7: formed Tue 8 Sep → due Tue 29 Sep (Fri 25 Sep is a holiday): on time today;
    # formed Mon 7 Sep → due Mon 28 Sep: late.  Both are accepted.
    tax_records = [
        honour_record("t-ontime", CAROL, "2026-09-08"),
        honour_record("t-late", CAROL, "2026-09-07"),
    ]
    for rec in tax_records:
        rec.source = "tax"  # the tax office files under its own name (H7, N4)
    resp = await f.other_source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="tax-1", records=tax_records)
    )
    assert resp.accepted == 2
    capsys.readouterr()
    rc = cli.main(["review", "report", "--config", str(f.node.directory / "node.toml"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total_queries"] == 2
    rows = {(q["requester"], q["purpose"]): q for q in report["queries"]}
    assert rows[("hainan", "heihe/credit-loans")]["issued"] == 1
    assert rows[("hainan", "heihe/transit-discount")]["refusals"] == {"CONSENT_WRONG_PURPOSE": 1}
    (flag,) = report["flagged"]
    assert flag["flag"] == "purpose outside the consent"
    assert (flag["requester"], flag["purpose"], flag["consented_purpose"]) == (
        "hainan",
        "heihe/transit-discount",
        "heihe/credit-loans",
    )
    assert flag["consent_id"] == token.consent_id
    assert report["late_sources"] == [
        {"source": "heihe-tax", "late_records": 1, "missed_objection_deadlines": 0}
    ]
    assert BOB not in json.dumps(report)
    rc = cli.main(["review", "report", "--config", str(f.node.directory / "node.toml")])
    text = capsys.readouterr().out
    assert rc == 0 and "purpose outside the consent" in text and "heihe-tax" in text


async def test_requester_over_its_rate_is_throttled_with_a_retry_hint(tmp_path: Path) -> None:
    """REQ: N23 H16 — a requester over its configured rate gets RESOURCE_EXHAUSTED with a
    retry hint; other requesters and the citizen's own queries are not limited (H12)."""
    f = await start_governed(
        tmp_path, "heihe", "heihe", "per_requester_per_minute = { hainan = 2 }"
    )
    try:
        token = await f.token(BOB)
        for _ in range(2):
            await f.peer.RequestAttestation(attestation_request(token, BOB, "heihe/credit-loans"))
        err = await expect_refused(
            f.peer.RequestAttestation(attestation_request(token, BOB, "heihe/credit-loans")),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "QUERY_RATE_EXCEEDED",
        )
        hint = dict(err.trailing_metadata() or ())  # type: ignore[arg-type]
        assert hint[RETRY_AFTER_KEY] == "30"  # 2 per minute: one token every 30 s
        for _ in range(5):  # the citizen's own queries are free and unlimited
            await f.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=f.me(BOB))
        f.clock.advance(seconds=30)
        await f.peer.RequestAttestation(attestation_request(token, BOB, "heihe/credit-loans"))
        assert f.node.server.throttle.refused["hainan"] == 1
    finally:
        await f.bed.close()


# ------------------------------------------------------------------ supplementary info (N5, N9)


async def test_upload_counts_only_after_verification_and_rejection_says_why(
    hainan: Fed,
) -> None:
    """REQ: N5 N9 — an upload with proof and authorisation counts only once the named
    source verifies it; a rejected upload tells the citizen why."""
    f = hainan
    before = await f.grade(ALICE)
    up = node_pb2.UploadSupplementRequest(
        category="honour",
        level="national",
        act_id="model-worker-2026",
        recognised_on="2026-05-01",
        verifier="hainan-court",
        proof_sha256=b"\x01" * 32,
        description="national model worker",
        authorise_verification=True,
    )
    first = await f.citizen.UploadSupplement(up, metadata=f.me(ALICE))
    assert first.state == "pending"
    assert await f.grade(ALICE) == before  # does not count yet
    up.act_id = "fake-award"
    second = await f.citizen.UploadSupplement(up, metadata=f.me(ALICE))
    queue = await f.source.ListSupplements(node_pb2.ListSupplementsRequest(pending_only=True))
    assert {s.supplement_id for s in queue.supplements} == {
        first.supplement_id,
        second.supplement_id,
    }
    assert not (await f.other_source.ListSupplements(node_pb2.ListSupplementsRequest())).supplements
    ok = await f.source.VerifySupplement(
        node_pb2.VerifySupplementRequest(supplement_id=first.supplement_id, accept=True)
    )
    assert ok.state == "verified" and ok.record_id
    assert await f.grade(ALICE) != before
    report = await f.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=f.me(ALICE))
    counted = {c.record_id: c for c in report.result.contributions}[ok.record_id]
    assert counted.status == "counted" and counted.points == 60
    no = await f.source.VerifySupplement(
        node_pb2.VerifySupplementRequest(
            supplement_id=second.supplement_id, reason="no such award in the 2026 register"
        )
    )
    assert no.state == "rejected"
    mine = await f.citizen.ListMySupplements(
        node_pb2.ListSupplementsRequest(), metadata=f.me(ALICE)
    )
    assert {s.state for s in mine.supplements} == {"verified", "rejected"}
    assert any("no such award in the 2026 register" in n for n in await f.notes(ALICE))
    await expect_refused(
        f.source.VerifySupplement(
            node_pb2.VerifySupplementRequest(supplement_id=second.supplement_id, accept=True)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SUPPLEMENT_DECIDED",
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"authorise_verification": False}, "VERIFICATION_NOT_AUTHORISED"),
        ({"verifier": "somebody"}, "UNKNOWN_VERIFIER"),
        ({"category": "admin_penalty", "level": ""}, "POLARITY_MISMATCH"),
        ({"category": "religion"}, "UNKNOWN_CATEGORY"),
        ({"level": "galactic"}, "UNKNOWN_LEVEL"),
        ({"proof_sha256": b"short"}, "INVALID_FIELD"),
        ({"recognised_on": "2027-01-01"}, "FUTURE_RECOGNITION"),
        ({"act_id": f"award-{ALICE}"}, "ID_NUMBER_IN_FIELD"),
        ({"description": f"for {ALICE}"}, "ID_NUMBER_IN_FIELD"),
    ],
    ids=[
        "not_authorised",
        "unknown_verifier",
        "negative",
        "forbidden",
        "level",
        "proof",
        "future",
        "id-in-act-id",
        "id-in-description",
    ],
)
async def test_upload_refusals(hainan: Fed, change: dict[str, object], reason: str) -> None:
    """REQ: N5 N9 H7 — bad uploads are refused naming the field; nothing is stored."""
    up = node_pb2.UploadSupplementRequest(
        category="honour",
        level="city",
        act_id="a",
        recognised_on="2026-05-01",
        verifier="hainan-court",
        proof_sha256=b"\x01" * 32,
        authorise_verification=True,
    )
    for k, v in change.items():
        setattr(up, k, v)
    await expect_refused(
        hainan.citizen.UploadSupplement(up, metadata=hainan.me(ALICE)),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    mine = await hainan.citizen.ListMySupplements(
        node_pb2.ListSupplementsRequest(), metadata=hainan.me(ALICE)
    )
    assert not mine.supplements


async def test_heihe_scheme_accepts_no_personal_uploads(heihe: Fed) -> None:
    """REQ: N5 H6 — only categories whose scheme accepts verified personal records may be
    uploaded; Heihe's catalogue accepts none."""
    await expect_refused(
        heihe.citizen.UploadSupplement(
            node_pb2.UploadSupplementRequest(
                category="honour",
                level="city",
                act_id="a",
                recognised_on="2026-05-01",
                verifier="heihe-court",
                proof_sha256=b"\x01" * 32,
                authorise_verification=True,
            ),
            metadata=heihe.me(ALICE),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PROVENANCE_NOT_ALLOWED",
    )


# ------------------------------------------------------------------ catalogue (H14, N16, N17)


async def test_incentive_catalogue_is_published_and_offers_no_punishment(heihe: Fed) -> None:
    """REQ: H12 H14 N16 N17 — the catalogue says which grades qualify for which scenario
    and what the relying party sees, published with a version and a date (issue 15 §2);
    no RPC of any service offers a deny or punishment decision."""
    cat = await heihe.citizen.GetIncentiveCatalogue(node_pb2.GetIncentiveCatalogueRequest())
    assert (cat.scheme_id, cat.incentive_tier) == ("heihe", "A")
    assert (cat.catalogue_version, cat.published_on) == ("2025.1", "2025-01-01")  # the scheme's
    entries = {e.id: e for e in cat.entries}
    assert len(entries) == 19 and {e.min_grade for e in cat.entries} == {"A"}
    assert (entries["credit-loans"].ref, entries["credit-loans"].disclosure) == (
        "heihe/credit-loans",
        "grade_and_score",
    )
    assert list(entries["gov-fast-lane"].qualifying_grades) == ["SSS", "SS", "S", "AAA", "AA", "A"]
    assert list(entries["credit-loans"].qualifying_grades) == ["SSS", "SS", "S", "AAA", "AA", "A"]
    assert all("B" not in e.qualifying_grades for e in cat.entries)
    basic = [e for e in cat.entries if e.basic_public_service]
    assert basic and all(e.effect == "fast_lane" for e in basic)
    words = ("deny", "punish", "refuse", "restrict", "blacklist", "penal")
    for service in node_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            assert not any(w in method.name.lower() for w in words), method.full_name


# ------------------------------------------------------------------ model rollout (H11, N12)


async def test_rollout_evaluate_trial_shadow_activate_and_attestations_name_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11 N12 — a new version is evaluated, shadow-scored on trial (differences
    reported, nothing published), activated from an effective date; attestations name
    the version that produced them."""
    from importlib import resources

    f = await start_governed(tmp_path, "heihe", "heihe")
    cfg = str(f.node.directory / "node.toml")
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    text = text.replace('version = "2025.1"', 'version = "2026.1"', 1)
    text = text.replace("serious = { points = 80,", "serious = { points = 20,", 1)
    cand = tmp_path / "heihe-2026.toml"
    cand.write_text(text, encoding="utf-8")
    try:
        _, before = await f.attest(ALICE)
        env = attestation_pb2.SignedAttestation.FromString(before).envelope
        assert attestation_pb2.Attestation.FromString(env.payload).model_version == "heihe@2025.1"
        with pytest.raises(SystemExit):
            cli.main(
                ["model", "rollout", "trial", "--config", cfg, "--today", "2026-09-29", "--nope"]
            )
        assert (
            cli.main(["model", "rollout", "trial", "--config", cfg, "--today", "2026-09-29"]) == 2
        )
        ev = huxin_json(
            "model",
            "rollout",
            "evaluate",
            "--config",
            cfg,
            "--candidate",
            str(cand),
            "--today",
            "2026-09-29",
        )
        assert ev["stage"] == "evaluated"
        shadow = ev["shadow_report"]
        assert isinstance(shadow, dict)
        assert shadow["compared"] == 3 and shadow["moved_up"] == 3  # 690 A → 750 AA
        tr = huxin_json(
            "model",
            "rollout",
            "trial",
            "--config",
            cfg,
            "--today",
            "2026-09-29",
            "--accept-shift",
        )
        assert tr["stage"] == "trial" and tr["shadow_version"] == "2026.1"
        assert tr["version_in_force"] == "2025.1"
        sh = huxin_json("model", "rollout", "shadow", "--config", cfg, "--today", "2026-10-15")
        assert sh["shadow_report"]["as_of"] == "2026-10-15"  # type: ignore[index]
        # Too early: at least 30 days of trial.
        assert (
            cli.main(
                [
                    "model",
                    "rollout",
                    "activate",
                    "--config",
                    cfg,
                    "--today",
                    "2026-10-15",
                    "--effective",
                    "2026-11-01",
                ]
            )
            == 2
        )
        act = huxin_json(
            "model",
            "rollout",
            "activate",
            "--config",
            cfg,
            "--today",
            "2026-10-30",
            "--effective",
            "2026-11-01",
        )
        assert act["stage"] == "scheduled" and act["version_in_force"] == "2025.1"
        st = huxin_json("model", "rollout", "status", "--config", cfg, "--today", "2026-11-01")
        assert st["version_in_force"] == "2026.1"
        # A node started on or after the effective date scores with it from the start
        # (a running node switches without a restart: test_rights_rollout_live.py).
        await f.bed.stop_node("heihe")
        clock = ManualClock(datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
        f.node = await f.bed.start_node("heihe", "heihe", clock=clock)
        f.peer = node_pb2_grpc.PeerServiceStub(f.bed.peer_channel(f.node, f.bed.cert("hainan")))
        f.citizen = f.bed.citizen_stub(f.node)
        _, after = await f.attest(ALICE)
        env = attestation_pb2.SignedAttestation.FromString(after).envelope
        att = attestation_pb2.Attestation.FromString(env.payload)
        assert att.model_version == "heihe@2026.1"
        assert att.grade == "AA"  # 600 + 170 - 20 under the new version
    finally:
        await f.bed.close()


async def test_clock_start_is_a_working_tuesday() -> None:
    """The fixtures' start day (Tue 29 Sep 2026) is a working day before National Day."""
    from scoring import WorkingDayCalendar

    cal = WorkingDayCalendar()
    assert cal.is_working_day(START.date())
    assert not cal.is_working_day((START + timedelta(days=2)).date())
