"""Who may speak as whom on the peer port: pinned peers, registered clients, public
trust material (issue 14 items 9 and 11; docs/adr/0415).

A federation laid out by ``huxin init federation`` runs as real ``huxin serve``
processes (the Heilongjiang hub, Heihe, and Hainan with ``peer_workers = 2``) on
loopback with real mutual TLS.  Every certificate below is genuinely issued by
the federation CA: the CA alone must not be enough to speak as a listed region,
a hub, an integrator or a department.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from keys import (
    CertificateAuthority,
    NodeCertificate,
    certificate_fingerprint,
    load_trust,
    open_catalogue,
)
from node.demo._federation import FederationLayout, init_federation
from node.demo._testbed import (
    FederationProcesses,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import hub_pb2, hub_pb2_grpc, node_pb2, node_pb2_grpc
from tests._waiting import wait_until

HUB, HEIHE, HAINAN = "heilongjiang", "heihe", "hainan"
BANK, COURT = "hainan.bank", "heihe.court"
RESIDENT = make_id_number(414)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key (PEM)."""

    cert: bytes
    key: bytes


class World:
    def __init__(self, layout: FederationLayout, procs: FederationProcesses) -> None:
        self.layout, self.procs = layout, procs
        ca = layout.root / "ca"
        self.ca = CertificateAuthority.load(
            (ca / "ca.pem").read_bytes(), (ca / "ca.key").read_bytes()
        )
        self._rogues: dict[str, NodeCertificate] = {}

    def node(self, node_id: str) -> Pair:
        d = self.layout.nodes[node_id].directory / "tls"
        return Pair((d / "node.pem").read_bytes(), (d / "node.key").read_bytes())

    def client(self, identity: str) -> Pair:
        cert, key = self.layout.clients[identity]
        return Pair(cert.read_bytes(), key.read_bytes())

    def rogue(self, identity: str) -> Pair:
        """A SECOND certificate for ``identity``, genuinely issued by the federation CA."""
        if identity not in self._rogues:
            self._rogues[identity] = self.ca.issue(identity, datetime.now(UTC))
        c = self._rogues[identity]
        return Pair(c.cert_pem, c.key_pem)

    def who(self, spec: str) -> Pair:
        kind, _, identity = spec.partition(":")
        return {"node": self.node, "client": self.client, "rogue": self.rogue}[kind](identity)

    def channel(self, node_id: str, pair: Pair) -> grpc.Channel:
        """A NEW connection (own subchannel pool): with workers it may land on any process."""
        creds = grpc.ssl_channel_credentials(self.procs.ca_pem(), pair.key, pair.cert)
        return grpc.secure_channel(
            self.layout.nodes[node_id].peer,
            creds,
            options=[("grpc.use_local_subchannel_pool", 1)],
        )

    def db(self, node_id: str, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        db = self.layout.nodes[node_id].directory / "node.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()


def _outcome(call: Callable[[], object]) -> tuple[str, str]:
    try:
        call()
    except grpc.RpcError as err:
        reason = dict(err.trailing_metadata() or ()).get("huxin-reason", "")  # type: ignore[attr-defined]
        return err.code().name, str(reason)  # type: ignore[attr-defined]
    return "OK", ""


METHODS: dict[str, Callable[[grpc.Channel], object]] = {
    "schemes": lambda ch: node_pb2_grpc.PeerServiceStub(ch).ListSchemes(
        node_pb2.ListSchemesRequest(), timeout=15
    ),
    "key-set": lambda ch: node_pb2_grpc.PeerServiceStub(ch).GetKeySet(
        node_pb2.GetKeySetRequest(), timeout=15
    ),
    "status-list": lambda ch: node_pb2_grpc.PeerServiceStub(ch).GetStatusList(
        node_pb2.GetStatusListRequest(), timeout=15
    ),
    "catalogue": lambda ch: node_pb2_grpc.PeerServiceStub(ch).GetSignedCatalogue(
        node_pb2.GetIncentiveCatalogueRequest(), timeout=15
    ),
    "trust-list": lambda ch: hub_pb2_grpc.HubServiceStub(ch).GetTrustList(
        hub_pb2.GetTrustListRequest(), timeout=15
    ),
    "hub-key-set": lambda ch: hub_pb2_grpc.HubServiceStub(ch).GetHubKeySet(
        hub_pb2.GetHubKeySetRequest(), timeout=15
    ),
    "cursor": lambda ch: hub_pb2_grpc.HubServiceStub(ch).GetCursor(
        hub_pb2.GetCursorRequest(), timeout=15
    ),
}


def _call(world: World, at: str, pair: Pair, method: str) -> tuple[str, str]:
    ch = world.channel(at, pair)
    try:
        return _outcome(lambda: METHODS[method](ch))
    finally:
        ch.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("callers")
    layout = init_federation(
        root, [HEIHE, HAINAN], HUB, datetime.now(UTC), clients=[BANK], sources=["court"],
        route="hub", sync_interval=1.0, push_interval=0.0,
    )  # fmt: skip
    hainan = layout.nodes[HAINAN].config
    hainan.write_text(hainan.read_text().replace("# peer_workers = 2", "peer_workers = 2", 1))
    procs = FederationProcesses(layout)
    try:
        for n in (HUB, HEIHE, HAINAN):
            procs.start(n, wait=False)
        for n in (HUB, HEIHE, HAINAN):
            procs.wait_ready(n)
        yield World(layout, procs)
    finally:
        procs.stop_all()


@pytest.mark.parametrize(
    ("at", "who", "method", "code", "reason"),
    [
        pytest.param(HEIHE, "node:hainan", "schemes", "OK", "", id="pinned-region"),
        pytest.param(HEIHE, "rogue:hainan", "schemes", "UNAUTHENTICATED",
                     "CERTIFICATE_NOT_PINNED", id="second-certificate-for-a-region"),
        pytest.param(HEIHE, f"node:{HUB}", "schemes", "OK", "", id="pinned-hub"),
        pytest.param(HEIHE, f"rogue:{HUB}", "schemes", "UNAUTHENTICATED",
                     "CERTIFICATE_NOT_PINNED", id="second-certificate-for-the-hub"),
        pytest.param(HUB, "rogue:heihe", "cursor", "UNAUTHENTICATED",
                     "CERTIFICATE_NOT_PINNED", id="second-certificate-for-a-region-at-the-hub"),
        pytest.param(HUB, "node:heihe", "cursor", "OK", "", id="pinned-region-at-the-hub"),
        pytest.param(HAINAN, f"client:{BANK}", "schemes", "OK", "", id="registered-integrator"),
        pytest.param(HAINAN, f"rogue:{BANK}", "schemes", "UNAUTHENTICATED", "CLIENT_UNKNOWN",
                     id="second-certificate-for-an-integrator"),
        pytest.param(HEIHE, f"client:{COURT}", "schemes", "OK", "", id="registered-department"),
        pytest.param(HEIHE, f"rogue:{COURT}", "schemes", "UNAUTHENTICATED", "CLIENT_UNKNOWN",
                     id="second-certificate-for-a-department"),
        pytest.param(HEIHE, "rogue:heihe.tax", "schemes", "UNAUTHENTICATED", "CLIENT_UNKNOWN",
                     id="never-issued-client-of-this-region"),
        pytest.param(HEIHE, f"client:{BANK}", "schemes", "PERMISSION_DENIED", "CLIENT_NOT_HOME",
                     id="integrator-of-another-region-directly"),
        pytest.param(HEIHE, "rogue:fuzhou", "schemes", "PERMISSION_DENIED", "PEER_NOT_TRUSTED",
                     id="unlisted-identity"),
    ],
)  # fmt: skip
def test_only_the_pinned_or_registered_certificate_speaks_for_an_identity(
    world: World, at: str, who: str, method: str, code: str, reason: str
) -> None:
    """REQ: H17 C2 — issue 14 item 9: a listed region or hub must present a certificate
    the hub-signed trust list pins for it, and an integrator or department one its own
    region registered (`huxin client issue`); a second certificate the CA issued for
    the same identity is refused with the exact code and reason."""
    assert _call(world, at, world.who(who), method) == (code, reason)
    if reason:  # the guard logs every refusal with its reason (no certificate material)
        log = world.layout.nodes[at].directory / "node.log"
        wait_until(
            lambda: f'"reason": "{reason}"' in log.read_text(), "the refusal in the log", timeout=10
        )


def test_a_push_stream_with_a_second_certificate_is_refused(world: World) -> None:
    """REQ: H17 H3 — ``Push`` (a client stream) relies on the guard
    alone for its pin check: a second certificate the CA issued for heihe is refused
    with UNAUTHENTICATED ``CERTIFICATE_NOT_PINNED`` and the hub stores nothing."""
    before = world.db(HUB, "SELECT COUNT(*) FROM hub_events")
    items = [
        hub_pb2.PushItem(seq=n, event_id=f"rogue-push-{n}", kind="deregistration") for n in (1, 2)
    ]
    ch = world.channel(HUB, world.rogue(HEIHE))
    try:
        got = _outcome(lambda: hub_pb2_grpc.HubServiceStub(ch).Push(iter(items), timeout=15))
    finally:
        ch.close()
    assert got == ("UNAUTHENTICATED", "CERTIFICATE_NOT_PINNED")
    assert world.db(HUB, "SELECT COUNT(*) FROM hub_events") == before


@pytest.mark.parametrize(
    ("at", "who", "method"),
    [
        pytest.param(HUB, "rogue:fuzhou", "trust-list", id="unlisted-reads-the-trust-list"),
        pytest.param(HUB, "rogue:fuzhou", "hub-key-set", id="unlisted-reads-the-hub-key-set"),
        pytest.param(HUB, "rogue:hainan", "trust-list", id="impostor-reads-the-trust-list"),
        pytest.param(HEIHE, "rogue:fuzhou", "key-set", id="unlisted-reads-a-key-set"),
        pytest.param(HEIHE, "rogue:fuzhou", "status-list", id="unlisted-reads-a-status-list"),
        pytest.param(HEIHE, f"client:{BANK}", "status-list",
                     id="integrator-of-another-region-reads-a-status-list"),
        # issue 15 §2, N17: the signed incentive catalogue is public trust material too
        pytest.param(HEIHE, "rogue:fuzhou", "catalogue", id="unlisted-reads-a-catalogue"),
        pytest.param(HEIHE, "rogue:hainan", "catalogue", id="impostor-reads-a-catalogue"),
        pytest.param(HEIHE, f"client:{BANK}", "catalogue",
                     id="integrator-of-another-region-reads-a-catalogue"),
    ],
)  # fmt: skip
def test_trust_material_is_public(world: World, at: str, who: str, method: str) -> None:
    """REQ: C4 H17 N17 — issue 14 item 11, issue 15 §2: the trust list, the hub key set,
    a region's key set, status list and signed incentive catalogue are public (signed;
    verifiers need them offline): served to any certificate of the federation CA,
    listed or not, and they verify."""
    ch = world.channel(at, world.who(who))
    try:
        envelope = METHODS[method](ch)
    finally:
        ch.close()
    assert envelope.payload  # type: ignore[attr-defined]
    if method == "trust-list":
        key = bytes.fromhex(world.layout.hub_key_file(HUB).read_text().strip())
        trust = load_trust(envelope.SerializeToString(), key, datetime.now(UTC))  # type: ignore[attr-defined]
        assert {HEIHE, HAINAN, HUB} <= set(trust.regions)
    if method == "catalogue":
        key = bytes.fromhex(world.layout.hub_key_file(HUB).read_text().strip())
        bundle = world.layout.bundle(HUB).read_bytes()
        heihe = load_trust(bundle, key, datetime.now(UTC)).regions[HEIHE]
        opened = open_catalogue(envelope, heihe.keys, datetime.now(UTC))
        assert opened.catalogue.region == HEIHE


def test_an_impostor_with_a_genuine_consent_changes_nothing(world: World) -> None:
    """REQ: H5 H16 — issue 14 item 9: a second certificate for hainan presenting a real
    consent naming hainan is refused before the consent is looked at: no use counted,
    nothing in the citizen's transparency log."""
    court = world.channel(HEIHE, world.client(COURT))
    source = node_pb2_grpc.SourceServiceStub(court)
    source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(
            batch_id="pins-1", records=[honour_record("pins-r1", RESIDENT)],
            subjects=[resident(RESIDENT)],
        ),
        timeout=15,
    )  # fmt: skip
    court.close()
    citizen = node_pb2_grpc.CitizenServiceStub(world.procs.citizen_channel(HEIHE))
    token = citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience=HAINAN,
            purpose="heihe/credit-loans",
            scope=node_pb2.CONSENT_SCOPE_GRADE,
            max_uses=3,
        ),
        metadata=world.procs.identity(HEIHE, RESIDENT),
        timeout=15,
    )
    before = (
        world.db(HEIHE, "SELECT uses FROM consents WHERE consent_id = ?", (token.consent_id,)),
        world.db(HEIHE, "SELECT COUNT(*) FROM log_entries"),
    )
    ch = world.channel(HEIHE, world.rogue(HAINAN))
    try:
        got = _outcome(
            lambda: node_pb2_grpc.PeerServiceStub(ch).RequestAttestation(
                attestation_request(token, RESIDENT, "heihe/credit-loans"), timeout=15
            )
        )
    finally:
        ch.close()
    assert got == ("UNAUTHENTICATED", "CERTIFICATE_NOT_PINNED")
    after = (
        world.db(HEIHE, "SELECT uses FROM consents WHERE consent_id = ?", (token.consent_id,)),
        world.db(HEIHE, "SELECT COUNT(*) FROM log_entries"),
    )
    assert after == before and before[0] == [(0,)]


def test_an_integrator_issued_later_works_until_revoked_without_a_restart(world: World) -> None:
    """REQ: C4 H16 — issue 14 item 9: `huxin client issue` after the federation exists
    gives a certificate the running node accepts at once; after `huxin client revoke`
    its next call is refused (UNAUTHENTICATED CLIENT_REVOKED), on a connection it
    already had and on new ones, by every process of a node with peer_workers = 2 —
    without a restart."""
    cfg = str(world.layout.nodes[HAINAN].config)
    issued = json.loads(
        world.procs.huxin("client", "issue", "hainan.insurer", "--config", cfg, "--json").stdout
    )
    pair = Pair(Path(issued["cert"]).read_bytes(), Path(issued["key"]).read_bytes())
    assert issued["sha256"] == certificate_fingerprint(pair.cert).hex()
    assert os.stat(issued["key"]).st_mode & 0o777 == 0o600
    primary = world.procs.procs[HAINAN].proc
    kept = world.channel(HAINAN, pair)
    try:
        assert _outcome(lambda: METHODS["schemes"](kept)) == ("OK", "")
        assert {_call(world, HAINAN, pair, "schemes") for _ in range(4)} == {("OK", "")}
        world.procs.huxin("client", "revoke", "hainan.insurer", "--config", cfg)
        assert _outcome(lambda: METHODS["schemes"](kept)) == ("UNAUTHENTICATED", "CLIENT_REVOKED")
    finally:
        kept.close()
    # 16 new connections: the kernel spreads them over both processes (2**-15 that it does not)
    outcomes = {_call(world, HAINAN, pair, "schemes") for _ in range(16)}
    assert outcomes == {("UNAUTHENTICATED", "CLIENT_REVOKED")}
    assert primary.poll() is None and world.procs.procs[HAINAN].proc is primary  # no restart
    log = world.layout.nodes[HAINAN].directory / "node.log"

    def refusing_pids() -> set[int]:
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        return {x["pid"] for x in lines if x.get("reason") == "CLIENT_REVOKED"}

    wait_until(
        lambda: len(refusing_pids()) >= 2, "the primary and its worker refuse", timeout=20
    )  # the primary and its worker
    # the bank issued at init is unaffected
    assert _call(world, HAINAN, world.client(BANK), "schemes") == ("OK", "")


def test_the_listed_next_certificate_is_accepted_during_a_renewal(world: World) -> None:
    """REQ: H17 C1 — issue 14 item 9: `huxin init cert --next` stages the next
    certificate; it is refused until the hub pins it (`huxin hub register`, a new
    trust list that peers sync), then both the current and the next one are accepted,
    and `--use-next` switches to it."""
    region_dir = world.layout.nodes[HAINAN].directory
    staged = json.loads(
        world.procs.huxin(
            "init", "cert", "--config", str(region_dir / "node.toml"), "--next", "--json"
        ).stdout
    )
    assert staged["staged"] is True and staged["cert"].endswith("node.pem.next")
    nxt = Pair(Path(staged["cert"]).read_bytes(), Path(staged["key"]).read_bytes())
    assert _call(world, HEIHE, nxt, "schemes") == ("UNAUTHENTICATED", "CERTIFICATE_NOT_PINNED")
    held = world.db(HEIHE, "SELECT MAX(version) FROM trust_lists")[0][0]
    hub_cfg = str(world.layout.nodes[HUB].config)
    world.procs.huxin("hub", "register", "--config", hub_cfg, "--region-dir", str(region_dir))
    out = world.layout.root / "renewal.bin"
    world.procs.huxin("hub", "trust-list", "--config", hub_cfg, "--force", "--out", str(out))
    key = bytes.fromhex(world.layout.hub_key_file(HUB).read_text().strip())
    pins = load_trust(out.read_bytes(), key, datetime.now(UTC)).regions[HAINAN].tls_sha256
    assert pins == {
        certificate_fingerprint(world.node(HAINAN).cert),
        certificate_fingerprint(nxt.cert),
    }
    wait_until(
        lambda: world.db(HEIHE, "SELECT MAX(version) FROM trust_lists")[0][0] > held,
        "Heihe adopted the new trust list",
    )
    assert _call(world, HEIHE, nxt, "schemes") == ("OK", "")
    assert _call(world, HEIHE, world.node(HAINAN), "schemes") == ("OK", "")
    switched = world.procs.huxin(
        "init", "cert", "--config", str(region_dir / "node.toml"), "--use-next", "--json"
    )
    assert json.loads(switched.stdout)["tls_sha256"] == certificate_fingerprint(nxt.cert).hex()
    assert not Path(staged["cert"]).exists() and (region_dir / "tls/node.pem.prev").exists()
    assert re.fullmatch(r"[0-9a-f]{64}", staged["tls_sha256"])
