"""Refusals through a real routed federation keep the home region's reason (issue 14 item 14).

``huxin init federation`` lays out the Heilongjiang hub with Heihe and Hainan; each
runs as its own ``huxin serve`` process.  A Hainan bank asks for a Heihe
resident's attestation: hainan.bank → hainan → heilongjiang → heihe.  A refusal
by Heihe reaches the bank with Heihe's own status code, reason and field, plus
``huxin-upstream-reason`` and ``huxin-refused-by``.  A request whose form is
wrong (an ID number in the purpose, a bad or too long field) is refused by the
first hop, Hainan, with the reason Heihe itself gives, and nothing is forwarded:
neither the hub nor Heihe receives or logs anything of it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest

from keys import subject_binding
from node.core._secrets import write_hex
from node.demo._federation import FederationLayout, init_federation
from node.demo._testbed import FederationProcesses, reseal_ids
from node.monthly._batch import run_month
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.synthetic._population import PopulationSpec, generate
from scoring import load_scheme

HUB, HEIHE, HAINAN, BANK = "heilongjiang", "heihe", "hainan", "hainan.bank"
HEIHE_BANK = "heihe.bank"  # asks Heihe directly: a node serves its own integrators only
PERIOD = "2026-11"
REASON, FIELD = "huxin-reason", "huxin-field"
UPSTREAM, REFUSED_BY = "huxin-upstream-reason", "huxin-refused-by"


def _query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def _trailers(err: grpc.RpcError) -> dict[str, str]:
    return {k: str(v) for k, v in err.trailing_metadata() or ()}  # type: ignore[attr-defined]


@dataclass
class World:
    layout: FederationLayout
    procs: FederationProcesses
    spec: PopulationSpec
    graded: list[str] = field(default_factory=list)  # residents at tier A or above this month
    below: list[str] = field(default_factory=list)  # residents with a grade below A
    ungraded: list[str] = field(default_factory=list)  # registered, no grade (not eligible)

    def log(self, node: str) -> str:
        return (self.layout.nodes[node].directory / "node.log").read_text(errors="replace")

    def grant(self, resident: str, *, max_uses: int = 5) -> node_pb2.ConsentToken:
        citizen = node_pb2_grpc.CitizenServiceStub(self.procs.citizen_channel(HEIHE))
        token: node_pb2.ConsentToken = citizen.GrantConsent(
            node_pb2.GrantConsentRequest(
                audience=BANK, purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE,
                max_uses=max_uses,
            ),
            metadata=self.procs.identity(HEIHE, resident),
            timeout=15,
        )  # fmt: skip
        return token

    def request(
        self, token: node_pb2.ConsentToken, resident: str, *, at: str = HAINAN, **change: object
    ) -> node_pb2.AttestationResponse:
        req = node_pb2.AttestationRequest(
            consent_token=token.token,
            subject_binding=subject_binding(token.binding_salt, resident),
            nonce=os.urandom(16),
            target_scheme=HAINAN,
            purpose="heihe/credit-loans",
        )
        for key, value in change.items():
            setattr(req, key, value)
        stub = node_pb2_grpc.PeerServiceStub(
            self.procs.channel(at, HEIHE_BANK if at == HEIHE else BANK)
        )
        resp: node_pb2.AttestationResponse = stub.RequestAttestation(req, timeout=20)
        return resp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("routed")
    layout = init_federation(
        root, [HEIHE, HAINAN], HUB, datetime.now(UTC), clients=[BANK, HEIHE_BANK], route="hub",
        sync_interval=1.0, push_interval=0.0,
    )  # fmt: skip
    spec = PopulationSpec(HEIHE, 120, 7, date(2026, 11, 30))
    heihe = layout.nodes[HEIHE].directory
    write_hex(heihe / "keys" / "storage.secret", spec.secrets().subject_secret)
    generate(spec, heihe / "node.db")
    reseal_ids(spec, heihe, heihe / "node.db")
    run_month(heihe / "node.db", load_scheme(HEIHE), PERIOD, workers=0)
    w = World(layout, FederationProcesses(layout), spec)
    grades = load_scheme(HEIHE).grades
    meets = grades[: grades.index("A") + 1]  # heihe/credit-loans needs tier A (H14)
    for i in range(spec.people):
        idn = spec.id_number(i)
        rows = _query(
            heihe / "node.db",
            "SELECT grade FROM monthly_snapshots WHERE subject_key = ? AND period = ?",
            (spec.secrets().subject_key(idn), PERIOD),
        )
        grade = rows[0][0] if rows else None
        (w.graded if grade in meets else w.below if grade in grades else w.ungraded).append(idn)
    try:
        for n in (HUB, HEIHE, HAINAN):
            w.procs.start(n, wait=False)
        for n in (HUB, HEIHE, HAINAN):
            w.procs.wait_ready(n)
        yield w
    finally:
        w.procs.stop_all()


def _withdrawn(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    resident = w.graded[1]
    token = w.grant(resident)
    citizen = node_pb2_grpc.CitizenServiceStub(w.procs.citizen_channel(HEIHE))
    citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
        metadata=w.procs.identity(HEIHE, resident),
        timeout=15,
    )
    return token, resident, {}


def _exhausted(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    resident = w.graded[2]
    token = w.grant(resident, max_uses=1)
    w.request(token, resident)
    return token, resident, {}


def _wrong_purpose(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    # another catalogue scenario (a threshold one: nothing to map, so no target scheme)
    change = {"purpose": "heihe/transit-discount", "target_scheme": ""}
    return w.grant(w.graded[3]), w.graded[3], change


def _other_subject(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    token = w.grant(w.graded[4])
    return token, w.graded[4], {"subject_binding": subject_binding(token.binding_salt, w.graded[5])}


def _deregistered(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    resident = w.graded[6]
    token = w.grant(resident)
    citizen = node_pb2_grpc.CitizenServiceStub(w.procs.citizen_channel(HEIHE))
    citizen.Deregister(
        node_pb2.DeregisterRequest(confirm=True),
        metadata=w.procs.identity(HEIHE, resident),
        timeout=15,
    )
    return token, resident, {}


def _forged(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    token = w.grant(w.graded[7])
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    grant.max_uses = 1000  # still names Heihe as its issuer: routed there
    token.token.payload = grant.SerializeToString()
    return token, w.graded[7], {}


def _unknown_target(w: World) -> tuple[node_pb2.ConsentToken, str, dict[str, object]]:
    return w.grant(w.graded[8]), w.graded[8], {"target_scheme": "atlantis"}


@pytest.mark.parametrize(
    ("setup", "status", "reason", "field"),
    [
        pytest.param(_withdrawn, "FAILED_PRECONDITION", "CONSENT_WITHDRAWN", "consent_token", id="consent-withdrawn"),
        pytest.param(_exhausted, "FAILED_PRECONDITION", "CONSENT_EXHAUSTED", "consent_token", id="consent-exhausted"),
        pytest.param(_wrong_purpose, "PERMISSION_DENIED", "CONSENT_WRONG_PURPOSE", "purpose", id="consent-for-another-purpose"),
        pytest.param(_forged, "PERMISSION_DENIED", "CONSENT_INVALID", "consent_token", id="consent-token-forged"),
        pytest.param(_other_subject, "PERMISSION_DENIED", "SUBJECT_BINDING_MISMATCH", "subject_binding", id="subject-not-the-consents"),
        pytest.param(_deregistered, "PERMISSION_DENIED", "CONSENT_INVALID", "consent_token", id="subject-deregistered"),
        pytest.param(_unknown_target, "NOT_FOUND", "MAPPING_UNAVAILABLE", "target_scheme", id="unknown-target-scheme"),
    ],
)  # fmt: skip
def test_a_refusal_at_the_home_region_reaches_the_bank_as_its_own(
    world: World, setup: object, status: str, reason: str, field: str | None
) -> None:
    """REQ: H5 N20 H17 — issue 14 item 14: bank → hainan → hub → heihe; Heihe's refusal
    arrives with Heihe's status code, reason and field; ``huxin-upstream-reason`` repeats
    the reason and ``huxin-refused-by`` names Heihe; Heihe logged the refusal itself."""
    token, resident, change = setup(world)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as info:
        world.request(token, resident, **change)
    err, meta = info.value, _trailers(info.value)
    assert err.code().name == status  # type: ignore[attr-defined]
    assert meta[REASON] == reason
    assert meta.get(FIELD) == field
    assert (meta[UPSTREAM], meta[REFUSED_BY]) == (reason, HEIHE)
    assert f"heihe refused the request (relayed by {HUB}): {reason}" in err.details()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20  # Heihe's access line is written after its reply
    while f'"reason": "{reason}"' not in world.log(HEIHE) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f'"reason": "{reason}"' in world.log(HEIHE)


def _counts(w: World) -> tuple[int, int, int]:
    """Requests routed by Hainan and by the hub, and RequestAttestation calls Heihe logged."""
    return (
        w.log(HAINAN).count('"msg": "request routed"'),
        w.log(HUB).count('"msg": "request routed"'),
        w.log(HEIHE).count('"method": "RequestAttestation"'),
    )


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        pytest.param({"purpose": "loan {id}"}, "ID_NUMBER_IN_FIELD", "purpose", id="id-number-in-purpose"),
        pytest.param({"purpose": "loan\n"}, "INVALID_FIELD", "purpose", id="invalid-purpose"),
        pytest.param({"purpose": "x" * 129}, "INVALID_FIELD", "purpose", id="purpose-too-long"),
        pytest.param({"nonce": b"n" * 65}, "NONCE_INVALID", "nonce", id="nonce-too-long"),
        pytest.param({"target_scheme": "h" * 65}, "INVALID_FIELD", "target_scheme", id="target-scheme-too-long"),
        pytest.param({"subject_binding": b"short"}, "INVALID_FIELD", "subject_binding", id="binding-not-32-bytes"),
        # issue 15 §2: the purpose is a catalogue scenario; a punitive one never travels
        pytest.param({"purpose": "deny_housing_subsidy"}, "UNKNOWN_SCENARIO", "purpose", id="punitive-deny-housing-subsidy"),
        pytest.param({"purpose": "blacklist_check"}, "UNKNOWN_SCENARIO", "purpose", id="punitive-blacklist-check"),
        pytest.param({"purpose": "loan"}, "UNKNOWN_SCENARIO", "purpose", id="free-text-loan"),
        pytest.param({"purpose": "heihe/deny-housing-subsidy"}, "UNKNOWN_SCENARIO", "purpose", id="scenario-not-in-catalogue"),
        pytest.param({"purpose": "heihe/deposit-free-rental"}, "TARGET_SCHEME_MISMATCH", "target_scheme", id="threshold-scenario-mapped-elsewhere"),
    ],
)  # fmt: skip
def test_a_malformed_request_is_refused_by_the_first_hop_and_never_forwarded(
    world: World, change: dict[str, object], reason: str, field: str
) -> None:
    """REQ: H5 H14 H17 N14 N20 — issue 14 item 14, issue 15 §2: Hainan refuses a request
    whose form Heihe would refuse (a free-text or punitive purpose among them), with the
    status, reason and field Heihe itself gives, before forwarding
    anything: neither the hub nor Heihe routes, receives or logs it (a routed request
    after it is the only one they see), and an ID number in it is logged nowhere."""
    resident = world.graded[0]
    token = world.grant(resident, max_uses=20)
    change = {k: v.format(id=resident) if isinstance(v, str) else v for k, v in change.items()}
    before = _counts(world)
    with pytest.raises(grpc.RpcError) as info:
        world.request(token, resident, **change)
    routed = info.value
    meta = _trailers(routed)
    assert routed.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert (meta[REASON], meta[FIELD]) == (reason, field)
    assert UPSTREAM not in meta and REFUSED_BY not in meta  # refused here, not relayed
    # Nothing was forwarded: a good request afterwards is the only one the others see.
    world.request(token, resident)
    deadline = time.monotonic() + 20
    while _counts(world)[2] < before[2] + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _counts(world) == (before[0] + 1, before[1] + 1, before[2] + 1)
    # ... and the verdict is Heihe's own: Heihe gives the same one when asked directly.
    with pytest.raises(grpc.RpcError) as direct:
        world.request(token, resident, at=HEIHE, **change)
    assert direct.value.code() == routed.code()  # type: ignore[attr-defined]
    assert {k: _trailers(direct.value)[k] for k in (REASON, FIELD)} == {
        REASON: reason,
        FIELD: field,
    }
    deadline = time.monotonic() + 20  # its access line, before the next case counts again
    while _counts(world)[2] < before[2] + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    for node in (HAINAN, HUB, HEIHE):
        assert resident not in world.log(node)


@pytest.mark.parametrize(
    ("who", "reason", "field"),
    [
        pytest.param("below", "SCENARIO_NOT_MET", "purpose", id="grade-below-the-scenario"),
        pytest.param("ungraded", "SUBJECT_NOT_ELIGIBLE", "subject", id="no-grade-at-all"),
    ],
)
def test_a_resident_who_does_not_meet_the_scenario_cannot_grant_and_nothing_is_kept(
    world: World, who: str, reason: str, field: str
) -> None:
    """REQ: H14 N14 — issue 15 §2: a resident below the scenario's tier (or without a
    grade) is told so when granting (FAILED_PRECONDITION, to the citizen only); no
    consent row and no log leaf is written, so no relying party can ever ask and learn
    that the person falls short."""
    resident = next((r for r in getattr(world, who) if _grant_refusal(world, r) is not None), None)
    assert resident is not None, f"the population has no {who} adult"
    db = world.layout.nodes[HEIHE].directory / "node.db"
    counts = "SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM log_entries)"
    before = _query(db, counts)
    err = _grant_refusal(world, resident)
    assert err is not None
    meta = _trailers(err)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert (meta[REASON], meta.get(FIELD)) == (reason, field)
    assert _query(db, counts) == before


def _grant_refusal(w: World, resident: str) -> grpc.RpcError | None:
    """The refusal of a grant for ``resident``, None when granted or when the resident is
    a minor (who may not consent at all, whatever their grade)."""
    try:
        w.grant(resident)
    except grpc.RpcError as err:
        return None if "civil capacity" in (err.details() or "") else err  # type: ignore[attr-defined]
    return None
