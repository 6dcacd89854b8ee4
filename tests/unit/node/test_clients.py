"""The client registry and the caller check (issue 14 item 9; docs/adr/0415).

Real certificates from a real CA, real registry files; the check is the one the
guard runs on every peer-port call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import (
    CertificateAuthority,
    KeyPair,
    KeySet,
    TrustedRegion,
    TrustList,
    certificate_fingerprint,
)
from node.cli._main import main
from node.core._errors import NodeError
from node.demo._federation import init_federation
from node.federation._callers import CLIENT, FOREIGN_CLIENT, OTHER, PEER, CallerCheck
from node.federation._clients import (
    MAX_CLIENTS,
    ClientRegistry,
    RegistryFileError,
    add_client,
    client_entry,
    parse_registry,
    read_registry,
    revoke_client,
)
from node.federation._trust import TrustState

NOW = datetime(2026, 11, 23, tzinfo=UTC)
T = int(NOW.timestamp())


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test-ca", NOW)


def _refusal(call: Callable[[], object]) -> tuple[str, str]:
    try:
        call()
    except NodeError as exc:
        return exc.status.name, exc.code
    return "OK", ""


# -- the registry file ------------------------------------------------------------


ENTRY = {"id": "heihe.court", "sha256": "ab" * 32, "issued_at": 1, "not_after": 2, "revoked_at": 0}


def _doc(**over: object) -> bytes:
    doc: dict[str, object] = {"kind": "huxin-client-registry", "version": 1, "clients": [ENTRY]}
    doc.update(over)
    return json.dumps(doc).encode()


def _entry(**over: object) -> bytes:
    return _doc(clients=[{**ENTRY, **over}])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"{", id="not-json"),
        pytest.param(b"\xff", id="not-utf8"),
        pytest.param(_doc(kind="other"), id="other-kind"),
        pytest.param(_doc(version=2), id="other-version"),
        pytest.param(_doc(clients={}), id="clients-not-a-list"),
        pytest.param(_doc(clients=[{"id": "heihe.court"}]), id="entry-missing-fields"),
        pytest.param(_entry(id="Heihe Court"), id="bad-identity"),
        pytest.param(_entry(sha256="ab"), id="short-hash"),
        pytest.param(_entry(issued_at=-1), id="negative-time"),
        pytest.param(_entry(revoked_at=True), id="boolean-time"),
        pytest.param(_doc(clients=[ENTRY, ENTRY]), id="a-certificate-twice"),
        pytest.param(_doc(clients=[{}] * (MAX_CLIENTS + 1)), id="too-many"),
        pytest.param(b" " * (4 * 1024 * 1024 + 1), id="too-large"),
    ],
)
def test_a_registry_file_that_is_not_one_is_refused(data: bytes) -> None:
    """Issue 14 item 9: the registry is bounded (entries, bytes) and strictly read."""
    with pytest.raises(RegistryFileError) as info:
        parse_registry(data)
    assert info.value.code == "CLIENT_REGISTRY_INVALID"


def test_issue_and_revoke_by_identity_or_by_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Issue 14 item 9: revoking by identity revokes every certificate of it in force;
    revoking by fingerprint only that one; nothing is deleted; files are owner-only."""
    path = tmp_path / "clients.json"
    old, new = ca.issue("heihe.court", NOW), ca.issue("heihe.court", NOW)
    other = ca.issue("heihe.tax", NOW)
    for c in (old, new, other):
        add_client(path, client_entry(c.region_id, c.cert_pem))
    with pytest.raises(RegistryFileError) as twice:
        add_client(path, client_entry("heihe.court", old.cert_pem))
    assert twice.value.code == "CLIENT_EXISTS"
    assert [e.sha256 for e in revoke_client(path, "heihe.court", T, old.fingerprint)] == [
        old.fingerprint
    ]
    assert {e.sha256 for e in revoke_client(path, "heihe.court", T + 1)} == {new.fingerprint}
    with pytest.raises(RegistryFileError) as none_left:
        revoke_client(path, "heihe.court", T + 2)
    assert none_left.value.code == "CLIENT_UNKNOWN"
    entries = {e.sha256: e for e in read_registry(path)}
    assert len(entries) == 3 and entries[other.fingerprint].revoked_at == 0
    assert (entries[old.fingerprint].revoked_at, entries[new.fingerprint].revoked_at) == (T, T + 1)
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_node_view_follows_the_file_and_fails_closed(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Issue 14 item 9: a node sees an issue or a revocation at its next check (no
    restart); a missing file registers nobody; an unreadable one refuses everyone
    (UNAVAILABLE CLIENT_REGISTRY_UNREADABLE) until it is fixed."""
    path = tmp_path / "clients.json"
    view = ClientRegistry(path)
    court = ca.issue("heihe.court", NOW)
    check = lambda: view.check("heihe.court", court.fingerprint)  # noqa: E731
    assert _refusal(check) == ("UNAUTHENTICATED", "CLIENT_UNKNOWN")
    add_client(path, client_entry("heihe.court", court.cert_pem))
    assert _refusal(check) == ("OK", "")
    assert _refusal(lambda: view.check("heihe.tax", court.fingerprint)) == (
        "UNAUTHENTICATED",
        "CLIENT_UNKNOWN",
    )  # a registered certificate speaks only for its own identity
    revoke_client(path, "heihe.court", T)
    assert _refusal(check) == ("UNAUTHENTICATED", "CLIENT_REVOKED")
    good = path.read_bytes()
    path.write_bytes(b"{broken")
    assert _refusal(check) == ("UNAVAILABLE", "CLIENT_REGISTRY_UNREADABLE")
    path.write_bytes(good)
    assert _refusal(check) == ("UNAUTHENTICATED", "CLIENT_REVOKED")


# -- the caller check -------------------------------------------------------------


def _trust(ca: CertificateAuthority, pins: dict[str, tuple[bytes, ...]]) -> TrustState:
    hub = KeyPair.generate()
    regions = []
    for region, fps in pins.items():
        root = KeyPair.generate()
        ks = KeySet.new(region, root.public_key, NOW).add_key(
            KeyPair.generate().public_key, 0, 2**40
        )
        regions.append(TrustedRegion(region=region, root_public_key=root.public_key,
                                     key_set=ks.sign(root), tls_sha256=fps))  # fmt: skip
    env = TrustList("hub", 1, T - 60, T + 3600, tuple(regions)).sign(hub)
    state = TrustState("heihe", hub="hub", hub_key=hub.public_key)
    state.adopt(env.to_bytes(), T)
    return state


def test_callers_are_told_apart(tmp_path: Path, ca: CertificateAuthority) -> None:
    """Issue 14 item 9: listed regions and hubs are peers; this region's organisations
    and configured sources are own clients; other listed regions' organisations are
    foreign clients; anything else is left to the services."""
    trust = _trust(ca, {"heihe": (), "hainan": (), "hub": ()})
    check = CallerCheck("heihe", trust, ClientRegistry(tmp_path / "c.json"), sources=("court",))
    kinds = {
        i: check.kind(i)
        for i in ("heihe", "hainan", "hub", "heihe.bank", "court", "hainan.bank", "fuzhou", "x.y")
    }
    assert kinds == {
        "heihe": PEER, "hainan": PEER, "hub": PEER, "heihe.bank": CLIENT, "court": CLIENT,
        "hainan.bank": FOREIGN_CLIENT, "fuzhou": OTHER, "x.y": OTHER,
    }  # fmt: skip
    standalone = CallerCheck("heihe", TrustState("heihe", static_peers=("hainan",)),
                             ClientRegistry(tmp_path / "c.json"))  # fmt: skip
    assert standalone.kind("hainan") == PEER and standalone.kind("hainan.bank") == FOREIGN_CLIENT
    assert standalone.pins("hainan") is None  # no trust list: the CA decides (development)


@pytest.mark.parametrize(
    ("who", "listed", "expect"),
    [
        pytest.param("hainan", "live", ("OK", ""), id="pinned"),
        pytest.param("hainan", "live+next", ("OK", ""), id="next-also-listed"),
        pytest.param("hainan", "other", ("UNAUTHENTICATED", "CERTIFICATE_NOT_PINNED"),
                     id="another-certificate"),
        pytest.param("hainan", "none", ("UNAUTHENTICATED", "CERTIFICATE_NOT_PINNED"),
                     id="entry-pins-nothing"),
        pytest.param("heihe", "none", ("OK", ""), id="own-certificate"),
    ],
)  # fmt: skip
def test_a_peer_must_present_a_pinned_certificate(
    tmp_path: Path, ca: CertificateAuthority, who: str, listed: str, expect: tuple[str, str]
) -> None:
    """Issue 14 item 9: a listed identity is accepted only with a certificate its trust
    list entry pins (the live one or the listed next one); an entry pinning nothing
    admits nobody; the node's own certificate is always its own."""
    live, nxt, own = ca.issue(who, NOW), ca.issue(who, NOW), ca.issue("heihe", NOW)
    fps = {"live": (live.fingerprint,), "live+next": (nxt.fingerprint, live.fingerprint),
           "other": (nxt.fingerprint,), "none": ()}[listed]  # fmt: skip
    trust = _trust(ca, {who: fps} if who != "heihe" else {"heihe": ()})
    check = CallerCheck("heihe", trust, ClientRegistry(tmp_path / "c.json"),
                        own_certificate=own.cert_pem)  # fmt: skip
    cert = own if who == "heihe" else live
    assert _refusal(lambda: check.admit_certificate(who, cert.cert_pem)) == expect


# -- the command line --------------------------------------------------------------


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clientcli") / "fed"
    init_federation(root, ["heihe"], "heilongjiang", NOW, clients=["heihe.bank"], base_port=17700)
    return root


def test_init_federation_registers_its_clients(fed: Path) -> None:
    """Issue 14 item 9: `init federation --clients` registers each certificate with
    its region's node (as `huxin client issue` would)."""
    (entry,) = read_registry(fed / "heihe" / "clients.json")
    cert = (fed / "clients" / "heihe.bank.pem").read_bytes()
    assert (entry.identity, entry.sha256) == ("heihe.bank", certificate_fingerprint(cert))


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["issue", "hainan.bank"], "CLIENT_NOT_OURS", id="another-regions-client"),
        pytest.param(["issue", "heihe"], "CLIENT_NOT_OURS", id="the-region-itself"),
        pytest.param(["issue", "Heihe.Bank"], "INVALID_ARGUMENT", id="not-an-id"),
        pytest.param(["issue", "heihe.tax", "--days", "0"], "INVALID_ARGUMENT", id="zero-days"),
        pytest.param(["issue", "heihe.tax", "--ca", "/nowhere"], "CA_NOT_FOUND", id="no-ca"),
        pytest.param(["revoke", "heihe.tax"], "CLIENT_UNKNOWN", id="revoke-unknown"),
        pytest.param(["revoke", "heihe.bank", "--sha256", "zz"], "INVALID_ARGUMENT",
                     id="revoke-bad-hash"),
    ],
)  # fmt: skip
def test_client_command_refusals(
    fed: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: str
) -> None:
    """Issue 14 item 9: `huxin client` refuses with a stable code (exit 2) and changes
    nothing."""
    before = (fed / "heihe" / "clients.json").read_bytes()
    assert main(["client", *argv, "--config", str(fed / "heihe" / "node.toml")]) == 2
    assert f"error: {code}:" in capsys.readouterr().err
    assert (fed / "heihe" / "clients.json").read_bytes() == before


def test_client_command_issues_renews_and_lists(
    fed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 item 9: a second `issue` keeps the pair in use as .prev (still
    registered until revoked); `list` shows both."""
    cfg = str(fed / "heihe" / "node.toml")
    assert main(["client", "issue", "heihe.power", "--config", cfg, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["client", "issue", "heihe.power", "--config", cfg, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["sha256"] != second["sha256"]
    assert (fed / "clients" / "heihe.power.pem.prev").read_bytes() != (
        fed / "clients" / "heihe.power.pem"
    ).read_bytes()
    assert main(["client", "list", "--config", cfg, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["clients"]
    power = [c for c in listed if c["id"] == "heihe.power"]
    assert {c["sha256"] for c in power} == {first["sha256"], second["sha256"]}
