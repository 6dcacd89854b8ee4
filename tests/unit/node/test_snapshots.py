"""Monthly run signed as Merkle batches under the province pseudonym (H3, H13)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from keys import (
    ATTESTATION_TYPE,
    KeyPair,
    KeySet,
    Sealer,
    Trust,
    province_pseudonym,
    subject_key,
    verify_attestation,
    verify_batch_payloads,
    verify_key_set,
)
from node.demo._testbed import make_id_number
from node.monthly._snapshots import SnapshotError, SnapshotSigner, attestation_for, sign_run
from node.pb.v1 import attestation_pb2
from node.store import connect
from node.store._outbox import read_after_sync

NOW = 1_790_000_000
HUB = "heilongjiang"
PROVINCE = b"P" * 32


@dataclass
class Region:
    """A region's keys and a database with one finished monthly run."""

    name: str
    root: KeyPair
    signing: KeyPair
    key_set: bytes
    sealer: Sealer
    secret: bytes
    path: Path
    ids: list[str]

    def signer(self, batch_leaves: int = 4) -> SnapshotSigner:
        return SnapshotSigner(
            self.name, HUB, self.signing, self.sealer, PROVINCE, batch_leaves=batch_leaves
        )

    def trust(self) -> Trust:
        ks = verify_key_set(self.key_set, self.root.public_key, self.name)
        return Trust.from_key_sets([ks], issuer=HUB)  # statutory leaves go to the hub

    def conn(self) -> sqlite3.Connection:
        return connect(self.path)


def make_region(
    tmp: Path, name: str = "heihe", people: int = 10, *, finished: bool = True
) -> Region:
    root, signing = KeyPair.generate(), KeyPair.generate()
    ks = KeySet.new(name, root.public_key, NOW - 86_400).add_key(
        signing.public_key, NOW - 86_400, NOW + 365 * 86_400
    )
    sealer = Sealer({"s1": bytes(range(32))}, "s1")
    secret = b"r" * 32
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.db"
    conn = connect(path)
    ids = [make_id_number(500 + i) for i in range(people)]
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO snapshot_runs (run_id, period, scheme_id, scheme_version, as_of, chunks,"
        " started_at, finished_at) VALUES (1, '2026-10', 'heihe', '2024.1', '2026-10-31', 1,"
        " 'x', ?)",
        ("y" if finished else None,),
    )
    for i, idn in enumerate(ids):
        k = subject_key(secret, idn)
        conn.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
            " VALUES (?, '1985-03-12', ?, '2026-01-01')",
            (k, sealer.seal(idn.encode("ascii"), k)),
        )
        eligible = i != 3  # one person is not eligible: no grade, not pushed
        conn.execute(
            "INSERT INTO snapshots (run_id, subject_key, eligible, score, grade, reason)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (k, int(eligible), 600 + i if eligible else None, "A" if eligible else None,
             None if eligible else "AGE"),
        )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()
    return Region(name, root, signing, ks.sign(root, NOW - 86_400).to_bytes(), sealer, secret,
                  path, ids)  # fmt: skip


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
