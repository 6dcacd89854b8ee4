"""`huxin init`: a node directory that loads, with 0600 secrets; never overwrites."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import region_of_certificate
from node.cli._init import InitError, init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import load_config
from node.core._secrets import load_secrets

NOW = datetime(2026, 11, 23, tzinfo=UTC)
REGIONS = ("heihe", "hainan")


def test_init_writes_a_loadable_node(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    res = init_region(tmp_path / "heihe", "heihe", "heihe", ca, NOW, peers=("hainan",))
    cfg = load_config(res.config)
    assert (cfg.region, cfg.scheme, cfg.peers) == ("heihe", "heihe", ("hainan",))
    secrets = load_secrets(cfg)
    assert region_of_certificate(secrets.tls_cert) == "heihe"
    assert secrets.key_set.find(secrets.signing.key_id) is not None
    for name in ("keys/root.key", "keys/signing.key", "keys/storage.secret", "tls/node.key"):
        mode = stat.S_IMODE((tmp_path / "heihe" / name).stat().st_mode)
        assert mode == 0o600, name
    # the same CA is reused for the next node
    assert load_or_create_ca(tmp_path / "ca", NOW).cert_pem == ca.cert_pem


@pytest.mark.parametrize(
    ("region", "scheme", "code"),
    [pytest.param("heihe", "nowhere", "UNKNOWN_SCHEME", id="scheme")],
)
def test_init_refusals(tmp_path: Path, region: str, scheme: str, code: str) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    with pytest.raises(InitError) as info:
        init_region(tmp_path / "x", region, scheme, ca, NOW)
    assert info.value.code == code


def test_init_never_overwrites(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    init_region(tmp_path / "n", "heihe", "heihe", ca, NOW)
    with pytest.raises(InitError) as info:
        init_region(tmp_path / "n", "heihe", "heihe", ca, NOW)
    assert info.value.code == "INIT_EXISTS"


def test_cli_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "init",
            "region",
            "--region",
            "hainan",
            "--scheme",
            "hainan",
            "--out",
            str(tmp_path / "hn"),
            "--sources",
            "court",
            "--source-certs",
            "--json",
        ]
    )
    assert rc == 0
    assert (tmp_path / "ca" / "ca.pem").exists()
    assert (tmp_path / "hn" / "clients" / "court.pem").exists()
    assert (
        main(
            [
                "init",
                "region",
                "--region",
                "hainan",
                "--scheme",
                "hainan",
                "--out",
                str(tmp_path / "hn"),
            ]
        )
        == 2
    )
    assert "INIT_EXISTS" in capsys.readouterr().err


# ---------------------------------------------------------------- init federation


def test_init_federation_lays_out_hub_regions_and_trust_list(tmp_path: Path) -> None:
    """REQ: H17 N20 — one CA; the hub's signed list names every region; regions pin the hub."""
    from keys import load_trust
    from node.demo._federation import FederationLayout, init_federation

    layout = init_federation(
        tmp_path / "fed",
        ["heihe", "hainan"],
        "heilongjiang",
        NOW,
        clients=["hainan.bank"],
        sources=["court"],
        base_port=17500,
    )
    again = FederationLayout.read(tmp_path / "fed")
    assert again.nodes == layout.nodes and set(again.clients) == {
        "hainan.bank",
        "heihe.court",
        "hainan.court",
    }
    assert [n.peer_port for n in layout.nodes.values()] == [17500, 17502, 17504]
    hub_cfg = load_config(layout.nodes["heilongjiang"].config)
    assert hub_cfg.role == "hub" and hub_cfg.hub.endpoint == "127.0.0.1:17500"
    for region in ("heihe", "hainan"):
        cfg = load_config(layout.nodes[region].config)
        assert cfg.role == "region" and cfg.peers == ()
        assert cfg.federation is not None and cfg.hub.province_key is not None
        assert cfg.federation.hub == "heilongjiang"
        assert cfg.federation.hub_endpoint == "127.0.0.1:17500"
        assert cfg.sources == (f"{region}.court",)
        load_secrets(cfg)  # keys and certificates load
        trust = load_trust(cfg.federation.trust_list.read_bytes(), cfg.federation.hub_key, NOW)
        assert trust.version == 1 and {"heihe", "hainan", "heilongjiang"} <= set(trust.regions)
        assert trust.regions[region].endpoints[0] == layout.nodes[region].peer
        assert trust.regions[region].schemes == {f"{cfg.scheme}@2025.1"}
    # The hub signs with its root key: the key pinned by every region.
    hub_secrets = load_secrets(hub_cfg)
    assert layout.hub_key_file("heilongjiang").read_text().strip() == (
        hub_secrets.root.public_key.hex()
    )
    province = {(layout.nodes[r].directory / "keys/province.key").read_text() for r in REGIONS}
    assert len(province) == 1  # one province: one province key, held by its regions only
    assert not (layout.nodes["heilongjiang"].directory / "keys/province.key").exists()


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        pytest.param({"regions": []}, "INVALID_ARGUMENT", id="no-regions"),
        pytest.param({"regions": ["heihe", "heihe"]}, "INVALID_ARGUMENT", id="duplicate"),
        pytest.param({"regions": ["nowhere"]}, "UNKNOWN_SCHEME", id="scheme"),
        pytest.param({"hub": "heihe"}, "INVALID_ARGUMENT", id="hub-is-a-region"),
        pytest.param({"hub_peers": ["hh"]}, "INVALID_ARGUMENT", id="hub-peers-syntax"),
        pytest.param({"hub_peers": ["hh=fuzhou"]}, "INVALID_ARGUMENT", id="hub-peers-unknown"),
    ],
)
def test_init_federation_refusals(tmp_path: Path, kw: dict[str, object], code: str) -> None:
    from node.demo._federation import init_federation

    args: dict[str, object] = {"regions": ["heihe", "hainan"], "hub": "heilongjiang"}
    args.update(kw)
    with pytest.raises(InitError) as info:
        init_federation(
            tmp_path / "fed",
            args["regions"],  # type: ignore[arg-type]
            str(args["hub"]),
            NOW,
            hub_peers=args.get("hub_peers", ()),  # type: ignore[arg-type]
        )
    assert info.value.code == code


def test_cli_init_federation_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "fed")
    args = ["init", "federation", "--regions", "heihe,hainan", "--hub", "heilongjiang",
            "--hub-peers", "hainan-hub=hainan", "--clients", "hainan.bank", "--out", out]  # fmt: skip
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {n["id"]: n["hub"] for n in doc["nodes"]} == {
        "heilongjiang": "heilongjiang",
        "hainan-hub": "hainan-hub",
        "heihe": "heilongjiang",
        "hainan": "hainan-hub",
    }
    assert main(args) == 2
    assert "INIT_EXISTS" in capsys.readouterr().err
    # status of a node that never ran: no database yet
    assert main(["status", "--config", f"{out}/heihe/node.toml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == "DB_NOT_FOUND"
    # status of the hub (its registry was written at init)
    assert main(["status", "--config", f"{out}/heilongjiang/node.toml"]) == 0
    text = capsys.readouterr().out
    assert "node heilongjiang (role hub" in text and "heihe" in text
