"""Push to the provincial hub with real processes, mutual TLS and SQLite files or
PostgreSQL databases (H3, H13, H17; issue 18: every test runs on both backends).

A Heihe node and the Heilongjiang hub run as separate ``huxin serve`` processes.
The hub is killed (SIGKILL) and restarted while the region pushes; afterwards
every batch the region holds a receipt for is stored at the hub exactly once,
nothing is lost and nothing is applied twice (leaves and receipts counted).
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys import (
    KeyPair,
    decode_private_key,
    province_pseudonym,
    verified_signer,
    verify_key_set,
)
from node.cli._init import init_region, load_or_create_ca
from node.cli._main import main
from node.core._config import load_config
from node.demo._testbed import ServeProcess, make_id_number, place_storage
from node.hub._ingest import RECEIPT_TYPE
from node.monthly import due_period
from node.pb.v1 import hub_pb2, node_pb2
from node.store import connect
from node.store._locks import WriterLock
from tests._waiting import (
    WAIT_S,
    wait_until,
    writer_lock_holders,
    writer_lock_waiters,
)
from tests.support.hub_world import populate_sealed

HUB = "heilongjiang"
PERIOD = "2026-10"
PEOPLE = 400
BATCH = 20  # -> 20 signed batches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fed:
    root: Path
    hub_dir: Path
    region_dir: Path
    hub_port: int
    ids: list[str]
    province_key: bytes
    hub_root_public: bytes

    @property
    def hub_config(self) -> Path:
        return self.hub_dir / "node.toml"

    @property
    def region_config(self) -> Path:
        return self.region_dir / "node.toml"


def _append(config: Path, text: str) -> None:
    config.write_text(config.read_text() + text)


def _region(
    root: Path, name: str, ca: object, now: datetime, hub_port: int, hub_pk: bytes,
    province: bytes, *, interval: float = 0,
) -> Path:  # fmt: skip
    d = root / name
    init_region(d, name, "heihe", ca, now)  # type: ignore[arg-type]
    (d / "keys/province.key").write_text(province.hex())
    _append(
        d / "node.toml",
        f"""
[hub]
province_key = "keys/province.key"
endpoint = "127.0.0.1:{hub_port}"
hub_id = "{HUB}"
hub_key = "{hub_pk.hex()}"
push_interval_seconds = {interval}
max_items_per_push = 3
batch_leaves = {BATCH}
backoff_base_seconds = 0.05
backoff_max_seconds = 0.4
""",
    )
    return d


@pytest.fixture
def fed(tmp_path: Path, harness_backend: str) -> Fed:
    """A hub and a region, both on ``harness_backend`` (their storage placed before any
    set-up writes, so the CLI, the fixtures and the served nodes share it)."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(tmp_path / "ca", now)
    hub_port = _free_port()
    hub_dir = tmp_path / HUB
    init_region(hub_dir, HUB, "heihe", ca, now, peer_listen=f"127.0.0.1:{hub_port}", role="hub")
    _append(hub_dir / "node.toml", "\n[hub]\ntrust_list_refresh_seconds = 3600\n")
    hub_pk = decode_private_key((hub_dir / "keys/root.key").read_bytes()).public_key
    province = KeyPair.generate().seed
    region_dir = _region(tmp_path, "heihe", ca, now, hub_port, hub_pk, province)
    for config in (hub_dir / "node.toml", region_dir / "node.toml"):
        place_storage(config)
    ids = [make_id_number(i, born="19850312") for i in range(PEOPLE)]
    # distinct numbers: vary the area code as well (make_id_number keeps 3 sequence digits)
    ids = [make_id_number(i % 1000, area=f"2311{i // 1000:02d}") for i in range(PEOPLE)]
    populate_sealed(region_dir, ids)
    assert main(["hub", "register", "--config", str(hub_dir / "node.toml"),
                 "--region-dir", str(region_dir)]) == 0  # fmt: skip
    assert main(["score", "publish", "--config", str(region_dir / "node.toml"),
                 "--period", PERIOD, "--workers", "1"]) == 0  # fmt: skip
    return Fed(tmp_path, hub_dir, region_dir, hub_port, ids, province, hub_pk)


def _push() -> list[str]:
    return [sys.executable, "-m", "node", "push", "--json", "--timeout", "10", "--config"]


def _q(config: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read from the database of the node configured by ``config``."""
    conn = connect(load_config(config).storage, readonly=True)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def _check_exactly_once(f: Fed) -> None:
    """Every receipt the region holds is one stored hub event; leaves are exactly right."""
    hub_db, region_db = f.hub_config, f.region_config
    batches = _q(region_db, "SELECT batch_id, leaves FROM snapshot_batches ORDER BY number")
    assert len(batches) == PEOPLE // BATCH
    events = _q(hub_db, "SELECT seq, event_id, leaves FROM hub_events ORDER BY seq")
    assert [e[0] for e in events] == list(range(1, len(batches) + 1))  # no gap, no duplicate
    assert [e[1] for e in events] == [b[0] for b in batches]
    (leaves,) = _q(hub_db, "SELECT count(*) FROM hub_leaves")[0]
    assert leaves == PEOPLE == sum(int(e[2]) for e in events)  # type: ignore[call-overload]
    (distinct,) = _q(hub_db, "SELECT count(DISTINCT pseudonym) FROM hub_leaves")[0]
    assert distinct == PEOPLE
    per_batch = _q(hub_db, "SELECT b.batch_id, count(*) FROM hub_leaves JOIN hub_batches AS b"
                           " ON b.id = hub_leaves.batch GROUP BY b.id, b.batch_id")  # fmt: skip
    assert sorted(per_batch) == sorted((b, n) for b, n in batches)
    # receipts: one per event, signed by the hub key certified by the hub root
    receipts = _q(
        region_db, "SELECT seq, event_id, receipt, verified FROM push_receipts ORDER BY seq"
    )
    assert [(r[0], r[1]) for r in receipts] == [(e[0], e[1]) for e in events]
    ks = verify_key_set((f.hub_dir / "keys/keyset.bin").read_bytes(), f.hub_root_public, HUB)
    keys = {k.key_id: k.public_key for k in ks.keys}
    for seq, event_id, blob, verified in receipts:
        assert verified == 1
        payload, _ = verified_signer(bytes(blob), keys, RECEIPT_TYPE)  # type: ignore[arg-type]
        r = hub_pb2.Receipt.FromString(payload)
        assert (r.seq, r.event_id, r.region, r.hub) == (seq, event_id, "heihe", HUB)
    # the hub holds province pseudonyms only
    ps = province_pseudonym(f.province_key, f.ids[7])
    assert _q(hub_db, "SELECT count(*) FROM hub_leaves WHERE pseudonym = ?", (ps,)) == [(1,)]
    # no ID number in the SQLite files (PostgreSQL keeps its files out of the test's reach)
    for db in (f.hub_dir / "node.db", f.region_dir / "node.db"):
        if not db.exists():
            continue
        raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                                 if db.with_name(db.name + "-wal").exists() else b"")  # fmt: skip
        for idn in f.ids[:50]:
            assert idn.encode() not in raw


def test_push_resumes_after_hub_killed_and_restarted(fed: Fed) -> None:
    """REQ: H13 — push resumes from the hub's cursor after a SIGKILL; no batch lost, none
    applied twice (leaves and receipts counted); the log checkpoint is witnessed."""
    hub = ServeProcess(fed.hub_config)
    try:
        push = subprocess.Popen([*_push(), str(fed.region_config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _q(fed.hub_config, "SELECT count(*) FROM hub_events")[0][0] >= 3:  # type: ignore[operator]
                break
            time.sleep(0.01)
        hub.stop(signal.SIGKILL)
        push.wait(timeout=30)
        hub = ServeProcess(fed.hub_config)
        out = subprocess.run(
            [*_push(), str(fed.region_config)], capture_output=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr.decode()
        result = json.loads(out.stdout)
        assert result["cursor"] == PEOPLE // BATCH
        again = subprocess.run(
            [*_push(), str(fed.region_config)], capture_output=True, timeout=60, check=False
        )
        assert json.loads(again.stdout)["events"] == 0  # nothing left, nothing re-applied
    finally:
        hub.stop()
    _check_exactly_once(fed)


def _hub_events(fed: Fed) -> int:
    (stored,) = _q(fed.hub_config, "SELECT count(*) FROM hub_events")[0]
    return int(stored)  # type: ignore[call-overload]


class _HubGate:
    """Holds the hub's writes back, as a batch job would, and tells when the hub waits.

    SQLite: the database's cross-process writer lock (every write of the hub takes it).
    PostgreSQL (issue 18): the row lock of the region's ``hub_cursors`` row, taken in a
    transaction of the test's own (every write of the region's push updates that row:
    witnessed checkpoint, cursor), and the hub's backends waiting on a lock."""

    def __init__(self, fed: Fed) -> None:
        self._storage = load_config(fed.hub_config).storage
        self._db = fed.hub_dir / "node.db"
        self._pg = self._storage.dialect == "postgresql"
        self._lock = None if self._pg else WriterLock(self._db)
        self._conn = connect(self._storage) if self._pg else None
        self._probe = connect(self._storage, readonly=True) if self._pg else None

    def acquire(self) -> None:
        if self._conn is None:
            assert self._lock is not None
            self._lock.acquire()
            return
        self._conn.execute("BEGIN")
        self._conn.execute(
            "SELECT cursor FROM hub_cursors WHERE region = 'heihe' FOR UPDATE"
        ).fetchall()

    def release(self) -> None:
        if self._conn is None:
            assert self._lock is not None
            self._lock.release()
        else:
            self._conn.execute("COMMIT")

    def waiters(self) -> int:
        """Writers of the hub waiting for the gate."""
        if self._probe is None:
            return writer_lock_waiters(self._db)
        (n,) = self._probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
        return int(n)

    def hub_holds(self, pid: int) -> bool:
        """The hub got through the gate (it holds the writer lock, or waits no more)."""
        return pid in writer_lock_holders(self._db) if self._probe is None else self.waiters() == 0

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # the only descriptor of this lock: closing it releases it
        for conn in (self._conn, self._probe):
            if conn is not None:
                conn.close()  # a transaction still open ends with its connection


def _kill_mid_stream(
    fed: Fed, hub: ServeProcess, stream: int
) -> tuple[ServeProcess, tuple[int, int, bool]]:
    """Push ``stream`` events in ONE stream and kill the hub once some of them are stored.

    The test holds the hub's writes back (:class:`_HubGate`) and lets them through one
    at a time: whenever the hub waits for the gate it is frozen (SIGSTOP) and its
    stored events are counted; once the stream has stored one, the frozen hub, waiting
    to store the next, is killed.  Every step waits for an observed state, so a busy
    machine changes nothing.  Returns the new hub and the kill point (stored before
    the push, stored at the kill, push acknowledged)."""
    stored_first = at_kill = _hub_events(fed)
    gate = _HubGate(fed)
    gate.acquire()
    push = subprocess.Popen([*_push(), str(fed.region_config), "--max-events", str(stream)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        while True:
            wait_until(
                lambda: gate.waiters() > 0 or push.poll() is not None,
                "the hub to wait for the gate",
            )
            if push.poll() is not None:  # the push ended without reaching the hub
                break
            hub.p.send_signal(signal.SIGSTOP)
            at_kill = _hub_events(fed)
            if at_kill > stored_first:  # frozen in the middle of the stream
                break
            # one more write (not an event yet: a witness, a trust list): let it through,
            # and queue behind it as soon as the hub got through
            hub.p.send_signal(signal.SIGCONT)
            gate.release()
            deadline = time.monotonic() + WAIT_S
            while not gate.hub_holds(hub.p.pid) and _hub_events(fed) == at_kill:
                assert time.monotonic() < deadline, "the hub never got through the gate"
                time.sleep(0.0005)
            gate.acquire()
        hub.stop(signal.SIGKILL)
    finally:
        gate.close()
    push.communicate(timeout=WAIT_S)
    return ServeProcess(fed.hub_config), (stored_first, at_kill, push.returncode == 0)


def _kill_one_push(
    fed: Fed, hub: ServeProcess, point: str
) -> tuple[ServeProcess, tuple[int, int, bool] | None, int | None]:
    """One one-event push with the hub killed at ``point`` (an observed state, not a
    time): ``before`` it reaches the hub, ``during`` (its event stored, the reply
    maybe not sent), ``after`` it was acknowledged, or ``none``.  Returns the hub,
    the kill point (or None) and the acknowledged cursor (or None)."""
    before = _hub_events(fed)
    push = subprocess.Popen([*_push(), str(fed.region_config), "--max-events", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    at_kill = -1
    if point == "before":  # the CLI has not even started: nothing can be stored yet
        at_kill = _hub_events(fed)
        hub.stop(signal.SIGKILL)
    elif point == "during":
        wait_until(lambda: _hub_events(fed) > before or push.poll() is not None, "the event stored")
        hub.p.send_signal(signal.SIGSTOP)
        at_kill = _hub_events(fed)
        hub.stop(signal.SIGKILL)
    out, _err = push.communicate(timeout=WAIT_S)
    if point == "after":
        at_kill = _hub_events(fed)
        hub.stop(signal.SIGKILL)
    acked = push.returncode == 0
    if at_kill >= 0:
        hub = ServeProcess(fed.hub_config)
    kill = (before, at_kill, acked) if at_kill >= 0 else None
    return hub, kill, int(json.loads(out)["cursor"]) if acked else None


def test_fault_sigkill_hub_at_random_points(fed: Fed) -> None:
    """REQ: H13 — fault test: the hub is SIGKILLed at different points — in the middle of
    a multi-event stream (some of its events stored, the stream unfinished and not
    acknowledged), then at random points (before, during or after one-event pushes);
    every acknowledged batch is stored exactly once, and after a final push nothing is
    lost or applied twice."""
    body = fed.region_config.read_text()
    stream = 8
    fed.region_config.write_text(
        body.replace("max_items_per_push = 3\n", f"max_items_per_push = {stream}\n")
    )
    rng = random.Random(20261023)
    total = PEOPLE // BATCH
    hub = ServeProcess(fed.hub_config)
    kills: list[tuple[int, int, bool]] = []  # (stored before push, stored at kill, acked)
    acknowledged: set[int] = set()
    try:
        for _ in range(2):  # a mid-stream kill; one retry if the push never reached the hub
            hub, point = _kill_mid_stream(fed, hub, stream)
            kills.append(point)
            if point[0] < point[1] < point[0] + stream:
                break
        fed.region_config.write_text(
            body.replace("max_items_per_push = 3\n", "max_items_per_push = 1\n")
        )
        # before, during and after a push once each, then points drawn at random
        points = ["before", "during", "after"]
        for _ in range(total + 12):
            if _hub_events(fed) >= total or len(kills) >= 12:
                break
            point = points.pop(0) if points else rng.choice(["before", "during", "after", "none"])
            hub, kill, cursor = _kill_one_push(fed, hub, point)
            if cursor is not None:
                acknowledged.add(cursor)
            if kill is not None:
                kills.append(kill)
        # every acknowledged cursor is stored at the hub (nothing acknowledged was lost)
        stored = _hub_events(fed)
        assert all(c <= stored for c in acknowledged), (acknowledged, stored)
        final = subprocess.run(
            [*_push(), str(fed.region_config)], capture_output=True, timeout=60, check=False
        )
        assert final.returncode == 0, final.stderr.decode()
    finally:
        hub.stop()
    # the kill points differ: at least one landed mid-stream (events of the stream stored,
    # the stream unfinished, nothing acknowledged) and at least one landed elsewhere
    mid = [k for k in kills if k[0] < k[1] < k[0] + stream and not k[2]]
    assert mid, kills
    assert len({(k[1] > k[0], k[2]) for k in kills}) >= 2, kills
    assert len(kills) >= 4, kills
    _check_exactly_once(fed)
    (witnessed,) = _q(
        fed.region_config,
        "SELECT count(*) FROM push_state WHERE hub = 'heilongjiang' AND witnessed IS NOT NULL",
    )[0]
    assert witnessed == 1


def test_region_not_in_registry_refused_and_logged(fed: Fed) -> None:
    """REQ: H17 — the hub accepts pushes only from registered regions; others are refused
    and the refusal is logged."""
    now = datetime.now(UTC)
    ca = load_or_create_ca(fed.root / "ca", now)
    hainan = _region(fed.root, "hainan", ca, now, fed.hub_port, fed.hub_root_public,
                     fed.province_key)  # fmt: skip
    hub = ServeProcess(fed.hub_config)
    try:
        out = subprocess.run(
            [*_push(), str(hainan / "node.toml")], capture_output=True, timeout=60, check=False
        )
    finally:
        hub.stop()
    assert out.returncode == 1
    assert b"REGION_NOT_REGISTERED" in out.stderr
    log = (fed.hub_dir / "node.log").read_text()
    assert any(
        json.loads(line).get("reason") == "REGION_NOT_REGISTERED"
        and json.loads(line).get("region") == "hainan"
        for line in log.splitlines()
    )
    assert _q(fed.hub_config, "SELECT count(*) FROM hub_events") == [(0,)]


def test_background_push_loop_in_serve(fed: Fed) -> None:
    """REQ: H13, H3 — `huxin serve` pushes on its own every [hub] push_interval_seconds,
    queueing the region's signed status list as an outbox event first; the month the
    serving node runs itself (its first monthly step, docs/adr/0514) is pushed too."""
    body = fed.region_config.read_text().replace(
        "push_interval_seconds = 0\n", "push_interval_seconds = 0.2\n"
    )
    fed.region_config.write_text(body)
    region_db, hub_db = fed.region_config, fed.hub_config
    hub = ServeProcess(fed.hub_config)
    region = ServeProcess(fed.region_config)

    def all_pushed() -> bool:
        queued = _q(region_db, "SELECT count(*) FROM outbox")
        return bool(_q(region_db, "SELECT 1 FROM monthly_runs WHERE state = 'finished'")) and _q(
            hub_db, "SELECT count(*) FROM hub_events"
        ) == [(queued[0][0],)]

    try:
        wait_until(all_pushed, "the region's own month and every queued event pushed")
        time.sleep(0.6)  # a few more cycles: an unchanged status list is not queued again
    finally:
        region.stop()
        hub.stop()
    periods = {PERIOD, due_period(datetime.now(UTC), 1, 2)}  # the fixture's and the node's own
    assert {p for (p,) in _q(region_db, "SELECT DISTINCT period FROM snapshot_batches")} == periods
    total = len(periods) * PEOPLE // BATCH + 1  # the batches and one status list
    kinds = _q(hub_db, "SELECT kind, count(*) FROM hub_events GROUP BY kind")
    assert dict(kinds) == {"snapshot_batch": total - 1, "status_list": 1}  # type: ignore[arg-type]
    assert _q(hub_db, "SELECT region, list_id FROM hub_status_lists") == [
        ("heihe", "attestations-1")
    ]
    assert _q(region_db, "SELECT cursor FROM push_state") == [(total,)]


def test_split_view_recorded_as_evidence(fed: Fed) -> None:
    """REQ: H16 — the hub witnesses the region's transparency log: after a rewritten entry
    (a split view) the push is refused with LOG_INCONSISTENT, both checkpoints are kept as
    evidence, the error is logged, and the region's data still reaches the hub (H13)."""
    hub = ServeProcess(fed.hub_config)
    try:
        ok = subprocess.run([*_push(), str(fed.region_config), "--max-events", "1"],
                            capture_output=True, timeout=60, check=False)  # fmt: skip
        assert ok.returncode == 0, ok.stderr.decode()
        assert json.loads(ok.stdout)["witnessed_log_size"] == 3
        conn = connect(load_config(fed.region_config).storage)  # autocommit
        try:
            conn.execute(
                "UPDATE log_entries SET leaf = ? WHERE idx = 1",
                (node_pb2.LogEntry(kind="consent_granted", timestamp=99).SerializeToString(),),
            )
        finally:
            conn.close()
        bad = subprocess.run([*_push(), str(fed.region_config)], capture_output=True, timeout=60,
                             check=False)  # fmt: skip
    finally:
        hub.stop()
    assert bad.returncode == 1 and b"LOG_INCONSISTENT" in bad.stderr
    evidence = _q(fed.hub_config, "SELECT region, reason, previous IS NOT NULL"
                                           " FROM hub_witness_evidence")  # fmt: skip
    assert evidence == [("heihe", "SPLIT_VIEW", 1)]
    assert _q(fed.hub_config, "SELECT witnessed_size FROM hub_cursors") == [(3,)]
    assert _q(fed.hub_config, "SELECT count(*) FROM hub_events") == [(PEOPLE // BATCH,)]
    log = [json.loads(x) for x in (fed.hub_dir / "node.log").read_text().splitlines()]
    assert any(x.get("msg") == "log inconsistency" and x.get("reason") == "SPLIT_VIEW" for x in log)
