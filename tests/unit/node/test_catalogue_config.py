"""``[catalogue]`` in node.toml and the operator's application guide file.

Issue 15 §2 (N17): the operator publishes the catalogue with a version, a date and an
application guide; every key is bounded and a bad value or guide stops the node from
starting (named field) rather than being published wrong (H14, N14: a punitive guide
is refused too).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from node.catalogue import Publisher, load_guide
from node.cli._init import init_region, load_or_create_ca
from node.core._config import ConfigError, parse_config
from scoring import load_scheme

NOW = datetime(2026, 11, 23, tzinfo=UTC)
HEIHE = load_scheme("heihe")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("catalogue-cfg")
    ca = load_or_create_ca(root / "ca", NOW)
    res = init_region(root / "heihe", "heihe", "heihe", ca, NOW, peers=("hainan",))
    return tomllib.loads(res.config.read_text()), root / "heihe"


def _config(base: tuple[dict[str, Any], Path], catalogue: dict[str, Any]) -> Any:
    data, directory = base
    return parse_config({**data, "catalogue": catalogue}, directory)


def test_catalogue_section_is_optional_and_read(base: tuple[dict[str, Any], Path]) -> None:
    """N17: without [catalogue] the scheme's version and date are published; with it the
    operator's version, date and guide path (relative to the config's directory)."""
    data, directory = base
    assert parse_config(data, directory).catalogue.version == ""
    cfg = _config(
        base, {"version": "2026.03", "published_on": date(2026, 3, 1), "guide": "guide.toml"}
    ).catalogue
    assert (cfg.version, cfg.published_on, cfg.guide) == (
        "2026.03",
        date(2026, 3, 1),
        directory / "guide.toml",
    )


@pytest.mark.parametrize(
    ("catalogue", "field", "message"),
    [
        pytest.param({"version": "2026 March"}, "catalogue.version",
                     "must be 1-32 letters, digits, '.', '_' or '-' (a version)", id="version-space"),
        pytest.param({"version": "v" * 33}, "catalogue.version",
                     "must be 1-32 letters, digits, '.', '_' or '-' (a version)", id="version-33"),
        pytest.param({"version": 2026}, "catalogue.version", "must be a string",
                     id="version-number"),
        pytest.param({"published_on": "2026-03-01"}, "catalogue.published_on",
                     "must be a date (YYYY-MM-DD)", id="date-as-text"),
        pytest.param({"published_on": datetime(2026, 3, 1, tzinfo=UTC)},
                     "catalogue.published_on", "must be a date (YYYY-MM-DD)", id="date-time"),
        pytest.param({"published_on": date(1999, 12, 31)}, "catalogue.published_on",
                     "must be between 2000-01-01 and 2099-12-31", id="date-too-early"),
        pytest.param({"guide": 7}, "catalogue.guide", "must be a string", id="guide-not-a-path"),
        pytest.param({"editor": "x"}, "catalogue.editor", "unknown key", id="unknown-key"),
    ],
)  # fmt: skip
def test_bad_catalogue_config_is_refused(
    base: tuple[dict[str, Any], Path], catalogue: dict[str, Any], field: str, message: str
) -> None:
    """Issue 15 §2, N17: each [catalogue] key is bounded; a bad one is refused by name."""
    with pytest.raises(ConfigError) as info:
        _config(base, catalogue)
    assert (info.value.field, str(info.value)) == (field, f"{field}: {message}")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(None, "cannot read", id="missing-file"),
        pytest.param(b"intro = ", "is not UTF-8 TOML", id="not-toml"),
        pytest.param(b"\xff\xfe", "is not UTF-8 TOML", id="not-utf8"),
        pytest.param(b"x" * (256 * 1024 + 1), "is larger than 262144 bytes", id="too-large"),
        pytest.param('[scenarios.credit-loans]\nhow_to_apply = "低分不予办理"\n'.encode(),
                     "scenarios.credit-loans.how_to_apply: '不予' reads as a punishment",
                     id="punitive-steps"),
        pytest.param(b'[scenarios.credit-loans]\nphone = "1"\n',
                     "scenarios.credit-loans.phone: is not a field of a guide entry",
                     id="unknown-field"),
    ],
)  # fmt: skip
def test_a_bad_guide_file_is_refused(tmp_path: Path, content: bytes | None, fragment: str) -> None:
    """Issue 15 §2, N17: the guide file is read once, bounded, and refused by name."""
    path = tmp_path / "guide.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_guide(path)
    assert info.value.field == "catalogue.guide"
    assert fragment in str(info.value)


def test_a_guide_for_a_scenario_the_scheme_lacks_stops_the_node(
    base: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """Issue 15 §2, H14: a guide describing 'deny-housing' (no such scenario) is refused
    when the node builds its publisher, i.e. before any port opens."""
    guide = tmp_path / "guide.toml"
    guide.write_text('[scenarios.deny-housing]\nprovider = "住建局"\n', encoding="utf-8")
    config = _config(base, {"guide": str(guide)})
    with pytest.raises(ConfigError) as info:
        Publisher(config, HEIHE)
    assert str(info.value) == (
        "catalogue.guide: scenarios.deny-housing: is not a scenario of heihe@2025.1's catalogue"
    )
