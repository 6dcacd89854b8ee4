"""Monthly run signed as Merkle batches under the province pseudonym (H3, H13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys import (
    ATTESTATION_TYPE,
    KeyPair,
    Sealer,
    province_pseudonym,
    subject_key,
    verify_attestation,
    verify_batch_payloads,
)
from keys.pb.v1 import attestation_pb2
from node.monthly._snapshots import SnapshotError, SnapshotSigner, attestation_for, sign_run
from node.store._outbox import read_after_sync
from tests.support.hub_world import HUB, NOW, PROVINCE, make_region


def test_run_signed_in_batches_one_signature_each(tmp_path: Path) -> None:
    """REQ: H3 — the month's snapshots are signed as Merkle batches, one signature per batch."""
    r = make_region(tmp_path)
    conn = r.conn()
    summary = sign_run(conn, 1, r.signer(batch_leaves=4), NOW)
    assert (summary.batches, summary.batches_signed, summary.leaves) == (3, 3, 9)
    batches = conn.execute(
        "SELECT batch_id, checkpoint FROM snapshot_batches ORDER BY number"
    ).fetchall()
    trust = r.trust()
    for batch_id, cp in batches:
        payloads = [
            bytes(p)
            for (p,) in conn.execute(
                "SELECT payload FROM snapshot_leaves WHERE batch_id = ? ORDER BY idx", (batch_id,)
            )
        ]
        env = attestation_pb2.Envelope.FromString(cp)
        assert len(env.signatures) == 1
        checkpoint = verify_batch_payloads(payloads, cp, trust, NOW)
        assert checkpoint.origin == "heihe" and checkpoint.tree_size == len(payloads)
    events = read_after_sync(conn, 0, 10)
    assert [e.kind for e in events] == ["snapshot_batch"] * 3
    assert [e.event_id for e in events] == [b for b, _ in batches]
    conn.close()


def test_leaves_use_province_pseudonym_and_verify_alone(tmp_path: Path) -> None:
    """REQ: H13, H17 — leaves carry HMAC(province key, ID) only; a per-person attestation
    with its inclusion proof verifies offline on its own."""
    r = make_region(tmp_path)
    conn = r.conn()
    sign_run(conn, 1, r.signer(), NOW)
    idn = r.ids[5]
    blob = attestation_for(conn, subject_key(r.secret, idn), "2026-10")
    assert blob is not None
    verified = verify_attestation(blob, r.trust(), NOW + 60, audience=HUB)
    att = verified.attestation
    assert verified.batched
    assert att.subject_binding == province_pseudonym(PROVINCE, idn)
    assert (att.grade, att.score, att.period, att.consent_id) == ("A", 605, "2026-10", "")
    assert attestation_for(conn, subject_key(r.secret, r.ids[3]), "2026-10") is None  # ineligible
    dump = b"".join(
        bytes(str(row), "utf-8")
        for t in ("snapshot_leaves", "snapshot_batches", "outbox")
        for row in conn.execute(f"SELECT * FROM {t}")
    )
    for i in r.ids:
        assert i.encode() not in dump
    conn.close()


def test_signing_resumes_and_is_idempotent(tmp_path: Path) -> None:
    r = make_region(tmp_path)
    conn = r.conn()
    first = sign_run(conn, 1, r.signer(), NOW)
    again = sign_run(conn, 1, r.signer(), NOW + 5)
    assert again.batches_signed == 0 and again.batches == first.batches
    (n,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert n == first.batches
    conn.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [("unfinished", "RUN_NOT_FINISHED"), ("unknown-run", "RUN_NOT_FOUND")],
    ids=["unfinished", "unknown-run"],
)
def test_refused_runs(tmp_path: Path, case: str, code: str) -> None:
    r = make_region(tmp_path, finished=case != "unfinished")
    conn = r.conn()
    with pytest.raises(SnapshotError) as err:
        sign_run(conn, 1 if case == "unfinished" else 99, r.signer(), NOW)
    assert err.value.code == code
    (n,) = conn.execute("SELECT count(*) FROM snapshot_batches").fetchone()
    assert n == 0
    conn.close()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"province_key": b""}, "PROVINCE_KEY_MISSING"),
        ({"hub_id": ""}, "HUB_NOT_CONFIGURED"),
        ({"batch_leaves": 0}, "INVALID_BATCH_SIZE"),
    ],
    ids=["no-province-key", "no-hub", "zero-batch"],
)
def test_signer_config_refused(tmp_path: Path, kwargs: dict[str, object], code: str) -> None:
    base: dict[str, object] = {
        "region": "heihe",
        "hub_id": HUB,
        "signing": KeyPair.generate(),
        "sealer": Sealer({"s": b"k" * 32}, "s"),
        "province_key": PROVINCE,
    }
    with pytest.raises(SnapshotError) as err:
        SnapshotSigner(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.code == code


def test_wrong_seal_key_refused_and_nothing_written(tmp_path: Path) -> None:
    r = make_region(tmp_path)
    conn = r.conn()
    bad = SnapshotSigner("heihe", HUB, r.signing, Sealer({"s1": b"x" * 32}, "s1"), PROVINCE)
    with pytest.raises(SnapshotError) as err:
        sign_run(conn, 1, bad, NOW)
    assert err.value.code == "SEALED_ID_UNREADABLE"
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert ATTESTATION_TYPE  # leaves would have been attestations
    conn.close()
