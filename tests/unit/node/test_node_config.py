"""Node config: one TOML per node into frozen dataclasses; unknown keys refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.core._config import ConfigError, NodeConfig, load_config, parse_config
from tests.support.config import BASE


def _with(section: str, **values: Any) -> dict[str, Any]:
    data = {k: dict(v) for k, v in BASE.items()}
    data.setdefault(section, {}).update(values)
    return data


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = parse_config(BASE, tmp_path)
    assert isinstance(cfg, NodeConfig)
    assert cfg.database == tmp_path / "node.db"
    assert cfg.tls.cert == tmp_path / "tls/node.pem"
    assert cfg.consent.max_validity_days == 90
    assert cfg.limits.concurrency_for("anyone") == cfg.limits.max_concurrent_per_peer
    with pytest.raises(AttributeError):
        cfg.region = "x"  # type: ignore[misc]


def test_per_peer_limits(tmp_path: Path) -> None:
    data = _with("limits", per_peer_concurrency={"hainan": 3}, per_peer_message_bytes={"x": 10})
    cfg = parse_config(data, tmp_path)
    assert cfg.limits.concurrency_for("hainan") == 3
    assert cfg.limits.message_bytes_for("x") == 10


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({**BASE, "extra": {}}, "extra", id="unknown-section"),
        pytest.param(_with("node", colour="red"), "node.colour", id="unknown-key"),
        pytest.param(_with("node", role="king"), "node.role", id="bad-role"),
        pytest.param(
            _with("consent", max_validity_days=400), "consent.max_validity_days", id="cap"
        ),
        pytest.param(_with("consent", max_validity_days=0), "consent.max_validity_days", id="zero"),
        pytest.param(
            _with("limits", max_message_bytes=True), "limits.max_message_bytes", id="bool"
        ),
        pytest.param(_with("identity", public_keys=["zz"]), "identity.public_keys", id="bad-hex"),
        pytest.param(_with("identity", public_keys=["00"]), "identity.public_keys", id="short-key"),
        pytest.param(_with("peers", allowed="hainan"), "peers.allowed", id="not-a-list"),
        pytest.param(
            _with("limits", per_peer_concurrency={"a": -1}),
            "limits.per_peer_concurrency.a",
            id="negative-peer-limit",
        ),
        pytest.param(_with("listen", peer_workers=0), "listen.peer_workers", id="no-workers"),
        pytest.param(_with("listen", peer_workers=33), "listen.peer_workers", id="too-many"),
        pytest.param(_with("listen", peer_workers="2"), "listen.peer_workers", id="workers-str"),
        pytest.param(
            _with("listen", peer_connection_age_seconds=-1),
            "listen.peer_connection_age_seconds",
            id="age-negative",
        ),
        pytest.param(
            _with("listen", peer_connection_age_seconds="60"),
            "listen.peer_connection_age_seconds",
            id="age-str",
        ),
        pytest.param(
            {**_with("listen", peer_workers=2), "node": {**BASE["node"], "role": "hub"}},
            "listen.peer_workers",
            id="hub-workers",
        ),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path)
    assert info.value.field == field
    assert info.value.code == "INVALID_CONFIG"


def test_missing_region_is_refused(tmp_path: Path) -> None:
    data = {k: dict(v) for k, v in BASE.items()}
    del data["node"]["region"]
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path)
    assert info.value.field == "node.region"


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_peer_workers_default_to_one(tmp_path: Path) -> None:
    """docs/adr/0312: one process unless the operator asks for more."""
    assert parse_config(BASE, tmp_path).listen.peer_workers == 1
    assert parse_config(_with("listen", peer_workers=4), tmp_path).listen.peer_workers == 4


@pytest.mark.parametrize(
    ("listen", "age"),
    [
        ({}, 0),  # one process: connections are never recycled
        ({"peer_workers": 2}, 600),  # workers: spread again every 10 minutes
        ({"peer_workers": 2, "peer_connection_age_seconds": 0}, 0),
        ({"peer_workers": 2, "peer_connection_age_seconds": 30}, 30),
        ({"peer_connection_age_seconds": 45}, 45),
    ],
    ids=["single", "workers-default", "workers-never", "workers-30", "single-45"],
)
def test_peer_connection_age(tmp_path: Path, listen: dict[str, int], age: int) -> None:
    """docs/adr/0312: long-lived peer connections are spread over the workers again."""
    assert parse_config(_with("listen", **listen), tmp_path).listen.peer_connection_age() == age
