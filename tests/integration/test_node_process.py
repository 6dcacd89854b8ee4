"""`huxin serve` as a real process: restart keeps everything acknowledged; SIGKILL in the
middle of a record batch leaves all of it or none of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from grpc import aio

from keys import CHECKPOINT_TYPE, decode_private_key, verify_envelope, verify_inclusion
from node.cli._client import register_certificate
from node.cli._init import init_region, load_or_create_ca
from node.core._config import load_config
from node.demo._testbed import (
    ServeProcess,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.pb.v1 import attestation_pb2, node_pb2, node_pb2_grpc
from node.rpc._client import citizen_channel, identity_metadata, peer_channel
from node.rpc._identity import DevIdentityProvider

ALICE = make_id_number(201)
# one person per restart: a person's month is published at their first query (H3), so a
# record filed for them after that waits for the next run
PERSON = {signal.SIGTERM: ALICE, signal.SIGKILL: make_id_number(202)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("proc")
    now = datetime.now(UTC)
    ca = load_or_create_ca(root / "ca", now)
    init_region(root / "heihe", "heihe", "heihe", ca, now, peers=("hainan",), sources=("court",))
    source = ca.issue("court", now)
    register_certificate(load_config(root / "heihe" / "node.toml"), source.cert_pem, now)
    return {
        "root": root,
        "ca": ca,
        "dir": root / "heihe",
        "source": source,
        "hainan": ca.issue("hainan", now),
        "idp": DevIdentityProvider(
            decode_private_key((root / "heihe/keys/dev-idp.key").read_bytes())
        ),
    }


def _stubs(world: dict[str, object], proc: ServeProcess) -> tuple[object, ...]:
    ca = world["ca"]
    src, hn = world["source"], world["hainan"]
    peer = f"127.0.0.1:{proc.ports['peer']}"
    chans = [
        peer_channel(peer, ca.cert_pem, src.cert_pem, src.key_pem),  # type: ignore[attr-defined]
        peer_channel(peer, ca.cert_pem, hn.cert_pem, hn.key_pem),  # type: ignore[attr-defined]
        citizen_channel(f"127.0.0.1:{proc.ports['citizen']}", ca.cert_pem),  # type: ignore[attr-defined]
    ]
    return (
        node_pb2_grpc.SourceServiceStub(chans[0]),
        node_pb2_grpc.PeerServiceStub(chans[1]),
        node_pb2_grpc.CitizenServiceStub(chans[2]),
        chans,
    )


def _md(world: dict[str, object], idn: str) -> tuple[tuple[str, bytes], ...]:
    idp = world["idp"]
    assert isinstance(idp, DevIdentityProvider)
    return identity_metadata(idp.assertion(idn, "heihe", int(time.time())))


async def _close(chans: list[aio.Channel]) -> None:
    for c in chans:
        await c.close(None)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_loses_nothing_acknowledged(world: dict[str, object], sig: int) -> None:
    """REQ: N-storage — acknowledged records, consents, uses and log entries survive."""
    person = PERSON[signal.Signals(sig)]

    async def before(proc: ServeProcess) -> tuple[str, int]:
        source, peer, citizen, chans = _stubs(world, proc)
        await source.SubmitRecords(  # type: ignore[attr-defined]
            node_pb2.SubmitRecordsRequest(
                batch_id=f"restart-{sig}",
                records=[honour_record(f"r-{sig}", person)],
                subjects=[resident(person)],
            )
        )
        token = await citizen.GrantConsent(  # type: ignore[attr-defined]
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose="heihe/credit-loans", scope=node_pb2.CONSENT_SCOPE_GRADE
            ),
            metadata=_md(world, person),
        )
        await peer.RequestAttestation(attestation_request(token, person, "heihe/credit-loans"))  # type: ignore[attr-defined]
        log = await citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=_md(world, person))  # type: ignore[attr-defined]
        await _close(chans)  # type: ignore[arg-type]
        return token.consent_id, len(log.entries)

    async def after(proc: ServeProcess, consent_id: str, entries: int) -> None:
        _source, _peer, citizen, chans = _stubs(world, proc)
        score = await citizen.GetMyScore(node_pb2.MyScoreRequest(), metadata=_md(world, person))  # type: ignore[attr-defined]
        assert f"r-{sig}" in {c.record_id for c in score.result.contributions}
        consents = await citizen.ListConsents(
            node_pb2.ListConsentsRequest(), metadata=_md(world, person)
        )  # type: ignore[attr-defined]
        mine = [c for c in consents.consents if c.grant.consent_id == consent_id]
        assert mine
        assert mine[0].uses == 1
        log = await citizen.QueryLog(node_pb2.QueryLogRequest(), metadata=_md(world, person))  # type: ignore[attr-defined]
        assert len(log.entries) == entries
        signing = decode_private_key((world["dir"] / "keys/signing.key").read_bytes())  # type: ignore[operator]
        cp = attestation_pb2.Checkpoint.FromString(  # the signature first
            verify_envelope(log.checkpoint, {signing.key_id: signing.public_key}, CHECKPOINT_TYPE)
        )
        for e in log.entries:
            assert verify_inclusion(
                e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
            )
        await _close(chans)  # type: ignore[arg-type]

    proc = ServeProcess(world["dir"] / "node.toml")  # type: ignore[operator]
    try:
        consent_id, entries = asyncio.run(before(proc))
    finally:
        proc.stop(sig)
    proc = ServeProcess(world["dir"] / "node.toml")  # type: ignore[operator]
    try:
        asyncio.run(after(proc, consent_id, entries))
    finally:
        proc.stop()
    log_text = (world["dir"] / "node.log").read_text()  # type: ignore[operator]
    assert '"msg": "rpc"' in log_text
    assert all(idn not in log_text for idn in PERSON.values())


def test_sigkill_mid_batch_leaves_all_or_nothing(world: dict[str, object]) -> None:
    """REQ: N-storage — a batch killed in flight is either wholly stored or absent."""
    people = [make_id_number(n, area="231182", born="19700101") for n in range(500)]
    n_records = 10_000
    db = world["dir"] / "node.db"  # type: ignore[operator]
    outcomes = []
    # Time one undisturbed batch, then kill at points spread over that duration.
    proc = ServeProcess(world["dir"] / "node.toml")  # type: ignore[operator]

    async def timed() -> float:
        source, _peer, _citizen, chans = _stubs(world, proc)
        recs = [honour_record(f"t-{i}", people[i % len(people)]) for i in range(n_records)]
        req = node_pb2.SubmitRecordsRequest(
            batch_id="timed", records=recs, subjects=[resident(x) for x in people]
        )
        warm = node_pb2.SubmitRecordsRequest(
            batch_id="warm", records=[honour_record("warm-1", people[0])]
        )
        await source.SubmitRecords(warm)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        await source.SubmitRecords(req)  # type: ignore[attr-defined]
        await _close(chans)  # type: ignore[arg-type]
        return time.perf_counter() - t0

    took = asyncio.run(timed())
    proc.stop()
    for attempt, delay in enumerate((-1.0, -1.0, 0.8 * took, 1.2 * took)):
        batch_id = f"kill-{attempt}"
        records = [
            honour_record(f"k{attempt}-{i}", people[i % len(people)], recognised_on="2025-07-01")
            for i in range(n_records)
        ]
        proc = ServeProcess(world["dir"] / "node.toml")  # type: ignore[operator]

        async def send(
            p: ServeProcess = proc, recs: list = records, bid: str = batch_id, delay: float = delay
        ) -> None:  # type: ignore[type-arg]
            source, _peer, _citizen, chans = _stubs(world, p)
            warm = node_pb2.SubmitRecordsRequest(
                batch_id=f"warm-{bid}", records=[honour_record(f"w-{bid}", people[0])]
            )
            await source.SubmitRecords(warm)  # type: ignore[attr-defined]
            task = asyncio.ensure_future(
                source.SubmitRecords(  # type: ignore[attr-defined]
                    node_pb2.SubmitRecordsRequest(
                        batch_id=bid, records=recs, subjects=[resident(x) for x in people]
                    )
                )
            )
            if delay < 0:
                # Kill as soon as the database starts growing: inside the transaction.
                wal = db.with_name("node.db-wal")
                base = wal.stat().st_size if wal.exists() else 0
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 10 and not task.done():
                    if wal.exists() and wal.stat().st_size > base:
                        break
                    await asyncio.sleep(0.0005)
            else:
                await asyncio.sleep(delay)
            os.kill(p.p.pid, signal.SIGKILL)
            with contextlib.suppress(aio.AioRpcError):
                await task
            await _close(chans)  # type: ignore[arg-type]

        asyncio.run(send())
        proc.stop(signal.SIGKILL)
        conn = sqlite3.connect(db)
        (count,) = conn.execute(
            "SELECT count(*) FROM records WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        (acked,) = conn.execute(
            "SELECT count(*) FROM source_batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        conn.close()
        assert count in (0, n_records), count
        assert (count == n_records) == (acked == 1)
        outcomes.append(count)
    print("kill outcomes", outcomes)
    data = db.read_bytes()
    for idn in people[:50]:
        assert idn.encode() not in data
