"""A running node switches to an activated scheme version at its effective date.

Real node (mutual TLS on loopback, SQLite file, manual clock); the rollout is
driven through the ``huxin model rollout`` CLI against the serving node's
database, as an operator would.  The rights scheduler's background loop is
slowed to an hour so that only the test's explicit ``run_once`` steps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from keys.pb.v1 import attestation_pb2
from node.demo._testbed import attestation_request
from node.model._rollout import Switch
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import reason_of
from tests.support.governed_region import ALICE, BOB, CAROL, Fed, huxin_json, start_governed

pytestmark = pytest.mark.asyncio(loop_scope="function")

OLD, NEW = "heihe@2025.1", "heihe@2026.1"
# The seeded people (honour + serious penalty) under each version (ADR 0507 test):
GRADE = {OLD: "A", NEW: "AA"}  # 600 + 170 - 80 = 690 → A;  600 + 170 - 20 = 750 → AA
EFFECTIVE = date(2026, 11, 1)


def _candidate(tmp: Path, version: str) -> Path:
    """heihe with a lighter serious penalty (80 → 20 points) as ``version``."""
    text = resources.files("scoring.schemes").joinpath("heihe.toml").read_text("utf-8")
    text = text.replace('version = "2025.1"', f'version = "{version}"', 1)
    text = text.replace("serious = { points = 80,", "serious = { points = 20,", 1)
    path = tmp / f"heihe-{version}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _payload(signed: bytes) -> attestation_pb2.Attestation:
    env = attestation_pb2.SignedAttestation.FromString(signed).envelope
    return attestation_pb2.Attestation.FromString(env.payload)


@pytest_asyncio.fixture
async def scheduled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Fed]:
    """A serving heihe node with heihe 2026.1 activated from 1 Nov 2026 (node clock: 29 Sep)."""
    f = await start_governed(
        tmp_path, "heihe", "heihe", rights_toml="scheduler_interval_seconds = 3600"
    )
    cand = _candidate(tmp_path, "2026.1")
    cfg = str(f.node.directory / "node.toml")
    try:
        ev = huxin_json("model", "rollout", "evaluate", "--config", cfg,
                  "--candidate", str(cand), "--today", "2026-09-29")  # fmt: skip
        assert ev["stage"] == "evaluated"
        tr = huxin_json("model", "rollout", "trial", "--config", cfg,
                  "--today", "2026-09-29", "--accept-shift")  # fmt: skip
        assert tr["stage"] == "trial"
        act = huxin_json("model", "rollout", "activate", "--config", cfg,
                   "--today", "2026-10-30", "--effective", EFFECTIVE.isoformat())  # fmt: skip
        assert act["stage"] == "scheduled"
        yield f
    finally:
        await f.bed.close()


async def _versions(f: Fed, idn: str) -> tuple[str, str, str, str, str]:
    """(attestation model_version, its scheme_version, its grade, own report's
    scheme_version, catalogue's scheme_version) — all from the serving node."""
    _, signed = await f.attest(idn)
    att = _payload(signed)
    mine = await f.citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=f.me(idn))
    cat = await f.citizen.GetIncentiveCatalogue(node_pb2.GetIncentiveCatalogueRequest())
    return (
        att.model_version,
        att.scheme_version,
        att.grade,
        mine.result.scheme_version,
        (cat.scheme_version),
    )


async def test_running_node_switches_version_at_the_effective_date_without_restart(
    scheduled: Fed,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """REQ: H11 N12 H3 — before the effective date attestations, citizen reports and the
    catalogue name the old version; once the clock has passed it and the scheduler has
    run once, the same running server (no restart) names and scores with the new one,
    from the month republished under it (docs/adr/0514: until that run has finished,
    grades are refused SCORE_NOT_PUBLISHED, never named after another version).
    Evaluating the next candidate afterwards does not put the old version back, and a
    restart serves what the running node served."""
    f = scheduled
    server, ports = f.node.server, f.node.server.ports
    # The day before: the scheduler leaves the version alone.
    f.clock.set(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    await server.scheduler.run_once()
    assert server.scheduler.switches == []
    assert await _versions(f, ALICE) == (OLD, "2025.1", "A", "2025.1", "2025.1")
    # The effective date has come, the scheduler has not stepped yet: still the old one
    # (the switch is the scheduler's, never a half-read inside a request).
    f.clock.set(datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC))
    assert (await _versions(f, ALICE))[0] == OLD
    with caplog.at_level(logging.INFO, logger="huxin.node"):
        await server.scheduler.run_once()
    assert server.scheduler.switches == [Switch(OLD, NEW, EFFECTIVE)]
    assert [r for r in caplog.records if r.getMessage() == "model version switched"]
    assert f.node.server is server and server.ports == ports  # no restart
    assert server.ctx.scheme.key == NEW
    with pytest.raises(aio.AioRpcError) as refused:
        await f.attest(ALICE)
    assert (refused.value.code(), reason_of(refused.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SCORE_NOT_PUBLISHED",
    )
    assert server.monthly is not None
    republished = await server.monthly.run_once()  # the month due, under the new version
    assert republished is not None
    assert (republished.period, republished.scheme, republished.state) == (
        "2026-09",
        NEW,
        "finished",
    )
    assert await _versions(f, ALICE) == (NEW, "2026.1", "AA", "2026.1", "2026.1")
    assert await _versions(f, BOB) == (NEW, "2026.1", "AA", "2026.1", "2026.1")
    # Further steps change nothing.
    f.clock.set(datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    await server.scheduler.run_once()
    assert server.scheduler.switches == [Switch(OLD, NEW, EFFECTIVE)]
    # The next candidate (same rules as 2026.1) is compared with 2026.1, not 2025.1 …
    cfg = str(f.node.directory / "node.toml")
    ev = huxin_json("model", "rollout", "evaluate", "--config", cfg,
              "--candidate", str(_candidate(tmp_path, "2027.1")), "--today", "2026-11-02")  # fmt: skip
    assert (ev["stage"], ev["current_version"], ev["version_in_force"]) == (
        "evaluated",
        "2026.1",
        "2026.1",
    )
    shadow = ev["shadow_report"]
    assert isinstance(shadow, dict)
    assert (shadow["compared"], shadow["moved_up"], shadow["moved_down"]) == (3, 0, 0)
    # … and the running node keeps serving 2026.1 (never falls back to the shipped one).
    await server.scheduler.run_once()
    assert server.scheduler.switches == [Switch(OLD, NEW, EFFECTIVE)]
    assert (await _versions(f, CAROL))[:3] == (NEW, "2026.1", "AA")
    # A restart at the same instant serves the same version.
    await f.bed.stop_node("heihe")
    f.node = await f.bed.start_node("heihe", "heihe", clock=f.clock)
    f.peer = node_pb2_grpc.PeerServiceStub(f.bed.peer_channel(f.node, f.bed.cert("hainan")))
    f.citizen = f.bed.citizen_stub(f.node)
    assert f.node.server.ctx.scheme.key == NEW
    assert await _versions(f, ALICE) == (NEW, "2026.1", "AA", "2026.1", "2026.1")


async def test_concurrent_requests_never_see_a_half_switched_version(scheduled: Fed) -> None:
    """REQ: H11 H3 — attestations issued by clients that keep requesting while the switch
    happens each name exactly the version that scored them (old grade with the old
    name, new grade with the new name); those done before name the old one, those
    after the new one.  Between the switch and the month republished under the new
    version the only answer is SCORE_NOT_PUBLISHED (the use is given back, the client
    retries with the same token)."""
    f = scheduled
    f.clock.set(datetime(2026, 11, 1, 8, 0, tzinfo=UTC))
    people = [ALICE, BOB, CAROL]
    tokens = {p: [await f.token(p) for _ in range(6)] for p in people}
    done: list[attestation_pb2.Attestation] = []
    refusals: list[tuple[grpc.StatusCode, str]] = []

    async def client(idn: str) -> None:  # one request after the other
        for t in tokens[idn]:
            while True:
                try:
                    resp = await f.peer.RequestAttestation(
                        attestation_request(t, idn, "heihe/credit-loans")
                    )
                except aio.AioRpcError as err:
                    refusals.append((err.code(), reason_of(err)))
                    await asyncio.sleep(0.001)
                    continue
                done.append(_payload(resp.signed_attestation))
                break

    clients = [asyncio.ensure_future(client(p)) for p in people]
    while len(done) < 4:
        await asyncio.sleep(0.001)
    before = len(done)
    await f.node.server.scheduler.run_once()
    assert f.node.server.monthly is not None
    await f.node.server.monthly.run_once()
    await asyncio.gather(*clients)
    assert set(refusals) <= {(grpc.StatusCode.FAILED_PRECONDITION, "SCORE_NOT_PUBLISHED")}
    assert len(done) == 18
    for att in done:
        assert att.model_version == f"{att.scheme_id}@{att.scheme_version}"
        assert att.grade == GRADE[att.model_version], att.model_version
    assert {a.model_version for a in done[:before]} == {OLD}
    assert {a.model_version for a in done} == {OLD, NEW}
    assert f.node.server.scheduler.switches == [Switch(OLD, NEW, EFFECTIVE)]
    assert (await _versions(f, CAROL))[:3] == (NEW, "2026.1", "AA")
