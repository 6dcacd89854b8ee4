"""The federation with real processes: hubs, regions, routing, trust lists (H2, H13, H17, N20).

Each node is its own ``huxin serve`` process with its own SQLite file and
certificate, laid out by ``huxin init federation`` (two provinces: the
Heilongjiang hub with Heihe, and a Hainan hub with Hainan).  A small synthetic
population lives in the Heihe node.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest

from keys import (
    CertificateAuthority,
    Status,
    load_trust,
    subject_binding,
    verify_attestation,
    verify_status_list,
)
from node.core._secrets import write_hex
from node.demo._federation import FederationLayout, init_federation
from node.demo._testbed import FederationProcesses, reseal_ids
from node.federation._trust import HOPS_KEY, ON_BEHALF_KEY
from node.monthly._batch import run_month
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.synthetic._population import PopulationSpec, generate
from scoring import load_scheme
from tests._waiting import wait_until

HUB, HUB2, HEIHE, HAINAN, BANK = "heilongjiang", "hainan-hub", "heihe", "hainan", "hainan.bank"
ID_RE = re.compile(r"\d{17}[\dX]")
PERIOD = "2026-11"


def _reason(err: grpc.RpcError) -> str:
    for k, v in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if k == "huxin-reason":
            return str(v)
    return ""


def _meta(err: grpc.RpcError, key: str) -> str:
    for k, v in err.trailing_metadata() or ():  # type: ignore[attr-defined]
        if k == key:
            return str(v)
    return ""


def _query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


class World:
    def __init__(self, layout: FederationLayout, procs: FederationProcesses, spec: PopulationSpec):
        self.layout, self.procs, self.spec = layout, procs, spec
        self.resident = self._eligible()

    def _eligible(self, skip: str = "") -> str:
        scheme = load_scheme(HEIHE)
        db = self.layout.nodes[HEIHE].directory / "node.db"
        secrets = self.spec.secrets()
        for i in range(self.spec.people):
            idn = self.spec.id_number(i)
            if idn == skip:
                continue
            rows = _query(
                db,
                "SELECT grade FROM monthly_snapshots WHERE subject_key = ? AND period = ?",
                (secrets.subject_key(idn), PERIOD),
            )
            if rows and rows[0][0] in scheme.grades:
                return idn
        raise AssertionError("no eligible person")

    def grant(self, audience: str = BANK, resident: str = "", **kw: int) -> node_pb2.ConsentToken:
        citizen = node_pb2_grpc.CitizenServiceStub(self.procs.citizen_channel(HEIHE))
        token: node_pb2.ConsentToken = citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience=audience,
                purpose="heihe/credit-loans",
                scope=node_pb2.CONSENT_SCOPE_GRADE,
                max_uses=kw.get("max_uses", 5),
            ),
            metadata=self.procs.identity(HEIHE, resident or self.resident),
            timeout=10,
        )
        return token

    def request(
        self,
        token: node_pb2.ConsentToken,
        at: str,
        as_: str,
        metadata: tuple[tuple[str, str], ...] = (),
        nonce: bytes | None = None,
        resident: str = "",
    ) -> node_pb2.AttestationResponse:
        stub = node_pb2_grpc.PeerServiceStub(self.procs.channel(at, as_))
        resp: node_pb2.AttestationResponse = stub.RequestAttestation(
            node_pb2.AttestationRequest(
                consent_token=token.token,
                subject_binding=subject_binding(token.binding_salt, resident or self.resident),
                nonce=nonce or os.urandom(16),
                target_scheme=HAINAN,
                purpose="heihe/credit-loans",
            ),
            metadata=metadata,
            timeout=15,
        )
        return resp

    def ca(self) -> CertificateAuthority:
        ca = self.layout.root / "ca"
        return CertificateAuthority.load((ca / "ca.pem").read_bytes(), (ca / "ca.key").read_bytes())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("federation")
    layout = init_federation(
        root,
        [HEIHE, HAINAN],
        HUB,
        datetime.now(UTC),
        hub_peers=[f"{HUB2}={HAINAN}"],
        clients=[BANK],
        route="hub",
        sync_interval=1.0,
        push_interval=0.0,
    )
    spec = PopulationSpec(HEIHE, 120, 7, date(2026, 11, 30))
    heihe = layout.nodes[HEIHE].directory
    write_hex(heihe / "keys" / "storage.secret", spec.secrets().subject_secret)
    generate(spec, heihe / "node.db")
    reseal_ids(spec, heihe, heihe / "node.db")  # the node's own seal key opens the IDs
    run_month(heihe / "node.db", load_scheme(HEIHE), PERIOD, workers=0)
    procs = FederationProcesses(layout)
    try:
        for n in (HUB, HUB2, HEIHE, HAINAN):
            procs.start(n, wait=False)
        for n in (HUB, HUB2, HEIHE, HAINAN):
            procs.wait_ready(n)
        yield World(layout, procs, spec)
    finally:
        procs.stop_all()


def test_init_federation_lays_out_two_provinces(world: World) -> None:
    """REQ: H17 N20 — each hub lists every region and the peer hub; regions pin their hub."""
    layout = world.layout
    assert {n.role for n in layout.nodes.values()} == {"hub", "region"}
    assert layout.nodes[HAINAN].hub == HUB2 and layout.nodes[HEIHE].hub == HUB
    ports = [p for n in layout.nodes.values() for p in (n.peer_port, n.citizen_port)]
    assert len(set(ports)) == len(ports)
    for hub in (HUB, HUB2):
        key = bytes.fromhex(layout.hub_key_file(hub).read_text().strip())
        trust = load_trust(layout.bundle(hub).read_bytes(), key, datetime.now(UTC))
        assert trust.issuer == hub
        assert {HEIHE, HAINAN, HUB, HUB2} <= set(trust.regions)
        assert all(r.tls_sha256 for r in trust.regions.values() if r.region != hub)


def test_cross_province_request_routes_through_two_hubs_and_verifies_offline(
    world: World,
) -> None:
    """REQ: H2 N20 C1 — hainan.bank → hainan → hainan-hub → heilongjiang → heihe; the
    attestation is signed by Heihe and verifies offline with the HAINAN hub's bundle."""
    token = world.grant()
    nonce = os.urandom(16)
    resp = world.request(token, HAINAN, BANK, nonce=nonce)
    key = bytes.fromhex(world.layout.hub_key_file(HUB2).read_text().strip())
    trust = load_trust(world.layout.bundle(HUB2).read_bytes(), key, datetime.now(UTC))
    result = verify_attestation(
        resp.signed_attestation,
        trust,
        datetime.now(UTC),
        BANK,
        nonce=nonce,
        subject_id=world.resident,
        binding_salt=token.binding_salt,
    )
    a = result.attestation
    assert a.issuer_region == HEIHE and a.audience == BANK
    assert a.mapped is not None and a.mapped.scheme_id == HAINAN
    assert a.score is None  # GRADE scope (H12)

    # Every hop logged the route; Heihe saw the hub relaying for the bank.  Access
    # lines are written just after each response (ADR 0313): wait for the last one.
    def read_logs() -> dict[str, str]:
        return {
            n: (world.layout.nodes[n].directory / "node.log").read_text()
            for n in world.layout.nodes
        }

    # Each hop writes its line after its own reply, so the first hop's (hainan's) may
    # come last: wait for every one of them.
    def logged() -> bool:
        logs = read_logs()
        return (
            '"hop": "hainan-hub"' in logs[HAINAN]
            and '"hop": "heilongjiang"' in logs[HUB2]
            and '"hop": "heihe"' in logs[HUB]
            and '"via": "heilongjiang"' in logs[HEIHE]
        )

    wait_until(logged, "the hop logged")
    logs = read_logs()
    assert '"hop": "hainan-hub"' in logs[HAINAN]
    assert '"hop": "heilongjiang"' in logs[HUB2]
    assert '"hop": "heihe"' in logs[HUB]
    assert '"via": "heilongjiang"' in logs[HEIHE] and '"peer": "hainan.bank"' in logs[HEIHE]


def test_withdrawn_consent_is_refused_through_the_route_with_the_origin_reason(
    world: World,
) -> None:
    """REQ: H5 N15 — withdrawal stops use at once, also across provinces."""
    token = world.grant()
    world.request(token, HAINAN, BANK)
    citizen = node_pb2_grpc.CitizenServiceStub(world.procs.citizen_channel(HEIHE))
    citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
        metadata=world.procs.identity(HEIHE, world.resident),
        timeout=10,
    )
    with pytest.raises(grpc.RpcError) as info:
        world.request(token, HAINAN, BANK)
    # The home region's own status and reason (issue 14 item 14), relayed hop by hop; the
    # refusing node is named by the relays (a listed region), the hop Hainan called too.
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert _reason(info.value) == "CONSENT_WITHDRAWN"
    assert (
        "heihe refused the request (relayed by hainan-hub): CONSENT_WITHDRAWN"
        in info.value.details()  # type: ignore[attr-defined]
    )
    assert _meta(info.value, "huxin-upstream-reason") == "CONSENT_WITHDRAWN"
    assert _meta(info.value, "huxin-refused-by") == HEIHE


@pytest.mark.parametrize(
    ("at", "as_", "metadata", "status", "reason"),
    [
        pytest.param(HEIHE, "fuzhou", (), "PERMISSION_DENIED", "PEER_NOT_TRUSTED", id="unlisted"),
        pytest.param(
            HEIHE, HAINAN, ((ON_BEHALF_KEY, "fuzhou.bank"),), "PERMISSION_DENIED",
            "RELAY_NOT_TRUSTED", id="region-vouches-for-another-region",
        ),
        pytest.param(
            HEIHE, HUB, ((ON_BEHALF_KEY, "fuzhou.bank"),), "PERMISSION_DENIED",
            "RELAY_NOT_TRUSTED", id="hub-vouches-for-unlisted",
        ),
        pytest.param(
            HEIHE, "fuzhou", ((ON_BEHALF_KEY, BANK),), "PERMISSION_DENIED",
            "RELAY_NOT_TRUSTED", id="unlisted-relay",
        ),
        pytest.param(
            HUB, "fuzhou.bank", (), "PERMISSION_DENIED", "PEER_NOT_TRUSTED",
            id="unlisted-at-hub",
        ),
        pytest.param(
            HAINAN, BANK, ((HOPS_KEY, "4"),), "FAILED_PRECONDITION", "TOO_MANY_HOPS",
            id="routing-loop",
        ),
        pytest.param(
            HAINAN, BANK, ((HOPS_KEY, "loop"),), "INVALID_ARGUMENT", "HOPS_INVALID",
            id="hops-not-a-number",
        ),
    ],
)  # fmt: skip
def test_peers_not_in_the_trust_list_are_refused_and_logged(
    world: World,
    at: str,
    as_: str,
    metadata: tuple[tuple[str, str], ...],
    status: str,
    reason: str,
) -> None:
    """REQ: H17 — only peers in the signed trust list are served; relayed identities
    are accepted only from a listed hub (or a region for its own integrators)."""
    if as_ not in world.layout.clients and as_ not in world.layout.nodes:
        cert = world.ca().issue(as_, datetime.now(UTC))
        d = world.layout.root / "clients"
        (d / f"{as_}.pem").write_bytes(cert.cert_pem)
        (d / f"{as_}.key").write_bytes(cert.key_pem)
        world.layout.clients[as_] = (d / f"{as_}.pem", d / f"{as_}.key")
    # A consent can only name an audience in the trust list: the token is
    # the bank's; the caller's own identity is what is refused.
    token = world.grant(audience=BANK)
    with pytest.raises(grpc.RpcError) as info:
        world.request(token, at, as_, metadata)
    assert info.value.code().name == status  # type: ignore[attr-defined]
    assert _reason(info.value) == reason
    log = world.layout.nodes[at].directory / "node.log"
    wait_until(
        lambda: f'"reason": "{reason}"' in log.read_text(), "the refusal in the log"
    )  # written after the reply


def test_stale_node_refuses_a_rolled_back_trust_list(world: World) -> None:
    """REQ: H17 — a node that has seen version N refuses N-1 (persisted across restarts)."""
    hub_cfg = world.layout.nodes[HUB].config
    out = world.layout.root / "v2.bin"
    world.procs.huxin("hub", "trust-list", "--config", str(hub_cfg), "--force", "--out", str(out))
    heihe_db = world.layout.nodes[HEIHE].directory / "node.db"
    wait_until(
        lambda: _query(heihe_db, "SELECT MAX(version) FROM trust_lists")[0][0] >= 2,
        "Heihe adopted trust list version 2",
    )
    # Restart Heihe: its seed file still holds version 1 — offered again, refused.
    world.procs.stop(HEIHE)
    world.procs.start(HEIHE)
    refusals = _query(heihe_db, "SELECT source, version, reason FROM trust_refusals")
    assert ("file", 1, "TRUST_ROLLBACK") in refusals
    status = json.loads(
        world.procs.huxin(
            "status", "--config", str(world.layout.nodes[HEIHE].config), "--json"
        ).stdout
    )
    assert status["trust_list"]["version"] >= 2
    assert status["trust_list"]["expired"] is False
    assert any(r["reason"] == "TRUST_ROLLBACK" for r in status["trust_refusals"])
    peers = {p["peer"]: p for p in status["peers"]}
    assert {HUB, HAINAN} <= set(peers)
    # Still serving after the restart (the bank's request routes again).
    world.request(world.grant(), HAINAN, BANK)


def test_status_of_the_hub_shows_regions_and_sync(world: World) -> None:
    """REQ: H13 — `huxin status` shows peers, sync state and the hub's per-region cursors."""
    cfg = world.layout.nodes[HUB].config
    hub_db = world.layout.nodes[HUB].directory / "node.db"
    wait_until(
        lambda: len(_query(hub_db, "SELECT peer FROM sync_peers WHERE failures = 0")) >= 3,
        "three peers synced",
    )
    # Genuine material verifies (nothing refused) and is kept: Heihe's own scheme and its
    # mapping tables; the other regions' schemes Heihe also lists are not Heihe's to publish.
    try:
        wait_until(
            lambda: not _query(hub_db, "SELECT peer FROM sync_peers WHERE last_error != ''"),
            "no peer sync error",
        )
    except AssertionError:
        raise AssertionError(_query(hub_db, "SELECT peer, last_error FROM sync_peers")) from None
    items = {str(r[0]) for r in _query(hub_db, "SELECT item FROM peer_material WHERE region = ?",
                                       (HEIHE,))}  # fmt: skip
    assert "scheme:heihe" in items and "scheme:hainan" not in items
    assert "mapping:heihe-hainan-anchored" in items
    text = world.procs.huxin("status", "--config", str(cfg)).stdout
    assert "trust list: heilongjiang v" in text
    for peer in (HEIHE, HAINAN, HUB2):
        assert re.search(rf"^{re.escape(peer)}\s+yes", text, re.M), text


def test_a_deregistration_reaches_peers_through_the_status_list(world: World) -> None:
    """REQ: H2 H5 N20 — peers hold nothing keyed to a person (only key sets, status lists,
    schemes, mapping tables and scenario catalogues); what a deregistration must reach them is the revocation
    of the person's attestations, which arrives with Heihe's next verified status list."""
    other = world._eligible(skip=world.resident)
    token = world.grant(resident=other)
    nonce = os.urandom(16)
    resp = world.request(token, HAINAN, BANK, nonce=nonce, resident=other)
    key = bytes.fromhex(world.layout.hub_key_file(HUB2).read_text().strip())
    trust = load_trust(world.layout.bundle(HUB2).read_bytes(), key, datetime.now(UTC))
    index = verify_attestation(
        resp.signed_attestation, trust, datetime.now(UTC), BANK, nonce=nonce,
        subject_id=other, binding_salt=token.binding_salt,
    ).attestation.status_index  # fmt: skip
    assert index is not None
    citizen = node_pb2_grpc.CitizenServiceStub(world.procs.citizen_channel(HEIHE))
    citizen.Deregister(
        node_pb2.DeregisterRequest(confirm=True),
        metadata=world.procs.identity(HEIHE, other),
        timeout=10,
    )
    hainan_db = world.layout.nodes[HAINAN].directory / "node.db"

    def revoked_at_hainan() -> bool:
        rows = _query(hainan_db, "SELECT body FROM peer_material WHERE region = ? AND item = ?",
                      (HEIHE, "status_list"))  # fmt: skip
        if not rows:
            return False
        held = verify_status_list(bytes(rows[0][0]), trust, datetime.now(UTC))  # type: ignore[arg-type]
        return held.get(index) == Status.REVOKED

    wait_until(revoked_at_hainan, "Hainan learned the revocation")
    for node in (HAINAN, HUB, HUB2):
        db = world.layout.nodes[node].directory / "node.db"
        items = {str(r[0]).split(":")[0] for r in _query(db, "SELECT item FROM peer_material")}
        assert items <= {"key_set", "status_list", "scheme", "mapping", "catalogue"}, (node, items)
