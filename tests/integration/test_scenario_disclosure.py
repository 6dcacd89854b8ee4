"""Incentives only, enforced where the grade leaves the node (issue 15 §2; docs/adr/0512).

A Heihe node and a Hainan node (loopback, mutual TLS, SQLite, a manual clock);
the Hainan node's certificate is the relying party.  Every consent names a
catalogue scenario; the default disclosure is a threshold attestation; only a
person who meets the scenario can grant it, and a person who falls below it
after the grant is, for the relying party, simply a person who withdrew.

People (Heihe: base 600 = A; admin penalty without severity -30; city honour
+30; international honour +80):

* ALICE — no records: 600, A;
* BOB — a penalty: 570, B;
* CAROL — a city honour and a penalty: 600, A until the honour is revoked (570, B);
* ERIN — four international honours: 920, SS (Hainan AAA through the approved table);
* FRANK — a city honour: 630, A.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc import aio

import node.cli._main as cli
from keys import KeyPair, Status, StatusList, encode_private_key, load_trust, verify_attestation
from keys.pb.v1 import attestation_pb2
from node.core._clock import ManualClock
from node.demo._testbed import (
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.disclosure import field_paths
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import field_of, reason_of
from tests.integration._approvals import approval_args
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
ALICE, BOB, CAROL, ERIN, FRANK = (make_id_number(n) for n in (501, 502, 503, 505, 506))
PEOPLE = (ALICE, BOB, CAROL, ERIN, FRANK)
CREDIT = "heihe/credit-loans"  # tier A; may disclose grade and score
RENTAL = "heihe/deposit-free-rental"  # tier A; threshold only
HAINAN_BANK = "hainan/bank-credit"  # Hainan's scenario, tier AA; threshold only
UNSPECIFIED, THRESHOLD = node_pb2.CONSENT_SCOPE_UNSPECIFIED, node_pb2.CONSENT_SCOPE_THRESHOLD
GRADE, GRADE_AND_SCORE = node_pb2.CONSENT_SCOPE_GRADE, node_pb2.CONSENT_SCOPE_GRADE_AND_SCORE


def _penalty(record_id: str, idn: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.category, rec.level = "admin_penalty", ""
    return rec


def _international(record_id: str, idn: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.level = "international"
    return rec


class Fed:
    def __init__(self, bed: Testbed, heihe: RunningNode, hainan: RunningNode) -> None:
        from keys import NodeCertificate

        self.bed, self.heihe = bed, heihe
        assert bed.ca is not None
        cert = NodeCertificate(
            "hainan",
            (hainan.directory / "tls/node.pem").read_bytes(),
            (hainan.directory / "tls/node.key").read_bytes(),
            bed.ca.cert_pem,
        )
        self.peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, cert))
        self.source = node_pb2_grpc.SourceServiceStub(
            bed.peer_channel(heihe, bed.cert("heihe-court"))
        )
        self.citizen = bed.citizen_stub(heihe)

    def me(self, idn: str) -> tuple[tuple[str, bytes], ...]:
        return self.heihe.identity(idn)

    async def grant(
        self, idn: str, purpose: str, scope: int = UNSPECIFIED, *, preview: bool = False
    ) -> node_pb2.ConsentToken:
        req = node_pb2.GrantConsentRequest(
            audience="hainan",
            purpose=purpose,
            scope=scope,  # type: ignore[arg-type]
            max_uses=10,
            preview_only=preview,
        )
        return await self.citizen.GrantConsent(req, metadata=self.me(idn))

    async def request(
        self, token: node_pb2.ConsentToken, idn: str, purpose: str, **change: object
    ) -> bytes:
        req = attestation_request(token, idn, purpose)
        for key, value in change.items():
            setattr(req, key, value)
        return bytes((await self.peer.RequestAttestation(req)).signed_attestation)

    async def written(self) -> tuple[int, int, int]:
        """Consent rows, log entries and notifications in the Heihe database."""
        db = self.heihe.server.ctx.db
        row = await db.fetchone(
            "SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM log_entries), "
            "(SELECT count(*) FROM notifications)"
        )
        return int(row[0]), int(row[1]), int(row[2])

    async def tables(self) -> tuple[int, int, int, int]:
        """Row counts of published_corrections, consents, log entries and notifications."""
        row = await self.heihe.server.ctx.db.fetchone(
            "SELECT (SELECT count(*) FROM published_corrections), (SELECT count(*) FROM"
            " consents), (SELECT count(*) FROM log_entries), (SELECT count(*) FROM notifications)"
        )
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def log_size(self) -> int:
        env = await self.peer.GetLogCheckpoint(node_pb2.GetCheckpointRequest())
        return int(attestation_pb2.Checkpoint.FromString(env.payload).tree_size)

    async def status_of(self, blob: bytes) -> Status:
        index = _payload(blob).status.index
        env = await self.peer.GetStatusList(node_pb2.GetStatusListRequest())
        m = attestation_pb2.StatusList.FromString(env.payload)
        import zlib

        return StatusList(m.issuer_region, m.list_id, m.size, raw=zlib.decompress(m.bits)).get(
            index
        )


def _payload(blob: bytes) -> attestation_pb2.Attestation:
    env = attestation_pb2.SignedAttestation.FromString(blob).envelope
    return attestation_pb2.Attestation.FromString(env.payload)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fed]:
    bed = Testbed(tmp_path_factory.mktemp("disclose"), now=NOW)
    heihe = await bed.start_node(
        "heihe", "heihe", peers=("hainan",), sources=("heihe-court",), clock=ManualClock(NOW)
    )
    hainan = await bed.start_node("hainan", "hainan", peers=("heihe",), clock=ManualClock(NOW))
    f = Fed(bed, heihe, hainan)
    records = [
        _penalty("b-pen", BOB),
        honour_record("c-hon", CAROL),
        _penalty("c-pen", CAROL),
        honour_record("f-hon", FRANK),
        *(_international(f"e-{i}", ERIN) for i in range(4)),
    ]
    await f.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed", records=records, subjects=[resident(p) for p in PEOPLE]
        )
    )
    yield f
    await bed.close()


# ------------------------------------------------------------------ the purpose (H14, N14)


@pytest.mark.parametrize(
    ("purpose", "scope", "reason", "field"),
    [
        pytest.param("loan", GRADE, "UNKNOWN_SCENARIO", "purpose", id="free-text-loan"),
        pytest.param("deny_housing_subsidy", GRADE, "UNKNOWN_SCENARIO", "purpose", id="punitive-deny-housing-subsidy"),
        pytest.param("blacklist_check", UNSPECIFIED, "UNKNOWN_SCENARIO", "purpose", id="punitive-blacklist-check"),
        pytest.param("heihe/deny-housing-subsidy", UNSPECIFIED, "UNKNOWN_SCENARIO", "purpose", id="scenario-not-in-catalogue"),
        pytest.param("atlantis/credit-loans", UNSPECIFIED, "UNKNOWN_SCENARIO", "purpose", id="unknown-scheme"),
        pytest.param("heihe/credit-loans/x", UNSPECIFIED, "UNKNOWN_SCENARIO", "purpose", id="malformed-reference"),
        pytest.param(RENTAL, GRADE, "DISCLOSURE_NOT_ALLOWED", "scope", id="grade-for-a-threshold-scenario"),
        pytest.param(RENTAL, GRADE_AND_SCORE, "DISCLOSURE_NOT_ALLOWED", "scope", id="score-for-a-threshold-scenario"),
        pytest.param(HAINAN_BANK, GRADE, "DISCLOSURE_NOT_ALLOWED", "scope", id="grade-for-another-schemes-threshold-scenario"),
        pytest.param(CREDIT, 9, "INVALID_FIELD", "scope", id="unknown-scope"),
    ],
)  # fmt: skip
async def test_a_purpose_outside_the_catalogue_or_a_disclosure_beyond_it_is_refused_at_grant(
    fed: Fed, purpose: str, scope: int, reason: str, field: str
) -> None:
    """REQ: H12 H14 N14 N16 — issue 15 §2: a consent's purpose names a catalogue scenario;
    free text and punitive purposes are INVALID_ARGUMENT UNKNOWN_SCENARIO, a scope beyond
    what the scenario allows DISCLOSURE_NOT_ALLOWED, each naming its field; nothing is
    written (no consent row, no log leaf, no notification) and a preview is refused alike."""
    before = await fed.written()
    for preview in (False, True):
        err = await expect_refused(fed.grant(FRANK, purpose, scope, preview=preview))
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            field,
        )
    assert await fed.written() == before


@pytest.mark.parametrize(
    "purpose", ["loan", "deny_housing_subsidy", "blacklist_check", "heihe/blacklist-check"]
)
async def test_a_punitive_purpose_is_refused_at_request_by_the_home_node(
    fed: Fed, purpose: str
) -> None:
    """REQ: H14 N14 — issue 15 §2: a relying party holding a genuine consent cannot ask
    for another, punitive purpose: INVALID_ARGUMENT UNKNOWN_SCENARIO on the purpose, the
    consent's uses untouched and nothing logged (the first hop of a route refuses alike:
    tests/integration/test_route_refusals.py)."""
    token = await fed.grant(FRANK, CREDIT, GRADE)
    before = await fed.written()
    err = await expect_refused(fed.request(token, FRANK, purpose))
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_SCENARIO",
        "purpose",
    )
    assert await fed.written() == before
    consents = await fed.citizen.ListConsents(
        node_pb2.ListConsentsRequest(), metadata=fed.me(FRANK)
    )
    assert {c.grant.consent_id: c.uses for c in consents.consents}[token.consent_id] == 0


# ------------------------------------------------------------------ threshold (H12)


async def _trust_bundle(fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A hub-signed trust bundle (``huxin trust build``: key sets, the shipped scenario
    catalogue and the approved heihe<->hainan tables); returns the hub key (hex)."""
    hub = KeyPair.generate()
    (tmp_path / "hub.key").write_bytes(encode_private_key(hub))
    if "node.cli._keys" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "node.cli._keys"))
    rc = cli.main(
        [
            "trust", "build", "--hub-root", str(tmp_path / "hub.key"), "--issuer", "hlj",
            "--version", "1", "--now", NOW.isoformat(), "--region-dir",
            str(fed.heihe.directory / "keys"), "--out", str(tmp_path / "bundle.bin"),
            *approval_args(tmp_path, tmp_path / "hub.key", "hlj", NOW.isoformat()),
        ]
    )  # fmt: skip
    assert rc == 0
    status = await fed.peer.GetStatusList(node_pb2.GetStatusListRequest())
    (tmp_path / "status.bin").write_bytes(status.SerializeToString())
    return hub.public_key.hex()


def _verify_cli(tmp_path: Path, hub_key: str, blob: bytes, nonce: bytes, *extra: str) -> list[str]:
    (tmp_path / "att.bin").write_bytes(blob)
    return [
        "verify", str(tmp_path / "att.bin"), "--trust", str(tmp_path / "bundle.bin"),
        "--hub-key", hub_key, "--audience", "hainan", "--nonce", "hex:" + nonce.hex(),
        "--status", str(tmp_path / "status.bin"), "--now", NOW.isoformat(), *extra,
    ]  # fmt: skip


async def test_the_default_is_a_threshold_attestation_without_grade_or_score_verified_offline(
    fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H12 H14 N14 N16 — issue 15 §2: an unspecified scope is a THRESHOLD consent; the
    attestation says "meets heihe/deposit-free-rental (tier ≥ A in heihe@2025.1)", is signed
    like any attestation, carries neither grade nor score (the fields are absent from the
    signed payload), and verifies offline with the hub's bundle and its scenario catalogue;
    `huxin verify` shows the scenario and the disclosure kind, in text and JSON."""
    token = await fed.grant(ALICE, RENTAL)
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    assert (grant.purpose, grant.scope) == (RENTAL, THRESHOLD)
    nonce = os.urandom(16)
    blob = await fed.request(token, ALICE, RENTAL, nonce=nonce)
    att = _payload(blob)
    assert (att.scenario, att.disclosure) == (RENTAL, "threshold")
    assert (att.threshold.scheme_id, att.threshold.scheme_version, att.threshold.min_tier) == (
        "heihe",
        "2025.1",
        "A",
    )
    present = {d.name for d, _ in att.ListFields()}
    assert not present & {"grade", "score", "mapped"}

    hub_key = await _trust_bundle(fed, tmp_path, monkeypatch)
    capsys.readouterr()
    args = _verify_cli(tmp_path, hub_key, blob, nonce, "--subject-id", ALICE)
    assert cli.main([*args, "--salt", token.binding_salt.hex()]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("VALID: heihe meets heihe/deposit-free-rental "), line
    assert "(tier ≥ A in heihe@2025.1)" in line and "no grade, no score" in line
    assert cli.main([*args, "--salt", token.binding_salt.hex(), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    shown = doc["attestation"]
    assert (shown["scenario"], shown["disclosure"], shown["grade"], shown["score"]) == (
        RENTAL,
        "threshold",
        None,
        None,
    )
    assert shown["threshold"] == {"scheme": "heihe@2025.1", "min_tier": "A"}
    assert doc["meets"].startswith("meets heihe/deposit-free-rental ")
    trust = load_trust((tmp_path / "bundle.bin").read_bytes(), bytes.fromhex(hub_key), NOW)
    assert verify_attestation(blob, trust, NOW, "hainan", nonce=nonce).attestation.grade == ""


async def test_grade_and_score_only_where_the_scenario_allows_them(fed: Fed) -> None:
    """REQ: H12 — issue 15 §2: heihe/credit-loans allows grade and score; a GRADE consent
    discloses the grade only, a GRADE_AND_SCORE one both, and each names its scenario and
    disclosure kind next to today's fields."""
    grade_only = _payload(await fed.request(await fed.grant(FRANK, CREDIT, GRADE), FRANK, CREDIT))
    assert (grade_only.grade, grade_only.HasField("score"), grade_only.disclosure) == (
        "A",
        False,
        "grade",
    )
    both = await fed.request(await fed.grant(FRANK, CREDIT, GRADE_AND_SCORE), FRANK, CREDIT)
    att = _payload(both)
    assert (att.grade, att.score, att.disclosure, att.scenario) == (
        "A",
        630,
        "grade_and_score",
        CREDIT,
    )
    assert att.threshold.min_tier == "A"


# ------------------------------------------------------------------ preview


@pytest.mark.parametrize(
    ("who", "purpose", "scope", "withheld"),
    [
        pytest.param(FRANK, RENTAL, UNSPECIFIED, ["grade", "score"], id="threshold"),
        pytest.param(FRANK, CREDIT, GRADE, ["score"], id="grade"),
        pytest.param(FRANK, CREDIT, GRADE_AND_SCORE, [], id="grade-and-score"),
        pytest.param(ERIN, HAINAN_BANK, UNSPECIFIED, ["grade", "score", "mapped.grade"], id="other-scheme-threshold"),
    ],
)  # fmt: skip
async def test_the_citizen_sees_exactly_what_will_be_disclosed_before_granting(
    fed: Fed, who: str, purpose: str, scope: int, withheld: list[str]
) -> None:
    """REQ: H5 H12 N4 N15 — issue 15 §2: ``preview_only`` runs every check of a grant and
    returns the scenario's title, tier and scheme version, the disclosure kind and the
    exact attestation fields the relying party will see, storing, signing and logging
    nothing; the grant returns the same preview, and the attestation issued under it
    carries exactly the fields listed."""
    before = await fed.written()
    shown = await fed.grant(who, purpose, scope, preview=True)
    assert await fed.written() == before
    assert not shown.HasField("token") and not shown.consent_id and not shown.binding_salt
    p = shown.preview
    scheme = purpose.split("/")[0]
    assert (p.scenario, p.scheme_id, p.scheme_version, p.audience) == (
        purpose,
        scheme,
        "2025.1",
        "hainan",
    )
    assert p.title and p.min_tier and p.allowed_disclosure and p.statement
    assert list(p.withheld_fields) == withheld
    assert p.mapping == ("" if scheme == "heihe" else "heihe-hainan-anchored@1")
    token = await fed.grant(who, purpose, scope)
    assert token.preview == shown.preview
    att = _payload(await fed.request(token, who, purpose))
    assert field_paths(att) == list(p.disclosed_fields)
    assert not set(withheld) & set(field_paths(att))


# ------------------------------------------------------------------ not met (H14, N14)


async def test_a_grade_b_subject_is_told_scenario_not_met_and_nothing_is_stored(fed: Fed) -> None:
    """REQ: H14 N14 — issue 15 §2: Bob (570, B) asks to grant heihe/credit-loans (tier A):
    FAILED_PRECONDITION SCENARIO_NOT_MET to him alone, for the preview and the grant;
    no consent row, no log leaf, no notification, so no relying party can ever learn
    that he falls short.  Alice (600, A) maps to Hainan B: she does not meet
    hainan/bank-credit (AA) through the approved table either."""
    before = await fed.written()
    for idn, purpose in ((BOB, CREDIT), (BOB, RENTAL), (ALICE, HAINAN_BANK)):
        for preview in (True, False):
            err = await expect_refused(fed.grant(idn, purpose, preview=preview))
            assert (err.code(), reason_of(err), field_of(err)) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "SCENARIO_NOT_MET",
                "purpose",
            )
    assert await fed.written() == before
    mine = await fed.citizen.ListConsents(node_pb2.ListConsentsRequest(), metadata=fed.me(BOB))
    assert not mine.consents
    log = await fed.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=fed.me(BOB))
    assert not log.entries


async def test_a_preview_and_a_refused_grant_write_nothing_not_even_a_late_grade(
    fed: Fed,
) -> None:
    """REQ: H3 H14 N14 N15 — issue 15 §2, §3: the grant's decision reads the published
    grade without writing it.  Two people the month's run never scored (filed after it):
    Gina (A) previews heihe/credit-loans and is shown it; Hank (B) previews and grants it
    and is refused FAILED_PRECONDITION SCENARIO_NOT_MET.  Every table is unchanged:
    no late published_corrections row, no consent, no log leaf, no notification."""
    gina, hank = make_id_number(507), make_id_number(508)
    await fed.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="late-pair",
            records=[honour_record("g-hon", gina), _penalty("h-pen", hank)],
            subjects=[resident(gina), resident(hank)],
        )
    )
    before = await fed.tables()
    shown = await fed.grant(gina, CREDIT, preview=True)
    assert shown.preview.scenario == CREDIT and not shown.token.payload
    for preview in (True, False):
        err = await expect_refused(fed.grant(hank, CREDIT, preview=preview))
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "SCENARIO_NOT_MET",
            "purpose",
        )
    assert await fed.tables() == before


async def test_falling_below_after_the_grant_looks_like_a_withdrawal_to_the_requester(
    fed: Fed,
) -> None:
    """REQ: H14 H16 N14 N23 — issue 15 §2: Carol (600, A) grants two consents; she
    withdraws the second; then the court revokes her honour (570, B).  The next request
    under the first consent is refused with byte for byte what the withdrawn one gets
    (status code, huxin-reason, huxin-field, message, every trailer): the consent ended
    with the correction (withdrawn, as a withdrawal is), not on the request, and only
    Carol is told why: a notification and a consent_ended leaf in her own log."""
    first = await fed.grant(CAROL, CREDIT, GRADE)
    second = await fed.grant(CAROL, CREDIT, GRADE)
    issued = await fed.request(first, CAROL, CREDIT)
    await fed.citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=second.consent_id), metadata=fed.me(CAROL)
    )
    withdrawn = await expect_refused(fed.request(second, CAROL, CREDIT))
    revoked = await fed.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="c-hon", status="revoked", note="award withdrawn")
    )
    assert revoked.grade.grade_after == "B"
    fell = await expect_refused(fed.request(first, CAROL, CREDIT))

    def seen(err: aio.AioRpcError) -> tuple[object, ...]:
        return (err.code(), err.details(), tuple(err.trailing_metadata() or ()))

    assert seen(fell) == seen(withdrawn)
    assert (fell.code(), reason_of(fell), field_of(fell)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_WITHDRAWN",
        "consent_token",
    )
    assert "SCENARIO_NOT_MET" not in repr(seen(fell))
    again = await expect_refused(fed.request(first, CAROL, CREDIT))  # and from now on, alike
    assert seen(again) == seen(withdrawn)

    consents = await fed.citizen.ListConsents(
        node_pb2.ListConsentsRequest(), metadata=fed.me(CAROL)
    )
    states = {c.grant.consent_id: c for c in consents.consents}
    assert states[first.consent_id].state == node_pb2.CONSENT_STATE_WITHDRAWN
    assert states[first.consent_id].uses == 1  # the refused request used nothing
    # the grade change superseded it at once (H16), before the consent ended
    assert await fed.status_of(issued) is Status.SUPERSEDED
    notes = await fed.citizen.ListNotifications(
        node_pb2.ListNotificationsRequest(), metadata=fed.me(CAROL)
    )
    assert any(
        n.message.startswith("SCENARIO_NOT_MET") and CREDIT in n.message
        for n in notes.notifications
    )
    log = await fed.citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=fed.me(CAROL))
    entries = [node_pb2.LogEntry.FromString(e.entry) for e in log.entries]
    ended = [e for e in entries if e.kind == "consent_ended"]
    assert [(e.consent_id, e.requester, e.reason[:16]) for e in ended] == [
        (first.consent_id, "hainan", "SCENARIO_NOT_MET")
    ]
    refusals = [e.reason for e in entries if e.kind == "request_refused"]
    assert refusals and set(refusals) == {"CONSENT_WITHDRAWN"}


async def test_a_refusal_after_falling_below_has_a_withdrawals_effects(fed: Fed) -> None:
    """REQ: H14 H16 N14 N23 — issue 15 §2: what the relying party can observe around a
    refused request is the same whether the citizen withdrew or fell below the tier.
    Ivy (600, A) grants two consents and gets an attestation under each; she withdraws
    the first; the court then revokes her honour (570, B), which ends the second consent
    with the correction.  For each consent, the refused request changes nothing in the
    status entry of its earlier attestation (read before and after the request), grows
    the log checkpoint by exactly one leaf (the refusal), and returns the same error."""
    ivy = make_id_number(509)
    await fed.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="ivy",
            records=[honour_record("i-hon", ivy), _penalty("i-pen", ivy)],
            subjects=[resident(ivy)],
        )
    )
    withdrawn, fell = await fed.grant(ivy, CREDIT, GRADE), await fed.grant(ivy, CREDIT, GRADE)
    earlier = {
        "withdrawn": await fed.request(withdrawn, ivy, CREDIT),
        "fell": await fed.request(fell, ivy, CREDIT),
    }
    await fed.citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=withdrawn.consent_id), metadata=fed.me(ivy)
    )
    revoked = await fed.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="i-hon", status="revoked", note="award withdrawn")
    )
    assert revoked.grade.grade_after == "B"
    tokens = {"withdrawn": withdrawn, "fell": fell}
    seen = {}
    for case, token in tokens.items():
        status, size = await fed.status_of(earlier[case]), await fed.log_size()
        err = await expect_refused(fed.request(token, ivy, CREDIT))
        assert await fed.status_of(earlier[case]) is status, case
        assert await fed.log_size() == size + 1, case
        seen[case] = (err.code(), err.details(), tuple(err.trailing_metadata() or ()))
    assert seen["fell"] == seen["withdrawn"]
    assert reason_of_seen(seen["fell"]) == "CONSENT_WITHDRAWN"


def reason_of_seen(seen: tuple[object, ...]) -> str:
    trailers = dict(seen[2])  # type: ignore[arg-type]
    return str(trailers.get("huxin-reason", ""))


# ------------------------------------------------------------------ another scheme (C3, N16)


async def test_another_schemes_scenario_is_met_by_the_mapped_grade(
    fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: C3 H13 H14 N16 — issue 15 §2: hainan/bank-credit (Hainan tier AA) asked of
    Heihe is compared with Erin's grade mapped by the approved table (SS → AAA); the
    threshold attestation names the mapping but carries no grade, native or mapped; an
    empty target scheme is filled with the scenario's scheme, any other is refused
    (TARGET_SCHEME_MISMATCH); it verifies offline."""
    token = await fed.grant(ERIN, HAINAN_BANK)
    err = await expect_refused(fed.request(token, ERIN, HAINAN_BANK, target_scheme="wendeng"))
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "TARGET_SCHEME_MISMATCH",
        "target_scheme",
    )
    nonce = os.urandom(16)
    for target in ("", "hainan"):
        blob = await fed.request(token, ERIN, HAINAN_BANK, target_scheme=target, nonce=nonce)
        att = _payload(blob)
        assert (att.scheme_id, att.grade, att.HasField("score")) == ("heihe", "", False)
        assert (att.mapped.scheme_id, att.mapped.grade, att.mapped.mapping_id) == (
            "hainan",
            "",
            "heihe-hainan-anchored",
        )
        assert (att.threshold.scheme_id, att.threshold.min_tier) == ("hainan", "AA")
    hub_key = await _trust_bundle(fed, tmp_path, monkeypatch)
    capsys.readouterr()
    assert cli.main(_verify_cli(tmp_path, hub_key, blob, nonce)) == 0
    line = capsys.readouterr().out.strip()
    assert "meets hainan/bank-credit " in line and "(tier ≥ AA in hainan@2025.1)" in line
    assert "grade mapped by heihe-hainan-anchored@1" in line


# ------------------------------------------------------------------ incentive tier (C3, H14, N20)

HAINAN_FAST = "hainan/fast-lane"  # Hainan's scenario, tier A; threshold only


async def test_below_the_home_incentive_tier_another_regions_scenario_is_not_met(
    fed: Fed,
) -> None:
    """REQ: C3 H14 N14 N20 — issue 16 §2 (docs/adr/0205): a threshold consent for a Hainan
    scenario by a Heihe resident below Heihe's incentive tier (Bob, 570, B) reads his grade
    through the incentive-tier view of the installed table: not recognised, so he is told
    FAILED_PRECONDITION SCENARIO_NOT_MET (field purpose), exactly as a too-low grade, for
    the preview and the grant; no consent row, no log leaf, no notification."""
    before = await fed.written()
    for preview in (True, False):
        err = await expect_refused(fed.grant(BOB, HAINAN_FAST, preview=preview))
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "SCENARIO_NOT_MET",
            "purpose",
        )
        assert "nothing was granted" in (err.details() or "")
    assert await fed.written() == before
    mine = await fed.citizen.ListConsents(node_pb2.ListConsentsRequest(), metadata=fed.me(BOB))
    assert not mine.consents


async def test_at_the_home_incentive_tier_a_hainan_scenario_is_attested_and_verified_offline(
    fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: C3 H13 H14 N20 — issue 16 §2: Alice (600, Heihe A, at Heihe's incentive tier) is
    recognised in Hainan as A and meets hainan/fast-lane (tier A): the threshold attestation
    cites the installed approved table (id, version, content hash) and carries no grade;
    it verifies offline with the hub's bundle."""
    token = await fed.grant(ALICE, HAINAN_FAST)
    nonce = os.urandom(16)
    blob = await fed.request(token, ALICE, HAINAN_FAST, nonce=nonce)
    att = _payload(blob)
    assert (att.scenario, att.disclosure, att.grade) == (HAINAN_FAST, "threshold", "")
    assert (att.mapped.scheme_id, att.mapped.grade, att.mapped.mapping_id) == (
        "hainan",
        "",
        "heihe-hainan-anchored",
    )
    from mapping import published_table

    installed = published_table("heihe", "hainan").content_hash.removeprefix("sha256:")
    assert att.mapped.mapping_sha256.hex() == installed
    hub_key = await _trust_bundle(fed, tmp_path, monkeypatch)
    capsys.readouterr()
    assert cli.main(_verify_cli(tmp_path, hub_key, blob, nonce)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("VALID: heihe meets hainan/fast-lane "), line
    assert "(tier ≥ A in hainan@2025.1)" in line


async def test_verify_lists_what_a_threshold_attestation_unlocks(
    fed: Fed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: C3 H13 N20 — issue 16: a threshold attestation mapped into Hainan carries no
    mapped grade, only "tier ≥ A in hainan@2025.1"; `huxin verify` ranks that min_tier at
    the mapped scheme's version and lists what it unlocks (hainan/fast-lane), in text and
    JSON, instead of nothing."""
    token = await fed.grant(ALICE, HAINAN_FAST)
    nonce = os.urandom(16)
    blob = await fed.request(token, ALICE, HAINAN_FAST, nonce=nonce)
    assert _payload(blob).mapped.grade == ""
    hub_key = await _trust_bundle(fed, tmp_path, monkeypatch)
    capsys.readouterr()
    assert cli.main(_verify_cli(tmp_path, hub_key, blob, nonce)) == 0
    assert "unlocks in hainan@2025.1: hainan/fast-lane" in capsys.readouterr().out
    assert cli.main([*_verify_cli(tmp_path, hub_key, blob, nonce), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unlocks"] == ["hainan/fast-lane"]


@pytest.mark.parametrize(
    ("who", "unlocked"),
    [
        pytest.param(FRANK, ["hainan/fast-lane"], id="heihe-A-is-hainan-A"),
        pytest.param(
            ERIN,
            sorted(
                f"hainan/{s}"
                for s in (
                    "fast-lane",
                    "media-recognition",
                    "honours",
                    "funding-priority",
                    "investment-incentives",
                    "incubator-priority",
                    "startup-selection",
                    "bank-credit",
                    "integrity-credit-card",
                )
            ),
            id="heihe-SS-is-hainan-AAA",
        ),
    ],
)
async def test_verify_lists_the_target_scenarios_a_mapped_grade_unlocks(
    fed: Fed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    who: str,
    unlocked: list[str],
) -> None:
    """REQ: C3 N20 — issue 16 §1: a grade attestation mapped into Hainan lists, in `huxin
    verify`'s text and JSON, the Hainan incentive scenarios the mapped grade unlocks (from
    the hub-signed scenario catalogue of the bundle)."""
    token = await fed.grant(who, CREDIT, GRADE)
    nonce = os.urandom(16)
    blob = await fed.request(token, who, CREDIT, target_scheme="hainan", nonce=nonce)
    assert _payload(blob).mapped.grade
    hub_key = await _trust_bundle(fed, tmp_path, monkeypatch)
    capsys.readouterr()
    assert cli.main(_verify_cli(tmp_path, hub_key, blob, nonce)) == 0
    line = capsys.readouterr().out.strip()
    assert f"unlocks in hainan@2025.1: {', '.join(unlocked)} [disclosure grade]" in line
    assert cli.main([*_verify_cli(tmp_path, hub_key, blob, nonce), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unlocks"] == unlocked
