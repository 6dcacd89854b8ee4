"""Replicas: several ``huxin serve`` processes of one region on one PostgreSQL (issue 18
"Replica tests", docs/adr/0702).

Real processes, real mutual TLS, a real PostgreSQL server (tests/support/postgres.py):

* three replicas on their own ports count 48 concurrent uses of a 3-use consent
  exactly once (3 attestations, 45 refusals with the existing reason), in ONE
  dense transparency log and status list, whose checkpoints verify from every
  replica;
* the replica holding the background lease is SIGKILLed: another takes the lease,
  and the background work goes on exactly once (an objection is forwarded by the
  scheduler, the changed status list is pushed to the hub);
* PostgreSQL stops with an immediate shutdown under load: requests fail fast with
  UNAVAILABLE while it is down and succeed after it is back; nothing acknowledged
  is lost or counted twice.

No timing assertions: every wait is bounded polling on a condition (tests/_waiting.py).
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sqlite3
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from grpc import aio

from keys import (
    ATTESTATION_TYPE,
    CHECKPOINT_TYPE,
    KeyPair,
    decode_private_key,
    verify_envelope,
    verify_inclusion,
)
from keys.pb.v1 import attestation_pb2
from node.cli._client import register_certificate
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import load_config
from node.core._secrets import load_secrets
from node.demo._testbed import (
    ServeProcess,
    approved_tables_toml,
    attestation_request,
    honour_record,
    make_id_number,
    requester_channel,
    resident,
    spawn_serve,
    wait_for_ready,
)
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.rpc._client import citizen_channel, identity_metadata, peer_channel, reason_of
from node.rpc._identity import DevIdentityProvider
from node.store._pg_local import LocalPostgres
from tests._waiting import WAIT_S, wait_until
from tests.support.replicas import Replica, Replicas

HUB = "heilongjiang"
PURPOSE = "heihe/credit-loans"
USES = 3
CALLS = 48  # concurrent uses of the 3-use consent, spread over the replicas
# quick background steps: the scheduler and the push loop run every fraction of a second
FAST = """
[rights]
scheduler_interval_seconds = 0.2
"""


@dataclass
class World:
    """A Heihe node directory (keys, certificates, approved tables) and its clients."""

    node_dir: Path
    ca: Any
    court: Any
    hainan: Any
    idp: DevIdentityProvider

    @property
    def toml(self) -> Path:
        return self.node_dir / "node.toml"


def _world(tmp_path: Path, *, extra_toml: str = "") -> World:
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    node_dir = tmp_path / "heihe"
    mapping = approved_tables_toml(node_dir, "heihe", KeyPair.generate(), now)
    init_region(
        node_dir, "heihe", "heihe", ca, now, peers=("hainan",), sources=("court",),
        extra_toml=mapping + FAST + extra_toml,
    )  # fmt: skip
    court = ca.issue("court", now)
    register_certificate(load_config(node_dir / "node.toml"), court.cert_pem, now)
    idp = DevIdentityProvider(decode_private_key((node_dir / "keys/dev-idp.key").read_bytes()))
    return World(node_dir, ca, court, ca.issue("hainan", now), idp)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return _world(tmp_path)


@pytest.fixture
def replicas(world: World, postgres_server: LocalPostgres) -> Iterator[Replicas]:
    """Three replica configs of the world's node on a fresh database of the session's
    server (started by each test)."""
    reps = Replicas(world.node_dir, postgres_server.create_database("replicas"), 3)
    try:
        yield reps
    finally:
        reps.stop_all()


class _Clients:
    """A source and a citizen on one replica; requester connections spread over all."""

    def __init__(self, world: World, reps: list[Replica], calls: int = CALLS) -> None:
        ca, court = world.ca, world.court
        first = reps[0]
        self.world = world
        self.src = peer_channel(first.peer, ca.cert_pem, court.cert_pem, court.key_pem)
        self.cit = {r.index: citizen_channel(r.citizen, ca.cert_pem) for r in reps}
        # requester i talks to replica i mod n on a connection of its own
        self.reqs = [
            requester_channel(int(reps[i % len(reps)].ports["peer"]), world.hainan, ca.cert_pem, i)
            for i in range(calls)
        ]

    def md(self, who: str) -> Any:
        """Fresh identity metadata (an assertion is good for one call)."""
        return identity_metadata(self.world.idp.assertion(who, "heihe", int(time.time())))

    def citizen(self, index: int = 0) -> node_pb2_grpc.CitizenServiceStub:
        return node_pb2_grpc.CitizenServiceStub(self.cit[index])

    async def records(self, who: str, batch: str) -> None:
        await node_pb2_grpc.SourceServiceStub(self.src).SubmitRecords(
            node_pb2.SubmitRecordsRequest(
                batch_id=batch, records=[honour_record(batch, who)], subjects=[resident(who)]
            )
        )

    async def consent(self, who: str, uses: int, *, on: int = 0) -> node_pb2.ConsentToken:
        return await self.citizen(on).GrantConsent(
            node_pb2.GrantConsentRequest(
                audience="hainan", purpose=PURPOSE, scope=node_pb2.CONSENT_SCOPE_GRADE,
                max_uses=uses,
            ),
            metadata=self.md(who),
        )  # fmt: skip

    async def close(self) -> None:
        for ch in (self.src, *self.cit.values(), *self.reqs):
            await ch.close(None)


async def _use(ch: aio.Channel, token: Any, who: str, timeout: float = WAIT_S) -> Any:
    """One RequestAttestation: ("OK", reply) or (code name, reason)."""
    try:
        reply = await node_pb2_grpc.PeerServiceStub(ch).RequestAttestation(
            attestation_request(token, who, PURPOSE, target_scheme="hainan"), timeout=timeout
        )
    except aio.AioRpcError as err:
        return err.code().name, reason_of(err)
    return "OK", reply


def _attestation(reply: Any, keys: dict[str, bytes]) -> Any:
    signed = attestation_pb2.SignedAttestation.FromString(reply.signed_attestation)
    return attestation_pb2.Attestation.FromString(
        verify_envelope(signed.envelope, keys, ATTESTATION_TYPE)
    )


def _keys(world: World) -> dict[str, bytes]:
    secrets = load_secrets(load_config(world.toml))
    return {secrets.signing.key_id: secrets.signing.public_key}


def _dense(reps: Replicas) -> int:
    """The log's and the status list's indexes are 0..n-1; the log's size."""
    log = [int(r[0]) for r in reps.query("SELECT idx FROM log_entries ORDER BY idx")]
    assert log == list(range(len(log))), "the transparency log has a gap or a duplicate"
    status = [int(r[0]) for r in reps.query("SELECT idx FROM status_entries ORDER BY idx")]
    assert status == list(range(len(status))), "the status list has a gap or a duplicate"
    return len(log)


# ------------------------------------------------------------------ exactly once


async def _spread_uses(world: World, reps: list[Replica]) -> dict[str, Any]:
    clients = _Clients(world, reps)
    who = make_id_number(801)
    try:
        await clients.records(who, "r1")
        token = await clients.consent(who, USES, on=1)
        outcomes = await asyncio.gather(*(_use(ch, token, who) for ch in clients.reqs))
        checkpoints = await asyncio.gather(
            *(
                node_pb2_grpc.PeerServiceStub(clients.reqs[r.index]).GetLogCheckpoint(
                    node_pb2.GetCheckpointRequest()
                )
                for r in reps
            )
        )
        log = await clients.citizen(2).QueryLog(
            node_pb2.QueryLogRequest(), metadata=clients.md(who)
        )
        return {"outcomes": outcomes, "checkpoints": checkpoints, "log": log}
    finally:
        await clients.close()


def test_replicas_count_a_three_use_consent_exactly_once_in_one_dense_log(
    world: World, replicas: Replicas
) -> None:
    """REQ: C1 H16 N23 — issue 18: 48 concurrent uses of a 3-use consent spread over three
    replicas yield exactly 3 attestations (the others refused CONSENT_EXHAUSTED); the log
    and the status list stay dense; every replica's checkpoint verifies and covers them."""
    reps = replicas.start_all()
    replicas.wait_month()
    out = asyncio.run(_spread_uses(world, reps))

    oks = [o[1] for o in out["outcomes"] if o[0] == "OK"]
    refused = [o for o in out["outcomes"] if o[0] != "OK"]
    assert len(oks) == USES, out["outcomes"]
    assert set(refused) == {("FAILED_PRECONDITION", "CONSENT_EXHAUSTED")}
    assert len(refused) == CALLS - USES
    keys = _keys(world)
    atts = [_attestation(reply, keys) for reply in oks]
    assert sorted(a.status.index for a in atts) == list(range(USES))
    assert len({a.attestation_id for a in atts}) == USES
    assert replicas.query("SELECT uses FROM consents") == [(USES,)]

    size = _dense(replicas)
    for env in out["checkpoints"]:  # each replica caught up with the others' entries
        cp = attestation_pb2.Checkpoint.FromString(verify_envelope(env, keys, CHECKPOINT_TYPE))
        assert cp.tree_size == size
    log = out["log"]
    cp = attestation_pb2.Checkpoint.FromString(
        verify_envelope(log.checkpoint, keys, CHECKPOINT_TYPE)
    )
    assert cp.tree_size == size
    kinds: list[str] = []
    refusals = 0
    for e in log.entries:
        assert verify_inclusion(
            e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
        )
        entry = node_pb2.LogEntry.FromString(e.entry)
        kinds.append(entry.kind)
        if entry.kind == "request_refused":
            refusals += max(entry.count, 1)
    assert kinds.count("attestation_issued") == USES
    # every refusal is registered once: logged for the citizen, or counted on its mark
    # until the next logged entry (bounded refusal logging, ADR 0319)
    (unlogged,) = replicas.query("SELECT coalesce(sum(unlogged), 0) FROM refusal_marks")[0]
    assert refusals + int(unlogged) == CALLS - USES
    # every replica served some of the calls (each had its own 16 connections)
    served = {
        r.index for r in reps if any(d.get("method") == "RequestAttestation" for d in r.log())
    }
    assert served == {0, 1, 2}


# ------------------------------------------------------------------ takeover


@dataclass
class Federation:
    """The world's region, pushing to a hub process of its own (SQLite)."""

    world: World
    hub: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _federation(tmp_path: Path) -> Federation:
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    hub_dir, port = tmp_path / HUB, _free_port()
    init_region(hub_dir, HUB, "heihe", ca, now, peer_listen=f"127.0.0.1:{port}", role="hub")
    toml = hub_dir / "node.toml"
    # the hub stays on SQLite whatever the session's backend: a federation mixes them,
    # and the test reads the hub's file
    toml.write_text(
        toml.read_text()
        + '\n[hub]\ntrust_list_refresh_seconds = 3600\n\n[storage]\nurl = "sqlite:///node.db"\n'
    )
    hub_key = decode_private_key((hub_dir / "keys/root.key").read_bytes()).public_key
    (tmp_path / "province.key").write_text(KeyPair.generate().seed.hex())
    push = f"""
[hub]
province_key = "{tmp_path / "province.key"}"
endpoint = "127.0.0.1:{port}"
hub_id = "{HUB}"
hub_key = "{hub_key.hex()}"
push_interval_seconds = 0.2
backoff_base_seconds = 0.05
backoff_max_seconds = 0.4
"""
    world = _world(tmp_path, extra_toml=push)
    assert main(["hub", "register", "--config", str(toml),
                 "--region-dir", str(world.node_dir)]) == 0  # fmt: skip
    return Federation(world, hub_dir)


def _all_pushed(reps: Replicas, fed: Federation) -> bool:
    """Every outbox event of the region is stored at the hub and receipted."""
    seqs = [int(r[0]) for r in reps.query("SELECT seq FROM outbox ORDER BY seq")]
    if not seqs:
        return False
    receipts = reps.query("SELECT count(*) FROM push_receipts")[0][0]
    with sqlite3.connect(f"file:{fed.hub / 'node.db'}?mode=ro", uri=True) as hub:
        stored = hub.execute("SELECT count(*) FROM hub_events WHERE region = 'heihe'").fetchone()
    return int(receipts) == len(seqs) == int(stored[0])


def _marks(payload: bytes, indexes: list[int]) -> bool:
    """Whether the signed status list in an outbox payload marks every one of
    ``indexes`` as not valid (2 bits per entry, least significant first)."""
    env = attestation_pb2.Envelope.FromString(payload)
    bits = zlib.decompress(attestation_pb2.StatusList.FromString(env.payload).bits)
    return all((bits[i >> 2] >> ((i & 3) * 2)) & 3 != 0 for i in indexes)


def _forwarded(reps: Replicas, count: int) -> bool:
    rows = reps.query("SELECT count(*) FROM objections WHERE state = 'forwarded'")
    return int(rows[0][0]) >= count


async def _act(world: World, rep: Replica, who: str, step: str) -> None:
    """One citizen action on ``rep``: records and a consent, an objection, a withdrawal."""
    clients = _Clients(world, [rep], calls=1)
    try:
        if step == "setup":
            await clients.records(who, "t1")
            await clients.records(who, "t2")
            token = await clients.consent(who, 5, on=rep.index)
            assert (await _use(clients.reqs[0], token, who))[0] == "OK"
            (Path(world.node_dir) / "consent.id").write_text(token.consent_id)
        elif step.startswith("object:"):
            await clients.citizen(rep.index).FileObjection(
                node_pb2.FileObjectionRequest(record_id=step[7:], reason="not mine"),
                metadata=clients.md(who),
            )
        elif step == "withdraw":
            consent_id = (Path(world.node_dir) / "consent.id").read_text()
            await clients.citizen(rep.index).WithdrawConsent(
                node_pb2.WithdrawConsentRequest(consent_id=consent_id), metadata=clients.md(who)
            )
    finally:
        await clients.close()


def test_killing_the_lease_holder_hands_the_background_work_to_another_replica(
    tmp_path: Path, postgres_server: LocalPostgres
) -> None:
    """Issue 18, ADR 0702: SIGKILL the replica holding the background lease; another takes
    it over, and the background work still happens exactly once: the objection filed
    after the kill is forwarded by the new holder's scheduler (one forwarding per
    objection), the status list changed after the kill is pushed to the hub, and every
    outbox event is stored at the hub once, in order, with one receipt."""
    fed = _federation(tmp_path)
    hub = ServeProcess(fed.hub / "node.toml")
    reps = Replicas(fed.world.node_dir, postgres_server.create_database("takeover"), 2)
    who = make_id_number(802)
    try:
        reps.start_all()
        reps.wait_month()
        first = reps.wait_holder()
        other = next(r for r in reps.running if r is not first)
        asyncio.run(_act(fed.world, other, who, "setup"))
        asyncio.run(_act(fed.world, other, who, "object:t1"))
        wait_until(lambda: _forwarded(reps, 1), "the holder to forward the first objection")
        wait_until(lambda: _all_pushed(reps, fed), "the holder's first push")

        before_kill = {int(seq) for (seq,) in reps.query("SELECT seq FROM outbox")}
        first.stop(signal.SIGKILL)
        second = reps.wait_holder(other_than=first.pid)
        assert second is other
        asyncio.run(_act(fed.world, second, who, "object:t2"))
        asyncio.run(_act(fed.world, second, who, "withdraw"))  # the status list changes
        wait_until(lambda: _forwarded(reps, 2), "the new holder to forward the second objection")
        consent_id = (Path(fed.world.node_dir) / "consent.id").read_text()
        revoked = [
            int(idx)
            for (idx,) in reps.query(
                "SELECT idx FROM status_entries WHERE consent_id = %s AND status <> 0",
                (consent_id,),
            )
        ]
        assert revoked, "the withdrawal revoked no status entry"

        def new_list_stored() -> bool:
            """A status_list event appended after the kill (only the new holder runs the
            background work) marks the revoked entries, and the hub stores it."""
            fresh = [
                (int(seq), bytes(payload))
                for seq, payload in reps.query(
                    "SELECT seq, payload FROM outbox WHERE kind = 'status_list' ORDER BY seq"
                )
                if int(seq) not in before_kill
            ]
            marking = [seq for seq, payload in fresh if _marks(payload, revoked)]
            if not marking:
                return False
            with sqlite3.connect(f"file:{fed.hub / 'node.db'}?mode=ro", uri=True) as db:
                stored = {
                    int(seq)
                    for (seq,) in db.execute(
                        "SELECT seq FROM hub_events WHERE region = 'heihe' AND kind = 'status_list'"
                    )
                }
            return any(seq in stored for seq in marking) and _all_pushed(reps, fed)

        wait_until(new_list_stored, "the new holder to push the list with the revoked entry")
    finally:
        reps.stop_all()
        hub.stop()

    forwarded = reps.query("SELECT count(*) FROM log_entries WHERE kind = 'objection_forwarded'")
    assert forwarded == [(2,)]  # each objection forwarded once, by one replica

    outbox = reps.query("SELECT seq, event_id FROM outbox ORDER BY seq")
    assert [int(s) for s, _ in outbox] == list(range(1, len(outbox) + 1))
    with sqlite3.connect(f"file:{fed.hub / 'node.db'}?mode=ro", uri=True) as db:
        stored = db.execute(
            "SELECT seq, event_id FROM hub_events WHERE region = 'heihe' ORDER BY seq"
        ).fetchall()
    assert [(int(s), e) for s, e in stored] == [(int(s), e) for s, e in outbox]
    receipts = reps.query("SELECT seq FROM push_receipts ORDER BY seq")
    assert [int(s) for (s,) in receipts] == [int(s) for s, _ in outbox]
    _dense(reps)


def test_a_new_holder_runs_the_month_the_killed_one_left_unfinished(
    world: World, postgres_server: LocalPostgres
) -> None:
    """REQ: H3 — issue 18, ADR 0702: the monthly run belongs to the lease holder; when
    the holder dies with the due month not finished (here: its run's rows removed, as
    a holder killed before its first step commits leaves them), the replica that takes
    the lease over runs the month and finishes it."""
    reps = Replicas(world.node_dir, postgres_server.create_database("month"), 2)
    try:
        reps.start_all()
        reps.wait_month()
        first = reps.wait_holder()
        finished = reps.query("SELECT period FROM monthly_runs WHERE state = 'finished'")
        assert finished
        other = next(r for r in reps.running if r is not first)
        runs_before = sum(1 for d in other.log() if d.get("msg") == "monthly run finished")
        first.stop(signal.SIGKILL)
        with psycopg.connect(reps.url, autocommit=True) as conn:
            conn.execute("DELETE FROM monthly_runs")
            conn.execute("DELETE FROM snapshot_runs")
        second = reps.wait_holder(other_than=first.pid)
        assert second is other

        def ran() -> bool:
            runs = sum(1 for d in second.log() if d.get("msg") == "monthly run finished")
            done = runs > runs_before
            return done and bool(reps.query("SELECT 1 FROM monthly_runs WHERE state = 'finished'"))

        wait_until(ran, "the new holder to run the month")
        again = reps.query("SELECT period FROM monthly_runs WHERE state = 'finished'")
        assert again == finished  # the same due month, finished once more by the new holder
        failed = [d for d in second.log() if "failed" in str(d.get("msg"))]
        assert not failed, failed
    finally:
        reps.stop_all()


# ------------------------------------------------------------------ database restart


@dataclass
class _Call:
    started: float
    ended: float
    code: str
    detail: Any


class _Load:
    """Attestation requests from ``workers`` connections, one after another on each,
    until stopped; every outcome kept with when it started and ended."""

    def __init__(self, world: World, reps: list[Replica], token: Any, who: str) -> None:
        self.clients = _Clients(world, reps, calls=8)
        self.token, self.who = token, who
        self.calls: list[_Call] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run(ch)) for ch in self.clients.reqs]

    async def _run(self, ch: aio.Channel) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            # the bound only keeps a broken build from hanging; a failing call must come
            # back with a code long before it (asserted: UNAVAILABLE, never the deadline)
            code, detail = await _use(ch, self.token, self.who, timeout=WAIT_S)
            self.calls.append(_Call(started, time.monotonic(), code, detail))
            if code != "OK":
                await asyncio.sleep(0.05)  # a client's pause before it retries

    def oks(self, after: float = 0.0) -> int:
        return sum(1 for c in self.calls if c.code == "OK" and c.started >= after)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.clients.close()


async def _until(cond: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _restart_under_load(
    world: World, reps: list[Replica], server: LocalPostgres
) -> tuple[_Load, float, float]:
    who = make_id_number(803)
    setup = _Clients(world, reps, calls=1)
    try:
        await setup.records(who, "u1")
        token = await setup.consent(who, 1000)
    finally:
        await setup.close()
    load = _Load(world, reps, token, who)
    load.start()
    try:
        await _until(lambda: load.oks() >= 16, "attestations before the stop")
        await asyncio.to_thread(server.stop_server, "immediate")
        down = time.monotonic()
        await _until(
            lambda: sum(1 for c in load.calls if c.started >= down) >= 16,
            "calls while the database is down",
        )
        up = time.monotonic()
        await asyncio.to_thread(server.start_server)
        await _until(lambda: load.oks(after=up) >= 16, "attestations after the restart")
    finally:
        await load.stop()
    return load, down, up


def test_an_immediate_database_restart_under_load_fails_fast_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Issue 18: PostgreSQL stops with an immediate shutdown while two replicas serve
    attestations: every call made while it is down fails with UNAVAILABLE (none hangs to
    its deadline), calls succeed again once it is back, the lease is held again, and
    nothing acknowledged is lost or counted twice (each acknowledged attestation has
    one status entry and one log entry; every counted use has its attestation)."""
    world = _world(tmp_path)
    with LocalPostgres() as server:  # its own server: a restart must not hit other tests
        reps = Replicas(world.node_dir, server.create_database("restart"), 2)
        try:
            running = reps.start_all()
            reps.wait_month()
            load, down, up = asyncio.run(_restart_under_load(world, running, server))
            assert all(r.alive() for r in running), "a replica died with its database"
            reps.wait_holder()  # a replica took the background lease again

            while_down = [c for c in load.calls if c.started >= down and c.ended <= up]
            assert while_down, "no call was made while the database was down"
            assert {c.code for c in while_down} == {"UNAVAILABLE"}, while_down
            assert load.oks(after=up) > 0

            keys = _keys(world)
            acked = [
                _attestation(c.detail, keys).attestation_id for c in load.calls if c.code == "OK"
            ]
            assert len(set(acked)) == len(acked)
            stored = [str(a) for (a,) in reps.query("SELECT attestation_id FROM status_entries")]
            assert set(acked) <= set(stored)  # none acknowledged and lost
            issued: list[str] = []
            for (leaf,) in reps.query(
                "SELECT leaf FROM log_entries WHERE kind = 'attestation_issued' ORDER BY idx"
            ):
                issued.append(node_pb2.LogEntry.FromString(bytes(leaf)).attestation_id)
            assert len(set(issued)) == len(issued)  # no attestation logged twice
            assert sorted(issued) == sorted(stored)  # one log entry per attestation
            # every counted use of each consent has exactly one attestation, and back
            uses = {str(c): int(n) for c, n in reps.query("SELECT consent_id, uses FROM consents")}
            entries = {
                str(c): int(n)
                for c, n in reps.query(
                    "SELECT consent_id, count(*) FROM status_entries GROUP BY consent_id"
                )
            }
            assert {c: n for c, n in uses.items() if n} == entries
            # committed but never acknowledged: only a call that did not end OK (its
            # answer lost with the database or the connection) may have left one
            unacked = set(stored) - set(acked)
            not_ok = [c for c in load.calls if c.code != "OK"]
            assert len(unacked) <= len(not_ok), (len(unacked), len(not_ok))
            _dense(reps)
        finally:
            reps.stop_all()


# ------------------------------------------------------------------ a hub's replicas


def test_hub_replicas_starting_together_sign_one_trust_list(
    tmp_path: Path, postgres_server: LocalPostgres
) -> None:
    """Issue 18, ADR 0702: a hub's replicas started at the same moment each sign the
    trust list if due at start; the decision is taken under one lock, so exactly one
    version 1 exists, both serve it, and one replica holds the hub's lease."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    hub_dir = tmp_path / HUB
    init_region(hub_dir, HUB, "heihe", ca, now, role="hub")
    reps = Replicas(hub_dir, postgres_server.create_database("hub"), 2)
    try:
        configs = reps.configs
        procs = [
            spawn_serve(c, c.with_suffix(".ready.json"), stderr=subprocess.DEVNULL) for c in configs
        ]  # both started before either is waited for
        for proc, c in zip(procs, configs, strict=True):
            wait_for_ready(proc, c.with_suffix(".ready.json"), what=str(c))
        reps.replicas = [
            Replica(i, c, p) for i, (c, p) in enumerate(zip(configs, procs, strict=True))
        ]
        holder = reps.wait_holder()
        assert holder.pid in {p.pid for p in procs}
        versions = [int(v) for (v,) in reps.query("SELECT version FROM hub_trust_lists")]
        assert versions == [1]
    finally:
        reps.stop_all()


# ------------------------------------------------------------------ many consents at once


async def _crossing_uses(world: World, reps: list[Replica]) -> list[str]:
    """Requests for 12 people's consents, in random order, from 32 connections over the
    replicas: groups of units on every replica lock consent rows in crossing orders."""
    people = [make_id_number(900 + i) for i in range(12)]
    setup = _Clients(world, reps, calls=1)
    tokens = {}
    try:
        for i, who in enumerate(people):
            await setup.records(who, f"x{i}")
            tokens[who] = await setup.consent(who, 1000, on=i % len(reps))
    finally:
        await setup.close()
    clients = _Clients(world, reps, calls=32)
    rng = random.Random(18)
    plans = [[rng.choice(people) for _ in range(8)] for _ in clients.reqs]
    codes: list[str] = []

    async def one(ch: aio.Channel, plan: list[str]) -> None:
        for who in plan:
            code, detail = await _use(ch, tokens[who], who)
            codes.append(code if code == "OK" else f"{code} {detail}")

    try:
        await asyncio.gather(*(one(ch, plan) for ch, plan in zip(clients.reqs, plans, strict=True)))
    finally:
        await clients.close()
    return codes


def test_replicas_serving_many_consents_at_once_never_deadlock(
    world: World, postgres_server: LocalPostgres
) -> None:
    """ADR 0702: every write transaction takes the dense-index lock first, so replicas
    whose groups lock consent rows in crossing orders never deadlock (PostgreSQL would
    abort one: an INTERNAL error for its callers); every request succeeds, each counted
    once, in one dense log."""
    reps = Replicas(world.node_dir, postgres_server.create_database("crossing"), 2)
    try:
        running = reps.start_all()
        reps.wait_month()
        codes = asyncio.run(_crossing_uses(world, running))
        assert codes == ["OK"] * (32 * 8), sorted(set(codes))
        (uses,) = reps.query("SELECT sum(uses) FROM consents")[0]
        assert int(uses) == 32 * 8
        _dense(reps)
    finally:
        reps.stop_all()


async def _replayed_across(world: World, reps: list[Replica]) -> tuple[str, tuple[str, str]]:
    clients = _Clients(world, reps, calls=0)
    who = make_id_number(7)
    try:
        md = clients.md(who)  # ONE assertion, sent to two replicas
        await clients.citizen(0).ListConsents(node_pb2.ListConsentsRequest(), metadata=md)
        try:
            await clients.citizen(1).ListConsents(node_pb2.ListConsentsRequest(), metadata=md)
        except aio.AioRpcError as err:
            return "refused", (err.code().name, reason_of(err))
        return "accepted", ("OK", "")
    finally:
        await clients.close()


def test_an_identity_assertion_accepted_by_one_replica_is_refused_by_another(
    world: World, replicas: Replicas
) -> None:
    """Issue 18 defect 9 (docs/adr/0416, 0702): the replay cache is the replicas' shared
    identity_replay table, so a one-time assertion is good for one call per node."""
    reps = [replicas.start(0), replicas.start(1)]
    assert asyncio.run(_replayed_across(world, reps)) == (
        "refused",
        ("UNAUTHENTICATED", "IDENTITY_REPLAYED"),
    )
