"""Deregistration reaches the provincial hub: a real region node (mTLS, SQLite) signs a
monthly snapshot, pushes its outbox to a hub (the hub's ingest, in process), then the
citizen deregisters and the next push makes the hub delete what it held (H2)."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from keys import KeyPair, KeySet, province_pseudonym
from node.cli._init import init_region
from node.core._clock import ManualClock
from node.core._config import HubConfig
from node.demo._testbed import Testbed, honour_record, make_id_number, resident
from node.federation._push import _item
from node.hub._ingest import Hub
from node.hub._registry import register_region
from node.monthly._batch import run_month
from node.monthly._snapshots import SnapshotSigner, find_run, sign_run
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.store import connect
from node.store._db import Database
from node.store._outbox import read_after_sync

pytestmark = pytest.mark.asyncio(loop_scope="function")

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
HUB = "heilongjiang"
PEOPLE = [make_id_number(400 + i) for i in range(5)]


async def _push(hub: Hub, db: Path, after: int) -> int:
    """Push every outbox event after ``after`` to the hub; returns the last seq."""
    conn = connect(db)
    try:
        events = read_after_sync(conn, after, 100)
        items = [_item(conn, ev) for ev in events]
    finally:
        conn.close()
    for item in items:
        await hub.ingest("heihe", item, int(NOW.timestamp()) + item.seq)
    return events[-1].seq if events else after


async def _hub_leaves(db: Database, pseudonym: bytes) -> int:
    row = await db.fetchone("SELECT count(*) FROM hub_leaves WHERE pseudonym = ?", (pseudonym,))
    return int(row[0])


async def test_deregistration_is_pushed_and_the_hub_deletes_its_copy(
    tmp_path: Path, storage_url: str
) -> None:
    """REQ: H2 H13 — after deregistration neither the region node nor the hub holds the
    person's snapshot; signed batches still verify with the deleted leaf's hash.  The
    hub's database on both backends (issue 18: on PostgreSQL the leaves' pseudonyms
    are COPYed into hub_leaf_keys and found by index)."""
    province_key = os.urandom(32)
    (tmp_path / "province.key").write_text(province_key.hex())
    bed = Testbed(tmp_path, now=NOW)
    assert bed.ca is not None
    init_region(tmp_path / "heihe", "heihe", "heihe", bed.ca, NOW, sources=("heihe-court",))
    with (tmp_path / "heihe" / "node.toml").open("a", encoding="utf-8") as f:
        f.write('\n[hub]\nprovince_key = "../province.key"\n')
    node = await bed.start_node("heihe", "heihe", clock=ManualClock(NOW))
    hub_db: Database | None = None
    try:
        ctx = node.server.ctx
        source = node_pb2_grpc.SourceServiceStub(bed.peer_channel(node, bed.cert("heihe-court")))
        await source.SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id="seed",
                records=[honour_record(f"h-{i}", p, "2026-09-01") for i, p in enumerate(PEOPLE)],
                subjects=[resident(p) for p in PEOPLE],
            )
        )
        # The monthly run and its signed Merkle batches (hub helper's code), as `huxin serve` does.
        db = ctx.config.database
        run = run_month(db, ctx.scheme, "2026-11", workers=1)  # registered on its last day
        assert run.eligible == len(PEOPLE)
        conn = connect(db)
        signer = SnapshotSigner(
            "heihe", HUB, ctx.secrets.signing, ctx.secrets.sealer, province_key, batch_leaves=2
        )
        signed = sign_run(conn, find_run(conn, "2026-11", "heihe"), signer, int(NOW.timestamp()))
        assert signed.leaves == len(PEOPLE)
        conn.close()

        # The hub: registry entry for heihe, then ingest of everything pushed so far.
        hub_root, hub_signing = KeyPair.generate(), KeyPair.generate()
        t = int(NOW.timestamp())
        hks = KeySet.new(HUB, hub_root.public_key, t - 10).add_key(
            hub_signing.public_key, t - 10, t + 86_400 * 365
        )
        hub_db = await Database.open(storage_url)
        await hub_db.write_unit(
            lambda c: register_region(
                c,
                region="heihe",
                root_public_key=ctx.secrets.root.public_key,
                key_set=ctx.secrets.key_set_envelope.to_bytes(),
                now=t,
                schemes=(ctx.scheme.key,),
            )
        )
        hub = Hub(
            hub_db, HUB, hub_signing, hub_root, hks.sign(hub_root, t - 10), HubConfig(),
            CollectorRegistry(),
        )  # fmt: skip
        await hub.reload()
        cursor = await _push(hub, db, 0)
        carol = PEOPLE[2]
        ps = province_pseudonym(province_key, carol)
        assert await _hub_leaves(hub_db, ps) == 1
        assert await _hub_leaves(hub_db, province_pseudonym(province_key, PEOPLE[0])) == 1
        citizen = bed.citizen_stub(node)
        resp = await citizen.Deregister(
            node_pb2.DeregisterRequest(confirm=True), metadata=node.identity(carol)
        )
        assert resp.hub_notified
        # Region side: the snapshot leaf lost its payload and subject; the hash stays.
        key = ctx.records.key_of(carol)
        raw = sqlite3.connect(db)
        assert raw.execute(
            "SELECT count(*) FROM snapshots WHERE subject_key = ?", (key,)
        ).fetchone() == (0,)
        assert raw.execute(
            "SELECT count(*) FROM snapshot_leaves WHERE subject_key IS NULL AND payload IS NULL"
        ).fetchone() == (1,)
        raw.close()

        # The next push carries the deregistration; the hub deletes its copy.
        assert await _push(hub, db, cursor) == cursor + 1
        assert await _hub_leaves(hub_db, ps) == 0
        assert await _hub_leaves(hub_db, province_pseudonym(province_key, PEOPLE[0])) == 1
        rows = await hub_db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'hub_%'"
            if storage_url.startswith("sqlite")
            else "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'hub_%'"
            " AND table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        for (table,) in rows:
            for row in await hub_db.fetchall(f'SELECT * FROM "{table}"'):
                for v in row:
                    if isinstance(v, bytes) and table not in ("hub_events",):
                        assert ps not in v, table
    finally:
        if hub_db is not None:
            await hub_db.close()
        await bed.close()
