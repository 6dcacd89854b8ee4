"""`huxin init`: a node directory that loads, with 0600 secrets; never overwrites."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import region_of_certificate
from node._cli import main
from node._config import load_config
from node._init import InitError, init_region, load_or_create_ca
from node._secrets import load_secrets

NOW = datetime(2026, 11, 23, tzinfo=UTC)


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
