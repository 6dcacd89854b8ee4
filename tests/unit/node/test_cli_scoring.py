"""CLI: ``huxin schemes`` and ``huxin score explain`` — output, exit codes, errors on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli._main import main
from scoring import check_character


def _id(born: str = "19900517", seq: str = "123") -> str:
    first = f"231102{born}{seq}"
    return first + check_character(first)


ID = _id()
OTHER = _id(seq="456")


def _write(tmp_path: Path, lines: list[dict[str, object] | str]) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def _rec(rid: str, subject: str = ID, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "record_id": rid,
        "subject_id": subject,
        "source": "court",
        "category": "good_deed",
        "act_id": f"act-{rid}",
        "recognised_on": "2026-03-01",
    }
    base.update(kw)
    return base


def test_schemes_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["fuzhou", "hainan", "heihe", "wendeng"]


def test_schemes_show_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes", "show", "atlantis"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: UNKNOWN_SCHEME:")


def test_schemes_show_heihe_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes", "show", "heihe", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["base_grade"] == "A"
    assert data["objection_deadlines_working_days"] == {"forward": 3, "source": 7, "reply": 3}


def test_explain_scores_only_the_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: N13 — the report explains every point; other people's records are ignored."""
    path = _write(tmp_path, [_rec("a"), _rec("b", OTHER), _rec("c", category="bravery")])
    argv = [
        "score",
        "explain",
        "--scheme",
        "heihe",
        "--records",
        str(path),
        "--subject",
        ID,
        "--as-of",
        "2026-11-30",
        "--json",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert (data["score"], data["grade"]) == (600 + 15 + 40, "A")
    assert [c["record_id"] for c in data["contributions"]] == ["a", "c"]
    assert ID not in out
    assert main(argv[:-1]) == 0
    text = capsys.readouterr().out
    assert "Score 655, grade A" in text
    assert ID not in text
    id_file = tmp_path / "id.txt"
    id_file.write_text(ID + "\n", encoding="ascii")
    by_file = [*argv[:6], "--subject-file", str(id_file), *argv[8:]]
    assert main(by_file) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 655
    assert main([*argv[:6], "--subject-file", str(tmp_path / "missing"), *argv[8:]]) == 2
    assert "FILE_NOT_READABLE: --subject-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param("{not json", "INVALID_RECORD", id="not-json"),
        pytest.param(_rec("x", category="religion"), "FORBIDDEN_CATEGORY", id="forbidden"),
        pytest.param(_rec("x", recognised_on="2026-12-25"), "FUTURE_RECOGNITION", id="future"),
        pytest.param(
            _rec("x", subject_id="231102199005171230"), "INVALID_ID_NUMBER", id="bad-check"
        ),
    ],
)
def test_explain_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: dict[str, object] | str, code: str
) -> None:
    path = _write(tmp_path, [_rec("a"), line])
    argv = [
        "score",
        "explain",
        "--scheme",
        "heihe",
        "--records",
        str(path),
        "--subject",
        ID,
        "--as-of",
        "2026-11-30",
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {code}:")
    assert ":2:" in captured.err


def test_explain_bad_subject_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "score",
        "explain",
        "--scheme",
        "heihe",
        "--records",
        str(tmp_path / "none.jsonl"),
        "--subject",
        ID,
        "--as-of",
        "2026-11-30",
    ]
    assert main(argv) == 2
    assert "error: NOT_FOUND:" in capsys.readouterr().err
    argv[argv.index(ID)] = ID[:-1] + "Y"
    assert main(argv) == 2
    assert "error: INVALID_ID_NUMBER: --subject" in capsys.readouterr().err


def test_explain_ineligible_minor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    minor = _id(born="20100101")
    path = _write(tmp_path, [_rec("a", minor)])
    assert (
        main(
            [
                "score",
                "explain",
                "--scheme",
                "heihe",
                "--records",
                str(path),
                "--subject",
                minor,
                "--as-of",
                "2026-11-30",
            ]
        )
        == 0
    )
    assert "Not eligible: under 18" in capsys.readouterr().out
