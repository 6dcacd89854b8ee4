"""Addresses, ids and cross-limits in a node config and in ``huxin init region``.

Each is checked when the config is read, because the alternative is silent harm:
``peer = "127.0.0.1:99999"`` would serve on port 34463 (modulo 65536);
``--peers 'a b,,c'`` would write ``allowed = ["a b", "c"]``; ``default_max_uses =
5000`` would load and then fail every default consent grant, blaming the citizen.

REQ: C1 (a node that listens where its config says), H5 (a citizen's default
grant must work), H17 (peers and sources are the certificate identities the
allow-lists name).
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys._ca import _REGION_RE
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import ID_PATTERN, MAX_USES_CAP, ConfigError, load_config, parse_config
from tests.support.processes import huxin

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("cfg")
    ca = load_or_create_ca(root / "ca", NOW)
    res = init_region(root / "heihe", "heihe", "heihe", ca, NOW, peers=("hainan",))
    return tomllib.loads(res.config.read_text())


def _with(data: dict[str, object], section: str, key: str, value: object) -> dict[str, object]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    table = out.setdefault(section, {})
    assert isinstance(table, dict)
    table[key] = value
    return out


_HUB_KEY = "11" * 32


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        pytest.param("listen", "peer", "127.0.0.1:99999", "listen.peer", id="port-over-65535"),
        pytest.param("listen", "peer", "127.0.0.1:65536", "listen.peer", id="port-65536"),
        pytest.param("listen", "peer", "127.0.0.1:-1", "listen.peer", id="negative-port"),
        pytest.param("listen", "citizen", "bad", "listen.citizen", id="no-port"),
        pytest.param("listen", "citizen", "127.0.0.1:7x", "listen.citizen", id="port-not-digits"),
        pytest.param("listen", "citizen", ":7444", "listen.citizen", id="no-host"),
        pytest.param("listen", "metrics", "localhost:", "listen.metrics", id="metrics-empty-port"),
        pytest.param("listen", "metrics", "127.0.0.1:٣", "listen.metrics", id="non-ascii-digit"),
        pytest.param("listen", "peer", "[::1:7443", "listen.peer", id="unclosed-v6-bracket"),
        pytest.param("listen", "peer", "my host:7443", "listen.peer", id="space-in-host"),
        pytest.param("hub", "endpoint", "127.0.0.1:0", "hub.endpoint", id="hub-port-0"),
        pytest.param("hub", "endpoint", "hub.example", "hub.endpoint", id="hub-no-port"),
        pytest.param("node", "region", "Heihe", "node.region", id="region-upper-case"),
        pytest.param("node", "region", "hei he", "node.region", id="region-space"),
        pytest.param("peers", "allowed", ["hainan", "a b"], "peers.allowed", id="peer-id-space"),
        pytest.param("peers", "allowed", [""], "peers.allowed", id="peer-id-empty"),
        pytest.param("sources", "allowed", ["heihe court"], "sources.allowed", id="source-space"),
        pytest.param("sources", "allowed", ["-court"], "sources.allowed", id="source-leading-dash"),
        # issue 19: an operator is a client of this region, which the
        # client registry checks; another region's id or a bare name would skip it
        pytest.param(
            "operators", "allowed", ["zhejiang.ops"], "operators.allowed", id="operator-foreign"
        ),
        pytest.param("operators", "allowed", ["ops"], "operators.allowed", id="operator-bare"),
        pytest.param(
            "operators",
            "allowed",
            ["heihe.ops", "heihe"],
            "operators.allowed",
            id="operator-region",
        ),
        pytest.param(
            "operators", "allowed", ["heiheops.x"], "operators.allowed", id="operator-lookalike"
        ),
        pytest.param(
            "consent",
            "default_max_uses",
            MAX_USES_CAP + 1,
            "consent.default_max_uses",
            id="default-uses-over-cap",
        ),
        pytest.param(
            "consent", "default_max_uses", 5000, "consent.default_max_uses", id="review-5000"
        ),
        # issue 14 item 8: the per-citizen consent limits have bounds of their own
        pytest.param(
            "consent", "grants_per_hour", 0, "consent.grants_per_hour", id="grants-per-hour-0"
        ),
        pytest.param(
            "consent", "grants_per_hour", 3601, "consent.grants_per_hour", id="grants-per-hour-cap"
        ),
        pytest.param("consent", "grant_burst", 31, "consent.grant_burst", id="burst-over-hourly"),
        pytest.param("consent", "grant_burst", 0, "consent.grant_burst", id="burst-0"),
        pytest.param(
            "consent", "max_active_consents", 0, "consent.max_active_consents", id="active-0"
        ),
        pytest.param(
            "consent",
            "max_active_consents",
            10_001,
            "consent.max_active_consents",
            id="active-over-cap",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    base_config: dict[str, object], section: str, key: str, value: object, field: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_with(base_config, section, key, value), Path("/n"))
    assert (exc.value.code, exc.value.field) == ("INVALID_CONFIG", field)
    assert str(exc.value).startswith(f"{field}: ")


def test_a_bad_federation_hub_endpoint_is_refused(base_config: dict[str, object]) -> None:
    data = {k: v for k, v in base_config.items() if k != "peers"}
    data["federation"] = {"hub": "heilongjiang", "hub_key": _HUB_KEY, "hub_endpoint": "hub:70000"}
    with pytest.raises(ConfigError) as exc:
        parse_config(data, Path("/n"))
    assert exc.value.field == "federation.hub_endpoint"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        pytest.param("listen", "peer", "127.0.0.1:0", id="port-0-any"),
        pytest.param("listen", "peer", "0.0.0.0:65535", id="port-65535"),
        pytest.param("listen", "citizen", "[::1]:7444", id="ipv6"),
        pytest.param("listen", "citizen", "node.example.cn:7444", id="dns-name"),
        pytest.param("listen", "metrics", "", id="metrics-off"),
        pytest.param("hub", "endpoint", "127.0.0.1:7443", id="hub-endpoint"),
        pytest.param("sources", "allowed", ["heihe.court", "heihe.bank_2"], id="source-ids"),
        pytest.param("consent", "default_max_uses", MAX_USES_CAP, id="default-uses-at-cap"),
        pytest.param("consent", "grant_burst", 30, id="burst-equal-to-hourly"),
        pytest.param("consent", "max_active_consents", 10_000, id="active-at-cap"),
    ],
)
def test_good_values_load(
    base_config: dict[str, object], section: str, key: str, value: object
) -> None:
    config = parse_config(_with(base_config, section, key, value), Path("/n"))
    assert config.region == "heihe"


def test_the_patterns_are_the_ones_the_node_enforces() -> None:
    # (the consent service imports MAX_USES_CAP from node.core._config: one constant)
    assert ID_PATTERN.pattern == _REGION_RE.pattern  # the certificates' region pattern


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        pytest.param("--peers", "a b,,c", id="peer-with-space"),
        pytest.param("--sources", "heihe.court,Heihe.Bank", id="source-upper-case"),
        pytest.param("--region", "hei he", id="region-space"),
        pytest.param("--peer-listen", "bad", id="peer-listen-no-port"),
        pytest.param("--citizen-listen", "127.0.0.1:99999", id="citizen-listen-port"),
        pytest.param("--metrics-listen", "127.0.0.1:70000", id="metrics-listen-port"),
    ],
)
def test_init_region_refuses_bad_ids_and_addresses_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    args = {"--region": "heihe", flag: value}
    argv = ["init", "region", "--scheme", "heihe", "--out", str(tmp_path / "n")]
    for k, v in args.items():
        argv += [k, v]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: INVALID_ARGUMENT: {flag}: "), err
    assert list(tmp_path.iterdir()) == []  # neither the node directory nor a CA


def test_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    """As a process: a port out of range is refused, not served modulo 65536 (34463)."""
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    res = init_region(tmp_path / "heihe", "heihe", "heihe", ca, NOW)
    res.config.write_text(
        re.sub(r'peer = "[^"]*"', 'peer = "127.0.0.1:99999"', res.config.read_text(), count=1)
    )
    proc = huxin("serve", "--config", str(res.config), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "error: INVALID_CONFIG: listen.peer: port 99999 is not in 0..65535\n"
    with pytest.raises(ConfigError):
        load_config(res.config)


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        pytest.param("consent", "default_max_uses", "10", "must be an integer", id="int"),
        pytest.param("listen", "peer", 7443, "must be a string", id="str"),
        pytest.param("node", "grace_seconds", "10", "must be a number", id="float"),
    ],
)
def test_type_errors_read_as_english(
    base_config: dict[str, object], section: str, key: str, value: object, words: str
) -> None:
    """Type errors name the type in plain English ("an integer", not "a int")."""
    with pytest.raises(ConfigError) as exc:
        parse_config(_with(base_config, section, key, value), Path("/n"))
    assert str(exc.value) == f"{section}.{key}: {words}"
