"""The committed published tables are exactly what tools/gen_tables.py produces."""

from __future__ import annotations

from pathlib import Path

from mapping import build_published, published_tables
from tools import gen_tables


def test_committed_tables_do_not_drift() -> None:
    """Fails when a scheme file or the anchored method changes without regenerating."""
    assert gen_tables.drift() == [], "run: python tools/gen_tables.py"


def test_drift_is_detected(tmp_path: Path) -> None:
    gen_tables.write(tmp_path)
    assert gen_tables.drift(tmp_path) == []
    victim = sorted(tmp_path.glob("*.json"))[0]
    victim.write_bytes(victim.read_bytes().replace(b'"version": "1"', b'"version": "2"', 1))
    (tmp_path / "stale.json").write_text("{}")
    problems = gen_tables.drift(tmp_path)
    assert any(victim.name in p for p in problems)
    assert any("stale.json" in p for p in problems)


def test_twelve_tables_all_anchored_and_unsigned() -> None:
    tables = published_tables()
    assert len(tables) == 12 == len(build_published())
    assert {t.method.value for t in tables} == {"anchored"}
    assert all(t.signatures == () for t in tables)
