"""`huxin backup` against a real serving node: a backup taken under load restores to a
node that serves exactly the state of the backup, and restore refuses a live node."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc import aio

from keys import CHECKPOINT_TYPE, decode_private_key, verify_envelope, verify_inclusion
from keys.pb.v1 import attestation_pb2
from node.cli._client import register_certificate
from node.cli._init import init_region, load_or_create_ca
from node.core._config import load_config
from node.demo._testbed import (
    ServeProcess,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import citizen_channel, identity_metadata, peer_channel
from node.rpc._identity import DevIdentityProvider
from tests.support.processes import huxin

ALICE = make_id_number(301)
BOB = make_id_number(302)  # deregisters after the backup


def test_backup_under_load_then_restore(tmp_path: Path) -> None:
    """REQ: C2 H16 N23 — operators can back up a serving node and restore it: consents,
    uses and the transparency log come back as they were at the backup (inclusion proofs
    valid), the replaced database is kept, and no ID number is in the backup."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    init_region(
        tmp_path / "heihe", "heihe", "heihe", ca, now, peers=("hainan",), sources=("court",)
    )
    config = tmp_path / "heihe" / "node.toml"
    src, hn = ca.issue("court", now), ca.issue("hainan", now)
    register_certificate(load_config(config), src.cert_pem, now)  # `huxin client register`
    idp = DevIdentityProvider(
        decode_private_key((tmp_path / "heihe/keys/dev-idp.key").read_bytes())
    )

    def md() -> tuple[tuple[str, bytes], ...]:
        return identity_metadata(idp.assertion(ALICE, "heihe", int(time.time())))

    backup = tmp_path / "backups" / "heihe-1.db"
    backup.parent.mkdir()

    tokens: list[node_pb2.ConsentToken] = []

    async def before(proc: ServeProcess) -> tuple[str, int, list[str]]:
        peer_addr = f"127.0.0.1:{proc.ports['peer']}"
        chans: list[aio.Channel] = [
            peer_channel(peer_addr, ca.cert_pem, src.cert_pem, src.key_pem),
            peer_channel(peer_addr, ca.cert_pem, hn.cert_pem, hn.key_pem),
            citizen_channel(f"127.0.0.1:{proc.ports['citizen']}", ca.cert_pem),
        ]
        source = node_pb2_grpc.SourceServiceStub(chans[0])
        peer = node_pb2_grpc.PeerServiceStub(chans[1])
        citizen = node_pb2_grpc.CitizenServiceStub(chans[2])
        await source.SubmitRecords(node_pb2.SubmitRecordsRequest(
            batch_id="b1", records=[honour_record("r1", ALICE), honour_record("r2", BOB)],
            subjects=[resident(ALICE), resident(BOB)]))  # fmt: skip
        token = await citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan",
                purpose="heihe/credit-loans",
                scope=node_pb2.CONSENT_SCOPE_GRADE,
                max_uses=50,
            ),
            metadata=md(),
        )
        tokens.append(token)
        await peer.RequestAttestation(attestation_request(token, ALICE, "heihe/credit-loans"))
        log = await citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=md())

        # the backup runs while requests keep arriving
        async def load() -> int:
            n = 0
            for _ in range(20):
                await peer.RequestAttestation(
                    attestation_request(token, ALICE, "heihe/credit-loans")
                )
                n += 1
            return n

        traffic = asyncio.ensure_future(load())
        made = await asyncio.to_thread(
            huxin,
            "backup",
            "create",
            "--config",
            str(config),
            "--out",
            str(backup),
            "--json",
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        await traffic
        bob = identity_metadata(idp.assertion(BOB, "heihe", int(time.time())))
        await citizen.Deregister(node_pb2.DeregisterRequest(confirm=True), metadata=bob)
        refused = await asyncio.to_thread(
            huxin,
            "backup",
            "restore",
            "--config",
            str(config),
            "--from",
            str(backup),
            timeout=120,
        )
        for c in chans:
            await c.close(None)
        assert refused.returncode == 2
        assert refused.stderr.startswith("error: NODE_RUNNING: ")
        return token.consent_id, len(log.entries), [made.stdout]

    proc = ServeProcess(config)
    try:
        consent_id, entries_before, outputs = asyncio.run(before(proc))
    finally:
        proc.stop(signal.SIGKILL)  # its last commits are only in the WAL

    doc = json.loads(outputs[0])
    uses_at_backup = doc["counts"]["status_entries"]
    assert 1 <= uses_at_backup <= 21
    assert doc["counts"]["log_entries"] >= entries_before
    checked = huxin("backup", "verify", str(backup), "--json", timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["sha256"] == doc["sha256"]
    assert ALICE.encode() not in backup.read_bytes()
    assert ALICE not in (outputs[0] + checked.stdout)

    restored = huxin(
        "backup", "restore", "--config", str(config), "--from", str(backup), "--json", timeout=120
    )
    assert restored.returncode == 0, restored.stderr
    result = json.loads(restored.stdout)
    aside = Path(result["moved_aside"])
    with sqlite3.connect(aside) as old:  # the replaced database: all 21 uses, WAL included
        assert old.execute("SELECT uses FROM consents").fetchone()[0] == 21
        issued = old.execute("SELECT max(idx) + 1 FROM status_entries").fetchone()[0]
    assert result["consents_withdrawn"] == 1
    assert result["deregistrations_carried"] == 1  # BOB stays erased
    with sqlite3.connect(config.parent / "node.db") as new:
        assert new.execute("SELECT count(*) FROM records").fetchone()[0] == 1  # ALICE's only
        assert new.execute("SELECT count(*) FROM subjects").fetchone()[0] == 1
        assert new.execute("SELECT count(*) FROM deregistrations").fetchone()[0] == 1
    assert result["status_revoked"][1] == issued  # every index the old database handed out

    async def after(proc: ServeProcess) -> None:
        peer_addr = f"127.0.0.1:{proc.ports['peer']}"
        chans: list[aio.Channel] = [
            citizen_channel(f"127.0.0.1:{proc.ports['citizen']}", ca.cert_pem),
            peer_channel(peer_addr, ca.cert_pem, hn.cert_pem, hn.key_pem),
        ]
        citizen = node_pb2_grpc.CitizenServiceStub(chans[0])
        consents = await citizen.ListConsents(node_pb2.ListConsentsRequest(), metadata=md())
        (mine,) = [c for c in consents.consents if c.grant.consent_id == consent_id]
        assert mine.uses == uses_at_backup
        assert mine.state == node_pb2.CONSENT_STATE_WITHDRAWN  # fails closed (ADR 0318)
        with pytest.raises(aio.AioRpcError) as refused:
            await node_pb2_grpc.PeerServiceStub(chans[1]).RequestAttestation(
                attestation_request(tokens[0], ALICE, "heihe/credit-loans")
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "CONSENT_WITHDRAWN" in (refused.value.details() or "")
        log = await citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=md())
        kinds = [node_pb2.LogEntry.FromString(e.entry) for e in log.entries]
        assert [(k.kind, k.reason) for k in kinds[-2:]] == [
            ("consent_withdrawn", "BACKUP_RESTORED"),  # the restore
            ("request_refused", "CONSENT_WITHDRAWN"),  # the request just refused
        ]
        signing = decode_private_key((config.parent / "keys/signing.key").read_bytes())  # type: ignore[operator]
        cp = attestation_pb2.Checkpoint.FromString(  # the signature first
            verify_envelope(log.checkpoint, {signing.key_id: signing.public_key}, CHECKPOINT_TYPE)
        )
        for e in log.entries:
            assert verify_inclusion(
                e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
            )
        for c in chans:
            await c.close(None)

    proc = ServeProcess(config)
    try:
        asyncio.run(after(proc))
    finally:
        proc.stop()


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    """Bad input: exit 2 (1 for a backup that fails its check), ``error: CODE: ...``."""
    missing = huxin(
        "backup", "create", "--config", str(tmp_path / "no.toml"), "--out", "x.db", timeout=120
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: INVALID_CONFIG: config: ")
    (tmp_path / "b.db").write_bytes(b"not a database")
    (tmp_path / "b.db.manifest.json").write_text("{}")
    bad = huxin("backup", "verify", str(tmp_path / "b.db"), timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: BACKUP_MANIFEST_INVALID: ")
    assert "Traceback" not in bad.stderr + missing.stderr
