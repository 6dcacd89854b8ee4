"""Everything a hub holds cannot re-identify a pushed citizen (issue 14 item 2, H13, H2).

A small federation from ``huxin init federation`` (the Heilongjiang hub with
Heihe and Yichun, one province and so one province key) runs as real ``huxin
serve`` processes; Heihe signs a month of a small synthetic population whose ID
numbers the test knows, pushes it to the hub and deregisters one person.  Then
every file under the hub's directory (configs, keys, certificates, logs, the
SQLite database with its WAL, and a backup of it) is searched exhaustively: every
32-byte window of every file and of every database value, every 64-character hex
string and the hub's own secrets are tried as the HMAC key of every known ID
number, and no result may equal a pseudonym the hub stores.  The same search with
the region's ``province.key`` finds every one of them, so the search works.
"""

from __future__ import annotations

import hmac
import re
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from keys import normalise_id
from node.cli._main import main
from node.core._config import load_config
from node.core._secrets import load_secrets, read_hex, write_hex
from node.demo._federation import FederationLayout, init_federation
from node.demo._testbed import FederationProcesses, reseal_ids
from node.monthly._snapshots import standalone_pseudonym_key
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.synthetic._population import PopulationSpec, generate
from scoring import load_scheme
from tests._waiting import wait_until

HUB, HEIHE, YICHUN = "heilongjiang", "heihe", "yichun"
PERIOD = "2026-11"
PEOPLE = 40
_HEX64 = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _candidates_in_bytes(raw: bytes) -> set[bytes]:
    """Every 32-byte window of ``raw`` and every 64-character hex string in it, decoded."""
    found = {bytes.fromhex(m.group(0).decode()) for m in _HEX64.finditer(raw)}
    found |= {raw[i : i + 32] for i in range(max(0, len(raw) - 31))}
    return found


def _candidates_in_db(db: Path) -> set[bytes]:
    """Every value in every table, searched like a file: a long blob may be split over
    SQLite overflow pages, so the raw file alone could miss a value that straddles two."""
    found: set[bytes] = set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, str):
                        value = value.encode()
                    if isinstance(value, bytes):
                        found |= _candidates_in_bytes(value)
    finally:
        conn.close()
    return found


def _hub_secrets(config: Path) -> set[bytes]:
    """The hub's own secrets, as loaded by the hub itself, and the one key derived from
    them that computes leaf pseudonyms on a node without a hub."""
    cfg = load_config(config)
    s = load_secrets(cfg)
    seal = read_hex(cfg.keys.seal, "keys.seal", 32)
    return {s.storage_secret, s.root.seed, s.signing.seed, seal,
            standalone_pseudonym_key(s.storage_secret)}  # fmt: skip


def _search(keys: set[bytes], ids: list[str], stored: set[bytes]) -> set[bytes]:
    """The stored pseudonyms that ``HMAC-SHA256(key, ID)`` reproduces, over all keys and IDs."""
    messages = [normalise_id(i).encode() for i in ids]
    hits: set[bytes] = set()
    for key in keys:
        for m in messages:
            mac = hmac.digest(key, m, "sha256")
            if mac in stored:
                hits.add(mac)
    return hits


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[FederationLayout, list[str]]:
    """A month of Heihe pushed to the hub, one person deregistered; all processes stopped."""
    root = tmp_path_factory.mktemp("hubprivacy")
    layout = init_federation(
        root, [HEIHE, YICHUN], HUB, datetime.now(UTC), schemes={YICHUN: HEIHE},
        route="hub", sync_interval=1.0, push_interval=0.2,
    )  # fmt: skip
    spec = PopulationSpec(HEIHE, PEOPLE, 14, date(2026, 11, 30))
    heihe = layout.nodes[HEIHE]
    write_hex(heihe.directory / "keys" / "storage.secret", spec.secrets().subject_secret)
    generate(spec, heihe.directory / "node.db")
    reseal_ids(spec, heihe.directory, heihe.directory / "node.db")
    assert main(["score", "publish", "--config", str(heihe.config), "--period", PERIOD,
                 "--workers", "1"]) == 0  # fmt: skip
    ids = [spec.id_number(i) for i in range(PEOPLE)]
    procs = FederationProcesses(layout)
    hub_db, region_db = layout.nodes[HUB].directory / "node.db", heihe.directory / "node.db"
    try:
        for n in (HUB, HEIHE):
            procs.start(n, wait=False)
        for n in (HUB, HEIHE):
            procs.wait_ready(n)
        # the month reaches the hub first, so the deregistration below redacts a leaf there
        wait_until(
            lambda: _query(hub_db, "SELECT count(*) FROM hub_batches") == [(1,)],
            "the hub stored the first batch",
        )
        # the hub receives a deregistration: a pseudonym computed by the region
        leaver = next(i for i in ids if _graded(region_db, spec, i))
        citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
        citizen.Deregister(
            node_pb2.DeregisterRequest(confirm=True),
            metadata=procs.identity(HEIHE, leaver),
            timeout=15,
        )

        def all_pushed() -> bool:
            last = _query(region_db, "SELECT max(seq) FROM outbox")
            kinds = {r[0] for r in _query(hub_db, "SELECT kind FROM hub_events")}
            cursor = _query(hub_db, f"SELECT cursor FROM hub_cursors WHERE region = '{HEIHE}'")
            return "deregistration" in kinds and cursor == last

        wait_until(all_pushed, "every region pushed")
        # a backup of the hub lies in its directory too: it is searched as well
        (layout.nodes[HUB].directory / "backups").mkdir()
        procs.huxin("backup", "create", "--config", str(layout.nodes[HUB].config),
                    "--out", str(layout.nodes[HUB].directory / "backups" / "hub.db"))  # fmt: skip
    finally:
        procs.stop_all()
    return layout, ids


def _graded(db: Path, spec: PopulationSpec, id_number: str) -> bool:
    """Whether the person has a grade this month (so a leaf of theirs was pushed)."""
    key = spec.secrets().subject_key(id_number)
    rows = _query(db, f"SELECT grade FROM monthly_snapshots WHERE subject_key = x'{key.hex()}'")
    return bool(rows) and rows[0][0] in load_scheme(HEIHE).grades


def _stored_pseudonyms(hub_db: Path) -> set[bytes]:
    out: set[bytes] = set()
    for (blob,) in _query(hub_db, "SELECT pseudonyms FROM hub_batches"):
        raw = bytes(blob)  # type: ignore[arg-type]
        out |= {raw[i : i + 32] for i in range(0, len(raw), 32)}
    out.discard(bytes(32))  # a deregistered person's leaf is zeroed
    return out


def test_nothing_in_the_hub_directory_recomputes_a_stored_pseudonym(
    pushed: tuple[FederationLayout, list[str]],
) -> None:
    """REQ: H13 H2 — issue 14 item 2: every file under the hub's directory, every 32-byte
    value in its database, WAL and backup, and the hub's own secrets, tried as the HMAC
    key over every known ID number: no computed value is a pseudonym the hub stores.
    The region's province key, searched the same way, finds every stored pseudonym."""
    layout, ids = pushed
    hub_dir = layout.nodes[HUB].directory
    stored = _stored_pseudonyms(hub_dir / "node.db")
    assert len(stored) >= 10  # a month was pushed (eligible people, one of them deregistered)
    assert _query(hub_dir / "node.db", "SELECT leaves FROM hub_events"
                  " WHERE kind = 'deregistration'") == [(1,)]  # fmt: skip
    assert not [p for p in hub_dir.rglob("*") if p.name == "province.key"]
    assert "province" not in layout.nodes[HUB].config.read_text()

    candidates: set[bytes] = set()
    files = [p for p in hub_dir.rglob("*") if p.is_file()]
    databases = [p for p in files if p.name.endswith(".db")]
    assert hub_dir / "node.db" in databases and hub_dir / "backups" / "hub.db" in databases
    for path in files:  # raw bytes: also pages SQLite has freed, and the WAL
        candidates |= _candidates_in_bytes(path.read_bytes())
    for db in databases:
        candidates |= _candidates_in_db(db)
    candidates |= _hub_secrets(layout.nodes[HUB].config)
    candidates.discard(b"")
    assert stored < candidates  # the pseudonyms themselves are among them

    assert _search(candidates, ids, stored) == set()

    # The search can fail: the region's province key reproduces every stored pseudonym,
    # and finds nothing for the deregistered person (their leaf was redacted at the hub).
    province = bytes.fromhex(
        (layout.nodes[HEIHE].directory / "keys" / "province.key").read_text().strip()
    )
    assert province not in candidates
    assert _search({province}, ids, stored) == stored
    shared = bytes.fromhex(
        (layout.nodes[YICHUN].directory / "keys" / "province.key").read_text().strip()
    )
    assert shared == province  # regions of one province share it, and only they hold it
