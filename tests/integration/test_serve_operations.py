"""Operating `huxin serve`: owner-only files and SIGHUP reopening the
log file after logrotate moved it, in the primary and its peer-port workers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from tests._waiting import wait_until
from tests.support.processes import ServeProcess, huxin, spawn_serve


def _init(tmp_path: Path) -> Path:
    out = huxin("init", "region", "--region", "heihe", "--scheme", "heihe",
                "--out", str(tmp_path / "heihe"), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    toml = tmp_path / "heihe" / "node.toml"
    text = toml.read_text().replace('"127.0.0.1:7443"', '"127.0.0.1:0"')
    toml.write_text(text.replace('"127.0.0.1:7444"', '"127.0.0.1:0"').replace(
        "# peer_workers = 2", "peer_workers = 2"))  # fmt: skip
    return toml


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_files_are_owner_only_and_sighup_reopens_the_log(tmp_path: Path) -> None:
    """REQ: privacy (no data readable by other local users); operators rotate logs."""
    toml = _init(tmp_path)
    node_dir = toml.parent
    proc = ServeProcess(toml)
    try:
        for name in ("node.db", "node.log", "node.toml", "keys/signing.key"):
            mode = stat.S_IMODE((node_dir / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
        for extra in ("node.db-wal", "node.db-shm"):
            if (node_dir / extra).exists():
                assert stat.S_IMODE((node_dir / extra).stat().st_mode) == 0o600, extra
        assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700
        pids = {proc.p.pid} | {w["pid"] for w in proc.ports["workers"]}
        assert len(pids) == 2
        os.rename(node_dir / "node.log", node_dir / "node.log.1")  # logrotate's move
        proc.p.send_signal(signal.SIGHUP)
        fresh = node_dir / "node.log"
        wait_until(lambda: fresh.exists() and len(
            [x for x in _lines(fresh) if x["msg"] == "log file reopened (SIGHUP)"]) == 2,
            "both processes reopened the log")  # fmt: skip
        reopened = [x for x in _lines(fresh) if x["msg"] == "log file reopened (SIGHUP)"]
        assert {x["pid"] for x in reopened} == pids  # the primary and its worker
        assert proc.p.poll() is None  # SIGHUP did not end the node
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
        old = _lines(node_dir / "node.log.1")
        assert any(x["msg"] == "node started" for x in old)
        assert not any(x["msg"] == "log file reopened (SIGHUP)" for x in old)
    finally:
        proc.stop()
    assert proc.p.returncode == 0
    assert any(x["msg"] == "node stopped" for x in _lines(node_dir / "node.log"))


def test_serve_says_where_it_listens(tmp_path: Path) -> None:
    """with port 0 the operator learns the ports from one stdout line."""
    toml = _init(tmp_path)
    ready = tmp_path / "ready.json"
    proc = spawn_serve(toml, ready, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        ports = json.loads(ready.read_text())
        assert line == (
            f"region heihe serving: peer 127.0.0.1:{ports['peer']}, citizen {ports['citizen']}, "
            f"2 processes (pid {proc.pid} + workers) (SIGTERM to stop)"
        )
        status = _status(toml)
        assert status["running"] is True and status["pid"] == proc.pid
        assert (status["peer"], status["citizen"]) == (ports["peer"], ports["citizen"])
        assert [w["alive"] for w in status["workers"]] == [True]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert _status(toml) == {"running": False}  # its description went with it


def _status(toml: Path) -> dict[str, object]:
    out = huxin("status", "--config", str(toml), "--json", timeout=60, check=True)
    process: dict[str, object] = json.loads(out.stdout)["process"]
    return process
