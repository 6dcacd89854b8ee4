"""The published incentive catalogue: served signed, fetched and verified by a peer.

Issue 15 §2 (N17: the operator publishes the catalogue and an application guide with a
date and a version; peers can fetch it; H12: what each scenario discloses; H14, N14:
incentives only; N16: Hainan's tiers are illustrative).

A federation laid out by ``init_federation`` (one CA, a hub-signed trust list listing
Heihe and Hainan with their key sets and endpoints); Heihe serves in-process on its
listed port with real mutual TLS and SQLite; ``huxin catalogue fetch`` runs with
Hainan's config and certificate in a thread with its own event loop, as ``huxin``
would in its own process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from keys import CertificateAuthority, KeySet, load_trust, open_catalogue
from node.cli._init import init_region
from node.core._config import ConfigError, load_config
from node.demo._federation import FederationLayout, init_federation
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import citizen_channel, peer_channel
from node.rpc._server import NodeServer
from tests.support.processes import huxin_here

pytestmark = pytest.mark.asyncio(loop_scope="module")

HUB, HEIHE, HAINAN, BANK = "heilongjiang", "heihe", "hainan", "hainan.bank"
GUIDE = """\
intro = "黑河市营商环境建设监督局 2026 年 3 月发布"
[scenarios.credit-loans]
provider = "黑河农村商业银行"
how_to_apply = "在达子香分小程序授权后，到黑河农村商业银行任一网点办理。"
"""


@dataclass
class World:
    layout: FederationLayout
    server: NodeServer
    ca_pem: bytes

    def config(self, node: str) -> Path:
        return self.layout.nodes[node].config

    def heihe_keys(self) -> KeySet:
        key = bytes.fromhex(self.layout.hub_key_file(HUB).read_text().strip())
        trust = load_trust(self.layout.bundle(HUB).read_bytes(), key, datetime.now(UTC))
        return trust.regions[HEIHE].keys


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("catalogue")
    layout = init_federation(
        root, [HEIHE, HAINAN], HUB, datetime.now(UTC), clients=[BANK], push_interval=0.0
    )
    heihe = layout.nodes[HEIHE]
    (heihe.directory / "guide.toml").write_text(GUIDE, encoding="utf-8")
    with heihe.config.open("a", encoding="utf-8") as f:
        f.write('\n[catalogue]\nversion = "2026.03"\npublished_on = 2026-03-01\n')
        f.write('guide = "guide.toml"\n')
    server = await NodeServer.create(load_config(heihe.config))
    await server.start()
    try:
        yield World(layout, server, (root / "ca" / "ca.pem").read_bytes())
    finally:
        await server.stop(1.0)


async def test_peer_fetches_verifies_and_writes_the_signed_catalogue(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """N17: Hainan fetches Heihe's catalogue over mutual TLS, verifies it against Heihe's
    key set from the trust list, prints it (version, date, every scenario with its tier
    and disclosure, the operator's guide) and writes the envelope as received."""
    out_file = tmp_path / "heihe.catalogue"
    code, out, err = await asyncio.to_thread(huxin_here, "catalogue", "fetch", "--config", str(world.config(HAINAN)),
        "--peer", HEIHE, "--out", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("heihe@2025.1 incentive catalogue 2026.03, published 2026-03-01 by heihe")
    assert "ILLUSTRATIVE" not in out
    assert "heihe/credit-loans  tier >= A (SSS SS S AAA AA A)  discloses: grade_and_score" in out
    assert "heihe/hotel-late-checkout  tier >= A (SSS SS S AAA AA A)  discloses: threshold" in out
    assert "provider: 黑河农村商业银行" in out
    assert "verified: signed by heihe's key" in out
    assert "the hub's scenario catalogue (what verifiers trust, docs/adr/0516): agrees" in out
    opened = open_catalogue(out_file.read_bytes(), world.heihe_keys(), datetime.now(UTC))
    cat = opened.catalogue
    assert (cat.region, cat.version, cat.published_on) == (HEIHE, "2026.03", "2026-03-01")
    assert len(cat.scenarios) == 19
    assert {s.min_grade for s in cat.scenarios} == {"A"}


async def test_fetch_as_json_names_the_signing_key(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """N17: ``--json`` gives the verified catalogue and the key that signed it."""
    code, out, err = await asyncio.to_thread(huxin_here, "catalogue", "fetch", "--config", str(world.config(HAINAN)), "--peer", HEIHE,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["signed_by"] == world.server.ctx.secrets.signing.key_id
    assert doc["hub_disagreements"] == []
    loans = next(s for s in doc["scenarios"] if s["id"] == "credit-loans")
    assert (loans["ref"], loans["disclosure"], loans["provider"]) == (
        "heihe/credit-loans",
        "grade_and_score",
        "黑河农村商业银行",
    )


@pytest.mark.parametrize(
    ("peer", "code", "reason"),
    [
        pytest.param("fuzhou", 2, "PEER_NOT_TRUSTED", id="region-not-in-the-trust-list"),
        pytest.param(HAINAN, 1, "UNAVAILABLE", id="listed-region-not-serving"),
    ],
)
async def test_fetch_refusals_write_nothing(
    world: World,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    peer: str,
    code: int,
    reason: str,
) -> None:
    """N17, H17: only a domestic region of the trust list is asked; a failure writes no file."""
    out_file = tmp_path / "x.catalogue"
    got, _out, err = await asyncio.to_thread(huxin_here, "catalogue", "fetch", "--config", str(world.config(HAINAN)), "--peer", peer,
        "--out", str(out_file),
    )  # fmt: skip
    assert (got, err.split(":")[:2]) == (code, ["error", f" {reason}"])
    assert not out_file.exists()


async def test_a_standalone_node_has_no_trust_material_to_fetch_with(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """N17: verification needs the trust list; a standalone node is told so."""
    ca = CertificateAuthority.load(world.ca_pem, (world.layout.root / "ca" / "ca.key").read_bytes())
    res = init_region(tmp_path / "fuzhou", "fuzhou", "fuzhou", ca, datetime.now(UTC))
    got, _out, err = await asyncio.to_thread(
        huxin_here, "catalogue", "fetch", "--config", str(res.config), "--peer", HEIHE
    )
    assert got == 2
    assert err.startswith("error: NOT_FEDERATED: ")


async def test_any_ca_certificate_reads_the_signed_catalogue(world: World) -> None:
    """N17, ADR 0415: the signed catalogue is public trust material: an integrator of
    another region (refused on every other peer method here) reads it, and it verifies."""
    cert, key = world.layout.clients[BANK]
    channel = peer_channel(
        world.layout.nodes[HEIHE].peer, world.ca_pem, cert.read_bytes(), key.read_bytes()
    )
    try:
        stub = node_pb2_grpc.PeerServiceStub(channel)
        env = await stub.GetSignedCatalogue(node_pb2.GetIncentiveCatalogueRequest(), timeout=15)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListSchemes(node_pb2.ListSchemesRequest(), timeout=15)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close(None)
    assert open_catalogue(env, world.heihe_keys(), datetime.now(UTC)).catalogue.region == HEIHE


async def test_citizen_catalogue_carries_version_date_guide_and_the_signed_copy(
    world: World,
) -> None:
    """N17, H12: GetIncentiveCatalogue (no identity needed) gives the version, the date, the
    guide and, per scenario, what the relying party sees; its signed copy is the same
    catalogue the peers fetch."""
    channel = citizen_channel(f"127.0.0.1:{world.layout.nodes[HEIHE].citizen_port}", world.ca_pem)
    try:
        stub = node_pb2_grpc.CitizenServiceStub(channel)
        cat = await stub.GetIncentiveCatalogue(node_pb2.GetIncentiveCatalogueRequest(), timeout=15)
    finally:
        await channel.close(None)
    assert (cat.catalogue_version, cat.published_on) == ("2026.03", "2026-03-01")
    assert cat.guide_intro.startswith("黑河市营商环境建设监督局")
    entries = {e.id: e for e in cat.entries}
    assert (entries["credit-loans"].disclosure, entries["credit-loans"].provider) == (
        "grade_and_score",
        "黑河农村商业银行",
    )
    assert "不见等级和分数" in entries["hotel-late-checkout"].relying_party_sees
    signed = open_catalogue(cat.signed_catalogue, world.heihe_keys(), datetime.now(UTC))
    assert [s.id for s in signed.catalogue.scenarios] == list(entries)


async def test_show_prints_the_nodes_catalogue_and_marks_illustrative_tiers(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """N17, N16: ``catalogue show`` prints the operator's publication with tiers and
    disclosure; Hainan's tiers are marked illustrative, Heihe's are not."""
    code, out, err = await asyncio.to_thread(
        huxin_here, "catalogue", "show", "--config", str(world.config(HEIHE))
    )
    assert code == 0, err
    assert out.startswith("heihe@2025.1 incentive catalogue 2026.03, published 2026-03-01")
    assert "ILLUSTRATIVE" not in out
    code, out, err = await asyncio.to_thread(
        huxin_here, "catalogue", "show", "--config", str(world.config(HAINAN))
    )
    assert code == 0, err
    assert out.splitlines()[1].startswith("ILLUSTRATIVE: the source publishes no tiers")
    assert (
        "hainan/bank-credit  tier >= AA (AAA AA)  discloses: threshold  [illustrative tier]" in out
    )


async def test_a_guide_that_does_not_fit_the_scheme_stops_the_node(tmp_path: Path) -> None:
    """Issue 15 §2, H14: a guide describing a scenario the scheme does not have (here a
    punitive one) is refused before any port opens, naming the key."""
    from node.cli._init import load_or_create_ca

    ca = load_or_create_ca(tmp_path / "ca", datetime.now(UTC))
    res = init_region(tmp_path / "heihe", HEIHE, HEIHE, ca, datetime.now(UTC))
    (tmp_path / "heihe" / "guide.toml").write_text(
        '[scenarios.housing-check]\nprovider = "住建局"\n', encoding="utf-8"
    )
    with res.config.open("a", encoding="utf-8") as f:
        f.write('\n[catalogue]\nguide = "guide.toml"\n')
    server = await NodeServer.create(load_config(res.config))
    try:
        with pytest.raises(ConfigError) as info:
            await server.start()
    finally:
        await server.stop(0)
    assert info.value.field == "catalogue.guide"
    assert server.ports is None
