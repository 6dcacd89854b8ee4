"""`huxin serve` and the node's TLS certificate, as real processes.

REQ: C1 — a node whose certificate has expired would log "node started" and fail
every handshake in and out, so it refuses to start; one about to expire starts,
warns and exports the expiry, so the operator hears of it before day 91.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.cli._init import init_region, load_or_create_ca
from node.federation._tlscert import read_certificate
from tests.support.processes import huxin, spawn_serve, wait_for_ready


def _node(tmp_path: Path, issued_days_ago: float, days: int = 90) -> Path:
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now - timedelta(days=200))
    init_region(tmp_path / "heihe", "heihe", "heihe", ca, now, metrics_listen="127.0.0.1:0")
    path = tmp_path / "heihe" / "node.toml"
    text = re.sub(r'(peer|citizen) = "[^"]*"', r'\1 = "127.0.0.1:0"', path.read_text())
    path.write_text(text)
    nc = ca.issue("heihe", now - timedelta(days=issued_days_ago), days=days)
    (tmp_path / "heihe" / "tls" / "node.pem").write_bytes(nc.cert_pem)
    (tmp_path / "heihe" / "tls" / "node.key").write_bytes(nc.key_pem)
    return path


def test_serve_refuses_an_expired_certificate_and_starts_after_renewal(tmp_path: Path) -> None:
    config = _node(tmp_path, issued_days_ago=100)
    expired_at = read_certificate((tmp_path / "heihe/tls/node.pem").read_bytes()).not_after
    proc = huxin("serve", "--config", str(config), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: TLS_CERT_EXPIRED: tls.cert: ")
    assert expired_at.isoformat(timespec="seconds") in proc.stderr
    assert "Traceback" not in proc.stderr
    log = (
        (tmp_path / "heihe" / "node.log").read_text()
        if (tmp_path / "heihe/node.log").exists()
        else ""
    )
    assert "node started" not in log
    # status says so, then the renewal (CA found next to the node directory) fixes it
    status = huxin("status", "--config", str(config), "--json", timeout=60)
    assert json.loads(status.stdout)["tls"]["state"] == "EXPIRED"
    renew = huxin("init", "cert", "--config", str(config), "--json", timeout=60)
    assert renew.returncode == 0, renew.stderr
    assert json.loads(renew.stdout)["state"] == "valid"
    _serve_and_check(tmp_path, config, expect_warning=False)


def test_serve_warns_and_exports_the_expiry_of_a_certificate_about_to_expire(
    tmp_path: Path,
) -> None:
    config = _node(tmp_path, issued_days_ago=85)  # 5 days left
    _serve_and_check(tmp_path, config, expect_warning=True)


def _serve_and_check(tmp_path: Path, config: Path, *, expect_warning: bool) -> None:
    ready = tmp_path / "ready.json"
    proc = spawn_serve(config, ready, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ports = wait_for_ready(proc, ready, output=lambda: proc.communicate()[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics") as resp:
            metrics = resp.read().decode()
        not_after = read_certificate((tmp_path / "heihe/tls/node.pem").read_bytes()).not_after
        line = next(
            x for x in metrics.splitlines() if x.startswith("huxin_tls_cert_expiry_seconds")
        )
        assert float(line.split()[-1]) == not_after.timestamp()
        time.sleep(0.2)
        lines = [json.loads(x) for x in (tmp_path / "heihe" / "node.log").read_text().splitlines()]
        warnings = [x for x in lines if x["msg"] == "tls certificate expires soon"]
        if expect_warning:
            assert len(warnings) == 1, lines
            w = warnings[0]
            assert (w["level"], w["field"], w["days_left"]) == ("warning", "tls.cert", 4)
            assert w["not_after"] == not_after.isoformat(timespec="seconds")
        else:
            assert warnings == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_serve_refuses_a_signing_key_that_is_no_longer_valid(tmp_path: Path) -> None:
    """REQ: C2 — a node whose signing key expired would sign consents,
    attestations and checkpoints nobody accepts; it refuses to start and says what to do."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now - timedelta(days=500))
    init_region(tmp_path / "heihe", "heihe", "heihe", ca, now - timedelta(days=400))
    nc = ca.issue("heihe", now)  # a valid certificate: only the signing key is old
    (tmp_path / "heihe" / "tls" / "node.pem").write_bytes(nc.cert_pem)
    (tmp_path / "heihe" / "tls" / "node.key").write_bytes(nc.key_pem)
    proc = huxin("serve", "--config", str(tmp_path / "heihe" / "node.toml"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: NODE_KEY_EXPIRED: keys.signing: KEY_NOT_VALID ")
    assert "huxin keys rotate" in proc.stderr and "Traceback" not in proc.stderr
