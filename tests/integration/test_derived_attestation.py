"""Derived scenario scores attested with the citizen's consent and rolled out like a model
(issue 16, "Derived scenario scores (N18) and finance (N19)"; H11, H12, H14; docs/adr/0006).

A Hainan node (home) and a Heihe node whose certificate is the relying party (loopback,
mutual TLS, SQLite, a manual clock).  Hainan's credit-card derived score
(``scoring/derived/hainan-credit-card.toml``, illustrative: base 500 = C, B from 560,
A from 700; honours count × 1) offers ``integrity-credit-card`` (tier B, threshold) and
``card-annual-fee`` (tier A, grade).  People (Hainan honours: national 60, city 30):

* PAT — one national honour: derived 560, B;
* QUINN — a clean record: derived 500, C;
* RUTH — four national honours: derived 740, A;
* SAM — one national honour (B) until the court revokes it (C).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

import node.cli._main as cli
from keys import (
    KeyPair,
    NodeCertificate,
    VerificationError,
    encode_private_key,
    load_trust,
    verify_attestation,
)
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
from node.pb.v1 import node_pb2, node_pb2_grpc, scoring_pb2
from node.rpc._client import field_of, reason_of
from tests.support.refusals import expect_refused

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
PAT, QUINN, RUTH, SAM = (make_id_number(n, area="460100") for n in (601, 602, 603, 604))
CARD = "hainan-credit-card/integrity-credit-card"  # tier B, threshold only
FEE = "hainan-credit-card/card-annual-fee"  # tier A, grade
THRESHOLD, GRADE = node_pb2.CONSENT_SCOPE_THRESHOLD, node_pb2.CONSENT_SCOPE_GRADE


def _national(record_id: str, idn: str) -> scoring_pb2.CreditRecord:
    rec = honour_record(record_id, idn)
    rec.level = "national"
    return rec


class Bed:
    def __init__(self, bed: Testbed, hainan: RunningNode, heihe: RunningNode) -> None:
        self.bed, self.hainan, self.heihe = bed, hainan, heihe
        assert bed.ca is not None
        cert = NodeCertificate(
            "heihe",
            (heihe.directory / "tls/node.pem").read_bytes(),
            (heihe.directory / "tls/node.key").read_bytes(),
            bed.ca.cert_pem,
        )
        self.peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(hainan, cert))
        self.source = node_pb2_grpc.SourceServiceStub(
            bed.peer_channel(hainan, bed.cert("hainan-court"))
        )
        self.citizen = bed.citizen_stub(hainan)

    async def grant(
        self, idn: str, purpose: str, scope: int = THRESHOLD, *, preview: bool = False
    ) -> node_pb2.ConsentToken:
        req = node_pb2.GrantConsentRequest(
            audience="heihe",
            purpose=purpose,
            scope=scope,
            max_uses=10,
            preview_only=preview,  # type: ignore[arg-type]
        )
        return await self.citizen.GrantConsent(req, metadata=self.hainan.identity(idn))

    async def request(self, token: node_pb2.ConsentToken, idn: str, purpose: str) -> bytes:
        req = attestation_request(token, idn, purpose, nonce=b"n" * 16)
        return bytes((await self.peer.RequestAttestation(req)).signed_attestation)

    async def written(self) -> tuple[int, int, int, int]:
        """Rows of published_corrections, consents, log entries and notifications."""
        row = await self.hainan.server.ctx.db.fetchone(
            "SELECT (SELECT count(*) FROM published_corrections), (SELECT count(*) FROM"
            " consents), (SELECT count(*) FROM log_entries), (SELECT count(*) FROM notifications)"
        )
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _shipped_text() -> str:
    return resources.files("scoring.derived").joinpath("hainan-credit-card.toml").read_text()


def _payload(blob: bytes) -> attestation_pb2.Attestation:
    env = attestation_pb2.SignedAttestation.FromString(blob).envelope
    return attestation_pb2.Attestation.FromString(env.payload)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bed]:
    tb = Testbed(tmp_path_factory.mktemp("derived"), now=NOW)
    hainan = await tb.start_node(
        "hainan", "hainan", peers=("heihe",), sources=("hainan-court",), clock=ManualClock(NOW)
    )
    heihe = await tb.start_node("heihe", "heihe", peers=("hainan",), clock=ManualClock(NOW))
    b = Bed(tb, hainan, heihe)
    records = [
        _national("p-1", PAT),
        _national("s-1", SAM),
        *(_national(f"r-{i}", RUTH) for i in range(4)),
    ]
    await b.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed",
            records=records,
            subjects=[resident(p) for p in (PAT, QUINN, RUTH, SAM)],
        )
    )
    yield b
    await tb.close()


async def _bundle(
    bed: Bed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, schemes: bool = True
) -> bytes:
    """``huxin trust build``: the Hainan key set and the shipped scenario catalogue (which
    lists the derived scenarios at their shipped version, with their base)."""
    hub = KeyPair.generate()
    (tmp_path / "hub.key").write_bytes(encode_private_key(hub))
    if "node.cli._keys" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "node.cli._keys"))
    rc = cli.main(
        [
            "trust", "build", "--hub-root", str(tmp_path / "hub.key"), "--issuer", "hub",
            "--version", "1", "--now", NOW.isoformat(), "--region-dir",
            str(bed.hainan.directory / "keys"), "--out", str(tmp_path / "bundle.bin"),
            *(["--scheme", "hainan=hainan@2025.1"] if schemes else []),
        ]
    )  # fmt: skip
    assert rc == 0
    status = await bed.peer.GetStatusList(node_pb2.GetStatusListRequest())
    (tmp_path / "status.bin").write_bytes(status.SerializeToString())
    return hub.public_key


def _verify(tmp_path: Path, hub_key: bytes, blob: bytes, *extra: str) -> list[str]:
    (tmp_path / "att.bin").write_bytes(blob)
    return [
        "verify", str(tmp_path / "att.bin"), "--trust", str(tmp_path / "bundle.bin"),
        "--hub-key", hub_key.hex(), "--audience", "heihe", "--nonce", "hex:" + (b"n" * 16).hex(),
        "--status", str(tmp_path / "status.bin"), "--now", NOW.isoformat(), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "purpose", "scope"),
    [
        pytest.param(QUINN, CARD, THRESHOLD, id="clean-record-C-below-card-tier-B"),
        pytest.param(PAT, FEE, GRADE, id="B-below-annual-fee-tier-A"),
    ],
)
async def test_a_grant_below_the_derived_tier_is_refused_and_nothing_is_stored(
    bed: Bed, who: str, purpose: str, scope: int
) -> None:
    """REQ: N18 N19 H14 N14 — issue 16: a consent for a derived score's scenario is
    granted only when the person's DERIVED tier (computed from the published month's
    explained result) meets the scenario's; below it, the preview and the grant are
    FAILED_PRECONDITION SCENARIO_NOT_MET (field purpose), told to the citizen alone: no
    late publication, no consent row, no log leaf, no notification."""
    held = await bed.written()
    for preview in (True, False):
        err = await expect_refused(bed.grant(who, purpose, scope, preview=preview))
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "SCENARIO_NOT_MET",
            "purpose",
        )
        assert "hainan-credit-card@2026.1" in (err.details() or "")
    assert await bed.written() == held


@pytest.mark.parametrize(
    ("purpose", "scope", "field"),
    [
        pytest.param(CARD, GRADE, "scope", id="grade-for-the-threshold-card-scenario"),
        pytest.param("hainan-credit-card/overdraft", THRESHOLD, "purpose", id="no-such-scenario"),
    ],
)
async def test_a_derived_purpose_outside_its_catalogue_or_beyond_its_disclosure_is_refused(
    bed: Bed, purpose: str, scope: int, field: str
) -> None:
    """REQ: N18 H12 H14 — issue 16: a derived score's scenarios are its catalogue: another
    is UNKNOWN_SCENARIO, a grade for the threshold-only card DISCLOSURE_NOT_ALLOWED
    (INVALID_ARGUMENT, naming the field); nothing is written."""
    held = await bed.written()
    err = await expect_refused(bed.grant(RUTH, purpose, scope))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err) == field
    assert reason_of(err) == ("DISCLOSURE_NOT_ALLOWED" if field == "scope" else "UNKNOWN_SCENARIO")
    assert await bed.written() == held


async def test_the_bank_card_threshold_attestation_names_the_derived_score_and_verifies_offline(
    bed: Bed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N18 N19 H12 — issue 16: Pat (derived B) grants the card scenario; the
    attestation names the derived score as its scheme (hainan-credit-card@2026.1, the
    threshold's), its base as model_version (hainan@2025.1), carries neither grade nor
    score, and verifies offline against the hub's catalogue; `huxin verify` says what the
    bank learned and that the derived score's numbers are illustrative."""
    token = await bed.grant(PAT, CARD)
    blob = await bed.request(token, PAT, CARD)
    att = _payload(blob)
    assert (att.scheme_id, att.scheme_version, att.model_version) == (
        "hainan-credit-card",
        "2026.1",
        "hainan@2025.1",
    )
    assert (att.threshold.scheme_id, att.threshold.scheme_version, att.threshold.min_tier) == (
        "hainan-credit-card",
        "2026.1",
        "B",
    )
    assert not {d.name for d, _ in att.ListFields()} & {"grade", "score", "mapped"}
    hub_key = await _bundle(bed, tmp_path, monkeypatch)
    trust = load_trust((tmp_path / "bundle.bin").read_bytes(), hub_key, NOW)
    assert verify_attestation(blob, trust, NOW, "heihe").attestation.grade == ""
    capsys.readouterr()
    assert cli.main(_verify(tmp_path, hub_key, blob)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"VALID: hainan meets {CARD} "), line
    assert "(tier ≥ B in hainan-credit-card@2026.1)" in line
    assert "no grade, no score" in line
    assert "hainan-credit-card@2026.1 grades are illustrative" in line
    assert cli.main([*_verify(tmp_path, hub_key, blob), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["attestation"]
    assert (shown["grade"], shown["score"]) == (None, None)


async def test_a_grade_disclosure_carries_the_derived_tier(bed: Bed) -> None:
    """REQ: N18 N19 H12 — issue 16: Ruth (derived 740, A) grants the annual-fee scenario
    with GRADE disclosure; the attestation's grade is her DERIVED tier A in
    hainan-credit-card@2026.1, no score."""
    token = await bed.grant(RUTH, FEE, GRADE)
    att = _payload(await bed.request(token, RUTH, FEE))
    assert (att.scheme_id, att.grade, att.disclosure, att.HasField("score")) == (
        "hainan-credit-card",
        "A",
        "grade",
        False,
    )


async def test_rollout_switches_the_version_and_the_hub_catalogue_decides_what_verifies(
    bed: Bed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11 N18 N19 — issue 16: `huxin derived rollout hainan-credit-card 2026.2
    --candidate FILE --yes` shows the evaluation figures and puts 2026.2 in force; the
    running node's next request attests in 2026.2 under the SAME consent.  The hub's
    catalogue lists 2026.1 only, so an offline verifier refuses the 2026.2 attestation
    SCENARIO_NOT_TRUSTED.  Rolling out the version in force again is refused
    ALREADY_IN_FORCE, a mismatching version DERIVED_VERSION_MISMATCH."""
    token = await bed.grant(PAT, CARD)
    assert _payload(await bed.request(token, PAT, CARD)).scheme_version == "2026.1"
    text = _shipped_text()
    (tmp_path / "next.toml").write_text(text.replace('version = "2026.1"', 'version = "2026.2"'))
    config = str(bed.hainan.directory / "node.toml")
    base = ["derived", "rollout", "hainan-credit-card"]
    rest = ["--config", config, "--people", "1000", "--today", NOW.date().isoformat()]
    capsys.readouterr()
    assert cli.main([*base, "2026.3", *rest, "--candidate", str(tmp_path / "next.toml")]) == 2
    assert "DERIVED_VERSION_MISMATCH" in capsys.readouterr().err
    assert cli.main([*base, "2026.1", *rest]) == 2
    assert "ALREADY_IN_FORCE" in capsys.readouterr().err
    args = [*base, "2026.2", *rest, "--candidate", str(tmp_path / "next.toml"), "--yes"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    shipped_again = [*base, "2026.1", *rest, "--yes"]  # every other test sees 2026.1
    assert "synthetic (1000 people)" in out and "AUC" in out
    assert "does not list hainan-credit-card@2026.2" in out
    assert "hainan-credit-card@2026.2 is in force" in out

    blob = await bed.request(token, PAT, CARD)
    att = _payload(blob)
    assert (att.scheme_version, att.threshold.scheme_version) == ("2026.2", "2026.2")
    for schemes, refusal in (
        (False, ("SCENARIO_NOT_TRUSTED", "scenario")),  # step 10: no such catalogue entry
        (True, ("SCHEME_NOT_TRUSTED", "scheme_id")),  # step 8: nor a listed scheme or base
    ):
        hub_key = await _bundle(bed, tmp_path, monkeypatch, schemes=schemes)
        trust = load_trust((tmp_path / "bundle.bin").read_bytes(), hub_key, NOW)
        with pytest.raises(VerificationError) as info:
            verify_attestation(blob, trust, NOW, "heihe")
        assert (info.value.code, info.value.field) == refusal
        capsys.readouterr()
        assert cli.main(_verify(tmp_path, hub_key, blob)) == 1
        assert refusal[0] in capsys.readouterr().err
    assert cli.main(shipped_again) == 0  # and back: the shipped version in force again
    assert _payload(await bed.request(token, PAT, CARD)).scheme_version == "2026.1"


async def test_a_derived_consent_ends_when_a_correction_puts_the_tier_below(bed: Bed) -> None:
    """REQ: N18 H14 H16 N14 — issue 16: Sam (derived 560, B) grants the card scenario;
    the court revokes his honour, the correction publishes 500 (derived C), and the
    consent ends there as a withdrawal does (withdrawn_reason SCENARIO_NOT_MET, Sam
    notified); the bank's next request is FAILED_PRECONDITION CONSENT_WITHDRAWN, exactly
    what a withdrawn consent gets."""
    token = await bed.grant(SAM, CARD)
    await bed.request(token, SAM, CARD)
    await bed.source.MarkRecord(
        node_pb2.MarkRecordRequest(record_id="s-1", status="revoked", note="award withdrawn")
    )
    row = await bed.hainan.server.ctx.db.fetchone(
        "SELECT withdrawn_reason FROM consents WHERE consent_id = ?", (token.consent_id,)
    )
    assert row is not None and row[0] == "SCENARIO_NOT_MET"
    err = await expect_refused(bed.request(token, SAM, CARD))
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CONSENT_WITHDRAWN",
        "consent_token",
    )


async def test_a_node_whose_scheme_is_not_the_base_cannot_offer_a_derived_scenario(
    bed: Bed,
) -> None:
    """REQ: N18 H14 — issue 16: the Heihe node holds no explained Hainan result, so a
    Heihe citizen's grant for the Hainan card scenario is FAILED_PRECONDITION
    DERIVED_SCORE_UNAVAILABLE (field purpose), preview and grant alike, and nothing is
    written at Heihe."""
    heihe = bed.heihe
    citizen = bed.bed.citizen_stub(heihe)
    db = heihe.server.ctx.db
    count = "SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM log_entries)"
    held = tuple(await db.fetchone(count))
    for preview in (True, False):
        req = node_pb2.GrantConsentRequest(
            audience="hainan", purpose=CARD, scope=THRESHOLD, preview_only=preview
        )
        err = await expect_refused(
            citizen.GrantConsent(req, metadata=heihe.identity(make_id_number(610)))
        )
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "DERIVED_SCORE_UNAVAILABLE",
            "purpose",
        )
    assert tuple(await db.fetchone(count)) == held


@pytest.mark.parametrize(
    ("extra", "candidate", "code"),
    [
        pytest.param(["--people", "10"], None, "INVALID_ARGUMENT", id="people-below-bound"),
        pytest.param([], b"NEXT", "CONFIRMATION_REQUIRED", id="not-confirmed-without-a-terminal"),
        pytest.param(["--yes"], b"\xff\xfe", "INVALID_FIELD", id="candidate-not-utf8"),
        pytest.param(["--yes"], b"#" * 70_000, "INVALID_FIELD", id="candidate-over-64-kib"),
        pytest.param(["--yes"], b'id = "x"', "INVALID_SCHEME", id="candidate-not-a-derived-score"),
    ],
)
async def test_a_refused_rollout_changes_nothing(
    bed: Bed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    candidate: bytes | None,
    code: str,
) -> None:
    """REQ: H11 N18 — issue 16: `huxin derived rollout` bounds its inputs (--people
    1,000-1,000,000, a candidate of at most 64 KiB of UTF-8 TOML that is a derived score)
    and needs a confirmation; each refusal exits 2 naming its code, and the node's
    rollouts table (the version in force) is unchanged."""
    db = bed.hainan.server.ctx.db
    query = "SELECT count(*), group_concat(state_json) FROM rollouts"
    held = tuple(await db.fetchone(query))
    args = [
        "derived", "rollout", "hainan-credit-card", "2026.2",
        "--config", str(bed.hainan.directory / "node.toml"), "--people", "1000",
        "--today", NOW.date().isoformat(), *extra,
    ]  # fmt: skip
    if candidate == b"NEXT":  # a valid 2026.2
        candidate = _shipped_text().replace('version = "2026.1"', 'version = "2026.2"').encode()
    if candidate is not None:
        (tmp_path / "c.toml").write_bytes(candidate)
        args += ["--candidate", str(tmp_path / "c.toml")]
    capsys.readouterr()
    assert cli.main(args) == 2
    assert f"error: {code}" in capsys.readouterr().err
    assert tuple(await db.fetchone(query)) == held


async def test_rollout_of_an_unknown_derived_score_names_no_file(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H11 — issue 16: the id names a shipped derived score, never a path:
    UNKNOWN_DERIVED_SCORE for '../hainan', exit 2."""
    config = str(bed.hainan.directory / "node.toml")
    capsys.readouterr()
    assert cli.main(["derived", "rollout", "../hainan", "1", "--config", config, "--yes"]) == 2
    assert "error: UNKNOWN_DERIVED_SCORE" in capsys.readouterr().err
