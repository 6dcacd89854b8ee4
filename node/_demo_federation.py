"""``huxin demo`` stages 4-11: three regions as separate processes, one consent.

The story: a Heihe resident's grade travels to a Hainan bank.  The bank asks
its own Hainan node; the Hainan node routes through the Heilongjiang hub to
Heihe (the consent names Heihe as its issuer); Heihe checks the consent,
maps the grade to Hainan's scheme and signs; the bank verifies the result
offline with the hub's trust bundle (``huxin verify``).  The resident sees
the query in their log with an inclusion proof, withdraws the consent, and
the next request is refused.

Invariants: no full ID number is printed or put on a command line; every
process started here is stopped by pid in :func:`stop_processes` (also on
failure); every network call has a deadline.  The ``huxin verify`` command
printed in stage 9 runs as pasted (node/_demo_verify.py), and the demo runs
exactly that command (plus ``--json`` to read the result).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from keys import (
    CHECKPOINT_TYPE,
    Sealer,
    load_trust,
    subject_binding,
    verify_envelope,
    verify_inclusion,
)
from node.pb.v1 import attestation_pb2, node_pb2, node_pb2_grpc

from ._client import reason_of
from ._demo_verify import command_line, keep_inputs, verify_args, verify_dir
from ._federation import FederationLayout, init_federation
from ._secrets import read_hex, write_hex
from ._storage import connect
from ._testbed import FederationProcesses

if TYPE_CHECKING:
    from ._demo import DemoContext
    from ._population import PopulationSpec

__all__ = ["FEDERATION_STAGES", "prepare_federation", "reseal_ids", "stop_processes"]

HUB, HEIHE, HAINAN, BANK = "heilongjiang", "heihe", "hainan", "hainan.bank"
PURPOSE = "heihe/credit-loans"  # a catalogue scenario (H14): grade disclosure allowed
DEADLINE = 15.0


def _layout(ctx: DemoContext) -> FederationLayout:
    layout = ctx.extra["layout"]
    assert isinstance(layout, FederationLayout)
    return layout


def _procs(ctx: DemoContext) -> FederationProcesses:
    procs = ctx.extra["procs"]
    assert isinstance(procs, FederationProcesses)
    return procs


def _table(ctx: DemoContext, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cols = [header, *[tuple(str(x) for x in r) for r in rows]]
    widths = [max(len(str(c[i])) for c in cols) for i in range(len(header))]
    for n, row in enumerate(cols):
        ctx.say("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
        if n == 0:
            ctx.say("  " + "  ".join("-" * w for w in widths))


def prepare_federation(ctx: DemoContext) -> Path:
    """Lay out the federation; return the Heihe node's database path (to generate into)."""
    assert ctx.spec is not None
    root = ctx.workdir / "federation"
    layout = init_federation(
        root,
        [HEIHE, HAINAN],
        HUB,
        datetime.now(UTC),
        clients=[BANK],
        route="hub",
        sync_interval=2.0,
        push_interval=0.0,
    )
    ctx.extra["layout"] = layout
    heihe = layout.nodes[HEIHE].directory
    # The Heihe node keys its people with the population's subject secret (its own
    # secret from now on); ID numbers are re-sealed with the node's seal key later.
    write_hex(heihe / "keys" / "storage.secret", ctx.spec.secrets().subject_secret)
    return heihe / "node.db"


def stage_layout(ctx: DemoContext) -> None:
    layout = _layout(ctx)
    ctx.heading("4. A federation on one machine")
    ctx.say(
        "`huxin init federation --regions heihe,hainan --hub heilongjiang` wrote one CA, a"
        " directory per node (config, keys, certificate) and the hub's signed trust list,"
        " which names the regions, their root keys, endpoints and TLS fingerprints:"
    )
    ctx.say()
    summary = json.loads(layout.summary.read_text(encoding="utf-8"))
    fp = {n["id"]: n["tls_sha256"][:16] for n in summary["nodes"]}
    _table(
        ctx,
        ("node", "role", "hub", "scheme", "peer port", "citizen port", "TLS sha256"),
        [
            (
                n.id,
                n.role,
                n.hub,
                n.scheme if n.role == "region" else "-",
                n.peer_port,
                n.citizen_port,
                fp[n.id] + "…",
            )
            for n in layout.nodes.values()
        ],
    )
    ctx.say()
    ctx.say(f"The Hainan bank gets a client certificate as '{BANK}' (it belongs to Hainan).")


def stage_hand_over(ctx: DemoContext) -> None:
    """Re-seal the population's ID numbers with the Heihe node's own seal key."""
    assert ctx.spec is not None
    assert ctx.db is not None
    reseal_ids(ctx.spec, _layout(ctx).nodes[HEIHE].directory, ctx.db)


def reseal_ids(spec: PopulationSpec, node_dir: Path, db: Path) -> None:
    """Re-seal a generated population's ID numbers with the node's own seal key, so the
    node can open them (deregistration needs the ID for the province pseudonym)."""
    node_sealer = Sealer(
        {"seal-1": read_hex(node_dir / "keys" / "seal.key", "keys.seal", 32)}, "seal-1"
    )
    old = spec.secrets().sealer()
    conn = connect(db)
    try:
        rows = conn.execute("SELECT subject_key, id_sealed FROM subjects").fetchall()
        conn.execute("BEGIN")
        conn.executemany(
            "UPDATE subjects SET id_sealed = ? WHERE subject_key = ?",
            [(node_sealer.seal(old.open(bytes(s), bytes(k)), bytes(k)), k) for k, s in rows],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def stage_start(ctx: DemoContext) -> None:
    stage_hand_over(ctx)
    layout = _layout(ctx)
    procs = FederationProcesses(layout)
    ctx.extra["procs"] = procs
    ctx.heading("5. Three nodes, three processes")
    started = time.perf_counter()
    for node in (HUB, HEIHE, HAINAN):
        procs.start(node, wait=False)
    for node in (HUB, HEIHE, HAINAN):
        procs.wait_ready(node)
    ctx.say(
        f"Started in {time.perf_counter() - started:.1f}s (`huxin serve --config DIR/node.toml`):"
    )
    ctx.say()
    _table(
        ctx,
        ("node", "pid", "database", "listening (mutual TLS)"),
        [
            (n, procs.procs[n].proc.pid, f"{n}/node.db", layout.nodes[n].peer)
            for n in (HUB, HEIHE, HAINAN)
        ],
    )


def stage_publish_push(ctx: DemoContext) -> None:
    layout, procs = _layout(ctx), _procs(ctx)
    heihe = layout.nodes[HEIHE]
    ctx.heading("6. The month is signed and pushed to the provincial hub (H3, H13)")
    pub = json.loads(
        procs.huxin(
            "score", "publish", "--config", str(heihe.config), "--period", ctx.period, "--json"
        ).stdout
    )
    ctx.say(
        f"`huxin score publish`: {pub['leaves']:,} grade attestations in {pub['batches']} signed"
        " Merkle batch(es) — one signature per batch, each leaf keyed by the province pseudonym,"
        " queued in Heihe's outbox."
    )
    pushed = procs.huxin("push", "--config", str(heihe.config), "--json", check=False)
    if pushed.returncode != 0:
        ctx.say(f"Push failed: {pushed.stderr.strip()[:200]}")
        return
    doc = json.loads(pushed.stdout)
    ctx.say(
        f"`huxin push`: the hub verified and stored every batch and answered with signed receipts"
        f" (cursor now {doc.get('cursor', '?')})."
    )
    ctx.say()
    conn = connect(layout.nodes[HUB].directory / "node.db", readonly=True)
    try:
        rows = conn.execute(
            "SELECT region, seq, kind, leaves FROM hub_events ORDER BY region, seq"
        ).fetchall()
    finally:
        conn.close()
    _table(ctx, ("at the hub: region", "seq", "event", "attestations"), [tuple(r) for r in rows])


def _wait_for_sync(ctx: DemoContext, timeout: float = 20.0) -> None:
    """Until Hainan has synced the hub and Heihe at least once (trust material)."""
    db = _layout(ctx).nodes[HAINAN].directory / "node.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = connect(db, readonly=True)
        try:
            done = {r[0] for r in conn.execute("SELECT peer FROM sync_peers WHERE failures = 0")}
        finally:
            conn.close()
        if {HUB, HEIHE} <= done:
            return
        time.sleep(0.2)


def stage_consent(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    procs = _procs(ctx)
    from ._demo import mask_id

    ctx.heading("7. The resident grants consent to a Hainan bank (H5, H12)")
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    token = citizen.GrantConsent(
        node_pb2.GrantConsentRequest(
            audience=BANK, purpose=PURPOSE, scope=node_pb2.CONSENT_SCOPE_GRADE, valid_days=30,
            max_uses=3,
        ),
        metadata=procs.identity(HEIHE, ctx.resident),
        timeout=DEADLINE,
    )  # fmt: skip
    grant = node_pb2.ConsentGrant.FromString(token.token.payload)
    ctx.extra["token"] = token
    ctx.say(
        f"Citizen {mask_id(ctx.resident)} signs in at the Heihe node (identity provider"
        " assertion) and grants:"
    )
    ctx.say()
    until = datetime.fromtimestamp(grant.not_after, UTC).date().isoformat()
    _table(
        ctx,
        ("consent", "issuer", "audience", "purpose", "scope", "valid until", "max uses"),
        [(grant.consent_id[:12] + "…", grant.issuer_region, grant.audience, grant.purpose,
          "grade only", until, grant.max_uses)],
    )  # fmt: skip
    ctx.say()
    ctx.say(
        "The citizen hands the bank the token and the binding salt; the bank, which sees the"
        " applicant's ID card, computes the subject binding HMAC(salt, ID) itself."
    )


def _request(ctx: DemoContext, nonce: bytes) -> node_pb2.AttestationResponse:
    assert ctx.resident is not None
    procs = _procs(ctx)
    token: node_pb2.ConsentToken = ctx.extra["token"]
    bank = node_pb2_grpc.PeerServiceStub(procs.channel(HAINAN, BANK))
    req = node_pb2.AttestationRequest(
        consent_token=token.token,
        subject_binding=subject_binding(token.binding_salt, ctx.resident),
        nonce=nonce,
        target_scheme=HAINAN,
        purpose=PURPOSE,
    )
    response: node_pb2.AttestationResponse = bank.RequestAttestation(req, timeout=DEADLINE)
    return response


def stage_request(ctx: DemoContext) -> None:
    _wait_for_sync(ctx)
    ctx.heading("8. The bank asks its Hainan node; the request travels through the hub")
    nonce = os.urandom(16)
    started = time.perf_counter()
    resp = _request(ctx, nonce)
    ms = (time.perf_counter() - started) * 1000
    ctx.extra["nonce"] = nonce
    path = verify_dir(ctx.workdir) / "attestation.bin"
    path.write_bytes(resp.signed_attestation)
    ctx.extra["attestation"] = path
    ctx.say(
        f"hainan.bank → hainan (its node) → heilongjiang (hub) → heihe (the consent's issuer)"
        f" and back in {ms:.0f} ms.  Each hop authenticates the previous one by its"
        " certificate; the bank's identity travels as 'on behalf of' and only a hub or the"
        " bank's own region may vouch for it.  Heihe checked the consent and signed."
    )
    ctx.say()
    _table(ctx, ("node", "logged (structured log, no personal data)"), _route_lines(ctx))


def _route_lines(ctx: DemoContext) -> list[tuple[str, str]]:
    """What each node logged about the request (its own log file)."""
    layout, rows = _layout(ctx), []
    for node in (HAINAN, HUB, HEIHE):
        log = layout.nodes[node].directory / "node.log"
        for _ in range(50):  # the home region writes its line right after replying
            lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x]
            hits = [x for x in lines if x.get("msg") == "request routed"] or [
                x for x in lines if x.get("method") == "RequestAttestation" and x.get("via")
            ]
            if hits:
                h = hits[-1]
                text = (
                    f"routed for {h['requester']} to {h['hop']} (hop {h['hops']})"
                    if h.get("msg") == "request routed"
                    else f"served {h['peer']} via {h['via']}: {h['code']} ({h['ms']} ms)"
                )
                rows.append((node, text))
                break
            time.sleep(0.02)
    return rows


def _fetch_status(ctx: DemoContext, name: str) -> Path:
    """The bank fetches Heihe's signed status list from the endpoint the trust list names
    (allowed: 'hainan.bank' belongs to a listed region) and keeps it as ``name``."""
    procs = _procs(ctx)
    stub = node_pb2_grpc.PeerServiceStub(procs.channel(HEIHE, BANK))
    env = stub.GetStatusList(node_pb2.GetStatusListRequest(), timeout=DEADLINE)
    path = verify_dir(ctx.workdir) / name
    path.write_bytes(env.SerializeToString())
    return path


def _verify_args(ctx: DemoContext, statuses: list[Path], now: int) -> list[str]:
    assert ctx.resident is not None
    token: node_pb2.ConsentToken = ctx.extra["token"]
    kept = ctx.extra.get("kept")
    if kept is None:
        layout = _layout(ctx)
        kept = ctx.extra["kept"] = keep_inputs(
            verify_dir(ctx.workdir), layout.bundle(HUB), layout.hub_key_file(HUB), ctx.resident
        )
    return verify_args(
        ctx.extra["attestation"], kept, BANK, ctx.extra["nonce"], token.binding_salt, statuses, now
    )


def _run_verify(ctx: DemoContext, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The printed command, run as printed (plus ``--json`` to read its result)."""
    return _procs(ctx).huxin(*args, "--json", check=False)


def stage_verify(ctx: DemoContext) -> None:
    ctx.heading("9. The bank verifies offline (as `huxin verify` does)")
    status = _fetch_status(ctx, "heihe-status-at-check.bin")
    args = _verify_args(ctx, [status], int(time.time()))
    command = command_line(args)
    ctx.extra["verify_command"] = command
    ctx.say(f"$ {command}")
    out = _run_verify(ctx, args)
    if out.returncode != 0:
        ctx.say(f"NOT VALID: {out.stderr.strip()[:200]}")
        return
    doc = json.loads(out.stdout)
    a = doc["attestation"]
    m = a["mapped"] or {}
    ctx.say()
    _table(
        ctx,
        ("valid", "issuer", "native grade", "mapped to Hainan", "mapping", "score", "status",
         "trust list"),
        [("yes", a["issuer_region"], f"{a['grade']} ({a['scheme']})",
          f"{m.get('grade', '-')} ({m.get('scheme', '-')})", m.get("method", "-"),
          "not disclosed" if a["score"] is None else a["score"], doc["status"],
          f"v{doc['trust_version']}")],
    )  # fmt: skip
    ctx.say()
    ctx.say(
        "Signature, signing key (certified by Heihe's root key in the hub-signed trust list),"
        " expiry, audience, nonce, subject binding and status all check out without calling"
        " anyone.  The command above reads only files in"
        f" {verify_dir(ctx.workdir)} (the applicant's synthetic ID number is in"
        " subject-id, readable by you alone); paste it to check again as of --now."
    )


def stage_log(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    layout, procs = _layout(ctx), _procs(ctx)
    ctx.heading("10. The resident sees who queried them, with inclusion proofs (H16)")
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    hub_key = bytes.fromhex(layout.hub_key_file(HUB).read_text(encoding="ascii").strip())
    trust = load_trust(layout.bundle(HUB).read_bytes(), hub_key, datetime.now(UTC))
    rows = []
    start, more = 0, True
    while more:  # QueryLog pages; each page's proofs are against its own checkpoint
        resp = citizen.QueryLog(
            node_pb2.QueryLogRequest(start_index=start),
            metadata=procs.identity(HEIHE, ctx.resident),
            timeout=DEADLINE,
        )
        cp = attestation_pb2.Checkpoint.FromString(
            verify_envelope(resp.checkpoint, trust.region_keys(HEIHE), CHECKPOINT_TYPE)
        )
        for e in resp.entries:
            entry = node_pb2.LogEntry.FromString(e.entry)
            ok = verify_inclusion(
                e.entry, e.proof.leaf_index, e.proof.tree_size, list(e.proof.hashes), cp.root_hash
            )
            when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%H:%M:%S")
            reason = entry.reason + (f" x{entry.count}" if entry.count > 1 else "")
            rows.append((e.proof.leaf_index, when, entry.kind, entry.requester or "-",
                         entry.purpose or "-", reason or "-", "yes" if ok else "NO"))  # fmt: skip
        start, more = resp.next_start_index, resp.more
    _table(ctx, ("leaf", "time", "event", "requester", "purpose", "reason", "proof ok"), rows)
    ctx.say()
    ctx.say(f"Proofs checked against Heihe's signed log checkpoint (size {cp.tree_size}).")


def stage_withdraw(ctx: DemoContext) -> None:
    assert ctx.resident is not None
    procs = _procs(ctx)
    token: node_pb2.ConsentToken = ctx.extra["token"]
    ctx.heading("11. The resident withdraws consent; the next request is refused")
    citizen = node_pb2_grpc.CitizenServiceStub(procs.citizen_channel(HEIHE))
    citizen.WithdrawConsent(
        node_pb2.WithdrawConsentRequest(consent_id=token.consent_id),
        metadata=procs.identity(HEIHE, ctx.resident),
        timeout=DEADLINE,
    )
    try:
        _request(ctx, os.urandom(16))
    except grpc.RpcError as err:
        ctx.extra["refused"] = reason_of_sync(err)
        ctx.say(f"Refused: {err.code().name} ({ctx.extra['refused']}) — {err.details()}.")
    else:
        ctx.extra["refused"] = ""
        ctx.say("NOT refused — this is a bug.")
    ctx.say()
    at_check = verify_dir(ctx.workdir) / "heihe-status-at-check.bin"
    fresh = _fetch_status(ctx, "heihe-status-after-withdrawal.bin")
    args = _verify_args(ctx, [at_check, fresh], int(time.time()))
    ctx.say(f"$ {command_line(args)}")
    out = _run_verify(ctx, args)
    ctx.extra["revoked"] = out.returncode != 0 and "STATUS_REVOKED" in out.stdout + out.stderr
    ctx.say(
        "The attestation the bank already holds now fails `huxin verify`: of the two lists"
        " it holds, Heihe's newer one decides:"
        f" {'STATUS_REVOKED' if ctx.extra['revoked'] else out.stdout.strip()[:80]}."
    )
    ctx.say()
    layout = _layout(ctx)
    ctx.say("`huxin status --config hainan/node.toml`:")
    out = procs.huxin("status", "--config", str(layout.nodes[HAINAN].config), check=False)
    for line in out.stdout.splitlines():
        ctx.say("  " + line)


def reason_of_sync(err: grpc.RpcError) -> str:
    """The huxin-reason of a synchronous RPC error ('' if none)."""
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == "huxin-reason":
            return value if isinstance(value, str) else bytes(value).decode()
    return reason_of(err)


def stop_processes(ctx: DemoContext) -> None:
    procs = ctx.extra.get("procs")
    if isinstance(procs, FederationProcesses):
        procs.stop_all()


FEDERATION_STAGES: list[Callable[[DemoContext], None]] = [
    stage_layout,
    stage_start,
    stage_publish_push,
    stage_consent,
    stage_request,
    stage_verify,
    stage_log,
    stage_withdraw,
]
