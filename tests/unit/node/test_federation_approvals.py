"""The demo federation's national authority approves the published heihe<->hainan tables
(批准, H13); the hub vouches for them in its bundle.

Issue 16 (H13: tables are used once approved or filed with an authority; C3: the offline
verifier's bundle carries the hub-signed approved list, and each region's config names
the table and approval files it maps with).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import VerificationError, load_trust, open_approval
from mapping import published_table, table_from_document
from node.core._config import load_config
from node.demo._federation import FederationLayout, init_federation

NOW = datetime(2026, 11, 1, tzinfo=UTC)
HUB = "heilongjiang"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed") / "fed", ["heihe", "hainan"], HUB, NOW, base_port=17600
    )


def _sha(source: str, target: str) -> bytes:
    return bytes.fromhex(published_table(source, target).content_hash.removeprefix("sha256:"))


def test_the_bundle_carries_the_nationally_approved_tables(layout: FederationLayout) -> None:
    """Issue 16, H13: trust/<hub>.bundle approves exactly heihe->hainan and hainan->heihe,
    tables between provinces, so by the national authority (not the hub), in force now,
    with their reach."""
    hub_key = bytes.fromhex(layout.hub_key_file(HUB).read_text().strip())
    trust = load_trust(layout.bundle(HUB).read_bytes(), hub_key, NOW)
    assert trust.approvals is not None
    assert {bytes(a.mapping_sha256) for a in trust.approvals.approvals} == {
        _sha("heihe", "hainan"),
        _sha("hainan", "heihe"),
    }
    for a in trust.approvals.approvals:
        assert (a.authority, a.decision) == ("national", "approved")
        assert a.effective_from <= NOW.timestamp() and a.expires == 0
        assert 0 < a.reach_ppm <= 1_000_000


@pytest.mark.parametrize("region", ["heihe", "hainan"])
def test_each_region_gets_table_and_approval_files_named_in_its_config(
    layout: FederationLayout, region: str
) -> None:
    """Issue 16, H13: mapping/<id>.json and mapping/<id>.approval in the node directory,
    named by [mapping] in its TOML; each approval opens under the national key that
    [mapping.authorities] names, not under the hub key."""
    node = layout.nodes[region]
    cfg = load_config(node.config)
    assert cfg.federation is not None
    names = sorted(p.name for p in cfg.mapping.tables)
    assert names == ["hainan-heihe-anchored.json", "heihe-hainan-anchored.json"]
    assert sorted(p.name for p in cfg.mapping.approvals) == [
        n.replace(".json", ".approval") for n in names
    ]
    for table_path, approval_path in zip(
        sorted(cfg.mapping.tables), sorted(cfg.mapping.approvals), strict=True
    ):
        assert table_path.parent == node.directory / "mapping"
        table = table_from_document(table_path.read_bytes())
        assert set(cfg.mapping.authorities) == {"national"}
        approval = open_approval(approval_path.read_bytes(), dict(cfg.mapping.authorities))
        with pytest.raises(VerificationError) as err:
            open_approval(approval_path.read_bytes(), {cfg.federation.hub: cfg.federation.hub_key})
        assert err.value.code == "UNKNOWN_KEY"
        assert approval.mapping_sha256.hex() == table.content_hash.removeprefix("sha256:")
        assert approval.mapping_id == table.id


def test_the_hub_directory_gets_no_mapping_files(layout: FederationLayout) -> None:
    """Issue 16, C3: the hub maps no grades; only regions carry tables."""
    hub = layout.nodes[HUB]
    assert not (hub.directory / "mapping").exists()
    assert load_config(hub.config).mapping.tables == ()


def test_a_single_scheme_federation_approves_nothing(tmp_path: Path) -> None:
    """Issue 16, H13: two regions of one scheme need no table; the list is empty, not absent
    (a mapped grade there would still be refused)."""
    layout = init_federation(
        tmp_path / "fed", ["heihe", "heihe2"], HUB, NOW, schemes={"heihe2": "heihe"},
        base_port=17650,
    )  # fmt: skip
    hub_key = bytes.fromhex(layout.hub_key_file(HUB).read_text().strip())
    trust = load_trust(layout.bundle(HUB).read_bytes(), hub_key, NOW)
    assert trust.approvals is not None and trust.approvals.approvals == ()
    assert load_config(layout.nodes["heihe2"].config).mapping.tables == ()
