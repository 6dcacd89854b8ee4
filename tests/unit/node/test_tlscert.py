"""The node's TLS certificate: checks at start, the expiry gauge, renewal.

REQ: C1 — a region's node is its only way in: a certificate that silently
expires cuts the region off (every handshake fails), so serve refuses it, warns
before, exports its expiry, and ``huxin init cert`` renews it.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from keys import CertificateAuthority, region_of_certificate
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import NodeConfig, load_config
from node.federation._tlscert import (
    WARN_DAYS,
    CertError,
    check_certificate,
    check_key_pair,
    expiry_warning,
    export_expiry,
    read_certificate,
    renew_certificate,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _node(tmp_path: Path, region: str = "heihe") -> tuple[NodeConfig, CertificateAuthority]:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    res = init_region(tmp_path / region, region, "heihe", ca, NOW)
    return load_config(res.config), ca


def _cert(ca: CertificateAuthority, issued_days_ago: float, days: int) -> bytes:
    return ca.issue("heihe", NOW - timedelta(days=issued_days_ago), days=days).cert_pem


# ---------------------------------------------------------------- checks at start


@pytest.mark.parametrize(
    ("issued_days_ago", "days", "code"),
    [
        pytest.param(100, 90, "TLS_CERT_EXPIRED", id="expired-10-days-ago"),
        pytest.param(90.01, 90, "TLS_CERT_EXPIRED", id="expired-minutes-ago"),
        pytest.param(-2, 90, "TLS_CERT_NOT_YET_VALID", id="issued-for-the-day-after-tomorrow"),
    ],
)
def test_a_certificate_outside_its_window_is_refused(
    tmp_path: Path, issued_days_ago: float, days: int, code: str
) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW - timedelta(days=200))
    info = read_certificate(_cert(ca, issued_days_ago, days))
    with pytest.raises(CertError) as exc:
        check_certificate(info, NOW)
    assert exc.value.code == code
    assert exc.value.field == "tls.cert" and str(exc.value).startswith("tls.cert: ")
    when = info.not_after if code == "TLS_CERT_EXPIRED" else info.not_before
    assert when.isoformat(timespec="seconds") in str(exc.value)


def test_a_valid_certificate_passes_and_warns_only_in_its_last_days(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW - timedelta(days=200))
    fresh = read_certificate(_cert(ca, 1, 90))
    check_certificate(fresh, NOW)
    assert fresh.region == "heihe" and fresh.state(NOW) == "valid"
    assert expiry_warning(fresh, NOW) is None
    late = read_certificate(_cert(ca, 80, 90))  # ~10 days left
    check_certificate(late, NOW)
    warning = expiry_warning(late, NOW)
    assert warning is not None and warning["field"] == "tls.cert"
    assert warning["days_left"] == 10 and late.state(NOW) == "expires soon"
    edge = read_certificate(_cert(ca, 90 - WARN_DAYS - 1, 90))  # just over WARN_DAYS left
    assert expiry_warning(edge, NOW) is None


def test_garbage_is_tls_cert_invalid() -> None:
    with pytest.raises(CertError) as exc:
        read_certificate(b"not a certificate")
    assert exc.value.code == "TLS_CERT_INVALID"


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    a, b = ca.issue("heihe", NOW), ca.issue("heihe", NOW)
    check_key_pair(a.cert_pem, a.key_pem)
    with pytest.raises(CertError) as exc:
        check_key_pair(a.cert_pem, b.key_pem)
    assert (exc.value.code, exc.value.field) == ("TLS_KEY_MISMATCH", "tls.key")


def test_the_expiry_gauge_is_not_after_in_unix_seconds(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path / "ca", NOW)
    info = read_certificate(_cert(ca, 0, 90))
    registry = CollectorRegistry()
    export_expiry(registry, info)
    value = registry.get_sample_value("huxin_tls_cert_expiry_seconds")
    assert value == info.not_after.timestamp()
    assert value == pytest.approx((NOW + timedelta(days=90)).timestamp(), abs=1)


# ---------------------------------------------------------------- renewal


def test_renewal_issues_a_new_key_and_certificate_for_the_same_region(tmp_path: Path) -> None:
    config, ca = _node(tmp_path)
    old_cert, old_key = config.tls.cert.read_bytes(), config.tls.key.read_bytes()
    cert_mode = stat.S_IMODE(config.tls.cert.stat().st_mode)
    later = NOW + timedelta(days=80)
    info = renew_certificate(config, ca, later, 30)
    new_cert, new_key = config.tls.cert.read_bytes(), config.tls.key.read_bytes()
    assert new_cert != old_cert and new_key != old_key
    assert region_of_certificate(new_cert) == "heihe" == info.region
    assert info.not_after == read_certificate(new_cert).not_after
    assert info.days_left(later) == 30
    check_key_pair(new_cert, new_key)
    check_certificate(info, later)
    assert stat.S_IMODE(config.tls.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.tls.cert.stat().st_mode) == cert_mode  # keeps its mode
    assert not list(config.tls.cert.parent.glob(".*.renew"))  # no temporary file left
    # the pair that was in use is kept, owner-only, to go back to
    assert Path(f"{config.tls.cert}.prev").read_bytes() == old_cert
    assert Path(f"{config.tls.key}.prev").read_bytes() == old_key
    assert stat.S_IMODE(Path(f"{config.tls.key}.prev").stat().st_mode) == 0o600


def test_renewal_replaces_a_missing_certificate(tmp_path: Path) -> None:
    config, ca = _node(tmp_path)
    config.tls.cert.unlink()
    info = renew_certificate(config, ca, NOW, 90)
    assert info.region == "heihe" and config.tls.cert.exists()


@pytest.mark.parametrize(
    ("case", "code", "field"),
    [
        pytest.param("other-ca", "CA_MISMATCH", "tls.ca", id="another-ca"),
        pytest.param("other-region", "REGION_MISMATCH", "tls.cert", id="cert-of-another-region"),
        pytest.param("foreign-cert", "CA_MISMATCH", "tls.cert", id="cert-from-another-ca"),
        pytest.param("days-0", "INVALID_ARGUMENT", "--days", id="zero-days"),
        pytest.param("days-1000", "INVALID_ARGUMENT", "--days", id="too-many-days"),
        pytest.param("ca-ends-first", "CA_EXPIRES_FIRST", "--days", id="outlives-the-ca"),
        pytest.param("ca-expired", "CA_EXPIRED", "--ca", id="expired-ca"),
    ],
)
def test_renewal_refusals_write_nothing(tmp_path: Path, case: str, code: str, field: str) -> None:
    config, ca = _node(tmp_path)
    now, days = NOW, 90
    if case == "other-ca":
        ca = CertificateAuthority.create("huxin-dev-ca", NOW)
    elif case == "other-region":
        config.tls.cert.write_bytes(ca.issue("hainan", NOW).cert_pem)
    elif case == "foreign-cert":
        other = CertificateAuthority.create("huxin-dev-ca", NOW)
        config.tls.cert.write_bytes(other.issue("heihe", NOW).cert_pem)
    elif case.startswith("days-"):
        days = int(case[5:])
    elif case == "ca-ends-first":
        now = NOW + timedelta(days=3650 - 30)
    elif case == "ca-expired":
        now = NOW + timedelta(days=3651)
    before = (config.tls.cert.read_bytes(), config.tls.key.read_bytes())
    with pytest.raises(CertError) as exc:
        renew_certificate(config, ca, now, days)
    assert (exc.value.code, exc.value.field) == (code, field)
    assert (config.tls.cert.read_bytes(), config.tls.key.read_bytes()) == before


def test_cli_init_cert_renews_and_prints_the_expiry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ca = _node(tmp_path)
    cfg = str(tmp_path / "heihe" / "node.toml")
    assert main(["init", "cert", "--config", cfg, "--days", "45", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["region"] == "heihe" and doc["ca"] == str(tmp_path / "ca")
    assert doc["not_after"] == read_certificate(config.tls.cert.read_bytes()).not_after.isoformat()
    assert doc["state"] == "valid" and 43 <= doc["days_left"] <= 45
    assert main(["init", "cert", "--config", cfg, "--ca", str(tmp_path / "ca")]) == 0
    assert "restart the node to use it" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["--ca", "{tmp}/nowhere"], "CA_NOT_FOUND", id="no-ca-dir"),
        pytest.param(["--days", "0"], "INVALID_ARGUMENT", id="zero-days"),
    ],
)
def test_cli_init_cert_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: str
) -> None:
    _node(tmp_path)
    cfg = str(tmp_path / "heihe" / "node.toml")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["init", "cert", "--config", cfg, *args]) == 2
    assert capsys.readouterr().err.startswith(f"error: {code}: ")
    assert not (tmp_path / "nowhere").exists()  # never creates a CA


def test_status_shows_the_certificate_and_signing_key_validity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ca = _node(tmp_path)
    cfg = str(tmp_path / "heihe" / "node.toml")
    assert main(["status", "--config", cfg, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tls"]["not_after"] == (NOW + timedelta(days=90)).isoformat()
    state = read_certificate(config.tls.cert.read_bytes()).state(datetime.now(UTC))
    assert doc["tls"]["state"] == state  # status reads the real clock
    assert doc["signing_key"]["not_after"] == (NOW + timedelta(days=365)).isoformat()
    assert main(["status", "--config", cfg]) == 0
    text = capsys.readouterr().out
    assert "tls certificate: valid until 2027-02-21T12:00:00+00:00" in text
    assert "signing key: " in text and "to 2027-11-23T12:00:00+00:00" in text


def test_renewing_a_federated_node_says_the_trust_list_pins_the_old_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H17 — routed calls check the fingerprint the hub lists (node.federation._route): the
    renewal names the new one, and `huxin hub register` lists it."""
    from keys import certificate_fingerprint
    from node.demo._federation import init_federation
    from node.store import connect

    layout = init_federation(tmp_path / "fed", ["heihe"], "heilongjiang", NOW, base_port=17600)
    cfg = layout.nodes["heihe"].config
    old = certificate_fingerprint((cfg.parent / "tls/node.pem").read_bytes())
    assert main(["init", "cert", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    new = certificate_fingerprint((cfg.parent / "tls/node.pem").read_bytes())
    assert doc["federated"] is True and doc["tls_sha256"] == new.hex() != old.hex()
    assert main(["init", "cert", "--config", str(cfg)]) == 0
    assert "huxin hub register" in capsys.readouterr().out
    hub_cfg = layout.nodes["heilongjiang"].config
    assert main(["hub", "register", "--config", str(hub_cfg), "--region-dir",
                 str(cfg.parent), "--json"]) == 0  # fmt: skip
    conn = connect(load_config(hub_cfg).database, create=False)
    try:
        listed = conn.execute("SELECT tls_sha256 FROM hub_regions WHERE region = 'heihe'")
        row = listed.fetchone()
    finally:
        conn.close()
    latest = certificate_fingerprint((cfg.parent / "tls/node.pem").read_bytes())
    assert bytes(row[0]) == latest


def test_a_staged_next_certificate_is_pinned_beside_the_live_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQ: H17 — issue 14 item 9: `init cert --next` keeps the next pair aside; the
    pins of a node (what `hub register` and the hub's own trust-list entry list) are
    the live and the staged certificate; `--use-next` switches, once; the hub's own
    entry pins its certificate from `init federation` on."""
    from keys import certificate_fingerprint, load_trust
    from node.demo._federation import init_federation
    from node.federation._tlscert import certificate_pins, next_paths

    layout = init_federation(tmp_path / "fed", ["heihe"], "heilongjiang", NOW, base_port=17650)
    hub_cfg = layout.nodes["heilongjiang"].config
    hub_key = bytes.fromhex(layout.hub_key_file("heilongjiang").read_text().strip())
    first = load_trust(layout.bundle("heilongjiang").read_bytes(), hub_key, NOW)
    hub_pem = (hub_cfg.parent / "tls/node.pem").read_bytes()
    assert first.regions["heilongjiang"].tls_sha256 == {certificate_fingerprint(hub_pem)}
    config = load_config(hub_cfg)
    live = certificate_fingerprint(config.tls.cert.read_bytes())
    assert certificate_pins(config) == (live,)
    assert main(["init", "cert", "--config", str(hub_cfg), "--next", "--json"]) == 0
    staged = json.loads(capsys.readouterr().out)
    nxt = certificate_fingerprint(next_paths(config)[0].read_bytes())
    assert staged["tls_sha256"] == nxt.hex() and config.tls.cert.read_bytes() == hub_pem
    assert stat.S_IMODE(next_paths(config)[1].stat().st_mode) == 0o600
    assert certificate_pins(config) == tuple(sorted((live, nxt)))
    out = tmp_path / "v2.bin"
    assert main(["hub", "trust-list", "--config", str(hub_cfg), "--force", "--out", str(out)]) == 0
    capsys.readouterr()
    # `hub trust-list` signs at the wall clock, so the list is read at the wall clock too
    second = load_trust(out.read_bytes(), hub_key, datetime.now(UTC))
    assert second.regions["heilongjiang"].tls_sha256 == {live, nxt}
    assert main(["init", "cert", "--config", str(hub_cfg), "--use-next", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tls_sha256"] == nxt.hex()
    assert certificate_pins(config) == (nxt,)
    assert certificate_pins(config, presented=hub_pem) == tuple(sorted((live, nxt)))
    assert main(["init", "cert", "--config", str(hub_cfg), "--use-next"]) == 2
    assert "error: NO_NEXT_CERTIFICATE:" in capsys.readouterr().err
