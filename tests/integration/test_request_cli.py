"""``huxin request``: a bank asks its node for an attestation (issue 19, H5, H12, C1).

A real Heihe node (loopback, mutual TLS, SQLite) with a bank client ``heihe.bank``
registered; a citizen grants the bank a consent over the citizen port; the bank
runs the real ``huxin request`` command in a child process with each form of the
citizen's handover, then ``huxin verify`` on the file it wrote.  Bad inputs are
refused before anything is sent, with the reason and the flag named; refusals of
the node keep its reason.  One node per module, tests in order on its loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.json_format import MessageToDict

from keys import KeyPair, NodeCertificate, encode_private_key
from node.demo._testbed import RunningNode, Testbed, honour_record, make_id_number, resident
from node.http._codec import encode
from node.pb.v1 import node_pb2, node_pb2_grpc
from tests.integration._approvals import approval_args
from tests.support.http import CITIZEN, HttpRegion, http_region, seed
from tests.support.processes import huxin, huxin_here

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = make_id_number(301)
BOB = make_id_number(302)
BANK = "heihe.bank"
SCENARIO = "heihe/credit-loans"


@dataclass
class Bank:
    """What the bank holds: its certificate files, the CA, the applicant's ID file."""

    bed: Testbed
    heihe: RunningNode
    dir: Path
    citizen: node_pb2_grpc.CitizenServiceStub
    peer: node_pb2_grpc.PeerServiceStub

    def args(self, consent: Path, out: Path, *extra: str, who: str = "alice") -> list[str]:
        return [
            "request", "--node", self.heihe.peer_target, "--ca", str(self.dir / "ca.pem"),
            "--cert", str(self.dir / "bank.pem"), "--key", str(self.dir / "bank.key"),
            "--consent", str(consent), "--subject-id-file", str(self.dir / who),
            "--out", str(out), *extra,
        ]  # fmt: skip

    async def grant(self, who: str, **kw: object) -> node_pb2.ConsentToken:
        request = node_pb2.GrantConsentRequest(audience=BANK, purpose=SCENARIO, **kw)  # type: ignore[arg-type]
        token: node_pb2.ConsentToken = await self.citizen.GrantConsent(
            request, metadata=self.heihe.identity(who)
        )
        return token


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bank(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bank]:
    bed = Testbed(tmp_path_factory.mktemp("request"))
    heihe = await bed.start_node("heihe", "heihe", sources=("heihe-court",))
    court = node_pb2_grpc.SourceServiceStub(bed.peer_channel(heihe, bed.cert("heihe-court")))
    await court.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="seed-1",
            records=[honour_record(f"seed-{i}", p) for i, p in enumerate((ALICE, BOB))],
            subjects=[resident(ALICE), resident(BOB)],
        )
    )
    issued: NodeCertificate = bed.cert(BANK)
    d = tmp_path_factory.mktemp("bank")
    assert bed.ca is not None
    (d / "ca.pem").write_bytes(bed.ca.cert_pem)
    (d / "bank.pem").write_bytes(issued.cert_pem)
    (d / "bank.key").write_bytes(issued.key_pem)
    for name, idn in (("alice", ALICE), ("bob", BOB)):  # read from the card, kept owner-only
        (d / name).write_text(idn + "\n")
        (d / name).chmod(0o600)
    peer = node_pb2_grpc.PeerServiceStub(bed.peer_channel(heihe, issued))
    try:
        yield Bank(bed, heihe, d, bed.citizen_stub(heihe), peer)
    finally:
        await bed.close()


def _handover(token: node_pb2.ConsentToken, form: str) -> bytes:
    """The citizen's handover as the bank may receive it (node/cli/_request.py)."""
    plain = node_pb2.ConsentToken(
        token=token.token, consent_id=token.consent_id, binding_salt=token.binding_salt
    )
    if form == "json":  # the citizen API's answer (POST /api/v1/me/consents), preview included
        return json.dumps(encode(token)).encode()
    if form == "protobuf-json":
        return json.dumps(MessageToDict(token, preserving_proto_field_name=True)).encode()
    if form == "handover":  # the copyable text of the citizen's page (grant.js)
        return b"HUXIN-CONSENT-1:" + base64.urlsafe_b64encode(plain.SerializeToString()).rstrip(
            b"="
        )
    if form == "base64url":
        return base64.urlsafe_b64encode(plain.SerializeToString()).rstrip(b"=") + b"\n"
    if form == "base64":
        return base64.b64encode(plain.SerializeToString())
    return plain.SerializeToString()


async def _trust_bundle(bank: Bank, tmp: Path) -> tuple[Path, str, Path]:
    """A hub-signed trust bundle over Heihe's key set and Heihe's status list now."""
    hub = KeyPair.generate()
    (tmp / "hub.key").write_bytes(encode_private_key(hub))
    now = bank.heihe.clock.now().isoformat()
    code, _out, err = await asyncio.to_thread(
        huxin_here,
        "trust", "build", "--hub-root", str(tmp / "hub.key"), "--issuer", "heilongjiang",
        "--version", "1", "--now", now, "--region-dir", str(bank.heihe.directory / "keys"),
        "--out", str(tmp / "bundle.bin"),
        *approval_args(tmp, tmp / "hub.key", "heilongjiang", now),
    )  # fmt: skip
    assert code == 0, err
    status = await bank.peer.GetStatusList(node_pb2.GetStatusListRequest())
    (tmp / "status.bin").write_bytes(status.SerializeToString())
    return tmp / "bundle.bin", hub.public_key.hex(), tmp / "status.bin"


@pytest.mark.parametrize(
    "form", ["handover", "json", "protobuf-json", "base64url", "base64", "bytes"]
)
async def test_request_writes_what_verify_accepts(bank: Bank, tmp_path: Path, form: str) -> None:
    """Issue 19, H5, H12, C1: each form of the handover gives an attestation that
    ``huxin verify`` accepts with the nonce and salt the command printed."""
    token = await bank.grant(ALICE)
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(token, form))
    out = tmp_path / "attestation.bin"
    done = await asyncio.to_thread(huxin, *bank.args(consent, out, "--json"))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["channel"] == "grpc"
    assert printed["consent_id"] == token.consent_id
    assert printed["purpose"] == SCENARIO
    assert printed["salt"] == token.binding_salt.hex()
    assert printed["nonce"].startswith("hex:") and len(printed["nonce"]) == 4 + 32
    assert ALICE not in done.stdout + done.stderr
    bundle, hub_key, status = await _trust_bundle(bank, tmp_path)
    verified = await asyncio.to_thread(
        huxin,
        "verify", str(out), "--trust", str(bundle), "--hub-key", hub_key, "--audience", BANK,
        "--nonce", printed["nonce"], "--salt", printed["salt"],
        "--subject-id-file", str(bank.dir / "alice"), "--status", str(status),
        "--now", bank.heihe.clock.now().isoformat(), "--json",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert doc["valid"] is True and doc["nonce_checked"] is True
    assert doc["attestation"]["audience"] == BANK
    assert doc["attestation"]["scenario"] == SCENARIO
    assert doc["attestation"]["consent_id"] == token.consent_id


async def test_given_nonce_is_the_one_signed(bank: Bank, tmp_path: Path) -> None:
    """The bank's own nonce (text) is what the attestation carries (replay check, H5)."""
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(await bank.grant(ALICE), "bytes"))
    out = tmp_path / "a.bin"
    done = await asyncio.to_thread(
        huxin, *bank.args(consent, out, "--nonce", "bank-nonce-0001-xyz", "--json")
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nonce"] == "hex:" + b"bank-nonce-0001-xyz".hex()


@dataclass(frozen=True)
class Bad:
    """A bad input: how to write the handover, extra flags, the reason and flag named."""

    consent: bytes | None  # None: a real handover (JSON)
    extra: tuple[str, ...]
    reason: str
    names: str


BAD_INPUTS = {
    "consent-garbage-text": Bad(b"not a consent token!", (), "INVALID_CONSENT", "--consent"),
    "consent-json-wrong-shape": Bad(b'{"token": 5}', (), "INVALID_CONSENT", "--consent"),
    "consent-without-token": Bad(
        base64.b64encode(node_pb2.ConsentToken(binding_salt=b"s" * 32).SerializeToString()),
        (),
        "INVALID_CONSENT",
        "--consent",
    ),
    "consent-too-large": Bad(b"A" * (16 * 1024 + 1), (), "INVALID_ARGUMENT", "--consent"),
    "consent-empty": Bad(b"", (), "INVALID_CONSENT", "--consent"),
    "consent-other-version": Bad(b"HUXIN-CONSENT-2:AAAA", (), "INVALID_CONSENT", "--consent"),
    "consent-prefix-only": Bad(b"HUXIN-CONSENT-1:", (), "INVALID_CONSENT", "--consent"),
    "consent-stray-character": Bad(b"HUXIN-CONSENT-1:CgQ!AAAA", (), "INVALID_CONSENT", "--consent"),
    "nonce-too-short": Bad(None, ("--nonce", "short"), "NONCE_INVALID", "--nonce"),
    "nonce-too-long": Bad(None, ("--nonce", "hex:" + "00" * 65), "NONCE_INVALID", "--nonce"),
    "nonce-bad-hex": Bad(None, ("--nonce", "hex:zz"), "NONCE_INVALID", "--nonce"),
    "salt-not-hex": Bad(None, ("--salt", "salty"), "INVALID_ARGUMENT", "--salt"),
    "salt-too-short": Bad(None, ("--salt", "00" * 8), "INVALID_ARGUMENT", "--salt"),
    "purpose-unknown": Bad(None, ("--purpose", "heihe/nope"), "UNKNOWN_SCENARIO", "--purpose"),
    "purpose-with-id-number": Bad(
        None, ("--purpose", f"loan {ALICE}"), "ID_NUMBER_IN_FIELD", "--purpose"
    ),
    "target-scheme-too-long": Bad(
        None, ("--target-scheme", "x" * 65), "INVALID_FIELD", "--target-scheme"
    ),
    "timeout-zero": Bad(None, ("--timeout", "0"), "INVALID_ARGUMENT", "--timeout"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
async def test_bad_inputs_are_refused_here(bank: Bank, tmp_path: Path, case: Bad) -> None:
    """Issue 19: refused before anything is sent (exit 2), the reason and the flag
    named, the ID number never printed; no attestation file is written."""
    consent = tmp_path / "consent"
    if case.consent is None:
        consent.write_bytes(_handover(await bank.grant(ALICE), "json"))
    else:
        consent.write_bytes(case.consent)
    out = tmp_path / "a.bin"
    code, stdout, err = await asyncio.to_thread(huxin_here, *bank.args(consent, out, *case.extra))
    assert code == 2, err
    assert err.startswith(f"error: {case.reason}: {case.names}"), err
    assert ALICE not in stdout + err
    assert not out.exists()


async def test_bad_id_number_is_named_not_echoed(bank: Bank, tmp_path: Path) -> None:
    """A mistyped ID number (check character) is refused naming --subject-id, unprinted."""
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(await bank.grant(ALICE), "json"))
    wrong = ALICE[:17] + ("0" if ALICE[17] != "0" else "1")
    (tmp_path / "wrong").write_text(wrong)
    args = bank.args(consent, tmp_path / "a.bin")
    args[args.index("--subject-id-file") + 1] = str(tmp_path / "wrong")
    code, stdout, err = await asyncio.to_thread(huxin_here, *args)
    assert code == 2
    assert err.startswith("error: INVALID_ID_NUMBER: --subject-id: check character"), err
    assert wrong not in stdout + err


async def test_consent_and_id_number_cannot_both_come_from_stdin(
    bank: Bank, tmp_path: Path
) -> None:
    """One stdin, one reader: refused before reading either (exit 2, --consent named)."""
    args = bank.args(Path("-"), tmp_path / "a.bin")
    args[args.index("--subject-id-file") + 1] = "-"
    code, _out, err = await asyncio.to_thread(huxin_here, *args)
    assert code == 2
    assert err.startswith("error: INVALID_ARGUMENT: --consent: stdin"), err


async def test_withdrawn_consent_is_refused_by_the_node(bank: Bank, tmp_path: Path) -> None:
    """H12: after the citizen withdraws, the node refuses (exit 1) with its reason."""
    token = await bank.grant(BOB)
    await bank.citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
        metadata=bank.heihe.identity(BOB),
    )
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(token, "base64url"))
    out = tmp_path / "a.bin"
    done = await asyncio.to_thread(huxin, *bank.args(consent, out, who="bob"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: CONSENT_WITHDRAWN: the node refused: "), done.stderr
    assert done.stderr.count("CONSENT_WITHDRAWN") == 1, done.stderr
    assert not out.exists()


async def test_another_id_number_does_not_match_the_consent(bank: Bank, tmp_path: Path) -> None:
    """C1: the binding is the bank's HMAC of the ID it holds; a consent of Bob used for
    Alice's ID is refused by the node, which never sees either number."""
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(await bank.grant(BOB), "bytes"))
    done = await asyncio.to_thread(huxin, *bank.args(consent, tmp_path / "a.bin", who="alice"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        "error: SUBJECT_BINDING_MISMATCH: the node refused: --subject-id/--salt: the subject"
    ), done.stderr
    assert ALICE not in done.stderr and BOB not in done.stderr


async def test_unregistered_certificate_is_refused(bank: Bank, tmp_path: Path) -> None:
    """docs/adr/0415: a certificate of the CA that the node never registered."""
    rogue = bank.bed.cert(BANK, register=False)
    (tmp_path / "r.pem").write_bytes(rogue.cert_pem)
    (tmp_path / "r.key").write_bytes(rogue.key_pem)
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(await bank.grant(ALICE), "json"))
    args = bank.args(consent, tmp_path / "a.bin")
    args[args.index("--cert") + 1] = str(tmp_path / "r.pem")
    args[args.index("--key") + 1] = str(tmp_path / "r.key")
    done = await asyncio.to_thread(huxin, *args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: CLIENT_UNKNOWN: "), done.stderr


async def test_unreachable_node(bank: Bank, tmp_path: Path) -> None:
    """No node listening: exit 1, NODE_UNAVAILABLE naming --node."""
    consent = tmp_path / "consent"
    consent.write_bytes(_handover(await bank.grant(ALICE), "json"))
    args = bank.args(consent, tmp_path / "a.bin", "--timeout", "5")
    args[args.index("--node") + 1] = "127.0.0.1:1"
    done = await asyncio.to_thread(huxin, *args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: NODE_UNAVAILABLE: --node 127.0.0.1:1"), done.stderr


# ------------------------------------------------ over the HTTP/JSON listener


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpRegion]:
    """A real ``huxin serve`` with its HTTPS listeners (tests/support/http.py)."""
    with http_region(tmp_path_factory.mktemp("served")) as region:
        yield region


def _http_args(r: HttpRegion, consent: Path, out: Path, bank: str = "heihe.bank") -> list[str]:
    r.tls(bank)  # writes the client pair under r.root/clients
    folder = r.root / "clients"
    (r.root / "citizen").write_text(CITIZEN + "\n")
    return [
        "request", "--node", r.mtls_url, "--ca", str(r.ca_file),
        "--cert", str(folder / f"{bank}.pem"), "--key", str(folder / f"{bank}.key"),
        "--consent", str(consent), "--subject-id-file", str(r.root / "citizen"),
        "--out", str(out), "--json",
    ]  # fmt: skip


async def _api(
    r: HttpRegion, method: str, path: str, body: dict[str, object] | None = None
) -> dict[str, Any]:
    async with (
        r.client() as s,
        s.request(method, r.citizen_url + path, headers=r.bearer(), json=body) as resp,
    ):
        doc: dict[str, Any] = await resp.json()
        assert resp.status == 200, doc
        return doc


async def test_over_http_the_answer_verifies_and_a_withdrawal_is_refused(
    served: HttpRegion, tmp_path: Path
) -> None:
    """Issue 19 (the bank requests over HTTP/JSON; H5, H12, C1): the citizen API's own
    answer handed over as is; ``huxin request --node https://…`` writes what
    ``huxin verify`` accepts against the node's published trust material; after the
    withdrawal the next request is refused with the gRPC reason (exit 1)."""
    await seed(served)
    token = await _api(
        served, "POST", "/api/v1/me/consents",
        {"audience": "heihe.bank", "purpose": SCENARIO, "scope": "grade"},
    )  # fmt: skip
    consent = tmp_path / "consent.json"
    consent.write_text(json.dumps(token))
    out = tmp_path / "a.bin"
    done = await asyncio.to_thread(huxin, *_http_args(served, consent, out))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["channel"] == "http" and printed["consent_id"] == token["consent_id"]
    # the verifier's material: the region's key set under a hub key, the status list now
    hub = KeyPair.generate()
    (tmp_path / "hub.key").write_bytes(encode_private_key(hub))
    now = datetime.now(UTC).isoformat()
    code, _o, err = await asyncio.to_thread(
        huxin_here,
        "trust", "build", "--hub-root", str(tmp_path / "hub.key"), "--issuer", "heilongjiang",
        "--version", "1", "--now", now, "--region-dir", str(served.directory / "keys"),
        "--out", str(tmp_path / "bundle.bin"),
        *approval_args(tmp_path, tmp_path / "hub.key", "heilongjiang", now),
    )  # fmt: skip
    assert code == 0, err
    async with served.client() as s, s.get(served.citizen_url + "/trust/status-list.bin") as r:
        (tmp_path / "status.bin").write_bytes(await r.read())
    verified = await asyncio.to_thread(
        huxin,
        "verify", str(out), "--trust", str(tmp_path / "bundle.bin"), "--hub-key",
        hub.public_key.hex(), "--audience", "heihe.bank", "--nonce", printed["nonce"],
        "--salt", printed["salt"], "--subject-id-file", str(served.root / "citizen"),
        "--status", str(tmp_path / "status.bin"), "--json",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["attestation"]["consent_id"] == token["consent_id"]

    await _api(served, "POST", "/api/v1/me/consents/withdraw", {"consent_id": token["consent_id"]})
    again = await asyncio.to_thread(huxin, *_http_args(served, consent, tmp_path / "b.bin"))
    assert again.returncode == 1, again.stderr
    assert again.stderr.startswith("error: CONSENT_WITHDRAWN: the node refused: "), again.stderr
    assert not (tmp_path / "b.bin").exists()


async def test_over_http_an_unregistered_bank_is_refused(
    served: HttpRegion, tmp_path: Path
) -> None:
    """docs/adr/0415 over HTTP: a certificate of the CA the node never registered."""
    await seed(served)
    token = await _api(
        served, "POST", "/api/v1/me/consents",
        {"audience": "heihe.bank", "purpose": SCENARIO, "scope": "grade"},
    )  # fmt: skip
    consent = tmp_path / "consent.json"
    consent.write_text(json.dumps(token))
    done = await asyncio.to_thread(
        huxin, *_http_args(served, consent, tmp_path / "a.bin", bank="heihe.stranger")
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: CLIENT_UNKNOWN: the node refused"), done.stderr
