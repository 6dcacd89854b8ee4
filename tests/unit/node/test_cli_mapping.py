"""CLI: ``huxin mapping table|check|grade`` — output, exit codes, errors on stderr.

REQ: C3, N20.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import nacl.signing
import pytest

from mapping import (
    GradeHistogram,
    agreement_table,
    load_schemes,
    published_table,
    table_from_document,
)
from node.cli._main import main


def _key(region: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey((f"cli-test-{region}".encode() + b"\0" * 32)[:32])


def _keys_file(tmp_path: Path, *regions: str) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({r: [bytes(_key(r).verify_key).hex()] for r in regions}))
    return path


def test_table_prints_method_hash_and_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "table", "heihe", "fuzhou"]) == 0
    out = capsys.readouterr().out
    assert "method   anchored" in out
    assert published_table("heihe", "fuzhou").content_hash in out
    assert "A    ->  lianghao" in out


def test_table_json_is_the_document(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "t.json"
    assert main(["mapping", "table", "wendeng", "heihe", "--json", "--out", str(out_file)]) == 0
    printed = capsys.readouterr().out.encode()
    assert table_from_document(printed) == published_table("wendeng", "heihe")
    assert out_file.read_bytes() == printed


def test_equipercentile_table_from_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    schemes = load_schemes("heihe", "hainan")
    files = []
    for sid, counts in (
        ("heihe", dict.fromkeys(schemes["heihe"].grades, 200)),
        ("hainan", dict.fromkeys(schemes["hainan"].grades, 300)),
    ):
        hist = GradeHistogram.of(schemes[sid], "2026-10", counts).signed(_key(sid))
        path = tmp_path / f"{sid}.json"
        path.write_text(json.dumps(hist.to_json()))
        files.append(str(path))
    keys = _keys_file(tmp_path, "heihe", "hainan")
    argv = [
        "mapping",
        "table",
        "heihe",
        "hainan",
        "--method",
        "equipercentile",
        "--histograms",
        *files,
        "--keys",
        str(keys),
        "--json",
    ]
    assert main(argv) == 0
    table = table_from_document(capsys.readouterr().out.encode())
    assert table.method.value == "equipercentile"
    # too small for the default minimum population of 1000 per side? 1800 and 1800: fine;
    assert main([*argv, "--min-population", "5000"]) == 2
    assert "POPULATION_TOO_SMALL" in capsys.readouterr().err


def test_agreement_draft(capsys: pytest.CaptureFixture[str]) -> None:
    grades = "SSS=AA,SS=AA,S=A,AAA=A,AA=A,A=B,B=C,C=D,D=D"
    argv = [
        "mapping",
        "table",
        "heihe",
        "hainan",
        "--method",
        "agreement",
        "--grades",
        grades,
        "--effective",
        "2026-01-01",
    ]
    assert main(argv) == 0
    assert "method   agreement" in capsys.readouterr().out
    assert (
        main([*argv[:-4], "--grades", grades.replace("B=C", "B=A"), "--effective", "2026-01-01"])
        == 2
    )
    assert "error: INVARIANT_" in capsys.readouterr().err


def test_check_published_table_ok(capsys: pytest.CaptureFixture[str]) -> None:
    from mapping import published_tables  # noqa: F401  (package data is importable)

    path = Path(__file__).resolve().parents[3] / "mapping" / "tables" / "heihe.fuzhou.anchored.json"
    assert main(["mapping", "check", str(path), "--today", "2026-06-01"]) == 0
    assert "passes all 7 invariants" in capsys.readouterr().out


def _agreement_file(tmp_path: Path, *signers: str, expires: date | None = None) -> Path:
    schemes = load_schemes("heihe", "hainan")
    table = agreement_table(
        schemes["heihe"],
        schemes["hainan"],
        {
            "SSS": "AA",
            "SS": "AA",
            "S": "A",
            "AAA": "A",
            "AA": "A",
            "A": "B",
            "B": "C",
            "C": "D",
            "D": "D",
        },
        effective_from=date(2026, 1, 1),
        expires=expires,
    )
    for s in signers:
        table = table.signed(_key(s))
    path = tmp_path / "agreement.json"
    path.write_bytes(table.to_json_bytes())
    return path


CHECK_FAILURES = [
    ("one-party", ("heihe",), None, "2026-06-01", "MISSING_PARTY_SIGNATURE"),
    ("expired", ("heihe", "hainan"), date(2026, 3, 1), "2026-06-01", "TABLE_EXPIRED"),
    ("not-yet", ("heihe", "hainan"), None, "2025-06-01", "TABLE_NOT_YET_EFFECTIVE"),
]


@pytest.mark.parametrize(
    ("name", "signers", "expires", "today", "code"),
    CHECK_FAILURES,
    ids=[c[0] for c in CHECK_FAILURES],
)
def test_check_failures_exit_1_with_code(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    signers: tuple[str, ...],
    expires: date | None,
    today: str,
    code: str,
) -> None:
    path = _agreement_file(tmp_path, *signers, expires=expires)
    keys = _keys_file(tmp_path, "heihe", "hainan")
    assert main(["mapping", "check", str(path), "--keys", str(keys), "--today", today]) == 1
    assert f"error: {code}:" in capsys.readouterr().err
    assert (
        main(["mapping", "check", str(path), "--keys", str(keys), "--today", today, "--json"]) == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and code in [p["code"] for p in report["problems"]]


def test_check_agreement_signed_by_both(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _agreement_file(tmp_path, "heihe", "hainan")
    keys = _keys_file(tmp_path, "heihe", "hainan")
    assert main(["mapping", "check", str(path), "--keys", str(keys), "--today", "2026-06-01"]) == 0


def test_check_names_the_broken_invariant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = json.loads(published_table("heihe", "fuzhou").to_json_bytes())
    doc["content"]["grades"]["B"] = "youxiu"
    from mapping import content_hash

    doc["content_hash"] = content_hash(doc["content"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["mapping", "check", str(path), "--today", "2026-06-01", "--json"]) == 1
    codes = [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]]
    assert "INVARIANT_MONOTONE" in codes
    assert "INVARIANT_CONSERVATIVE" in codes
    assert "INVARIANT_INCENTIVE_SAFE" in codes


def test_check_tampered_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = published_table("heihe", "fuzhou").to_json_bytes().replace(b'"jicha"', b'"jiaocha"', 1)
    path = tmp_path / "t.json"
    path.write_bytes(text)
    assert main(["mapping", "check", str(path)]) == 2
    assert "error: HASH_MISMATCH" in capsys.readouterr().err


def test_grade_with_score(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "grade", "heihe", "hainan", "AAA", "--score", "830", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mapped_grade"] == "AA"
    assert out["route"] == ["heihe", "hainan"]
    assert out["tables"][0]["content_hash"] == published_table("heihe", "hainan").content_hash
    assert out["score"] == {
        "score": 830,
        "target_score": 851,
        "target_grade": "AAA",
        "target_interval": [850, 1000],
        "source_interval": [829, 1000],
        "capped_by": [],
    }
    assert main(["mapping", "grade", "heihe", "hainan", "AAA", "--all-routes"]) == 0
    assert "route heihe -> wendeng -> hainan" in capsys.readouterr().out


BAD_GRADE_ARGS = [
    ("unknown-source", ["nowhere", "hainan", "A"], "UNKNOWN_SCHEME"),
    ("unknown-target", ["heihe", "nowhere", "A"], "UNKNOWN_SCHEME"),
    ("unknown-grade", ["heihe", "hainan", "Z"], "UNKNOWN_GRADE"),
    ("score-out-of-range", ["heihe", "hainan", "A", "--score", "5000"], "SCORE_OUT_OF_RANGE"),
    ("score-other-grade", ["heihe", "hainan", "A", "--score", "900"], "SCORE_GRADE_MISMATCH"),
    ("missing-file", ["heihe", "hainan", "A", "--table", "/nonexistent.json"], "FILE_NOT_READABLE"),
]


@pytest.mark.parametrize(
    ("name", "args", "code"), BAD_GRADE_ARGS, ids=[b[0] for b in BAD_GRADE_ARGS]
)
def test_grade_bad_input(
    capsys: pytest.CaptureFixture[str], name: str, args: list[str], code: str
) -> None:
    assert main(["mapping", "grade", *args]) == 2
    assert f"error: {code}:" in capsys.readouterr().err


def test_sign_agreement_by_both_regions_then_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """REQ: C3 — an agreement drafted, signed by each region with its key file, then checked."""
    from keys import KeyPair, encode_private_key

    path = _agreement_file(tmp_path)
    for region in ("heihe", "hainan"):
        key_file = tmp_path / f"{region}.key"
        key_file.write_bytes(encode_private_key(KeyPair(bytes(_key(region)))))
        assert main(["mapping", "sign", str(path), "--key", str(key_file)]) == 0
    keys = _keys_file(tmp_path, "heihe", "hainan")
    capsys.readouterr()
    assert main(["mapping", "check", str(path), "--keys", str(keys), "--today", "2026-06-01"]) == 0
    assert len(table_from_document(path.read_bytes()).signatures) == 2


def test_sign_refuses_bad_key_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _agreement_file(tmp_path)
    bad = tmp_path / "bad.key"
    bad.write_text("{}")
    assert main(["mapping", "sign", str(path), "--key", str(bad)]) == 2
    assert "error: " in capsys.readouterr().err
    assert table_from_document(path.read_bytes()).signatures == ()


def test_grade_with_extra_agreement_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An extra table is used only after its invariants and both signatures check out."""
    one = _agreement_file(tmp_path, "heihe")
    keys = _keys_file(tmp_path, "heihe", "hainan")
    argv = [
        "mapping",
        "grade",
        "heihe",
        "hainan",
        "AAA",
        "--today",
        "2026-06-01",
        "--keys",
        str(keys),
    ]
    assert main([*argv, "--table", str(one)]) == 2
    assert "error: MISSING_PARTY_SIGNATURE" in capsys.readouterr().err
    both = _agreement_file(tmp_path, "heihe", "hainan")
    assert main([*argv, "--table", str(both), "--all-routes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mapped_grade"] == "A"
