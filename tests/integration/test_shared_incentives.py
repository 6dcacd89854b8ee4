"""Shared incentives: peers' scenario catalogues taken by the peer sync (issue 16 §1; N20).

A federation laid out by ``init_federation`` (one CA, a hub-signed trust list
listing Heihe and Hainan with their key sets and endpoints).  Heihe serves
in-process on its listed port with real mutual TLS and SQLite; Hainan's node is
built (its own configuration, certificate, trust state and a fresh SQLite database
per test) without serving, and its :class:`node.federation._sync.PeerSync` syncs Heihe over
mutual TLS with :class:`node.federation._sync.GrpcPeerClient`, as ``huxin serve`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from keys import Envelope
from node.catalogue import MAX_SIGNED_CATALOGUE_BYTES, held_catalogue
from node.cli._main import main
from node.core._config import load_config
from node.core._config_storage import StorageConfig
from node.demo._federation import FederationLayout, init_federation
from node.federation._sync import GrpcPeerClient, PeerClient, PeerSync
from node.rpc._server import NodeServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

HUB, HEIHE, HAINAN = "heilongjiang", "heihe", "hainan"


@dataclasses.dataclass
class World:
    layout: FederationLayout
    heihe: NodeServer


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("shared")
    layout = init_federation(root, [HEIHE, HAINAN], HUB, datetime.now(UTC), push_interval=0.0)
    heihe = await NodeServer.create(load_config(layout.nodes[HEIHE].config))
    await heihe.start()
    try:
        yield World(layout, heihe)
    finally:
        await heihe.stop(1.0)


class Tampering:
    """A real client whose catalogue bytes are changed on the way in."""

    def __init__(self, inner: GrpcPeerClient, change: Callable[[bytes], bytes]) -> None:
        self._inner, self._change = inner, change

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def catalogue(self) -> bytes | None:
        body = await self._inner.catalogue()
        assert body is not None
        return self._change(body)


async def _sync_from_heihe(
    world: World, database: Path, change: Callable[[bytes], bytes] | None = None
) -> tuple[list[str], list[str], Path]:
    """One sync of Heihe by Hainan's node into ``database``: (updated, refused, config)."""
    node = world.layout.nodes[HAINAN]
    config = dataclasses.replace(
        load_config(node.config), database=database, storage=StorageConfig.for_database(database)
    )
    server = await NodeServer.create(config)
    ctx = server.ctx

    def connect(peer: str, target: str) -> PeerClient:
        s = ctx.secrets
        client = GrpcPeerClient(target, s.tls_ca, s.tls_cert, s.tls_key)
        return client if change is None else Tampering(client, change)  # type: ignore[return-value]

    sync = PeerSync(region=HAINAN, trust=ctx.trust, db=ctx.db, connect=connect, clock=ctx.clock)
    try:
        target = ctx.trust.endpoint(HEIHE)
        assert target
        result = await sync.sync_peer(HEIHE, target)
        assert result.ok, result
        return result.updated, result.refused, node.config
    finally:
        await sync.stop()
        await ctx.db.close()


def _catalogue_rows(database: Path) -> list[tuple[str, str]]:
    import sqlite3

    conn = sqlite3.connect(database)
    try:
        rows = conn.execute(
            "SELECT region, version FROM peer_material WHERE item = 'catalogue'"
        ).fetchall()
    finally:
        conn.close()
    return [(str(r), str(v)) for r, v in rows]


async def test_sync_fetches_verifies_and_stores_the_peers_catalogue(
    world: World, tmp_path: Path
) -> None:
    """REQ: N17 N20 C3 — issue 16 §1: Hainan's peer sync fetches Heihe's signed scenario
    catalogue over mutual TLS next to its key set and status list, verifies it under
    Heihe's key set from the trust list and stores it (one row, versioned
    "<scheme version>-<catalogue version>"); a second sync of the same catalogue
    stores nothing new."""
    db = tmp_path / "hainan.db"
    updated, refused, _ = await _sync_from_heihe(world, db)
    assert "catalogue" in updated and not refused
    assert _catalogue_rows(db) == [(HEIHE, "2025.1-2025.1")]
    held = held_catalogue(db, "heihe")
    assert held is not None and (held.region, len(held.scenarios)) == (HEIHE, 19)
    updated, refused, _ = await _sync_from_heihe(world, db)
    assert "catalogue" not in updated and not refused
    assert _catalogue_rows(db) == [(HEIHE, "2025.1-2025.1")]


def _flip_payload(body: bytes) -> bytes:
    env = Envelope.from_bytes(body)
    payload = bytearray(env.payload)
    payload[-1] ^= 0x01
    return dataclasses.replace(env, payload=bytes(payload)).to_bytes()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(_flip_payload, "BAD_SIGNATURE", id="tampered-payload"),
        pytest.param(
            lambda b: b + b"\0" * (MAX_SIGNED_CATALOGUE_BYTES + 1 - len(b)),
            "TOO_LARGE",
            id="oversized",
        ),
        pytest.param(lambda b: b"\xff" * 64, "MALFORMED", id="not-an-envelope"),
    ],
)
async def test_a_tampered_or_oversized_catalogue_is_refused_by_name_and_nothing_stored(
    world: World, tmp_path: Path, change: Callable[[bytes], bytes], reason: str
) -> None:
    """REQ: N20 — issue 16 §1: a peer catalogue that does not verify (payload changed
    after signing), is larger than the bound, or is not an envelope is refused with a
    named reason (``catalogue:REASON`` in the sync result, recorded as the peer's last
    error); nothing of it is stored, and the rest of the peer's material still is."""
    db = tmp_path / "hainan.db"
    updated, refused, _ = await _sync_from_heihe(world, db, change)
    assert refused == [f"catalogue:{reason}"]
    assert "key_set" in updated and "catalogue" not in updated
    assert _catalogue_rows(db) == []
    assert held_catalogue(db, "heihe") is None


async def test_mapping_grade_lists_the_fetched_catalogues_unlocked_scenarios(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: C3 N20 — issue 16 §1: with ``--config`` of a node that fetched Heihe's
    catalogue, ``huxin mapping grade hainan heihe AAA`` lists the Heihe scenarios the
    recognised grade unlocks from that catalogue ("fetched from heihe"); Hainan B is not
    recognised in Heihe and unlocks nothing, and says so."""
    db = tmp_path / "hainan.db"
    _, _, config = await _sync_from_heihe(world, db)
    node_toml = tmp_path / "node.toml"
    text = config.read_text(encoding="utf-8")
    node_toml.write_text(text.replace('database = "', f'database = "{db}" #', 1), "utf-8")
    assert load_config(node_toml).database == db
    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["mapping", "grade", "hainan", "heihe", "AAA", "--config", str(node_toml)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "unlocks 19 of heihe's 19 incentive scenarios with grade AAA" in out
    assert "fetched from heihe" in out and "heihe/credit-loans  tier >= A" in out
    code = await asyncio.to_thread(
        main, ["mapping", "grade", "hainan", "heihe", "B", "--config", str(node_toml), "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert (code, doc["mapped_grade"]) == (0, None)
    assert doc["unlocks"]["recognised"] is False and doc["unlocks"]["scenarios"] == []
    assert doc["unlocks"]["origin"] == "fetched from heihe"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["heihe", "hainan", "A"],
            "unlocks 1 of hainan's 9 incentive scenarios with grade A",
            id="heihe-A-unlocks-hainan-fast-lane",
        ),
        pytest.param(
            ["wendeng", "heihe", "A"],
            "unlocks nothing in heihe: the grade is not recognised there",
            id="not-recognised",
        ),
        pytest.param(
            ["heihe", "hainan", "B"],
            "unlocks none of hainan's 9 incentive scenarios with grade C",
            id="recognised-below-every-tier",
        ),
    ],
)
async def test_mapping_grade_lists_the_shipped_catalogues_unlocked_scenarios(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    """REQ: C3 H14 N20 — issue 16 §1: without a node, ``huxin mapping grade FROM TO
    GRADE`` reads the shipped scheme's catalogue: Heihe A is Hainan A and unlocks
    hainan/fast-lane (marked illustrative: Hainan publishes no tiers); a grade that
    is not recognised unlocks nothing and says so."""
    capsys.readouterr()
    assert main(["mapping", "grade", *argv]) == 0
    out = capsys.readouterr().out
    assert expected in out
    if argv[2] == "A" and argv[1] == "hainan":
        assert "  hainan/fast-lane  tier >= A  " in out and "ILLUSTRATIVE" in out
