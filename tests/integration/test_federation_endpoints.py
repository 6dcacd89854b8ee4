"""Before talking to a peer, its endpoint must present that peer's listed certificate (H17)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from keys import (
    Envelope,
    KeyPair,
    KeySet,
    TrustedRegion,
    TrustList,
    certificate_fingerprint,
    decode_private_key,
)
from node.core._config import load_config
from node.core._errors import UnavailableError
from node.demo._testbed import RunningNode, Testbed
from node.federation._route import EndpointCheck
from node.federation._trust import TrustState
from node.store._db import Database

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Env:
    bed: Testbed
    heihe: RunningNode
    db: Database


def _entry(node: RunningNode, region: str, fingerprints: tuple[bytes, ...]) -> TrustedRegion:
    d = node.directory
    root = decode_private_key((d / "keys/root.key").read_bytes())
    key_set = Envelope.from_bytes((d / "keys/keyset.bin").read_bytes())
    if region != node.region:  # another region, with keys of its own
        root = KeyPair.generate()
        ks = KeySet.new(region, root.public_key, node.clock.now())
        key_set = ks.add_key(KeyPair.generate().public_key, 0, 2**40).sign(root)
    return TrustedRegion(
        region=region,
        root_public_key=root.public_key,
        key_set=key_set,
        endpoints=(node.peer_target,),
        tls_sha256=fingerprints,
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    bed = Testbed(tmp_path_factory.mktemp("endpoints"))
    heihe = await bed.start_node("heihe", "heihe")
    db = await Database.open(bed.root / "client.db")
    yield Env(bed, heihe, db)
    await db.close()
    await bed.close()


async def _check(env: Env, listed_as: str, fingerprints: tuple[bytes, ...], expect: str) -> None:
    hub, now = KeyPair.generate(), int(env.bed.now.timestamp())
    tl = TrustList("hub", 1, now - 60, now + 3600,
                   (_entry(env.heihe, listed_as, fingerprints),)).sign(hub)  # fmt: skip
    trust = TrustState("client", hub="hub", hub_key=hub.public_key)
    decision = await trust.offer(env.db, tl.to_bytes(), now, "test")
    assert decision.outcome in ("accepted", "current")
    cfg = load_config(env.heihe.directory / "node.toml")
    check = EndpointCheck(trust, cfg.tls)
    target = env.heihe.peer_target
    if expect == "ok":
        await check.check(listed_as, target)
        await check.check(listed_as, target)  # cached
        return
    with pytest.raises(UnavailableError) as info:
        await check.check(listed_as, target)
    assert info.value.code == expect


async def test_the_listed_certificate_is_accepted(env: Env) -> None:
    """REQ: H17 — region id in the SAN and listed fingerprint both match."""
    fp = certificate_fingerprint((env.heihe.directory / "tls/node.pem").read_bytes())
    await _check(env, "heihe", (fp,), "ok")


@pytest.mark.parametrize(
    ("listed_as", "fingerprints"),
    [
        # as inbound (node.federation._callers), an entry that pins nothing admits nobody
        pytest.param("heihe", (), id="listed-entry-pins-nothing"),
        pytest.param("hainan", (), id="another-region-at-the-endpoint"),
        pytest.param("heihe", (b"\x01" * 32,), id="unlisted-fingerprint"),
    ],
)
async def test_an_impostor_endpoint_is_refused(
    env: Env, listed_as: str, fingerprints: tuple[bytes, ...]
) -> None:
    """REQ: H17 — score data never goes to an endpoint that is not the listed peer."""
    await _check(env, listed_as, fingerprints, "PEER_IDENTITY_MISMATCH")


async def test_nothing_listening_is_unavailable(env: Env, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(env.heihe.directory / "node.toml")
    check = EndpointCheck(TrustState("client"), cfg.tls)
    with pytest.raises(UnavailableError) as info:
        await check.check("heihe", f"127.0.0.1:{port}", timeout=2)
    assert info.value.code == "UPSTREAM_UNAVAILABLE"
