"""`huxin serve` that cannot start exits at once with one `error:` line.

An error after the database was opened must not leave its threads running: the
process would print the error (or a traceback, for a port in use) and never exit,
a supervisor would see a live process and the primary lock would stay held.
"""

from __future__ import annotations

import re
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli._init import init_region, load_or_create_ca
from tests.support.processes import huxin


def _config(tmp_path: Path, **listen: str) -> Path:
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    init_region(tmp_path / "heihe", "heihe", "heihe", ca, now)
    path = tmp_path / "heihe" / "node.toml"
    text = path.read_text()
    text = re.sub(r'peer = "[^"]*"', 'peer = "127.0.0.1:0"', text)
    text = re.sub(r'citizen = "[^"]*"', 'citizen = "127.0.0.1:0"', text)
    for key, value in listen.items():
        text = re.sub(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text)
    path.write_text(text)
    return path


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    return huxin("serve", "--config", str(config), timeout=30)


@pytest.mark.parametrize("key", ["peer", "citizen", "metrics"])
def test_an_address_in_use_is_one_error_line_and_exit_2(tmp_path: Path, key: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        proc = _serve(_config(tmp_path, **{key: address}))  # timeout=30: it must not hang
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]  # above it, at most grpc's own log line
    assert last.startswith(f"error: LISTEN_FAILED: listen.{key}: cannot listen on {address!r} (")
    reason = "address in use or not available" if key != "metrics" else "Address already in use"
    assert reason in last
    assert "Traceback" not in proc.stderr


def test_an_unknown_scheme_exits_instead_of_hanging(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text().replace('scheme = "heihe"', 'scheme = "atlantis"', 1))
    proc = _serve(config)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: UNKNOWN_SCHEME: ")
    assert "Traceback" not in proc.stderr
