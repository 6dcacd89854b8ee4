"""``huxin demo --keep DIR`` prints ``huxin verify`` commands that run as pasted
(issue 14 item 17).

The demo is run as a user runs it (a child process, three node processes of
its own); then the printed command lines are run exactly as printed, by a
shell, from another directory, long after the nodes have stopped.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ID_RE = re.compile(r"\b\d{17}[\dXx]\b")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("demo")
    out = subprocess.run(
        [sys.executable, "-m", "node", "demo", "--keep", str(root / "kept"), "--people", "800",
         "--workers", "1"],
        capture_output=True, text=True, timeout=900, check=False, cwd=root,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "kept", out.stdout


def _printed(text: str) -> list[str]:
    return [line[2:] for line in text.splitlines() if line.startswith("$ huxin verify ")]


def _paste(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a printed line through a shell, with ``huxin`` on PATH as after installing."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("which", "exit_code", "says"),
    [
        pytest.param(0, 0, "VALID: heihe ", id="the-check-of-stage-9-is-valid"),
        pytest.param(1, 0, "VALID: heihe meets hainan/", id="recognised-in-hainan-is-valid"),
        pytest.param(2, 0, "VALID: hainan meets hainan-credit-card/", id="bank-card-is-valid"),
        pytest.param(3, 1, "error: STATUS_REVOKED", id="after-withdrawal-the-newer-list-decides"),
    ],
)
def test_the_printed_verify_command_runs_as_pasted(
    demo: tuple[Path, str], tmp_path: Path, which: int, exit_code: int, says: str
) -> None:
    """issue 14 item 17 (REQ C2, H12): the printed line needs nothing but the kept
    directory (attestation, the status list of the time of the check, trust bundle, hub
    key file, ID-number file) and carries --now, so pasted later, from anywhere, it gives
    the demo's verdict: VALID at the check, STATUS_REVOKED with the list fetched after
    the withdrawal (issue 14 item 1: the newer list decides); the recognition and the
    credit-card checks of issue 16 (C3, N18, N19) run as pasted too."""
    _, stdout = demo
    commands = _printed(stdout)
    assert len(commands) == 4, stdout
    result = _paste(commands[which], tmp_path)
    assert result.returncode == exit_code, (commands[which], result.stdout, result.stderr)
    assert says in result.stdout + result.stderr
    if exit_code == 0:
        assert result.stdout.startswith(says) and "status valid" in result.stdout
        assert "warning:" not in result.stderr


def test_the_kept_directory_holds_what_the_command_reads(demo: tuple[Path, str]) -> None:
    """issue 14 item 17: every file the commands name is in DIR/verify; the ID number
    file is owner-only and the ID number itself is never printed or on a command line."""
    kept, stdout = demo
    verify = (kept / "verify").resolve()
    names = {p.name for p in verify.iterdir()}
    assert {"attestation.bin", "trust.bundle", "hub.key", "subject-id",
            "heihe-status-at-check.bin", "heihe-status-after-withdrawal.bin"} <= names  # fmt: skip
    assert stat.S_IMODE((verify / "subject-id").stat().st_mode) == 0o600
    id_number = (verify / "subject-id").read_text(encoding="ascii").strip()
    assert ID_RE.fullmatch(id_number)
    assert id_number not in stdout and not ID_RE.search(stdout)
    for command in _printed(stdout):
        assert "--now " in command and "--subject-id-file " in command
        paths = [a for a in command.split() if a.startswith("/")]
        assert paths and all(Path(p).parent == verify for p in paths), command
