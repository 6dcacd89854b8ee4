"""``huxin verify``: which status list decides (issue 14 item 1), end to end.

A real ``huxin verify`` invocation (``node.cli._main.main``) against a trust bundle
built by ``huxin trust build --status …`` plus ``--status`` files, as an
integrator runs it.  The rule (docs/SPEC.md section 8): among the lists for the
attestation's issuer and list id that verify and are in force at ``now``, the
most recently issued decides, whatever their order; lists that fail are
skipped and reported as warnings; none usable is ``STATUS_UNAVAILABLE``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from keys import (
    Attestation,
    Envelope,
    EnvelopeSignature,
    KeyPair,
    Status,
    StatusList,
    Threshold,
    decode_private_key,
    issue_attestation,
    subject_binding,
)
from node.cli._main import main

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z, the verification time
NOW = str(T0)
DAY = 86_400
SALT = bytes(range(32))
SUBJECT = "23110219900517123X"
INDEX = 5
LIST_ID = "heihe-1"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class Bed:
    root: Path
    heihe: Path
    hub: Path
    signing: KeyPair
    hub_key: str
    attestation: Path

    def status(self, name: str, state: Status, issued: int, expires: int) -> Path:
        sl = StatusList("heihe", LIST_ID)
        sl.set(INDEX, state)
        path = self.root / f"{name}.bin"
        path.write_bytes(sl.sign(self.signing, issued, expires).to_bytes())
        return path


@pytest.fixture
def bed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Bed:
    heihe, hub = tmp_path / "heihe", tmp_path / "hub"
    init = str(T0 - 10 * DAY)
    for region, out in (("heihe", heihe), ("hlj-hub", hub)):
        assert (
            _run(capsys, "keys", "init", "--region", region, "--out", str(out), "--now", init)[0]
            == 0
        )
    hub_key = json.loads((hub / "root.key").read_text())["public_key"]
    signing = decode_private_key((heihe / "signing.key").read_bytes())
    att = Attestation(
        attestation_id="a1", issuer_region="heihe", scheme_id="heihe", scheme_version="2025.1",
        grade="AA", period="2026-10", model_version="m1", issued_at=T0 - 3 * 3600,
        expires_at=T0 + DAY, subject_binding=subject_binding(SALT, SUBJECT), consent_id="c1",
        consent_sha256=b"\x01" * 32, audience="bank-1", purpose="heihe/credit-loans", nonce=b"n-1",
        status_list_id=LIST_ID, status_index=INDEX, scenario="heihe/credit-loans",
        disclosure="grade", threshold=Threshold("heihe", "2025.1", "A"),
    )  # fmt: skip
    path = tmp_path / "a.att"
    path.write_bytes(issue_attestation(att, signing))
    return Bed(tmp_path, heihe, hub, signing, hub_key, path)


def _bad_signature(path: Path) -> Path:
    env = Envelope.from_bytes(path.read_bytes())
    sig = env.signatures[0]
    flipped = EnvelopeSignature(sig.key_id, bytes([sig.sig[0] ^ 1]) + sig.sig[1:])
    out = path.with_name("bad-" + path.name)
    out.write_bytes(Envelope(env.payload_type, env.payload, (flipped,)).to_bytes())
    return out


def _lists(bed: Bed) -> dict[str, Path]:
    """The lists of the table: the one in a bundle built an hour ago, a fresh one after a
    withdrawal, one that has expired, one with a broken signature, one dated tomorrow."""
    stale = bed.status("stale", Status.VALID, T0 - 3600, T0 + DAY)
    return {
        "stale": stale,
        "fresh_revoked": bed.status("fresh-revoked", Status.REVOKED, T0 - 60, T0 + DAY),
        "fresh_valid": bed.status("fresh-valid", Status.VALID, T0 - 60, T0 + DAY),
        "expired": bed.status("expired", Status.VALID, T0 - 2 * DAY, T0 - DAY),
        "bad_signature": _bad_signature(stale),
        "future_valid": bed.status("future", Status.VALID, T0 + 3600, T0 + 2 * DAY),
        "suspended_old": bed.status("suspended", Status.SUSPENDED, T0 - 7200, T0 + DAY),
    }


# (id, lists in the bundle, --status files, exit code, reason or "VALID", warning codes)
CASES = [
    ("stale-bundle-list-fresh-revoked-status", ["stale"], ["fresh_revoked"], 1, "STATUS_REVOKED", []),
    ("two-bundle-lists-newer-last", ["stale", "fresh_revoked"], [], 1, "STATUS_REVOKED", []),
    ("two-bundle-lists-newer-first", ["fresh_revoked", "stale"], [], 1, "STATUS_REVOKED", []),
    ("newer-valid-lifts-older-suspension", ["fresh_valid", "suspended_old"], [], 0, "VALID", []),
    ("expired-bundle-list-valid-status", ["expired"], ["fresh_valid"], 0, "VALID", ["EXPIRED"]),
    ("bad-signature-bundle-list-valid-status", ["bad_signature"], ["fresh_valid"], 0, "VALID",
     ["BAD_SIGNATURE"]),
    ("future-dated-list-cannot-override", [], ["fresh_revoked", "future_valid"], 1,
     "STATUS_REVOKED", ["NOT_YET_VALID"]),
    ("none-usable", ["expired"], ["bad_signature"], 1, "STATUS_UNAVAILABLE",
     ["EXPIRED", "BAD_SIGNATURE"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("bundle_lists", "status_files", "exit_code", "verdict", "warnings"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_the_newest_usable_status_list_decides(
    bed: Bed,
    capsys: pytest.CaptureFixture[str],
    bundle_lists: list[str],
    status_files: list[str],
    exit_code: int,
    verdict: str,
    warnings: list[str],
) -> None:
    """issue 14 item 1 (REQ H12, H17): a bundle built with an older status list must not
    hide a revocation a fresher list shows; order does not matter; broken, expired or
    future-dated lists are skipped with a warning (JSON and text), and only when no list
    is usable is the verdict STATUS_UNAVAILABLE."""
    lists = _lists(bed)
    bundle = bed.root / "trust.bundle"
    build = ["trust", "build", "--hub-root", str(bed.hub / "root.key"), "--issuer", "hlj-hub",
             "--region-dir", str(bed.heihe), "--version", "1", "--out", str(bundle),
             "--now", str(T0 - 3600)]  # fmt: skip
    for name in bundle_lists:
        build += ["--status", str(lists[name])]
    assert _run(capsys, *build)[0] == 0
    argv = ["verify", str(bed.attestation), "--trust", str(bundle), "--hub-key", bed.hub_key,
            "--audience", "bank-1", "--nonce", "n-1", "--now", NOW]  # fmt: skip
    for name in status_files:
        argv += ["--status", str(lists[name])]

    code, out, err = _run(capsys, *argv, "--json")
    doc = json.loads(out)
    assert code == exit_code, (out, err)
    assert (doc["valid"], doc.get("reason", "VALID")) == (verdict == "VALID", verdict)
    assert [w["code"] for w in doc["warnings"]] == warnings
    if verdict == "VALID":
        assert doc["status"] == "valid"

    code, out, err = _run(capsys, *argv)  # the text form reports the same warnings
    assert code == exit_code
    assert [line.split(": ")[2] for line in err.splitlines() if line.startswith("warning:")] == (
        warnings
    )
    if verdict == "VALID":
        assert out.startswith("VALID") and "status valid" in out
    else:
        assert f"error: {verdict}:" in err


# --------------------------------------------------------------- --state and --hub-key


def _bundle(bed: Bed, capsys: pytest.CaptureFixture[str], version: int = 3) -> Path:
    bundle = bed.root / "trust.bundle"
    code, _, _ = _run(
        capsys, "trust", "build", "--hub-root", str(bed.hub / "root.key"), "--issuer", "hlj-hub",
        "--region-dir", str(bed.heihe), "--version", str(version), "--out", str(bundle),
        "--now", str(T0 - 3600),
    )  # fmt: skip
    assert code == 0
    return bundle


OTHER_KEY = "ab" * 32

# (id, state file content or None, --hub-key: "hex" | "hexfile" | "jsonfile" | "other" | None,
#  exit code, error code or "VALID")
STATES = [
    ("no-state-hex-key", None, "hex", 0, "VALID"),
    ("hub-key-file-as-init-federation-writes-it", None, "hexfile", 0, "VALID"),
    ("hub-key-json-key-file", None, "jsonfile", 0, "VALID"),
    ("pinned-key-used-without-hub-key", '{"hub_key": "PINNED", "version": 3}', None, 0, "VALID"),
    ("other-members-kept", '{"hub_key": "PINNED", "note": "kept"}', None, 0, "VALID"),
    ("rollback-refused", '{"hub_key": "PINNED", "version": 4}', None, 1, "TRUST_ROLLBACK"),
    ("hub-key-changed", '{"hub_key": "PINNED"}', "other", 1, "HUB_KEY_CHANGED"),
    ("no-key-at-all", "{}", None, 2, "HUB_KEY_REQUIRED"),
    ("not-json", "hub_key=abc", "hex", 2, "INVALID_STATE"),
    ("not-an-object", "[1, 2]", "hex", 2, "INVALID_STATE"),
    ("key-not-hex", '{"hub_key": "zz"}', "hex", 2, "INVALID_STATE"),
    ("negative-version", '{"version": -1}', "hex", 2, "INVALID_STATE"),
    ("version-not-an-integer", '{"version": "3"}', "hex", 2, "INVALID_STATE"),
]


@pytest.mark.parametrize(
    ("content", "hub_key", "exit_code", "outcome"),
    [s[1:] for s in STATES],
    ids=[s[0] for s in STATES],
)
def test_state_file_and_hub_key(
    bed: Bed,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    hub_key: str | None,
    exit_code: int,
    outcome: str,
) -> None:
    """issue 14 item 17 (docs/SPEC.md section 10): the documented --state format is what
    huxin verify reads and writes; a malformed file is INVALID_STATE, never a traceback;
    the hub key file written by `huxin init federation` (hex text) is accepted."""
    bundle = _bundle(bed, capsys)
    status = bed.status("fresh", Status.VALID, T0 - 60, T0 + DAY)
    state = bed.root / "state.json"
    if content is not None:
        state.write_text(content.replace("PINNED", bed.hub_key), encoding="utf-8")
    keyfile = bed.root / "hub.hex"
    keyfile.write_text(bed.hub_key + "\n", encoding="ascii")
    key_arg = {
        "hex": bed.hub_key,
        "hexfile": str(keyfile),
        "jsonfile": str(bed.hub / "root.key"),
        "other": OTHER_KEY,
    }
    argv = ["verify", str(bed.attestation), "--trust", str(bundle), "--audience", "bank-1",
            "--nonce", "n-1", "--status", str(status), "--now", NOW, "--state", str(state)]  # fmt: skip
    if hub_key is not None:
        argv += ["--hub-key", key_arg[hub_key]]
    code, out, err = _run(capsys, *argv)
    assert code == exit_code, (out, err)
    if outcome == "VALID":
        assert out.startswith("VALID")
        saved = json.loads(state.read_text(encoding="utf-8"))
        assert (saved["hub_key"], saved["version"]) == (bed.hub_key, 3)
        if "note" in (content or ""):
            assert saved["note"] == "kept"
        assert not [p for p in bed.root.iterdir() if p.name.startswith(".state-")]
    else:
        assert f"error: {outcome}:" in err
        assert "Traceback" not in err
        if content is not None:  # a refused check leaves the state as it was
            assert state.read_text(encoding="utf-8") == content.replace("PINNED", bed.hub_key)


def test_status_files_are_bounded(bed: Bed, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 14 item 1: --status is repeatable up to a documented bound (64)."""
    bundle = _bundle(bed, capsys)
    status = bed.status("fresh", Status.VALID, T0 - 60, T0 + DAY)
    argv = ["verify", str(bed.attestation), "--trust", str(bundle), "--hub-key", bed.hub_key,
            "--audience", "bank-1", "--nonce", "n-1", "--now", NOW]  # fmt: skip
    code, _, err = _run(capsys, *argv, *["--status", str(status)] * 65)
    assert code == 2 and "error: INVALID_ARGUMENT: --status: at most 64 files" in err
    code, out, _ = _run(capsys, *argv, *["--status", str(status)] * 64)
    assert code == 0 and out.startswith("VALID")
