"""Peer sync against an in-memory peer network (repository-simulator style).

Every simulated peer serves real signed material (trust lists, key sets,
status lists, scheme and mapping descriptors) and can be told to publish a
new version, roll back, equivocate, fail or hang.  The node side is the real
:class:`node.federation._sync.PeerSync` over a real SQLite database; time comes from a
:class:`ManualClock`, randomness from a seeded ``random.Random``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import KeyPair, StatusList
from mapping import MappingTable, published_table
from node.core._clock import ManualClock
from node.exchange._mapping import table_blob
from node.federation._sync import PeerSync, SyncPolicy, backoff_delay
from node.federation._trust import HUB_ENDPOINT_PREFIX, HUB_TAG, TrustState
from node.pb.v1 import scoring_pb2
from node.store._db import Database
from scoring import list_schemes, load_scheme
from tests._waiting import WAIT_S, until

from .test_trust import HAINAN, HUB, NOW, PEERHUB, Region, T, signed_list

ENDPOINTS = {
    "heilongjiang": "127.0.0.1:7000",
    "hainan": "127.0.0.1:7002",
    "hainan-hub": "127.0.0.1:7004",
}


def scheme_row(region: str, version: str, name: str = "") -> tuple[str, str, bytes]:
    """A scheme descriptor as ListSchemes serves it (the shipped name when there is one)."""
    shipped = load_scheme(region).name if region in list_schemes() else region
    s = scoring_pb2.Scheme(id=region, version=version, region=region, name=name or shipped)
    return (region, version, s.SerializeToString())


def mapping_row(table: MappingTable, **blob: object) -> tuple[str, str, bytes]:
    """A mapping table descriptor as ListMappings serves it (``blob``: fields overridden)."""
    b = table_blob(table)
    for k, v in blob.items():
        setattr(b, k, v)
    return (b.id, b.version, b.SerializeToString())


HAINAN_HEIHE = published_table("hainan", "heihe")


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
    hang: bool = False  # until ``unhang`` is set
    unhang: asyncio.Event = field(default_factory=asyncio.Event)
    crash: bool = False  # raise something that is not a network error
    calls: int = 0

    @classmethod
    def of(cls, region: Region, issued: int = T) -> SimPeer:
        p = cls(region, keyset_blob=region.key_set.sign(region.root, NOW).to_bytes())
        p.publish_status(issued)
        p.scheme_rows = [scheme_row(region.id, "2025.1"), scheme_row("heihe", "2025.1")]
        serves_tables = region.id in ("hainan", "hainan-hub")  # a hub serves its scheme's tables
        p.mapping_rows = [mapping_row(HAINAN_HEIHE)] if serves_tables else []
        return p

    def publish_status(self, issued: int) -> None:
        env = StatusList(self.region.id, "sl").sign(self.region.signing, issued, issued + 86_400)
        self.status = env.to_bytes()

    async def _enter(self) -> None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("peer unreachable")
        if self.hang:
            await self.unhang.wait()
        if self.crash:
            raise RuntimeError("a decoder blew up")

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

    async def catalogue(self) -> bytes | None:
        return None

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
            # hainan@2025.1 is a shipped scheme file; 2025.2 is known only from the list
            HAINAN.entry(
                ENDPOINTS["hainan"], HUB_ENDPOINT_PREFIX + "hainan-hub", schemes=("hainan@2025.2",)
            ),
            PEERHUB.entry(ENDPOINTS["hainan-hub"], HUB_TAG, schemes=("hainan-hub@2025.1",)),
            HUB.entry(ENDPOINTS["heilongjiang"], schemes=("heilongjiang@2025.1",)),
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
        # a healthy sim peer is never cut off, however slowly a busy machine verifies
        policy=SyncPolicy(interval=30, timeout=WAIT_S, backoff_base=1, backoff_max=60),
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
        "scheme:hainan": "2025.1",  # the heihe scheme it also lists is not hainan's to publish
        "mapping:hainan-heihe-anchored": "1",
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
        pytest.param("mapping_equivocation", "hainan", "mapping:hainan-heihe-anchored:EQUIVOCATION", id="mapping"),
        pytest.param("scheme_unlisted", "hainan", "scheme:hainan:SCHEME_NOT_LISTED", id="scheme-version-999999"),
        pytest.param("scheme_forged_shipped", "hainan", "scheme:hainan:SCHEME_NOT_LISTED", id="scheme-not-as-shipped"),
        pytest.param("scheme_renamed", "hainan", "scheme:hainan:DESCRIPTOR_MISMATCH", id="scheme-descriptor"),
        pytest.param("mapping_garbage", "hainan", "mapping:hainan-heihe-anchored:MALFORMED", id="mapping-garbage"),
        pytest.param("mapping_tampered", "hainan", "mapping:hainan-heihe-anchored:HASH_MISMATCH", id="mapping-tampered"),
        pytest.param("mapping_sha", "hainan", "mapping:hainan-heihe-anchored:HASH_MISMATCH", id="mapping-sha256"),
        pytest.param("mapping_version_999999", "hainan", "mapping:hainan-heihe-anchored:DESCRIPTOR_MISMATCH", id="mapping-version-999999"),
        pytest.param("mapping_inflating", "hainan", "mapping:hainan-heihe-anchored:INVARIANT_CONSERVATIVE", id="mapping-invariants"),
        pytest.param("mapping_unknown_scheme", "hainan", "mapping:hainan-heihe-anchored:SCHEME_UNKNOWN", id="mapping-unknown-scheme"),
        pytest.param("mapping_of_others", "hainan", "mapping:fuzhou-wendeng-anchored:NOT_PEERS_TABLE", id="mapping-not-the-peers"),
        pytest.param("key_set_foreign_root", "hainan", "key_set:BAD_KEY_SET", id="bad-key-set"),
        pytest.param("status_foreign_signer", "hainan", "status_list:ISSUER_MISMATCH", id="bad-status"),
        pytest.param("status_future_dated", "hainan", "status_list:NOT_YET_VALID", id="status-from-the-future"),
    ],
)  # fmt: skip
async def test_no_rollback_and_nothing_unverified_is_kept(
    bed: Bed, change: str, peer: str, refused: str
) -> None:
    """REQ: H17 — the highest version seen is kept; older or unverifiable material is refused
    (issue 14 items 1 and 16: a status list dated beyond the clock skew is NOT_YET_VALID)."""
    hub, hainan = bed.net.peers["heilongjiang"], bed.net.peers["hainan"]
    # Everything moves forward first: list v2, key set v2, newer status, scheme 2025.2.
    hub.trust_lists.append(federation_list(2))
    rotated = HAINAN.key_set.add_key(KeyPair.generate().public_key, NOW, NOW + timedelta(days=9))
    hainan.keyset_blob = rotated.sign(HAINAN.root, NOW).to_bytes()
    hainan.publish_status(T + 10)
    hainan.scheme_rows = [scheme_row("hainan", "2025.2")]
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
        hainan.scheme_rows = [scheme_row("hainan", "2025.1")]
    elif change == "scheme_unlisted":
        hainan.scheme_rows = [scheme_row("hainan", "999999")]
    elif change == "scheme_forged_shipped":
        hainan.scheme_rows = [scheme_row("hainan", "2025.1", name="not the shipped scheme")]
    elif change == "scheme_renamed":
        hainan.scheme_rows = [("hainan", "2025.9", scheme_row("hainan", "2025.2")[2])]
    elif change == "mapping_equivocation":  # verifies, but other content under the same version
        note = {**HAINAN_HEIHE.parameters, "note": "re-issued"}
        hainan.mapping_rows = [mapping_row(replace(HAINAN_HEIHE, parameters=note))]
    elif change == "mapping_garbage":
        hainan.mapping_rows = [("hainan-heihe-anchored", "1", b"table-1")]
    elif change == "mapping_tampered":
        doc = table_blob(HAINAN_HEIHE).content.replace(b'"AAA": "AAA"', b'"AAA": "A"')
        hainan.mapping_rows = [mapping_row(HAINAN_HEIHE, content=doc)]
    elif change == "mapping_sha":
        hainan.mapping_rows = [mapping_row(HAINAN_HEIHE, sha256=bytes(32))]
    elif change == "mapping_version_999999":
        hainan.mapping_rows = [mapping_row(HAINAN_HEIHE, version="999999")]
    elif change == "mapping_inflating":
        grades = tuple((g, None if y is None else "S") for g, y in HAINAN_HEIHE.grades)
        hainan.mapping_rows = [mapping_row(replace(HAINAN_HEIHE, grades=grades))]
    elif change == "mapping_unknown_scheme":
        target = replace(HAINAN_HEIHE.target, version="2099.1")
        hainan.mapping_rows = [mapping_row(replace(HAINAN_HEIHE, target=target))]
    elif change == "mapping_of_others":
        hainan.mapping_rows = [mapping_row(published_table("fuzhou", "wendeng"))]
    elif change == "key_set_foreign_root":
        other = KeyPair.generate()
        hainan.keyset_blob = (
            HAINAN.key_set.__class__.new("hainan", other.public_key, NOW)
            .sign(other, NOW)
            .to_bytes()
        )
    elif change == "status_future_dated":  # held, it would refuse every real list until then
        hainan.publish_status(T + 86_400)
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
    """REQ: N20 — per-peer tasks: while one peer hangs, every other peer's round ends
    and is recorded, and the round ends when the slow one does (issue 14 item 18:
    seen as events, no claim on how long anything took)."""
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    now = bed.clock.now().timestamp()
    slow = bed.net.peers["hainan-hub"]
    slow.hang = True
    round_ = asyncio.ensure_future(bed.sync.run_once())
    try:
        await until(
            lambda: all(bed.sync.state(p)[1] > now for p in ("hainan", "heilongjiang")),
            "the other peers' rounds to be recorded",
        )
        assert bed.sync.state("hainan-hub")[1] <= now  # still in its round
        assert not round_.done()
    finally:
        slow.unhang.set()
    results = await asyncio.wait_for(round_, WAIT_S)
    assert all(r.ok for r in results.values()), results


async def test_a_hanging_peer_is_given_up_at_its_deadline(bed: Bed) -> None:
    """REQ: N20 — a peer that never answers ends at the policy's deadline with
    DEADLINE_EXCEEDED and a backoff (only its own result is asserted: under a
    deadline this short a busy machine may cut off others too)."""
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    bed.net.peers["hainan-hub"].hang = True
    bed.sync.policy = replace(bed.sync.policy, timeout=0.2)
    results = await asyncio.wait_for(bed.sync.run_once(), WAIT_S)
    assert results["hainan-hub"].error == "DEADLINE_EXCEEDED"
    assert bed.sync.state("hainan-hub")[0] == 1


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
    deadline = time.monotonic() + WAIT_S
    while bed.net.peers["hainan"].calls < 2:  # kept syncing while hainan-hub hung
        assert time.monotonic() < deadline, "hainan was not synced again"
        await asyncio.sleep(0.02)
        bed.clock.advance(seconds=31)
    await bed.sync.stop()
    await asyncio.wait_for(task, WAIT_S)


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


async def test_an_unexpected_error_is_the_peers_failure_with_backoff(bed: Bed) -> None:
    """REQ: N20 — any exception while syncing a peer (not only a network error) goes into
    that peer's error state with backoff: no tight retry loop, the others keep syncing."""
    await bed.sync.run_once()
    bed.clock.advance(seconds=31)
    hainan = bed.net.peers["hainan"]
    hainan.crash = True
    results = await bed.sync.run_once()
    assert results["hainan"].error == "INTERNAL_RuntimeError"
    assert results["hainan-hub"].ok and results["heilongjiang"].ok
    assert bed.sync.state("hainan")[0] == 1
    assert results["hainan"].next_at > bed.clock.now().timestamp()
    (failures, err) = await bed.db.fetchone(
        "SELECT failures, last_error FROM sync_peers WHERE peer = 'hainan'"
    )
    assert (failures, err) == (1, "INTERNAL_RuntimeError")
    # The background loop ticks fast with the clock standing still: hainan is not retried.
    calls = hainan.calls
    task = asyncio.ensure_future(bed.sync.run(tick=0.01))
    await asyncio.sleep(0.3)
    await bed.sync.stop()
    await asyncio.wait_for(task, WAIT_S)
    assert hainan.calls == calls


async def test_a_peer_may_not_publish_another_regions_scheme(bed: Bed) -> None:
    """REQ: H17 — a scheme descriptor is kept from its own region only (heihe's scheme
    listed by hainan is ignored, not stored under hainan); a hub in the trust list may
    serve another region's (verified) mapping tables."""
    await _two_rounds(bed)
    tables = await bed.db.fetchall("SELECT region FROM peer_material WHERE item LIKE 'mapping:%'")
    assert sorted(r[0] for r in tables) == ["hainan", "hainan-hub"]
    held = await bed.db.fetchall(
        "SELECT region, item FROM peer_material WHERE item LIKE 'scheme:%'"
    )
    assert {tuple(r) for r in held} == {
        ("hainan", "scheme:hainan"),
        ("hainan-hub", "scheme:hainan-hub"),
        ("heilongjiang", "scheme:heilongjiang"),
    }
