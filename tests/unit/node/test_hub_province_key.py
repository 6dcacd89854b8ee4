"""A hub holds nothing that computes or reverses a province pseudonym (issue 14 item 2).

``huxin init federation`` generates one province key per province and writes it
into that province's regions only; a hub's config may not name one, and a hub
whose directory holds one refuses to start.  The search of a real hub's files
and database is ``tests/integration/test_hub_privacy.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli._main import main
from node.core._config import ConfigError, load_config
from node.demo._federation import init_federation
from node.hub._role import refuse_province_key

NOW = datetime(2026, 11, 23, tzinfo=UTC)
HUB, HUB2 = "heilongjiang", "hainan-hub"


def test_init_federation_writes_no_province_key_under_the_hub_directory(tmp_path: Path) -> None:
    """REQ: H13 H2 — issue 14 item 2: every region of a province gets the same key, the
    other province another one, and no file under a hub's directory holds either key
    (nor does its config name one)."""
    layout = init_federation(
        tmp_path / "fed",
        ["heihe", "yichun", "hainan"],
        HUB,
        NOW,
        schemes={"yichun": "heihe"},
        hub_peers=[f"{HUB2}=hainan"],
    )
    keys = {
        r: (layout.nodes[r].directory / "keys" / "province.key").read_text().strip()
        for r in ("heihe", "yichun", "hainan")
    }
    assert keys["heihe"] == keys["yichun"] != keys["hainan"]
    secrets = {bytes.fromhex(k) for k in keys.values()}
    for hub in (HUB, HUB2):
        directory = layout.nodes[hub].directory
        files = [p for p in directory.rglob("*") if p.is_file()]
        assert files and not [p for p in files if p.name == "province.key"]
        for p in files:
            raw = p.read_bytes()
            for key in secrets:  # neither the raw bytes nor the hex text
                assert key not in raw and key.hex().encode() not in raw, p
        cfg = load_config(layout.nodes[hub].config)
        assert cfg.role == "hub" and cfg.hub.province_key is None
        assert "province" not in layout.nodes[hub].config.read_text()
    for region in ("heihe", "yichun", "hainan"):
        assert load_config(layout.nodes[region].config).hub.province_key is not None


@pytest.mark.parametrize(
    ("where", "configured"),
    [
        pytest.param("config", True, id="hub-config-names-a-province-key"),
        pytest.param("keys/province.key", False, id="province-key-file-next-to-the-hub-keys"),
        pytest.param("province.key", False, id="province-key-file-next-to-the-hub-database"),
    ],
)
def test_a_hub_holding_a_province_key_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, configured: bool
) -> None:
    """REQ: H13 — issue 14 item 2, fail closed: a hub configured with a province key, or
    with one lying in its directory, refuses to load / start (INVALID_CONFIG naming
    ``hub.province_key``), before it serves anything."""
    layout = init_federation(tmp_path / "fed", ["heihe"], HUB, NOW)
    hub = layout.nodes[HUB]
    region_key = layout.nodes["heihe"].directory / "keys" / "province.key"
    if configured:
        hub.config.write_text(
            hub.config.read_text().replace("[hub]\n", f'[hub]\nprovince_key = "{region_key}"\n', 1)
        )
        with pytest.raises(ConfigError) as info:
            load_config(hub.config)
    else:
        (hub.directory / where).write_text(region_key.read_text())
        with pytest.raises(ConfigError) as info:
            refuse_province_key(load_config(hub.config))
    assert info.value.field == "hub.province_key"
    assert "must not hold the province key" in str(info.value)
    # and `huxin serve` says so in one error line (exit 2), nothing served
    assert main(["serve", "--config", str(hub.config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: INVALID_CONFIG: hub.province_key:"), err
    assert not (hub.directory / "ready.json").exists()


def test_a_region_still_loads_its_province_key(tmp_path: Path) -> None:
    """REQ: H13 — the regions keep pushing under the province pseudonym."""
    layout = init_federation(tmp_path / "fed", ["heihe"], HUB, NOW)
    cfg = load_config(layout.nodes["heihe"].config)
    refuse_province_key(cfg)  # only a hub is refused
    assert cfg.hub.province_key == layout.nodes["heihe"].directory / "keys" / "province.key"
