"""CLI: the hub approves mapping tables (批准或备案), the bundle carries them, verify names them.

Issue 16 (H13: a table is used only once approved or filed with an authority; the record
carries dates and the incentive reach; C3: fail closed — refused tables, foreign records and
unlisted tables never verify).  End to end through ``huxin``: ``mapping approve``,
``trust build --approval``, ``verify``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from keys import (
    Attestation,
    KeyPair,
    MappedGrade,
    Threshold,
    encode_private_key,
    issue_attestation,
    open_approval,
    subject_binding,
)
from mapping import agreement_table, load_schemes, published_table
from node.cli._main import main

NOW = "2026-11-01T00:00:00Z"
T0 = 1_793_491_200
INIT = str(T0 - 1000)
HEIHE_TO_HAINAN = published_table("heihe", "hainan")
STINGY = ("AAA", "AAA", "AA", "AA", "A", "B", "C", "D", "D")  # Heihe A → Hainan B: 3.09%


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    key = tmp_path / "hub.key"
    key.write_bytes(encode_private_key(KeyPair(b"hub-root".ljust(32, b"\0"))))
    return key


def _table(tmp_path: Path, table: object = HEIHE_TO_HAINAN, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_bytes(table.to_json_bytes())  # type: ignore[attr-defined]
    return path


def _approve(
    capsys: pytest.CaptureFixture[str], table: Path, key: Path, out: Path, *extra: str
) -> tuple[int, str, str]:
    return _run(
        capsys, "mapping", "approve", str(table), "--key", str(key), "--authority", "hlj-hub",
        "--decision", "approved", "--now", NOW, "--out", str(out), *extra,
    )  # fmt: skip


def test_approve_signs_the_record_and_prints_the_reach(
    tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13: the record names the table, the decision, the dates and the reach."""
    out = tmp_path / "t.approval"
    code, text, _ = _approve(capsys, _table(tmp_path), hub, out, "--min-reach", "0.5")
    assert code == 0, text
    assert "approved (批准) by hlj-hub" in text and "reach    100.00%" in text
    key = KeyPair(b"hub-root".ljust(32, b"\0"))
    a = open_approval(out.read_bytes(), {"hlj-hub": key.public_key})
    assert a.mapping_sha256.hex() == HEIHE_TO_HAINAN.content_hash.removeprefix("sha256:")
    assert (a.decision, a.reach_ppm, a.issued_at) == ("approved", 1_000_000, T0)


def test_filed_with_a_later_start_as_json(
    tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13: 备案 (filed) is a decision too; --effective-from sets the first day."""
    out = tmp_path / "t.approval"
    code, text, _ = _run(
        capsys, "mapping", "approve", str(_table(tmp_path)), "--key", str(hub), "--authority",
        "hlj-hub", "--decision", "filed", "--effective-from", "2026-12-01", "--now", NOW,
        "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(text)
    assert (doc["decision"], doc["effective_from"], doc["expires"]) == ("filed", "2026-12-01", None)


def _stingy(tmp_path: Path) -> Path:
    s = load_schemes("heihe", "hainan")
    grades = dict(zip(s["heihe"].grades, STINGY, strict=True))
    table = agreement_table(s["heihe"], s["hainan"], grades, effective_from=date(2026, 1, 1))
    return _table(tmp_path, table, "stingy.json")


def _not_monotone(tmp_path: Path) -> Path:
    grades = list(HEIHE_TO_HAINAN.grades)
    grades[0], grades[-1] = (grades[0][0], grades[-1][1]), (grades[-1][0], grades[0][1])
    return _table(tmp_path, replace(HEIHE_TO_HAINAN, grades=tuple(grades)), "bad.json")


def _tampered(tmp_path: Path) -> Path:
    path = _table(tmp_path)
    path.write_text(path.read_text().replace('"version": "1"', '"version": "2"', 1))
    return path


@pytest.mark.parametrize(
    ("make", "extra", "code"),
    [
        pytest.param(_stingy, ("--min-reach", "0.5"), "INCENTIVE_REACH_TOO_LOW", id="below-floor"),
        pytest.param(_not_monotone, (), "INVARIANT_MONOTONE", id="invariant-fails"),
        pytest.param(_tampered, (), "HASH_MISMATCH", id="hash-mismatch"),
        pytest.param(_table, ("--min-reach", "2"), "BAD_FLOOR", id="bad-floor"),
        pytest.param(
            _table, ("--effective-from", "2024-01-01"), "BAD_EFFECTIVE_FROM",
            id="start-before-table",
        ),
    ],
)  # fmt: skip
def test_approve_refuses_and_writes_nothing(
    tmp_path: Path,
    hub: Path,
    capsys: pytest.CaptureFixture[str],
    make: object,
    extra: tuple[str, ...],
    code: str,
) -> None:
    """Issue 16, H13, C3: a table failing an invariant, the hash or the floor gets no record."""
    out = tmp_path / "x.approval"
    rc, _, err = _approve(capsys, make(tmp_path), hub, out, *extra)  # type: ignore[operator]
    assert rc == 2 and f"error: {code}:" in err
    assert not out.exists()


def test_stingy_table_below_the_floor_names_the_figure(
    tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13, H14: the refusal carries the reach figure and the floor."""
    rc, _, err = _approve(capsys, _stingy(tmp_path), hub, tmp_path / "x", "--min-reach", "0.5")
    assert rc == 2 and "3.09%" in err and "50.00%" in err


def test_an_existing_record_is_never_overwritten(
    tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, C3: approval records are kept (OUTPUT_EXISTS)."""
    out = tmp_path / "t.approval"
    out.write_bytes(b"kept")
    rc, _, err = _approve(capsys, _table(tmp_path), hub, out)
    assert rc == 2 and "OUTPUT_EXISTS" in err and out.read_bytes() == b"kept"


# ------------------------------------------------------------- trust build and verify


def _attestation(**kw: object) -> Attestation:
    mapped = MappedGrade(
        "AA",
        "hainan",
        HEIHE_TO_HAINAN.target.version,
        HEIHE_TO_HAINAN.id,
        HEIHE_TO_HAINAN.version,
        bytes.fromhex(HEIHE_TO_HAINAN.content_hash.removeprefix("sha256:")),
        "anchored",
    )
    base: dict[str, object] = {
        "attestation_id": "a1",
        "issuer_region": "heihe",
        "scheme_id": "heihe",
        "scheme_version": "2025.1",
        "grade": "AA",
        "period": "2026-10",
        "model_version": "m1",
        "issued_at": T0 - 60,
        "expires_at": T0 + 86_400,
        "subject_binding": subject_binding(bytes(32), "23110219900517123X"),
        "consent_id": "c1",
        "consent_sha256": b"\x01" * 32,
        "audience": "bank-1",
        "purpose": "heihe/credit-loans",
        "nonce": b"n-1",
        "status_list_id": "heihe-1",
        "status_index": 5,
        "mapped": mapped,
        "scenario": "heihe/credit-loans",
        "disclosure": "grade",
        "threshold": Threshold("heihe", "2025.1", "A"),
    }
    base.update(kw)
    return Attestation(**base)  # type: ignore[arg-type]


@pytest.fixture
def region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A heihe key directory and one mapped-grade attestation signed with it."""
    from keys import decode_private_key

    heihe = tmp_path / "heihe"
    assert (
        _run(capsys, "keys", "init", "--region", "heihe", "--out", str(heihe), "--now", INIT)[0]
        == 0
    )
    hainan = tmp_path / "hainan"  # both regions in the hub's list: the hub may approve
    argv = ("keys", "init", "--region", "hainan", "--out", str(hainan), "--now", INIT)
    assert _run(capsys, *argv)[0] == 0
    key = decode_private_key((heihe / "signing.key").read_bytes())
    att = tmp_path / "a.att"
    att.write_bytes(issue_attestation(_attestation(), key))
    return heihe, att


def _build(
    capsys: pytest.CaptureFixture[str],
    hub: Path,
    heihe: Path,
    out: Path,
    *extra: str,
    regions: tuple[str, ...] = ("heihe", "hainan"),
) -> tuple[int, str, str]:
    dirs = [a for r in regions for a in ("--region-dir", str(heihe.parent / r))]
    return _run(
        capsys, "trust", "build", "--hub-root", str(hub), "--issuer", "hlj-hub", *dirs,
        "--version", "1", "--now", NOW, "--out", str(out), "--json", *extra,
    )  # fmt: skip


def test_hub_may_not_approve_a_table_into_a_region_not_under_it(
    tmp_path: Path, hub: Path, region: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13, C3: the hub's own key approves only tables between regions registered
    under it; heihe -> hainan with hainan outside its list needs a national authority, so
    the bundle is refused (APPROVAL_REFUSED: APPROVAL_AUTHORITY_NOT_ALLOWED naming hainan)
    and a national authority's record for the same table is accepted."""
    heihe, _ = region
    record = tmp_path / "t.approval"
    assert _approve(capsys, _table(tmp_path), hub, record)[0] == 0
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(capsys, hub, heihe, bundle, "--approval", str(record), regions=("heihe",))
    assert code == 2 and "APPROVAL_REFUSED" in err and "APPROVAL_AUTHORITY_NOT_ALLOWED" in err
    assert "hainan is not a region of that hub" in err and not bundle.exists()
    national = KeyPair(b"national".ljust(32, b"\0"))
    nkey = tmp_path / "national.key"
    nkey.write_bytes(encode_private_key(national))
    nrecord = tmp_path / "n.approval"
    code, _, _ = _run(
        capsys, "mapping", "approve", str(_table(tmp_path)), "--key", str(nkey), "--authority",
        "national", "--decision", "approved", "--now", NOW, "--out", str(nrecord),
    )  # fmt: skip
    assert code == 0
    authority = f"national={national.public_key.hex()}"
    code, _, _ = _build(
        capsys, hub, heihe, bundle, "--approval", str(nrecord), "--authority-key", authority,
        regions=("heihe",),
    )  # fmt: skip
    assert code == 0


def _verify(
    capsys: pytest.CaptureFixture[str], att: Path, bundle: Path, *extra: str
) -> tuple[int, str, str]:
    from keys import KeyPair as KP

    hub_key = KP(b"hub-root".ljust(32, b"\0")).public_key.hex()
    return _run(
        capsys, "verify", str(att), "--trust", str(bundle), "--hub-key", hub_key, "--audience",
        "bank-1", "--now", NOW, "--no-nonce", "--no-status-check", *extra,
    )  # fmt: skip


def test_bundle_with_the_approval_verifies_and_verify_names_it(
    tmp_path: Path, hub: Path, region: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13: with the hub's approval in the bundle the mapped grade verifies, and the
    verdict names the table, 批准 by the hub, the date in force and the reach (text and JSON)."""
    heihe, att = region
    record = tmp_path / "t.approval"
    assert _approve(capsys, _table(tmp_path), hub, record)[0] == 0
    bundle = tmp_path / "b.bundle"
    code, out, _ = _build(capsys, hub, heihe, bundle, "--approval", str(record))
    assert code == 0 and json.loads(out)["approvals"] == 1
    code, out, _ = _verify(capsys, att, bundle)
    assert code == 0, out
    assert (
        "table heihe-hainan-anchored@1 approved by hlj-hub (批准), in force from 2025-01-01, "
        "incentive reach 100.00%"
    ) in out
    code, out, _ = _verify(capsys, att, bundle, "--json")
    doc = json.loads(out)["approval"]
    assert doc == {
        "table": "heihe-hainan-anchored@1",
        "decision": "approved",
        "decision_zh": "批准",
        "authority": "hlj-hub",
        "effective_from": "2025-01-01",
        "expires": None,
        "reach_ppm": 1_000_000,
        "reach": "100.00%",
    }


def test_a_national_authoritys_filing_is_accepted_with_its_key(
    tmp_path: Path, hub: Path, region: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, H13: a record filed (备案) with a national authority goes into the bundle when
    its key is given; the verifier needs no national key (the hub signs the list)."""
    heihe, att = region
    national = KeyPair(b"national".ljust(32, b"\0"))
    nkey = tmp_path / "national.key"
    nkey.write_bytes(encode_private_key(national))
    record = tmp_path / "n.approval"
    code, _, _ = _run(
        capsys, "mapping", "approve", str(_table(tmp_path)), "--key", str(nkey), "--authority",
        "ndrc", "--decision", "filed", "--now", NOW, "--out", str(record),
    )  # fmt: skip
    assert code == 0
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(capsys, hub, heihe, bundle, "--approval", str(record))
    assert code == 2 and "APPROVAL_REFUSED" in err and "UNKNOWN_KEY" in err
    assert not bundle.exists()
    authority = f"ndrc={national.public_key.hex()}"
    code, _, _ = _build(
        capsys, hub, heihe, bundle, "--approval", str(record), "--authority-key", authority
    )
    assert code == 0
    code, out, _ = _verify(capsys, att, bundle)
    assert code == 0 and "filed with ndrc (备案)" in out


def _forged_authority(tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A record signed by the hub key that names another authority."""
    record = tmp_path / "f.approval"
    code, _, _ = _run(
        capsys, "mapping", "approve", str(_table(tmp_path)), "--key", str(hub), "--authority",
        "ndrc", "--decision", "approved", "--now", NOW, "--out", str(record),
    )  # fmt: skip
    assert code == 0
    return record


def _garbage(tmp_path: Path, hub: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    record = tmp_path / "g.approval"
    record.write_bytes(b"\xff\xff not an envelope")
    return record


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(_forged_authority, "APPROVAL_INVALID", id="names-another-authority"),
        pytest.param(_garbage, "MALFORMED", id="not-an-envelope"),
    ],
)
def test_trust_build_refuses_bad_records_and_writes_nothing(
    tmp_path: Path,
    hub: Path,
    region: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    make: object,
    reason: str,
) -> None:
    """Issue 16, C3: a record that does not open under the hub (or a given) key is refused
    with its reason, and no bundle is written."""
    heihe, _ = region
    record = make(tmp_path, hub, capsys)  # type: ignore[operator]
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(capsys, hub, heihe, bundle, "--approval", str(record))
    assert code == 2 and "APPROVAL_REFUSED" in err and reason in err
    assert not bundle.exists()


def test_trust_build_refuses_the_same_table_twice(
    tmp_path: Path, hub: Path, region: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, C3: two records of one table: which counts would depend on order; refused."""
    heihe, _ = region
    one, two = tmp_path / "1.approval", tmp_path / "2.approval"
    assert _approve(capsys, _table(tmp_path), hub, one)[0] == 0
    assert _approve(capsys, _table(tmp_path), hub, two, "--effective-from", "2026-01-01")[0] == 0
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(
        capsys, hub, heihe, bundle, "--approval", str(one), "--approval", str(two)
    )
    assert code == 2 and "approved twice" in err and not bundle.exists()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("ndrc", id="no-key"),
        pytest.param("=" + "00" * 32, id="no-id"),
        pytest.param("ndrc=zz", id="not-hex"),
        pytest.param("ndrc=" + "00" * 31, id="short-key"),
        pytest.param("x" * 65 + "=" + "00" * 32, id="id-65-chars"),
    ],
)
def test_bad_authority_key_arguments(
    tmp_path: Path,
    hub: Path,
    region: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    """Issue 16, C3: --authority-key is ID=<64 hex>, the id 1-64 characters."""
    heihe, _ = region
    record = tmp_path / "t.approval"
    assert _approve(capsys, _table(tmp_path), hub, record)[0] == 0
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(
        capsys, hub, heihe, bundle, "--approval", str(record), "--authority-key", value
    )
    assert code == 2 and "INVALID_ARGUMENT" in err and not bundle.exists()


@pytest.mark.parametrize(
    ("approve", "reason_part"),
    [
        pytest.param(False, "no approved mappings", id="bundle-without-approvals"),
        pytest.param(True, "not yet in force", id="approval-starts-after-issue"),
    ],
)
def test_verify_refuses_a_mapped_grade_without_an_approval_in_force(
    tmp_path: Path,
    hub: Path,
    region: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    approve: bool,
    reason_part: str,
) -> None:
    """Issue 16, H13, C3: no list, or an approval in force only after the attestation was
    issued: MAPPING_NOT_APPROVED, text and JSON."""
    heihe, att = region
    extra: list[str] = []
    if approve:
        record = tmp_path / "late.approval"
        assert (
            _approve(capsys, _table(tmp_path), hub, record, "--effective-from", "2026-12-01")[0]
            == 0
        )
        extra = ["--approval", str(record)]
    bundle = tmp_path / "b.bundle"
    assert _build(capsys, hub, heihe, bundle, *extra)[0] == 0
    code, _, err = _verify(capsys, att, bundle)
    assert code == 1 and "MAPPING_NOT_APPROVED" in err and reason_part in err
    code, out, _ = _verify(capsys, att, bundle, "--json")
    assert (code, json.loads(out)["reason"]) == (1, "MAPPING_NOT_APPROVED")


def test_oversized_inputs_are_refused_without_reading_them(
    tmp_path: Path, hub: Path, region: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, C3: `mapping approve` reads at most 256 KiB of a table and 4 KiB of a key,
    and `trust build --approval` at most 16 KiB of a record: FILE_TOO_LARGE, nothing written."""
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (256 * 1024 + 1))
    out = tmp_path / "t.approval"
    code, _, err = _approve(capsys, big, hub, out)
    assert code != 0 and "FILE_TOO_LARGE" in err and not out.exists()
    big_key = tmp_path / "big.key"
    big_key.write_bytes(b"0" * 4097)
    code, _, err = _approve(capsys, _table(tmp_path), big_key, out)
    assert code != 0 and "FILE_TOO_LARGE" in err and not out.exists()
    heihe, _ = region
    record = tmp_path / "big.approval"
    record.write_bytes(b"\0" * (16 * 1024 + 1))
    bundle = tmp_path / "b.bundle"
    code, _, err = _build(capsys, hub, heihe, bundle, "--approval", str(record))
    assert code != 0 and "FILE_TOO_LARGE" in err and not bundle.exists()
