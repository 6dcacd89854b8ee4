"""CLI: huxin keys init|rotate|revoke, huxin trust build, huxin verify (end to end)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from keys import (
    Attestation,
    StatusList,
    Threshold,
    decode_private_key,
    issue_attestation,
    subject_binding,
)
from node.cli._main import main

NOW = "2026-11-01T00:00:00Z"
INIT = str(1_793_491_200 - 1000)
T0 = 1_793_491_200
SALT = bytes(range(32))
SUBJECT = "23110219900517123X"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _attestation(**kw: object) -> Attestation:
    base = {
        "attestation_id": "a1",
        "issuer_region": "heihe",
        "scheme_id": "heihe",
        "scheme_version": "2025.1",
        "grade": "AA",
        "period": "2026-10",
        "model_version": "m1",
        "issued_at": T0 - 60,
        "expires_at": T0 + 86_400,
        "subject_binding": subject_binding(SALT, SUBJECT),
        "consent_id": "c1",
        "consent_sha256": b"\x01" * 32,
        "audience": "bank-1",
        "purpose": "heihe/credit-loans",
        "nonce": b"n-1",
        "status_list_id": "heihe-1",
        "status_index": 5,
        "score": 777,
        "scenario": "heihe/credit-loans",
        "disclosure": "grade_and_score",
        "threshold": Threshold("heihe", "2025.1", "A"),
    }
    base.update(kw)
    return Attestation(**base)  # type: ignore[arg-type]


def test_keys_trust_verify_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_PASS", "hub secret")
    heihe, hub = tmp_path / "heihe", tmp_path / "hub"
    code, out, _ = _run(
        capsys, "keys", "init", "--region", "heihe", "--out", str(heihe), "--now", INIT, "--json"
    )
    assert code == 0
    first = json.loads(out)["signing_key_id"]
    for name in ("root.key", "signing.key"):
        assert stat.S_IMODE((heihe / name).stat().st_mode) == 0o600
    code, out, _ = _run(
        capsys, "keys", "init", "--region", "hlj-hub", "--out", str(hub), "--now", INIT,
        "--passphrase-env", "HUB_PASS", "--json",
    )  # fmt: skip
    assert code == 0
    assert b"seed" not in (hub / "root.key").read_bytes()
    assert _run(capsys, "keys", "init", "--region", "heihe", "--out", str(heihe))[0] == 2

    # an attestation by the first signing key, then rotation and revocation of the first key
    old_key = decode_private_key((heihe / "signing.key").read_bytes())
    old_blob = tmp_path / "old.att"
    old_blob.write_bytes(issue_attestation(_attestation(issued_at=T0 - 500), old_key))
    code, out, _ = _run(
        capsys, "keys", "rotate", "--dir", str(heihe), "--now", str(T0 - 300), "--json"
    )
    assert code == 0 and json.loads(out)["signing_key_id"] != first
    new_key = decode_private_key((heihe / "signing.key").read_bytes())
    att = tmp_path / "new.att"
    att.write_bytes(issue_attestation(_attestation(), new_key))
    status = StatusList("heihe", "heihe-1")
    status.set(6, 1)  # type: ignore[arg-type]
    status_file = tmp_path / "status.bin"
    status_file.write_bytes(status.sign(new_key, T0 - 10, T0 + 3600).to_bytes())

    bundle = tmp_path / "trust.bundle"
    code, out, _ = _run(
        capsys, "trust", "build", "--hub-root", str(hub / "root.key"), "--issuer", "hlj-hub",
        "--region-dir", str(heihe), "--scheme", "heihe=heihe@2025.1", "--version", "3",
        "--out", str(bundle), "--passphrase-env", "HUB_PASS", "--now", NOW, "--json",
    )  # fmt: skip
    assert code == 0
    hub_key = json.loads(out)["hub_key"]
    state = tmp_path / "state.json"

    def verify(path: Path, *extra: str) -> tuple[int, str, str]:
        checks = [] if "--nonce" in extra else ["--no-nonce"]
        checks += [] if "--status" in extra else ["--status", str(status_file)]
        return _run(
            capsys, "verify", str(path), "--trust", str(bundle), "--audience", "bank-1",
            "--now", NOW, "--json", *checks, *extra,
        )  # fmt: skip

    # fail closed: no nonce or no status list is an error unless explicitly waived
    base = ("verify", str(att), "--trust", str(bundle), "--audience", "bank-1", "--now", NOW)
    hub_arg = ("--hub-key", hub_key)
    code, _, err = _run(capsys, *base, *hub_arg, "--status", str(status_file))
    assert code == 2 and "NONCE_REQUIRED: --nonce" in err
    code, _, err = _run(capsys, *base, *hub_arg, "--nonce", "n-1")
    assert code == 2 and "STATUS_REQUIRED: --status" in err
    code, out, _ = _run(capsys, *base, *hub_arg, "--no-nonce", "--no-status-check")
    assert code == 0 and "(status NOT checked) (nonce NOT checked)" in out
    id_file = tmp_path / "id.txt"
    id_file.write_text(SUBJECT + "\n", encoding="ascii")
    code, out, _ = _run(
        capsys, *base, *hub_arg, "--nonce", "n-1", "--status", str(status_file),
        "--subject-id-file", str(id_file), "--salt", SALT.hex(),
    )  # fmt: skip
    assert code == 0 and "status valid" in out
    id_file.write_text("110101199003074477\n", encoding="ascii")
    code, _, err = _run(
        capsys, *base, *hub_arg, "--nonce", "n-1", "--status", str(status_file),
        "--subject-id-file", str(id_file), "--salt", SALT.hex(),
    )  # fmt: skip
    assert code == 1 and "SUBJECT_MISMATCH" in err

    code, out, _ = verify(
        att, "--hub-key", hub_key, "--state", str(state), "--nonce", "n-1",
        "--subject-id", SUBJECT, "--salt", SALT.hex(), "--status", str(status_file),
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["valid"] and doc["attestation"]["grade"] == "AA" and doc["status"] == "valid"
    assert SUBJECT not in out
    assert json.loads(state.read_text())["version"] == 3
    assert verify(old_blob, "--state", str(state))[0] == 0  # pinned hub key from state

    code, out, err = verify(att, "--state", str(state), "--nonce", "other")
    assert (code, json.loads(out)["reason"]) == (1, "NONCE_MISMATCH")
    assert "NONCE_MISMATCH" in err
    assert (
        json.loads(verify(att, "--hub-key", hub_key, "--audience", "bank-2")[1])["valid"] is False
    )

    # revoke the first key before the old attestation was issued: it now fails
    code, _, _ = _run(capsys, "keys", "revoke", first, "--at", str(T0 - 600), "--dir", str(heihe))
    assert code == 0
    code, _, _ = _run(
        capsys, "trust", "build", "--hub-root", str(hub / "root.key"), "--issuer", "hlj-hub",
        "--region-dir", str(heihe), "--version", "4", "--out", str(bundle),
        "--passphrase-env", "HUB_PASS", "--now", NOW,
    )  # fmt: skip
    assert code == 0
    code, out, _ = verify(old_blob, "--state", str(state))
    assert (code, json.loads(out)["reason"]) == (1, "KEY_REVOKED")
    assert verify(att, "--state", str(state))[0] == 0

    # an older bundle is refused once version 4 has been seen (rollback)
    code, _, _ = _run(
        capsys, "trust", "build", "--hub-root", str(hub / "root.key"), "--issuer", "hlj-hub",
        "--region-dir", str(heihe), "--version", "2", "--out", str(bundle),
        "--passphrase-env", "HUB_PASS", "--now", NOW,
    )  # fmt: skip
    code, out, _ = verify(att, "--state", str(state))
    assert (code, json.loads(out)["reason"]) == (1, "TRUST_ROLLBACK")


def test_verify_requires_hub_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"")
    code, _, err = _run(capsys, "verify", str(f), "--trust", str(f), "--audience", "a")
    assert code == 2 and "HUB_KEY_REQUIRED" in err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(b"\x93\x00\xff binary", "is not a hub key file", id="binary-file"),
        pytest.param(b'{"other": 1}', "is not a hub key file", id="json-without-public_key"),
        pytest.param(b'{"public_key": "abcd"}', "32 bytes", id="short-key"),
    ],
)
def test_a_wrong_hub_key_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str
) -> None:
    """The integrator learns which flag is wrong, not a codec error."""
    f, key = tmp_path / "x", tmp_path / "keyset.bin"
    f.write_bytes(b"")
    key.write_bytes(content)
    code, _, err = _run(
        capsys, "verify", str(f), "--trust", str(f), "--audience", "a", "--hub-key", str(key)
    )
    assert code == 2
    assert err.startswith("error: INVALID_ARGUMENT: --hub-key") and says in err
    assert "codec" not in err
