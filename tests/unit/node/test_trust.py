"""Node-side trust state: the signed trust list decides who may call (H17), never rolls back."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import KeyPair, KeySet, TrustedRegion, TrustList
from node.core._config import ConfigError, parse_config
from node.core._errors import PermissionDeniedError
from node.federation._trust import (
    HUB_ENDPOINT_PREFIX,
    HUB_TAG,
    TrustState,
    compare_versions,
    open_trust,
)
from node.store._db import Database

NOW = datetime(2026, 11, 23, tzinfo=UTC)
T = int(NOW.timestamp())


@dataclass
class Region:
    id: str
    root: KeyPair
    signing: KeyPair
    key_set: KeySet

    @classmethod
    def make(cls, region: str) -> Region:
        root, signing = KeyPair.generate(), KeyPair.generate()
        ks = KeySet.new(region, root.public_key, NOW).add_key(
            signing.public_key, NOW - timedelta(days=1), NOW + timedelta(days=90)
        )
        return cls(region, root, signing, ks)

    def entry(
        self, *endpoints: str, domestic: bool = True, schemes: tuple[str, ...] = ()
    ) -> TrustedRegion:
        return TrustedRegion(
            region=self.id,
            root_public_key=self.root.public_key,
            key_set=self.key_set.sign(self.root, NOW),
            endpoints=endpoints,
            domestic=domestic,
            schemes=schemes,
        )


HUB = Region.make("heilongjiang")
HEIHE = Region.make("heihe")
HAINAN = Region.make("hainan")
ABROAD = Region.make("abroad")
PEERHUB = Region.make("hainan-hub")


def signed_list(
    version: int,
    *,
    regions: tuple[TrustedRegion, ...] | None = None,
    issued: int = T - 60,
    ttl: int = 7 * 86_400,
    issuer: str = "heilongjiang",
    root: KeyPair | None = None,
) -> bytes:
    regions = regions or (
        HEIHE.entry("127.0.0.1:7001", HUB_ENDPOINT_PREFIX + "heilongjiang"),
        HAINAN.entry("127.0.0.1:7002", HUB_ENDPOINT_PREFIX + "hainan-hub"),
        ABROAD.entry("127.0.0.1:7003", domestic=False),
        PEERHUB.entry("127.0.0.1:7004", HUB_TAG),
        HUB.entry("127.0.0.1:7000"),
    )
    tl = TrustList(issuer, version, issued, issued + ttl, regions)
    return tl.sign(root or HUB.root).to_bytes()


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = await Database.open(tmp_path / "node.db")
    yield d
    await d.close()


def state(**kw: object) -> TrustState:
    return TrustState("heihe", hub="heilongjiang", hub_key=HUB.root.public_key, **kw)  # type: ignore[arg-type]


async def test_newer_lists_are_adopted_and_persisted_older_ones_refused(db: Database) -> None:
    """REQ: H17 — highest version kept; a rolled-back list is refused, also after a restart."""
    s = state()
    assert (await s.offer(db, signed_list(1), T, "file")).outcome == "accepted"
    assert (await s.offer(db, signed_list(3), T, "heilongjiang")).outcome == "accepted"
    assert s.version == 3
    again = state()
    await again.load(db, T)
    assert again.version == 3
    decision = await again.offer(db, signed_list(2), T, "file")
    assert (decision.outcome, decision.reason, decision.version) == ("refused", "TRUST_ROLLBACK", 2)
    assert again.version == 3
    rows = await db.fetchall("SELECT source, version, reason FROM trust_refusals")
    assert ("file", 2, "TRUST_ROLLBACK") in [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda: signed_list(1, ttl=10, issued=T - 100), "TRUST_EXPIRED", id="expired"),
        pytest.param(lambda: signed_list(2, root=KeyPair.generate()), "TRUST_INVALID", id="other-key"),
        pytest.param(lambda: signed_list(2, issuer="guangdong"), "TRUST_INVALID", id="other-issuer"),
        pytest.param(lambda: b"\x00garbage", "TRUST_INVALID", id="garbage"),
        pytest.param(lambda: signed_list(1, issued=T - 30), "TRUST_EQUIVOCATION", id="same-version-other-bytes"),
        pytest.param(lambda: signed_list(0), "TRUST_ROLLBACK", id="older"),
    ],
)  # fmt: skip
async def test_bad_lists_are_refused_with_a_stable_reason(
    db: Database, make: object, code: str
) -> None:
    """REQ: H17 — fail closed: the held list stays, the refusal is recorded as evidence."""
    s = state()
    await s.offer(db, signed_list(1), T, "file")
    decision = await s.offer(db, make(), T, "hub")  # type: ignore[operator]
    assert (decision.outcome, decision.reason) == ("refused", code)
    assert s.version == 1
    (n,) = await db.fetchone("SELECT COUNT(*) FROM trust_refusals WHERE reason = ?", (code,))
    assert n == 1


async def test_same_list_again_is_current(db: Database) -> None:
    s = state()
    data = signed_list(1)
    await s.offer(db, data, T, "file")
    assert (await s.offer(db, data, T, "hub")).outcome == "current"


async def test_expired_list_only_with_allow_stale_and_then_reported(db: Database) -> None:
    """REQ: H17 — an expired list is refused unless explicitly allowed, and then reported."""
    s = state(allow_stale=True)
    old = signed_list(1, ttl=10, issued=T - 100)
    assert (await s.offer(db, old, T, "file")).outcome == "accepted"
    assert s.stale_at(T)
    assert s.allows("hainan", T)
    strict = state()
    await strict.load(db, T)
    assert strict.version == 1 and not strict.allows("hainan", T)


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        pytest.param("hainan", True, id="listed"),
        pytest.param("hainan.bank", True, id="integrator-of-listed"),
        pytest.param("heilongjiang", True, id="hub"),
        pytest.param("hainan-hub", True, id="peer-hub"),
        pytest.param("heihe.court", True, id="own-integrator"),
        pytest.param("abroad", False, id="not-domestic"),
        pytest.param("abroad.bank", False, id="integrator-not-domestic"),
        pytest.param("fuzhou", False, id="unlisted"),
        pytest.param("fuzhou.bank", False, id="unlisted-integrator"),
    ],
)
async def test_who_may_call(db: Database, identity: str, allowed: bool) -> None:
    """REQ: H17 — score data only for domestic peers in the trust list."""
    s = state()
    assert not s.allows(identity, T)  # no list yet: nobody (fail closed)
    await s.offer(db, signed_list(1), T, "file")
    assert s.allows(identity, T) is allowed
    assert not s.allows(identity, T + 8 * 86_400)  # past expiry


@pytest.mark.parametrize(
    ("relay", "on_behalf_of", "effective"),
    [
        pytest.param("heilongjiang", "hainan.bank", "hainan.bank", id="hub-for-listed"),
        pytest.param("hainan-hub", "hainan.bank", "hainan.bank", id="peer-hub-for-listed"),
        pytest.param("hainan", "hainan.bank", "hainan.bank", id="region-for-own"),
        pytest.param("heilongjiang", "fuzhou.bank", None, id="hub-for-unlisted"),
        pytest.param("hainan", "heihe.bank", None, id="region-for-other"),
        pytest.param("hainan", "hainan", None, id="region-for-itself"),
        pytest.param("fuzhou", "fuzhou.bank", None, id="unlisted-relay"),
        pytest.param("abroad", "abroad.bank", None, id="foreign-relay"),
        pytest.param("heilongjiang", "heihe.court", None, id="hub-for-own-region-org"),
        pytest.param("hainan-hub", "heihe", None, id="peer-hub-for-own-region"),
    ],
)
async def test_relayed_identity_is_vouched_only_by_hubs_or_own_region(
    db: Database, relay: str, on_behalf_of: str, effective: str | None
) -> None:
    """REQ: H17 N20 — routing keeps the consent's audience bound to an authenticated identity."""
    s = state()
    await s.offer(db, signed_list(1), T, "file")
    if effective is None:
        with pytest.raises(PermissionDeniedError) as info:
            s.vouch(relay, on_behalf_of)
        assert info.value.code == "RELAY_NOT_TRUSTED"
    else:
        assert s.vouch(relay, on_behalf_of) == effective


async def test_endpoints_hubs_and_peers_come_from_the_list(db: Database) -> None:
    s = state()
    await s.offer(db, signed_list(1), T, "file")
    assert s.endpoint("hainan") == "127.0.0.1:7002"
    assert s.home_hub("hainan") == "hainan-hub" and s.home_hub("heihe") == "heilongjiang"
    assert s.hubs() == {"heilongjiang", "hainan-hub"}
    assert set(s.peers()) == {"hainan", "heilongjiang", "hainan-hub"}  # not "abroad" (H17)


async def test_newer_key_set_from_a_peer_is_overlaid(db: Database) -> None:
    """REQ: H17 — a rotated signing key fetched from its region verifies before the next list."""
    s = state()
    await s.offer(db, signed_list(1), T, "file")
    new = KeyPair.generate()
    rotated = HAINAN.key_set.add_key(new.public_key, NOW, NOW + timedelta(days=30))
    assert s.overlay_key_set(rotated)
    assert not s.overlay_key_set(HAINAN.key_set)  # older: ignored
    trust = s.trust
    assert trust is not None and new.key_id in trust.region_keys("hainan")


async def test_standalone_node_uses_the_static_list(db: Database, tmp_path: Path) -> None:
    base = {
        "node": {"region": "heihe", "scheme": "heihe"},
        "tls": {"cert": "c", "key": "k", "ca": "a"},
        "keys": {"root": "r", "signing": "s", "key_set": "ks", "storage_secret": "x", "seal": "y"},
        "peers": {"allowed": ["hainan"]},
    }
    s = await open_trust(parse_config(base, tmp_path), db, T)
    assert not s.federated
    assert s.allows("hainan") and s.allows("hainan.bank") and s.allows("heihe.court")
    assert not s.allows("fuzhou")


async def test_federated_config_seeds_from_the_trust_list_file(
    db: Database, tmp_path: Path
) -> None:
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "tl.bin").write_bytes(signed_list(4))
    cfg = parse_config(_fed_config(trust_list="trust/tl.bin"), tmp_path)
    assert cfg.federation is not None and cfg.federation.trust_list == tmp_path / "trust/tl.bin"
    s = await open_trust(cfg, db, T)
    assert s.version == 4 and s.allows("hainan", T)


def _fed_config(**fed: object) -> dict[str, object]:
    return {
        "node": {"region": "heihe", "scheme": "heihe"},
        "tls": {"cert": "c", "key": "k", "ca": "a"},
        "keys": {"root": "r", "signing": "s", "key_set": "ks", "storage_secret": "x", "seal": "y"},
        "federation": {"hub": "heilongjiang", "hub_key": HUB.root.public_key.hex(), **fed},
    }


@pytest.mark.parametrize(
    ("fed", "extra", "field"),
    [
        pytest.param({"hub_key": "zz"}, {}, "federation.hub_key", id="hub-key-not-hex"),
        pytest.param({"hub_key": "ab" * 31}, {}, "federation.hub_key", id="hub-key-short"),
        pytest.param({"route": "carrier-pigeon"}, {}, "federation.route", id="route"),
        pytest.param({"sync_interval_seconds": 0}, {}, "federation.sync_interval_seconds", id="interval"),
        pytest.param({"trust_list": 3}, {}, "federation.trust_list", id="trust-list-type"),
        pytest.param({"nope": 1}, {}, "federation.nope", id="unknown-key"),
        pytest.param({}, {"peers": {"allowed": ["hainan"]}}, "peers.allowed", id="static-and-federated"),
    ],
)  # fmt: skip
def test_federation_config_refusals(
    tmp_path: Path, fed: dict[str, object], extra: dict[str, object], field: str
) -> None:
    data = _fed_config(**fed)
    data.update(extra)
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [("2025.1", "2025.2", -1), ("2025.10", "2025.9", 1), ("7", "7", 0), ("10", "9", 1)],
)
def test_versions_compare_numerically(a: str, b: str, order: int) -> None:
    assert compare_versions(a, b) == order


# ---------------------------------------------------------------- routing decisions


@dataclass
class _RouteCtx:
    """The parts of a NodeContext the next-hop decision reads (config, trust, time)."""

    config: object
    trust: TrustState

    def now_s(self) -> int:
        return T


@pytest.mark.parametrize(
    ("region", "role", "route", "home", "hop"),
    [
        pytest.param("hainan", "region", "hub", "heihe", ("heilongjiang", "127.0.0.1:7000"), id="region-via-hub"),
        pytest.param("hainan", "region", "auto", "heihe", ("heihe", "127.0.0.1:7001"), id="region-direct-when-listed"),
        pytest.param("hainan", "region", "direct", "heihe", ("heihe", "127.0.0.1:7001"), id="region-direct"),
        pytest.param("heilongjiang", "hub", "hub", "heihe", ("heihe", "127.0.0.1:7001"), id="hub-to-own-region"),
        pytest.param("heilongjiang", "hub", "hub", "hainan", ("hainan-hub", "127.0.0.1:7004"), id="hub-to-peer-hub"),
        pytest.param("hainan", "region", "hub", "abroad", "REGION_NOT_TRUSTED", id="not-domestic"),
        pytest.param("hainan", "region", "hub", "fuzhou", "REGION_NOT_TRUSTED", id="unlisted"),
    ],
)  # fmt: skip
async def test_next_hop(
    db: Database, tmp_path: Path, region: str, role: str, route: str, home: str, hop: object
) -> None:
    """REQ: H2 N20 H17 — requests go to the home region directly or through the hubs, and
    never to a region outside the domestic trust list."""
    from node.core._errors import NodeError
    from node.federation._route import Router

    data = _fed_config(route=route, hub_endpoint="127.0.0.1:7000")
    data["node"] = {"region": region, "scheme": "hainan", "role": role}
    cfg = parse_config(data, tmp_path)
    trust = TrustState(region, hub="heilongjiang", hub_key=HUB.root.public_key)
    await trust.offer(db, signed_list(1), T, "file")
    router = Router.__new__(Router)
    router._ctx = _RouteCtx(cfg, trust)  # type: ignore[assignment]
    if isinstance(hop, tuple):
        assert router.next_hop(home) == hop
    else:
        with pytest.raises(NodeError) as info:
            router.next_hop(home)
        assert (info.value.code, info.value.field) == (hop, "consent_token")


_LISTS = {v: signed_list(v) for v in range(6)}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=8))
def test_held_version_is_the_highest_offered_and_never_decreases(offers: list[int]) -> None:
    """REQ: H17 — whatever order lists arrive in (and across a restart), the held version is
    the highest seen so far; everything older is refused."""

    async def run(path: Path) -> None:
        db = await Database.open(path)
        try:
            s, seen = state(), -1  # nothing held yet
            for i, v in enumerate(offers):
                if i == len(offers) // 2:  # restart half-way through
                    s = state()
                    await s.load(db, T)
                d = await s.offer(db, _LISTS[v], T, "peer")
                assert d.outcome == (
                    "refused" if v < seen else "current" if v == seen else "accepted"
                )
                seen = max(seen, v)
                assert s.version == seen  # version 0 is a real list here
        finally:
            await db.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "node.db"))


async def test_a_worker_follows_lists_another_process_accepted(db: Database) -> None:
    """docs/adr/0312: a peer-port worker adopts what the primary persisted, never older."""
    primary, worker = state(), state()
    assert not await worker.follow(db, T)  # nothing persisted yet
    await primary.offer(db, signed_list(2), T, "hub")
    assert await worker.follow(db, T)
    assert worker.version == 2 and worker.allows("hainan", T)
    assert not await worker.follow(db, T)  # unchanged: nothing to do
    await primary.offer(db, signed_list(5), T, "hub")
    assert await worker.follow(db, T) and worker.version == 5
    standalone = TrustState("heihe", static_peers=("hainan",))
    assert not await standalone.follow(db, T)
