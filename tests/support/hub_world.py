"""Hub worlds for tests (issue 17: shared by the hub, witness, push, publish and
model-measure tests).

* :func:`make_region` — a region's keys and a SQLite file with one finished monthly
  run (one person of ten is not eligible: no grade, not pushed).
* :func:`make_world` — that region's run signed as batches, and a hub that has
  registered the region (or not); :func:`close_databases` closes what a world opened
  even when a test fails (import it into a test module as an autouse fixture).
* :func:`populate_sealed` — residents registered in a node directory's database, sealed
  with the node's own keys, and a few transparency-log entries for a hub to witness.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from keys import KeyPair, KeySet, Sealer, Trust, subject_key, verify_key_set
from node.core._config import HubConfig, load_config
from node.demo._testbed import make_id_number
from node.federation._push import _item
from node.hub._ingest import Hub
from node.hub._registry import register_region
from node.monthly._snapshots import SnapshotSigner, sign_run
from node.pb.v1 import hub_pb2, node_pb2
from node.store import connect
from node.store._db import Database
from node.store._outbox import read_after_sync

__all__ = [
    "HUB",
    "NOW",
    "PROVINCE",
    "Region",
    "World",
    "close_databases",
    "make_region",
    "make_world",
    "populate_sealed",
]

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


_OPEN: list[Database] = []


@pytest.fixture(autouse=True)
async def close_databases() -> AsyncIterator[None]:
    """A failing test must not leave the database's threads running (the run would hang)."""
    yield
    while _OPEN:
        db = _OPEN.pop()
        with contextlib.suppress(Exception):
            await db.close()


@dataclass
class World:
    hub: Hub
    db: Database
    region: Region
    items: list[hub_pb2.PushItem]
    hub_signing: KeyPair
    hub_root: KeyPair


async def make_world(tmp_path: Path, *, register: bool = True, people: int = 10) -> World:
    region = make_region(tmp_path, people=people)
    conn = region.conn()
    sign_run(conn, 1, region.signer(batch_leaves=4), NOW)
    items = [_item(conn, ev) for ev in read_after_sync(conn, 0, 100)]
    conn.close()
    hub_root, hub_signing = KeyPair.generate(), KeyPair.generate()
    hks = KeySet.new(HUB, hub_root.public_key, NOW - 10).add_key(
        hub_signing.public_key, NOW - 10, NOW + 86_400 * 365
    )
    db = await Database.open(tmp_path / "hub.db")
    _OPEN.append(db)
    if register:
        await db.write_unit(
            lambda c: register_region(
                c, region="heihe", root_public_key=region.root.public_key,
                key_set=region.key_set, now=NOW, schemes=("heihe@2024.1",),
            )
        )  # fmt: skip
    hub = Hub(db, HUB, hub_signing, hub_root, hks.sign(hub_root, NOW - 10), HubConfig(),
              CollectorRegistry())  # fmt: skip
    await hub.reload()
    return World(hub, db, region, items, hub_signing, hub_root)


def populate_sealed(region_dir: Path, ids: list[str]) -> None:
    """Registered residents (no records: base score) sealed with the node's own keys."""
    secret = bytes.fromhex((region_dir / "keys/storage.secret").read_text().strip())
    sealer = Sealer({"seal-1": bytes.fromhex((region_dir / "keys/seal.key").read_text().strip())},
                    "seal-1")  # fmt: skip
    conn = connect(load_config(region_dir / "node.toml").storage)  # either backend (issue 18)
    conn.execute("BEGIN")
    for idn in ids:
        k = subject_key(secret, idn)
        conn.execute(
            "INSERT INTO subjects (subject_key, birth_date, id_sealed, registered_at)"
            " VALUES (?, '1985-03-12', ?, '2020-01-01')",
            (k, sealer.seal(idn.encode("ascii"), k)),
        )
        conn.execute(
            "INSERT INTO residences (subject_key, kind, since) VALUES (?, 'hukou', '2000-01-01')",
            (k,),
        )
    for i in range(3):  # a few transparency-log entries for the hub to witness
        conn.execute(
            "INSERT INTO log_entries (idx, subject_key, kind, leaf, created_at)"
            " VALUES (?, NULL, 'consent_granted', ?, 0)",
            (i, node_pb2.LogEntry(kind="consent_granted", timestamp=i).SerializeToString()),
        )
    conn.execute("COMMIT")
    conn.close()
