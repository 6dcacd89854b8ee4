"""``[mapping]`` in node.toml and a node that refuses to start with a bad table.

Issue 16 (C3, H13): every key of ``[mapping]`` is bounded and a bad value stops the
config from loading (named field); a table or approval file named there that does not
verify stops ``huxin serve`` with a ConfigError naming the file and the reason code.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keys import KeyPair
from mapping import published_table
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import ConfigError, load_config, parse_config
from node.recognition._approvals import approve_table
from node.rpc._server import NodeServer

NOW = datetime(2026, 11, 23, tzinfo=UTC)
KEY = "ab" * 32


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("mapping-cfg")
    ca = load_or_create_ca(root / "ca", NOW)
    res = init_region(root / "heihe", "heihe", "heihe", ca, NOW, peers=("hainan",))
    return tomllib.loads(res.config.read_text()), root / "heihe"


def _config(base: tuple[dict[str, Any], Path], mapping: dict[str, Any]) -> Any:
    data, directory = base
    return parse_config({**data, "mapping": mapping}, directory)


def test_mapping_section_is_read_with_paths_relative_to_the_config(
    base: tuple[dict[str, Any], Path],
) -> None:
    """REQ: C3 H13 — issue 16: tables and approvals resolve against the config's
    directory; the authorities' keys are raw bytes; the floor stays exact text."""
    cfg = _config(
        base,
        {
            "tables": ["mapping/t.json"],
            "approvals": ["/abs/t.approval"],
            "min_reach": "0.5",
            "authorities": {"national": KEY},
        },
    )
    m = cfg.mapping
    assert m.tables == (base[1] / "mapping/t.json",)
    assert m.approvals == (Path("/abs/t.approval"),)
    assert (m.min_reach, m.authorities) == ("0.5", {"national": bytes.fromhex(KEY)})
    assert _config(base, {}).mapping.tables == ()


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        pytest.param({"tables": [f"t{i}.json" for i in range(65)]}, "mapping.tables", id="too-many-tables"),
        pytest.param({"approvals": [f"a{i}" for i in range(65)]}, "mapping.approvals", id="too-many-approvals"),
        pytest.param({"tables": "t.json"}, "mapping.tables", id="tables-not-a-list"),
        pytest.param({"min_reach": "1.5"}, "mapping.min_reach", id="floor-above-one"),
        pytest.param({"min_reach": "-0.1"}, "mapping.min_reach", id="floor-negative"),
        pytest.param({"min_reach": 0.5}, "mapping.min_reach", id="floor-as-float"),
        pytest.param({"authorities": {"n": "ab"}}, "mapping.authorities.n", id="short-key"),
        pytest.param({"authorities": {"n": "zz" * 32}}, "mapping.authorities.n", id="key-not-hex"),
        pytest.param({"authorities": {"x" * 65: KEY}}, "mapping.authorities." + "x" * 65, id="authority-id-too-long"),
        pytest.param({"authorities": {f"a{i}": KEY for i in range(65)}}, "mapping.authorities", id="too-many-authorities"),
        pytest.param({"autorities": {}}, "mapping.autorities", id="unknown-key"),
    ],
)  # fmt: skip
def test_a_bad_mapping_key_is_refused_naming_it(
    base: tuple[dict[str, Any], Path], mapping: dict[str, Any], field: str
) -> None:
    """REQ: C3 H13 — issue 16: each [mapping] key has a bound; a value outside it is a
    ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        _config(base, mapping)
    assert info.value.field == field


def _node(root: Path, name: str, table: bytes, approval: bytes | None) -> Path:
    ca = load_or_create_ca(root / "ca", NOW)
    directory = root / name
    (directory / "mapping").mkdir(parents=True)
    (directory / "mapping" / "t.json").write_bytes(table)
    section = '\n[mapping]\ntables = ["mapping/t.json"]\n'
    if approval is not None:
        (directory / "mapping" / "t.approval").write_bytes(approval)
        section += 'approvals = ["mapping/t.approval"]\n'
    return init_region(directory, name, "heihe", ca, NOW, extra_toml=section).config


def _tampered() -> bytes:
    doc = json.loads(published_table("heihe", "hainan").to_json_bytes())
    doc["content"]["grades"]["B"] = "A"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("case", "reason", "key"),
    [
        pytest.param("tampered", "HASH_MISMATCH", "mapping.tables", id="tampered-table"),
        pytest.param("unknown-authority", "UNKNOWN_KEY", "mapping.approvals", id="approval-by-unknown-authority"),
    ],
)  # fmt: skip
async def test_a_node_with_a_bad_configured_table_does_not_start(
    tmp_path: Path, case: str, reason: str, key: str
) -> None:
    """REQ: C3 H13 — issue 16: a table in [mapping] whose hash does not hold, or an
    approval signed by no authority of the node, stops the node at start: ConfigError
    naming the file and the code, in-process and through `huxin serve` (exit 2)."""
    table = published_table("heihe", "hainan")
    if case == "tampered":
        config = _node(tmp_path, "heihe", _tampered(), None)
        named = "t.json"
    else:
        approval = approve_table(
            table,
            KeyPair.generate(),
            authority="stranger",
            decision="approved",
            issued_at=int(NOW.timestamp()),
        ).to_bytes()
        config = _node(tmp_path, "heihe", table.to_json_bytes(), approval)
        named = "t.approval"
    with pytest.raises(ConfigError) as info:
        await NodeServer.create(load_config(config))
    assert info.value.field == key
    assert named in str(info.value) and reason in str(info.value)


def test_huxin_serve_refuses_to_start_with_a_tampered_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: C3 H13 — issue 16: `huxin serve` with a tampered [mapping] table exits 2 with
    one error line naming the file and HASH_MISMATCH; nothing is served."""
    config = _node(tmp_path, "heihe", _tampered(), None)
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: INVALID_CONFIG: mapping.tables:")
    assert "t.json" in err and "HASH_MISMATCH" in err
