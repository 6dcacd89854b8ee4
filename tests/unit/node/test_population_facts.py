"""Population facts: validation (pure), the source file reader and the node config.

REQ: H1, N1 — residence bases are the scheme's eligibility kinds (Hainan counts
one year of social-insurance or tax contributions, Heihe does not); H7 — a
fact about a minor is refused, never stored; the config names the population
authorities and whether intake requires the registry.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from node.core._config import ConfigError, parse_config
from node.demo._testbed import make_id_number
from node.pb.v1 import node_pb2
from node.population import validate_facts
from node.population._file import count_rows, read_rows
from scoring import load_scheme

TODAY = date(2026, 12, 7)
ADULT = make_id_number(1)


def _fact(**kw: str) -> node_pb2.ResidenceFact:
    base = {"subject_id": ADULT, "kind": "move_in", "on": "2000-01-01"}
    return node_pb2.ResidenceFact(**{**base, **kw})


# scheme, fact, exact (field, code) or None when accepted, residence kind stored
CASES = [
    ("heihe", _fact(), None, "hukou"),
    ("heihe", _fact(kind="permit_issued"), None, "residence_permit"),
    ("heihe", _fact(kind="permit_expired", residence_kind="hukou"),
     ("residence_kind", "INVALID_FIELD"), ""),
    ("heihe", _fact(kind="move_out"), None, ""),
    ("heihe", _fact(kind="death"), None, ""),
    ("hainan", _fact(kind="contribution_year", residence_kind="social_insurance"), None,
     "social_insurance"),
    ("hainan", _fact(kind="contribution_year", residence_kind="income_tax"), None, "income_tax"),
    ("hainan", _fact(kind="contribution_year", residence_kind="hukou"),
     ("residence_kind", "INVALID_FIELD"), ""),
    ("heihe", _fact(kind="contribution_year", residence_kind="income_tax"),
     ("residence_kind", "UNKNOWN_RESIDENCE_KIND"), ""),
    ("heihe", _fact(subject_id=make_id_number(2, born="20150101"), on="2016-01-01"),
     ("subject_id", "SUBJECT_MINOR"), ""),
    ("heihe", _fact(on="2026-12-08"), ("on", "INVALID_FIELD"), ""),
]  # fmt: skip


@pytest.mark.parametrize(("scheme", "fact", "problem", "stored"), CASES)
def test_fact_validation_names_field_and_reason(
    scheme: str, fact: node_pb2.ResidenceFact, problem: tuple[str, str] | None, stored: str
) -> None:
    """REQ: H1, H7, N1 — one exact (field, code) per bad fact; accepted facts normalised."""
    facts, problems = validate_facts([fact], load_scheme(scheme), TODAY)
    if problem is None:
        assert problems == []
        assert [f.residence_kind for f in facts] == [stored]
    else:
        assert facts == []
        assert [(p[2], p[3]) for p in problems] == [problem]
        assert all(ADULT not in p[4] for p in problems)


def test_file_reader_keeps_line_numbers_and_refuses_unknown_columns(tmp_path: Path) -> None:
    """REQ: H7 — rows keep their line; an unknown column or a non-object line is named."""
    csv_file = tmp_path / "f.csv"
    csv_file.write_text(f"subject_id,kind,on\n{ADULT},move_in,2000-01-01\n", encoding="utf-8")
    rows = list(read_rows(csv_file, "residence"))
    assert [(r.line, r.problem) for r in rows] == [(2, None)]
    assert count_rows(csv_file) == 1
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_text(
        json.dumps({"subject_id": ADULT, "colour": "red"}) + "\n\n[1]\n", encoding="utf-8"
    )
    problems = [r.problem for r in read_rows(jsonl, "residence")]
    assert [(p.line, p.code) for p in problems if p] == [(1, "UNKNOWN_COLUMN"), (3, "INVALID_ROW")]


BASE: dict[str, Any] = {
    "node": {"region": "heihe", "scheme": "heihe"},
    "tls": {"cert": "c", "key": "k", "ca": "a"},
    "keys": {"root": "r", "signing": "s", "key_set": "ks", "storage_secret": "ss", "seal": "se"},
}


def test_config_names_population_authorities(tmp_path: Path) -> None:
    """REQ: H1, N1 — [sources] population and require_registry; old configs read false."""
    assert parse_config(BASE, tmp_path).require_registry is False
    cfg = parse_config(
        {**BASE, "sources": {"population": ["heihe.hukou"], "require_registry": True}}, tmp_path
    )
    assert (cfg.population, cfg.require_registry) == (("heihe.hukou",), True)
    with pytest.raises(ConfigError, match=r"sources\.require_registry"):
        parse_config({**BASE, "sources": {"require_registry": "yes"}}, tmp_path)
