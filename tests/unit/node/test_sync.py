"""Peer sync against an in-memory peer network (repository-simulator style).

Every simulated peer serves real signed material (trust lists, key sets,
status lists, scheme and mapping descriptors) and can be told to publish a
new version, roll back, equivocate, fail or hang.  The node side is the real
:class:`node._sync.PeerSync` over a real SQLite database; time comes from a
:class:`ManualClock`, randomness from a seeded ``random.Random``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import KeyPair, StatusList
from node._clock import ManualClock
from node._db import Database
from node._sync import PeerSync, SyncPolicy, backoff_delay
from node._trust import HUB_ENDPOINT_PREFIX, HUB_TAG, TrustState

from .test_trust import HAINAN, HUB, NOW, PEERHUB, Region, T, signed_list

ENDPOINTS = {
    "heilongjiang": "127.0.0.1:7000",
    "hainan": "127.0.0.1:7002",
    "hainan-hub": "127.0.0.1:7004",
}


@dataclass
class SimPeer:
    """One simulated peer: what it serves now, and how it misbehaves."""

    region: Region
    trust_lists: list[bytes] = field(default_factory=list)  # hub only; serves the last
    keyset_blob: bytes = b""
    status: bytes = b""
    scheme_rows: list[tuple[str, str, bytes]] = field(default_factory=list)
    mapping_rows: list[tuple[str, str, bytes]] = field(default_factory=list)
    fail: bool = False
    hang: bool = False
    calls: int = 0

    @classmethod
    def of(cls, region: Region, issued: int = T) -> SimPeer:
        p = cls(region, keyset_blob=region.key_set.sign(region.root, NOW).to_bytes())
        p.publish_status(issued)
        p.scheme_rows = [(region.id, "2025.1", b"scheme-" + region.id.encode())]
        p.mapping_rows = [(f"{region.id}-heihe", "1", b"table-1")]
        return p

    def publish_status(self, issued: int) -> None:
        env = StatusList(self.region.id, "sl").sign(self.region.signing, issued, issued + 86_400)
        self.status = env.to_bytes()

    async def _enter(self) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("peer unreachable")
        if self.hang:
            await asyncio.Event().wait()

    async def trust_list(self) -> bytes | None:
        await self._enter()
        return self.trust_lists[-1] if self.trust_lists else None

    async def key_set(self) -> bytes:
        await self._enter()
        return self.keyset_blob

    async def status_list(self) -> bytes:
        await self._enter()
        return self.status

    async def schemes(self) -> list[tuple[str, str, bytes]]:
        return list(self.scheme_rows)

    async def mappings(self) -> list[tuple[str, str, bytes]]:
        return list(self.mapping_rows)

    async def close(self) -> None:
        return None


class SimNetwork:
    def __init__(self) -> None:
        self.peers: dict[str, SimPeer] = {}

    def connect(self, peer: str, target: str) -> SimPeer:
        assert ENDPOINTS[peer] == target, "sync must use the endpoint from the trust list"
        return self.peers[peer]


def federation_list(version: int, issued: int = T - 60) -> bytes:
    return signed_list(
        version,
        issued=issued,
        regions=(
            HAINAN.entry(ENDPOINTS["hainan"], HUB_ENDPOINT_PREFIX + "hainan-hub"),
            PEERHUB.entry(ENDPOINTS["hainan-hub"], HUB_TAG),
            HUB.entry(ENDPOINTS["heilongjiang"]),
        ),
    )


@dataclass
class Bed:
    db: Database
    net: SimNetwork
    trust: TrustState
    clock: ManualClock
    sync: PeerSync

    async def material(self, region: str) -> dict[str, str]:
        rows = await self.db.fetchall(
            "SELECT item, version FROM peer_material WHERE region = ?", (region,)
        )
        return {r[0]: r[1] for r in rows}


@pytest_asyncio.fixture
async def bed(tmp_path: Path) -> AsyncIterator[Bed]:
    db = await Database.open(tmp_path / "node.db")
    net = SimNetwork()
    hub = SimPeer.of(HUB)
    hub.trust_lists.append(federation_list(1))
    net.peers = {
        "heilongjiang": hub,
        "hainan": SimPeer.of(HAINAN),
        "hainan-hub": SimPeer.of(PEERHUB),
    }
    trust = TrustState("heihe", hub="heilongjiang", hub_key=HUB.root.public_key)
    clock = ManualClock(NOW)
    sync = PeerSync(
        region="heihe",
        trust=trust,
        db=db,
        connect=net.connect,
        clock=clock,
        policy=SyncPolicy(interval=30, timeout=0.3, backoff_base=1, backoff_max=60),
        rng=random.Random(7),
        hub="heilongjiang",
        hub_target=ENDPOINTS["heilongjiang"],
    )
    yield Bed(db, net, trust, clock, sync)
    await sync.stop()
    await db.close()


async def test_first_round_learns_the_trust_list_then_syncs_every_listed_peer(bed: Bed) -> None:
    """REQ: H17 N20 — the hub's list names the peers; their material is verified and kept."""
    first = await bed.sync.run_once()
    assert set(first) == {"heilongjiang"}  # nothing else is known before the list
    assert first["heilongjiang"].ok and "trust_list:v1" in first["heilongjiang"].updated
    bed.clock.advance(seconds=31)
    second = await bed.sync.run_once()
    assert set(second) == {"heilongjiang", "hainan", "hainan-hub"}
    assert all(r.ok for r in second.values())
    assert await bed.material("hainan") == {
        "key_set": "1",
        "status_list": str(T),
        "scheme:hainan": "2025.1",
        "mapping:hainan-heihe": "1",
    }
    rows = await bed.db.fetchall("SELECT peer, failures, last_error FROM sync_peers ORDER BY peer")
    assert [tuple(r) for r in rows] == [
        ("hainan", 0, ""),
        ("hainan-hub", 0, ""),
        ("heilongjiang", 0, ""),
    ]


async def _two_rounds(bed: Bed) -> None:
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)


@pytest.mark.parametrize(
    ("change", "peer", "refused"),
    [
        pytest.param("trust_rollback", "heilongjiang", "trust_list:TRUST_ROLLBACK", id="trust-list"),
        pytest.param("key_set_rollback", "hainan", "key_set:ROLLBACK", id="key-set"),
        pytest.param("status_rollback", "hainan", "status_list:ROLLBACK", id="status-list"),
        pytest.param("scheme_rollback", "hainan", "scheme:hainan:ROLLBACK", id="scheme"),
        pytest.param("mapping_equivocation", "hainan", "mapping:hainan-heihe:EQUIVOCATION", id="mapping"),
        pytest.param("key_set_foreign_root", "hainan", "key_set:BAD_KEY_SET", id="bad-key-set"),
        pytest.param("status_foreign_signer", "hainan", "status_list:ISSUER_MISMATCH", id="bad-status"),
    ],
)  # fmt: skip
async def test_no_rollback_and_nothing_unverified_is_kept(
    bed: Bed, change: str, peer: str, refused: str
) -> None:
    """REQ: H17 — the highest version seen is kept; older or unverifiable material is refused."""
    hub, hainan = bed.net.peers["heilongjiang"], bed.net.peers["hainan"]
    # Everything moves forward first: list v2, key set v2, newer status, scheme 2025.2.
    hub.trust_lists.append(federation_list(2))
    rotated = HAINAN.key_set.add_key(KeyPair.generate().public_key, NOW, NOW + timedelta(days=9))
    hainan.keyset_blob = rotated.sign(HAINAN.root, NOW).to_bytes()
    hainan.publish_status(T + 10)
    hainan.scheme_rows = [("hainan", "2025.2", b"scheme v2")]
    await _two_rounds(bed)
    before = await bed.material("hainan")
    assert before["key_set"] == "2" and before["scheme:hainan"] == "2025.2"
    if change == "trust_rollback":
        hub.trust_lists.append(federation_list(1))
    elif change == "key_set_rollback":
        hainan.keyset_blob = HAINAN.key_set.sign(HAINAN.root, NOW).to_bytes()
    elif change == "status_rollback":
        hainan.publish_status(T)
    elif change == "scheme_rollback":
        hainan.scheme_rows = [("hainan", "2025.1", b"scheme v1")]
    elif change == "mapping_equivocation":
        hainan.mapping_rows = [("hainan-heihe", "1", b"another table-1")]
    elif change == "key_set_foreign_root":
        other = KeyPair.generate()
        hainan.keyset_blob = (
            HAINAN.key_set.__class__.new("hainan", other.public_key, NOW)
            .sign(other, NOW)
            .to_bytes()
        )
    elif change == "status_foreign_signer":
        hainan.status = (
            StatusList("hainan-hub", "sl").sign(PEERHUB.signing, T + 99, T + 999).to_bytes()
        )
    results = await bed.sync.run_once()
    assert refused in results[peer].refused
    assert await bed.material("hainan") == before
    assert bed.trust.version == 2
    assert bed.trust.key_set_version("hainan") == 2


async def test_a_slow_peer_never_blocks_the_others(bed: Bed) -> None:
    """REQ: N20 — per-peer tasks with deadlines: a hanging peer costs its own timeout only."""
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    bed.net.peers["hainan-hub"].hang = True
    started = time.perf_counter()
    results = await bed.sync.run_once()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.3 * 2  # one deadline, not one per peer
    assert results["hainan-hub"].error == "DEADLINE_EXCEEDED"
    assert results["hainan"].ok and results["heilongjiang"].ok


async def test_backoff_is_per_peer_exponential_with_jitter_and_resets(bed: Bed) -> None:
    """REQ: N20 — a failing peer is retried later and later; the others keep their interval."""
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    bed.net.peers["hainan"].fail = True
    delays = []
    for n in range(1, 6):
        results = await bed.sync.run_once()
        assert results["hainan"].error.startswith("UNREACHABLE")
        now = bed.clock.now().timestamp()
        delay = results["hainan"].next_at - now
        cap = min(60, 2 ** (n - 1))
        assert cap / 2 <= delay <= cap
        delays.append(delay)
        calls = bed.net.peers["hainan"].calls
        assert "hainan" not in await bed.sync.run_once()  # not due yet: not called
        assert bed.net.peers["hainan"].calls == calls
        bed.clock.advance(seconds=delay + 0.01)
    assert delays[-1] > delays[0]
    assert bed.sync.state("heilongjiang")[0] == 0
    bed.net.peers["hainan"].fail = False
    results = await bed.sync.run_once()
    assert results["hainan"].ok and bed.sync.state("hainan")[0] == 0
    assert results["hainan"].next_at - bed.clock.now().timestamp() == 30
    (failures, err) = await bed.db.fetchone(
        "SELECT failures, last_error FROM sync_peers WHERE peer = 'hainan'"
    )
    assert (failures, err) == (0, "")


async def test_newer_key_set_becomes_trusted_before_the_next_list(bed: Bed) -> None:
    await bed.sync.run_once()
    new = KeyPair.generate()
    rotated = HAINAN.key_set.add_key(new.public_key, NOW, NOW + timedelta(days=9))
    bed.net.peers["hainan"].keyset_blob = rotated.sign(HAINAN.root, NOW).to_bytes()
    bed.clock.advance(seconds=31)
    await bed.sync.run_once()
    trust = bed.trust.trust
    assert trust is not None and new.key_id in trust.region_keys("hainan")


async def test_background_loop_runs_peers_independently_and_stops(bed: Bed) -> None:
    bed.net.peers["hainan-hub"].hang = True
    task = asyncio.ensure_future(bed.sync.run(tick=0.02))
    for _ in range(100):
        await asyncio.sleep(0.02)
        bed.clock.advance(seconds=31)
        if bed.net.peers["hainan"].calls >= 2:
            break
    assert bed.net.peers["hainan"].calls >= 2  # kept syncing while hainan-hub hung
    await bed.sync.stop()
    await asyncio.wait_for(task, 2)


@settings(max_examples=60, deadline=None)
@given(
    failures=st.integers(min_value=0, max_value=80),
    seed=st.integers(min_value=0, max_value=2**32),
    base=st.floats(min_value=0.01, max_value=10),
    cap=st.floats(min_value=10, max_value=1000),
)
def test_backoff_delay_bounds(failures: int, seed: int, base: float, cap: float) -> None:
    policy = SyncPolicy(interval=30, timeout=1, backoff_base=base, backoff_max=cap)
    d = backoff_delay(failures, policy, random.Random(seed))
    if failures == 0:
        assert d == 30
    else:
        top = min(cap, base * 2 ** (failures - 1))
        assert top / 2 <= d <= top
