"""``[rights] score_objection_days`` and ``repair_decision_days`` (N21, N22; ADR 0509)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli._init import init_region, load_or_create_ca
from node.core._config import MAX_DEADLINE_DAYS, ConfigError, parse_config

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("cfg")
    ca = load_or_create_ca(root / "ca", NOW)
    res = init_region(root / "heihe", "heihe", "heihe", ca, NOW, peers=("hainan",))
    return tomllib.loads(res.config.read_text())


def _rights(data: dict[str, object], **keys: object) -> dict[str, object]:
    out = dict(data)
    out["rights"] = {**dict(data.get("rights", {})), **keys}  # type: ignore[arg-type]
    return out


def test_defaults(base: dict[str, object]) -> None:
    """REQ: N21, N22 — 3 working days for the operator, 5 for a repair decision."""
    rights = parse_config(base, Path("/n")).rights
    assert (rights.score_objection_days, rights.repair_decision_days) == (3, 5)


@pytest.mark.parametrize("key", ["score_objection_days", "repair_decision_days"])
@pytest.mark.parametrize("value", [0, -1, MAX_DEADLINE_DAYS + 1, "3"])
def test_bad_deadlines_refused_naming_the_key(
    base: dict[str, object], key: str, value: object
) -> None:
    """REQ: N21, N22 — a deadline is a positive number of working days, bounded."""
    with pytest.raises(ConfigError) as exc:
        parse_config(_rights(base, **{key: value}), Path("/n"))
    assert exc.value.field == f"rights.{key}"


def test_good_deadlines_load(base: dict[str, object]) -> None:
    rights = parse_config(
        _rights(base, score_objection_days=1, repair_decision_days=MAX_DEADLINE_DAYS), Path("/n")
    ).rights
    assert (rights.score_objection_days, rights.repair_decision_days) == (1, MAX_DEADLINE_DAYS)
