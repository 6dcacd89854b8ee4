"""Governed tables on a running node (issue 16; C3, H13; docs/adr/0207).

A Heihe node started with NO mapping table (only the bed's approving authority in
``[mapping.authorities]``) and a Hainan node as the relying party: loopback, mutual
TLS, SQLite, a manual clock.  Tables and approvals are installed, listed and retired
with the real ``huxin mapping install|list|retire`` against the node's database while
it serves; the node picks them up by itself (``mapping_generation``, polled with
generous bounds, never timed).  Each test starts from no installed table in use.

Hugo (four international honours: 920, SS) maps to Hainan AAA through the shipped
anchored table, so he meets hainan/bank-credit (tier AA) once a table is approved.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc import aio

from keys import KeyPair, NodeCertificate, sign_approval
from mapping import MappingTable, approval_for, load_schemes, published_table
from node.core._clock import ManualClock
from node.demo._testbed import (
    TESTBED_AUTHORITY,
    RunningNode,
    Testbed,
    attestation_request,
    honour_record,
    make_id_number,
    resident,
)
from node.model._rollout import follow_rollout, write_rollout
from node.pb.v1 import node_pb2, node_pb2_grpc
from node.recognition import day_start, installed_rows, table_sha256
from node.rpc._client import field_of, reason_of
from node.store import connect
from scoring import Rollout, Stage, load_scheme, parse_scheme_toml
from tests.support.processes import huxin_here

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
HUGO = make_id_number(731)
BANK = "hainan/bank-credit"  # Hainan tier AA, threshold only
ANCHORED = published_table("heihe", "hainan")
WAIT = 60.0  # seconds: a generous bound for the node to re-read its tables


def _approval(
    table: MappingTable,
    key: KeyPair,
    *,
    expires: date | None = None,
    authority: str = TESTBED_AUTHORITY,
) -> bytes:
    s = load_schemes("heihe", "hainan")
    record = approval_for(
        table, s["heihe"], s["hainan"], authority=authority, decision="approved",
        issued_at=int(NOW.timestamp()),
    )  # fmt: skip
    if expires is not None:
        record.expires = day_start(expires)
    return sign_approval(record, key).to_bytes()


class Bed:
    def __init__(self, tb: Testbed, heihe: RunningNode, hainan: RunningNode, files: Path):
        assert tb.ca is not None
        self.tb, self.heihe, self.files = tb, heihe, files
        cert = NodeCertificate(
            "hainan",
            (hainan.directory / "tls/node.pem").read_bytes(),
            (hainan.directory / "tls/node.key").read_bytes(),
            tb.ca.cert_pem,
        )
        self.peer = node_pb2_grpc.PeerServiceStub(tb.peer_channel(heihe, cert))
        self.source = node_pb2_grpc.SourceServiceStub(
            tb.peer_channel(heihe, tb.cert("heihe-court"))
        )
        self.citizen = tb.citizen_stub(heihe)
        self.config = str(heihe.directory / "node.toml")

    def write(self, name: str, data: bytes) -> str:
        path = self.files / name
        path.write_bytes(data)
        return str(path)

    def rows(self) -> list[tuple[bytes, str | None]]:
        conn = connect(self.heihe.directory / "node.db")
        try:
            return [(r.table_sha256, r.retired_at) for r in installed_rows(conn, retired=True)]
        finally:
            conn.close()

    async def picked_up(self) -> None:
        """Wait (bounded) until the serving node's set is the database's current one."""
        server = self.heihe.server
        conn = connect(self.heihe.directory / "node.db")
        try:
            (wanted,) = conn.execute("SELECT generation FROM mapping_generation").fetchone()
        finally:
            conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while server.ctx.mapper.generation != wanted:
            assert loop.time() < deadline, "the node did not re-read its tables"
            await asyncio.sleep(0.1)

    async def reset(self) -> None:
        """No installed table in use (each test starts from here)."""
        for sha, retired in self.rows():
            if retired is None:
                assert huxin_here("mapping", "retire", "--config", self.config, sha.hex())[0] == 0
        await self.picked_up()

    async def install(self, table: MappingTable, approval: bytes | None) -> tuple[int, str, str]:
        argv = ["mapping", "install", "--config", self.config]
        argv.append(self.write(f"{table.id}-{table.version}.json", table.to_json_bytes()))
        if approval is not None:
            argv += ["--approval", self.write(f"{table.id}-{table.version}.apr", approval)]
        got = huxin_here(*argv)
        await self.picked_up()
        return got

    async def grant(self, purpose: str = BANK) -> node_pb2.ConsentToken:
        req = node_pb2.GrantConsentRequest(audience="hainan", purpose=purpose, max_uses=10)
        return await self.citizen.GrantConsent(req, metadata=self.heihe.identity(HUGO))

    async def request(self, token: node_pb2.ConsentToken, purpose: str = BANK) -> bytes:
        req = attestation_request(token, HUGO, purpose)
        return bytes((await self.peer.RequestAttestation(req)).signed_attestation)

    async def refused(self, token: node_pb2.ConsentToken) -> aio.AioRpcError:
        with pytest.raises(aio.AioRpcError) as info:
            await self.request(token)
        return info.value

    async def written(self, consent_id: str) -> tuple[int, int, int]:
        """(attestation_issued log entries, status entries, uses of the consent)."""
        row = await self.heihe.server.ctx.db.fetchone(
            "SELECT (SELECT count(*) FROM log_entries WHERE kind = 'attestation_issued'),"
            " (SELECT count(*) FROM status_entries)"
        )
        mine = await self.citizen.ListConsents(
            node_pb2.ListConsentsRequest(), metadata=self.heihe.identity(HUGO)
        )
        (c,) = [c for c in mine.consents if c.grant.consent_id == consent_id]
        return int(row[0]), int(row[1]), int(c.uses)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bed]:
    tb = Testbed(tmp_path_factory.mktemp("governed"), now=NOW)
    heihe = await tb.start_node(
        "heihe", "heihe", peers=("hainan",), sources=("heihe-court",), clock=ManualClock(NOW),
        approved_tables=False,
    )  # fmt: skip
    hainan = await tb.start_node("hainan", "hainan", peers=("heihe",), clock=ManualClock(NOW))
    files = tmp_path_factory.mktemp("files")
    b = Bed(tb, heihe, hainan, files)
    records = []
    for i in range(4):
        rec = honour_record(f"hugo-{i}", HUGO)
        rec.level = "international"
        records.append(rec)
    await b.source.SubmitRecords(
        node_pb2.SubmitRecordsRequest(batch_id="seed", records=records, subjects=[resident(HUGO)])
    )
    yield b
    await tb.close()


async def test_an_installed_approved_table_reaches_the_running_node_and_is_served(
    bed: Bed,
) -> None:
    """REQ: C3 H13 — issue 16: `huxin mapping install FILE --approval FILE` on a serving
    node: the node re-reads its tables by itself, issues through the table (the grant and
    the request succeed), lists it as approved, and serves it over ListMappings with its
    approval envelope."""
    await bed.reset()
    approval = _approval(ANCHORED, bed.tb.authority)
    code, out, err = await bed.install(ANCHORED, approval)
    assert (code, err) == (0, "")
    assert f"approved by {TESTBED_AUTHORITY}" in out
    token = await bed.grant()
    assert await bed.request(token)
    served = await bed.peer.ListMappings(node_pb2.ListMappingsRequest())
    (blob,) = [b for b in served.tables if bytes(b.sha256) == table_sha256(ANCHORED)]
    assert bytes(blob.approval) == approval
    code, out, _ = huxin_here("mapping", "list", "--config", bed.config, "--json")
    (row,) = [r for r in json.loads(out)["tables"] if r["sha256"] == ANCHORED.content_hash]
    assert (row["approved"], row["origin"], row["approval"]["authority"]) == (
        True,
        "file",
        TESTBED_AUTHORITY,
    )


async def test_an_unapproved_table_is_refused_at_request_and_nothing_is_written(
    bed: Bed,
) -> None:
    """REQ: C3 H13 — issue 16: a consent granted while an approved table was in use; the
    table is retired and a table without approval installed in its place.  The request
    over real gRPC is refused FAILED_PRECONDITION MAPPING_NOT_APPROVED (field
    target_scheme): no attestation_issued entry, no status index, no use counted.  A new
    grant is refused the same way; `huxin mapping list` shows "not approved: cannot
    issue"."""
    await bed.reset()
    await bed.install(ANCHORED, _approval(ANCHORED, bed.tb.authority))
    token = await bed.grant()
    await bed.reset()
    unapproved = replace(ANCHORED, version="2")
    code, out, _ = await bed.install(unapproved, None)
    assert code == 0 and "not approved: cannot issue" in out
    so_far = await bed.written(token.consent_id)
    for _ in range(2):  # and again: nothing was kept by the first
        err = await bed.refused(token)
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "MAPPING_NOT_APPROVED",
            "target_scheme",
        )
    assert await bed.written(token.consent_id) == so_far
    with pytest.raises(aio.AioRpcError) as info:
        await bed.grant()
    assert reason_of(info.value) == "MAPPING_NOT_APPROVED"
    _, listed, _ = huxin_here("mapping", "list", "--config", bed.config)
    assert "not approved: cannot issue" in listed


async def test_a_retired_table_is_no_longer_used(bed: Bed) -> None:
    """REQ: C3 H13 — issue 16: `huxin mapping retire ID` while the node serves: the next
    request under a consent granted before is refused (no table into Hainan:
    MAPPING_UNAVAILABLE, field target_scheme) and nothing is written; the row stays,
    marked retired."""
    await bed.reset()
    await bed.install(ANCHORED, _approval(ANCHORED, bed.tb.authority))
    token = await bed.grant()
    assert await bed.request(token)
    code, out, _ = huxin_here("mapping", "retire", "--config", bed.config, ANCHORED.id)
    assert code == 0 and f"{ANCHORED.id}@1" in out
    await bed.picked_up()
    so_far = await bed.written(token.consent_id)
    err = await bed.refused(token)
    assert (err.code(), reason_of(err), field_of(err)) == (
        grpc.StatusCode.NOT_FOUND,
        "MAPPING_UNAVAILABLE",
        "target_scheme",
    )
    assert await bed.written(token.consent_id) == so_far
    assert (table_sha256(ANCHORED), None) not in bed.rows()
    code, _, err_text = huxin_here("mapping", "retire", "--config", bed.config, ANCHORED.id)
    assert (code, err_text.split(":")[1].strip()) == (2, "NOT_INSTALLED")


def _tampered(table: MappingTable) -> bytes:
    doc = json.loads(table.to_json_bytes())
    doc["content"]["grades"]["B"] = "A"  # a better grade, hash left as it was
    return json.dumps(doc).encode()


def _broken_parity(table: MappingTable) -> bytes:
    """A clean Heihe record (A) mapped below Hainan's clean grade, hash made to match."""
    return replace(table, grades=tuple((g, "D" if g == "A" else t) for g, t in table.grades), version="9").to_json_bytes()  # fmt: skip


@pytest.mark.parametrize(
    ("case", "code", "exit_code"),
    [
        pytest.param("tampered", "HASH_MISMATCH", 1, id="tampered-table"),
        pytest.param("not-json", "MALFORMED_TABLE", 1, id="malformed-table"),
        pytest.param("invariant", "INVARIANT_", 1, id="invariant-failure"),
        pytest.param("other-hash", "MAPPING_NOT_APPROVED", 1, id="approval-for-another-hash"),
        pytest.param("expired", "MAPPING_NOT_APPROVED", 1, id="expired-approval"),
        pytest.param("unknown-authority", "UNKNOWN_KEY", 1, id="approval-by-unknown-authority"),
        pytest.param("missing", "FILE_NOT_READABLE", 2, id="missing-file"),
    ],
)  # fmt: skip
async def test_a_bad_table_or_approval_is_refused_by_install_and_nothing_is_written(
    bed: Bed, case: str, code: str, exit_code: int
) -> None:
    """REQ: C3 H13 — issue 16: `huxin mapping install` verifies before it writes: a tampered
    table (HASH_MISMATCH), a malformed one, one failing an invariant (clean-record
    parity), an approval for another table's hash or one expired before today
    (MAPPING_NOT_APPROVED), an approval signed by an authority the node does not know
    (UNKNOWN_KEY), a missing file: named error, exit 1 (2 for unreadable input), and
    no row and no generation change."""
    await bed.reset()
    rows = bed.rows()
    table, approval = ANCHORED, _approval(ANCHORED, bed.tb.authority)
    data = table.to_json_bytes()
    if case == "tampered":
        data = _tampered(table)
    elif case == "not-json":
        data = b"{not json"
    elif case == "invariant":
        data = _broken_parity(table)
    elif case == "other-hash":
        approval = _approval(replace(ANCHORED, version="7"), bed.tb.authority)
    elif case == "expired":
        approval = _approval(ANCHORED, bed.tb.authority, expires=date(2026, 1, 1))
    elif case == "unknown-authority":
        approval = _approval(ANCHORED, KeyPair.generate())
    argv = ["mapping", "install", "--config", bed.config, bed.write(f"bad-{case}.json", data)]
    argv += ["--approval", bed.write(f"bad-{case}.apr", approval)]
    if case == "missing":
        argv[4] = str(bed.files / "nowhere.json")
    got, out, err = huxin_here(*argv)
    assert got == exit_code
    assert err.startswith(f"error: {code}"), err
    assert out == ""
    assert bed.rows() == rows


async def test_after_a_rollout_a_table_for_the_old_version_is_refused_naming_both(
    bed: Bed,
) -> None:
    """REQ: C3 H11 H13 — issue 16: with the approved table heihe@2025.1 -> hainan@2025.1
    installed, a rollout to heihe@2026.1 is scheduled: `huxin model rollout status`
    warns (text and --json) that the new version leaves that table without coverage.
    Once heihe@2026.1 is in force, a request under a consent granted before is refused
    FAILED_PRECONDITION SCHEME_VERSION_MISMATCH (field target_scheme) naming
    heihe@2026.1 and the installed heihe@2025.1 -> hainan@2025.1, with nothing written."""
    await bed.reset()
    await bed.install(ANCHORED, _approval(ANCHORED, bed.tb.authority))
    token = await bed.grant()
    shipped = load_scheme("heihe")
    text = (Path(__file__).resolve().parents[2] / "scoring" / "schemes" / "heihe.toml").read_text(
        encoding="utf-8"
    )
    text = text.replace('version = "2025.1"', 'version = "2026.1"', 1)
    candidate = parse_scheme_toml(text)
    effective = date(2026, 11, 12)
    rollout = replace(
        Rollout.start(shipped),
        stage=Stage.SCHEDULED,
        candidate_version=candidate.version,
        effective=effective,
    )
    db = bed.heihe.directory / "node.db"
    conn = connect(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        write_rollout(conn, rollout, text, None, NOW.isoformat())
        conn.execute("COMMIT")
    finally:
        conn.close()
    in_force = bed.heihe.server.ctx.in_force
    try:
        args = ["model", "rollout", "status", "--config", bed.config, "--today", "2026-11-10"]
        code, out, _ = huxin_here(*args)
        assert code == 0 and "without coverage" in out and f"{ANCHORED.id}@1" in out
        code, out, _ = huxin_here(*args, "--json")
        (gap,) = json.loads(out)["uncovered_tables"]
        assert (gap["source"], gap["target"]) == ("heihe@2025.1", "hainan@2025.1")
        switched = await follow_rollout(bed.heihe.server.ctx.db, in_force, effective)
        assert switched is not None and switched.current == "heihe@2026.1"
        so_far = await bed.written(token.consent_id)
        err = await bed.refused(token)
        assert (err.code(), reason_of(err), field_of(err)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "SCHEME_VERSION_MISMATCH",
            "target_scheme",
        )
        details = err.details() or ""
        assert "heihe@2026.1" in details and "heihe@2025.1 -> hainan@2025.1" in details
        assert await bed.written(token.consent_id) == so_far
    finally:
        in_force.switch(shipped)
        conn = connect(db)
        try:
            conn.execute("DELETE FROM rollouts")
        finally:
            conn.close()
